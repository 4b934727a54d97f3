//! [`QueueStore`] and [`WorkerStore`] for PostgreSQL: queues, workers, atomic claims and
//! leases, with the rules and ordering of the SQLite store.
//!
//! A claim is one transaction. Claims run side by side: they take the environment's write
//! lock in its shared mode ([`CLAIM_LOCK_SQL`]), so they wait for every other writer and
//! every other writer waits for them, but not for each other. Between themselves they keep
//! the rules by row locks, as River and Oban do:
//!
//! - the best candidates are read in scheduler order `FOR NO KEY UPDATE SKIP LOCKED`: a job another
//!   claim is looking at is passed over, never taken twice;
//! - [`crate::scheduler::pick`] chooses among them; a queue with a concurrency limit is
//!   locked and its running jobs counted again before a job of it starts;
//! - a run's row is locked before a claim starts its first job or decides that its last job
//!   ended, so two claims never both finish a run or both leave it unfinished.
//!
//! The chosen job moves to `running` under the worker's lease before the commit. A worker
//! handing back one job and taking the next does both in one transaction; its run's end is
//! decided last, so the run's lock is held only for the commit.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use super::tx::Tx;
use chrono::{DateTime, Utc};

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

use super::read::{self, get_fit, get_flag, get_opt_fit, get_state};
use super::write::{Lease, NewAttempt, apply, start_attempt, transition_job, transition_run};
use super::{PgStore, WRITE_LOCK, to_ms};

/// The environment's write lock taken in its shared mode, by a claim: claims run beside each
/// other (keeping their rules by row locks), never beside any other writer.
const CLAIM_LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock_shared(hashtextextended(current_schema(), $1))";

/// How many times a claim is tried again after PostgreSQL broke a deadlock by aborting it.
const DEADLOCK_RETRIES: u32 = 5;

/// How many candidates a claim reads first; each further page doubles, up to
/// [`MAX_PAGE`]. Labels are matched in SQL, so a claim takes the first candidate unless its
/// run was cancelled or its queue filled meanwhile; each row read is also a row locked.
const FIRST_PAGE: i64 = 1;

/// The largest page of candidates read at once.
const MAX_PAGE: i64 = 256;

/// How a claim names the processes of the attempt it starts: run, job, attempt number.
type KillToken<'a> = &'a dyn Fn(RunId, JobId, u32) -> String;

/// A waiting job as a claim reads it, with what the claim needs of its run.
struct Row {
    id: i64,
    run: i64,
    queue: String,
    runs_on: Vec<String>,
    attempts: u32,
    queued_at: Option<i64>,
    run_status: RunState,
    cancel_requested: bool,
    request: Request,
}

/// The waiting jobs a claim may take, as [`Row`]s, best first: the jobs put on top (newest
/// `top` first), then by priority, highest first, each oldest first — one walk of the
/// `jobs_claim_order` index — skipping jobs another claim holds (`SKIP LOCKED`); those read
/// stay locked until the claim commits. It is schema 4's function, whose plan is that walk
/// whatever the statistics say. Left out: jobs that must wait for a retry delay (`$1` is
/// now), jobs of queues that cannot start anything now (paused, full: `$3`), jobs already
/// read (`$4`), jobs asking for a label the worker lacks (`$5`, the worker's labels as a
/// JSON array), and jobs of runs that have an owner — a foreground `coreflow run` queues its
/// ready jobs in the store too, and executes them itself. `$2` is the page's size.
const CANDIDATES: &str = "SELECT * FROM coreflow_claim_candidates($1, $2, $3, $4, $5)";

/// The same jobs as [`CANDIDATES`], oldest first and without locks, to tell how long work
/// has waited.
const OLDEST_CANDIDATES: &str = "
    SELECT j.id, j.run_id, j.queue, j.runs_on, j.attempts, j.queued_at,
           r.status, r.cancel_requested, j.cpu_milli, j.memory
    FROM jobs AS j JOIN runs AS r ON r.id = j.run_id
    WHERE j.status = 'queued'
      AND (j.not_before IS NULL OR j.not_before <= $1)
      AND NOT (j.queue = ANY($3))
      AND NOT (j.id = ANY($4))
      AND j.runs_on::jsonb <@ $5::text::jsonb
      AND r.owner_pid IS NULL
    ORDER BY j.queued_at, j.id
    LIMIT $2";

/// [`QueueStore::queued_with_label`]: queued jobs past their retry delay (`$1` is now),
/// whose `runs_on` holds `$2`, outside paused queues and foreground runs. The same statement
/// as SQLite's but for the JSON test.
const QUEUED_WITH_LABEL: &str = "
    SELECT count(*) FROM jobs AS j
    WHERE j.status = 'queued'
      AND (j.not_before IS NULL OR j.not_before <= $1)
      AND j.runs_on::jsonb @> jsonb_build_array($2::text)
      AND NOT EXISTS (SELECT 1 FROM queues AS q WHERE q.name = j.queue AND q.paused <> 0)
      AND NOT EXISTS (SELECT 1 FROM runs AS r
                      WHERE r.id = j.run_id AND r.owner_pid IS NOT NULL)";

/// Waiting jobs in scheduler order ([`CANDIDATES`]), a page at a time: most claims take the
/// first candidate; each further page doubles, up to [`MAX_PAGE`].
///
/// It reads through the transaction it is handed at each call, so that the claim may write
/// between pages.
struct Candidates {
    now_ms: i64,
    /// The worker's labels, a JSON array.
    labels: String,
    /// The queues that admit nothing now.
    blocked: Vec<String>,
    /// The jobs read so far.
    seen: Vec<i64>,
    page: i64,
    done: bool,
    /// [`CANDIDATES`] or [`OLDEST_CANDIDATES`].
    sql: &'static str,
}

impl Candidates {
    fn new(now_ms: i64, labels: &[String], loads: &HashMap<String, QueueLoad>) -> Self {
        let blocked = loads
            .iter()
            .filter(|(_, load)| !load.admits())
            .map(|(name, _)| name.clone())
            .collect();
        Candidates {
            now_ms,
            labels: serde_json::to_string(labels).unwrap_or_else(|_| "[]".to_owned()),
            blocked,
            seen: Vec::new(),
            page: FIRST_PAGE,
            done: false,
            sql: CANDIDATES,
        }
    }

    /// The same jobs oldest first, unlocked (for a read-only transaction).
    fn oldest_first(mut self) -> Self {
        self.sql = OLDEST_CANDIDATES;
        self
    }

    /// Leaves the jobs of `queue` unread from now on.
    fn block(&mut self, queue: &str) {
        self.blocked.push(queue.to_owned());
    }

    /// The next page; empty when every candidate has been read.
    fn next_page(&mut self, tx: &mut Tx<'_>) -> Result<Vec<Row>, Error> {
        if self.done {
            return Ok(Vec::new());
        }
        let rows = tx.query(
            self.sql,
            &[
                &self.now_ms,
                &self.page,
                &self.blocked,
                &self.seen,
                &self.labels,
            ],
        )?;
        if usize::try_from(self.page).is_ok_and(|page| rows.len() < page) {
            self.done = true;
        }
        self.page = (self.page * 2).min(MAX_PAGE);
        let rows = rows
            .iter()
            .map(|row| {
                let runs_on: String = row.try_get(3)?;
                Ok(Row {
                    id: row.try_get(0)?,
                    run: row.try_get(1)?,
                    queue: row.try_get(2)?,
                    runs_on: serde_json::from_str(&runs_on).unwrap_or_default(),
                    attempts: get_fit(row, 4)?,
                    queued_at: row.try_get(5)?,
                    run_status: get_state(row, 6)?,
                    cancel_requested: get_flag(row, 7)?,
                    request: Request::from_milli(row.try_get(8)?, row.try_get(9)?),
                })
            })
            .collect::<Result<Vec<Row>, Error>>()?;
        self.seen.extend(rows.iter().map(|row| row.id));
        Ok(rows)
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

/// A worker's offer and what the running jobs of its host's workers ask (`$1` is the
/// worker). The same statement as SQLite's.
const HOST_ROOM: &str = "
    SELECT w.cpu_milli, w.memory,
           coalesce(sum(j.cpu_milli), 0)::BIGINT, coalesce(sum(j.memory), 0)::BIGINT
    FROM workers AS w
    LEFT JOIN workers AS o ON o.host = w.host
    LEFT JOIN jobs AS j ON j.worker_id = o.id AND j.status = 'running'
    WHERE w.id = $1
    GROUP BY w.id";

/// Claims run side by side (they share the write lock): those admitting requests on one
/// host take turns, so that two of them never give away the same CPUs. `$1` is the worker,
/// `$2` the lock's seed.
const HOST_LOCK_SQL: &str = "
    SELECT pg_advisory_xact_lock(
        hashtextextended(current_schema() || '/' || (SELECT host FROM workers WHERE id = $1), $2))";

/// The seed of [`HOST_LOCK_SQL`].
const HOST_LOCK: i64 = 0x486f_7374_526f_6f6d; // "HostRoom"

/// What `worker`'s host has left, under the host's lock: the worker's offer, less what the
/// running jobs of every worker of its host ask. `None` for a worker that offers nothing in
/// particular (it admits by count only).
fn host_room(tx: &mut Tx<'_>, worker: WorkerId) -> Result<Option<Room>, Error> {
    tx.execute(HOST_LOCK_SQL, &[&worker.0, &HOST_LOCK])?;
    let Some(row) = tx.query_opt(HOST_ROOM, &[&worker.0])? else {
        return Ok(None);
    };
    let (cpu_milli, memory): (Option<i64>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    Ok(match (cpu_milli, memory) {
        (Some(cpu_milli), Some(memory)) => Some(Room::new(
            Offer::from_milli(cpu_milli, memory),
            Request::from_milli(row.try_get(2)?, row.try_get(3)?),
        )),
        _ => None,
    })
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A count as a `u32`.
fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// A lease's length in milliseconds.
fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

fn queue_loads(tx: &mut Tx<'_>) -> Result<HashMap<String, QueueLoad>, Error> {
    let rows = tx.query(
        "SELECT q.name, q.concurrency, q.paused,
                (SELECT count(*) FROM jobs AS j WHERE j.queue = q.name AND j.status = 'running')
         FROM queues AS q",
        &[],
    )?;
    let mut loads = HashMap::new();
    for row in rows {
        loads.insert(
            row.try_get::<_, String>(0)?,
            QueueLoad {
                concurrency: get_opt_fit(&row, 1)?,
                paused: get_flag(&row, 2)?,
                running: count(row.try_get(3)?),
            },
        );
    }
    Ok(loads)
}

impl PgStore {
    /// A claim's transaction on this thread, for work that cannot be sent to another one (it
    /// calls a claim's `kill_token`): after the shared write lock ([`CLAIM_LOCK_SQL`]), tried
    /// again when PostgreSQL aborted it to break a deadlock between claims' row locks. The
    /// caller makes sure no tokio runtime drives this thread (see [`super::outside_runtime`]).
    fn claim_here<T>(&self, work: impl Fn(&mut Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let mut connection = self.client();
        let mut tries = 0;
        loop {
            let attempt = (|| {
                let mut tx = connection.transaction()?;
                tx.execute(CLAIM_LOCK_SQL, &[&WRITE_LOCK])?;
                let value = work(&mut tx)?;
                tx.commit()?;
                Ok(value)
            })();
            match attempt {
                Err(Error::Postgres(error))
                    if error.code() == Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
                        && tries < DEADLOCK_RETRIES =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs `work` in a claim's transaction ([`PgStore::claim_here`]) with a claim's
    /// `kill_token`, which may be neither sent nor shared between threads. Outside a tokio
    /// runtime all runs on this thread; inside one the transaction runs on a scoped thread of
    /// its own, as every call of the store does, and asks this thread for each token it needs.
    fn write_claiming<T: Send>(
        &self,
        kill_token: KillToken<'_>,
        work: impl Fn(&mut Tx<'_>, KillToken<'_>) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.claim_here(|tx| work(tx, kill_token));
        }
        let (ask, asked) = mpsc::channel::<(RunId, JobId, u32)>();
        let (answer, answered) = mpsc::channel::<String>();
        let answered = Mutex::new(answered);
        std::thread::scope(|scope| {
            let transaction = scope.spawn(move || {
                // Set when this thread got no answer: the other one is unwinding from a
                // panic of `kill_token`, and nothing of this transaction may be kept.
                let unanswered = Cell::new(false);
                let token = |run, job, attempt| {
                    let answer = ask.send((run, job, attempt)).ok().and_then(|()| {
                        answered
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv()
                            .ok()
                    });
                    answer.unwrap_or_else(|| {
                        unanswered.set(true);
                        String::new()
                    })
                };
                let result = self.claim_here(|tx| {
                    let value = work(tx, &token)?;
                    if unanswered.get() {
                        // Dropping the transaction rolls it back.
                        return Err(Error::Environment {
                            path: self.dir().to_owned(),
                            detail: "a claim's kill token could not be made".to_owned(),
                        });
                    }
                    Ok(value)
                });
                drop(ask);
                result
            });
            // Ends when the transaction's thread is done and drops its sender.
            for (run, job, attempt) in asked {
                if answer.send(kill_token(run, job, attempt)).is_err() {
                    break;
                }
            }
            transaction
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl QueueStore for PgStore {
    fn queues(&self) -> Result<Vec<QueueRecord>, Error> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT q.name, q.concurrency, q.paused,
                        (SELECT count(*) FROM jobs AS j WHERE j.queue = q.name AND j.status = 'queued'),
                        (SELECT count(*) FROM jobs AS j WHERE j.queue = q.name AND j.status = 'running')
                 FROM queues AS q ORDER BY q.name COLLATE \"C\"",
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(QueueRecord {
                        name: row.try_get(0)?,
                        concurrency: get_opt_fit(row, 1)?,
                        paused: get_flag(row, 2)?,
                        depth: count(row.try_get(3)?),
                        running: count(row.try_get(4)?),
                    })
                })
                .collect::<Result<_, postgres::Error>>()
                .map_err(Error::from)
        })
    }

    fn add_queue(&self, name: &str, concurrency: Option<u32>) -> Result<bool, Error> {
        let now = self.now();
        let concurrency = concurrency.map(i64::from);
        self.write(|tx| {
            let created = tx.execute(
                "INSERT INTO queues (name, concurrency, paused, created_at)
                 VALUES ($1, $2, 0, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &concurrency, &to_ms(now)],
            )? > 0;
            if !created {
                tx.execute(
                    "UPDATE queues SET concurrency = $2 WHERE name = $1",
                    &[&name, &concurrency],
                )?;
            }
            Ok(created)
        })
    }

    fn set_paused(&self, name: &str, paused: bool) -> Result<bool, Error> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE queues SET paused = $2 WHERE name = $1",
                &[&name, &i64::from(paused)],
            )? > 0)
        })
    }

    fn remove_queue(&self, name: &str, force: bool) -> Result<RemoveOutcome, Error> {
        let now = self.now();
        self.write(|tx| {
            let exists = tx
                .query_opt("SELECT 1 FROM queues WHERE name = $1", &[&name])?
                .is_some();
            if !exists {
                return Ok(RemoveOutcome::NotFound);
            }
            let held: Vec<(i64, i64, String)> = tx
                .query(
                    "SELECT id, run_id, status FROM jobs
                     WHERE queue = $1 AND status IN ('pending', 'queued', 'running')
                     ORDER BY id",
                    &[&name],
                )?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<_, postgres::Error>>()?;
            if !held.is_empty() && !force {
                return Ok(RemoveOutcome::Busy(
                    u32::try_from(held.len()).unwrap_or(u32::MAX),
                ));
            }
            let mut runs: Vec<RunId> = Vec::new();
            for (id, run, status) in held {
                let run = RunId(run);
                if !runs.contains(&run) {
                    runs.push(run);
                }
                if status == "running" {
                    tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = $1", &[&id])?;
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
                tx.execute("DELETE FROM queues WHERE name = $1", &[&name])?;
            }
            Ok(RemoveOutcome::Removed(runs))
        })
    }

    fn set_top(&self, job: JobId) -> Result<(), Error> {
        self.write(|tx| {
            tx.execute(
                "UPDATE jobs SET top_seq = (SELECT coalesce(max(top_seq), 0) + 1 FROM jobs)
                 WHERE id = $1",
                &[&job.0],
            )?;
            Ok(())
        })
    }

    fn watch_work(&self, wake: std::sync::Arc<tokio::sync::Notify>) -> bool {
        match self.listen_for_work(wake) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for work; polling");
                false
            }
        }
    }

    fn queued_with_label(&self, label: &str) -> Result<u32, Error> {
        let now = to_ms(self.now());
        let label = label.to_owned();
        self.read(move |tx| {
            let row = tx.query_one(QUEUED_WITH_LABEL, &[&now, &label])?;
            Ok(count(row.try_get(0)?))
        })
    }

    fn oldest_runnable(&self, labels: &[String]) -> Result<Option<DateTime<Utc>>, Error> {
        let now = to_ms(self.now());
        self.read(|tx| {
            let loads = queue_loads(tx)?;
            // Read oldest first, without locks: the first that fits is the oldest.
            let mut candidates = Candidates::new(now, labels, &loads).oldest_first();
            loop {
                let rows = candidates.next_page(tx)?;
                if rows.is_empty() {
                    return Ok(None);
                }
                if let Some(index) = first_fitting(&rows, labels, &loads, None) {
                    return Ok(Some(from_ms(rows[index].queued_at.unwrap_or(now))));
                }
            }
        })
    }

    fn claim_next(
        &self,
        worker: WorkerId,
        labels: &[String],
        lease: Duration,
        kill_token: KillToken<'_>,
    ) -> Result<Option<Claimed>, Error> {
        let now = self.now();
        self.write_claiming(kill_token, |tx, kill_token| {
            let next = claim_next_tx(tx, worker, labels, lease, kill_token, now)?;
            set_worker(tx, worker, next.as_ref(), false, now)?;
            Ok(next)
        })
    }

    fn finish_claim(
        &self,
        worker: WorkerId,
        job: JobId,
        changes: &[Change],
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<ClaimEnd, Error> {
        let now = self.now();
        // No job is claimed, so no kill token is asked for.
        super::outside_runtime(|| {
            self.claim_here(|tx| {
                let run = finish_claim_tx(tx, worker, job, changes, retry_at)?;
                set_worker(tx, worker, None, run.is_some(), now)?;
                run.map_or(Ok(ClaimEnd::default()), |run| run_end(tx, run, now))
            })
        })
    }

    fn finish_and_claim(
        &self,
        worker: WorkerId,
        job: JobId,
        changes: &[Change],
        retry_at: Option<DateTime<Utc>>,
        labels: &[String],
        lease: Duration,
        kill_token: KillToken<'_>,
    ) -> Result<(ClaimEnd, Option<Claimed>), Error> {
        let now = self.now();
        self.write_claiming(kill_token, |tx, kill_token| {
            let run = finish_claim_tx(tx, worker, job, changes, retry_at)?;
            let next = claim_next_tx(tx, worker, labels, lease, kill_token, now)?;
            set_worker(tx, worker, next.as_ref(), run.is_some(), now)?;
            // Last: the run's lock is held from here to the commit only.
            let end = run.map_or(Ok(ClaimEnd::default()), |run| run_end(tx, run, now))?;
            Ok((end, next))
        })
    }

    fn run_jobs(&self, run: RunId) -> Result<Vec<RunJob>, Error> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, name, base_name, matrix, needs, status FROM jobs
                 WHERE run_id = $1 ORDER BY id",
                &[&run.0],
            )?;
            let mut jobs = Vec::with_capacity(rows.len());
            for row in rows {
                let matrix: Option<String> = row.try_get(3)?;
                let needs: String = row.try_get(4)?;
                jobs.push(RunJob {
                    id: JobId(row.try_get(0)?),
                    name: row.try_get(1)?,
                    base_name: row.try_get(2)?,
                    matrix: match matrix {
                        Some(text) => serde_json::from_str(&text)?,
                        None => serde_json::Value::Null,
                    },
                    needs: serde_json::from_str(&needs)?,
                    status: get_state(&row, 5)?,
                });
            }
            Ok(jobs)
        })
    }

    fn advance(&self, run: RunId, decisions: &[Advance]) -> Result<Option<RunState>, Error> {
        let now = self.now();
        self.write(|tx| {
            for decision in decisions {
                let Some(row) = tx.query_opt(
                    "SELECT status FROM jobs WHERE id = $1",
                    &[&decision.transition.job.0],
                )?
                else {
                    continue;
                };
                if get_state::<JobState>(&row, 0)? == decision.from {
                    transition_job(tx, &decision.transition)?;
                }
            }
            finish_if_done(tx, run, now)
        })
    }
}

impl WorkerStore for PgStore {
    fn register_worker(&self, name: &str, labels: &[String]) -> Result<WorkerId, Error> {
        let now = to_ms(self.now());
        let labels = serde_json::to_string(labels)?;
        let start_time = i64::try_from(Owner::current().start_time).unwrap_or(0);
        self.write(|tx| {
            let id: i64 = tx
                .query_one(
                    "INSERT INTO workers (name, labels, pid, host, started_at, heartbeat_at,
                                          state, start_time)
                     VALUES ($1, $2, $3, $4, $5, $5, 'idle', $6)
                     RETURNING id",
                    &[
                        &name,
                        &labels,
                        &i64::from(std::process::id()),
                        &host_identity(),
                        &now,
                        &start_time,
                    ],
                )?
                .try_get(0)?;
            Ok(WorkerId(id))
        })
    }

    fn heartbeat(
        &self,
        worker: WorkerId,
        state: &str,
        job: Option<JobId>,
        lease: Duration,
    ) -> Result<Heartbeat, Error> {
        let now = to_ms(self.now());
        self.write(|tx| {
            tx.execute(
                "UPDATE workers SET heartbeat_at = $2, state = $3, current_job = $4 WHERE id = $1",
                &[&worker.0, &now, &state, &job.map(|j| j.0)],
            )?;
            let move_to: Option<String> = tx
                .query_opt("SELECT move_to FROM workers WHERE id = $1", &[&worker.0])?
                .map(|row| row.try_get(0))
                .transpose()?
                .flatten();
            let mut cancel_current = false;
            if let Some(job) = job {
                let expires = now + lease_ms(lease);
                tx.execute(
                    "UPDATE jobs SET lease_expires = $3 WHERE id = $1 AND worker_id = $2",
                    &[&job.0, &worker.0, &expires],
                )?;
                let row = tx.query_opt(
                    "SELECT j.status, j.cancel_requested, r.cancel_requested, j.worker_id
                     FROM jobs AS j JOIN runs AS r ON r.id = j.run_id WHERE j.id = $1",
                    &[&job.0],
                )?;
                cancel_current = match row {
                    Some(row) => {
                        let status: String = row.try_get(0)?;
                        let job_flag: i64 = row.try_get(1)?;
                        let run_flag: i64 = row.try_get(2)?;
                        let holder: Option<i64> = row.try_get(3)?;
                        status != "running"
                            || job_flag != 0
                            || run_flag != 0
                            || holder != Some(worker.0)
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
            let rows = tx.query(
                "SELECT w.id, w.name, w.labels, w.pid, w.host, w.state, w.current_job,
                        w.jobs_done, w.started_at, w.heartbeat_at, w.move_to, w.cpu_milli,
                        w.memory, w.enforcement, coalesce(j.cpu_milli, 0), coalesce(j.memory, 0)
                 FROM workers AS w
                 LEFT JOIN jobs AS j ON j.id = w.current_job AND j.status = 'running'
                 ORDER BY w.id DESC",
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    let labels: String = row.try_get(2)?;
                    Ok(WorkerRecord {
                        id: WorkerId(row.try_get(0)?),
                        name: row.try_get(1)?,
                        labels: serde_json::from_str(&labels).unwrap_or_default(),
                        pid: get_fit(row, 3)?,
                        host: row.try_get(4)?,
                        state: row.try_get(5)?,
                        current_job: row.try_get::<_, Option<i64>>(6)?.map(JobId),
                        jobs_done: u64::try_from(row.try_get::<_, i64>(7)?).unwrap_or(0),
                        started_at: from_ms(row.try_get(8)?),
                        heartbeat_at: from_ms(row.try_get(9)?),
                        move_to: row.try_get(10)?,
                        offer: match (row.try_get(11)?, row.try_get(12)?) {
                            (Some(cpu_milli), Some(memory)) => {
                                Some(Offer::from_milli(cpu_milli, memory))
                            }
                            _ => None,
                        },
                        enforcement: row.try_get(13)?,
                        used: Request::from_milli(row.try_get(14)?, row.try_get(15)?),
                    })
                })
                .collect::<Result<_, postgres::Error>>()
                .map_err(Error::from)
        })
    }

    fn set_worker_offer(
        &self,
        worker: WorkerId,
        offer: Offer,
        enforcement: &str,
    ) -> Result<(), Error> {
        let (cpu_milli, memory) = offer.as_milli();
        let enforcement = enforcement.to_owned();
        self.write(|tx| {
            tx.execute(
                "UPDATE workers SET cpu_milli = $2, memory = $3, enforcement = $4 WHERE id = $1",
                &[&worker.0, &cpu_milli, &memory, &enforcement],
            )?;
            Ok(())
        })
    }

    fn request_move(&self, worker: &str, to: &str) -> Result<bool, Error> {
        let id: i64 = worker.parse().unwrap_or(-1);
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE workers SET move_to = $3
                 WHERE (id = $1 OR name = $2) AND state NOT IN ('stopped', 'moved')",
                &[&id, &worker, &to],
            )? > 0)
        })
    }

    fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostJob>, Error> {
        self.write(|tx| {
            // A worker of this host whose process is gone holds its jobs no longer: their
            // leases end now, not when they run out (SPEC §7: a restart takes them back at
            // once).
            let holders: Vec<(i64, u32, i64)> = tx
                .query(
                    "SELECT DISTINCT w.id, w.pid, w.start_time
                     FROM jobs j JOIN workers w ON w.id = j.worker_id
                     WHERE j.status = 'running' AND w.host = $1 AND w.start_time <> 0",
                    &[&host_identity()],
                )?
                .iter()
                .map(|row| Ok((row.try_get(0)?, get_fit(row, 1)?, row.try_get(2)?)))
                .collect::<Result<_, postgres::Error>>()?;
            for (worker, pid, start_time) in holders {
                let owner = Owner {
                    pid,
                    start_time: u64::try_from(start_time).unwrap_or(0),
                    host: host_identity().to_owned(),
                };
                if !owner_is_alive(&owner) {
                    tx.execute(
                        "UPDATE jobs SET lease_expires = 0
                         WHERE worker_id = $1 AND status = 'running'",
                        &[&worker],
                    )?;
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
                .query(
                    "SELECT id, run_id, name, kill_token, attempts - attempts_before_retry,
                            max_attempts, worker_id
                     FROM jobs
                     WHERE status = 'running' AND worker_id IS NOT NULL AND lease_expires < $1",
                    &[&to_ms(now)],
                )?
                .iter()
                .map(|row| {
                    Ok(Expired {
                        id: row.try_get(0)?,
                        run: row.try_get(1)?,
                        name: row.try_get(2)?,
                        kill_token: row.try_get(3)?,
                        attempts: get_fit(row, 4)?,
                        max_attempts: get_fit(row, 5)?,
                        worker: row.try_get(6)?,
                    })
                })
                .collect::<Result<_, postgres::Error>>()?;
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
                tx.execute(
                    "UPDATE jobs SET worker_id = NULL, lease_expires = NULL WHERE id = $1",
                    &[&id],
                )?;
                // Its worker stopped heartbeating: `coreflow workers` shows it `lost` (a
                // worker that was only slow sets its state again with its next heartbeat).
                tx.execute(
                    "UPDATE workers SET state = 'lost', current_job = NULL
                     WHERE id = $1 AND state NOT IN ('stopped', 'moved')",
                    &[&worker],
                )?;
                lost.push(LostJob {
                    job,
                    run: RunId(run),
                    name,
                    kill_token,
                });
            }
            // A worker that holds no job has no lease to expire: one silent for longer than
            // any lease's worth of heartbeats (they come every second at most) is gone too.
            tx.execute(
                "UPDATE workers SET state = 'lost'
                 WHERE state IN ('idle', 'busy', 'stopping') AND current_job IS NULL
                   AND heartbeat_at < $1",
                &[&(to_ms(now) - SILENT_WORKER_MS)],
            )?;
            // Workers that ended long ago are forgotten: the table stays as small as the pool.
            tx.execute(
                "DELETE FROM workers
                 WHERE state IN ('stopped', 'moved', 'lost') AND heartbeat_at < $1
                   AND id NOT IN (SELECT worker_id FROM jobs
                                  WHERE status = 'running' AND worker_id IS NOT NULL)",
                &[&to_ms(now - WORKER_RETENTION)],
            )?;
            Ok(lost)
        })
    }

    fn stop_worker(&self, worker: WorkerId) -> Result<(), Error> {
        self.write(|tx| {
            tx.execute(
                "UPDATE workers SET state = 'stopped', current_job = NULL WHERE id = $1",
                &[&worker.0],
            )?;
            Ok(())
        })
    }
}

/// How long a worker without a job may go without a heartbeat before `coreflow workers`
/// shows it `lost`: it heartbeats every second at most; 30 s is the default lease.
const SILENT_WORKER_MS: i64 = 30_000;

/// Whether run `$1` has a job left to end: asked after every job a worker finishes, so it
/// must be answered from the `(run_id, status)` index, not by reading the run's every job.
const ACTIVE_JOB_OF_RUN: &str =
    "SELECT 1 FROM jobs WHERE run_id = $1 AND status IN ('pending', 'queued', 'running') LIMIT 1";

/// Gives `run` its final state once every job of it has ended: cancelled when it was asked
/// to cancel or a job was cancelled, failed when a job failed or timed out, else succeeded.
/// Cheap while jobs remain (it stops at the first one), as it runs after every job.
///
/// The run's row is locked first: claims run side by side, and of two that end a run's last
/// two jobs, the second to get here sees the first's end (each statement of a `READ
/// COMMITTED` transaction sees what was committed before it began).
fn finish_if_done(
    tx: &mut Tx<'_>,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<Option<RunState>, Error> {
    Ok(finish_locked(tx, run, now)?.0)
}

/// [`finish_if_done`], also telling whether the run was asked to cancel.
fn finish_locked(
    tx: &mut Tx<'_>,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<(Option<RunState>, bool), Error> {
    let row = tx
        .query_opt(
            "SELECT status, cancel_requested FROM runs WHERE id = $1 FOR NO KEY UPDATE",
            &[&run.0],
        )?
        .ok_or(Error::RunNotFound(run))?;
    let current: RunState = get_state(&row, 0)?;
    let cancel_requested = get_flag(&row, 1)?;
    if current.is_terminal() || tx.query_opt(ACTIVE_JOB_OF_RUN, &[&run.0])?.is_some() {
        return Ok((None, cancel_requested));
    }
    let row = tx.query_one(
        "SELECT count(*) FILTER (WHERE status IN ('failed', 'timed_out')
                                      AND continue_on_error = 0),
                count(*) FILTER (WHERE status = 'cancelled')
         FROM jobs WHERE run_id = $1",
        &[&run.0],
    )?;
    let (failed, cancelled): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
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
        start_run(tx, run, now)?;
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
    Ok((Some(to), cancel_requested))
}

/// Moves a queued run to `running`.
fn start_run(tx: &mut Tx<'_>, run: RunId, now: DateTime<Utc>) -> Result<(), Error> {
    transition_run(
        tx,
        &RunTransition {
            run,
            to: RunState::Running,
            at: now,
            reason: None,
        },
    )
}

/// What a worker learns about the run of the job it handed back.
fn run_end(tx: &mut Tx<'_>, run: RunId, now: DateTime<Utc>) -> Result<ClaimEnd, Error> {
    let (run_ended, cancelling) = finish_locked(tx, run, now)?;
    Ok(ClaimEnd {
        run_ended,
        cancelling,
    })
}

/// Records a worker's state after a claim's transaction: busy with the job it took, else
/// idle; `done` counts the job it handed back.
fn set_worker(
    tx: &mut Tx<'_>,
    worker: WorkerId,
    next: Option<&Claimed>,
    done: bool,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let job = next.map(|claimed| claimed.job.id.0);
    tx.execute(
        "UPDATE workers SET state = CASE WHEN $2::BIGINT IS NULL THEN 'idle' ELSE 'busy' END,
             current_job = $2, heartbeat_at = $3, jobs_done = jobs_done + $4
         WHERE id = $1",
        &[&worker.0, &job, &to_ms(now), &i64::from(done)],
    )?;
    Ok(())
}

/// Whether a job of `queue` may start beside what runs: for a queue with a concurrency
/// limit, decided under the queue's row lock, so that two claims side by side cannot both
/// take its last place (the second counts again once the first has committed).
fn admitted(
    tx: &mut Tx<'_>,
    queue: &str,
    loads: &mut HashMap<String, QueueLoad>,
) -> Result<bool, Error> {
    let Some(load) = loads.get_mut(queue) else {
        return Ok(true);
    };
    let Some(limit) = load.concurrency else {
        return Ok(true);
    };
    tx.execute(
        "SELECT 1 FROM queues WHERE name = $1 FOR NO KEY UPDATE",
        &[&queue],
    )?;
    let running: i64 = tx
        .query_one(
            "SELECT count(*) FROM jobs WHERE queue = $1 AND status = 'running'",
            &[&queue],
        )?
        .try_get(0)?;
    load.running = count(running);
    Ok(load.running < limit)
}

/// Takes the best queued job this worker may run, in the caller's claim transaction.
fn claim_next_tx(
    tx: &mut Tx<'_>,
    worker: WorkerId,
    labels: &[String],
    lease: Duration,
    kill_token: KillToken<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>, Error> {
    let now_ms = to_ms(now);
    let mut loads = queue_loads(tx)?;
    let mut candidates = Candidates::new(now_ms, labels, &loads);
    // What the host has left, read once a job with a request comes up.
    let mut room: Option<Option<Room>> = None;
    loop {
        let page = candidates.next_page(tx)?;
        if page.is_empty() {
            return Ok(None);
        }
        if room.is_none() && page.iter().any(|row| !row.request.is_empty()) {
            room = Some(host_room(tx, worker)?);
        }
        let mut rest = &page[..];
        while let Some(index) =
            first_fitting(rest, labels, &loads, room.as_mut().and_then(Option::as_mut))
        {
            let row = &rest[index];
            rest = &rest[index + 1..];
            let (job, run) = (JobId(row.id), RunId(row.run));
            if row.cancel_requested {
                // SPEC §3: a cancelled run's queued jobs are dropped, not started. The
                // worker still running a job of it finishes the run.
                transition_job(
                    tx,
                    &Transition::new(job, JobState::Cancelled, now).reason(REASON_CANCELLED),
                )?;
                if let Some(Some(room)) = room.as_mut() {
                    room.give_back(row.request);
                }
                continue;
            }
            if !admitted(tx, &row.queue, &mut loads)? {
                candidates.block(&row.queue);
                if let Some(Some(room)) = room.as_mut() {
                    room.give_back(row.request);
                }
                continue;
            }
            let number = row.attempts + 1;
            let token = kill_token(run, job, number);
            start_attempt(
                tx,
                &NewAttempt {
                    job,
                    number,
                    at: now_ms,
                    reason: None,
                    kill_token: Some(&token),
                },
                Some(&Lease {
                    worker: worker.0,
                    expires: now_ms + lease_ms(lease),
                }),
            )?;
            if row.run_status == RunState::Queued {
                // Its first job: the run starts, under its lock (another claim may be
                // starting a job of it too).
                let current: RunState = get_state(
                    &tx.query_one(
                        "SELECT status FROM runs WHERE id = $1 FOR NO KEY UPDATE",
                        &[&run.0],
                    )?,
                    0,
                )?;
                if current == RunState::Queued {
                    start_run(tx, run, now)?;
                }
            }
            // The job and its needs, read under its lock: the needs have ended and cannot
            // change any more.
            return claimed_job(tx, job, run).map(Some);
        }
    }
}

/// Records the end of a claimed attempt, in the caller's claim transaction; returns the
/// job's run, or `None` when the job was taken from this worker meanwhile (its lease ended,
/// it was cancelled): then the attempt's end is no longer this worker's to record.
fn finish_claim_tx(
    tx: &mut Tx<'_>,
    worker: WorkerId,
    job: JobId,
    changes: &[Change],
    retry_at: Option<DateTime<Utc>>,
) -> Result<Option<RunId>, Error> {
    let run = tx.query_opt(
        "UPDATE jobs SET worker_id = NULL, lease_expires = NULL, not_before = $3
         WHERE id = $1 AND worker_id = $2 AND status = 'running'
         RETURNING run_id",
        &[&job.0, &worker.0, &retry_at.map(to_ms)],
    )?;
    let Some(run) = run else {
        return Ok(None);
    };
    apply(tx, changes)?;
    Ok(Some(RunId(run.try_get(0)?)))
}

/// A claimed job with its run and its needs (their outputs, not their attempts).
fn claimed_job(tx: &mut Tx<'_>, job: JobId, run: RunId) -> Result<Claimed, Error> {
    let record = read::run(tx, run)?.ok_or(Error::RunNotFound(run))?;
    let (job, needs) = read::claimed_jobs(tx, job, run, |job| job.needs.clone())?;
    Ok(Claimed {
        job,
        run: record,
        needs,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::super::PgStore;
    use super::super::test_support::store;
    use crate::state::{JobState, RunState};
    use crate::store::queues::QueueStore;
    use crate::store::runs::{Change, NewJob, RunStore, Transition};
    use crate::store::test_support::{job, run};
    use crate::store::workers::{WorkerId, WorkerStore};

    fn queued(name: &str, queue: &str, priority: i64) -> NewJob {
        let mut job = job(name, &[], JobState::Queued);
        job.queue = queue.to_owned();
        job.priority = priority;
        job
    }

    /// A run nobody owns (`run --detach`), as workers take them.
    fn detached(store: &PgStore, jobs: Vec<NewJob>) -> Vec<crate::state::JobId> {
        let mut new = run("wf", jobs);
        new.owner = None;
        new.status = RunState::Queued;
        store.create_run(&new).expect("create run").1
    }

    /// Names of the jobs a worker claims, one after the other, until nothing is left.
    fn drain(store: &PgStore, worker: WorkerId, labels: &[String]) -> Vec<String> {
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
        let store = store();
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
    fn claims_follow_top_then_priority_then_age_across_pages() {
        let store = store();
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
        let store = store();
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
        let store = store();
        let worker = store.register_worker("w", &[]).expect("register");
        let ids = detached(
            &store,
            vec![queued("a", "default", 0), queued("b", "default", 0)],
        );
        let run = store.job(ids[0]).expect("job").expect("exists").run_id;
        let claim = |store: &PgStore| {
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
        let store = store();
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

    /// Claims run side by side (shared lock, row locks): eight workers, each with its own
    /// connection, racing over two runs, one of them in a queue that runs one job at a time.
    #[test]
    fn racing_claims_take_each_job_once_keep_queue_limits_and_finish_every_run() {
        let url = super::super::test_support::fresh_url();
        let store = PgStore::open(&url).expect("open");
        store.add_queue("one", Some(1)).expect("queue");
        let free = detached(
            &store,
            (0..60)
                .map(|i| queued(&format!("f{i}"), "default", 0))
                .collect(),
        );
        let limited = detached(
            &store,
            (0..20)
                .map(|i| queued(&format!("l{i}"), "one", 0))
                .collect(),
        );
        let running_in_one = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let url = url.clone();
                let running_in_one = std::sync::Arc::clone(&running_in_one);
                std::thread::spawn(move || {
                    let store = PgStore::open(&url).expect("open");
                    let worker = store
                        .register_worker(&format!("w{n}"), &[])
                        .expect("register");
                    let mut taken = Vec::new();
                    while let Some(claimed) = store
                        .claim_next(worker, &[], Duration::from_secs(30), &|_, _, _| "t".into())
                        .expect("claim")
                    {
                        let in_one = claimed.job.queue == "one";
                        if in_one {
                            let before =
                                running_in_one.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            assert_eq!(before, 0, "two jobs of queue `one` ran at once");
                        }
                        taken.push(claimed.job.id);
                        let done = Change::Job(Transition::new(
                            claimed.job.id,
                            JobState::Succeeded,
                            Utc::now(),
                        ));
                        if in_one {
                            running_in_one.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        store
                            .finish_claim(worker, claimed.job.id, &[done], None)
                            .expect("finish");
                    }
                    taken
                })
            })
            .collect();
        let mut taken: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("worker"))
            .collect();
        taken.sort_by_key(|id| id.0);
        let mut expected: Vec<_> = free.iter().chain(&limited).copied().collect();
        expected.sort_by_key(|id| id.0);
        assert_eq!(taken, expected, "every job taken exactly once");
        for job in free.iter().chain(&limited) {
            let run = store.job(*job).expect("job").expect("exists").run_id;
            assert_eq!(
                store.run(run).expect("run").expect("exists").status,
                RunState::Succeeded
            );
        }
    }

    #[test]
    fn whether_a_run_has_jobs_left_is_answered_from_an_index() {
        let store = store();
        let plan: Vec<String> = store
            .read(|tx| {
                // Whatever the table's size: the question is whether the index serves it.
                tx.batch_execute("SET LOCAL enable_seqscan = off")?;
                let rows = tx.query(&format!("EXPLAIN {}", super::ACTIVE_JOB_OF_RUN), &[&1_i64])?;
                Ok(rows.iter().map(|row| row.get(0)).collect())
            })
            .expect("a plan");
        assert!(
            plan.iter()
                .any(|line| line.contains("Index Only Scan using jobs_by_run_status")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_worker_silent_without_a_job_becomes_lost_until_it_beats_again() {
        let store = store();
        let silent = store.register_worker("silent", &[]).expect("register");
        let alive = store.register_worker("alive", &[]).expect("register");
        let state = |store: &PgStore, id: WorkerId| {
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
            .write(|tx| {
                tx.execute(
                    "UPDATE workers SET heartbeat_at = $2 WHERE id = $1",
                    &[&alive.0, &later.timestamp_millis()],
                )?;
                Ok(())
            })
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

    #[test]
    fn claims_work_inside_a_tokio_runtime_with_a_token_bound_to_this_thread() {
        let store = store();
        let worker = store.register_worker("w", &[]).expect("register");
        let ids = detached(
            &store,
            vec![queued("a", "default", 1), queued("b", "default", 0)],
        );
        // A kill token function that may not leave this thread.
        let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let token = |run, job, attempt| {
            asked.borrow_mut().push(job);
            format!("cf-{run}-{job}-{attempt}")
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let lease = Duration::from_secs(30);
        runtime.block_on(async {
            let first = store
                .claim_next(worker, &[], lease, &token)
                .expect("claim")
                .expect("a job");
            assert_eq!(first.job.id, ids[0]);
            let done = Change::Job(Transition::new(ids[0], JobState::Succeeded, Utc::now()));
            let (end, next) = store
                .finish_and_claim(worker, ids[0], &[done], None, &[], lease, &token)
                .expect("finish and claim");
            assert_eq!(end.run_ended, None);
            let next = next.expect("the second job");
            let run = next.run.id;
            assert_eq!(next.job.kill_token, Some(format!("cf-{run}-{}-1", ids[1])));
        });
        assert_eq!(*asked.borrow(), ids);
    }

    #[test]
    fn idle_workers_are_woken_when_work_may_have_become_claimable() {
        let store = store();
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        assert!(store.watch_work(std::sync::Arc::clone(&wake)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let woken = |what: &str| {
            runtime
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), wake.notified()).await
                })
                .unwrap_or_else(|_| panic!("not woken: {what}"));
        };
        woken("listening began");
        store.add_queue("one", None).expect("queue");
        store.add_queue("one", Some(1)).expect("limit");
        woken("a queue's limit changed");
        let worker = store.register_worker("w", &[]).expect("register");
        let ids = detached(&store, vec![queued("a", "one", 0), queued("b", "one", 0)]);
        woken("jobs queued");
        let token = |run, job, attempt| format!("cf-{run}-{job}-{attempt}");
        let lease = Duration::from_secs(30);
        runtime.block_on(async {
            store
                .claim_next(worker, &[], lease, &token)
                .expect("claim")
                .expect("a job");
        });
        let done = Change::Job(Transition::new(ids[0], JobState::Succeeded, Utc::now()));
        store
            .finish_claim(worker, ids[0], &[done], None)
            .expect("finish");
        woken("a slot of a limited queue freed");
        store.set_paused("one", true).expect("pause");
        woken("paused");
        store.set_paused("one", false).expect("resume");
        woken("a queue resumed");
    }
}
