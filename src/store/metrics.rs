//! [`MetricsStore`]: the figures `GET /metrics` exposes, read from the store at each scrape
//! as one [`MetricsSnapshot`] — aggregates over the whole history, computed by the database
//! (`GROUP BY`, `sum(CASE …)`) in one read transaction, never by walking rows in Rust.
//!
//! Both stores run the statements below as they are; only the trigger lateness, which reads
//! the runs' JSON trigger records, is written per dialect.

use std::sync::LazyLock;

use chrono::DateTime;

use super::error::Error;

/// The upper bounds, in seconds, of the buckets of [`JobDurations`] (the last bucket,
/// `+Inf`, is every job: [`JobDurations::count`]).
pub const JOB_DURATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// The worker states counted, in this order: the live ones
/// ([`crate::store::WorkerRecord::is_live`]).
pub const LIVE_WORKER_STATES: [&str; 3] = ["idle", "busy", "stopping"];

/// Runs of a workflow that ended in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCount {
    pub workflow: String,
    /// `succeeded`, `failed`, `cancelled` or `skipped`.
    pub status: String,
    pub count: u64,
}

/// Jobs of a workflow's runs, in one queue, that ended in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub workflow: String,
    pub queue: String,
    /// `succeeded`, `failed`, `timed_out`, `cancelled` or `skipped`.
    pub status: String,
    pub count: u64,
}

/// How long the ended jobs of a workflow in one queue took — from their first start to
/// their end, retries included; jobs that never started (skipped, cancelled while waiting)
/// have no duration and are not counted — as a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDurations {
    pub workflow: String,
    pub queue: String,
    /// `(upper bound in seconds, jobs that took at most that long)`, one per
    /// [`JOB_DURATION_BUCKETS`], in that order: counts are cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// The durations added up, in seconds.
    pub sum_seconds: f64,
    /// How many jobs (the `+Inf` bucket).
    pub count: u64,
}

/// A queue's waiting jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueGauge {
    pub queue: String,
    /// Jobs `queued` in it (retry delays included).
    pub depth: u64,
    /// How long, in seconds, the job queued longest ago has waited (0 when none).
    pub oldest_wait_seconds: f64,
}

/// Live workers in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCount {
    /// One of [`LIVE_WORKER_STATES`].
    pub state: String,
    pub count: u64,
}

/// How late a time trigger's last fire was.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerLateness {
    pub workflow: String,
    /// The trigger's place in the workflow's `triggers:` list (`0`, `1`, …), as the run's
    /// trigger record and the daemon's logs name it.
    pub trigger: String,
    /// Seconds from the instant it fired for (`scheduled_for`) to the creation of its run;
    /// a fire that waited for a run slot (`on_overlap: queue`) counts its wait. Negative
    /// only when the daemon's clock was behind the one that scheduled it.
    pub seconds: f64,
}

/// What `GET /metrics` shows, read in one transaction. Every list is sorted by its labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Runs that ended, by workflow and state.
    pub runs_finished: Vec<RunCount>,
    /// Jobs that ended, by workflow, queue and state.
    pub jobs_finished: Vec<JobCount>,
    /// Durations of ended jobs, by workflow and queue.
    pub job_durations: Vec<JobDurations>,
    /// Every queue (also empty ones), with its waiting jobs.
    pub queues: Vec<QueueGauge>,
    /// Live workers by state: one entry per [`LIVE_WORKER_STATES`], 0 included.
    pub workers: Vec<WorkerCount>,
    /// Time triggers that fired, with the lateness of their last fire.
    pub trigger_lateness: Vec<TriggerLateness>,
}

/// The figures of an environment for monitoring.
pub trait MetricsStore {
    /// Reads every figure of [`MetricsSnapshot`] in one read transaction; ages are taken
    /// against the store's clock.
    ///
    /// # Errors
    /// The database cannot be read.
    fn metrics_snapshot(&self) -> Result<MetricsSnapshot, Error>;
}

/// Runs that ended: `(workflow, status, count)`.
pub(crate) const RUNS_FINISHED_SQL: &str = "
    SELECT workflow, status, count(*) FROM runs
    WHERE status IN ('succeeded', 'failed', 'cancelled', 'skipped')
    GROUP BY workflow, status";

/// Jobs that ended: `(workflow, queue, status, count)`.
pub(crate) const JOBS_FINISHED_SQL: &str = "
    SELECT r.workflow, j.queue, j.status, count(*)
    FROM jobs AS j JOIN runs AS r ON r.id = j.run_id
    WHERE j.status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
    GROUP BY r.workflow, j.queue, j.status";

/// Durations of ended jobs: `(workflow, queue, one cumulative count per
/// [`JOB_DURATION_BUCKETS`], sum in ms, count)`.
pub(crate) static JOB_DURATIONS_SQL: LazyLock<String> = LazyLock::new(|| {
    let buckets: Vec<String> = JOB_DURATION_BUCKETS
        .iter()
        .map(|bound| {
            format!(
                "sum(CASE WHEN j.duration_ms <= {} THEN 1 ELSE 0 END)",
                bound_ms(*bound)
            )
        })
        .collect();
    format!(
        "SELECT r.workflow, j.queue, {}, CAST(sum(j.duration_ms) AS BIGINT), count(*)
         FROM jobs AS j JOIN runs AS r ON r.id = j.run_id
         WHERE j.status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'skipped')
           AND j.duration_ms IS NOT NULL
         GROUP BY r.workflow, j.queue",
        buckets.join(", ")
    )
});

/// Every queue, with its queued jobs: `(queue, depth, oldest queued_at or NULL)`. A queue
/// that jobs name is in `queues` (created on first use); the union keeps one that was not.
pub(crate) const QUEUES_SQL: &str = "
    SELECT q.name, count(j.id), min(j.queued_at)
    FROM (SELECT name FROM queues
          UNION SELECT queue FROM jobs WHERE status = 'queued') AS q
    LEFT JOIN jobs AS j ON j.queue = q.name AND j.status = 'queued'
    GROUP BY q.name";

/// Live workers by state: `(state, count)`.
pub(crate) const WORKERS_SQL: &str = "
    SELECT state, count(*) FROM workers
    WHERE state IN ('idle', 'busy', 'stopping')
    GROUP BY state";

/// A bucket bound in whole milliseconds, as `duration_ms` is stored.
fn bound_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// A count as SQL returns it.
pub(crate) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The histogram of one `(workflow, queue)` from a row of [`JOB_DURATIONS_SQL`]: the
/// cumulative counts in bucket order, the sum in milliseconds and the count.
pub(crate) fn job_durations(
    workflow: String,
    queue: String,
    cumulative: &[i64],
    sum_ms: i64,
    total: i64,
) -> JobDurations {
    JobDurations {
        workflow,
        queue,
        buckets: JOB_DURATION_BUCKETS
            .iter()
            .zip(cumulative)
            .map(|(bound, n)| (*bound, count(*n)))
            .collect(),
        sum_seconds: seconds(sum_ms),
        count: count(total),
    }
}

/// A queue's gauge from a row of [`QUEUES_SQL`], its age taken at `now_ms`.
pub(crate) fn queue_gauge(
    queue: String,
    depth: i64,
    oldest_queued_ms: Option<i64>,
    now_ms: i64,
) -> QueueGauge {
    QueueGauge {
        queue,
        depth: count(depth),
        oldest_wait_seconds: oldest_queued_ms.map_or(0.0, |at| seconds((now_ms - at).max(0))),
    }
}

/// One entry per [`LIVE_WORKER_STATES`] from the rows of [`WORKERS_SQL`].
pub(crate) fn worker_counts(rows: &[(String, i64)]) -> Vec<WorkerCount> {
    LIVE_WORKER_STATES
        .iter()
        .map(|state| WorkerCount {
            state: (*state).to_owned(),
            count: rows
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| count(*n)),
        })
        .collect()
}

/// A trigger's lateness from its last run's creation time and the `scheduled_for` of its
/// trigger record (RFC 3339); `None` when that does not parse.
pub(crate) fn trigger_lateness(
    workflow: String,
    trigger: String,
    created_ms: i64,
    scheduled_for: &str,
) -> Option<TriggerLateness> {
    let scheduled = DateTime::parse_from_rfc3339(scheduled_for).ok()?;
    Some(TriggerLateness {
        workflow,
        trigger,
        seconds: seconds(created_ms - scheduled.timestamp_millis()),
    })
}

/// Milliseconds as seconds.
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Sorts every list of the snapshot by its labels (byte order), whatever order the
/// database grouped in, so that both stores give the same snapshot.
pub(crate) fn sorted(mut snapshot: MetricsSnapshot) -> MetricsSnapshot {
    snapshot
        .runs_finished
        .sort_by(|a, b| (&a.workflow, &a.status).cmp(&(&b.workflow, &b.status)));
    snapshot.jobs_finished.sort_by(|a, b| {
        (&a.workflow, &a.queue, &a.status).cmp(&(&b.workflow, &b.queue, &b.status))
    });
    snapshot
        .job_durations
        .sort_by(|a, b| (&a.workflow, &a.queue).cmp(&(&b.workflow, &b.queue)));
    snapshot.queues.sort_by(|a, b| a.queue.cmp(&b.queue));
    snapshot.trigger_lateness.sort_by(|a, b| {
        let index = |t: &TriggerLateness| (t.trigger.len(), t.trigger.clone());
        (&a.workflow, index(a)).cmp(&(&b.workflow, index(b)))
    });
    snapshot
}

/// Checks every store must pass, run by each store's tests.
#[cfg(test)]
pub(crate) mod conformance {
    use chrono::{TimeDelta, TimeZone, Utc};
    use serde_json::json;

    use super::{JobCount, MetricsStore, QueueGauge, RunCount, TriggerLateness, WorkerCount};
    use crate::clock::ManualClock;
    use crate::state::{JobState, RunState};
    use crate::store::test_support::{job, run};
    use crate::store::{Change, NewJob, RunStore, RunTransition, Transition, WorkerStore};

    fn in_queue(name: &str, queue: &str, state: JobState) -> NewJob {
        let mut job = job(name, &[], state);
        job.queue = queue.to_owned();
        job
    }

    /// Runs and jobs ended at known times are counted, bucketed and aged by the store's
    /// clock; `clock` is the store's.
    pub(crate) fn figures<S: MetricsStore + RunStore + WorkerStore>(
        store: &S,
        clock: &ManualClock,
    ) {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        clock.set(t0);
        let empty = store.metrics_snapshot().expect("snapshot");
        assert!(empty.runs_finished.is_empty());
        assert!(empty.job_durations.is_empty());
        assert_eq!(
            empty.workers,
            ["idle", "busy", "stopping"]
                .map(|state| WorkerCount {
                    state: state.to_owned(),
                    count: 0
                })
                .to_vec()
        );
        assert_eq!(
            empty.queues,
            vec![QueueGauge {
                queue: "default".into(),
                depth: 0,
                oldest_wait_seconds: 0.0
            }]
        );

        // Run 1 of `etl`: `a` runs 2 s and succeeds, `b` runs 90 s and fails, `c` is
        // skipped without starting; the run fails.
        let mut first = run(
            "etl",
            vec![
                in_queue("a", "default", JobState::Queued),
                in_queue("b", "heavy", JobState::Queued),
                in_queue("c", "default", JobState::Pending),
            ],
        );
        first.created_at = t0;
        let (run1, jobs) = store.create_run(&first).expect("create");
        let at = |seconds: i64| t0 + TimeDelta::seconds(seconds);
        let step = |job, to, seconds| Change::Job(Transition::new(job, to, at(seconds)));
        store
            .apply(&[
                step(jobs[0], JobState::Running, 0),
                step(jobs[1], JobState::Running, 10),
                step(jobs[0], JobState::Succeeded, 2),
                step(jobs[1], JobState::Failed, 100),
                step(jobs[2], JobState::Skipped, 100),
                Change::Run(RunTransition {
                    run: run1,
                    to: RunState::Failed,
                    at: at(100),
                    reason: None,
                }),
            ])
            .expect("finish run 1");

        // Run 2 of `etl`: `a` runs 0.5 s and succeeds, `d` waits in `heavy` since 200 s.
        let mut second = run(
            "etl",
            vec![
                in_queue("a", "default", JobState::Queued),
                in_queue("d", "heavy", JobState::Queued),
            ],
        );
        second.created_at = at(200);
        clock.set(at(200));
        let (_, jobs2) = store.create_run(&second).expect("create");
        store
            .apply(&[
                step(jobs2[0], JobState::Running, 200),
                Change::Job(Transition::new(
                    jobs2[0],
                    JobState::Succeeded,
                    at(200) + TimeDelta::milliseconds(500),
                )),
            ])
            .expect("finish a");

        // A run of `report` that succeeded with no jobs, and a skipped one.
        for status in [RunState::Succeeded, RunState::Skipped] {
            let mut other = run("report", Vec::new());
            other.status = status;
            other.owner = None;
            store.create_run(&other).expect("create report run");
        }

        // Workers: one idle, one busy, one stopped (not live).
        let idle = store.register_worker("w1", &[]).expect("register");
        let busy = store.register_worker("w2", &[]).expect("register");
        let gone = store.register_worker("w3", &[]).expect("register");
        let lease = std::time::Duration::from_secs(30);
        for (worker, state) in [(idle, "idle"), (busy, "busy"), (gone, "stopped")] {
            store
                .heartbeat(worker, state, None, lease)
                .expect("heartbeat");
        }

        clock.set(at(230));
        let snapshot = store.metrics_snapshot().expect("snapshot");

        let runs = |workflow: &str, status: &str, count| RunCount {
            workflow: workflow.into(),
            status: status.into(),
            count,
        };
        assert_eq!(
            snapshot.runs_finished,
            vec![
                runs("etl", "failed", 1),
                runs("report", "skipped", 1),
                runs("report", "succeeded", 1),
            ]
        );
        let jobs = |queue: &str, status: &str, count| JobCount {
            workflow: "etl".into(),
            queue: queue.into(),
            status: status.into(),
            count,
        };
        assert_eq!(
            snapshot.jobs_finished,
            vec![
                jobs("default", "skipped", 1),
                jobs("default", "succeeded", 2),
                jobs("heavy", "failed", 1),
            ]
        );

        assert_eq!(snapshot.job_durations.len(), 2);
        let default = &snapshot.job_durations[0];
        assert_eq!(
            (default.workflow.as_str(), default.queue.as_str()),
            ("etl", "default")
        );
        // 0.5 s and 2 s; the skipped job never ran.
        assert_eq!(default.count, 2);
        assert!((default.sum_seconds - 2.5).abs() < 1e-9);
        assert_eq!(default.buckets[0], (1.0, 1));
        assert_eq!(default.buckets[1], (5.0, 2));
        assert_eq!(default.buckets.last(), Some(&(21600.0, 2)));
        let heavy = &snapshot.job_durations[1];
        assert_eq!(heavy.queue, "heavy");
        assert_eq!(heavy.count, 1);
        assert!((heavy.sum_seconds - 90.0).abs() < 1e-9);
        let counts: Vec<u64> = heavy.buckets.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);

        // `d` was queued at 200 s: 30 s ago by the store's clock.
        let queue = |queue: &str, depth, wait| QueueGauge {
            queue: queue.into(),
            depth,
            oldest_wait_seconds: wait,
        };
        assert_eq!(
            snapshot.queues,
            vec![queue("default", 0, 0.0), queue("heavy", 1, 30.0)]
        );

        let workers = |state: &str, count| WorkerCount {
            state: state.into(),
            count,
        };
        assert_eq!(
            snapshot.workers,
            vec![
                workers("idle", 1),
                workers("busy", 1),
                workers("stopping", 0)
            ]
        );
        assert!(snapshot.trigger_lateness.is_empty());
    }

    /// The lateness of a time trigger's last fire: its run's creation against the instant
    /// in its trigger record.
    pub(crate) fn trigger_lateness<S: MetricsStore + RunStore + crate::store::TriggerStore>(
        store: &S,
    ) {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let fire = |index: usize, scheduled: chrono::DateTime<Utc>, late_ms: i64| {
            let mut new = run("nightly", Vec::new());
            new.trigger = json!({
                "type": "schedule",
                "trigger": index,
                "spec": "0 * * * * (UTC)",
                "scheduled_for": scheduled.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            });
            new.status = RunState::Succeeded;
            new.owner = None;
            new.created_at = scheduled + TimeDelta::milliseconds(late_ms);
            store.create_run(&new).expect("create fired run");
            store
                .set_last_fire("nightly", &format!("{index}:{{}}"), scheduled)
                .expect("last fire");
        };
        for index in [0, 1] {
            store
                .trigger_state("nightly", &format!("{index}:{{}}"), t0)
                .expect("state");
        }
        // A trigger key from before an edit of trigger 0, and an event trigger: neither adds
        // a series.
        store
            .trigger_state("nightly", "0:{\"old\":1}", t0)
            .expect("state");
        store.set_last_fire("nightly", "0:{\"old\":1}", t0).unwrap();
        store.trigger_state("nightly", "2:{}", t0).expect("state");
        store.set_cursor("nightly", "2:{}", 5).expect("cursor");

        fire(0, t0, 4000);
        fire(0, t0 + TimeDelta::hours(1), 1500);
        fire(1, t0, 250);
        // A manual run comes after: it is no fire.
        store.create_run(&run("nightly", Vec::new())).unwrap();

        let snapshot = store.metrics_snapshot().expect("snapshot");
        assert_eq!(
            snapshot.trigger_lateness,
            vec![
                TriggerLateness {
                    workflow: "nightly".into(),
                    trigger: "0".into(),
                    seconds: 1.5
                },
                TriggerLateness {
                    workflow: "nightly".into(),
                    trigger: "1".into(),
                    seconds: 0.25
                },
            ]
        );
    }
}
