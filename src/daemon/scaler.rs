//! The Scaler: a pool of local `coreflow worker` processes that grows towards the maximum
//! while runnable jobs wait and every worker is busy, and shrinks to the minimum after
//! workers sit idle. Workers are the same standalone workers as `coreflow worker`; each is
//! told to die with the daemon (`PR_SET_PDEATHSIG`, SIGTERM: it then finishes or re-queues
//! its job within its grace), so a killed daemon leaves no orphan pool behind.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::{info, warn};

use crate::store::Environment;

/// The pool's bounds and how its workers run.
#[derive(Debug, Clone)]
pub struct ScalerConfig {
    pub min: usize,
    pub max: usize,
    pub env: PathBuf,
    /// `--blocks`, passed on to the workers.
    pub blocks: Option<crate::store::BlocksLocation>,
    pub labels: Vec<String>,
    pub grace: Duration,
    pub lease: Duration,
    /// How long a worker may sit idle before the pool shrinks.
    pub idle: Duration,
    /// Log what workers write on stderr through the daemon's log (for `--log-format json`).
    pub relay_stderr: bool,
    /// `--cpus` and `--memory` for the workers, when the daemon was given them.
    pub cpus: Option<f64>,
    pub memory: Option<crate::spec::model::MemorySize>,
}

struct PoolWorker {
    child: Child,
    name: String,
    idle_since: Option<Instant>,
}

/// The local worker pool.
pub struct Scaler {
    config: ScalerConfig,
    workers: Vec<PoolWorker>,
    next: usize,
    last_grow: Option<Instant>,
}

impl Scaler {
    #[must_use]
    pub fn new(config: ScalerConfig) -> Self {
        Scaler {
            config,
            workers: Vec::new(),
            next: 1,
            last_grow: None,
        }
    }

    /// How many workers the pool has.
    #[must_use]
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    fn spawn(&mut self, why: &str) {
        let name = format!("daemon-{}-w{}", std::process::id(), self.next);
        self.next += 1;
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("coreflow"));
        let mut command = Command::new(exe);
        command
            .arg("worker")
            .arg("--env")
            .arg(&self.config.env)
            .arg("--name")
            .arg(&name)
            .arg("--grace")
            .arg(format!("{}ms", self.config.grace.as_millis()))
            .arg("--lease")
            .arg(format!("{}ms", self.config.lease.as_millis()))
            .stdin(Stdio::null())
            // Job output is in the environment (`coreflow logs`).
            .stdout(Stdio::null());
        // What a worker says about itself joins the daemon's log: as JSON lines when the
        // log is JSON (through a pipe, which a worker outliving a killed daemon finds
        // closed), else straight onto the daemon's stderr.
        if self.config.relay_stderr {
            command.stderr(Stdio::piped());
        }
        if !self.config.labels.is_empty() {
            command.arg("--labels").arg(self.config.labels.join(","));
        }
        if let Some(blocks) = &self.config.blocks {
            command.arg("--blocks").arg(blocks.to_string());
        }
        if let Some(cpus) = self.config.cpus {
            command.arg("--cpus").arg(cpus.to_string());
        }
        if let Some(memory) = self.config.memory {
            command.arg("--memory").arg(memory.0.to_string());
        }
        // SAFETY: the closure only calls prctl(2), which is async-signal-safe, between fork
        // and exec; it allocates nothing and touches no lock.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        match command.spawn() {
            Ok(mut child) => {
                info!(worker = %name, pid = child.id(), reason = why, pool = self.workers.len() + 1, "scaler: worker started");
                if let Some(stderr) = child.stderr.take() {
                    relay(name.clone(), stderr);
                }
                self.workers.push(PoolWorker {
                    child,
                    name,
                    idle_since: None,
                });
            }
            Err(err) => warn!(error = %err, "scaler: cannot start a worker"),
        }
    }

    /// One scaling decision: replace dead workers, grow while work waits and every worker
    /// is busy, shrink after idleness.
    pub fn tick(&mut self, store: &dyn Environment, backlog: bool) {
        // Reap workers that exited.
        let before = self.workers.len();
        self.workers.retain_mut(|w| match w.child.try_wait() {
            Ok(Some(status)) => {
                warn!(worker = %w.name, %status, "scaler: worker exited");
                false
            }
            _ => true,
        });
        if self.workers.len() < before {
            self.last_grow = None;
        }
        while self.workers.len() < self.config.min {
            self.spawn("minimum");
        }
        let states: Vec<(String, String)> = store
            .workers()
            .map(|ws| ws.into_iter().map(|w| (w.name, w.state)).collect())
            .unwrap_or_default();
        let now = Instant::now();
        let mut busy = 0;
        for worker in &mut self.workers {
            let state = states
                .iter()
                .find(|(n, _)| *n == worker.name)
                .map(|(_, s)| s.as_str());
            if state == Some("busy") {
                busy += 1;
                worker.idle_since = None;
            } else if worker.idle_since.is_none() {
                worker.idle_since = Some(now);
            }
        }
        let cooled = self
            .last_grow
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(300));
        if backlog && busy == self.workers.len() && self.workers.len() < self.config.max && cooled {
            self.last_grow = Some(now);
            self.spawn("jobs are waiting and every worker is busy");
            return;
        }
        if !backlog && self.workers.len() > self.config.min {
            let idle = self.config.idle;
            if let Some(index) = self.workers.iter().position(|w| {
                w.idle_since
                    .is_some_and(|since| now.duration_since(since) >= idle)
            }) {
                let worker = self.workers.remove(index);
                info!(worker = %worker.name, pool = self.workers.len(), "scaler: worker stopped after sitting idle");
                stop(worker);
            }
        }
    }

    /// Stops every worker: SIGTERM (each finishes or re-queues its job within its grace),
    /// then waits for them, killing what outlives `deadline`.
    pub fn shutdown(&mut self, deadline: Duration) {
        for worker in &self.workers {
            signal(&worker.child, Signal::SIGTERM);
        }
        let until = Instant::now() + deadline;
        for mut worker in self.workers.drain(..) {
            loop {
                match worker.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= until => {
                        signal(&worker.child, Signal::SIGKILL);
                        let _ = worker.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

/// Logs each line a worker writes on stderr, on a thread that ends with the worker.
fn relay(worker: String, stderr: std::process::ChildStderr) {
    use std::io::BufRead;
    let spawned = std::thread::Builder::new()
        .name(format!("{worker}-stderr"))
        .spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                warn!(worker = %worker, "{line}");
            }
        });
    if let Err(err) = spawned {
        warn!(error = %err, "scaler: cannot relay a worker's stderr");
    }
}

fn signal(child: &Child, signal: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Stops one worker in the background (it may take its grace to finish a job).
fn stop(worker: PoolWorker) {
    signal(&worker.child, Signal::SIGTERM);
    let mut child = worker.child;
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}
