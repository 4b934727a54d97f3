-- CoreFlow schema 11: a job with `continue_on_error` may fail without failing its run; the
-- run's end is decided in the store, which must know it.
ALTER TABLE jobs ADD COLUMN continue_on_error INTEGER NOT NULL DEFAULT 0;
