-- CoreFlow schema 1: definitions, runs, jobs, attempts, steps, outputs.
--
-- Times are integer milliseconds since the Unix epoch (UTC). JSON values are stored as text.
-- States are the names of crate::state (JobState::as_str, RunState::as_str).

-- Every version of every workflow definition seen. The current one of a name is the one saved
-- last: seen_seq grows with every save (times may tie or go backwards).
CREATE TABLE definitions (
    name        TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    yaml        TEXT    NOT NULL,
    source_path TEXT,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    seen_seq    INTEGER NOT NULL,
    PRIMARY KEY (name, hash)
) WITHOUT ROWID;

CREATE INDEX definitions_by_seen ON definitions (name, seen_seq);

-- AUTOINCREMENT: a run id is never reused, even after the newest runs are deleted.
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow         TEXT    NOT NULL,
    def_hash         TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
    reason           TEXT,
    params           TEXT    NOT NULL,
    trigger          TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    -- The owning process: pid, start time in clock ticks since boot, host. NULL until claimed.
    owner_pid        INTEGER,
    owner_start      INTEGER,
    owner_host       TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX runs_by_workflow ON runs (workflow, id);
CREATE INDEX runs_by_status ON runs (status, id);

CREATE TABLE jobs (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id                INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name                  TEXT    NOT NULL,
    base_name             TEXT    NOT NULL,
    matrix                TEXT,
    queue                 TEXT    NOT NULL,
    priority              INTEGER NOT NULL DEFAULT 0,
    metadata              TEXT    NOT NULL,
    needs                 TEXT    NOT NULL,
    status                TEXT    NOT NULL CHECK (status IN ('pending', 'queued', 'running',
                              'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')),
    reason                TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0,
    attempts_before_retry INTEGER NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL DEFAULT 1,
    exit_code             INTEGER,
    queued_at             INTEGER,
    started_at            INTEGER,
    finished_at           INTEGER,
    duration_ms           INTEGER,
    peak_rss_bytes        INTEGER,
    cpu_ms                INTEGER,
    kill_token            TEXT,
    cancel_requested      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, name)
);

CREATE INDEX jobs_by_status ON jobs (status, queue);
-- Keeps the owner's cancel poll to an index probe that finds nothing.
CREATE INDEX jobs_cancel_requested ON jobs (run_id) WHERE cancel_requested <> 0;

-- One row per attempt; it also indexes the attempt's log file (log_path, relative to the
-- environment folder).
CREATE TABLE attempts (
    job_id         INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    reason         TEXT,
    exit_code      INTEGER,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    duration_ms    INTEGER,
    peak_rss_bytes INTEGER,
    cpu_ms         INTEGER,
    kill_token     TEXT,
    log_path       TEXT    NOT NULL,
    log_bytes      INTEGER,
    log_lines      INTEGER,
    PRIMARY KEY (job_id, number)
) WITHOUT ROWID;

CREATE TABLE steps (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    exit_code   INTEGER,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (job_id, attempt, idx),
    FOREIGN KEY (job_id, attempt) REFERENCES attempts (job_id, number) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE outputs (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key    TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;
