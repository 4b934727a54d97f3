//! [`MetricsStore`] for PostgreSQL: the shared aggregate statements of
//! [`crate::store::metrics`], and the trigger lateness read with PostgreSQL's JSON operators.

use crate::store::error::Error;
use crate::store::metrics::{
    self, JOB_DURATION_BUCKETS, JOB_DURATIONS_SQL, JOBS_FINISHED_SQL, JobCount, MetricsSnapshot,
    MetricsStore, QUEUES_SQL, RUNS_FINISHED_SQL, RunCount, TriggerLateness, WORKERS_SQL,
};

use super::tx::Tx;
use super::{PgStore, to_ms};

/// The last fire of each time trigger: `(workflow, trigger index, run created_at,
/// scheduled_for)`; the SQLite statement with PostgreSQL's JSON operators (see there).
const TRIGGER_LATENESS_SQL: &str = "
    SELECT t.workflow, t.idx, r.created_at, r.trigger::jsonb ->> 'scheduled_for'
    FROM (SELECT DISTINCT workflow, split_part(trigger_key, ':', 1) AS idx
          FROM trigger_state WHERE last_fire IS NOT NULL) AS t
    JOIN runs AS r ON r.id = (
        SELECT f.id FROM runs AS f
        WHERE f.workflow = t.workflow
          AND f.trigger::jsonb ->> 'trigger' = t.idx
          AND f.trigger::jsonb ->> 'scheduled_for' IS NOT NULL
        ORDER BY f.id DESC LIMIT 1)";

impl MetricsStore for PgStore {
    fn metrics_snapshot(&self) -> Result<MetricsSnapshot, Error> {
        let now = to_ms(self.now());
        self.read(|tx| snapshot(tx, now)).map(metrics::sorted)
    }
}

/// Every figure, read in `tx`; queue ages against `now` (ms).
fn snapshot(tx: &mut Tx<'_>, now: i64) -> Result<MetricsSnapshot, Error> {
    let mut runs_finished = Vec::new();
    for row in tx.query(RUNS_FINISHED_SQL, &[])? {
        runs_finished.push(RunCount {
            workflow: row.try_get(0)?,
            status: row.try_get(1)?,
            count: metrics::count(row.try_get(2)?),
        });
    }

    let mut jobs_finished = Vec::new();
    for row in tx.query(JOBS_FINISHED_SQL, &[])? {
        jobs_finished.push(JobCount {
            workflow: row.try_get(0)?,
            queue: row.try_get(1)?,
            status: row.try_get(2)?,
            count: metrics::count(row.try_get(3)?),
        });
    }

    let buckets = JOB_DURATION_BUCKETS.len();
    let mut job_durations = Vec::new();
    for row in tx.query(&*JOB_DURATIONS_SQL, &[])? {
        let cumulative = (0..buckets)
            .map(|i| row.try_get::<_, i64>(2 + i))
            .collect::<Result<Vec<_>, _>>()?;
        job_durations.push(metrics::job_durations(
            row.try_get(0)?,
            row.try_get(1)?,
            &cumulative,
            row.try_get(2 + buckets)?,
            row.try_get(3 + buckets)?,
        ));
    }

    let mut queues = Vec::new();
    for row in tx.query(QUEUES_SQL, &[])? {
        queues.push(metrics::queue_gauge(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            now,
        ));
    }

    let mut workers: Vec<(String, i64)> = Vec::new();
    for row in tx.query(WORKERS_SQL, &[])? {
        workers.push((row.try_get(0)?, row.try_get(1)?));
    }

    let mut trigger_lateness: Vec<TriggerLateness> = Vec::new();
    for row in tx.query(TRIGGER_LATENESS_SQL, &[])? {
        let Some(scheduled) = row.try_get::<_, Option<String>>(3)? else {
            continue;
        };
        trigger_lateness.extend(metrics::trigger_lateness(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            &scheduled,
        ));
    }

    Ok(MetricsSnapshot {
        runs_finished,
        jobs_finished,
        job_durations,
        queues,
        workers: metrics::worker_counts(&workers),
        trigger_lateness,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::super::test_support::store;
    use crate::clock::ManualClock;
    use crate::store::metrics::conformance;

    #[test]
    fn metrics_count_bucket_and_age_by_the_store_clock() {
        let clock = ManualClock::new(Utc::now());
        let store = store().with_clock(Arc::new(clock.clone()));
        conformance::figures(&store, &clock);
    }

    #[test]
    fn metrics_trigger_lateness_is_the_last_fire_of_each_time_trigger() {
        conformance::trigger_lateness(&store());
    }
}
