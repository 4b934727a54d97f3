//! Write verbs of [`super::PgStore`]; each runs inside the caller's write transaction (after
//! the environment's write lock), so a failure anywhere leaves the database as it was.

use super::tx::Tx;
use chrono::{DateTime, Utc};

use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::owner::Owner;
use crate::store::runs::{Change, NewDefinition, NewRun, RunTransition, StepRecord, Transition};

use super::read::{get_fit, get_state};
use super::{to_ms, to_sql_u64};

/// What an attempt's `log_path` holds: its log lives in the `log_chunks` rows of
/// `(job, attempt)`, not in a file as in the SQLite store.
pub(super) fn log_path(job: JobId, attempt: u32) -> String {
    format!("db:{job}-{attempt}")
}

pub(super) fn save_definition(
    tx: &mut Tx<'_>,
    definition: &NewDefinition<'_>,
) -> Result<(), Error> {
    let seen = to_ms(definition.seen_at);
    tx.execute(
        "INSERT INTO definitions (name, hash, yaml, source_path, first_seen, last_seen, seen_seq)
         VALUES ($1, $2, $3, $4, $5, $5,
                 (SELECT coalesce(max(seen_seq), 0) + 1 FROM definitions))
         ON CONFLICT (name, hash) DO UPDATE SET
             source_path = excluded.source_path,
             last_seen = excluded.last_seen,
             seen_seq = excluded.seen_seq",
        &[
            &definition.name,
            &definition.hash,
            &definition.yaml,
            &definition.source_path,
            &seen,
        ],
    )?;
    Ok(())
}

pub(super) fn create_run(tx: &mut Tx<'_>, run: &NewRun) -> Result<(RunId, Vec<JobId>), Error> {
    if let Some(fire) = &run.fire {
        super::triggers::claim_fire(tx, fire)?;
    }
    let created = to_ms(run.created_at);
    let started = (run.status == RunState::Running).then_some(created);
    let finished = run.status.is_terminal().then_some(created);
    let owner = run.owner.as_ref();
    let run_id = RunId(
        tx.query_one(
            "INSERT INTO runs (workflow, def_hash, status, reason, params, trigger, created_at,
                               started_at, finished_at, owner_pid, owner_start, owner_host,
                               parent_run, parent_job, notify_state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING id",
            &[
                &run.workflow,
                &run.def_hash,
                &run.status.as_str(),
                &run.reason,
                &serde_json::to_string(&run.params)?,
                &serde_json::to_string(&run.trigger)?,
                &created,
                &started,
                &finished,
                &owner.map(|owner| i64::from(owner.pid)),
                &owner.map(|owner| to_sql_u64(owner.start_time)),
                &owner.map(|owner| owner.host.as_str()),
                &run.parent.map(|parent| parent.run.0),
                &run.parent.map(|parent| parent.job.0),
                &run.notify.then_some("pending"),
            ],
        )?
        .try_get(0)?,
    );

    let ids = insert_jobs(tx, run_id, &run.jobs, created)?;
    Ok((run_id, ids))
}

/// Inserts `jobs` into run `run_id`, creating the queues they name.
pub(super) fn insert_jobs(
    tx: &mut Tx<'_>,
    run_id: RunId,
    jobs: &[crate::store::NewJob],
    created: i64,
) -> Result<Vec<JobId>, Error> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let insert = tx.prepare(
        "INSERT INTO jobs (run_id, name, base_name, matrix, queue, priority, metadata, needs,
                           status, max_attempts, queued_at, finished_at, runs_on, item,
                           continue_on_error, cpu_milli, memory)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         RETURNING id",
    )?;
    // SPEC §7: a queue named by a job that does not exist yet is created on first use,
    // without a limit.
    let add_queue = tx.prepare(
        "INSERT INTO queues (name, concurrency, paused, created_at) VALUES ($1, NULL, 0, $2)
         ON CONFLICT (name) DO NOTHING",
    )?;
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        let state = job.state;
        if !matches!(
            state,
            JobState::Pending | JobState::Queued | JobState::Skipped | JobState::Cancelled
        ) {
            return Err(Error::IllegalTransition {
                job: JobId(0),
                name: job.name.clone(),
                from: JobState::Pending,
                to: state,
            });
        }
        let matrix = match &job.matrix {
            serde_json::Value::Null => None,
            matrix => Some(serde_json::to_string(matrix)?),
        };
        let id: i64 = tx
            .query_one(
                &insert,
                &[
                    &run_id.0,
                    &job.name,
                    &job.base_name,
                    &matrix,
                    &job.queue,
                    &job.priority,
                    &serde_json::to_string(&job.metadata)?,
                    &serde_json::to_string(&job.needs)?,
                    &state.as_str(),
                    &i64::from(job.max_attempts),
                    &(state == JobState::Queued).then_some(created),
                    &state.is_terminal().then_some(created),
                    &serde_json::to_string(&job.runs_on)?,
                    &(!job.item.is_null())
                        .then(|| serde_json::to_string(&job.item))
                        .transpose()?,
                    &i64::from(job.continue_on_error),
                    &job.request.cpu_milli(),
                    &job.request.memory_i64(),
                ],
            )?
            .try_get(0)?;
        ids.push(JobId(id));
        tx.execute(&add_queue, &[&job.queue, &created])?;
    }
    Ok(ids)
}

pub(super) fn apply(tx: &mut Tx<'_>, changes: &[Change]) -> Result<(), Error> {
    for change in changes {
        match change {
            Change::Job(transition) => transition_job(tx, transition)?,
            Change::Usage {
                job,
                peak_rss_bytes,
                cpu_ms,
            } => {
                let (peak, cpu) = (to_sql_u64(*peak_rss_bytes), to_sql_u64(*cpu_ms));
                // A late measurement of a job that already stopped is dropped.
                tx.execute(
                    "UPDATE jobs SET peak_rss_bytes = $2, cpu_ms = $3
                     WHERE id = $1 AND status = 'running'",
                    &[&job.0, &peak, &cpu],
                )?;
                tx.execute(
                    "UPDATE attempts SET peak_rss_bytes = $2, cpu_ms = $3
                     WHERE job_id = $1 AND status = 'running'
                       AND number = (SELECT attempts FROM jobs WHERE id = $1)",
                    &[&job.0, &peak, &cpu],
                )?;
            }
            Change::Step(step) => record_step(tx, step)?,
            Change::Output { job, key, value } => {
                tx.execute(
                    "INSERT INTO outputs (job_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value",
                    &[&job.0, key, value],
                )?;
            }
            Change::Run(transition) => transition_run(tx, transition)?,
            Change::LogClosed {
                job,
                attempt,
                summary,
            } => {
                tx.execute(
                    "UPDATE attempts SET log_bytes = $3, log_lines = $4
                     WHERE job_id = $1 AND number = $2",
                    &[
                        &job.0,
                        &i64::from(*attempt),
                        &to_sql_u64(summary.bytes),
                        &to_sql_u64(summary.lines),
                    ],
                )?;
            }
            Change::Priority { job, priority } => {
                let updated = tx.execute(
                    "UPDATE jobs SET priority = $2 WHERE id = $1",
                    &[&job.0, priority],
                )?;
                if updated == 0 {
                    return Err(Error::JobNotFound(*job));
                }
            }
        }
    }
    Ok(())
}

/// Moves a job to a new state, starting or finishing its attempt; see [`Transition`].
pub(super) fn transition_job(tx: &mut Tx<'_>, transition: &Transition) -> Result<(), Error> {
    let job = transition.job;
    let row = tx
        .query_opt(
            "SELECT name, status, attempts FROM jobs WHERE id = $1",
            &[&job.0],
        )?
        .ok_or(Error::JobNotFound(job))?;
    let name: String = row.try_get(0)?;
    let from: JobState = get_state(&row, 1)?;
    let attempts: u32 = get_fit(&row, 2)?;
    let to = transition.to;
    if !from.can_become(to) {
        return Err(Error::IllegalTransition {
            job,
            name,
            from,
            to,
        });
    }
    let at = to_ms(transition.at);
    let peak = transition.peak_rss_bytes.map(to_sql_u64);
    let cpu = transition.cpu_ms.map(to_sql_u64);
    let exit_code = transition.exit_code.map(i64::from);

    if to == JobState::Running {
        let attempt = NewAttempt {
            job,
            number: attempts + 1,
            at,
            reason: transition.reason.as_deref(),
            kill_token: transition.kill_token.as_deref(),
        };
        return start_attempt(tx, &attempt, None);
    }

    let terminal = to.is_terminal();
    let was_running = from == JobState::Running;
    // A job re-queued from `running` (lost worker, shutdown) ends its attempt as failed.
    let attempt_status = if terminal {
        to
    } else {
        transition.attempt_end.unwrap_or(JobState::Failed)
    };
    // One statement: the attempt of a running job ends with the job's change.
    tx.execute(
        "WITH attempt AS (
             UPDATE attempts SET status = $10, reason = $3, exit_code = $5, finished_at = $8,
                 duration_ms = greatest(0, $8 - started_at),
                 peak_rss_bytes = coalesce($6, peak_rss_bytes), cpu_ms = coalesce($7, cpu_ms)
             WHERE job_id = $1 AND number = $11 AND $4
         )
         UPDATE jobs SET
             status = $2,
             reason = $3,
             exit_code = CASE WHEN $4 THEN $5 ELSE coalesce($5, exit_code) END,
             peak_rss_bytes = coalesce($6, peak_rss_bytes),
             cpu_ms = coalesce($7, cpu_ms),
             kill_token = CASE WHEN $4 THEN NULL ELSE kill_token END,
             queued_at = CASE WHEN $2 = 'queued' THEN $8 ELSE queued_at END,
             finished_at = CASE WHEN $9 THEN $8 ELSE NULL END,
             duration_ms = CASE WHEN $9 AND started_at IS NOT NULL
                                THEN greatest(0, $8 - started_at) ELSE NULL END
         WHERE id = $1",
        &[
            &job.0,
            &to.as_str(),
            &transition.reason,
            &was_running,
            &exit_code,
            &peak,
            &cpu,
            &at,
            &terminal,
            &attempt_status.as_str(),
            &i64::from(attempts),
        ],
    )?;
    Ok(())
}

/// An attempt a job starts.
pub(super) struct NewAttempt<'a> {
    pub(super) job: JobId,
    /// 1 for the first.
    pub(super) number: u32,
    /// Milliseconds since the epoch.
    pub(super) at: i64,
    pub(super) reason: Option<&'a str>,
    pub(super) kill_token: Option<&'a str>,
}

/// A worker's hold on a job it claimed: the worker and when its lease ends (milliseconds).
pub(super) struct Lease {
    pub(super) worker: i64,
    pub(super) expires: i64,
}

/// Moves a job to `running` with a new attempt (the caller has checked that it may start),
/// held under `lease` when a worker claimed it.
pub(super) fn start_attempt(
    tx: &mut Tx<'_>,
    attempt: &NewAttempt<'_>,
    lease: Option<&Lease>,
) -> Result<(), Error> {
    let job = attempt.job;
    let number = i64::from(attempt.number);
    if attempt.number > 1 {
        // A new attempt runs from the first step: the outputs of the last one are void (a
        // first attempt has none).
        tx.execute("DELETE FROM outputs WHERE job_id = $1", &[&job.0])?;
    }
    // One statement: the attempt's record with the job's change.
    tx.execute(
        "WITH attempt AS (
             INSERT INTO attempts (job_id, number, status, started_at, kill_token, log_path)
             VALUES ($1, $3, 'running', $4, $5, $8)
         )
         UPDATE jobs SET status = 'running', reason = $2, attempts = $3, exit_code = NULL,
             started_at = coalesce(started_at, $4), finished_at = NULL, duration_ms = NULL,
             peak_rss_bytes = NULL, cpu_ms = NULL, kill_token = $5,
             worker_id = CASE WHEN $6::BIGINT IS NULL THEN worker_id ELSE $6 END,
             lease_expires = CASE WHEN $6::BIGINT IS NULL THEN lease_expires ELSE $7 END,
             not_before = CASE WHEN $6::BIGINT IS NULL THEN not_before ELSE NULL END
         WHERE id = $1",
        &[
            &job.0,
            &attempt.reason,
            &number,
            &attempt.at,
            &attempt.kill_token,
            &lease.map(|lease| lease.worker),
            &lease.map(|lease| lease.expires),
            &log_path(job, attempt.number),
        ],
    )?;
    Ok(())
}

fn record_step(tx: &mut Tx<'_>, step: &StepRecord) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO steps (job_id, attempt, idx, name, status, exit_code, started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (job_id, attempt, idx) DO UPDATE SET
             name = excluded.name,
             status = excluded.status,
             exit_code = excluded.exit_code,
             started_at = coalesce(excluded.started_at, steps.started_at),
             finished_at = excluded.finished_at",
        &[
            &step.job.0,
            &i64::from(step.attempt),
            &i64::from(step.index),
            &step.name,
            &step.status.as_str(),
            &step.exit_code.map(i64::from),
            &step.started_at.map(to_ms),
            &step.finished_at.map(to_ms),
        ],
    )?;
    Ok(())
}

pub(super) fn run_status(tx: &mut Tx<'_>, run: RunId) -> Result<RunState, Error> {
    let row = tx
        .query_opt("SELECT status FROM runs WHERE id = $1", &[&run.0])?
        .ok_or(Error::RunNotFound(run))?;
    Ok(get_state(&row, 0)?)
}

pub(super) fn transition_run(tx: &mut Tx<'_>, transition: &RunTransition) -> Result<(), Error> {
    let from = run_status(tx, transition.run)?;
    let to = transition.to;
    if from.is_terminal() {
        return Err(Error::IllegalRunTransition {
            run: transition.run,
            from,
            to,
        });
    }
    tx.execute(
        "UPDATE runs SET
             status = $2,
             reason = $3,
             started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, $4)
                               ELSE started_at END,
             finished_at = CASE WHEN $5 THEN $4 ELSE NULL END
         WHERE id = $1",
        &[
            &transition.run.0,
            &to.as_str(),
            &transition.reason,
            &to_ms(transition.at),
            &to.is_terminal(),
        ],
    )?;
    Ok(())
}

pub(super) fn claim_run(tx: &mut Tx<'_>, run: RunId, owner: &Owner) -> Result<bool, Error> {
    run_status(tx, run)?;
    let changed = tx.execute(
        "UPDATE runs SET owner_pid = $2, owner_start = $3, owner_host = $4
         WHERE id = $1 AND status = 'queued' AND owner_pid IS NULL",
        &[
            &run.0,
            &i64::from(owner.pid),
            &to_sql_u64(owner.start_time),
            &owner.host,
        ],
    )?;
    Ok(changed == 1)
}

/// Ids of `run`'s jobs in one of `states`.
pub(super) fn jobs_in(
    tx: &mut Tx<'_>,
    run: RunId,
    states: &[JobState],
) -> Result<Vec<JobId>, Error> {
    let states: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
    let rows = tx.query(
        "SELECT id FROM jobs WHERE run_id = $1 AND status = ANY($2) ORDER BY id",
        &[&run.0, &states],
    )?;
    Ok(rows
        .iter()
        .map(|row| Ok(JobId(row.try_get(0)?)))
        .collect::<Result<_, postgres::Error>>()?)
}

/// Cancels the jobs of `run` that have not started, with `reason`.
pub(super) fn cancel_waiting_jobs(
    tx: &mut Tx<'_>,
    run: RunId,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    for job in jobs_in(tx, run, &[JobState::Pending, JobState::Queued])? {
        transition_job(
            tx,
            &Transition::new(job, JobState::Cancelled, at).reason(reason),
        )?;
    }
    Ok(())
}

pub(super) fn finish_run(
    tx: &mut Tx<'_>,
    run: RunId,
    to: RunState,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    transition_run(
        tx,
        &RunTransition {
            run,
            to,
            at,
            reason: Some(reason.to_owned()),
        },
    )
}

pub(super) fn has_owner(tx: &mut Tx<'_>, run: RunId) -> Result<bool, Error> {
    let row = tx
        .query_opt("SELECT owner_pid FROM runs WHERE id = $1", &[&run.0])?
        .ok_or(Error::RunNotFound(run))?;
    let owner: Option<i64> = row.try_get(0)?;
    Ok(owner.is_some())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use serde_json::json;

    use super::super::test_support::store;
    use crate::state::{JobId, JobState, RunState};
    use crate::store::error::Error;
    use crate::store::owner::Owner;
    use crate::store::runs::{
        Change, NewDefinition, RunStore, RunTransition, StepRecord, Transition,
    };
    use crate::store::test_support::{dead_owner, job, run};

    #[test]
    fn creates_a_run_with_its_jobs() {
        let store = store();
        let mut report = job("report[format=csv]", &["extract"], JobState::Pending);
        report.matrix = json!({"format": "csv"});
        report.priority = 10;
        let new = run(
            "nightly",
            vec![
                job("extract", &[], JobState::Queued),
                report,
                job("skipped", &[], JobState::Skipped),
            ],
        );
        let (run_id, ids) = store.create_run(&new).unwrap();
        assert_eq!(ids.len(), 3);

        let record = store.run(run_id).unwrap().unwrap();
        assert_eq!(record.status, RunState::Running);
        assert!(record.started_at.is_some());
        assert_eq!(record.owner, Some(Owner::current()));
        assert_eq!(record.params, json!({"date": "2026-01-01"}));

        let jobs = store.jobs(run_id).unwrap();
        let names: Vec<_> = jobs.iter().map(|job| job.name.as_str()).collect();
        assert_eq!(names, ["extract", "report[format=csv]", "skipped"]);
        assert_eq!(jobs[0].status, JobState::Queued);
        assert!(jobs[0].queued_at.is_some());
        assert_eq!(jobs[1].base_name, "report");
        assert_eq!(jobs[1].matrix, json!({"format": "csv"}));
        assert_eq!(jobs[1].needs, ["extract"]);
        assert_eq!(jobs[1].priority, 10);
        assert!(jobs[2].finished_at.is_some());

        let value = serde_json::to_value(&jobs[1]).unwrap();
        for key in [
            "id",
            "name",
            "status",
            "queue",
            "priority",
            "metadata",
            "attempts",
            "exit_code",
            "started_at",
            "finished_at",
            "duration_ms",
            "peak_rss_bytes",
            "cpu_ms",
            "outputs",
            "reason",
        ] {
            assert!(value.get(key).is_some(), "missing {key} in {value}");
        }
        assert_eq!(value["status"], "pending");
        assert_eq!(value["attempts"], 0);

        let mut bad = run("nightly", vec![job("x", &[], JobState::Running)]);
        assert!(store.create_run(&bad).is_err());
        bad.jobs = vec![
            job("x", &[], JobState::Pending),
            job("x", &[], JobState::Pending),
        ];
        assert!(store.create_run(&bad).is_err(), "duplicate job names");
    }

    #[test]
    fn a_batch_records_attempts_steps_outputs_and_figures() {
        let store = store();
        let (run_id, ids) = store
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        let a = ids[0];
        let t0 = Utc::now();
        let t1 = t0 + Duration::milliseconds(1500);
        let step = |status, finished: Option<chrono::DateTime<Utc>>| StepRecord {
            job: a,
            attempt: 1,
            index: 0,
            name: "count".into(),
            status,
            exit_code: finished.map(|_| 0),
            started_at: Some(t0),
            finished_at: finished,
        };
        store
            .apply(&[
                Transition::new(a, JobState::Running, t0)
                    .kill_token("tok-1")
                    .into(),
                Change::Step(step(JobState::Running, None)),
                Change::Usage {
                    job: a,
                    peak_rss_bytes: 100,
                    cpu_ms: 5,
                },
            ])
            .unwrap();
        let running = store.job(a).unwrap().unwrap();
        assert_eq!(running.attempts, 1);
        assert_eq!(running.kill_token.as_deref(), Some("tok-1"));
        assert_eq!(running.peak_rss_bytes, Some(100));
        assert_eq!(running.history[0].steps[0].status, JobState::Running);

        store
            .apply(&[
                Change::Step(step(JobState::Succeeded, Some(t1))),
                Change::Output {
                    job: a,
                    key: "rows".into(),
                    value: "1".into(),
                },
                Change::Output {
                    job: a,
                    key: "rows".into(),
                    value: "2".into(),
                },
                Transition::new(a, JobState::Succeeded, t1)
                    .exit_code(0)
                    .usage(4096, 42)
                    .into(),
                RunTransition {
                    run: run_id,
                    to: RunState::Succeeded,
                    at: t1,
                    reason: None,
                }
                .into(),
            ])
            .unwrap();
        let done = store.job(a).unwrap().unwrap();
        assert_eq!(done.status, JobState::Succeeded);
        assert_eq!(done.exit_code, Some(0));
        assert_eq!(done.duration_ms, Some(1500));
        assert_eq!((done.peak_rss_bytes, done.cpu_ms), (Some(4096), Some(42)));
        assert_eq!(done.kill_token, None);
        assert_eq!(done.outputs["rows"], "2");
        let attempts = store.attempts(a).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status, JobState::Succeeded);
        assert_eq!(attempts[0].duration_ms, Some(1500));
        assert_eq!(attempts[0].kill_token.as_deref(), Some("tok-1"));
        assert_eq!(attempts[0].steps[0].exit_code, Some(0));
        assert_eq!(store.outputs(a).unwrap()["rows"], "2");
        let run_record = store.run(run_id).unwrap().unwrap();
        assert_eq!(run_record.status, RunState::Succeeded);
        assert!(run_record.finished_at.is_some());
    }

    #[test]
    fn an_illegal_transition_rejects_the_whole_batch() {
        let store = store();
        let (run_id, ids) = store
            .create_run(&run(
                "wf",
                vec![
                    job("a", &[], JobState::Pending),
                    job("b", &[], JobState::Pending),
                ],
            ))
            .unwrap();
        let now = Utc::now();
        let error = store
            .apply(&[
                Transition::new(ids[0], JobState::Queued, now).into(),
                Transition::new(ids[1], JobState::Running, now).into(),
            ])
            .unwrap_err();
        match &error {
            Error::IllegalTransition {
                job,
                name,
                from,
                to,
            } => {
                assert_eq!((*job, name.as_str()), (ids[1], "b"));
                assert_eq!((*from, *to), (JobState::Pending, JobState::Running));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(error.to_string().contains("`b`"));
        // The legal first change was rolled back with it.
        assert_eq!(
            store.job(ids[0]).unwrap().unwrap().status,
            JobState::Pending
        );

        assert!(matches!(
            store.apply(&[Transition::new(JobId(9999), JobState::Queued, now).into()]),
            Err(Error::JobNotFound(JobId(9999)))
        ));

        let finish = |to| -> Change {
            RunTransition {
                run: run_id,
                to,
                at: now,
                reason: None,
            }
            .into()
        };
        store.apply(&[finish(RunState::Failed)]).unwrap();
        assert!(matches!(
            store.apply(&[finish(RunState::Running)]),
            Err(Error::IllegalRunTransition { .. })
        ));
    }

    #[test]
    fn retries_within_a_run_number_attempts_and_clear_outputs() {
        let store = store();
        let (_, ids) = store
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        let a = ids[0];
        let now = Utc::now();
        store
            .apply(&[
                Transition::new(a, JobState::Running, now).into(),
                Change::Output {
                    job: a,
                    key: "k".into(),
                    value: "first".into(),
                },
                Transition::new(a, JobState::Failed, now)
                    .exit_code(3)
                    .reason("step `x` failed")
                    .into(),
                Transition::new(a, JobState::Queued, now).into(),
            ])
            .unwrap();
        let waiting = store.job(a).unwrap().unwrap();
        assert_eq!(
            (waiting.status, waiting.exit_code),
            (JobState::Queued, Some(3))
        );
        assert_eq!(waiting.finished_at, None);
        store
            .apply(&[
                Transition::new(a, JobState::Running, now).into(),
                Transition::new(a, JobState::TimedOut, now)
                    .reason("timeout")
                    .into(),
            ])
            .unwrap();
        let job = store.job(a).unwrap().unwrap();
        assert_eq!(job.attempts, 2);
        assert_eq!(job.exit_code, None);
        assert!(job.outputs.is_empty());
        let statuses: Vec<_> = job.history.iter().map(|attempt| attempt.status).collect();
        assert_eq!(statuses, [JobState::Failed, JobState::TimedOut]);
        assert_eq!(job.history[0].exit_code, Some(3));
    }

    #[test]
    fn claim_run_gives_a_detached_run_one_owner() {
        let store = store();
        let mut detached = run("wf", vec![job("a", &[], JobState::Pending)]);
        detached.owner = None;
        detached.status = RunState::Queued;
        let (id, _) = store.create_run(&detached).unwrap();
        assert!(store.claim_run(id, &Owner::current()).unwrap());
        assert!(!store.claim_run(id, &dead_owner()).unwrap());
        assert_eq!(
            store.run(id).unwrap().unwrap().owner,
            Some(Owner::current())
        );
    }

    #[test]
    fn definitions_keep_versions_and_the_latest_wins() {
        let store = store();
        let t0 = Utc::now();
        let save = |hash, yaml, at| {
            store
                .save_definition(&NewDefinition {
                    name: "etl",
                    hash,
                    yaml,
                    source_path: Some("/w/etl.yaml"),
                    seen_at: at,
                })
                .unwrap();
        };
        save("h1", "v1", t0);
        save("h2", "v2", t0);
        assert_eq!(store.definition("etl").unwrap().unwrap().yaml, "v2");
        save("h1", "v1", t0);
        let current = store.definition("etl").unwrap().unwrap();
        assert_eq!(
            (current.hash.as_str(), current.first_seen),
            ("h1", current.last_seen)
        );
        assert_eq!(
            store.definition_version("etl", "h2").unwrap().unwrap().yaml,
            "v2"
        );
        assert_eq!(store.definitions().unwrap().len(), 1);
        assert!(store.definition("missing").unwrap().is_none());
    }
}
