//! [`MetricsStore`] for SQLite: the shared aggregate statements of
//! [`crate::store::metrics`], and the trigger lateness read with SQLite's JSON functions.

use rusqlite::Transaction;

use crate::store::error::Error;
use crate::store::metrics::{
    self, JOB_DURATION_BUCKETS, JOB_DURATIONS_SQL, JOBS_FINISHED_SQL, JobCount, MetricsSnapshot,
    MetricsStore, QUEUES_SQL, RUNS_FINISHED_SQL, RunCount, TriggerLateness, WORKERS_SQL,
};

use super::{SqliteStore, to_ms};

/// The last fire of each time trigger: `(workflow, trigger index, run created_at,
/// scheduled_for)`. A time trigger that fired has a `last_fire`; its key is
/// `index:definition`, and keys left by edits of one trigger share its index. Its last fire
/// is the newest run of the workflow whose trigger record has that index and a
/// `scheduled_for` (found from the newest run down, by `runs_by_workflow`).
const TRIGGER_LATENESS_SQL: &str = "
    SELECT t.workflow, t.idx, r.created_at, json_extract(r.trigger, '$.scheduled_for')
    FROM (SELECT DISTINCT workflow,
                 substr(trigger_key, 1, instr(trigger_key, ':') - 1) AS idx
          FROM trigger_state WHERE last_fire IS NOT NULL) AS t
    JOIN runs AS r ON r.id = (
        SELECT f.id FROM runs AS f
        WHERE f.workflow = t.workflow
          AND CAST(json_extract(f.trigger, '$.trigger') AS TEXT) = t.idx
          AND json_extract(f.trigger, '$.scheduled_for') IS NOT NULL
        ORDER BY f.id DESC LIMIT 1)";

impl MetricsStore for SqliteStore {
    fn metrics_snapshot(&self) -> Result<MetricsSnapshot, Error> {
        let now = to_ms(self.now());
        self.read(|tx| snapshot(tx, now)).map(metrics::sorted)
    }
}

/// Every figure, read in `tx`; queue ages against `now` (ms).
fn snapshot(tx: &Transaction<'_>, now: i64) -> Result<MetricsSnapshot, Error> {
    let runs_finished = tx
        .prepare_cached(RUNS_FINISHED_SQL)?
        .query_map([], |row| {
            Ok(RunCount {
                workflow: row.get(0)?,
                status: row.get(1)?,
                count: metrics::count(row.get(2)?),
            })
        })?
        .collect::<Result<_, _>>()?;

    let jobs_finished = tx
        .prepare_cached(JOBS_FINISHED_SQL)?
        .query_map([], |row| {
            Ok(JobCount {
                workflow: row.get(0)?,
                queue: row.get(1)?,
                status: row.get(2)?,
                count: metrics::count(row.get(3)?),
            })
        })?
        .collect::<Result<_, _>>()?;

    let buckets = JOB_DURATION_BUCKETS.len();
    let job_durations = tx
        .prepare_cached(&JOB_DURATIONS_SQL)?
        .query_map([], |row| {
            let cumulative = (0..buckets)
                .map(|i| row.get::<_, i64>(2 + i))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(metrics::job_durations(
                row.get(0)?,
                row.get(1)?,
                &cumulative,
                row.get(2 + buckets)?,
                row.get(3 + buckets)?,
            ))
        })?
        .collect::<Result<_, _>>()?;

    let queues = tx
        .prepare_cached(QUEUES_SQL)?
        .query_map([], |row| {
            Ok(metrics::queue_gauge(
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                now,
            ))
        })?
        .collect::<Result<_, _>>()?;

    let workers: Vec<(String, i64)> = tx
        .prepare_cached(WORKERS_SQL)?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;

    let fires: Vec<(String, String, i64, Option<String>)> = tx
        .prepare_cached(TRIGGER_LATENESS_SQL)?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let trigger_lateness: Vec<TriggerLateness> = fires
        .into_iter()
        .filter_map(|(workflow, trigger, created, scheduled)| {
            metrics::trigger_lateness(workflow, trigger, created, scheduled.as_deref()?)
        })
        .collect();

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
        let (_dir, store) = store();
        let clock = ManualClock::new(Utc::now());
        let store = store.with_clock(Arc::new(clock.clone()));
        conformance::figures(&store, &clock);
    }

    #[test]
    fn metrics_trigger_lateness_is_the_last_fire_of_each_time_trigger() {
        let (_dir, store) = store();
        conformance::trigger_lateness(&store);
    }
}
