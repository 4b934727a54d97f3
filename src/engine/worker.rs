//! A standalone worker: claims queued jobs from one or more environments, runs them exactly
//! as `coreflow run` does, heartbeats and holds a lease on its job, and advances the job's
//! run when it ends.
//!
//! The worker takes work from the environment with the oldest runnable backlog. On SIGTERM
//! (or Ctrl-C) it stops claiming, lets its current job finish within the grace period, then
//! cancels it and puts it back in its queue; it exits 0. `coreflow workers move` redirects a
//! running worker between environments through its heartbeat.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::engine::decide::{NeedInfo, context};
use crate::engine::job::{AttemptInput, AttemptOutcome, run_attempt, scratch_dir};
use crate::engine::queued::{RunDefinition, advance_run, load_run_definition, matrix_of};
use crate::engine::run::{DEFAULT_GRACE, RunShared, retry_delay};
use crate::state::JobState;
use crate::store::{Change, Claimed, QueueStore, SqliteStore, Store, Transition, WorkerId};
use crate::ui::{PlainReporter, Reporter, UiOptions};
use crate::worker::CancelMode;

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
}

/// One environment the worker serves.
struct Served {
    dir: PathBuf,
    store: Arc<SqliteStore>,
    id: WorkerId,
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Environment(String),
}

/// Runs the worker until SIGTERM or SIGINT.
///
/// # Errors
/// An environment that cannot be opened.
pub async fn serve(
    config: WorkerConfig,
    open: impl Fn(&PathBuf) -> Result<Arc<SqliteStore>, String>,
) -> Result<(), WorkerError> {
    let mut served = Vec::new();
    for dir in &config.envs {
        let store = open(dir).map_err(WorkerError::Environment)?;
        let id = store
            .register_worker(&config.name, &config.labels)
            .map_err(|e| WorkerError::Environment(e.to_string()))?;
        served.push(Served {
            dir: dir.clone(),
            store,
            id,
        });
    }
    let mut terms = signal(SignalKind::terminate()).ok();
    let mut ints = signal(SignalKind::interrupt()).ok();
    let (stop_tx, stop_rx) = watch::channel(false);
    let process_env: BTreeMap<String, String> = std::env::vars().collect();
    let mut definitions: HashMap<(PathBuf, String), Arc<RunDefinition>> = HashMap::new();
    let mut last_housekeeping = std::time::Instant::now() - Duration::from_secs(10);
    loop {
        if *stop_rx.borrow() {
            break;
        }
        if last_housekeeping.elapsed() >= Duration::from_secs(1) {
            last_housekeeping = std::time::Instant::now();
            housekeeping(&mut served, &config, &open);
        }
        // The environment with the oldest runnable backlog goes first.
        let mut best: Option<(chrono::DateTime<Utc>, usize)> = None;
        for (i, env) in served.iter().enumerate() {
            if let Ok(Some(at)) = env.store.oldest_runnable(&config.labels)
                && best.is_none_or(|(t, _)| at < t)
            {
                best = Some((at, i));
            }
        }
        let claimed = match best {
            Some((_, i)) => {
                let env = &served[i];
                match env.store.claim_next(
                    env.id,
                    &config.labels,
                    config.lease,
                    &|run, job, attempt| {
                        format!(
                            "cf-{run}-{job}-{attempt}-w{}-{}",
                            env.id.0,
                            std::process::id()
                        )
                    },
                ) {
                    Ok(Some(claimed)) => Some((i, claimed)),
                    Ok(None) => None,
                    Err(err) => {
                        eprintln!("worker: cannot claim from {}: {err}", env.dir.display());
                        None
                    }
                }
            }
            None => None,
        };
        let Some((i, claimed)) = claimed else {
            tokio::select! {
                () = tokio::time::sleep(config.poll) => {}
                Some(()) = recv(&mut terms) => { let _ = stop_tx.send(true); }
                Some(()) = recv(&mut ints) => { let _ = stop_tx.send(true); }
            }
            continue;
        };
        let env = &served[i];
        let key = (env.dir.clone(), claimed.run.def_hash.clone());
        let definition = match definitions.get(&key) {
            Some(definition) => Arc::clone(definition),
            None => match load_run_definition(&env.store, &claimed.run) {
                Ok(definition) => {
                    let definition = Arc::new(definition);
                    definitions.insert(key, Arc::clone(&definition));
                    definition
                }
                Err(reason) => {
                    fail_claim(env, &claimed, &reason);
                    continue;
                }
            },
        };
        let job = execute_claim(
            env,
            &config,
            claimed,
            &definition,
            &process_env,
            &mut terms,
            &mut ints,
            &stop_tx,
        );
        job.await;
    }
    for env in &served {
        let _ = env.store.stop_worker(env.id);
    }
    Ok(())
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Heartbeats every environment, expires other workers' leases, and follows moves.
fn housekeeping(
    served: &mut [Served],
    config: &WorkerConfig,
    open: &impl Fn(&PathBuf) -> Result<Arc<SqliteStore>, String>,
) {
    let mut moves = Vec::new();
    for (i, env) in served.iter().enumerate() {
        if let Ok(lost) = env.store.expire_leases(Utc::now()) {
            for job in lost {
                if let Ok(Some(run)) = env.store.run(job.run)
                    && let Ok(definition) = load_run_definition(&env.store, &run)
                {
                    let _ = advance_run(&env.store, &run, &definition);
                }
            }
        }
        if let Ok(beat) = env.store.heartbeat(env.id, "idle", None, config.lease)
            && let Some(to) = beat.move_to
        {
            moves.push((i, PathBuf::from(to)));
        }
    }
    for (i, to) in moves.into_iter().rev() {
        match open(&to) {
            Ok(store) => match store.register_worker(&config.name, &config.labels) {
                Ok(id) => {
                    let old = std::mem::replace(&mut served[i], Served { dir: to, store, id });
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

/// Gives up a claimed job that cannot even start (its definition is gone).
fn fail_claim(env: &Served, claimed: &Claimed, reason: &str) {
    let change =
        Change::Job(Transition::new(claimed.job.id, JobState::Failed, Utc::now()).reason(reason));
    let _ = env
        .store
        .finish_claim(env.id, claimed.job.id, &[change], None);
}

#[expect(clippy::too_many_arguments, reason = "the pieces of one claimed job")]
async fn execute_claim(
    env: &Served,
    config: &WorkerConfig,
    claimed: Claimed,
    definition: &RunDefinition,
    process_env: &BTreeMap<String, String>,
    terms: &mut Option<tokio::signal::unix::Signal>,
    ints: &mut Option<tokio::signal::unix::Signal>,
    stop_tx: &watch::Sender<bool>,
) {
    let Claimed { job, run, siblings } = claimed;
    let inputs = definition.inputs(&run, process_env);
    let needs: Vec<NeedInfo<'_>> = job
        .needs
        .iter()
        .filter_map(|name| siblings.iter().find(|s| &s.name == name))
        .map(|n| NeedInfo {
            name: &n.name,
            base: &n.base_name,
            state: n.status,
            outputs: &n.outputs,
        })
        .collect();
    let matrix = matrix_of(&job);
    let workflow = &definition.loaded.workflow;
    let Some(job_def) = workflow.jobs.get(&job.base_name) else {
        fail_claim(
            env,
            &Claimed { job, run, siblings },
            "the job is not in its workflow's definition",
        );
        return;
    };
    let context = match context(&inputs, &job.name, &job.base_name, &matrix, &needs) {
        Ok(context) => context,
        Err(reason) => {
            fail_claim(env, &Claimed { job, run, siblings }, &reason);
            return;
        }
    };
    let defaults = &workflow.defaults;
    let timeout = job_def
        .timeout
        .as_ref()
        .or(defaults.timeout.as_ref())
        .map(crate::spec::model::DurationSpec::get);
    let grace = job_def
        .cancel_grace
        .as_ref()
        .or(defaults.cancel_grace.as_ref())
        .map_or(DEFAULT_GRACE, crate::spec::model::DurationSpec::get);
    let tmp = match scratch_dir(env.store.dir(), run.id) {
        Ok(tmp) => tmp,
        Err(err) => {
            fail_claim(
                env,
                &Claimed { job, run, siblings },
                &format!("cannot create a scratch folder: {err}"),
            );
            return;
        }
    };
    let options = UiOptions::from_env(
        crate::ui::ProgressMode::Plain,
        crate::ui::ColorChoice::Never,
        false,
    );
    let reporter: Box<dyn Reporter> =
        Box::new(PlainReporter::new(Box::new(std::io::stdout()), &options));
    let shared = Arc::new(RunShared {
        run_id: run.id,
        workflow: workflow.clone(),
        workflow_name: run.workflow.clone(),
        dir: definition.loaded.dir.clone(),
        tmp,
        store: Arc::clone(&env.store) as Arc<dyn Store>,
        reporter: Mutex::new(reporter),
        params: definition.values.clone(),
        overrides: definition.overrides.clone(),
        trigger: run.trigger.clone(),
        process_env: process_env.clone(),
    });
    shared.report(&crate::ui::Event::JobState {
        ts: Utc::now(),
        job: format!("{}/{}", run.id, job.name),
        state: JobState::Running,
        attempt: job.attempts,
        reason: None,
        exit_code: None,
        duration: None,
        step: None,
    });
    let input = AttemptInput {
        job: job.id,
        name: job.name.clone(),
        base: job.base_name.clone(),
        attempt: job.attempts,
        context,
        timeout,
        grace,
        kill_token: job.kill_token.clone().unwrap_or_default(),
    };
    let (cancel_tx, cancel_rx) = watch::channel(None);
    let attempt = tokio::spawn(run_attempt(Arc::clone(&shared), input, cancel_rx));
    tokio::pin!(attempt);
    let mut beat = tokio::time::interval(Duration::from_secs(1));
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
                        fail_claim(env, &Claimed { job, run, siblings }, &reason);
                        return;
                    }
                }
            }
            _ = beat.tick() => {
                if let Ok(beat) = env.store.heartbeat(env.id, "busy", Some(job.id), config.lease)
                    && beat.cancel_current
                {
                    let _ = cancel_tx.send(Some(CancelMode::Graceful));
                }
            }
            Some(()) = recv(terms), if stopping_since.is_none() => {
                let _ = stop_tx.send(true);
                stopping_since = Some(tokio::time::Instant::now());
            }
            Some(()) = recv(ints), if stopping_since.is_none() => {
                let _ = stop_tx.send(true);
                stopping_since = Some(tokio::time::Instant::now());
            }
            () = tokio::time::sleep(grace_left.unwrap_or(Duration::MAX)), if grace_left.is_some() && !requeue => {
                // The grace is over: stop the job and give it back to its queue.
                requeue = true;
                let _ = cancel_tx.send(Some(CancelMode::Graceful));
            }
        }
    };
    let now = Utc::now();
    let mut changes: Vec<Change> = outcome.steps.iter().cloned().map(Change::Step).collect();
    for (key, value) in &outcome.outputs {
        changes.push(Change::Output {
            job: job.id,
            key: key.clone(),
            value: value.clone(),
        });
    }
    let mut retry_at = None;
    let mut transition =
        Transition::new(job.id, outcome.state, now).usage(outcome.peak_rss_bytes, outcome.cpu_ms);
    transition.exit_code = outcome.exit_code;
    transition.reason.clone_from(&outcome.reason);
    if requeue && outcome.state == JobState::Cancelled {
        transition.to = JobState::Queued;
        transition.reason = Some("worker stopped; re-queued".into());
    } else if matches!(outcome.state, JobState::Failed | JobState::TimedOut)
        && job.attempts < job.max_attempts
    {
        let retry = job_def.retry.as_ref().or(defaults.retry.as_ref());
        let delay = retry_delay(retry, job.attempts + 1);
        retry_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
        transition.to = JobState::Queued;
        transition.reason = Some(format!(
            "{} attempt {} of {}; retry in {}",
            outcome.state.as_str(),
            job.attempts,
            job.max_attempts,
            crate::ui::format::duration(delay)
        ));
    }
    let final_state = transition.to;
    changes.push(transition.into());
    if let Err(err) = env.store.finish_claim(env.id, job.id, &changes, retry_at) {
        eprintln!("worker: cannot record {}/{}: {err}", run.id, job.name);
    }
    shared.report(&crate::ui::Event::JobState {
        ts: Utc::now(),
        job: format!("{}/{}", run.id, job.name),
        state: final_state,
        attempt: job.attempts,
        reason: outcome.reason.clone(),
        exit_code: outcome.exit_code,
        duration: Some(outcome.duration),
        step: outcome.step.clone(),
    });
    if let Ok(mut reporter) = shared.reporter.lock() {
        reporter.tick();
    }
    if let Err(err) = advance_run(&env.store, &run, definition) {
        eprintln!("worker: cannot advance run {}: {err}", run.id);
    }
    let _ = std::fs::remove_dir_all(&shared.tmp);
}
