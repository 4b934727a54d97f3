-- CoreFlow PostgreSQL schema 2: claims read waiting jobs in scheduler order (on top, newest
-- first; then priority, highest first; then oldest first) in one index scan, and the
-- scaler reads them oldest first.
CREATE INDEX jobs_claim_order ON jobs (top_seq DESC NULLS LAST, priority DESC, queued_at, id)
    WHERE status = 'queued';
CREATE INDEX jobs_waiting_oldest ON jobs (queued_at, id) WHERE status = 'queued';
DROP INDEX jobs_claimable;
