//! A standalone worker: claims queued jobs from one or more environments, runs them exactly
//! as `coreflow run` does, heartbeats and holds a lease on its job, and advances the job's
//! run when it ends.
//!
//! The worker takes work from the environment with the oldest runnable backlog. On SIGTERM
//! (or Ctrl-C) it stops claiming, lets its current job finish within the grace period, then
//! cancels it and puts it back in its queue; it exits 0. `coreflow workers move` redirects a
//! running worker between environments through its heartbeat. With `--once`
//! ([`WorkerConfig::once`]) it stops after its first job, whatever that job's result.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};

use crate::engine::attempt::{self, AttemptOutcome};
use crate::engine::decide::NeedInfo;
use crate::engine::dedicated;
use crate::engine::definition::{RunDefinition, load_run_definition};
use crate::engine::job::{run_attempt, scratch_dir};
use crate::engine::queued::{
    advance_run, conclude_parent, expire_leases, kill_leftovers, matrix_of, needed_jobs,
    time_out_calls,
};
use crate::engine::recv_signal as recv;
use crate::engine::shared::RunShared;
use crate::scheduler::resources::Offer;
use crate::state::{JobState, RunId, RunState};
use crate::step::CancelMode;
use crate::store::Env;
use crate::store::{Change, ClaimEnd, Claimed, RunRecord, Transition, WorkerId};
use crate::ui::{PlainReporter, Reporter, UiOptions};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub envs: Vec<PathBuf>,
    pub labels: Vec<String>,
    pub lease: Duration,
    /// How long a running job may go on after SIGTERM before it is cancelled and re-queued.
    pub grace: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    pub name: String,
    /// Take one job, run it, and stop (`coreflow worker --once`, for launchers that create
    /// a worker per job): the job's result is recorded, the worker exits 0 either way.
    pub once: bool,
    /// What it offers jobs' `resources`: claims admit their requests against it, beside
    /// what the other workers of this host run.
    pub offer: Offer,
}

impl WorkerConfig {
    /// How often the worker heartbeats and renews its lease: every second, or three times
    /// per lease when the lease is shorter than 3 s, so that a live worker never loses it.
    #[must_use]
    pub fn beat_every(&self) -> Duration {
        (self.lease / 3).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// One environment the worker serves.
struct Served {
    dir: PathBuf,
    store: Env,
    id: WorkerId,
    /// Whether the store wakes this worker when work appears
    /// ([`crate::store::QueueStore::watch_work`]).
    watched: bool,
}

impl Served {
    /// Registers the worker in `store`, and asks it to wake `wake` when work appears.
    fn register(
        dir: PathBuf,
        store: Env,
        config: &WorkerConfig,
        wake: &Arc<Notify>,
    ) -> Result<Served, crate::store::Error> {
        let id = store.register_worker(&config.name, &config.labels)?;
        store.set_worker_offer(id, config.offer, crate::step::cgroup::enforcement())?;
        let watched = store.watch_work(Arc::clone(wake));
        Ok(Served {
            dir,
            store,
            id,
            watched,
        })
    }
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// An environment to serve could not be opened.
    #[error("cannot serve `{}`: {reason}", dir.display())]
    Open { dir: PathBuf, reason: String },
    /// The worker could not register in an environment.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// Runs the worker until SIGTERM or SIGINT.
///
/// # Errors
/// An environment that cannot be opened.
pub async fn serve<E: std::fmt::Display>(
    config: WorkerConfig,
    open: impl Fn(&PathBuf) -> Result<Env, E>,
) -> Result<(), WorkerError> {
    // Woken by the stores that tell when work appears; the others are polled.
    let wake = Arc::new(Notify::new());
    let mut served = Vec::new();
    for dir in &config.envs {
        let store = open(dir).map_err(|e| WorkerError::Open {
            dir: dir.clone(),
            reason: e.to_string(),
        })?;
        served.push(Served::register(dir.clone(), store, &config, &wake)?);
    }
    let mut terms = signal(SignalKind::terminate()).ok();
    let mut ints = signal(SignalKind::interrupt()).ok();
    let (stop_tx, stop_rx) = watch::channel(false);
    let process_env: BTreeMap<String, String> = std::env::vars().collect();
    let mut definitions = Definitions::default();
    let mut last_housekeeping = std::time::Instant::now() - Duration::from_secs(10);
    // Whether the last look found work: while draining, claim at once; when idle, look with
    // a read first, so that idle workers do not take the write lock every poll.
    let mut draining = false;
    // A job claimed in the transaction that recorded the previous one's end.
    let mut next: Option<(usize, Claimed)> = None;
    // Whether a job was taken: a `--once` worker stops after its first.
    let mut taken = false;
    loop {
        // A job already claimed runs even when a stop came meanwhile: its own grace applies.
        if (*stop_rx.borrow() || (config.once && taken)) && next.is_none() {
            break;
        }
        if last_housekeeping.elapsed() >= config.beat_every() {
            last_housekeeping = std::time::Instant::now();
            housekeeping(&mut served, &config, &open, &wake);
        }
        let claimed = next.take().or_else(|| claim(&served, &config, draining));
        draining = claimed.is_some();
        let Some((i, claimed)) = claimed else {
            // Stores that wake the worker are still looked at every beat, in case a
            // notification was lost with a connection.
            let poll = if served.iter().all(|s| s.watched) {
                config.beat_every().max(config.poll)
            } else {
                config.poll
            };
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = wake.notified() => {}
                Some(()) = recv(&mut terms) => { let _ = stop_tx.send(true); }
                Some(()) = recv(&mut ints) => { let _ = stop_tx.send(true); }
            }
            continue;
        };
        taken = true;
        let env = &served[i];
        tracing::debug!(run = claimed.run.id.0, job = %claimed.job.name, "job claimed");
        let cached = match definitions.get(env, &claimed.run, &process_env) {
            Ok(cached) => cached,
            Err(reason) => {
                fail_claim(env, &claimed, None, &reason);
                continue;
            }
        };
        // With one environment, the end of this job and the claim of the next share a
        // transaction; with several, the next claim looks at all of them. A `--once` worker
        // takes no next job.
        let take_next = served.len() == 1 && !config.once;
        let job = execute_claim(
            env,
            &config,
            claimed,
            &cached,
            &process_env,
            &mut terms,
            &mut ints,
            &stop_tx,
            take_next,
        );
        next = job.await.map(|claimed| (i, claimed));
    }
    for env in &served {
        let _ = env.store.stop_worker(env.id);
    }
    Ok(())
}

/// What the jobs of one run share on this worker: its definition with its parameters, and
/// the [`RunShared`] its attempts run with (cloning a large workflow for every job made
/// draining a large run quadratic).
struct RunCache {
    definition: Arc<RunDefinition>,
    shared: Arc<RunShared>,
    /// [`needed_jobs`] of the definition.
    needed: HashSet<String>,
}

impl RunCache {
    /// Moves the run on after `job` (its name in the workflow) ended: decides what needed
    /// it, or cancels what waits when the run is being cancelled. Returns the run's final
    /// state when it ended.
    fn advance_after(
        &self,
        env: &Served,
        run: &RunRecord,
        job: &str,
        cancelling: bool,
    ) -> Option<RunState> {
        if !cancelling && !self.needed.contains(job) {
            return None;
        }
        match advance_run(&*env.store, run, &self.definition) {
            Ok(state) => state,
            Err(err) => {
                eprintln!("worker: cannot advance run {}: {err}", run.id);
                None
            }
        }
    }
}

/// [`RunCache`]s by environment and run. Keyed by run, not by definition: two runs of one
/// workflow may differ in their parameters.
#[derive(Default)]
struct Definitions {
    by_run: HashMap<(PathBuf, RunId), Arc<RunCache>>,
}

impl Definitions {
    /// Runs remembered at most; the cache starts over beyond.
    const LIMIT: usize = 64;

    fn get(
        &mut self,
        env: &Served,
        run: &RunRecord,
        process_env: &BTreeMap<String, String>,
    ) -> Result<Arc<RunCache>, String> {
        let key = (env.dir.clone(), run.id);
        if let Some(cached) = self.by_run.get(&key) {
            return Ok(Arc::clone(cached));
        }
        let definition =
            Arc::new(load_run_definition(&*env.store, run).map_err(|e| e.to_string())?);
        let tmp = scratch_dir(env.store.dir(), run.id)
            .map_err(|err| format!("cannot create a scratch folder: {err}"))?;
        let options = UiOptions::from_env(
            crate::ui::ProgressMode::Plain,
            crate::ui::ColorChoice::Never,
            false,
        );
        let reporter: Box<dyn Reporter> =
            Box::new(PlainReporter::new(Box::new(std::io::stdout()), &options));
        let shared = Arc::new(RunShared::of_recorded_run(
            run,
            &definition,
            Arc::clone(&env.store),
            tmp,
            reporter,
            process_env.clone(),
        ));
        let needed = needed_jobs(&definition);
        let cached = Arc::new(RunCache {
            definition,
            shared,
            needed,
        });
        if self.by_run.len() >= Self::LIMIT {
            self.by_run.clear();
        }
        self.by_run.insert(key, Arc::clone(&cached));
        Ok(cached)
    }
}

/// Claims the next job: from the environment with the oldest runnable backlog when there
/// are several. `draining` says the last look found work, so a single environment is
/// claimed from directly.
fn claim(served: &[Served], config: &WorkerConfig, draining: bool) -> Option<(usize, Claimed)> {
    let i = if served.len() == 1 && draining {
        0
    } else {
        let mut best: Option<(chrono::DateTime<Utc>, usize)> = None;
        for (i, env) in served.iter().enumerate() {
            if let Ok(Some(at)) = env.store.oldest_runnable(&config.labels)
                && best.is_none_or(|(t, _)| at < t)
            {
                best = Some((at, i));
            }
        }
        best?.1
    };
    let env = &served[i];
    match env
        .store
        .claim_next(env.id, &config.labels, config.lease, &env.kill_token())
    {
        Ok(Some(claimed)) => Some((i, claimed)),
        Ok(None) => None,
        Err(err) => {
            eprintln!("worker: cannot claim from {}: {err}", env.dir.display());
            None
        }
    }
}

impl Served {
    /// How this worker marks the processes of a job it claims from this environment.
    fn kill_token(&self) -> impl Fn(RunId, crate::state::JobId, u32) -> String + '_ {
        move |run, job, attempt| {
            format!(
                "cf-{run}-{job}-{attempt}-w{}-{}",
                self.id.0,
                std::process::id()
            )
        }
    }
}

/// Heartbeats every environment, expires other workers' leases, and follows moves.
fn housekeeping<E: std::fmt::Display>(
    served: &mut [Served],
    config: &WorkerConfig,
    open: &impl Fn(&PathBuf) -> Result<Env, E>,
    wake: &Arc<Notify>,
) {
    let mut moves = Vec::new();
    for (i, env) in served.iter().enumerate() {
        kill_leftovers(expire_leases(&*env.store));
        time_out_calls(&*env.store);
        if let Ok(beat) = env.store.heartbeat(env.id, "idle", None, config.lease)
            && let Some(to) = beat.move_to
        {
            moves.push((i, PathBuf::from(to)));
        }
    }
    for (i, to) in moves.into_iter().rev() {
        match open(&to) {
            Ok(store) => match Served::register(to.clone(), store, config, wake) {
                Ok(moved) => {
                    let old = std::mem::replace(&mut served[i], moved);
                    let _ = old.store.stop_worker(old.id);
                    eprintln!(
                        "worker: moved from {} to {}",
                        old.dir.display(),
                        served[i].dir.display()
                    );
                }
                Err(err) => eprintln!("worker: cannot register in {}: {err}", to.display()),
            },
            Err(err) => eprintln!("worker: cannot move to {}: {err}", to.display()),
        }
    }
}

/// Gives up a claimed job that cannot even start, and moves its run on when its definition
/// is known (a job that needs it is then skipped, not left pending).
fn fail_claim(env: &Served, claimed: &Claimed, cached: Option<&RunCache>, reason: &str) {
    let change = Change::Job(
        Transition::new(claimed.job.id, JobState::Failed, env.store.clock().now()).reason(reason),
    );
    match env
        .store
        .finish_claim(env.id, claimed.job.id, &[change], None)
    {
        Ok(end) => match cached {
            Some(cached) => {
                cached.advance_after(env, &claimed.run, &claimed.job.base_name, end.cancelling);
            }
            // Without its definition nothing can be decided for the jobs that wait: they
            // are cancelled, so that the run ends instead of waiting forever.
            None => cancel_the_rest(env, claimed.run.id, reason),
        },
        Err(err) => eprintln!(
            "worker: cannot record {}/{}: {err}",
            claimed.run.id, claimed.job.name
        ),
    }
}

/// Cancels the jobs of `run` that have not started, saying why, and ends the run.
fn cancel_the_rest(env: &Served, run: RunId, why: &str) {
    let now = env.store.clock().now();
    let decisions: Vec<crate::store::Advance> = match env.store.run_jobs(run) {
        Ok(jobs) => jobs
            .iter()
            .filter(|job| matches!(job.status, JobState::Pending | JobState::Queued))
            .map(|job| crate::store::Advance {
                from: job.status,
                transition: Transition::new(job.id, JobState::Cancelled, now)
                    .reason(format!("its run cannot be read: {why}")),
            })
            .collect(),
        Err(err) => {
            eprintln!("worker: cannot read the jobs of run {run}: {err}");
            return;
        }
    };
    if let Err(err) = env.store.advance(run, &decisions) {
        eprintln!("worker: cannot end run {run}: {err}");
    }
}

#[expect(clippy::too_many_arguments, reason = "the pieces of one claimed job")]
#[expect(
    clippy::too_many_lines,
    reason = "one claimed job from start to end, in order"
)]
async fn execute_claim(
    env: &Served,
    config: &WorkerConfig,
    claimed: Claimed,
    cached: &RunCache,
    process_env: &BTreeMap<String, String>,
    terms: &mut Option<tokio::signal::unix::Signal>,
    ints: &mut Option<tokio::signal::unix::Signal>,
    stop_tx: &watch::Sender<bool>,
    take_next: bool,
) -> Option<Claimed> {
    let job = &claimed.job;
    let run = &claimed.run;
    let definition = &*cached.definition;
    let inputs = definition.inputs(run, process_env);
    let needs: Vec<NeedInfo<'_>> = claimed.needs.iter().map(NeedInfo::of).collect();
    let matrix = matrix_of(job);
    let workflow = &definition.loaded.workflow;
    if !workflow.jobs.contains_key(&job.base_name) {
        fail_claim(
            env,
            &claimed,
            None,
            "the job is not in its workflow's definition",
        );
        return None;
    }
    let job_ref = attempt::JobRef {
        id: job.id,
        name: &job.name,
        base: &job.base_name,
        matrix: &matrix,
        item: &job.item,
        attempt: job.attempts,
    };
    let kill_token = job.kill_token.clone().unwrap_or_default();
    let input = match attempt::prepare(&inputs, &job_ref, &needs, kill_token) {
        Ok(input) => input,
        Err(reason) => {
            fail_claim(env, &claimed, Some(cached), &reason.0);
            return None;
        }
    };
    let shared = &cached.shared;
    // Another worker removes the folder when the run ends; a `coreflow retry` reopens it.
    if let Err(err) = crate::store::private::create_dir_all(&shared.tmp) {
        fail_claim(
            env,
            &claimed,
            Some(cached),
            &format!("cannot create a scratch folder: {err}"),
        );
        return None;
    }
    shared.report(&crate::ui::Event::JobState(crate::ui::JobChange::new(
        env.store.clock().now(),
        format!("{}/{}", run.id, job.name),
        JobState::Running,
        job.attempts,
    )));
    let (cancel_tx, cancel_rx) = watch::channel(None);
    let attempt = if dedicated::is_dedicated(workflow, &job.base_name) {
        tokio::spawn(dedicated::run(Arc::clone(shared), input, cancel_rx))
    } else {
        tokio::spawn(run_attempt(Arc::clone(shared), input, cancel_rx))
    };
    tokio::pin!(attempt);
    // The claim renewed the lease and the heartbeat; the first beat is due a second later.
    let beat_every = config.beat_every();
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + beat_every, beat_every);
    let mut stopping_since: Option<tokio::time::Instant> = None;
    let mut requeue = false;
    let outcome: AttemptOutcome = loop {
        let grace_left = stopping_since.map(|since| {
            (since + config.grace).saturating_duration_since(tokio::time::Instant::now())
        });
        tokio::select! {
            result = &mut attempt => {
                match result {
                    Ok(outcome) => break outcome,
                    Err(err) => {
                        let reason = format!("the attempt task failed: {err}");
                        fail_claim(env, &claimed, Some(cached), &reason);
                        return None;
                    }
                }
            }
            _ = beat.tick() => {
                let state = if stopping_since.is_some() { "stopping" } else { "busy" };
                if let Ok(beat) = env.store.heartbeat(env.id, state, Some(job.id), config.lease)
                    && beat.cancel_current
                {
                    let _ = cancel_tx.send(Some(CancelMode::Graceful));
                }
                // Leases of vanished workers expire even while every worker is busy.
                kill_leftovers(expire_leases(&*env.store));
        time_out_calls(&*env.store);
            }
            Some(()) = recv(terms), if stopping_since.is_none() => {
                stopping_since = Some(stop(env, config, job.id, stop_tx));
            }
            Some(()) = recv(ints), if stopping_since.is_none() => {
                stopping_since = Some(stop(env, config, job.id, stop_tx));
            }
            () = tokio::time::sleep(grace_left.unwrap_or(Duration::MAX)), if grace_left.is_some() && !requeue => {
                // The grace is over: stop the job and give it back to its queue.
                requeue = true;
                let _ = cancel_tx.send(Some(CancelMode::Graceful));
            }
        }
    };
    let now = env.store.clock().now();
    // Attempts count from the last `coreflow retry` of the run.
    let attempts = job.attempts.saturating_sub(job.attempts_before_retry);
    let mut conclusion = attempt::conclude(
        workflow,
        job.id,
        &job.base_name,
        (attempts, job.max_attempts),
        &outcome,
        false,
        now,
    );
    if requeue && outcome.state == JobState::Cancelled {
        conclusion.requeue("worker stopped; re-queued");
    }
    let retry_at = conclusion
        .retry
        .as_ref()
        .map(|again| now + chrono::Duration::from_std(again.delay).unwrap_or_default());
    let final_state = conclusion.to;
    let changes = conclusion.changes;
    let take_next = take_next && stopping_since.is_none() && !*stop_tx.borrow();
    let recorded = if take_next {
        env.store.finish_and_claim(
            env.id,
            job.id,
            &changes,
            retry_at,
            &config.labels,
            config.lease,
            &env.kill_token(),
        )
    } else {
        env.store
            .finish_claim(env.id, job.id, &changes, retry_at)
            .map(|end| (end, None))
    };
    let (end, next) = match recorded {
        Ok(recorded) => recorded,
        Err(err) => {
            eprintln!("worker: cannot record {}/{}: {err}", run.id, job.name);
            (ClaimEnd::default(), None)
        }
    };
    let mut ended = end.run_ended;
    shared.report(&crate::ui::Event::JobState(crate::ui::JobChange {
        ts: env.store.clock().now(),
        job: format!("{}/{}", run.id, job.name),
        state: final_state,
        attempt: job.attempts,
        reason: outcome.reason.clone(),
        exit_code: outcome.exit_code,
        duration: Some(outcome.duration),
        step: outcome.step.clone(),
    }));
    if let Ok(mut reporter) = shared.reporter.lock() {
        reporter.tick();
    }
    if final_state.is_terminal() {
        ended = ended.or(cached.advance_after(env, run, &job.base_name, end.cancelling));
    }
    if ended.is_some() {
        // The run is over: no job of it runs anywhere any more.
        let _ = std::fs::remove_dir_all(&shared.tmp);
        // A child run's end ends its calling job.
        if run.parent.is_some()
            && let Err(err) = conclude_parent(&*env.store, run.id)
        {
            eprintln!(
                "worker: cannot end the job that called run {}: {err}",
                run.id
            );
        }
    }
    next
}

/// Starts stopping: no more claims, and `coreflow workers` shows the worker `stopping`
/// while its job has the grace to finish.
fn stop(
    env: &Served,
    config: &WorkerConfig,
    job: crate::state::JobId,
    stop_tx: &watch::Sender<bool>,
) -> tokio::time::Instant {
    let _ = stop_tx.send(true);
    let _ = env
        .store
        .heartbeat(env.id, "stopping", Some(job), config.lease);
    tokio::time::Instant::now()
}
