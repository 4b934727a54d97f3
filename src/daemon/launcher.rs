//! Launchers: the part of the Scaler that creates workers elsewhere. `coreflow daemon
//! --launcher LABEL[:MAX]=COMMAND` names, for jobs whose `runs_on` holds LABEL, a shell
//! command that starts a worker carrying it — over ssh, `systemd-run`, `kubectl run`, or
//! anything else. While such jobs wait and too few workers carry LABEL, the leading daemon
//! runs COMMAND through `sh -c`, with `{env}`, `{labels}` and `{blocks}` substituted, up to
//! MAX launches alive at once.
//!
//! A launch is alive from its start until the worker it started stops, or until it fails:
//! its command exits non-zero before a new worker carrying LABEL registers, or no such
//! worker registers within the registration timeout ([`REGISTRATION_TIMEOUT`]). A failure
//! is logged as an error with its reason, written to the environment's [`REPORT_FILE`]
//! (which `coreflow workers` shows as a `launch_failed` row), and makes the launcher wait
//! before its next launch: 1 s after the first failure, doubling up to 60 s, until a launch
//! registers again.
//!
//! Which worker a launch started is not known (the command may start it anywhere, under
//! any name): every new worker carrying LABEL settles the oldest launch still waiting for
//! its worker. This module knows the store's workers and queued jobs, not how jobs run.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

pub use crate::daemon::config::{DEFAULT_MAX, LauncherSpec};
use crate::spec::template::shell_quote;
use crate::store::{BlocksLocation, Environment, Owner, WorkerId, WorkerRecord};

/// How long a launched worker has to register before its launch counts as failed.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable that replaces [`REGISTRATION_TIMEOUT`] (a duration: `5s`,
/// `2m`), for slow launchers (a cluster pulling an image) and for tests.
pub const REGISTRATION_TIMEOUT_VAR: &str = "COREFLOW_LAUNCH_TIMEOUT";

/// The wait after a launcher's first failure in a row; it doubles with each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two failed launches.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The file in the environment's folder where the daemon says how its launchers fare, for
/// `coreflow workers`.
pub const REPORT_FILE: &str = "launchers.json";

/// The registration timeout: [`REGISTRATION_TIMEOUT_VAR`] when set to a duration, else
/// [`REGISTRATION_TIMEOUT`].
#[must_use]
pub fn registration_timeout() -> Duration {
    std::env::var(REGISTRATION_TIMEOUT_VAR)
        .ok()
        .and_then(|text| crate::spec::model::parse_duration(text.trim()).ok())
        .filter(|timeout| !timeout.is_zero())
        .unwrap_or(REGISTRATION_TIMEOUT)
}

/// `command` with `{env}`, `{labels}` and `{blocks}` replaced, in one pass (a value that
/// holds a placeholder's name is not substituted again). Other braces stay as written.
#[must_use]
pub fn render(command: &str, env: &str, labels: &str, blocks: &str) -> String {
    let mut out = String::with_capacity(command.len() + env.len());
    let mut rest = command;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let found = [("{env}", env), ("{labels}", labels), ("{blocks}", blocks)]
            .into_iter()
            .find(|(name, _)| tail.starts_with(name));
        match found {
            Some((name, value)) => {
                out.push_str(value);
                rest = &tail[name.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One run of a launcher's command.
struct Launch {
    /// The command's process, until it exits.
    child: Option<Child>,
    started: Instant,
    /// The last line the command wrote on stderr, for the error of a failed launch.
    last_line: Arc<Mutex<String>>,
}

impl Launch {
    /// Signals the command's process, when it still runs.
    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child
            && let Ok(pid) = i32::try_from(child.id())
        {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    fn last_line(&self) -> String {
        self.last_line
            .lock()
            .map(|line| line.clone())
            .unwrap_or_default()
    }
}

/// A launcher and its launches.
struct Launcher {
    spec: LauncherSpec,
    /// `{labels}`: the label, then the daemon's `--labels`.
    labels: Vec<String>,
    /// Launches whose worker has not registered yet, oldest first.
    starting: Vec<Launch>,
    /// Launches whose worker registered, while their command runs (a command that is the
    /// worker itself, or an `ssh` holding it).
    registered: Vec<Launch>,
    /// Launches so far.
    launched: u64,
    /// Failed launches since the last one that registered.
    failures: u32,
    /// No launch before this.
    retry_at: Option<Instant>,
    /// The last failure and when it happened.
    last_error: Option<(String, DateTime<Utc>)>,
    /// Why the launcher last held back, so that a lasting reason is logged once.
    holding: Option<String>,
}

impl Launcher {
    /// Records a failed launch: logged, reported, and the launcher backs off.
    fn failed(&mut self, reason: String, now: DateTime<Utc>) {
        self.failures += 1;
        let backoff = backoff(self.failures);
        self.retry_at = Some(Instant::now() + backoff);
        error!(
            launcher = %self.spec.label,
            failures = self.failures,
            retry_in_ms = millis(backoff),
            "launcher {}: launch failed: {reason}; next try in {}",
            self.spec.label,
            crate::ui::format::duration(backoff),
        );
        self.last_error = Some((reason, now));
        self.holding = None;
    }

    /// Logs why nothing is launched, once for as long as the reason holds.
    fn hold(&mut self, reason: String) {
        if self.holding.as_ref() != Some(&reason) {
            let label = &self.spec.label;
            info!(launcher = %label, "launcher {label}: not launching: {reason}");
            self.holding = Some(reason);
        }
    }
}

/// `duration` in whole milliseconds, for the log.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The wait after `failures` failed launches in a row: 1 s, 2 s, 4 s, … up to 60 s.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// The daemon's launchers.
pub struct Launchers {
    launchers: Vec<Launcher>,
    /// `{env}`, shell-quoted.
    env: String,
    /// `{blocks}`, shell-quoted, or empty.
    blocks: String,
    timeout: Duration,
    /// Workers already accounted for; `None` until the first look at the store.
    seen: Option<HashSet<WorkerId>>,
    /// Where [`REPORT_FILE`] goes, and what was last written there.
    report: Option<PathBuf>,
    written: Option<String>,
}

impl Launchers {
    /// The launchers of `specs`; `labels` are the daemon's `--labels`, `report_dir` the
    /// folder of [`REPORT_FILE`].
    #[must_use]
    pub fn new(
        specs: Vec<LauncherSpec>,
        env: &Path,
        blocks: Option<&BlocksLocation>,
        labels: &[String],
        report_dir: &Path,
    ) -> Self {
        let launchers = specs
            .into_iter()
            .map(|spec| {
                let mut all = vec![spec.label.clone()];
                for label in labels {
                    if !label.is_empty() && !all.contains(label) {
                        all.push(label.clone());
                    }
                }
                Launcher {
                    spec,
                    labels: all,
                    starting: Vec::new(),
                    registered: Vec::new(),
                    launched: 0,
                    failures: 0,
                    retry_at: None,
                    last_error: None,
                    holding: None,
                }
            })
            .collect::<Vec<_>>();
        let timeout = registration_timeout();
        for launcher in &launchers {
            info!(
                launcher = %launcher.spec.label,
                max = launcher.spec.max,
                command = %launcher.spec.command,
                registration_timeout_ms = millis(timeout),
                "launcher {} ready",
                launcher.spec.label
            );
        }
        Launchers {
            report: (!launchers.is_empty()).then(|| report_dir.join(REPORT_FILE)),
            launchers,
            env: shell_quote(&env.to_string_lossy()).into_owned(),
            blocks: blocks
                .map(|blocks| shell_quote(&blocks.to_string()).into_owned())
                .unwrap_or_default(),
            timeout,
            seen: None,
            written: None,
        }
    }

    /// Whether there is any launcher.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.launchers.is_empty()
    }

    /// One look: settles launches whose worker registered, whose command failed or whose
    /// time ran out; then, when `leads` (only the leading daemon launches), starts workers
    /// for the jobs that wait.
    pub fn tick(&mut self, store: &dyn Environment, leads: bool) {
        if self.launchers.is_empty() {
            return;
        }
        let workers = match store.workers() {
            Ok(workers) => workers,
            Err(err) => {
                error!(error = %err, "launchers: cannot read the workers");
                return;
            }
        };
        let now = store.clock().now();
        self.settle(&workers, now);
        if leads {
            for launcher in &mut self.launchers {
                let waiting = match store.queued_with_label(&launcher.spec.label) {
                    Ok(waiting) => waiting as usize,
                    Err(err) => {
                        let label = &launcher.spec.label;
                        error!(launcher = %label, error = %err, "launcher {label}: cannot count the waiting jobs");
                        continue;
                    }
                };
                decide(launcher, &workers, waiting, &self.env, &self.blocks);
            }
        }
        self.write_report();
    }

    /// Matches new workers to launches, reaps commands, times launches out.
    fn settle(&mut self, workers: &[WorkerRecord], now: DateTime<Utc>) {
        let seen = self
            .seen
            .get_or_insert_with(|| workers.iter().map(|w| w.id).collect());
        // Ids only grow: one no longer listed (forgotten after a week) never comes back.
        let listed: HashSet<WorkerId> = workers.iter().map(|w| w.id).collect();
        seen.retain(|id| listed.contains(id));
        // Oldest first: the oldest launch gets the first worker.
        for worker in workers.iter().rev() {
            if !seen.insert(worker.id) {
                continue;
            }
            for launcher in &mut self.launchers {
                if !worker.labels.contains(&launcher.spec.label) || launcher.starting.is_empty() {
                    continue;
                }
                let launch = launcher.starting.remove(0);
                info!(
                    launcher = %launcher.spec.label,
                    worker = %worker.name,
                    after_ms = millis(launch.started.elapsed()),
                    "launcher {}: worker {} registered",
                    launcher.spec.label,
                    worker.name
                );
                launcher.failures = 0;
                launcher.retry_at = None;
                launcher.last_error = None;
                if launch.child.is_some() {
                    launcher.registered.push(launch);
                }
            }
        }
        let timeout = self.timeout;
        for launcher in &mut self.launchers {
            // Commands of registered workers: only reaped.
            launcher.registered.retain_mut(|launch| {
                let Some(child) = launch.child.as_mut() else {
                    return false;
                };
                match child.try_wait() {
                    Ok(None) => true,
                    Ok(Some(status)) => {
                        if !status.success() {
                            let label = &launcher.spec.label;
                            warn!(launcher = %label, "launcher {label}: the command of a registered worker ended with {status}");
                        }
                        false
                    }
                    Err(_) => false,
                }
            });
            let mut failures = Vec::new();
            launcher.starting.retain_mut(|launch| {
                if let Some(child) = launch.child.as_mut() {
                    match child.try_wait() {
                        Ok(Some(status)) if !status.success() => {
                            let line = launch.last_line();
                            let mut reason = format!("the command exited with {status}");
                            if !line.is_empty() {
                                reason.push_str(": ");
                                reason.push_str(&line);
                            }
                            failures.push(reason);
                            return false;
                        }
                        // Exited 0 (`systemd-run`, `kubectl run` return at once): its
                        // worker is still to register.
                        Ok(Some(_)) | Err(_) => launch.child = None,
                        Ok(None) => {}
                    }
                }
                if launch.started.elapsed() >= timeout {
                    launch.signal(Signal::SIGTERM);
                    if let Some(mut child) = launch.child.take() {
                        std::thread::spawn(move || {
                            let _ = child.wait();
                        });
                    }
                    failures.push(format!(
                        "no worker carrying `{}` registered within {} of the launch",
                        launcher.spec.label,
                        crate::ui::format::duration(timeout)
                    ));
                    return false;
                }
                true
            });
            for reason in failures {
                launcher.failed(reason, now);
            }
        }
    }

    /// Writes [`REPORT_FILE`] when what it says changed.
    fn write_report(&mut self) {
        let Some(path) = &self.report else {
            return;
        };
        let owner = Owner::current();
        let report = LaunchReport {
            pid: owner.pid,
            start_time: owner.start_time,
            host: owner.host,
            launchers: self
                .launchers
                .iter()
                .map(|launcher| LauncherStatus {
                    label: launcher.spec.label.clone(),
                    max: launcher.spec.max,
                    command: launcher.spec.command.clone(),
                    launched: launcher.launched,
                    starting: launcher.starting.len(),
                    failures: launcher.failures,
                    error: launcher.last_error.as_ref().map(|(e, _)| e.clone()),
                    failed_at: launcher.last_error.as_ref().map(|(_, at)| at.to_rfc3339()),
                    retry_at: launcher.retry_at.and_then(|at| {
                        let left = at.saturating_duration_since(Instant::now());
                        let left = chrono::Duration::from_std(left).ok()?;
                        Some((Utc::now() + left).to_rfc3339())
                    }),
                })
                .collect(),
        };
        // What changes every tick (the retry instant) is left out of the comparison.
        let key = serde_json::to_string(
            &report
                .launchers
                .iter()
                .map(|l| (l.launched, l.starting, l.failures, &l.error))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        if self.written.as_ref() == Some(&key) {
            return;
        }
        match write_atomically(path, &report) {
            Ok(()) => self.written = Some(key),
            Err(err) => {
                warn!(error = %err, file = %path.display(), "launchers: cannot write the report")
            }
        }
    }

    /// Stops the commands still running (SIGTERM: a worker finishes or re-queues its job
    /// within its grace), waits for them, kills what outlives `deadline`, and removes the
    /// report.
    pub fn shutdown(&mut self, deadline: Duration) {
        let launches: Vec<Launch> = self
            .launchers
            .iter_mut()
            .flat_map(|l| l.starting.drain(..).chain(l.registered.drain(..)))
            .collect();
        for launch in &launches {
            launch.signal(Signal::SIGTERM);
        }
        let until = Instant::now() + deadline;
        for mut launch in launches {
            let Some(mut child) = launch.child.take() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= until => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        if let Some(path) = &self.report {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The launch decision for one launcher: how many workers to start now, and why.
fn decide(
    launcher: &mut Launcher,
    workers: &[WorkerRecord],
    waiting: usize,
    env: &str,
    blocks: &str,
) {
    let label = &launcher.spec.label;
    let carrying: Vec<&WorkerRecord> = workers
        .iter()
        .filter(|w| w.is_live() && w.labels.contains(label))
        .collect();
    let live = carrying.len();
    let idle = carrying.iter().filter(|w| w.state == "idle").count();
    let starting = launcher.starting.len();
    if waiting == 0 {
        launcher.hold(format!("no job needing `{label}` waits"));
        return;
    }
    if let Some(at) = launcher.retry_at
        && Instant::now() < at
    {
        launcher.hold(format!(
            "backing off after {} failed launch(es) in a row",
            launcher.failures
        ));
        return;
    }
    // Workers that are idle or still starting will take waiting jobs; the maximum counts
    // every live worker carrying the label and every launch still starting.
    let wanted = waiting.saturating_sub(idle + starting);
    let room = launcher.spec.max.saturating_sub(live + starting);
    let count = wanted.min(room);
    if count == 0 {
        launcher.hold(if room == 0 {
            format!(
                "{waiting} job(s) wait, {live} worker(s) carry it and {starting} are starting: at the maximum of {}",
                launcher.spec.max
            )
        } else {
            format!(
                "{waiting} job(s) wait, {idle} idle worker(s) carry it and {starting} are starting"
            )
        });
        return;
    }
    launcher.holding = None;
    let labels = shell_quote(&launcher.labels.join(",")).into_owned();
    let command = render(&launcher.spec.command, env, &labels, blocks);
    for _ in 0..count {
        info!(
            launcher = %label,
            waiting,
            live,
            idle,
            starting = launcher.starting.len(),
            "launching a worker for {label}: {waiting} job(s) wait, {live} worker(s) carry it ({idle} idle, {} starting)",
            launcher.starting.len()
        );
        launcher.launched += 1;
        match spawn(&command, label) {
            Ok(launch) => launcher.starting.push(launch),
            Err(err) => {
                launcher.failed(format!("cannot run `sh -c {command}`: {err}"), Utc::now());
                return;
            }
        }
    }
}

/// Runs `command` through `sh -c`: stdin and stdout closed, stderr relayed to the daemon's
/// log (its last line kept for the error of a failed launch), told to die with the daemon.
fn spawn(command: &str, label: &str) -> std::io::Result<Launch> {
    let mut process = Command::new("sh");
    process
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe, between fork and
    // exec; it allocates nothing and touches no lock.
    unsafe {
        process.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let mut child = process.spawn()?;
    let last_line = Arc::new(Mutex::new(String::new()));
    if let Some(stderr) = child.stderr.take() {
        let label = label.to_owned();
        let last = Arc::clone(&last_line);
        let spawned = std::thread::Builder::new()
            .name(format!("launcher-{label}"))
            .spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    warn!(launcher = %label, "{line}");
                    if let Ok(mut last) = last.lock() {
                        line.clone_into(&mut last);
                    }
                }
            });
        if let Err(err) = spawned {
            warn!(error = %err, "launchers: cannot relay a command's stderr");
        }
    }
    Ok(Launch {
        child: Some(child),
        started: Instant::now(),
        last_line,
    })
}

/// What [`REPORT_FILE`] holds: the daemon that wrote it, and each launcher's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchReport {
    pub pid: u32,
    /// The daemon's process start time ([`Owner::start_time`]).
    pub start_time: u64,
    pub host: String,
    pub launchers: Vec<LauncherStatus>,
}

/// One launcher in [`LaunchReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LauncherStatus {
    pub label: String,
    pub max: usize,
    pub command: String,
    /// Launches so far.
    pub launched: u64,
    /// Launches whose worker has not registered yet.
    pub starting: usize,
    /// Failed launches since the last one whose worker registered.
    pub failures: u32,
    /// The last failure, while `failures` is above 0.
    pub error: Option<String>,
    /// When it happened (RFC 3339).
    pub failed_at: Option<String>,
    /// When the launcher may try again (RFC 3339), while it backs off.
    pub retry_at: Option<String>,
}

impl LaunchReport {
    /// The report in `dir`, when a live daemon wrote it.
    #[must_use]
    pub fn read(dir: &Path) -> Option<LaunchReport> {
        let text = std::fs::read_to_string(dir.join(REPORT_FILE)).ok()?;
        let report: LaunchReport = serde_json::from_str(&text).ok()?;
        let owner = Owner {
            pid: report.pid,
            start_time: report.start_time,
            host: report.host.clone(),
        };
        crate::store::owner_is_alive(&owner).then_some(report)
    }
}

/// Writes `report` to `path` through a private temporary file renamed into place, so that
/// a reader never sees half of it.
fn write_atomically(path: &Path, report: &LaunchReport) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let mut file = crate::store::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    file.write_all(&serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?)?;
    file.sync_data().ok();
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::{backoff, render};
    use std::time::Duration;

    #[test]
    fn placeholders_are_substituted_once() {
        assert_eq!(
            render(
                "w --env {env} --labels {labels} {blocks}{x}",
                "{labels}",
                "gpu,a",
                ""
            ),
            "w --env {labels} --labels gpu,a {x}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(7), Duration::from_secs(60));
        assert_eq!(backoff(1000), Duration::from_secs(60));
    }
}
