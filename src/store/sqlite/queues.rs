//! [`QueueStore`] for SQLite: queues, workers, atomic claims and leases.
//!
//! A claim is one `BEGIN IMMEDIATE` transaction: it reads the best candidates in scheduler
//! order, lets [`crate::scheduler::pick`] choose, and moves the chosen job to `running` under
//! the worker's lease before committing — so two workers never take the same job.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::scheduler::{Candidate, QueueLoad, pick};
use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::owner::host_name;
use crate::store::queues::{
    Advance, Claimed, Heartbeat, QueueRecord, QueueStore, RemoveOutcome, WorkerId, WorkerRecord,
};
use crate::store::store::{
    Change, LostJob, REASON_CANCELLED, REASON_LOST, RunTransition, Transition,
};

use super::read::{self, Scope, parse_state};
use super::write::{apply, run_status, transition_job, transition_run};
use super::{SqliteStore, to_ms};

/// How many candidates a claim reads at a time, in scheduler order.
const CLAIM_PAGE: i64 = 64;

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn queue_loads(tx: &rusqlite::Connection) -> Result<HashMap<String, QueueLoad>, Error> {
    let mut loads = HashMap::new();
    let mut select = tx.prepare_cached(
        "SELECT q.name, q.concurrency, q.paused,
                (SELECT count(*) FROM jobs AS j WHERE j.queue = q.name AND j.status = 'running')
         FROM queues AS q",
    )?;
    let rows = select.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            QueueLoad {
                concurrency: row.get(1)?,
                paused: row.get::<_, i64>(2)? != 0,
                running: row.get(3)?,
            },
        ))
    })?;
    for row in rows {
        let (name, load) = row?;
        loads.insert(name, load);
    }
    Ok(loads)
}

impl QueueStore for SqliteStore {
    fn queues(&self) -> Result<Vec<QueueRecord>, Error> {
        self.read(|tx| {
            let mut select = tx.prepare_cached(
                "SELECT q.name, q.concurrency, q.paused,
                        (SELECT count(*) FROM jobs AS j WHERE j.queue = q.name AND j.status = 'queued'),
                        (SELECT count(*) FROM jobs AS j WHERE j.queue = q.name AND j.status = 'running')
                 FROM queues AS q ORDER BY q.name",
            )?;
            let rows = select.query_map([], |row| {
                Ok(QueueRecord {
                    name: row.get(0)?,
                    concurrency: row.get(1)?,
                    paused: row.get::<_, i64>(2)? != 0,
                    depth: row.get(3)?,
                    running: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn add_queue(&self, name: &str, concurrency: Option<u32>) -> Result<bool, Error> {
        self.write(|tx| {
            let created = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO queues (name, concurrency, paused, created_at)
                     VALUES (?1, ?2, 0, ?3)",
                )?
                .execute(params![name, concurrency, to_ms(Utc::now())])?
                > 0;
            if !created {
                tx.prepare_cached("UPDATE queues SET concurrency = ?2 WHERE name = ?1")?
                    .execute(params![name, concurrency])?;
            }
            Ok(created)
        })
    }

    fn set_paused(&self, name: &str, paused: bool) -> Result<bool, Error> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached("UPDATE queues SET paused = ?2 WHERE name = ?1")?
                .execute(params![name, i64::from(paused)])?
                > 0)
        })
    }

    fn remove_queue(&self, name: &str, force: bool) -> Result<RemoveOutcome, Error> {
        self.write(|tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM queues WHERE name = ?1")?
                .query_row([name], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Ok(RemoveOutcome::NotFound);
            }
            let held: Vec<(i64, String)> = tx
                .prepare_cached(
                    "SELECT id, status FROM jobs
                     WHERE queue = ?1 AND status IN ('pending', 'queued', 'running')",
                )?
                .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            if !held.is_empty() && !force {
                return Ok(RemoveOutcome::Busy(
                    u32::try_from(held.len()).unwrap_or(u32::MAX),
                ));
            }
            let now = Utc::now();
            for (id, status) in held {
                if status == "running" {
                    tx.prepare_cached("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1")?
                        .execute([id])?;
                } else {
                    transition_job(
                        tx,
                        &Transition::new(JobId(id), JobState::Cancelled, now)
                            .reason("its queue was removed"),
                    )?;
                }
            }
            if name == "default" {
                // `default` always exists: removing it only empties it.
                return Ok(RemoveOutcome::Removed);
            }
            tx.prepare_cached("DELETE FROM queues WHERE name = ?1")?
                .execute([name])?;
            Ok(RemoveOutcome::Removed)
        })
    }

    fn set_top(&self, job: JobId) -> Result<(), Error> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE jobs SET top_seq = (SELECT coalesce(max(top_seq), 0) + 1 FROM jobs)
                 WHERE id = ?1",
            )?
            .execute([job.0])?;
            Ok(())
        })
    }

    fn register_worker(&self, name: &str, labels: &[String]) -> Result<WorkerId, Error> {
        self.write(|tx| {
            let now = to_ms(Utc::now());
            tx.prepare_cached(
                "INSERT INTO workers (name, labels, pid, host, started_at, heartbeat_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'idle')",
            )?
            .execute(params![
                name,
                serde_json::to_string(labels)?,
                std::process::id(),
                host_name(),
                now
            ])?;
            Ok(WorkerId(tx.last_insert_rowid()))
        })
    }

    fn heartbeat(
        &self,
        worker: WorkerId,
        state: &str,
        job: Option<JobId>,
        lease: Duration,
    ) -> Result<Heartbeat, Error> {
        self.write(|tx| {
            let now = Utc::now();
            tx.prepare_cached(
                "UPDATE workers SET heartbeat_at = ?2, state = ?3, current_job = ?4 WHERE id = ?1",
            )?
            .execute(params![worker.0, to_ms(now), state, job.map(|j| j.0)])?;
            let move_to: Option<String> = tx
                .prepare_cached("SELECT move_to FROM workers WHERE id = ?1")?
                .query_row([worker.0], |row| row.get(0))
                .optional()?
                .flatten();
            let mut cancel_current = false;
            if let Some(job) = job {
                let expires = to_ms(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
                tx.prepare_cached(
                    "UPDATE jobs SET lease_expires = ?3 WHERE id = ?1 AND worker_id = ?2",
                )?
                .execute(params![job.0, worker.0, expires])?;
                let row: Option<(String, i64, i64, Option<i64>)> = tx
                    .prepare_cached(
                        "SELECT j.status, j.cancel_requested, r.cancel_requested, j.worker_id
                         FROM jobs AS j JOIN runs AS r ON r.id = j.run_id WHERE j.id = ?1",
                    )?
                    .query_row([job.0], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()?;
                cancel_current = match row {
                    Some((status, job_flag, run_flag, owner)) => {
                        status != "running"
                            || job_flag != 0
                            || run_flag != 0
                            || owner != Some(worker.0)
                    }
                    None => true,
                };
            }
            Ok(Heartbeat {
                move_to,
                cancel_current,
            })
        })
    }

    fn workers(&self) -> Result<Vec<WorkerRecord>, Error> {
        self.read(|tx| {
            let mut select = tx.prepare_cached(
                "SELECT id, name, labels, pid, host, state, current_job, jobs_done, started_at,
                        heartbeat_at, move_to
                 FROM workers ORDER BY id DESC",
            )?;
            let rows = select.query_map([], |row| {
                let labels: String = row.get(2)?;
                Ok(WorkerRecord {
                    id: WorkerId(row.get(0)?),
                    name: row.get(1)?,
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                    pid: row.get(3)?,
                    host: row.get(4)?,
                    state: row.get(5)?,
                    current_job: row.get::<_, Option<i64>>(6)?.map(JobId),
                    jobs_done: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
                    started_at: from_ms(row.get(8)?),
                    heartbeat_at: from_ms(row.get(9)?),
                    move_to: row.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn request_move(&self, worker: &str, to: &str) -> Result<bool, Error> {
        self.write(|tx| {
            let id: i64 = worker.parse().unwrap_or(-1);
            Ok(tx
                .prepare_cached(
                    "UPDATE workers SET move_to = ?3
                     WHERE (id = ?1 OR name = ?2) AND state NOT IN ('stopped', 'moved')",
                )?
                .execute(params![id, worker, to])?
                > 0)
        })
    }

    fn oldest_runnable(&self, labels: &[String]) -> Result<Option<DateTime<Utc>>, Error> {
        self.read(|tx| {
            let now = to_ms(Utc::now());
            let loads = queue_loads(tx)?;
            let mut select = tx.prepare_cached(
                "SELECT queue, runs_on, queued_at FROM jobs
                 WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?1)
                 ORDER BY queued_at LIMIT ?2",
            )?;
            let rows: Vec<(String, String, Option<i64>)> = select
                .query_map(params![now, CLAIM_PAGE], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            for (queue, runs_on, queued_at) in rows {
                let runs_on: Vec<String> = serde_json::from_str(&runs_on).unwrap_or_default();
                let fits = pick(
                    &[Candidate {
                        queue: &queue,
                        runs_on: &runs_on,
                    }],
                    labels,
                    &loads,
                )
                .is_some();
                if fits {
                    return Ok(Some(from_ms(queued_at.unwrap_or(now))));
                }
            }
            Ok(None)
        })
    }

    fn claim_next(
        &self,
        worker: WorkerId,
        labels: &[String],
        lease: Duration,
        kill_token: &dyn Fn(RunId, JobId, u32) -> String,
    ) -> Result<Option<Claimed>, Error> {
        let claimed = self.write(|tx| {
            let now = Utc::now();
            let now_ms = to_ms(now);
            let loads = queue_loads(tx)?;
            let mut offset = 0;
            loop {
                let page: Vec<(i64, i64, String, String, u32)> = tx
                    .prepare_cached(
                        "SELECT id, run_id, queue, runs_on, attempts FROM jobs
                         WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?1)
                         ORDER BY top_seq IS NULL, top_seq DESC, priority DESC, queued_at, id
                         LIMIT ?2 OFFSET ?3",
                    )?
                    .query_map(params![now_ms, CLAIM_PAGE, offset], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })?
                    .collect::<Result<_, _>>()?;
                if page.is_empty() {
                    return Ok(None);
                }
                let labels_of: Vec<Vec<String>> = page
                    .iter()
                    .map(|row| serde_json::from_str(&row.3).unwrap_or_default())
                    .collect();
                let candidates: Vec<Candidate<'_>> = page
                    .iter()
                    .zip(&labels_of)
                    .map(|(row, runs_on)| Candidate {
                        queue: &row.2,
                        runs_on,
                    })
                    .collect();
                if let Some(index) = pick(&candidates, labels, &loads) {
                    let (id, run, _, _, attempts) = page[index].clone();
                    let (job, run) = (JobId(id), RunId(run));
                    let token = kill_token(run, job, attempts + 1);
                    transition_job(
                        tx,
                        &Transition::new(job, JobState::Running, now).kill_token(token),
                    )?;
                    let expires = now_ms + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
                    tx.prepare_cached(
                        "UPDATE jobs SET worker_id = ?2, lease_expires = ?3, not_before = NULL
                         WHERE id = ?1",
                    )?
                    .execute(params![job.0, worker.0, expires])?;
                    tx.prepare_cached(
                        "UPDATE workers SET state = 'busy', current_job = ?2, heartbeat_at = ?3
                         WHERE id = ?1",
                    )?
                    .execute(params![worker.0, job.0, now_ms])?;
                    if run_status(tx, run)? == RunState::Queued {
                        transition_run(
                            tx,
                            &RunTransition {
                                run,
                                to: RunState::Running,
                                at: now,
                                reason: None,
                            },
                        )?;
                    }
                    return Ok(Some((job, run)));
                }
                if page.len() < usize::try_from(CLAIM_PAGE).unwrap_or(usize::MAX) {
                    return Ok(None);
                }
                offset += CLAIM_PAGE;
            }
        })?;
        let Some((job, run)) = claimed else {
            return Ok(None);
        };
        let conn = self.conn();
        let run = read::run(&conn, run)?.ok_or(Error::RunNotFound(run))?;
        let siblings = read::jobs(&conn, Scope::Run(run.id))?;
        let job = siblings
            .iter()
            .find(|j| j.id == job)
            .cloned()
            .ok_or(Error::JobNotFound(job))?;
        Ok(Some(Claimed { job, run, siblings }))
    }

    fn finish_claim(
        &self,
        worker: WorkerId,
        job: JobId,
        changes: &[Change],
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), Error> {
        self.write(|tx| {
            // The job may have been taken from this worker (lease expired, cancelled): then the
            // attempt's end is no longer this worker's to record.
            let still_ours = tx
                .prepare_cached(
                    "SELECT 1 FROM jobs WHERE id = ?1 AND worker_id = ?2 AND status = 'running'",
                )?
                .query_row(params![job.0, worker.0], |_| Ok(()))
                .optional()?
                .is_some();
            if still_ours {
                apply(tx, changes)?;
                tx.prepare_cached(
                    "UPDATE jobs SET worker_id = NULL, lease_expires = NULL, not_before = ?2
                     WHERE id = ?1",
                )?
                .execute(params![job.0, retry_at.map(to_ms)])?;
            }
            tx.prepare_cached(
                "UPDATE workers SET state = 'idle', current_job = NULL, jobs_done = jobs_done + 1,
                     heartbeat_at = ?2
                 WHERE id = ?1",
            )?
            .execute(params![worker.0, to_ms(Utc::now())])?;
            Ok(())
        })
    }

    fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostJob>, Error> {
        self.write(|tx| {
            let expired: Vec<(i64, i64, String, Option<String>, u32, u32)> = tx
                .prepare_cached(
                    "SELECT id, run_id, name, kill_token, attempts, max_attempts FROM jobs
                     WHERE status = 'running' AND worker_id IS NOT NULL AND lease_expires < ?1",
                )?
                .query_map([to_ms(now)], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut lost = Vec::new();
            for (id, run, name, kill_token, attempts, max_attempts) in expired {
                let job = JobId(id);
                // SPEC §7: a lost attempt counts; re-queue while attempts remain.
                let to = if attempts < max_attempts {
                    JobState::Queued
                } else {
                    JobState::Failed
                };
                transition_job(tx, &Transition::new(job, to, now).reason(REASON_LOST))?;
                tx.prepare_cached(
                    "UPDATE jobs SET worker_id = NULL, lease_expires = NULL WHERE id = ?1",
                )?
                .execute([id])?;
                lost.push(LostJob {
                    job,
                    run: RunId(run),
                    name,
                    kill_token,
                });
            }
            Ok(lost)
        })
    }

    fn advance(&self, run: RunId, decisions: &[Advance]) -> Result<Option<RunState>, Error> {
        self.write(|tx| {
            for decision in decisions {
                let status: Option<String> = tx
                    .prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
                    .query_row([decision.transition.job.0], |row| row.get(0))
                    .optional()?;
                let Some(status) = status else { continue };
                if parse_state::<JobState>(&status)? == decision.from {
                    transition_job(tx, &decision.transition)?;
                }
            }
            let states: Vec<String> = tx
                .prepare_cached("SELECT status FROM jobs WHERE run_id = ?1")?
                .query_map([run.0], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let states: Vec<JobState> = states
                .iter()
                .map(|s| parse_state(s))
                .collect::<Result<_, _>>()?;
            let current = run_status(tx, run)?;
            if current.is_terminal() || !states.iter().all(|s| s.is_terminal()) {
                return Ok(None);
            }
            let cancel_requested: i64 = tx
                .prepare_cached("SELECT cancel_requested FROM runs WHERE id = ?1")?
                .query_row([run.0], |row| row.get(0))?;
            let to = if cancel_requested != 0 || states.contains(&JobState::Cancelled) {
                RunState::Cancelled
            } else if states
                .iter()
                .any(|s| matches!(s, JobState::Failed | JobState::TimedOut))
            {
                RunState::Failed
            } else {
                RunState::Succeeded
            };
            let reason = (to == RunState::Cancelled && cancel_requested != 0)
                .then(|| REASON_CANCELLED.to_owned());
            if current == RunState::Queued {
                transition_run(
                    tx,
                    &RunTransition {
                        run,
                        to: RunState::Running,
                        at: Utc::now(),
                        reason: None,
                    },
                )?;
            }
            transition_run(
                tx,
                &RunTransition {
                    run,
                    to,
                    at: Utc::now(),
                    reason,
                },
            )?;
            Ok(Some(to))
        })
    }

    fn stop_worker(&self, worker: WorkerId) -> Result<(), Error> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE workers SET state = 'stopped', current_job = NULL WHERE id = ?1",
            )?
            .execute([worker.0])?;
            Ok(())
        })
    }
}
