//! `compute: dedicated`: a job's attempt runs in a fresh `coreflow` process started for it
//! alone and ended after it — a worker of one attempt — whichever loop drives the run (a
//! foreground `coreflow run` or a standalone worker of the daemon's pool, which counts
//! against `--max-workers` while it waits for it). Nothing of the attempt is shared with
//! other jobs' workers: not the process, its memory, its cgroup, nor its open files.
//!
//! The parent ([`run`]) starts `coreflow attempt` (hidden) in its own process group, hands
//! it an [`AttemptOrder`] on stdin, relays the steps and lines it reports on stdout to the
//! run's reporter, and takes its [`AttemptOutcome`] from its last line; the run's state is
//! decided and written by the parent as for any attempt. The child ([`serve`]) opens the
//! environment, prepares the attempt from what the store holds (the needs' outputs were
//! written before it was started) and runs it with [`run_attempt`], writing its log and
//! usage to the store as any attempt does. SIGTERM to the child stops the attempt
//! gracefully, SIGINT at once; it dies with its parent.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::engine::attempt::{self, AttemptInput, AttemptOutcome};
use crate::engine::decide::NeedInfo;
use crate::engine::definition::load_run_definition;
use crate::engine::job::{run_attempt, scratch_dir};
use crate::engine::queued::matrix_of;
use crate::engine::shared::RunShared;
use crate::spec::model::{Compute, Workflow};
use crate::state::{JobId, JobState, RunId, Stream};
use crate::step::CancelMode;
use crate::store::{OpenOptions, StepRecord};
use crate::ui::{Event, Reporter};

/// Whether job `base` of `workflow` runs on dedicated compute.
#[must_use]
pub fn is_dedicated(workflow: &Workflow, base: &str) -> bool {
    workflow
        .jobs
        .get(base)
        .is_some_and(|job| job.compute == Compute::Dedicated && job.workflow.is_none())
}

/// What the child process runs: one attempt of one job, in the environment at `env`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AttemptOrder {
    /// The environment's location (a folder or a database URL: passed on stdin, never on
    /// the command line, where other users could read a password).
    pub env: String,
    /// Where DataBlock content lives (`--blocks`), when given.
    pub blocks: Option<String>,
    pub run: i64,
    pub job: i64,
    pub attempt: u32,
    pub kill_token: String,
}

/// One line the child writes on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Report {
    Step {
        ts: DateTime<Utc>,
        step: String,
        index: usize,
    },
    Output {
        ts: DateTime<Utc>,
        step: String,
        stream: Stream,
        line: String,
    },
    Outcome(WireOutcome),
}

/// An [`AttemptOutcome`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct WireOutcome {
    state: JobState,
    exit_code: Option<i32>,
    step: Option<String>,
    reason: Option<String>,
    outputs: Vec<(String, String)>,
    steps: Vec<WireStep>,
    peak_rss_bytes: u64,
    cpu_ms: u64,
    duration_ms: u64,
}

/// A [`StepRecord`] on the wire (its job and attempt are the order's).
#[derive(Debug, Serialize, Deserialize)]
struct WireStep {
    index: u32,
    name: String,
    status: JobState,
    exit_code: Option<i32>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl WireOutcome {
    fn of(outcome: &AttemptOutcome) -> WireOutcome {
        WireOutcome {
            state: outcome.state,
            exit_code: outcome.exit_code,
            step: outcome.step.clone(),
            reason: outcome.reason.clone(),
            outputs: outcome.outputs.clone(),
            steps: outcome
                .steps
                .iter()
                .map(|step| WireStep {
                    index: step.index,
                    name: step.name.clone(),
                    status: step.status,
                    exit_code: step.exit_code,
                    started_at: step.started_at,
                    finished_at: step.finished_at,
                })
                .collect(),
            peak_rss_bytes: outcome.peak_rss_bytes,
            cpu_ms: outcome.cpu_ms,
            duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn into_outcome(self, job: JobId, attempt: u32) -> AttemptOutcome {
        let mut outcome = AttemptOutcome::new(self.state);
        outcome.exit_code = self.exit_code;
        outcome.step = self.step;
        outcome.reason = self.reason;
        outcome.outputs = self.outputs;
        outcome.steps = self
            .steps
            .into_iter()
            .map(|step| StepRecord {
                job,
                attempt,
                index: step.index,
                name: step.name,
                status: step.status,
                exit_code: step.exit_code,
                started_at: step.started_at,
                finished_at: step.finished_at,
            })
            .collect();
        outcome.peak_rss_bytes = self.peak_rss_bytes;
        outcome.cpu_ms = self.cpu_ms;
        outcome.duration = Duration::from_millis(self.duration_ms);
        outcome
    }
}

/// Runs attempt `input` of the run `shared` in a fresh `coreflow attempt` process, stopped
/// through `cancel` as an attempt run here would be.
pub async fn run(
    shared: Arc<RunShared>,
    input: AttemptInput,
    mut cancel: watch::Receiver<Option<CancelMode>>,
) -> AttemptOutcome {
    let started = std::time::Instant::now();
    let failed = |reason: String| {
        let mut outcome = AttemptOutcome::new(JobState::Failed);
        outcome.reason = Some(reason);
        outcome.duration = started.elapsed();
        outcome
    };
    let (env, blocks) = shared.store.reopen();
    let order = AttemptOrder {
        env,
        blocks: blocks.map(|b| b.to_string()),
        run: shared.run_id.0,
        job: input.job.0,
        attempt: input.attempt,
        kill_token: input.kill_token.clone(),
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| "coreflow".into());
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("attempt")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        // Its own group: a Ctrl-C at the terminal reaches the parent, which decides.
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe, between fork and
    // exec; it allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return failed(format!("cannot start a dedicated worker process: {err}")),
    };
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(nix::unistd::Pid::from_raw);
    tracing::debug!(job = %input.name, pid = ?pid, "dedicated worker process started");
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = serde_json::to_vec(&order).unwrap_or_default();
        text.push(b'\n');
        if let Err(err) = stdin.write_all(&text).await {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return failed(format!("cannot hand the job to its worker process: {err}"));
        }
    }
    let Some(stdout) = child.stdout.take() else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return failed("the dedicated worker process has no stdout".to_owned());
    };
    let mut lines = BufReader::new(stdout).lines();
    let mut outcome: Option<AttemptOutcome> = None;
    let mut cancel_open = true;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                match serde_json::from_str::<Report>(&line) {
                    Ok(Report::Step { ts, step, index }) => shared.report(&Event::StepStarted {
                        ts,
                        job: input.name.clone(),
                        step,
                        index,
                    }),
                    Ok(Report::Output { ts, step, stream, line }) => shared.report(&Event::Output {
                        ts,
                        job: input.name.clone(),
                        step,
                        stream,
                        line,
                    }),
                    Ok(Report::Outcome(wire)) => {
                        outcome = Some(wire.into_outcome(input.job, input.attempt));
                    }
                    Err(err) => tracing::warn!(error = %err, "dedicated worker process: unreadable report"),
                }
            }
            changed = cancel.changed(), if cancel_open => {
                if changed.is_err() {
                    cancel_open = false;
                    continue;
                }
                let mode = *cancel.borrow();
                if let (Some(mode), Some(pid)) = (mode, pid) {
                    let signal = match mode {
                        CancelMode::Graceful => nix::sys::signal::Signal::SIGTERM,
                        CancelMode::Kill => nix::sys::signal::Signal::SIGINT,
                    };
                    let _ = nix::sys::signal::kill(pid, signal);
                }
            }
        }
    }
    let status = child.wait().await;
    outcome.unwrap_or_else(|| {
        failed(match status {
            Ok(status) => {
                format!("the dedicated worker process ended ({status}) before its job did")
            }
            Err(err) => format!("the dedicated worker process was lost: {err}"),
        })
    })
}

/// A reporter that writes steps and lines to stdout for the parent ([`Report`]).
struct Relay {
    out: Mutex<std::io::Stdout>,
}

impl Relay {
    fn send(&self, report: &Report) {
        if let Ok(mut line) = serde_json::to_vec(report)
            && let Ok(mut out) = self.out.lock()
        {
            line.push(b'\n');
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
    }
}

impl Reporter for Relay {
    fn event(&mut self, ev: &Event) {
        match ev {
            Event::StepStarted {
                ts, step, index, ..
            } => self.send(&Report::Step {
                ts: *ts,
                step: step.clone(),
                index: *index,
            }),
            Event::Output {
                ts,
                step,
                stream,
                line,
                ..
            } => self.send(&Report::Output {
                ts: *ts,
                step: step.clone(),
                stream: *stream,
                line: line.clone(),
            }),
            _ => {}
        }
    }
}

/// Why the child could not run its attempt at all.
#[derive(Debug, thiserror::Error)]
pub enum DedicatedError {
    #[error("no attempt order on stdin: {0}")]
    Order(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("{0}")]
    Run(String),
}

/// The child: reads its [`AttemptOrder`] from stdin, runs the attempt, and writes what
/// happened on stdout, its outcome last. A job it cannot prepare ends `failed` with the
/// reason, as in any worker.
///
/// # Errors
/// No order, or an environment, run or job that cannot be read.
pub async fn serve() -> Result<(), DedicatedError> {
    let mut text = String::new();
    std::io::stdin()
        .read_line(&mut text)
        .map_err(|err| DedicatedError::Order(err.to_string()))?;
    let order: AttemptOrder =
        serde_json::from_str(&text).map_err(|err| DedicatedError::Order(err.to_string()))?;
    let blocks = match &order.blocks {
        Some(text) => Some(text.parse().map_err(DedicatedError::Run)?),
        None => None,
    };
    let store = crate::store::open_with(
        Path::new(&order.env),
        &OpenOptions {
            clock: None,
            blocks,
        },
    )?;
    let run_id = RunId(order.run);
    let run = store
        .run(run_id)?
        .ok_or(crate::store::Error::RunNotFound(run_id))?;
    let jobs = store.jobs(run_id)?;
    let job = jobs
        .iter()
        .find(|job| job.id.0 == order.job)
        .ok_or(crate::store::Error::JobNotFound(JobId(order.job)))?;
    let definition =
        load_run_definition(&*store, &run).map_err(|err| DedicatedError::Run(err.to_string()))?;
    let tmp = scratch_dir(store.dir(), run_id)
        .map_err(|err| DedicatedError::Run(format!("cannot create a scratch folder: {err}")))?;
    let process_env: BTreeMap<String, String> = std::env::vars().collect();
    let relay = Relay {
        out: Mutex::new(std::io::stdout()),
    };
    let shared = Arc::new(RunShared::of_recorded_run(
        &run,
        &definition,
        Arc::clone(&store),
        tmp,
        Box::new(relay),
        process_env.clone(),
    ));
    let needs: Vec<NeedInfo<'_>> = jobs
        .iter()
        .filter(|other| job.needs.contains(&other.name))
        .map(NeedInfo::of)
        .collect();
    let matrix = matrix_of(job);
    let job_ref = attempt::JobRef {
        id: job.id,
        name: &job.name,
        base: &job.base_name,
        matrix: &matrix,
        item: &job.item,
        attempt: order.attempt,
    };
    let inputs = definition.inputs(&run, &process_env);
    let outcome = match attempt::prepare(&inputs, &job_ref, &needs, order.kill_token.clone()) {
        Ok(input) => {
            let (cancel_tx, cancel_rx) = watch::channel(None);
            let attempt = tokio::spawn(run_attempt(Arc::clone(&shared), input, cancel_rx));
            tokio::pin!(attempt);
            let mut terms =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let mut ints =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
            loop {
                tokio::select! {
                    result = &mut attempt => {
                        break result.map_err(|err| DedicatedError::Run(format!("the attempt task failed: {err}")))?;
                    }
                    Some(()) = crate::engine::recv_signal(&mut terms) => {
                        let _ = cancel_tx.send(Some(CancelMode::Graceful));
                    }
                    Some(()) = crate::engine::recv_signal(&mut ints) => {
                        let _ = cancel_tx.send(Some(CancelMode::Kill));
                    }
                }
            }
        }
        Err(failure) => {
            let mut outcome = AttemptOutcome::new(JobState::Failed);
            outcome.reason = Some(failure.0);
            outcome
        }
    };
    let relay = Relay {
        out: Mutex::new(std::io::stdout()),
    };
    relay.send(&Report::Outcome(WireOutcome::of(&outcome)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_crosses_the_wire_whole() {
        let mut outcome = AttemptOutcome::new(JobState::Failed);
        outcome.exit_code = Some(3);
        outcome.step = Some("build".into());
        outcome.reason = Some("exit 3".into());
        outcome.outputs = vec![("k".into(), "v".into())];
        outcome.steps = vec![StepRecord {
            job: JobId(7),
            attempt: 2,
            index: 0,
            name: "build".into(),
            status: JobState::Failed,
            exit_code: Some(3),
            started_at: Some(Utc::now()),
            finished_at: Some(Utc::now()),
        }];
        outcome.peak_rss_bytes = 1024;
        outcome.cpu_ms = 12;
        outcome.duration = Duration::from_millis(345);
        let text = serde_json::to_string(&Report::Outcome(WireOutcome::of(&outcome))).unwrap();
        let Ok(Report::Outcome(wire)) = serde_json::from_str(&text) else {
            panic!("not an outcome: {text}");
        };
        let back = wire.into_outcome(JobId(7), 2);
        assert_eq!(back.state, outcome.state);
        assert_eq!(back.exit_code, outcome.exit_code);
        assert_eq!(back.reason, outcome.reason);
        assert_eq!(back.outputs, outcome.outputs);
        assert_eq!(back.steps, outcome.steps);
        assert_eq!(back.duration, outcome.duration);
        assert_eq!((back.peak_rss_bytes, back.cpu_ms), (1024, 12));
    }
}
