-- CoreFlow PostgreSQL schema 4: a claim reads its candidates through a function whose plan
-- always walks `jobs_claim_order`, best job first, and stops at the page's size.
--
-- As a plain prepared statement the query was planned afresh at every claim (its generic
-- plan, not knowing how many jobs wait, sorts all of them; its custom plan costs more to
-- make than to run), and with statistics older than the waiting line — a burst of jobs
-- queued after a quiet spell — even the custom plan sorted every waiting job at each
-- claim. Inside the function sorting and whole-table scans are priced out, so the one plan
-- PL/pgSQL keeps per connection is the index walk whatever the statistics say.
--
-- Left out: jobs that must wait for a retry delay (`not_before`), jobs of `blocked` queues
-- (paused or full), jobs already read (`seen`), jobs asking for a label the worker lacks
-- (`labels`, the worker's as a JSON array), and jobs of runs that have an owner — a
-- foreground `coreflow run` executes its ready jobs itself. The rows read stay locked until
-- the claim commits; rows another claim holds are skipped.
CREATE FUNCTION coreflow_claim_candidates(
    now_ms BIGINT, page BIGINT, blocked TEXT[], seen BIGINT[], labels TEXT
) RETURNS TABLE (
    id BIGINT, run_id BIGINT, queue TEXT, runs_on TEXT, attempts BIGINT, queued_at BIGINT,
    run_status TEXT, cancel_requested BIGINT
) LANGUAGE plpgsql SET enable_sort = off SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT j.id, j.run_id, j.queue, j.runs_on, j.attempts, j.queued_at,
           r.status, r.cancel_requested
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
