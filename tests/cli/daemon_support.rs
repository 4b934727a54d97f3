//! Helpers for the `daemon` tests: a [`Site`] (a workflow folder and the environment a daemon
//! and the inspecting commands share), a [`Daemon`] process that cannot outlive a failing
//! test, the one polling helper with its deadline, gates that steps wait on, and a minimal
//! HTTP/1.1 client for the API.
//!
//! Synchronisation is by state only: a test waits (with [`wait_for`]) for runs, jobs or
//! workers to reach a state, never for time to pass. Steps that must stay running wait for a
//! gate file the test creates when it wants them to end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::engine_support::Workspace;
use crate::support::{Coreflow, Output, Running};

/// How long [`wait_for`] waits before it fails the test. Generous, because the machine may be
/// busy with other tests; a passing test never waits that long.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A workflow folder (`flows/`) and an environment, shared by daemons and commands.
pub(crate) struct Site {
    workspace: Workspace,
}

impl Site {
    pub(crate) fn new() -> Self {
        Self::in_workspace(Workspace::new())
    }

    /// A site whose environment is a PostgreSQL database, whichever pass runs the test.
    pub(crate) fn on_postgres() -> Self {
        Self::in_workspace(Workspace::on_postgres())
    }

    fn in_workspace(workspace: Workspace) -> Self {
        let site = Site { workspace };
        std::fs::create_dir_all(site.flows()).expect("the workflow folder can be created");
        site
    }

    /// The site's folder (canonical).
    pub(crate) fn path(&self) -> PathBuf {
        self.workspace.path()
    }

    /// The workflow folder the daemon loads.
    pub(crate) fn flows(&self) -> PathBuf {
        self.path().join("flows")
    }

    /// Writes `contents` at `name` (relative to the site) atomically: into a temporary file
    /// the daemon ignores, then renamed, so that the daemon never reads half a file.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        let full = self.path().join(name);
        let parent = full.parent().expect("a file has a folder");
        std::fs::create_dir_all(parent).expect("the parent folder can be created");
        let temporary = parent.join(".writing.tmp");
        std::fs::write(&temporary, contents).expect("the file can be written");
        std::fs::rename(&temporary, &full).expect("the file can be renamed into place");
    }

    /// Writes the workflow file `flows/NAME`.
    pub(crate) fn workflow(&self, name: &str, yaml: &str) {
        self.write(&format!("flows/{name}"), yaml);
    }

    /// Removes `name` (relative to the site).
    pub(crate) fn remove(&self, name: &str) {
        std::fs::remove_file(self.path().join(name)).expect("the file can be removed");
    }

    /// A `coreflow` invocation on the site's environment, working in the site's folder.
    pub(crate) fn coreflow(&self) -> Coreflow {
        self.workspace.coreflow()
    }

    /// `coreflow daemon flows ARGS…`, not started yet.
    pub(crate) fn daemon_command(&self, args: &[&str]) -> Coreflow {
        self.coreflow()
            .arg("daemon")
            .arg(self.flows())
            .args(args)
            .timeout(Duration::from_secs(60))
    }

    /// Starts `coreflow daemon flows ARGS…` with `vars` added to its environment.
    pub(crate) fn daemon_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Daemon {
        let mut command = self.daemon_command(args);
        for (key, value) in vars {
            command = command.env(key, value);
        }
        Daemon {
            running: Some(command.spawn()),
        }
    }

    /// Starts `coreflow daemon flows ARGS…`.
    pub(crate) fn daemon(&self, args: &[&str]) -> Daemon {
        Daemon {
            running: Some(self.daemon_command(args).spawn()),
        }
    }

    /// The runs of `workflow`, oldest first.
    #[track_caller]
    pub(crate) fn runs(&self, workflow: &str) -> Vec<Value> {
        let output = self
            .coreflow()
            .args([
                "runs",
                "--json",
                "--limit",
                "100000",
                "--workflow",
                workflow,
            ])
            .succeeds();
        let Value::Array(mut runs) = output.stdout_json() else {
            panic!("`runs --json` printed no array\n{output}");
        };
        runs.reverse();
        runs
    }

    /// The runs of `workflow` in `status`, oldest first.
    #[track_caller]
    pub(crate) fn runs_in(&self, workflow: &str, status: &str) -> Vec<Value> {
        self.runs(workflow)
            .into_iter()
            .filter(|run| run["status"] == status)
            .collect()
    }

    /// `coreflow show RUN --json`.
    #[track_caller]
    pub(crate) fn show(&self, run: i64) -> Value {
        self.coreflow()
            .args(["show", &run.to_string(), "--json"])
            .succeeds()
            .stdout_json()
    }

    /// `coreflow logs RUN` (plain text).
    #[track_caller]
    pub(crate) fn logs(&self, run: i64) -> String {
        self.coreflow()
            .args(["logs", &run.to_string()])
            .succeeds()
            .stdout()
            .to_owned()
    }

    /// `coreflow workers --json`.
    #[track_caller]
    pub(crate) fn workers(&self) -> Vec<Value> {
        let output = self.coreflow().args(["workers", "--json"]).succeeds();
        match output.stdout_json() {
            Value::Array(workers) => workers,
            other => panic!("`workers --json` printed no array: {other}"),
        }
    }

    /// The workers that have not stopped.
    #[track_caller]
    pub(crate) fn live_workers(&self) -> Vec<Value> {
        self.workers()
            .into_iter()
            .filter(|w| w["state"] != "stopped")
            .collect()
    }

    /// `coreflow trigger WORKFLOW -p …`: the new run's id.
    #[track_caller]
    pub(crate) fn trigger(&self, workflow: &str, params: &[&str]) -> i64 {
        let mut command = self.coreflow().args(["trigger", workflow]);
        for param in params {
            command = command.args(["-p", param]);
        }
        let output = command.succeeds();
        output
            .stdout()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`trigger` printed no run id\n{output}"))
    }

    /// Waits until run `id` has ended, and returns it (`show --json`).
    #[track_caller]
    pub(crate) fn wait_run_ended(&self, id: i64) -> Value {
        wait_for(&format!("run {id} to end"), || {
            let show = self.show(id);
            is_terminal(&show["status"]).then_some(show)
        })
    }

    /// Waits until a job of run `id` is `running`.
    #[track_caller]
    pub(crate) fn wait_job_running(&self, id: i64) -> Value {
        wait_for(&format!("a job of run {id} to run"), || {
            let show = self.show(id);
            show["jobs"]
                .as_array()?
                .iter()
                .any(|job| job["status"] == "running")
                .then_some(show)
        })
    }

    /// Waits until at least one worker has registered: a started daemon has then loaded its
    /// folder and armed every trigger (the Scaler's first tick follows the first reload).
    #[track_caller]
    pub(crate) fn wait_daemon_ready(&self) {
        wait_for("a daemon worker to register", || {
            (!self.live_workers().is_empty()).then_some(())
        });
    }

    /// A gate: a file the test creates to let waiting steps end.
    pub(crate) fn gate(&self, name: &str) -> Gate {
        Gate {
            path: self.path().join(name),
        }
    }
}

/// Whether a run or job status is final.
pub(crate) fn is_terminal(status: &Value) -> bool {
    matches!(
        status.as_str(),
        Some("succeeded" | "failed" | "cancelled" | "skipped" | "timed_out")
    )
}

/// A file steps wait for. The wait is bounded (30 s) so that a step left behind by a failing
/// test ends by itself; a step that gave up fails.
pub(crate) struct Gate {
    path: PathBuf,
}

impl Gate {
    /// A shell line that waits for the gate, then fails unless it opened.
    pub(crate) fn step(&self) -> String {
        let path = self.path.display();
        format!(
            "i=0; while [ ! -e '{path}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; test -e '{path}'"
        )
    }

    /// Lets every step waiting on this gate go on.
    pub(crate) fn open(&self) {
        std::fs::write(&self.path, "open").expect("the gate can be opened");
    }
}

/// A running daemon. Dropping it without [`Daemon::stop`] or [`Daemon::wait`] (a test that
/// failed) kills its process group, so no daemon or worker outlives its test.
pub(crate) struct Daemon {
    running: Option<Running>,
}

impl Daemon {
    pub(crate) fn pid(&self) -> u32 {
        self.running.as_ref().expect("the daemon runs").pid()
    }

    pub(crate) fn signal(&self, signal: Signal) {
        self.running
            .as_ref()
            .expect("the daemon runs")
            .signal(signal);
    }

    /// Waits for the daemon (and whatever holds its output pipes: its workers) to end.
    pub(crate) fn wait(mut self) -> Output {
        self.running.take().expect("the daemon runs").wait()
    }

    /// SIGTERM, then waits; the daemon must exit 0.
    #[track_caller]
    pub(crate) fn stop(self) -> Output {
        self.signal(Signal::SIGTERM);
        let output = self.wait();
        assert_eq!(
            output.code(),
            Some(0),
            "the daemon did not exit 0\n{output}"
        );
        output
    }

    /// SIGKILL to the daemon alone; its workers learn of it through PDEATHSIG.
    pub(crate) fn kill(self) -> Output {
        self.signal(Signal::SIGKILL);
        let output = self.wait();
        assert_eq!(output.signal(), Some(Signal::SIGKILL as i32), "{output}");
        output
    }
}

impl From<Running> for Daemon {
    fn from(running: Running) -> Self {
        Daemon {
            running: Some(running),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let group = nix::unistd::Pid::from_raw(i32::try_from(running.pid()).expect("pids fit i32"));
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        // The test failed: show what the daemon said. On a thread of its own, because the
        // harness's panic check must not panic again on this one.
        let reader = std::thread::spawn(move || running.wait().to_string());
        match reader.join() {
            Ok(output) => eprintln!("the daemon, killed after the test failed:\n{output}"),
            Err(_) => eprintln!("the daemon, killed after the test failed, had panicked"),
        }
    }
}

/// Polls `probe` until it returns a value, failing the test after [`DEADLINE`]. The only wait
/// in the daemon tests.
#[track_caller]
pub(crate) fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "gave up waiting for {what} after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port can be found")
        .port()
}

/// An HTTP answer: status and body (JSON, or `Value::Null` when the body is not JSON).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    /// The body as text.
    pub(crate) text: String,
}

/// One HTTP/1.1 request with `Connection: close`, written by hand, so that the tests need no
/// HTTP client. `Err` when nothing listens (yet).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(Answer {
        status,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        text: body,
    })
}

/// The payload of a chunked HTTP body.
fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until the API at `addr` answers its health check.
#[track_caller]
pub(crate) fn wait_api(addr: SocketAddr) {
    wait_for(&format!("the API on {addr}"), || {
        http(addr, "GET", "/api/v1/health", None, None)
            .ok()
            .filter(|answer| answer.status == 200)
    });
}
