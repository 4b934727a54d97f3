-- CoreFlow schema 13: `resources:` in the store. A job's request (thousandths of a CPU,
-- bytes; 0 for none) is admitted at claim time against what its worker's host offers, less
-- what the running jobs of that host's workers take. A worker records its offer (NULL: it
-- admits by count only, as before) and how memory limits are enforced where it runs
-- ('cgroup' or 'sampling').
ALTER TABLE jobs ADD COLUMN cpu_milli INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN memory INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN cpu_milli INTEGER;
ALTER TABLE workers ADD COLUMN memory INTEGER;
ALTER TABLE workers ADD COLUMN enforcement TEXT;
