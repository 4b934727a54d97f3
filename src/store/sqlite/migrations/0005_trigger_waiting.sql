-- CoreFlow schema 5: trigger fires waiting for a run slot of their workflow
-- (`concurrency: { on_overlap: queue }`), kept across daemon restarts.
CREATE TABLE trigger_waiting (
    id        INTEGER PRIMARY KEY,
    workflow  TEXT    NOT NULL,
    trigger   TEXT    NOT NULL,   -- the trigger record (JSON) the run will carry
    params    TEXT    NOT NULL,   -- the trigger's parameters (JSON object)
    queued_at INTEGER NOT NULL
);
