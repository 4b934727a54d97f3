-- CoreFlow schema 6: a run's jobs by state. "Has this run any job left?" after every job a
-- worker finished used to read every job of the run (the (run_id, name) index does not hold
-- the state): quadratic in the run's size.
CREATE INDEX jobs_by_run_status ON jobs (run_id, status);
