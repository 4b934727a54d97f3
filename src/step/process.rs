//! Running one step as a child process: spawn, output capture, wait, timeout and cancel.
//!
//! [`run_step`] starts the step's program in a new process group with stdin closed and
//! stdout and stderr piped, reads both pipes concurrently into lines for the caller's sink,
//! samples the tree's CPU time and memory, and waits for the main process. On timeout or
//! cancel it stops the whole tree (see `kill.rs`). It does not touch what a step left
//! running after a normal exit: that is the job's business, through
//! [`kill_token_processes`](super::kill_token_processes) when the job ends.
//!
//! Timestamping and storing lines, step environment variables (`COREFLOW_*`), reading
//! `$COREFLOW_OUTPUT` and turning a start failure into a failed step are the caller's.

pub use crate::state::Stream;
use std::collections::HashSet;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, Sleep};

use super::capture::LineSplitter;
use super::cgroup::Cgroup;
use super::command::{Launch, StepCommand};
use super::error::Error;
use super::kill;
use super::procfs::{KILL_TOKEN_VAR, Sampler, TreeSample};

/// How long output is still read after the main process exited, for what is left in the
/// pipes. A background process that keeps them open cannot hold the step longer.
const DRAIN: Duration = Duration::from_millis(100);
/// How often the process tree's CPU time and memory are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Where a step's output goes: each complete line (or a line cut at the capture limit), as
/// it arrives, and a tick about twice a second while the step runs — the moment to flush
/// what was buffered, so that a step gone quiet does not hide its last lines from readers
/// elsewhere. A closure taking lines is a sink whose ticks do nothing.
pub trait Sink: Send {
    fn line(&mut self, stream: Stream, line: &[u8]);

    fn tick(&mut self) {}
}

impl<F: FnMut(Stream, &[u8]) + Send> Sink for F {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        self(stream, line);
    }
}
/// How often, during a stop, we check whether the rest of the tree is gone after the
/// main process exited (the main process itself is awaited, not polled).
const GROUP_CHECK_EVERY: Duration = Duration::from_millis(50);
/// Bytes read from a pipe at once: a full default pipe buffer.
const READ_BUFFER: usize = 64 * 1024;

/// How to stop a running step when asked to cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelMode {
    /// SIGTERM, then SIGKILL after the step's grace.
    Graceful,
    /// SIGKILL at once (a second Ctrl-C). Also cuts short a graceful stop under way.
    Kill,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// The main process exited with this code.
    Exited(i32),
    /// The main process was killed by this signal (not by the timeout or a cancel).
    Signaled(i32),
    /// The step was stopped because its timeout passed.
    TimedOut,
    /// The step was stopped because it was cancelled.
    Cancelled,
}

impl StepEnd {
    /// Whether the step succeeded (exit code 0).
    #[must_use]
    pub fn is_success(self) -> bool {
        self == Self::Exited(0)
    }
}

/// The outcome of [`run_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// How it ended.
    pub end: StepEnd,
    /// The pid of the main process; 0 when it was never started (cancelled before).
    pub pid: u32,
    /// From the start to the exit of the main process.
    pub duration: Duration,
    /// The highest resident memory seen: the largest of the sampled sums over the tree and
    /// the peak of the main process and the children it waited for.
    pub peak_rss_bytes: u64,
    /// User and system CPU time of the tree, in milliseconds.
    pub cpu_ms: u64,
}

/// Runs one step to its end and reports how it ended.
///
/// Every line the step prints is passed to `sink` as soon as it is read, without its line
/// ending, in order within each stream; lines longer than 64 KiB come in 64 KiB pieces.
/// When `cmd.timeout` passes, or `cancel` turns to `Some`, the step's tree is stopped
/// (SIGTERM, `cmd.grace`, SIGKILL, also for processes that left the group) and the report
/// says [`StepEnd::TimedOut`] or [`StepEnd::Cancelled`]. A cancel already set before the
/// start means the step is not started at all (pid 0).
///
/// Must run inside a Tokio runtime with the IO and time drivers enabled. If the returned
/// future is dropped before the step ended, the step's tree is killed.
///
/// # Errors
///
/// [`Error`] when the step cannot be started (its [`Error::exit_code`] is what a shell would
/// report), or, in practice never, when waiting for it fails.
pub async fn run_step(
    cmd: &StepCommand,
    cancel: watch::Receiver<Option<CancelMode>>,
    sink: &mut dyn Sink,
) -> Result<StepReport, Error> {
    run_step_in(cmd, None, cancel, sink).await
}

/// [`run_step`], with the main process moved into `cgroup` right after the spawn (when
/// given), so that the kernel holds it and what it starts to the cgroup's limits.
///
/// The move happens after the spawn, not before the program runs: what the process starts
/// or allocates in that instant is outside the cgroup, which the caller's sampling covers.
/// A move the kernel refuses is logged at debug level and otherwise ignored.
///
/// # Errors
///
/// As [`run_step`].
pub async fn run_step_in(
    cmd: &StepCommand,
    cgroup: Option<&Cgroup>,
    mut cancel: watch::Receiver<Option<CancelMode>>,
    sink: &mut dyn Sink,
) -> Result<StepReport, Error> {
    if cancel.borrow_and_update().is_some() {
        return Ok(StepReport {
            end: StepEnd::Cancelled,
            pid: 0,
            duration: Duration::ZERO,
            peak_rss_bytes: 0,
            cpu_ms: 0,
        });
    }
    let launch = Launch::prepare(cmd)?;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .current_dir(&cmd.cwd)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .env(KILL_TOKEN_VAR, &cmd.kill_token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|error| launch.spawn_error(cmd, error))?;
    // A freshly spawned child has a pid and the pipes asked for; were it otherwise, the
    // child is killed on drop of the Tokio handle.
    let (Some(pid), Some(stdout), Some(stderr)) =
        (child.id(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.start_kill();
        let error = io::Error::other("the new process has no pid or pipes");
        return Err(Error::Spawn {
            program: launch.display,
            error,
        });
    };
    if let Some(cgroup) = cgroup
        && let Err(err) = cgroup.place(pid)
    {
        tracing::debug!(pid, cgroup = %cgroup.path().display(), %err, "not moved into the cgroup");
    }
    tracing::debug!(pid, program = %launch.display, args = ?launch.args, "step started");
    let guard = TreeGuard {
        pgid: pid,
        token: cmd.kill_token.clone(),
        armed: true,
    };
    // No sample right away: the exit's rusage gives exact figures for short steps, and
    // the periodic samples cover what a long one leaves running.
    let sampler = Arc::new(Mutex::new(Sampler::new(&cmd.kill_token)));
    let reaper = tokio::spawn(reap(child, pid));
    let supervisor = Supervisor {
        cmd,
        program: launch.display,
        pid,
        started,
        guard,
        sampler,
        peak: Peak::default(),
        exit: None,
        stop: None,
    };
    let report = supervisor
        .supervise(
            reaper,
            Pipe::new(stdout, Stream::Stdout),
            Pipe::new(stderr, Stream::Stderr),
            cancel,
            sink,
        )
        .await;
    // The script file must outlive the child; it is removed here.
    drop(launch.script);
    if let Ok(report) = &report {
        tracing::debug!(
            pid,
            end = ?report.end,
            millis = report.duration.as_millis(),
            cpu_ms = report.cpu_ms,
            "step ended"
        );
    }
    report
}

/// Kills the step's tree if [`run_step`] is dropped before the step ended.
struct TreeGuard {
    pgid: u32,
    token: String,
    armed: bool,
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        kill::signal_group(self.pgid, Signal::SIGKILL);
        // Processes outside the group need a scan of /proc: not in a destructor that may
        // run on an async worker thread.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let token = std::mem::take(&mut self.token);
            drop(runtime.spawn_blocking(move || kill::kill_tree(None, None, &token)));
        }
    }
}

/// One pipe of the child, read in large chunks and split into lines.
struct Pipe<R> {
    reader: R,
    buf: Box<[u8]>,
    lines: LineSplitter,
    stream: Stream,
    open: bool,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: R, stream: Stream) -> Self {
        Self {
            reader,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            lines: LineSplitter::new(),
            stream,
            open: true,
        }
    }

    /// Handles the result of one read.
    fn on_read(&mut self, result: io::Result<usize>, sink: &mut dyn Sink) {
        match result {
            Ok(0) => self.close(sink),
            Ok(n) => {
                let stream = self.stream;
                self.lines
                    .feed(&self.buf[..n], &mut |line| sink.line(stream, line));
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // A failing pipe read has no remedy; treat it as the end of the stream.
            Err(_) => self.close(sink),
        }
    }

    /// Stops reading, delivering an unfinished last line.
    fn close(&mut self, sink: &mut dyn Sink) {
        if self.open {
            self.open = false;
            let stream = self.stream;
            self.lines.finish(&mut |line| sink.line(stream, line));
        }
    }
}

/// CPU time and memory of an exited main process and the children it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExitUsage {
    cpu_ms: u64,
    max_rss_bytes: u64,
}

/// Waits for the child and returns its status, with its resource use read just before it
/// is reaped.
///
/// Runs as its own task, so that it is only polled when the child's state changes, not
/// for every chunk of output.
async fn reap(mut child: Child, pid: u32) -> (io::Result<ExitStatus>, Option<ExitUsage>) {
    let mut usage = None;
    let status = poll_fn(|cx| {
        if usage.is_none() {
            usage = exited_usage(pid);
        }
        // `wait` is cancel safe: a fresh future per poll loses nothing.
        pin!(child.wait()).poll(cx)
    })
    .await;
    (status, usage)
}

/// The resource use of `pid` if it has exited but is not reaped yet, else `None`.
///
/// Linux's `waitid` syscall takes a fifth argument that the C library hides: the rusage
/// of the child, its own plus that of the children it reaped. With `WNOWAIT` the child
/// stays a zombie for Tokio to reap. This gives exact CPU time and peak memory even for a
/// step that lived less than one sampling period.
fn exited_usage(pid: u32) -> Option<ExitUsage> {
    // Integer arguments of `syscall` are read as C longs.
    let id = libc::c_long::from(libc::pid_t::try_from(pid).ok()?);
    let idtype = libc::c_long::from(libc::c_int::try_from(libc::P_PID).ok()?);
    let options = libc::c_long::from(libc::WEXITED | libc::WNOWAIT | libc::WNOHANG);
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: waitid(2) writes at most one siginfo_t and one rusage through the two
    // pointers, which point to live buffers of exactly those types. WNOHANG keeps it from
    // blocking; WNOWAIT leaves the child unreaped, so Tokio's own wait is unaffected.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_waitid,
            idtype,
            id,
            info.as_mut_ptr(),
            options,
            usage.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: both structs are plain C data for which all-zero bytes are a valid value;
    // they were zeroed above and the kernel only wrote valid values into them.
    let (info, usage) = unsafe { (info.assume_init(), usage.assume_init()) };
    // SAFETY: waitid always sets the pid field of the union, to 0 when no child changed
    // state (with WNOHANG); the buffer was zeroed, so the field is initialised either way.
    if unsafe { info.si_pid() } == 0 {
        return None;
    }
    let ms = |tv: libc::timeval| {
        let sec = u64::try_from(tv.tv_sec).unwrap_or(0);
        let usec = u64::try_from(tv.tv_usec).unwrap_or(0);
        sec.saturating_mul(1000).saturating_add(usec / 1000)
    };
    Some(ExitUsage {
        cpu_ms: ms(usage.ru_utime).saturating_add(ms(usage.ru_stime)),
        max_rss_bytes: u64::try_from(usage.ru_maxrss)
            .unwrap_or(0)
            .saturating_mul(1024),
    })
}

/// The highest values seen.
#[derive(Debug, Default)]
struct Peak {
    rss_bytes: u64,
    cpu_ms: u64,
}

impl Peak {
    fn add_sample(&mut self, sample: TreeSample) {
        self.rss_bytes = self.rss_bytes.max(sample.rss_bytes);
        self.cpu_ms = self.cpu_ms.max(sample.cpu_ms);
    }

    fn add_exit(&mut self, usage: ExitUsage) {
        self.rss_bytes = self.rss_bytes.max(usage.max_rss_bytes);
        self.cpu_ms = self.cpu_ms.max(usage.cpu_ms);
    }
}

fn lock(sampler: &Mutex<Sampler>) -> std::sync::MutexGuard<'_, Sampler> {
    // A panic while sampling leaves nothing half-updated that matters: keep going.
    sampler.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stop under way.
#[derive(Debug)]
struct Stop {
    /// `TimedOut` or `Cancelled`.
    end: StepEnd,
    /// Whether SIGKILL was sent; until then the tree has its grace.
    killed: bool,
    /// The processes that got SIGTERM (those of the group through `killpg`).
    signalled: HashSet<u32>,
}

/// The state of one running step.
struct Supervisor<'a> {
    cmd: &'a StepCommand,
    program: String,
    pid: u32,
    started: Instant,
    guard: TreeGuard,
    sampler: Arc<Mutex<Sampler>>,
    peak: Peak,
    /// The main process's status and when it was reaped.
    exit: Option<(ExitStatus, Instant)>,
    stop: Option<Stop>,
}

type Reaper = tokio::task::JoinHandle<(io::Result<ExitStatus>, Option<ExitUsage>)>;

impl Supervisor<'_> {
    /// The main loop: output, exit, timeout, cancel, grace and sampling, raced in one
    /// `select!` so that none waits for another.
    async fn supervise<O, E>(
        mut self,
        mut reaper: Reaper,
        mut out: Pipe<O>,
        mut err: Pipe<E>,
        mut cancel: watch::Receiver<Option<CancelMode>>,
        sink: &mut dyn Sink,
    ) -> Result<StepReport, Error>
    where
        O: AsyncRead + Unpin,
        E: AsyncRead + Unpin,
    {
        let never = far_future();
        let timeout_at = self.cmd.timeout.and_then(|t| self.started.checked_add(t));
        let mut timeout = pin!(tokio::time::sleep_until(timeout_at.unwrap_or(never)));
        let mut grace_over = pin!(tokio::time::sleep_until(never));
        let mut drain_over = pin!(tokio::time::sleep_until(never));
        let mut draining = false;
        let mut cancel_open = true;
        let mut sample_tick = tokio::time::interval_at(self.started + SAMPLE_EVERY, SAMPLE_EVERY);
        sample_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut group_check = tokio::time::interval(GROUP_CHECK_EVERY);
        group_check.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            if self.is_settled() {
                if !out.open && !err.open {
                    break;
                }
                if !draining {
                    draining = true;
                    drain_over.as_mut().reset(Instant::now() + DRAIN);
                }
            }
            let stopping = self.stop.as_ref().is_some_and(|stop| !stop.killed);
            tokio::select! {
                result = out.reader.read(&mut out.buf), if out.open => {
                    out.on_read(result, sink);
                }
                result = err.reader.read(&mut err.buf), if err.open => {
                    err.on_read(result, sink);
                }
                joined = &mut reaper, if self.exit.is_none() => {
                    let (status, usage) = joined.unwrap_or_else(|join| {
                        (Err(io::Error::other(join.to_string())), None)
                    });
                    let status = status.map_err(|error| Error::Wait {
                        program: self.program.clone(),
                        pid: self.pid,
                        error,
                    })?;
                    self.exit = Some((status, Instant::now()));
                    if let Some(usage) = usage {
                        self.peak.add_exit(usage);
                    }
                    self.guard.armed = stopping;
                    if stopping {
                        self.terminate_newcomers().await;
                    }
                }
                changed = cancel.changed(), if cancel_open => {
                    let mode = if changed.is_ok() {
                        *cancel.borrow_and_update()
                    } else {
                        // The sender is gone: no cancel can come any more.
                        cancel_open = false;
                        None
                    };
                    // A cancel after the main process exited by itself changes nothing.
                    if let Some(mode) = mode.filter(|_| self.exit.is_none() || stopping) {
                        self.stop(StepEnd::Cancelled, mode, grace_over.as_mut()).await;
                    }
                }
                () = &mut timeout, if timeout_at.is_some() && self.stop.is_none()
                    && self.exit.is_none() =>
                {
                    self.stop(StepEnd::TimedOut, CancelMode::Graceful, grace_over.as_mut()).await;
                }
                () = &mut grace_over, if stopping => {
                    self.kill().await;
                }
                _ = group_check.tick(), if stopping && self.exit.is_some() => {
                    if !self.is_tree_alive().await {
                        self.kill().await;
                    }
                }
                _ = sample_tick.tick(), if self.exit.is_none() => {
                    self.sample().await;
                    sink.tick();
                }
                () = &mut drain_over, if draining => break,
            }
        }
        out.close(sink);
        err.close(sink);
        let (status, exited_at) = self.exit.expect("the loop ends only after the exit");
        let end = match &self.stop {
            Some(stop) => stop.end,
            None => status_end(status),
        };
        Ok(StepReport {
            end,
            pid: self.pid,
            duration: exited_at.saturating_duration_since(self.started),
            peak_rss_bytes: self.peak.rss_bytes,
            cpu_ms: self.peak.cpu_ms,
        })
    }

    /// Whether the main process is gone and no stop waits for its grace.
    fn is_settled(&self) -> bool {
        self.exit.is_some() && self.stop.as_ref().is_none_or(|stop| stop.killed)
    }

    /// Starts stopping the tree, or escalates a graceful stop to SIGKILL.
    async fn stop(&mut self, end: StepEnd, mode: CancelMode, grace_over: Pin<&mut Sleep>) {
        if self.stop.is_none() {
            self.stop = Some(Stop {
                end,
                killed: false,
                signalled: HashSet::new(),
            });
            self.guard.armed = true;
            if mode == CancelMode::Graceful {
                self.terminate().await;
                let deadline = Instant::now().checked_add(self.cmd.grace);
                grace_over.reset(deadline.unwrap_or_else(far_future));
                return;
            }
        }
        if mode == CancelMode::Kill {
            self.kill().await;
        }
    }

    /// SIGTERM to the group and to the members of the tree that left it.
    async fn terminate(&mut self) {
        let root = self.exit.is_none().then_some(self.pid);
        let (token, pgid) = (self.cmd.kill_token.clone(), self.pid);
        let signalled =
            tokio::task::spawn_blocking(move || kill::terminate_step(root, pgid, &token))
                .await
                .unwrap_or_default();
        if let Some(stop) = &mut self.stop {
            stop.signalled = signalled;
        }
    }

    /// After the main process exited during a stop: SIGTERM to what was started after the
    /// first one, which would otherwise wait out the whole grace unwarned.
    async fn terminate_newcomers(&mut self) {
        let Some(stop) = &mut self.stop else {
            return;
        };
        let mut signalled = std::mem::take(&mut stop.signalled);
        let (token, pgid) = (self.cmd.kill_token.clone(), self.pid);
        let joined = tokio::task::spawn_blocking(move || {
            kill::terminate_newcomers(pgid, &token, &mut signalled);
            signalled
        })
        .await;
        if let Ok(signalled) = joined {
            stop.signalled = signalled;
        }
    }

    /// SIGKILL to the group, then to every remaining member of the tree.
    async fn kill(&mut self) {
        if let Some(stop) = &mut self.stop {
            if stop.killed {
                return;
            }
            stop.killed = true;
        }
        kill::signal_group(self.pid, Signal::SIGKILL);
        let root = self.exit.is_none().then_some(self.pid);
        let (token, pgid) = (self.cmd.kill_token.clone(), self.pid);
        // Joining only fails if the sweep panicked; the group got SIGKILL already.
        let _ =
            tokio::task::spawn_blocking(move || kill::kill_tree(root, Some(pgid), &token)).await;
        self.guard.armed = self.exit.is_none();
    }

    /// During a stop, after the main process exited: whether anything that got SIGTERM (or
    /// is in the group) is still alive. If not, there is no point in waiting out the grace.
    async fn is_tree_alive(&self) -> bool {
        let pgid = self.pid;
        let signalled = self
            .stop
            .as_ref()
            .map(|stop| stop.signalled.clone())
            .unwrap_or_default();
        tokio::task::spawn_blocking(move || kill::is_any_alive(pgid, &signalled))
            .await
            .unwrap_or(true)
    }

    /// A full sample, token carriers included, off the async threads.
    async fn sample(&mut self) {
        let sampler = Arc::clone(&self.sampler);
        let pid = self.pid;
        let joined = tokio::task::spawn_blocking(move || lock(&sampler).sample(pid)).await;
        if let Ok(sample) = joined {
            self.peak.add_sample(sample);
        }
    }
}

/// How a main process that exited on its own ended.
fn status_end(status: ExitStatus) -> StepEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => StepEnd::Exited(code),
        (None, Some(signal)) => StepEnd::Signaled(signal),
        // Stopped or continued statuses are not exits; `wait` never returns them.
        (None, None) => StepEnd::Exited(-1),
    }
}

/// An instant no step reaches, for timers that are not armed.
fn far_future() -> Instant {
    Instant::now() + Duration::from_hours(24 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tokio::sync::watch;

    use super::{CancelMode, StepEnd, StepReport, Stream, run_step};
    use crate::step::command::{Program, Shell, StepCommand};
    use crate::step::error::Error;
    use crate::step::kill::kill_token_processes;
    use crate::step::procfs::{all_pids, is_alive, read_stat, token_carriers, token_entry};

    /// A generous bound for things that must finish, far above what they need; exceeding
    /// it means a hang, not slowness.
    const HANG: Duration = Duration::from_secs(20);

    fn unique_token(name: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("process-{name}-{}-{n}", std::process::id())
    }

    fn sh(script: &str) -> StepCommand {
        script_in(Shell::Sh, script)
    }

    fn script_in(shell: Shell, script: &str) -> StepCommand {
        let program = Program::Script {
            shell,
            script: script.to_owned(),
        };
        StepCommand::new(program, std::env::temp_dir(), unique_token("step"))
    }

    fn argv(items: &[&str]) -> StepCommand {
        let program = Program::Argv(items.iter().map(|&s| s.to_owned()).collect());
        StepCommand::new(program, std::env::temp_dir(), unique_token("argv"))
    }

    type Lines = Vec<(Stream, String)>;

    /// Runs `cmd` to its end, with a cancel channel nobody uses.
    async fn run(cmd: &StepCommand) -> (StepReport, Lines) {
        let (_tx, rx) = watch::channel(None);
        let mut lines = Vec::new();
        let mut sink = |stream: Stream, line: &[u8]| {
            lines.push((stream, String::from_utf8_lossy(line).into_owned()));
        };
        let report = tokio::time::timeout(HANG, run_step(cmd, rx, &mut sink))
            .await
            .expect("the step ends")
            .expect("the step starts");
        (report, lines)
    }

    /// Runs `cmd`, sending `mode` on the cancel channel when the step prints `trigger`.
    async fn run_cancelling(cmd: &StepCommand, on: &[(&str, CancelMode)]) -> (StepReport, Lines) {
        let (tx, rx) = watch::channel(None);
        let mut lines = Vec::new();
        let mut sink = |stream: Stream, line: &[u8]| {
            let text = String::from_utf8_lossy(line).into_owned();
            if let Some((_, mode)) = on.iter().find(|(trigger, _)| *trigger == text) {
                tx.send_replace(Some(*mode));
            }
            lines.push((stream, text));
        };
        let report = tokio::time::timeout(HANG, run_step(cmd, rx, &mut sink))
            .await
            .expect("the step ends")
            .expect("the step starts");
        (report, lines)
    }

    fn of(lines: &Lines, stream: Stream) -> Vec<&str> {
        lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l.as_str())
            .collect()
    }

    /// Live processes carrying `token`.
    fn live_carriers(token: &str) -> Vec<u32> {
        let entry = token_entry(token).expect("valid token");
        token_carriers(&entry)
            .into_iter()
            .filter(|&pid| is_alive(pid))
            .collect()
    }

    /// Live processes in the process group `pgid`.
    fn group_members(pgid: u32) -> Vec<u32> {
        all_pids()
            .into_iter()
            .filter_map(read_stat)
            .filter(|stat| stat.pgrp == pgid && !stat.is_zombie())
            .map(|stat| stat.pid)
            .collect()
    }

    #[tokio::test]
    async fn captures_both_streams_in_order() {
        let cmd =
            sh("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf 'cr\\r\\nlast'");
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::Exited(0));
        assert!(report.end.is_success());
        assert!(report.pid > 0);
        assert_eq!(
            of(&lines, Stream::Stdout),
            ["out1", "out2", "out3", "out4", "out5", "cr", "last"]
        );
        assert_eq!(
            of(&lines, Stream::Stderr),
            ["err1", "err2", "err3", "err4", "err5"]
        );
    }

    #[tokio::test]
    async fn long_lines_arrive_in_pieces() {
        let cmd = sh("head -c 150000 /dev/zero | tr '\\0' x; echo; echo short");
        let (_, lines) = run(&cmd).await;
        let sizes: Vec<usize> = of(&lines, Stream::Stdout).iter().map(|l| l.len()).collect();
        assert_eq!(sizes, [65536, 65536, 150_000 - 2 * 65536, 5]);
    }

    #[tokio::test]
    async fn sh_stops_at_the_first_failure() {
        let (report, lines) = run(&sh("echo before; false; echo after")).await;
        assert_eq!(report.end, StepEnd::Exited(1));
        assert!(!report.end.is_success());
        assert_eq!(of(&lines, Stream::Stdout), ["before"]);
        let (report, _) = run(&sh("exit 7")).await;
        assert_eq!(report.end, StepEnd::Exited(7));
    }

    #[tokio::test]
    async fn bash_uses_pipefail() {
        let (report, lines) = run(&script_in(Shell::Bash, "false | true; echo after")).await;
        assert_eq!(report.end, StepEnd::Exited(1));
        assert!(lines.is_empty());
        let (report, lines) = run(&script_in(Shell::Bash, "echo ${BASH_VERSION:+bash}")).await;
        assert_eq!(report.end, StepEnd::Exited(0));
        assert_eq!(of(&lines, Stream::Stdout), ["bash"]);
    }

    #[tokio::test]
    async fn python_and_custom_shells_run_a_script_file() {
        let mut cmd = script_in(Shell::Python3, "import os\nprint(os.environ['GREETING'])");
        cmd.env
            .push(("GREETING".into(), "hello from python".into()));
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::Exited(0), "{lines:?}");
        assert_eq!(of(&lines, Stream::Stdout), ["hello from python"]);

        let (report, lines) = run(&script_in(
            Shell::Custom("perl {0}".into()),
            "print \"hi\\n\";",
        ))
        .await;
        assert_eq!(report.end, StepEnd::Exited(0), "{lines:?}");
        assert_eq!(of(&lines, Stream::Stdout), ["hi"]);

        // `{0}` inside a word, extra words, and the file removed afterwards.
        let custom = Shell::Custom("sh -eu {0} --path={0}".into());
        let (report, lines) = run(&script_in(custom, "echo \"$0\"; echo \"$1\"")).await;
        assert_eq!(report.end, StepEnd::Exited(0), "{lines:?}");
        let out = of(&lines, Stream::Stdout);
        assert_eq!(out[1], format!("--path={}", out[0]));
        assert!(out[0].contains("coreflow-step-"));
        assert!(!Path::new(out[0]).exists(), "the script file is removed");
    }

    #[tokio::test]
    async fn argv_runs_without_a_shell() {
        let (report, lines) = run(&argv(&["printf", "%s|", "a b", "$HOME", "*"])).await;
        assert_eq!(report.end, StepEnd::Exited(0));
        assert_eq!(of(&lines, Stream::Stdout), ["a b|$HOME|*|"]);
    }

    #[tokio::test]
    async fn step_sees_cwd_env_and_token_with_stdin_closed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = sh("pwd; echo \"$FOO\"; echo \"$COREFLOW_KILL_TOKEN\"; cat; echo eof");
        cmd.cwd = dir.path().to_owned();
        cmd.env = vec![
            ("FOO".into(), "first".into()),
            ("FOO".into(), "second".into()),
        ];
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::Exited(0));
        let cwd = dir.path().canonicalize().expect("canonical");
        assert_eq!(
            of(&lines, Stream::Stdout),
            [
                cwd.to_str().expect("utf-8"),
                "second",
                cmd.kill_token.as_str(),
                "eof"
            ]
        );
    }

    #[tokio::test]
    async fn own_path_is_honoured() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tool = dir.path().join("my-tool");
        fs::write(&tool, "#!/bin/sh\necho my tool\n").expect("write");
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut cmd = argv(&["my-tool"]);
        cmd.env.push((
            "PATH".into(),
            format!("/nonexistent:{}:/usr/bin:/bin", dir.path().display()),
        ));
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::Exited(0));
        assert_eq!(of(&lines, Stream::Stdout), ["my tool"]);
    }

    #[tokio::test]
    async fn start_failures_say_what_and_why() {
        let (_tx, rx) = watch::channel(None);
        let mut sink = |_: Stream, _: &[u8]| {};

        let cmd = argv(&["coreflow-no-such-program"]);
        let err = run_step(&cmd, rx.clone(), &mut sink)
            .await
            .expect_err("not found");
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 127);
        assert!(
            err.to_string()
                .starts_with("cannot start `coreflow-no-such-program`: "),
            "{err}"
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("not-executable");
        fs::write(&file, "echo hi\n").expect("write");
        let cmd = argv(&[file.to_str().expect("utf-8")]);
        let err = run_step(&cmd, rx.clone(), &mut sink)
            .await
            .expect_err("not executable");
        assert_eq!(err.exit_code(), 126, "{err}");

        let mut cmd = sh("true");
        cmd.cwd = dir.path().join("missing");
        let err = run_step(&cmd, rx.clone(), &mut sink)
            .await
            .expect_err("no cwd");
        assert!(matches!(err, Error::WorkingDirectory { .. }), "{err:?}");
        assert!(err.to_string().contains("missing"), "{err}");
        assert_eq!(err.exit_code(), 127);

        let err = run_step(&argv(&[]), rx.clone(), &mut sink)
            .await
            .expect_err("empty");
        assert!(matches!(err, Error::EmptyCommand));
        let err = run_step(&argv(&[""]), rx, &mut sink)
            .await
            .expect_err("empty name");
        assert!(matches!(err, Error::EmptyCommand));
    }

    #[tokio::test]
    async fn a_signal_from_elsewhere_is_reported() {
        let (report, _) = run(&sh("kill -9 $$")).await;
        assert_eq!(report.end, StepEnd::Signaled(9));
    }

    #[tokio::test]
    async fn a_background_process_holding_the_pipes_does_not_hold_the_step() {
        let cmd = sh("sleep 1000 & echo started");
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::Exited(0));
        assert_eq!(of(&lines, Stream::Stdout), ["started"]);
        // The leftover is the job's to clean up, through the token.
        let stopped = tokio::task::spawn_blocking({
            let token = cmd.kill_token.clone();
            move || kill_token_processes(&token, Duration::from_secs(5))
        });
        assert_eq!(stopped.await.expect("join"), 1);
        assert!(live_carriers(&cmd.kill_token).is_empty());
    }

    #[tokio::test]
    async fn a_background_process_flooding_the_pipes_does_not_hold_the_step() {
        let cmd = sh("yes background & echo started");
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::Exited(0));
        assert!(of(&lines, Stream::Stdout).contains(&"started"));
        let stopped = tokio::task::spawn_blocking({
            let token = cmd.kill_token.clone();
            move || kill_token_processes(&token, Duration::from_secs(5))
        });
        // Once the pipes are closed, `yes` usually dies of SIGPIPE before this sweep.
        assert!(stopped.await.expect("join") <= 1);
        assert!(live_carriers(&cmd.kill_token).is_empty());
    }

    #[tokio::test]
    async fn timeout_stops_a_step_that_floods_its_output() {
        let mut cmd = sh("yes flood");
        cmd.timeout = Some(Duration::from_millis(200));
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::TimedOut);
        assert!(lines.len() > 1000, "{}", lines.len());
        assert!(lines.iter().all(|(_, line)| line == "flood"));
        assert!(live_carriers(&cmd.kill_token).is_empty());
    }

    #[tokio::test]
    async fn timeout_stops_the_group_with_term() {
        let mut cmd = sh("echo started; sleep 1000");
        cmd.timeout = Some(Duration::from_millis(100));
        // SIGTERM works here, so the grace is never waited out.
        cmd.grace = Duration::from_hours(1);
        let (report, lines) = run(&cmd).await;
        assert_eq!(report.end, StepEnd::TimedOut);
        assert_eq!(of(&lines, Stream::Stdout), ["started"]);
        assert!(group_members(report.pid).is_empty());
        assert!(live_carriers(&cmd.kill_token).is_empty());
    }

    /// SPEC §3: nothing the step started survives a timeout, not even a descendant that
    /// left the process group with `setsid`, nor one whose parent exited.
    #[tokio::test]
    async fn timeout_kills_descendants_that_left_the_group() {
        for (ignore_term, name) in [(false, "term honoured"), (true, "term ignored")] {
            let trap = if ignore_term { "trap '' TERM; " } else { "" };
            let mut cmd = sh(&format!(
                "{trap}setsid sleep 1000 & (setsid sleep 1000 &); (sleep 1000 &); \
                 echo started; sleep 1000"
            ));
            cmd.timeout = Some(Duration::from_millis(200));
            cmd.grace = if ignore_term {
                Duration::from_millis(200)
            } else {
                HANG * 10
            };
            let (report, lines) = run(&cmd).await;
            assert_eq!(report.end, StepEnd::TimedOut, "{name}");
            assert_eq!(of(&lines, Stream::Stdout), ["started"], "{name}");
            assert_eq!(live_carriers(&cmd.kill_token), Vec::<u32>::new(), "{name}");
            assert_eq!(group_members(report.pid), Vec::<u32>::new(), "{name}");
        }
    }

    #[tokio::test]
    async fn graceful_cancel_lets_the_step_clean_up() {
        // Python rather than a shell trap: a shell that forks a child right when SIGTERM
        // comes may lose it in the child, which execs before acting on it; the test would
        // then wait out the grace.
        let script = "import signal, sys, time\n\
                      def on_term(*_):\n    print('cleaning up', flush=True)\n    sys.exit(3)\n\
                      signal.signal(signal.SIGTERM, on_term)\n\
                      print('ready', flush=True)\n\
                      time.sleep(1000)\n";
        let mut cmd = argv(&["python3", "-c", script]);
        cmd.grace = HANG * 10;
        let (report, lines) = run_cancelling(&cmd, &[("ready", CancelMode::Graceful)]).await;
        assert_eq!(report.end, StepEnd::Cancelled);
        assert_eq!(of(&lines, Stream::Stdout), ["ready", "cleaning up"]);
        assert!(live_carriers(&cmd.kill_token).is_empty());
    }

    #[tokio::test]
    async fn kill_cancel_skips_the_grace() {
        let mut cmd = sh("trap '' TERM; echo ready; sleep 1000");
        cmd.grace = HANG * 10;
        let (report, _) = run_cancelling(&cmd, &[("ready", CancelMode::Kill)]).await;
        assert_eq!(report.end, StepEnd::Cancelled);
        assert!(live_carriers(&cmd.kill_token).is_empty());
    }

    #[tokio::test]
    async fn a_second_cancel_cuts_the_grace_short() {
        // The trap reports SIGTERM and keeps going; only SIGKILL ends this step.
        let mut cmd = sh("trap 'echo got term' TERM; echo ready; \
                          while true; do sleep 1000 & wait; done");
        cmd.grace = HANG * 10;
        let on = [
            ("ready", CancelMode::Graceful),
            ("got term", CancelMode::Kill),
        ];
        let (report, lines) = run_cancelling(&cmd, &on).await;
        assert_eq!(report.end, StepEnd::Cancelled);
        assert_eq!(of(&lines, Stream::Stdout)[..2], ["ready", "got term"]);
        assert!(live_carriers(&cmd.kill_token).is_empty());
    }

    #[tokio::test]
    async fn cancelled_before_the_start_runs_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let marker = dir.path().join("ran");
        let cmd = sh(&format!("touch {}", marker.display()));
        let (_tx, rx) = watch::channel(Some(CancelMode::Graceful));
        let report = run_step(&cmd, rx, &mut |_: Stream, _: &[u8]| {})
            .await
            .expect("no error");
        assert_eq!(report.end, StepEnd::Cancelled);
        assert_eq!(report.pid, 0);
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn reports_cpu_time_and_peak_memory() {
        // 64 MiB written by a child the shell waits for, and 300 ms of CPU time: short
        // enough to fall between two samples, so the figures come from the exit.
        let script = "python3 -c 'import time\n\
                      x = b\"x\" * (64 << 20)\n\
                      t = time.process_time()\n\
                      while time.process_time() - t < 0.3: pass'";
        let (report, lines) = run(&sh(script)).await;
        assert_eq!(report.end, StepEnd::Exited(0), "{lines:?}");
        assert!(report.peak_rss_bytes >= 64 << 20, "{report:?}");
        assert!(report.cpu_ms >= 250, "{report:?}");
        assert!(report.duration >= Duration::from_millis(250), "{report:?}");
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_step() {
        let cmd = sh("trap '' TERM; echo ready; sleep 1000");
        let (_tx, rx) = watch::channel(None);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let mut sink = move |_: Stream, line: &[u8]| {
            if line == b"ready"
                && let Some(tx) = ready_tx.take()
            {
                let _ = tx.send(());
            }
        };
        tokio::select! {
            _ = run_step(&cmd, rx, &mut sink) => panic!("the step never ends by itself"),
            _ = ready_rx => {}
        }
        // The guard killed the group at once; the sweep for escaped processes runs on the
        // blocking pool, so give it the one deadline it needs.
        let deadline = std::time::Instant::now() + HANG;
        while !live_carriers(&cmd.kill_token).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the step survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn throughput_of_200_mb() {
        // Lines of 100 bytes; the figure is printed, not asserted (timings are noisy).
        let total: u64 = 200_000_000;
        let cmd = sh(&format!("yes {} | head -c {total}", "x".repeat(99)));
        let (_tx, rx) = watch::channel(None);
        let mut bytes = 0u64;
        let mut lines = 0u64;
        let mut sink = |_: Stream, line: &[u8]| {
            bytes += line.len() as u64 + 1;
            lines += 1;
        };
        let started = std::time::Instant::now();
        let report = run_step(&cmd, rx, &mut sink).await.expect("starts");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(report.end, StepEnd::Exited(0));
        assert_eq!((bytes, lines), (total, total / 100));
        #[expect(clippy::cast_precision_loss, reason = "a printed estimate")]
        let rate = total as f64 / seconds / 1e6;
        println!("200 MB through run_step in {seconds:.2} s: {rate:.0} MB/s");
    }
}
