-- CoreFlow PostgreSQL schema 3: idle workers are woken by NOTIFY when work may have become
-- claimable — a job queued (created queued, released by its needs, re-queued after a lost
-- lease or for a retry), a running job of a queue with a concurrency limit ending (a slot
-- freed), a queue resumed or its limit changed. The channel is the environment's own
-- (`coreflow_` and the md5 of the schema: environments share a database, channel names are
-- the database's), and notifications are sent at commit, one per transaction and channel.
CREATE FUNCTION coreflow_work_ready() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('coreflow_' || md5(current_schema()), '');
    RETURN NULL;
END
$$;

-- A running job ended: only a queue with a limit has a slot to give.
CREATE FUNCTION coreflow_slot_freed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM queues WHERE name = NEW.queue AND concurrency IS NOT NULL) THEN
        PERFORM pg_notify('coreflow_' || md5(current_schema()), '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_queued AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION coreflow_work_ready();
CREATE TRIGGER jobs_released AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status <> 'queued')
    EXECUTE FUNCTION coreflow_work_ready();
CREATE TRIGGER jobs_slot_freed AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION coreflow_slot_freed();
CREATE TRIGGER queues_changed AFTER UPDATE ON queues
    FOR EACH ROW WHEN (OLD.paused IS DISTINCT FROM NEW.paused
                       OR OLD.concurrency IS DISTINCT FROM NEW.concurrency)
    EXECUTE FUNCTION coreflow_work_ready();
