-- CoreFlow PostgreSQL schema 6: a job made by a `for_each` fan-out records its item
-- (`{"index": 0, "value": …}`), which its templates read as `each.*` on any worker.
ALTER TABLE jobs ADD COLUMN item TEXT;
