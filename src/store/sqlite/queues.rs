//! [`QueueStore`] for SQLite: queues, workers, atomic claims and leases.
//!
//! A claim is one `BEGIN IMMEDIATE` transaction: it reads the best candidates in scheduler
//! order, lets [`crate::scheduler::pick`] choose, and moves the chosen job to `running` under
//! the worker's lease before committing — so two workers never take the same job.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::scheduler::resources::{Offer, Request, Room};
use crate::scheduler::{Candidate, QueueLoad, pick};
use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::owner::{Owner, host_identity, owner_is_alive};
use crate::store::queues::{
    Advance, ClaimEnd, Claimed, QueueRecord, QueueStore, RemoveOutcome, RunJob,
};
use crate::store::runs::{
    Change, LostJob, REASON_CANCELLED, REASON_LOST, RunTransition, Transition,
};
use crate::store::workers::{Heartbeat, WORKER_RETENTION, WorkerId, WorkerRecord, WorkerStore};

use super::read::{self, Scope, parse_state};
use super::write::{apply, run_status, transition_job, transition_run};
use super::{SqliteStore, to_ms};

/// How many candidates a claim reads first; each further page doubles, up to
/// [`MAX_PAGE`]. Most claims take the first candidate, and each row read costs a lookup.
const FIRST_PAGE: i64 = 8;

/// The largest page of candidates read at once.
const MAX_PAGE: i64 = 256;

/// [`QueueStore::queued_with_label`]: queued jobs past their retry delay (`?1` is now),
/// whose `runs_on` holds `?2`, outside paused queues and foreground runs. The same statement
/// as PostgreSQL's but for the JSON test.
const QUEUED_WITH_LABEL: &str = "
    SELECT count(*) FROM jobs AS j
    WHERE j.status = 'queued'
      AND (j.not_before IS NULL OR j.not_before <= ?1)
      AND EXISTS (SELECT 1 FROM json_each(j.runs_on) WHERE value = ?2)
      AND NOT EXISTS (SELECT 1 FROM queues AS q WHERE q.name = j.queue AND q.paused <> 0)
      AND NOT EXISTS (SELECT 1 FROM runs AS r
                      WHERE r.id = j.run_id AND r.owner_pid IS NOT NULL)";

/// A worker's offer and what the running jobs of its host's workers ask (`?1` is the
/// worker). The same statement as PostgreSQL's.
const HOST_ROOM: &str = "
    SELECT w.cpu_milli, w.memory,
           coalesce(sum(j.cpu_milli), 0), coalesce(sum(j.memory), 0)
    FROM workers AS w
    LEFT JOIN workers AS o ON o.host = w.host
    LEFT JOIN jobs AS j ON j.worker_id = o.id AND j.status = 'running'
    WHERE w.id = ?1
    GROUP BY w.id";

/// A waiting job as a claim reads it.
struct Row {
    id: i64,
    run: i64,
    queue: String,
    runs_on: Vec<String>,
    attempts: u32,
    queued_at: Option<i64>,
    request: Request,
}

/// Which group of waiting jobs a [`Candidates`] reads: the jobs put on top (newest `top`
/// first), then each priority from the highest, each oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Top,
    Priority(i64),
    Done,
}

/// Waiting jobs in scheduler order, a page at a time, each page read through the
/// `jobs_claimable` index (status, top_seq, priority, queued_at) without sorting: one
/// `ORDER BY` over every queued job cost ~0.75 ms per claim with 2,000 of them, inside the
/// write lock. Left out: jobs that must wait for a retry delay, jobs of queues that cannot
/// start anything now (paused, full), and jobs of runs that have an owner — a foreground
/// `coreflow run` queues its ready jobs in the store too, and executes them itself.
struct Candidates<'c> {
    tx: &'c rusqlite::Connection,
    now_ms: i64,
    blocked: String,
    group: Group,
    offset: i64,
    page: i64,
}

impl<'c> Candidates<'c> {
    fn new(tx: &'c rusqlite::Connection, now_ms: i64, loads: &HashMap<String, QueueLoad>) -> Self {
        let blocked: Vec<&str> = loads
            .iter()
            .filter(|(_, load)| !load.admits())
            .map(|(name, _)| name.as_str())
            .collect();
        Candidates {
            tx,
            now_ms,
            blocked: serde_json::to_string(&blocked).unwrap_or_else(|_| "[]".to_owned()),
            group: Group::Top,
            offset: 0,
            page: FIRST_PAGE,
        }
    }

    /// The group being read.
    fn group(&self) -> Group {
        self.group
    }

    /// Leaves the rest of the current group unread.
    fn skip_group(&mut self) -> Result<(), Error> {
        self.group = match self.group {
            Group::Top => self.next_priority(None)?,
            Group::Priority(p) => self.next_priority(Some(p))?,
            Group::Done => Group::Done,
        };
        self.offset = 0;
        self.page = FIRST_PAGE;
        Ok(())
    }

    fn next_priority(&self, below: Option<i64>) -> Result<Group, Error> {
        // `max()` over an index prefix is a single seek.
        let max: Option<i64> = match below {
            None => self
                .tx
                .prepare_cached(
                    "SELECT max(priority) FROM jobs WHERE status = 'queued' AND top_seq IS NULL",
                )?
                .query_row([], |row| row.get(0))?,
            Some(below) => self
                .tx
                .prepare_cached(
                    "SELECT max(priority) FROM jobs
                     WHERE status = 'queued' AND top_seq IS NULL AND priority < ?1",
                )?
                .query_row([below], |row| row.get(0))?,
        };
        Ok(max.map_or(Group::Done, Group::Priority))
    }

    /// The next page; empty when every group has been read.
    fn next_page(&mut self) -> Result<Vec<Row>, Error> {
        loop {
            let rows = match self.group {
                Group::Done => return Ok(Vec::new()),
                Group::Top => self.read(
                    "SELECT id, run_id, queue, runs_on, attempts, queued_at, cpu_milli, memory FROM jobs
                     WHERE status = 'queued' AND top_seq IS NOT NULL
                       AND (not_before IS NULL OR not_before <= ?1)
                       AND queue NOT IN (SELECT value FROM json_each(?4))
                       AND NOT EXISTS (SELECT 1 FROM runs AS r
                                       WHERE r.id = jobs.run_id AND r.owner_pid IS NOT NULL)
                     ORDER BY top_seq DESC LIMIT ?2 OFFSET ?3",
                    None,
                )?,
                Group::Priority(p) => self.read(
                    "SELECT id, run_id, queue, runs_on, attempts, queued_at, cpu_milli, memory FROM jobs
                     WHERE status = 'queued' AND top_seq IS NULL AND priority = ?5
                       AND (not_before IS NULL OR not_before <= ?1)
                       AND queue NOT IN (SELECT value FROM json_each(?4))
                       AND NOT EXISTS (SELECT 1 FROM runs AS r
                                       WHERE r.id = jobs.run_id AND r.owner_pid IS NOT NULL)
                     ORDER BY queued_at, id LIMIT ?2 OFFSET ?3",
                    Some(p),
                )?,
            };
            if usize::try_from(self.page).is_ok_and(|page| rows.len() < page) {
                self.skip_group()?;
            } else {
                self.offset += self.page;
                self.page = (self.page * 2).min(MAX_PAGE);
            }
            if !rows.is_empty() {
                return Ok(rows);
            }
        }
    }

    fn read(&self, sql: &str, priority: Option<i64>) -> Result<Vec<Row>, Error> {
        let mut select = self.tx.prepare_cached(sql)?;
        let map = |row: &rusqlite::Row<'_>| {
            let runs_on: String = row.get(3)?;
            Ok(Row {
                id: row.get(0)?,
                run: row.get(1)?,
                queue: row.get(2)?,
                runs_on: serde_json::from_str(&runs_on).unwrap_or_default(),
                attempts: row.get(4)?,
                queued_at: row.get(5)?,
                request: Request::from_milli(row.get(6)?, row.get(7)?),
            })
        };
        Ok(match priority {
            None => select
                .query_map(
                    params![self.now_ms, self.page, self.offset, self.blocked],
                    map,
                )?
                .collect::<Result<_, _>>()?,
            Some(p) => select
                .query_map(
                    params![self.now_ms, self.page, self.offset, self.blocked, p],
                    map,
                )?
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The first of `rows` a worker with `labels` may take, where its request fits in `room`.
fn first_fitting(
    rows: &[Row],
    labels: &[String],
    loads: &HashMap<String, QueueLoad>,
    room: Option<&mut Room>,
) -> Option<usize> {
    let candidates: Vec<Candidate<'_>> = rows
        .iter()
        .map(|row| Candidate {
            queue: &row.queue,
            runs_on: &row.runs_on,
            request: row.request,
        })
        .collect();
    pick(&candidates, labels, loads, room)
}

/// What `worker`'s host has left: the worker's offer, less what the running jobs of every
/// worker of its host ask. `None` for a worker that offers nothing in particular (it admits
/// by count only).
fn host_room(tx: &rusqlite::Connection, worker: WorkerId) -> Result<Option<Room>, Error> {
    let row: Option<(Option<i64>, Option<i64>, i64, i64)> = tx
        .prepare_cached(HOST_ROOM)?
        .query_row([worker.0], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    Ok(match row {
        Some((Some(cpu_milli), Some(memory), used_cpu, used_memory)) => Some(Room::new(
            Offer::from_milli(cpu_milli, memory),
            Request::from_milli(used_cpu, used_memory),
        )),
        _ => None,
    })
}

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
        let now = self.now();
        self.write(|tx| {
            let created = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO queues (name, concurrency, paused, created_at)
                     VALUES (?1, ?2, 0, ?3)",
                )?
                .execute(params![name, concurrency, to_ms(now)])?
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
        let now = self.now();
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
            let mut runs: Vec<RunId> = Vec::new();
            for (id, status) in held {
                let run = RunId(
                    tx.prepare_cached("SELECT run_id FROM jobs WHERE id = ?1")?
                        .query_row([id], |row| row.get(0))?,
                );
                if !runs.contains(&run) {
                    runs.push(run);
                }
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
            if name != "default" {
                // `default` always exists: removing it only empties it.
                tx.prepare_cached("DELETE FROM queues WHERE name = ?1")?
                    .execute([name])?;
            }
            Ok(RemoveOutcome::Removed(runs))
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

    fn watch_work(&self, _wake: std::sync::Arc<tokio::sync::Notify>) -> bool {
        // Workers of a SQLite environment share its host; polling it costs a read.
        false
    }

    fn queued_with_label(&self, label: &str) -> Result<u32, Error> {
        let now = to_ms(self.now());
        self.read(|tx| {
            let waiting: i64 = tx
                .prepare_cached(QUEUED_WITH_LABEL)?
                .query_row(params![now, label], |row| row.get(0))?;
            Ok(u32::try_from(waiting).unwrap_or(u32::MAX))
        })
    }

    fn oldest_runnable(&self, labels: &[String]) -> Result<Option<DateTime<Utc>>, Error> {
        let now = to_ms(self.now());
        self.read(|tx| {
            let loads = queue_loads(tx)?;
            // The oldest fitting job of each group (each group is read oldest first, but
            // for the top one), and the oldest of those.
            let mut candidates = Candidates::new(tx, now, &loads);
            let mut oldest: Option<i64> = None;
            loop {
                let group = candidates.group();
                let rows = candidates.next_page()?;
                if rows.is_empty() {
                    return Ok(oldest.map(from_ms));
                }
                let mut found = false;
                for row in &rows {
                    if first_fitting(std::slice::from_ref(row), labels, &loads, None).is_some() {
                        let at = row.queued_at.unwrap_or(now);
                        oldest = Some(oldest.map_or(at, |o| o.min(at)));
                        found = true;
                        // A priority group is read oldest first: its first fit is its oldest.
                        if group != Group::Top {
                            break;
                        }
                    }
                }
                if found && group != Group::Top && candidates.group() == group {
                    candidates.skip_group()?;
                }
            }
        })
    }

    fn claim_next(
        &self,
        worker: WorkerId,
        labels: &[String],
        lease: Duration,
        kill_token: &dyn Fn(RunId, JobId, u32) -> String,
    ) -> Result<Option<Claimed>, Error> {
        let now = self.now();
        self.write(|tx| claim_next_tx(tx, worker, labels, lease, kill_token, now))
    }

    fn finish_claim(
        &self,
        worker: WorkerId,
        job: JobId,
        changes: &[Change],
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<ClaimEnd, Error> {
        let now = self.now();
        self.write(|tx| finish_claim_tx(tx, worker, job, changes, retry_at, now))
    }

    fn finish_and_claim(
        &self,
        worker: WorkerId,
        job: JobId,
        changes: &[Change],
        retry_at: Option<DateTime<Utc>>,
        labels: &[String],
        lease: Duration,
        kill_token: &dyn Fn(RunId, JobId, u32) -> String,
    ) -> Result<(ClaimEnd, Option<Claimed>), Error> {
        let now = self.now();
        self.write(|tx| {
            let end = finish_claim_tx(tx, worker, job, changes, retry_at, now)?;
            let next = claim_next_tx(tx, worker, labels, lease, kill_token, now)?;
            Ok((end, next))
        })
    }

    fn run_jobs(&self, run: RunId) -> Result<Vec<RunJob>, Error> {
        self.read(|tx| {
            let mut select = tx.prepare_cached(
                "SELECT id, name, base_name, matrix, needs, status FROM jobs
                 WHERE run_id = ?1 ORDER BY id",
            )?;
            let rows = select.query_map([run.0], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })?;
            let mut jobs = Vec::new();
            for row in rows {
                let (id, name, base_name, matrix, needs, status) = row?;
                jobs.push(RunJob {
                    id: JobId(id),
                    name,
                    base_name,
                    matrix: match matrix {
                        Some(text) => serde_json::from_str(&text)?,
                        None => serde_json::Value::Null,
                    },
                    needs: serde_json::from_str(&needs)?,
                    status: parse_state(&status)?,
                });
            }
            Ok(jobs)
        })
    }

    fn advance(&self, run: RunId, decisions: &[Advance]) -> Result<Option<RunState>, Error> {
        let now = self.now();
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
            finish_if_done(tx, run, now)
        })
    }
}

impl WorkerStore for SqliteStore {
    fn register_worker(&self, name: &str, labels: &[String]) -> Result<WorkerId, Error> {
        let now = to_ms(self.now());
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO workers (name, labels, pid, host, started_at, heartbeat_at, state,
                                      start_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'idle', ?6)",
            )?
            .execute(params![
                name,
                serde_json::to_string(labels)?,
                std::process::id(),
                host_identity(),
                now,
                i64::try_from(Owner::current().start_time).unwrap_or(0),
            ])?;
            Ok(WorkerId(tx.last_insert_rowid()))
        })
    }

    fn set_worker_offer(
        &self,
        worker: WorkerId,
        offer: Offer,
        enforcement: &str,
    ) -> Result<(), Error> {
        let (cpu_milli, memory) = offer.as_milli();
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE workers SET cpu_milli = ?2, memory = ?3, enforcement = ?4 WHERE id = ?1",
            )?
            .execute(params![worker.0, cpu_milli, memory, enforcement])?;
            Ok(())
        })
    }

    fn heartbeat(
        &self,
        worker: WorkerId,
        state: &str,
        job: Option<JobId>,
        lease: Duration,
    ) -> Result<Heartbeat, Error> {
        let now = self.now();
        self.write(|tx| {
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
                "SELECT w.id, w.name, w.labels, w.pid, w.host, w.state, w.current_job,
                        w.jobs_done, w.started_at, w.heartbeat_at, w.move_to, w.cpu_milli,
                        w.memory, w.enforcement, coalesce(j.cpu_milli, 0), coalesce(j.memory, 0)
                 FROM workers AS w
                 LEFT JOIN jobs AS j ON j.id = w.current_job AND j.status = 'running'
                 ORDER BY w.id DESC",
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
                    offer: match (row.get(11)?, row.get(12)?) {
                        (Some(cpu_milli), Some(memory)) => {
                            Some(Offer::from_milli(cpu_milli, memory))
                        }
                        _ => None,
                    },
                    enforcement: row.get(13)?,
                    used: Request::from_milli(row.get(14)?, row.get(15)?),
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

    fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostJob>, Error> {
        self.write(|tx| {
            // A worker of this host whose process is gone holds its jobs no longer: their
            // leases end now, not when they run out (SPEC §7: a restart takes them back at
            // once).
            let holders: Vec<(i64, u32, i64)> = tx
                .prepare_cached(
                    "SELECT DISTINCT w.id, w.pid, w.start_time
                     FROM jobs j JOIN workers w ON w.id = j.worker_id
                     WHERE j.status = 'running' AND w.host = ?1 AND w.start_time != 0",
                )?
                .query_map([host_identity()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            for (worker, pid, start_time) in holders {
                let owner = Owner {
                    pid,
                    start_time: u64::try_from(start_time).unwrap_or(0),
                    host: host_identity().to_owned(),
                };
                if !owner_is_alive(&owner) {
                    tx.prepare_cached(
                        "UPDATE jobs SET lease_expires = 0
                         WHERE worker_id = ?1 AND status = 'running'",
                    )?
                    .execute([worker])?;
                }
            }
            /// A running job whose lease expired.
            struct Expired {
                id: i64,
                run: i64,
                name: String,
                kill_token: Option<String>,
                attempts: u32,
                max_attempts: u32,
                worker: i64,
            }
            let expired: Vec<Expired> = tx
                .prepare_cached(
                    "SELECT id, run_id, name, kill_token, attempts - attempts_before_retry,
                            max_attempts, worker_id
                     FROM jobs
                     WHERE status = 'running' AND worker_id IS NOT NULL AND lease_expires < ?1",
                )?
                .query_map([to_ms(now)], |row| {
                    Ok(Expired {
                        id: row.get(0)?,
                        run: row.get(1)?,
                        name: row.get(2)?,
                        kill_token: row.get(3)?,
                        attempts: row.get(4)?,
                        max_attempts: row.get(5)?,
                        worker: row.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut lost = Vec::new();
            for Expired {
                id,
                run,
                name,
                kill_token,
                attempts,
                max_attempts,
                worker,
            } in expired
            {
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
                // Its worker stopped heartbeating: `coreflow workers` shows it `lost` (a
                // worker that was only slow sets its state again with its next heartbeat).
                tx.prepare_cached(
                    "UPDATE workers SET state = 'lost', current_job = NULL
                     WHERE id = ?1 AND state NOT IN ('stopped', 'moved')",
                )?
                .execute([worker])?;
                lost.push(LostJob {
                    job,
                    run: RunId(run),
                    name,
                    kill_token,
                });
            }
            // A worker that holds no job has no lease to expire: one silent for longer than
            // any lease's worth of heartbeats (they come every second at most) is gone too.
            tx.prepare_cached(
                "UPDATE workers SET state = 'lost'
                 WHERE state IN ('idle', 'busy', 'stopping') AND current_job IS NULL
                   AND heartbeat_at < ?1",
            )?
            .execute([to_ms(now) - SILENT_WORKER_MS])?;
            // Workers that ended long ago are forgotten: the table stays as small as the pool.
            tx.prepare_cached(
                "DELETE FROM workers
                 WHERE state IN ('stopped', 'moved', 'lost') AND heartbeat_at < ?1
                   AND id NOT IN (SELECT worker_id FROM jobs
                                  WHERE status = 'running' AND worker_id IS NOT NULL)",
            )?
            .execute([to_ms(now - WORKER_RETENTION)])?;
            Ok(lost)
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

/// Whether `run` was asked to cancel.
fn run_cancel_requested(tx: &rusqlite::Connection, run: RunId) -> Result<bool, Error> {
    let flag: i64 = tx
        .prepare_cached("SELECT cancel_requested FROM runs WHERE id = ?1")?
        .query_row([run.0], |row| row.get(0))?;
    Ok(flag != 0)
}

/// Gives `run` its final state once every job of it has ended: cancelled when it was asked
/// to cancel or a job was cancelled, failed when a job failed or timed out, else succeeded.
/// Cheap while jobs remain (it stops at the first one), as it runs after every job.
/// How long a worker without a job may go without a heartbeat before `coreflow workers`
/// shows it `lost`: it heartbeats every second at most; 30 s is the default lease.
const SILENT_WORKER_MS: i64 = 30_000;

/// Whether run `?1` has a job left to end: asked after every job a worker finishes, so it
/// must be answered from the `(run_id, status)` index, not by reading the run's every job.
const ACTIVE_JOB_OF_RUN: &str =
    "SELECT 1 FROM jobs WHERE run_id = ?1 AND status IN ('pending', 'queued', 'running') LIMIT 1";

fn finish_if_done(
    tx: &rusqlite::Connection,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<Option<RunState>, Error> {
    let current = run_status(tx, run)?;
    if current.is_terminal() {
        return Ok(None);
    }
    let active = tx
        .prepare_cached(ACTIVE_JOB_OF_RUN)?
        .query_row([run.0], |_| Ok(()))
        .optional()?
        .is_some();
    if active {
        return Ok(None);
    }
    let (failed, cancelled): (i64, i64) = tx
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE status IN ('failed', 'timed_out')
                                          AND continue_on_error = 0),
                    count(*) FILTER (WHERE status = 'cancelled')
             FROM jobs WHERE run_id = ?1",
        )?
        .query_row([run.0], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let cancel_requested = run_cancel_requested(tx, run)?;
    // A failure wins over jobs cancelled by `fail_fast`; a cancel of the run over both.
    let to = if cancel_requested {
        RunState::Cancelled
    } else if failed > 0 {
        RunState::Failed
    } else if cancelled > 0 {
        RunState::Cancelled
    } else {
        RunState::Succeeded
    };
    let reason =
        (to == RunState::Cancelled && cancel_requested).then(|| REASON_CANCELLED.to_owned());
    if current == RunState::Queued {
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
    transition_run(
        tx,
        &RunTransition {
            run,
            to,
            at: now,
            reason,
        },
    )?;
    Ok(Some(to))
}

/// Takes the best queued job this worker may run, in the caller's write transaction.
fn claim_next_tx(
    tx: &rusqlite::Connection,
    worker: WorkerId,
    labels: &[String],
    lease: Duration,
    kill_token: &dyn Fn(RunId, JobId, u32) -> String,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>, Error> {
    let now_ms = to_ms(now);
    let loads = queue_loads(tx)?;
    let mut candidates = Candidates::new(tx, now_ms, &loads);
    // What the host has left, read once a job with a request comes up.
    let mut room: Option<Option<Room>> = None;
    loop {
        let page = candidates.next_page()?;
        if page.is_empty() {
            return Ok(None);
        }
        if room.is_none() && page.iter().any(|row| !row.request.is_empty()) {
            room = Some(host_room(tx, worker)?);
        }
        let Some(index) = first_fitting(
            &page,
            labels,
            &loads,
            room.as_mut().and_then(Option::as_mut),
        ) else {
            continue;
        };
        let (job, run) = (JobId(page[index].id), RunId(page[index].run));
        if run_cancel_requested(tx, run)? {
            // SPEC §3: a cancelled run's queued jobs are dropped, not started. The
            // worker still running a job of it finishes the run. Read again from the
            // start: the page is stale.
            transition_job(
                tx,
                &Transition::new(job, JobState::Cancelled, now).reason(REASON_CANCELLED),
            )?;
            candidates = Candidates::new(tx, now_ms, &loads);
            room = None;
            continue;
        }
        let token = kill_token(run, job, page[index].attempts + 1);
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
        // The job and its needs, read under the same lock (a second transaction
        // cost as much again): the needs have ended and cannot change any more.
        return claimed_job(tx, job, run).map(Some);
    }
}

/// Records the end of a claimed attempt, in the caller's write transaction.
fn finish_claim_tx(
    tx: &rusqlite::Connection,
    worker: WorkerId,
    job: JobId,
    changes: &[Change],
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<ClaimEnd, Error> {
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
        "UPDATE workers SET state = 'idle', current_job = NULL, jobs_done = jobs_done + ?3,
             heartbeat_at = ?2
         WHERE id = ?1",
    )?
    // A job taken from the worker meanwhile (its lease ended) is not one it did.
    .execute(params![worker.0, to_ms(now), i64::from(still_ours)])?;
    if !still_ours {
        return Ok(ClaimEnd::default());
    }
    let run = RunId(
        tx.prepare_cached("SELECT run_id FROM jobs WHERE id = ?1")?
            .query_row([job.0], |row| row.get(0))?,
    );
    Ok(ClaimEnd {
        run_ended: finish_if_done(tx, run, now)?,
        cancelling: run_cancel_requested(tx, run)?,
    })
}

/// A claimed job with its run and its needs (their outputs, not their attempts).
fn claimed_job(tx: &rusqlite::Connection, job: JobId, run: RunId) -> Result<Claimed, Error> {
    let run = read::run(tx, run)?.ok_or(Error::RunNotFound(run))?;
    let job = read::jobs_without_history(tx, Scope::Job(job))?
        .pop()
        .ok_or(Error::JobNotFound(job))?;
    let mut needs = Vec::with_capacity(job.needs.len());
    for name in &job.needs {
        let id: Option<i64> = tx
            .prepare_cached("SELECT id FROM jobs WHERE run_id = ?1 AND name = ?2")?
            .query_row(params![run.id.0, name], |row| row.get(0))
            .optional()?;
        if let Some(id) = id {
            needs.extend(read::jobs_without_history(tx, Scope::Job(JobId(id)))?);
        }
    }
    Ok(Claimed { job, run, needs })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::super::SqliteStore;
    use super::super::test_support::{job, run, store};
    use crate::state::{JobState, RunState};
    use crate::store::queues::QueueStore;
    use crate::store::runs::{Change, NewJob, RunStore, Transition};
    use crate::store::workers::{WorkerId, WorkerStore};

    fn queued(name: &str, queue: &str, priority: i64) -> NewJob {
        let mut job = job(name, &[], JobState::Queued);
        job.queue = queue.to_owned();
        job.priority = priority;
        job
    }

    /// A run nobody owns (`run --detach`), as workers take them.
    fn detached(store: &SqliteStore, jobs: Vec<NewJob>) -> Vec<crate::state::JobId> {
        let mut new = run("wf", jobs);
        new.owner = None;
        new.status = RunState::Queued;
        store.create_run(&new).expect("create run").1
    }

    /// Names of the jobs a worker claims, one after the other, until nothing is left.
    fn drain(store: &SqliteStore, worker: WorkerId, labels: &[String]) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(claimed) = store
            .claim_next(worker, labels, Duration::from_secs(30), &|_, _, _| {
                "t".into()
            })
            .expect("claim")
        {
            let change = Change::Job(Transition::new(
                claimed.job.id,
                JobState::Succeeded,
                Utc::now(),
            ));
            store
                .finish_claim(worker, claimed.job.id, &[change], None)
                .expect("finish");
            names.push(claimed.job.name);
        }
        names
    }

    #[test]
    fn a_retry_delay_and_a_lease_follow_the_store_clock_without_sleeping() {
        use crate::clock::Clock;
        let (_dir, store) = store();
        let start = Utc::now();
        let clock = crate::clock::ManualClock::new(start);
        let store = store.with_clock(std::sync::Arc::new(clock.clone()));
        let worker = store.register_worker("w", &[]).expect("register");
        let ids = detached(&store, vec![queued("flaky", "default", 0)]);
        let token = |_, _, attempt| format!("t{attempt}");
        let lease = Duration::from_secs(30);
        let claimed = store
            .claim_next(worker, &[], lease, &token)
            .expect("claim")
            .expect("a job");
        // The attempt failed; the job waits a minute before its next attempt.
        let mut again = Transition::new(ids[0], JobState::Queued, clock.now()).reason("retry");
        again.attempt_end = Some(JobState::Failed);
        let retry_at = clock.now() + chrono::Duration::seconds(60);
        store
            .finish_claim(worker, claimed.job.id, &[again.into()], Some(retry_at))
            .expect("finish");
        clock.advance(chrono::Duration::seconds(59));
        assert!(
            store
                .claim_next(worker, &[], lease, &token)
                .expect("claim")
                .is_none(),
            "claimed before its retry delay ended"
        );
        clock.advance(chrono::Duration::seconds(2));
        let second = store
            .claim_next(worker, &[], lease, &token)
            .expect("claim")
            .expect("claimable once the delay is over");
        assert_eq!(second.job.attempts, 2);
        // The worker goes silent: its lease ends 30 s after the claim, by the same clock.
        assert!(store.expire_leases(clock.now()).expect("expire").is_empty());
        clock.advance(chrono::Duration::seconds(31));
        let lost = store.expire_leases(clock.now()).expect("expire");
        assert_eq!(lost.len(), 1, "{lost:?}");
        // The worker comes back and reports the end of the job it lost: not recorded, and
        // not counted among the jobs it did.
        let late = Transition::new(ids[0], JobState::Succeeded, clock.now());
        store
            .finish_claim(worker, second.job.id, &[late.into()], None)
            .expect("a late end is refused quietly");
        let record = store.workers().expect("workers").remove(0);
        assert_eq!(
            record.jobs_done, 1,
            "only the first attempt was its to finish"
        );
    }

    #[test]
    fn queued_with_label_counts_what_a_worker_carrying_it_could_start_now() {
        let (_dir, store) = store();
        let gpu = |name: &str, queue: &str, labels: &[&str]| {
            let mut job = queued(name, queue, 0);
            job.runs_on = labels.iter().map(|l| (*l).to_owned()).collect();
            job
        };
        store.add_queue("held", None).expect("add queue");
        store.set_paused("held", true).expect("pause");
        detached(
            &store,
            vec![
                gpu("a", "default", &["gpu"]),
                gpu("b", "default", &["linux", "gpu"]),
                gpu("c", "default", &["gpu-big"]),
                gpu("d", "default", &[]),
                gpu("held", "held", &["gpu"]),
            ],
        );
        // A foreground run's jobs are its own.
        let mut owned = run("wf", vec![gpu("owned", "default", &["gpu"])]);
        owned.status = RunState::Running;
        store.create_run(&owned).expect("create run");
        assert_eq!(store.queued_with_label("gpu").expect("count"), 2);
        assert_eq!(store.queued_with_label("linux").expect("count"), 1);
        assert_eq!(store.queued_with_label("tpu").expect("count"), 0);
    }

    #[test]
    fn claims_follow_top_then_priority_then_age_across_pages() {
        let (_dir, store) = store();
        let worker = store.register_worker("w", &[]).expect("register");
        // More jobs of one priority than the first pages hold, in two runs.
        let mut first: Vec<NewJob> = (0..40)
            .map(|i| queued(&format!("p0-{i:02}"), "default", 0))
            .collect();
        first.push(queued("p5", "default", 5));
        first.push(queued("topped", "default", -3));
        let ids = detached(&store, first);
        detached(&store, vec![queued("later-p5", "default", 5)]);
        store.set_top(ids[41]).expect("top");
        let order = drain(&store, worker, &[]);
        assert_eq!(order.len(), 43);
        assert_eq!(order[..3], ["topped", "p5", "later-p5"]);
        let rest: Vec<String> = (0..40).map(|i| format!("p0-{i:02}")).collect();
        assert_eq!(order[3..], rest[..]);
    }

    #[test]
    fn claims_skip_owned_runs_paused_queues_and_missing_labels() {
        let (_dir, store) = store();
        let worker = store.register_worker("w", &[]).expect("register");
        // A foreground run (owned) queues its jobs in the store too: never a worker's.
        store
            .create_run(&run("wf", vec![queued("owned", "default", 9)]))
            .expect("create run");
        store.add_queue("held", None).expect("add queue");
        store.set_paused("held", true).expect("pause");
        let mut held: Vec<NewJob> = (0..100)
            .map(|i| queued(&format!("held-{i}"), "held", 9))
            .collect();
        let mut gpu = queued("gpu", "default", 9);
        gpu.runs_on = vec!["gpu".into()];
        held.push(gpu);
        held.push(queued("free", "default", 0));
        detached(&store, held);

        let plain = vec!["linux".to_owned()];
        assert!(store.oldest_runnable(&plain).expect("oldest").is_some());
        assert_eq!(drain(&store, worker, &plain), ["free"]);
        assert!(store.oldest_runnable(&plain).expect("oldest").is_none());
        let gpu = vec!["linux".to_owned(), "gpu".to_owned()];
        assert_eq!(drain(&store, worker, &gpu), ["gpu"]);
        store.set_paused("held", false).expect("resume");
        assert_eq!(drain(&store, worker, &gpu).len(), 100);
    }

    #[test]
    fn the_last_finished_job_finishes_its_run() {
        let (_dir, store) = store();
        let worker = store.register_worker("w", &[]).expect("register");
        let ids = detached(
            &store,
            vec![queued("a", "default", 0), queued("b", "default", 0)],
        );
        let run = store.job(ids[0]).expect("job").expect("exists").run_id;
        let claim = |store: &SqliteStore| {
            store
                .claim_next(worker, &[], Duration::from_secs(30), &|_, _, _| "t".into())
                .expect("claim")
                .expect("a job")
        };
        let a = claim(&store);
        assert_eq!(
            store.run(run).expect("run").expect("exists").status,
            RunState::Running
        );
        let failed = Change::Job(Transition::new(a.job.id, JobState::Failed, Utc::now()));
        let end = store
            .finish_claim(worker, a.job.id, &[failed], None)
            .expect("finish");
        assert_eq!(end.run_ended, None);
        let b = claim(&store);
        let done = Change::Job(Transition::new(b.job.id, JobState::Succeeded, Utc::now()));
        let end = store
            .finish_claim(worker, b.job.id, &[done], None)
            .expect("finish");
        assert_eq!(end.run_ended, Some(RunState::Failed));
        assert!(!end.cancelling);
    }

    #[test]
    fn finishing_and_claiming_in_one_go_takes_the_next_job_in_order() {
        let (_dir, store) = store();
        let worker = store.register_worker("w", &[]).expect("register");
        let ids = detached(
            &store,
            vec![
                queued("low", "default", 0),
                queued("high", "default", 5),
                queued("mid", "default", 1),
            ],
        );
        let run = store.job(ids[0]).expect("job").expect("exists").run_id;
        let token = |_, _, attempt| format!("t{attempt}");
        let mut current = store
            .claim_next(worker, &[], Duration::from_secs(30), &token)
            .expect("claim")
            .expect("a job");
        let mut order = vec![current.job.name.clone()];
        loop {
            let done = Change::Job(Transition::new(
                current.job.id,
                JobState::Succeeded,
                Utc::now(),
            ));
            let (end, next) = store
                .finish_and_claim(
                    worker,
                    current.job.id,
                    &[done],
                    None,
                    &[],
                    Duration::from_secs(30),
                    &token,
                )
                .expect("finish and claim");
            let Some(next) = next else {
                assert_eq!(end.run_ended, Some(RunState::Succeeded));
                break;
            };
            assert_eq!(end.run_ended, None);
            assert_eq!(next.job.status, JobState::Running);
            assert_eq!(next.job.kill_token.as_deref(), Some("t1"));
            order.push(next.job.name.clone());
            current = next;
        }
        assert_eq!(order, ["high", "mid", "low"]);
        let jobs = store.jobs(run).expect("jobs");
        assert!(jobs.iter().all(|job| job.status == JobState::Succeeded));
    }

    #[test]
    fn whether_a_run_has_jobs_left_is_answered_from_an_index() {
        let (_dir, store) = store();
        let plan: String = store
            .conn()
            .query_row(
                &format!("EXPLAIN QUERY PLAN {}", super::ACTIVE_JOB_OF_RUN),
                [1],
                |row| row.get(3),
            )
            .expect("a plan");
        assert!(plan.contains("COVERING INDEX jobs_by_run_status"), "{plan}");
    }

    #[test]
    fn a_worker_silent_without_a_job_becomes_lost_until_it_beats_again() {
        let (_dir, store) = store();
        let silent = store.register_worker("silent", &[]).expect("register");
        let alive = store.register_worker("alive", &[]).expect("register");
        let state = |store: &SqliteStore, id: WorkerId| {
            store
                .workers()
                .expect("workers")
                .into_iter()
                .find(|w| w.id == id)
                .expect("listed")
                .state
        };
        // Just registered: nothing happens.
        store.expire_leases(Utc::now()).expect("expire");
        assert_eq!(state(&store, silent), "idle");
        // 31 s later only `alive` has beaten meanwhile.
        let later = Utc::now() + chrono::Duration::seconds(31);
        store
            .conn()
            .execute(
                "UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1",
                rusqlite::params![alive.0, later.timestamp_millis()],
            )
            .expect("beat");
        store.expire_leases(later).expect("expire");
        assert_eq!(state(&store, silent), "lost");
        assert_eq!(state(&store, alive), "idle");
        // A worker that was only stopped (SIGSTOP) says so with its next heartbeat.
        store
            .heartbeat(silent, "idle", None, Duration::from_secs(30))
            .expect("heartbeat");
        assert_eq!(state(&store, silent), "idle");
    }
}
