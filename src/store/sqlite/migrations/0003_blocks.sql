-- CoreFlow schema 3: the DataBlock registry (issue 6).
--
-- The content itself lives in <env>/blocks/ (see crate::blocks::Cas), named by its SHA-256;
-- these tables hold names, versions and lineage. Times are integer milliseconds since the
-- Unix epoch (UTC). Job and run ids are not foreign keys: lineage outlives the rows it names.

-- One row per version of a named block. Versions count from 1 per name and are never reused:
-- `blocks gc` sets removed_at instead of deleting the row. The id only grows (AUTOINCREMENT)
-- and is the publish sequence the daemon's `datablock:` trigger polls.
CREATE TABLE block_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('file', 'folder')),
    size        INTEGER NOT NULL,
    files       INTEGER NOT NULL,
    file_name   TEXT    NOT NULL,
    executable  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER,
    UNIQUE (name, version)
);

-- Every publication by a job attempt, also of unchanged content (new = 0), which then points
-- at the existing version: the lineage records every producer.
CREATE TABLE block_productions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    version_id INTEGER NOT NULL REFERENCES block_versions (id),
    run_id     INTEGER NOT NULL,
    workflow   TEXT    NOT NULL,
    job_id     INTEGER NOT NULL,
    job_name   TEXT    NOT NULL,
    job_base   TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    new        INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX block_productions_by_version ON block_productions (version_id);
CREATE INDEX block_productions_by_attempt ON block_productions (job_id, attempt);
CREATE INDEX block_productions_by_run ON block_productions (run_id, job_base);

-- The blocks a job attempt read, under the input name its steps saw.
CREATE TABLE block_consumptions (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    input       TEXT    NOT NULL,
    version_id  INTEGER NOT NULL REFERENCES block_versions (id),
    run_id      INTEGER NOT NULL,
    workflow    TEXT    NOT NULL,
    job_name    TEXT    NOT NULL,
    job_base    TEXT    NOT NULL,
    consumed_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, input)
) WITHOUT ROWID;

CREATE INDEX block_consumptions_by_version ON block_consumptions (version_id);
CREATE INDEX block_consumptions_by_run ON block_consumptions (run_id);
