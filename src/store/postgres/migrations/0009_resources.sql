-- CoreFlow PostgreSQL schema 9: `resources:` in the store. A job's request (thousandths of
-- a CPU, bytes; 0 for none) is admitted at claim time against what its worker's host
-- offers, less what the running jobs of that host's workers take. A worker records its
-- offer (NULL: it admits by count only, as before) and how memory limits are enforced where
-- it runs ('cgroup' or 'sampling').
ALTER TABLE jobs ADD COLUMN cpu_milli BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN memory BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN cpu_milli BIGINT;
ALTER TABLE workers ADD COLUMN memory BIGINT;
ALTER TABLE workers ADD COLUMN enforcement TEXT;

-- Schema 4's function, returning each candidate's request too (its plan is unchanged).
DROP FUNCTION coreflow_claim_candidates(BIGINT, BIGINT, TEXT[], BIGINT[], TEXT);
CREATE FUNCTION coreflow_claim_candidates(
    now_ms BIGINT, page BIGINT, blocked TEXT[], seen BIGINT[], labels TEXT
) RETURNS TABLE (
    id BIGINT, run_id BIGINT, queue TEXT, runs_on TEXT, attempts BIGINT, queued_at BIGINT,
    run_status TEXT, cancel_requested BIGINT, cpu_milli BIGINT, memory BIGINT
) LANGUAGE plpgsql SET enable_sort = off SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT j.id, j.run_id, j.queue, j.runs_on, j.attempts, j.queued_at,
           r.status, r.cancel_requested, j.cpu_milli, j.memory
    FROM jobs AS j JOIN runs AS r ON r.id = j.run_id
    WHERE j.status = 'queued'
      AND (j.not_before IS NULL OR j.not_before <= now_ms)
      AND NOT (j.queue = ANY(blocked))
      AND NOT (j.id = ANY(seen))
      AND j.runs_on::jsonb <@ labels::jsonb
      AND r.owner_pid IS NULL
    ORDER BY j.top_seq DESC NULLS LAST, j.priority DESC, j.queued_at, j.id
    LIMIT page
    FOR NO KEY UPDATE OF j SKIP LOCKED;
END
$$;
