-- CoreFlow PostgreSQL schema 5: a run started by a `workflow:` job records that job and its
-- run, so the parent lists its child run and `retry` of the parent repairs the same child.
ALTER TABLE runs ADD COLUMN parent_run BIGINT;
ALTER TABLE runs ADD COLUMN parent_job BIGINT;
-- A job has at most one child run: a retry repairs it, and two processes moving a run on
-- at once cannot both start one.
CREATE UNIQUE INDEX runs_by_parent_job ON runs (parent_job) WHERE parent_job IS NOT NULL;
CREATE INDEX runs_by_parent_run ON runs (parent_run) WHERE parent_run IS NOT NULL;
