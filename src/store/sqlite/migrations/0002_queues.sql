-- CoreFlow schema 2: JobQueues, standalone workers, leases and scheduling fields.

CREATE TABLE queues (
    name        TEXT    PRIMARY KEY,
    -- NULL: no limit on running jobs.
    concurrency INTEGER,
    paused      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO queues (name, concurrency, paused, created_at)
VALUES ('default', NULL, 0, CAST(strftime('%s', 'now') AS INTEGER) * 1000);

-- Worker labels a job asks for (JSON array), `jobs top` order (higher first, NULL last), the
-- earliest time a retry may start, and the lease of the worker holding it.
ALTER TABLE jobs ADD COLUMN runs_on TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN top_seq INTEGER;
ALTER TABLE jobs ADD COLUMN not_before INTEGER;
ALTER TABLE jobs ADD COLUMN worker_id INTEGER;
ALTER TABLE jobs ADD COLUMN lease_expires INTEGER;

CREATE INDEX jobs_claimable ON jobs (status, top_seq, priority, queued_at) WHERE status = 'queued';
CREATE INDEX jobs_by_worker ON jobs (worker_id) WHERE status = 'running';

CREATE TABLE workers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    labels       TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    host         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    -- 'idle', 'busy', 'stopping', 'stopped', 'moved'
    state        TEXT    NOT NULL,
    current_job  INTEGER,
    jobs_done    INTEGER NOT NULL DEFAULT 0,
    -- Set by `coreflow workers move`: the environment the worker should serve instead.
    move_to      TEXT
);
