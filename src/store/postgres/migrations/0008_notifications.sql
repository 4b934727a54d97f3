-- CoreFlow PostgreSQL schema 8: notifications (`notify:`). A run of a workflow with
-- notifiers is created with notify_state 'pending'; whoever first takes it once it has ended
-- ('claimed': its `coreflow run`, or the leading daemon) sends them, and records every
-- attempt.
ALTER TABLE runs ADD COLUMN notify_state TEXT;
CREATE INDEX runs_notify_pending ON runs (id) WHERE notify_state = 'pending';
CREATE TABLE notifications (
    id       BIGSERIAL PRIMARY KEY,
    run_id   BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    notifier BIGINT  NOT NULL,
    kind     TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    attempt  BIGINT  NOT NULL,
    ok       BIGINT  NOT NULL,
    error    TEXT,
    at       BIGINT  NOT NULL
);
CREATE INDEX notifications_by_run ON notifications (run_id, id);
