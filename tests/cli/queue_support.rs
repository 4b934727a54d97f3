//! Helpers for `queues.rs`: standalone `coreflow worker` processes that cannot outlive a
//! failing test, readers for the JSON listings, and waits built on the one polling helper
//! ([`wait_until`]) and its one deadline.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::engine_support::{Workspace, wait_until};
use crate::support::{Output, Running};

/// A shell fragment that waits, at most about 30 s, for the file `$1` to exist, and fails
/// when it never does: a step blocked on it cannot outlive a failed test for long.
pub(crate) fn wait_for(file: &str) -> String {
    format!("for i in $(seq 600); do [ -f {file} ] && break; sleep 0.05; done; [ -f {file} ]")
}

/// A running `coreflow worker`. Dropping it (a test that failed half-way) kills its process
/// group, so that no worker keeps running after the test.
pub(crate) struct Worker {
    running: Option<Running>,
}

impl Worker {
    /// Starts `coreflow worker ARGS…` on the workspace's environment.
    pub(crate) fn start(workspace: &Workspace, args: &[&str]) -> Worker {
        let running = workspace.coreflow().arg("worker").args(args).spawn();
        Worker {
            running: Some(running),
        }
    }

    /// Starts `coreflow worker ARGS…` with `vars` added to its environment.
    pub(crate) fn start_with_env(
        workspace: &Workspace,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Worker {
        let mut command = workspace.coreflow().arg("worker").args(args);
        for (key, value) in vars {
            command = command.env(key, value);
        }
        Worker {
            running: Some(command.spawn()),
        }
    }

    /// The worker's process id, as `workers --json` shows it.
    pub(crate) fn pid(&self) -> u32 {
        self.running().pid()
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("the worker is running")
    }

    /// Sends `signal` to the worker process alone (its steps have their own groups).
    pub(crate) fn signal(&self, signal: Signal) {
        self.running().signal(signal);
    }

    /// Waits for the worker to end (after a signal).
    pub(crate) fn wait(mut self) -> Output {
        self.running.take().expect("the worker is running").wait()
    }

    /// SIGTERM, then waits for the worker to exit 0.
    #[track_caller]
    pub(crate) fn stop(self) -> Output {
        self.signal(Signal::SIGTERM);
        let output = self.wait();
        assert_eq!(
            output.code(),
            Some(0),
            "a worker exits 0 on SIGTERM\n{output}"
        );
        output
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let group = nix::unistd::Pid::from_raw(i32::try_from(running.pid()).unwrap_or(0));
            let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        }
    }
}

/// `coreflow run FILE --detach ARGS…`: the new run's id.
#[track_caller]
pub(crate) fn detach(workspace: &Workspace, file: &str, args: &[&str]) -> String {
    let output = workspace
        .coreflow()
        .args(["run", file, "--detach"])
        .args(args)
        .succeeds();
    let id = output.stdout().trim().to_owned();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "`run --detach` prints the run id\n{output}"
    );
    id
}

/// The status of run `id` in `runs --json`.
#[track_caller]
pub(crate) fn run_status(workspace: &Workspace, id: &str) -> String {
    workspace
        .runs()
        .iter()
        .find(|run| run["id"].as_i64() == id.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no run {id} in `runs --json`"))["status"]
        .as_str()
        .expect("a run status is text")
        .to_owned()
}

/// Waits for run `id` to end and returns its final status.
#[track_caller]
pub(crate) fn wait_for_run(workspace: &Workspace, id: &str) -> String {
    let terminal = ["succeeded", "failed", "cancelled", "skipped"];
    let mut status = String::new();
    wait_until(&format!("run {id} to end"), || {
        status = run_status(workspace, id);
        terminal.contains(&status.as_str())
    });
    status
}

/// `coreflow jobs ARGS… --json`: the array of jobs.
#[track_caller]
pub(crate) fn jobs(workspace: &Workspace, args: &[&str]) -> Vec<Value> {
    let output = workspace
        .coreflow()
        .arg("jobs")
        .args(args)
        .args(["--json", "--limit", "1000"])
        .succeeds();
    match output.stdout_json() {
        Value::Array(jobs) => jobs,
        other => panic!("`jobs --json` printed no array: {other}"),
    }
}

/// `coreflow workers --json` (with extra arguments such as `--env`).
#[track_caller]
pub(crate) fn workers(workspace: &Workspace, args: &[&str]) -> Vec<Value> {
    let output = workspace
        .coreflow()
        .args(["workers", "--json"])
        .args(args)
        .succeeds();
    match output.stdout_json() {
        Value::Array(workers) => workers,
        other => panic!("`workers --json` printed no array: {other}"),
    }
}

/// Waits until `workers --json` (with `args`) shows the process `pid` and `condition`
/// holds for its entry, and returns that entry.
#[track_caller]
pub(crate) fn wait_for_worker(
    workspace: &Workspace,
    args: &[&str],
    pid: u32,
    what: &str,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let mut found = Value::Null;
    wait_until(&format!("worker {pid}: {what}"), || {
        found = workers(workspace, args)
            .into_iter()
            .find(|w| w["pid"] == pid && !matches!(w["state"].as_str(), Some("stopped" | "moved")))
            .unwrap_or(Value::Null);
        !found.is_null() && condition(&found)
    });
    found
}
