-- CoreFlow PostgreSQL schema 7: a job with `continue_on_error` may fail without failing its
-- run; the run's end is decided in the store, which must know it.
ALTER TABLE jobs ADD COLUMN continue_on_error BIGINT NOT NULL DEFAULT 0;
