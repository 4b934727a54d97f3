//! The coordinator: one task owns the run's job states, starts attempts on free workers,
//! applies retries, `run_if` and `if:`, handles cancel, and records every transition in the
//! store: batched at most every 20 ms, in order, by the run's writer thread.
//!
//! Attempts run as tasks that send their outcome back on a channel; timers (retry delays)
//! and signals arrive on the same loop, so no state is shared behind a lock.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::engine::attempt;
use crate::engine::call;
use crate::engine::decide::{Decision, NeedInfo, at_max_parallel, decide};
use crate::engine::job::{AttemptInput, AttemptOutcome, run_attempt};
use crate::engine::policy::RetryAfter;
use crate::engine::shared::RunShared;
pub use crate::engine::tracked::JobRt;
use crate::engine::writer::Writer;
use crate::engine::{JobFailure, recv_signal};
use crate::engine::{dedicated, fail_fast, fan_out};
use crate::scheduler::QueueLoad;
use crate::scheduler::resources::{Admit, Offer, Request, Room};
use crate::spec::params::ParamValue;
use crate::state::{JobState, RunState};
use crate::step::CancelMode;
use crate::store::{Change, Owner, RunStore, RunTransition, Transition, owner_token_prefix};
use crate::ui::{Event, JobSummary};

/// Transitions are written at most this often: a change made within this time of the last
/// write waits for the next one, so that the changes of many short jobs share one
/// transaction (each commit rewrites the same few pages, and short jobs would otherwise
/// spend more time being recorded than running). A change made after a quiet spell is
/// written at once; writes commit on the writer's thread, while the coordinator goes on.
/// This bounds how stale another process's view of the run can be. A kill -9 can lose the
/// records of that last moment only for a run that recovery then fails anyway; processes
/// started meanwhile are found through the owner's kill-token prefix. Changes are committed
/// in the order they happened, so what a crash leaves is always a moment of the run's
/// history: never a job's start without the ends of the jobs it needs. A job that uses
/// DataBlocks starts only once everything before it is committed (they are looked up and
/// recorded against the store's view of the run).
const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// Overrides [`FLUSH_AFTER`] (milliseconds), for tests that need a start to stay unwritten.
const FLUSH_AFTER_VAR: &str = "COREFLOW_TEST_WRITE_DELAY_MS";
/// Pending changes written at once, however young.
const FLUSH_BATCH: usize = 1024;

/// What the coordinator hears about.
enum Msg {
    Finished(usize, AttemptOutcome),
    RetryReady(usize),
}

/// A ready job in the local queue: highest priority first, then first queued.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority: i64,
    order: std::cmp::Reverse<u64>,
    index: usize,
}

/// How the run ended, and whether it was interrupted by a signal.
pub struct RunEnd {
    pub state: RunState,
    pub interrupted: bool,
    /// Its jobs as they ended, with their outputs.
    pub jobs: Vec<JobRt>,
}

/// The local workers of a foreground run: one slot per running step process, shared by the
/// run and every child run its `workflow:` jobs start. A calling job waits for its child
/// without a slot, so `--workers 1` never deadlocks.
///
/// With them goes the host's offer of CPUs and memory and what the running jobs' `resources`
/// take of it: a job with a request starts only where it fits beside them.
#[derive(Clone)]
pub struct Slots {
    permits: Arc<Semaphore>,
    count: usize,
    pool: Arc<std::sync::Mutex<Pool>>,
}

/// The host's offer and what running jobs take of it.
struct Pool {
    offer: Offer,
    used: Request,
}

impl Slots {
    #[must_use]
    pub fn new(count: usize, offer: Offer) -> Slots {
        let count = count.max(1);
        Slots {
            permits: Arc::new(Semaphore::new(count)),
            count,
            pool: Arc::new(std::sync::Mutex::new(Pool {
                offer,
                used: Request::default(),
            })),
        }
    }

    /// What the host offers.
    #[must_use]
    pub fn offer(&self) -> Offer {
        self.pool.lock().map_or(
            Offer {
                cpus: 0.0,
                memory: 0,
            },
            |pool| pool.offer,
        )
    }

    fn release(&self, request: Request) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.used = pool.used.minus(request);
        }
    }

    /// How many slots there are.
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
    }
}

/// What stops a run from outside: signals for the run a command started, the calling job's
/// cancel (its run cancelled, the job cancelled or timed out) for a child run.
pub enum Control {
    Signals,
    Parent(watch::Receiver<Option<CancelMode>>),
}

struct Coordinator {
    shared: Arc<RunShared>,
    jobs: Vec<JobRt>,
    dependents: Vec<Vec<usize>>,
    remaining: Vec<usize>,
    ready: BinaryHeap<Ready>,
    queued_order: u64,
    running: usize,
    waiting_retry: usize,
    /// Which jobs wait out a retry delay (their timer is still to fire).
    retry_pending: Vec<bool>,
    slots: Slots,
    /// A slot taken while the coordinator waited for one, used by the next dispatch.
    spare: Option<OwnedSemaphorePermit>,
    /// Whether the last dispatch left ready jobs for want of a slot.
    starved: bool,
    changes: Vec<Change>,
    /// Records the changes, in order, on its own thread.
    writer: Writer,
    /// When the pending changes were last written; `None` before the first write, which
    /// happens at once.
    last_flush: Option<Instant>,
    /// See [`FLUSH_AFTER`].
    flush_after: Duration,
    /// What the kill tokens of the run's steps start with (see [`owner_token_prefix`]).
    token_prefix: String,
    /// Whether the pending changes must be written before the coordinator waits again
    /// (another process counts on them: a queue's concurrency across the environment).
    flush_now: bool,
    cancels: Vec<Option<watch::Sender<Option<CancelMode>>>>,
    started: Vec<Option<Instant>>,
    tx: mpsc::UnboundedSender<Msg>,
    cancelled: bool,
    /// Queue limits and load across the environment, refreshed on every poll tick; a
    /// foreground run never exceeds a queue's concurrency and starts nothing from a paused
    /// queue.
    queues: HashMap<String, QueueLoad>,
    /// Whether a job has started: the run stays `queued` until then (SPEC §3).
    run_started: bool,
    /// The item jobs of each `for_each` job (empty for other jobs), in item order.
    items: Vec<Vec<usize>>,
    /// The `for_each` job each item job belongs to.
    aggregate_of: Vec<Option<usize>>,
    /// How many item jobs of each `for_each` job have not ended.
    items_left: Vec<usize>,
    /// Why running jobs were stopped by `fail_fast`, for their end's reason.
    stopped_by: HashMap<usize, String>,
}

/// Runs the jobs to their end. Jobs already terminal (a repaired run's successes) count as
/// finished for their dependents.
pub async fn execute(
    shared: Arc<RunShared>,
    jobs: Vec<JobRt>,
    slots: Slots,
    control: Control,
) -> RunEnd {
    let run_started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let n = jobs.len();
    let mut dependents = vec![Vec::new(); n];
    for (i, job) in jobs.iter().enumerate() {
        for &need in &job.needs {
            dependents[need].push(i);
        }
    }
    let remaining = jobs
        .iter()
        .map(|job| {
            job.needs
                .iter()
                .filter(|&&need| !jobs[need].state.is_terminal())
                .count()
        })
        .collect();
    let mut c = Coordinator {
        shared: Arc::clone(&shared),
        jobs,
        dependents,
        remaining,
        ready: BinaryHeap::new(),
        queued_order: 0,
        running: 0,
        waiting_retry: 0,
        retry_pending: vec![false; n],
        slots,
        spare: None,
        starved: false,
        changes: Vec::new(),
        writer: Writer::start(Arc::clone(&shared.store) as Arc<dyn RunStore>),
        last_flush: None,
        flush_after: std::env::var(FLUSH_AFTER_VAR)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(FLUSH_AFTER, |ms: u64| {
                Duration::from_millis(ms.min(3_600_000))
            }),
        flush_now: false,
        token_prefix: owner_token_prefix(shared.run_id, &Owner::current()),
        cancels: vec![None; n],
        started: vec![None; n],
        items: vec![Vec::new(); n],
        aggregate_of: vec![None; n],
        items_left: vec![0; n],
        stopped_by: HashMap::new(),
        tx,
        cancelled: false,
        queues: HashMap::new(),
        run_started: false,
    };
    c.refresh_queues();
    shared.report(&Event::RunStarted {
        ts: shared.now(),
        run_id: shared.run_id,
        workflow: shared.workflow_name.clone(),
        jobs: n,
        workers: c.slots.count(),
    });
    // Item jobs of a repaired run belong to their `for_each` job, which starts them.
    for i in 0..n {
        if !c.jobs[i].item.is_null()
            && let Some(a) = c.jobs.iter().position(|job| job.name == c.jobs[i].base)
        {
            c.items[a].push(i);
            c.aggregate_of[i] = Some(a);
        }
    }
    for i in 0..n {
        if !c.jobs[i].state.is_terminal() && c.remaining[i] == 0 && c.aggregate_of[i].is_none() {
            c.decide(i);
        }
    }

    let (mut interrupts, mut terms, mut parent) = match control {
        Control::Signals => (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
            None,
        ),
        Control::Parent(cancel) => (None, None, Some(cancel)),
    };
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted = false;
    let flush_timer = tokio::time::sleep(FLUSH_AFTER);
    tokio::pin!(flush_timer);
    let mut flush_armed = false;
    loop {
        c.dispatch();
        if c.running == 0 && c.waiting_retry == 0 && c.ready.is_empty() {
            break;
        }
        c.flush_due();
        if let (Some(last), false, false) = (c.last_flush, c.changes.is_empty(), flush_armed) {
            flush_timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(last + c.flush_after));
            flush_armed = true;
        }
        tokio::select! {
            () = &mut flush_timer, if flush_armed => {
                flush_armed = false;
                c.flush_due();
            }
            msg = rx.recv() => {
                if let Some(msg) = msg {
                    c.handle(msg);
                    while let Ok(msg) = rx.try_recv() {
                        c.handle(msg);
                    }
                }
            }
            Some(()) = recv_signal(&mut interrupts) => {
                interrupted = true;
                c.cancel_all(if c.cancelled { CancelMode::Kill } else { CancelMode::Graceful });
            }
            Some(()) = recv_signal(&mut terms) => {
                interrupted = true;
                c.cancel_all(if c.cancelled { CancelMode::Kill } else { CancelMode::Graceful });
            }
            Some(mode) = recv_cancel(&mut parent) => c.cancel_all(mode),
            permit = Arc::clone(&c.slots.permits).acquire_owned(), if c.starved => {
                c.spare = permit.ok();
            }
            _ = poll.tick() => {
                c.poll_cancel_requests();
                c.refresh_queues();
                if let Ok(mut reporter) = c.shared.reporter.lock() {
                    reporter.tick();
                }
            }
        }
    }
    // Whatever never became runnable (its needs ended the run early) is settled now.
    for i in 0..c.jobs.len() {
        if c.jobs[i].state == JobState::Pending {
            let reason = if c.cancelled {
                "cancelled"
            } else {
                "needs were not met"
            };
            let to = if c.cancelled {
                JobState::Cancelled
            } else {
                JobState::Skipped
            };
            c.transition(i, to, Some(reason.to_owned()));
        }
    }
    let state = c.outcome();
    c.change(
        RunTransition {
            run: shared.run_id,
            to: state,
            at: shared.now(),
            reason: None,
        }
        .into(),
    );
    c.flush();
    c.writer.sync();
    let summaries = c
        .jobs
        .iter()
        .map(|job| JobSummary {
            name: job.name.clone(),
            state: job.state,
            attempts: job.attempts,
            duration: job.duration,
            exit_code: job.exit_code,
            reason: job.reason.clone(),
        })
        .collect();
    shared.report(&Event::RunFinished {
        ts: shared.now(),
        run_id: shared.run_id,
        state,
        duration: run_started.elapsed(),
        jobs: summaries,
    });
    if let Ok(mut reporter) = shared.reporter.lock()
        && let Err(err) = reporter.finish()
    {
        eprintln!("error: {err}");
    }
    let _ = std::fs::remove_dir_all(&shared.tmp);
    RunEnd {
        state,
        interrupted,
        jobs: c.jobs,
    }
}

/// The next cancel the calling job asks of a child run; never when there is no caller, or
/// once the caller is gone.
async fn recv_cancel(
    cancel: &mut Option<watch::Receiver<Option<CancelMode>>>,
) -> Option<CancelMode> {
    let Some(receiver) = cancel else {
        return std::future::pending().await;
    };
    loop {
        if receiver.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Some(mode) = *receiver.borrow_and_update() {
            return Some(mode);
        }
    }
}

impl Coordinator {
    fn change(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// Writes the pending changes unless the last write was too recent (see
    /// [`FLUSH_AFTER`]), they are few, and nothing needs them now.
    fn flush_due(&mut self) {
        let due = self.flush_now
            || self.changes.len() >= FLUSH_BATCH
            || self
                .last_flush
                .is_none_or(|last| last.elapsed() >= self.flush_after);
        if due && !self.changes.is_empty() {
            self.flush();
        }
    }

    /// Hands the pending changes to the writer, to be recorded in one transaction.
    fn flush(&mut self) {
        self.flush_now = false;
        if self.changes.is_empty() {
            return;
        }
        self.last_flush = Some(Instant::now());
        self.writer.send(std::mem::take(&mut self.changes));
    }

    /// Moves job `i` to `to`, recording and reporting it.
    fn transition(&mut self, i: usize, to: JobState, reason: Option<String>) {
        let job = &mut self.jobs[i];
        job.state = to;
        job.reason.clone_from(&reason);
        let mut transition = Transition::new(job.id, to, self.shared.now());
        transition.reason.clone_from(&reason);
        let event = Event::JobState(crate::ui::JobChange {
            reason,
            ..crate::ui::JobChange::new(
                self.shared.now(),
                job.name.clone(),
                to,
                job.attempts.max(1),
            )
        });
        self.change(transition.into());
        self.shared.report(&event);
    }

    /// A job whose needs have all ended: skip it, cancel it, fail it, or queue it.
    fn decide(&mut self, i: usize) {
        if self.cancelled {
            self.transition(i, JobState::Cancelled, Some("cancelled".into()));
            self.settle(i);
            return;
        }
        let needs = self.need_infos(i);
        let job = &self.jobs[i];
        let decision = decide(
            &self.shared.inputs(),
            &job.name,
            &job.base,
            &job.matrix,
            &needs,
        );
        let (to, reason) = match decision {
            Decision::Queue if self.fans_out(i) => {
                self.expand(i);
                return;
            }
            Decision::Queue => {
                self.enqueue(i);
                return;
            }
            Decision::Skip(reason) => (JobState::Skipped, reason),
            Decision::Cancel(reason) => (JobState::Cancelled, reason),
            Decision::Fail(reason) => (JobState::Failed, reason),
        };
        self.transition(i, to, Some(reason));
        self.settle(i);
    }

    fn need_infos(&self, i: usize) -> Vec<NeedInfo<'_>> {
        self.jobs[i]
            .needs
            .iter()
            .map(|&n| {
                let need = &self.jobs[n];
                NeedInfo {
                    name: &need.name,
                    base: &need.base,
                    state: need.state,
                    outputs: &need.outputs,
                }
            })
            .collect()
    }

    fn enqueue(&mut self, i: usize) {
        if self.jobs[i].state != JobState::Queued {
            self.transition(i, JobState::Queued, None);
        }
        self.queued_order += 1;
        self.ready.push(Ready {
            priority: self.jobs[i].priority,
            order: std::cmp::Reverse(self.queued_order),
            index: i,
        });
    }

    /// A job reached a terminal state: let its dependents decide.
    fn settle(&mut self, i: usize) {
        let mut stack = vec![i];
        while let Some(done) = stack.pop() {
            if let Some(a) = self.aggregate_of[done] {
                self.items_left[a] -= 1;
                if self.items_left[a] == 0 && self.jobs[a].state == JobState::Running {
                    self.conclude_items(a);
                    stack.push(a);
                }
            }
            for d in self.dependents[done].clone() {
                self.remaining[d] -= 1;
                if self.remaining[d] == 0 && self.jobs[d].state == JobState::Pending {
                    self.decide(d);
                    // `decide` settles terminal dependents itself.
                }
            }
        }
    }

    /// Reads queue limits and running counts from the store.
    fn refresh_queues(&mut self) {
        if let Some(loads) = self.shared.queue_loads.as_ref().and_then(|f| f().ok()) {
            self.queues = loads;
        }
    }

    /// What job `i` asks of the host (`resources`); nothing for a calling job, which runs no
    /// process.
    fn request(&self, i: usize) -> Request {
        if self.calls(i) {
            return Request::default();
        }
        Request::of(&self.shared.workflow, &self.jobs[i].base)
    }

    /// Whether job `i` calls a workflow: it runs no process and takes no slot.
    fn calls(&self, i: usize) -> bool {
        self.shared.workflow.jobs[self.jobs[i].base.as_str()]
            .workflow
            .is_some()
    }

    /// Starts queued jobs while slots are free (a calling job needs none).
    fn dispatch(&mut self) {
        let mut held = Vec::new();
        self.starved = false;
        // The first job whose `resources` do not fit reserves them: jobs behind it start only
        // where they fit beside it too, so a stream of small jobs never starves a big one.
        let mut room = match self.slots.pool.lock() {
            Ok(pool) => Room::new(pool.offer, pool.used),
            Err(_) => Room::new(
                Offer {
                    cpus: f64::INFINITY,
                    memory: u64::MAX,
                },
                Request::default(),
            ),
        };
        while let Some(ready) = self.ready.pop() {
            let i = ready.index;
            if self.jobs[i].state != JobState::Queued {
                continue;
            }
            let calls = self.calls(i);
            if !calls
                && let Some(load) = self.queues.get(&self.jobs[i].queue)
                && !load.admits()
            {
                held.push(ready);
                continue;
            }
            if self.held_by_max_parallel(i) {
                held.push(ready);
                continue;
            }
            let request = self.request(i);
            match room.admit(request) {
                Admit::Take => {}
                Admit::Hold => {
                    held.push(ready);
                    continue;
                }
                Admit::Never(why) => {
                    self.jobs[i].attempts += 1;
                    self.transition(i, JobState::Failed, Some(why));
                    self.settle(i);
                    continue;
                }
            }
            let permit = if calls {
                None
            } else {
                let permit = self
                    .spare
                    .take()
                    .or_else(|| Arc::clone(&self.slots.permits).try_acquire_owned().ok());
                if permit.is_none() {
                    room.give_back(request);
                    held.push(ready);
                    self.starved = true;
                    break;
                }
                permit
            };
            if !request.is_empty()
                && let Ok(mut pool) = self.slots.pool.lock()
            {
                pool.used = pool.used.plus(request);
            }
            if !calls && let Some(load) = self.queues.get_mut(&self.jobs[i].queue) {
                load.running += 1;
                // Other processes read the queue's load from the store.
                self.flush_now |= load.concurrency.is_some();
            }
            let kill_token = format!(
                "{}{}-{}",
                self.token_prefix,
                self.jobs[i].id,
                self.jobs[i].attempts + 1
            );
            let input = match self.prepare(i, kill_token) {
                Ok(input) => input,
                Err(reason) => {
                    if !calls && let Some(load) = self.queues.get_mut(&self.jobs[i].queue) {
                        load.running = load.running.saturating_sub(1);
                    }
                    self.slots.release(request);
                    self.jobs[i].attempts += 1;
                    self.transition(i, JobState::Failed, Some(reason.0));
                    self.settle(i);
                    continue;
                }
            };
            let job_def = &self.shared.workflow.jobs[self.jobs[i].base.as_str()];
            // DataBlocks are looked up and recorded against the store's view of the run,
            // which must then hold every change so far when the job starts.
            let uses_blocks = !job_def.inputs.is_empty()
                || !job_def.datablocks.is_empty()
                || input
                    .context
                    .params
                    .values()
                    .any(|value| matches!(value, ParamValue::DataBlock { .. }));
            let job = &mut self.jobs[i];
            job.attempts += 1;
            job.first_started.get_or_insert_with(Instant::now);
            job.state = JobState::Running;
            job.reason = None;
            let now = self.shared.now();
            if !self.run_started {
                self.run_started = true;
                self.changes.push(
                    RunTransition {
                        run: self.shared.run_id,
                        to: RunState::Running,
                        at: now,
                        reason: None,
                    }
                    .into(),
                );
            }
            self.changes.push(
                Transition::new(job.id, JobState::Running, now)
                    .kill_token(input.kill_token.clone())
                    .into(),
            );
            self.shared
                .report(&Event::JobState(crate::ui::JobChange::new(
                    now,
                    job.name.clone(),
                    JobState::Running,
                    job.attempts,
                )));
            let (cancel_tx, cancel_rx) = watch::channel(None);
            self.cancels[i] = Some(cancel_tx);
            self.started[i] = Some(Instant::now());
            // A dedicated worker process reads the needs' outputs from the store.
            let dedicated = dedicated::is_dedicated(&self.shared.workflow, &self.jobs[i].base);
            if uses_blocks || dedicated {
                self.flush();
                self.writer.sync();
            }
            let shared = Arc::clone(&self.shared);
            let tx = self.tx.clone();
            self.running += 1;
            if calls {
                let slots = self.slots.clone();
                tokio::spawn(async move {
                    let outcome = call_workflow(shared, input, cancel_rx, slots).await;
                    let _ = tx.send(Msg::Finished(i, outcome));
                });
            } else {
                tokio::spawn(async move {
                    let outcome = if dedicated {
                        dedicated::run(shared, input, cancel_rx).await
                    } else {
                        run_attempt(shared, input, cancel_rx).await
                    };
                    drop(permit);
                    let _ = tx.send(Msg::Finished(i, outcome));
                });
            }
        }
        self.ready.extend(held);
        // A slot taken while waiting and not used goes back at once.
        self.spare = None;
    }

    /// Whether `max_parallel` of job `i`'s matrix siblings (or `for_each` items) run
    /// already.
    fn held_by_max_parallel(&self, i: usize) -> bool {
        let base = self.jobs[i].base.as_str();
        if self.shared.workflow.jobs[base].max_parallel.is_none() {
            return false;
        }
        let running = self
            .jobs
            .iter()
            .enumerate()
            .filter(|(j, job)| {
                job.base == base && job.state == JobState::Running && !self.fans_out(*j)
            })
            .count();
        at_max_parallel(&self.shared.workflow, base, running)
    }

    /// Whether job `i` is a `for_each` job (not one of its items): it runs nothing itself.
    fn fans_out(&self, i: usize) -> bool {
        self.jobs[i].item.is_null()
            && self.shared.workflow.jobs[self.jobs[i].base.as_str()]
                .for_each
                .is_some()
    }

    /// A `for_each` job whose needs let it run: its items become jobs of the run (see
    /// [`fan_out::items`]), queued now; the job runs until they have all ended. Item jobs
    /// made before (a repaired run) are taken again.
    fn expand(&mut self, a: usize) {
        if self.items[a].is_empty() {
            let needs = self.need_infos(a);
            let job = &self.jobs[a];
            let items = fan_out::items(&self.shared.inputs(), &job.name, &job.base, &needs);
            let made = items.and_then(|items| {
                let parent = fan_out::Parent {
                    name: &job.name,
                    base: &job.base,
                    queue: &job.queue,
                    priority: job.priority,
                    needs: job
                        .needs
                        .iter()
                        .map(|&n| self.jobs[n].name.clone())
                        .collect(),
                };
                let new = fan_out::item_jobs(&self.shared.workflow, &parent, &items);
                if new.is_empty() {
                    return Ok(Vec::new());
                }
                let ids = self
                    .shared
                    .store
                    .add_jobs(self.shared.run_id, &new)
                    .map_err(|e| JobFailure(e.to_string()))?;
                Ok(new.into_iter().zip(ids).collect())
            });
            let made = match made {
                Ok(made) if made.is_empty() => {
                    self.transition(a, JobState::Skipped, Some(fan_out::NO_ITEMS.to_owned()));
                    self.settle(a);
                    return;
                }
                Ok(made) => made,
                Err(reason) => {
                    self.transition(a, JobState::Failed, Some(reason.0));
                    self.settle(a);
                    return;
                }
            };
            for (new, id) in made {
                let i = self.jobs.len();
                self.jobs.push(JobRt {
                    id,
                    name: new.name,
                    base: new.base_name,
                    matrix: IndexMap::new(),
                    item: new.item,
                    needs: self.jobs[a].needs.clone(),
                    state: JobState::Pending,
                    attempts: 0,
                    max_attempts: new.max_attempts,
                    priority: new.priority,
                    queue: new.queue,
                    outputs: BTreeMap::new(),
                    exit_code: None,
                    reason: None,
                    duration: None,
                    first_started: None,
                });
                self.dependents.push(Vec::new());
                self.remaining.push(0);
                self.retry_pending.push(false);
                self.cancels.push(None);
                self.started.push(None);
                self.items.push(Vec::new());
                self.aggregate_of.push(Some(a));
                self.items_left.push(0);
                self.items[a].push(i);
            }
        }
        self.transition(a, JobState::Queued, None);
        let job = &mut self.jobs[a];
        job.attempts += 1;
        job.first_started.get_or_insert_with(Instant::now);
        self.transition(a, JobState::Running, None);
        let items = self.items[a].clone();
        self.items_left[a] = items
            .iter()
            .filter(|&&i| !self.jobs[i].state.is_terminal())
            .count();
        if self.items_left[a] == 0 {
            self.conclude_items(a);
            self.settle(a);
            return;
        }
        for i in items {
            if self.jobs[i].state == JobState::Pending {
                self.enqueue(i);
            }
        }
    }

    /// A `for_each` job whose items have all ended takes their result and outputs.
    fn conclude_items(&mut self, a: usize) {
        let items: Vec<(JobState, &BTreeMap<String, String>)> = self.items[a]
            .iter()
            .map(|&i| (self.jobs[i].state, &self.jobs[i].outputs))
            .collect();
        let ended = fan_out::conclusion(&items);
        for (key, value) in &ended.outputs {
            self.changes.push(Change::Output {
                job: self.jobs[a].id,
                key: key.clone(),
                value: value.clone(),
            });
        }
        let job = &mut self.jobs[a];
        job.outputs = ended.outputs;
        job.duration = job.first_started.map(|start| start.elapsed());
        self.transition(a, ended.state, ended.reason);
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Finished(i, outcome) => self.finished(i, outcome),
            Msg::RetryReady(i) => {
                // A cancelled wait already settled this job; its timer fires into nothing.
                if !self.drop_retry(i) {
                    return;
                }
                if self.jobs[i].state == JobState::Queued {
                    self.queued_order += 1;
                    self.ready.push(Ready {
                        priority: self.jobs[i].priority,
                        order: std::cmp::Reverse(self.queued_order),
                        index: i,
                    });
                }
            }
        }
    }

    fn finished(&mut self, i: usize, mut outcome: AttemptOutcome) {
        self.running -= 1;
        if !self.calls(i) {
            self.slots.release(self.request(i));
        }
        if let Some(reason) = self.stopped_by.remove(&i)
            && outcome.state == JobState::Cancelled
        {
            outcome.reason = Some(reason);
        }
        if !self.calls(i)
            && let Some(load) = self.queues.get_mut(&self.jobs[i].queue)
        {
            load.running = load.running.saturating_sub(1);
        }
        self.cancels[i] = None;
        let job = &mut self.jobs[i];
        let conclusion = attempt::conclude(
            &self.shared.workflow,
            job.id,
            &job.base,
            (job.attempts, job.max_attempts),
            &outcome,
            self.cancelled,
            self.shared.now(),
        );
        self.changes.extend(conclusion.changes);
        job.outputs = outcome.outputs.into_iter().collect();
        job.exit_code = outcome.exit_code;
        job.duration = job.first_started.map(|start| start.elapsed());
        let now = self.shared.now();
        let ended = crate::ui::JobChange {
            ts: now,
            job: job.name.clone(),
            state: outcome.state,
            attempt: job.attempts,
            reason: outcome.reason.clone(),
            exit_code: outcome.exit_code,
            duration: Some(outcome.duration),
            step: outcome.step,
        };
        self.shared.report(&Event::JobState(ended));
        job.state = conclusion.to;
        if let Some(RetryAfter { delay, .. }) = conclusion.retry {
            self.shared.report(&Event::JobState(crate::ui::JobChange {
                reason: Some(format!("retry in {}", crate::ui::format::duration(delay))),
                ..crate::ui::JobChange::new(
                    now,
                    job.name.clone(),
                    JobState::Queued,
                    job.attempts + 1,
                )
            }));
            self.waiting_retry += 1;
            self.retry_pending[i] = true;
            let tx = self.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Msg::RetryReady(i));
            });
            return;
        }
        job.reason = outcome.reason;
        self.settle(i);
        if fail_fast::stops_siblings(
            &self.shared.workflow,
            &self.jobs[i].base,
            self.jobs[i].state,
        ) {
            self.fail_fast(i);
        }
    }

    /// `fail_fast`: leg `i` of a matrix failed, so its siblings that have not ended are
    /// cancelled (those running are stopped as on cancel).
    fn fail_fast(&mut self, i: usize) {
        let reason = fail_fast::reason(&self.jobs[i].name);
        for j in 0..self.jobs.len() {
            if j == i || self.jobs[j].base != self.jobs[i].base {
                continue;
            }
            match self.jobs[j].state {
                JobState::Running => {
                    if let Some(sender) = &self.cancels[j] {
                        let _ = sender.send(Some(CancelMode::Graceful));
                        self.stopped_by.insert(j, reason.clone());
                    }
                }
                JobState::Queued | JobState::Pending => {
                    self.drop_retry(j);
                    self.transition(j, JobState::Cancelled, Some(reason.clone()));
                    self.settle(j);
                }
                _ => {}
            }
        }
    }

    /// Cancels the run: queued and pending jobs are dropped, running ones stopped.
    fn cancel_all(&mut self, mode: CancelMode) {
        self.cancelled = true;
        for sender in self.cancels.iter().flatten() {
            let _ = sender.send(Some(mode));
        }
        while let Some(Ready { index, .. }) = self.ready.pop() {
            if self.jobs[index].state == JobState::Queued {
                self.transition(index, JobState::Cancelled, Some("cancelled".into()));
                self.settle(index);
            }
        }
        // Jobs waiting out a retry delay are queued but not in the heap: the run must not
        // wait for their timers.
        for i in 0..self.jobs.len() {
            if self.jobs[i].state == JobState::Queued {
                self.drop_retry(i);
                self.transition(i, JobState::Cancelled, Some("cancelled".into()));
                self.settle(i);
            }
        }
    }

    /// Forgets job `i`'s pending retry timer; returns whether it had one.
    fn drop_retry(&mut self, i: usize) -> bool {
        if std::mem::take(&mut self.retry_pending[i]) {
            self.waiting_retry -= 1;
            true
        } else {
            false
        }
    }

    /// `coreflow cancel` from another process.
    fn poll_cancel_requests(&mut self) {
        let Ok(requests) = self.shared.store.take_cancel_requests(self.shared.run_id) else {
            return;
        };
        if requests.run {
            self.cancel_all(CancelMode::Graceful);
        }
        for job in requests.jobs {
            let Some(i) = self.jobs.iter().position(|j| j.id == job) else {
                continue;
            };
            match self.jobs[i].state {
                JobState::Running => {
                    if let Some(sender) = &self.cancels[i] {
                        let _ = sender.send(Some(CancelMode::Graceful));
                    }
                }
                JobState::Queued | JobState::Pending => {
                    self.drop_retry(i);
                    self.transition(i, JobState::Cancelled, Some("cancelled".into()));
                    self.cancel_downstream(i);
                }
                _ => {}
            }
        }
    }

    fn cancel_downstream(&mut self, i: usize) {
        let mut stack = self.dependents[i].clone();
        while let Some(d) = stack.pop() {
            if matches!(self.jobs[d].state, JobState::Pending | JobState::Queued) {
                self.transition(d, JobState::Cancelled, Some("a need was cancelled".into()));
                stack.extend(self.dependents[d].iter().copied());
            }
        }
    }

    /// Cancelled when the run was; else failed when a job failed (unless tolerated by
    /// `continue_on_error`), also beside jobs cancelled by `fail_fast`; else cancelled when a
    /// job was.
    fn outcome(&self) -> RunState {
        let failed = self.jobs.iter().any(|j| {
            matches!(j.state, JobState::Failed | JobState::TimedOut)
                && !self
                    .shared
                    .workflow
                    .jobs
                    .get(&j.base)
                    .is_some_and(|def| def.continue_on_error)
        });
        if self.cancelled {
            RunState::Cancelled
        } else if failed {
            RunState::Failed
        } else if self.jobs.iter().any(|j| j.state == JobState::Cancelled) {
            RunState::Cancelled
        } else {
            RunState::Succeeded
        }
    }

    /// The next attempt of job `i` (see [`attempt::prepare`]).
    fn prepare(&self, i: usize, kill_token: String) -> Result<AttemptInput, JobFailure> {
        let job = &self.jobs[i];
        let needs = self.need_infos(i);
        let job_ref = attempt::JobRef {
            id: job.id,
            name: &job.name,
            base: &job.base,
            matrix: &job.matrix,
            item: &job.item,
            attempt: job.attempts + 1,
        };
        attempt::prepare(&self.shared.inputs(), &job_ref, &needs, kill_token)
    }
}

/// Runs the calling job `input`: its child run to the end, cancelled with the job (`cancel`)
/// or at its timeout.
async fn call_workflow(
    shared: Arc<RunShared>,
    input: AttemptInput,
    mut cancel: watch::Receiver<Option<CancelMode>>,
    slots: Slots,
) -> AttemptOutcome {
    let started = Instant::now();
    let mut outcome = AttemptOutcome::new(JobState::Failed);
    let child = match call::start(&shared, &input) {
        Ok(child) => child,
        Err(failure) => {
            outcome.reason = Some(failure.0);
            outcome.duration = started.elapsed();
            return outcome;
        }
    };
    let (end, run, loaded, timed_out) = match child {
        call::Child::Finished { run, jobs, loaded } => (
            RunEnd {
                state: RunState::Succeeded,
                interrupted: false,
                jobs,
            },
            run,
            loaded,
            false,
        ),
        call::Child::Start {
            shared: child_shared,
            jobs,
            loaded,
        } => {
            let run = child_shared.run_id;
            shared.report(&Event::ChildRun {
                ts: shared.now(),
                job: input.name.clone(),
                run_id: run,
                workflow: child_shared.workflow_name.clone(),
                jobs: jobs.len(),
            });
            let (stop, stopped) = watch::channel(None);
            // Boxed: a child's jobs may call workflows in turn.
            let mut child: Pin<Box<dyn Future<Output = RunEnd> + Send>> =
                Box::pin(execute(child_shared, jobs, slots, Control::Parent(stopped)));
            let deadline = input
                .timeout
                .map(|limit| tokio::time::Instant::now() + limit);
            let mut timed_out = false;
            let end = loop {
                tokio::select! {
                    end = &mut child => break end,
                    changed = cancel.changed() => {
                        if changed.is_err() {
                            // The caller is gone: nothing more will ask.
                            break child.await;
                        }
                        if let Some(mode) = *cancel.borrow_and_update() {
                            let _ = stop.send(Some(mode));
                        }
                    }
                    () = sleep_until(deadline), if !timed_out => {
                        timed_out = true;
                        let _ = stop.send(Some(CancelMode::Graceful));
                    }
                }
            };
            // The child's own notifiers, sent by this process as for the run it started.
            if !loaded.workflow.notify.is_empty() {
                crate::engine::notify::send(&*shared.store, run, &shared.process_env).await;
            }
            (end, run, loaded, timed_out)
        }
    };
    outcome.duration = started.elapsed();
    let ended = if timed_out && end.state != RunState::Succeeded {
        call::Ended {
            state: JobState::TimedOut,
            reason: Some(format!("timeout: child run {run} {}", end.state)),
            outputs: Vec::new(),
        }
    } else {
        call::ended(run, end.state, &loaded, &call::need_infos(&end.jobs))
    };
    outcome.state = ended.state;
    outcome.reason = ended.reason;
    outcome.outputs = ended.outputs;
    outcome
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
