//! Helpers for the modules that run workflows (`run`, `failures`, `cancel`, `recovery`,
//! `inspect`, `output`): a [`Workspace`] that several invocations share (one folder, one
//! environment), the one polling helper with its one deadline, process checks through
//! `/proc`, and readers for `show --json`.
//!
//! [`Coreflow`] gives every invocation a fresh folder; a workspace points each invocation's
//! working directory and `COREFLOW_ENV` at its own folder instead, so that `run`, then
//! `show`, `logs` or `retry` see the same environment and the files the steps wrote.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::{Coreflow, ENV_DIR};

/// How long [`wait_until`] waits before it fails the test. Generous, because the machine
/// may be busy with other tests; a passing test never waits that long.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// One folder holding workflow files, the files steps write, and the environment.
pub(crate) struct Workspace {
    dir: TempDir,
    /// Whether the environment is a PostgreSQL database whichever pass runs the test.
    postgres: bool,
}

impl Workspace {
    /// An empty workspace.
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("coreflow-engine-")
            .tempdir()
            .expect("a temporary directory can be created");
        Workspace {
            dir,
            postgres: false,
        }
    }

    /// An empty workspace whose environment is a PostgreSQL database.
    pub(crate) fn on_postgres() -> Self {
        Workspace {
            postgres: true,
            ..Self::new()
        }
    }

    /// A workspace holding `wf.yaml`.
    pub(crate) fn with_workflow(yaml: &str) -> Self {
        let workspace = Self::new();
        workspace.file("wf.yaml", yaml);
        workspace
    }

    /// The workspace folder (canonical, as steps see it in `COREFLOW_WORKSPACE`).
    pub(crate) fn path(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).expect("the workspace exists")
    }

    /// The environment folder every invocation uses.
    pub(crate) fn env_dir(&self) -> PathBuf {
        self.path().join(ENV_DIR)
    }

    /// Writes `contents` at `name`, creating folders.
    pub(crate) fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> &Self {
        let full = self.path().join(name);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("the parent folder can be created");
        }
        std::fs::write(&full, contents).expect("the file can be written");
        self
    }

    /// Whether `name` exists in the workspace.
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.path().join(name).exists()
    }

    /// The text of `name`, failing the test when it cannot be read.
    #[track_caller]
    pub(crate) fn read(&self, name: &str) -> String {
        let full = self.path().join(name);
        std::fs::read_to_string(&full)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", full.display()))
    }

    /// A `coreflow` invocation working in this workspace and on its environment.
    pub(crate) fn coreflow(&self) -> Coreflow {
        let coreflow = Coreflow::new()
            .current_dir(self.path())
            .env("COREFLOW_ENV", self.env_location());
        if self.postgres || crate::support::on_postgres() {
            coreflow.env(
                "COREFLOW_BLOCKS",
                crate::support::shared_blocks(&self.path()),
            )
        } else {
            coreflow
        }
    }

    /// What `COREFLOW_ENV` holds for this workspace's invocations.
    pub(crate) fn env_location(&self) -> std::ffi::OsString {
        if self.postgres {
            crate::support::postgres_location(&self.path())
        } else {
            crate::support::env_location(&self.path())
        }
    }

    /// `coreflow show RUN --json`, which must succeed.
    #[track_caller]
    pub(crate) fn show(&self, run: &str) -> Value {
        self.coreflow()
            .args(["show", run, "--json"])
            .succeeds()
            .stdout_json()
    }

    /// `coreflow runs --json`, which must succeed and print an array.
    #[track_caller]
    pub(crate) fn runs(&self) -> Vec<Value> {
        let output = self.coreflow().args(["runs", "--json"]).succeeds();
        match output.stdout_json() {
            Value::Array(runs) => runs,
            other => panic!("`runs --json` printed no array: {other}"),
        }
    }

    /// The lines of `name`, for steps that append to a shared file.
    #[track_caller]
    pub(crate) fn lines(&self, name: &str) -> Vec<String> {
        self.read(name).lines().map(str::to_owned).collect()
    }

    /// Waits for a step to create `name`: see [`wait_until`].
    #[track_caller]
    pub(crate) fn wait_for_file(&self, name: &str) {
        let full = self.path().join(name);
        wait_until(&format!("{name} to appear"), || full.exists());
    }

    /// Waits for a step to write a pid and a newline into `name` (`echo $! > name`), and
    /// returns it. The newline tells a complete write from one still under way.
    #[track_caller]
    pub(crate) fn wait_for_pid(&self, name: &str) -> i32 {
        let full = self.path().join(name);
        let mut pid = None;
        wait_until(&format!("a pid in {name}"), || {
            pid = std::fs::read_to_string(&full)
                .ok()
                .filter(|text| text.ends_with('\n'))
                .and_then(|text| text.trim().parse().ok());
            pid.is_some()
        });
        pid.expect("the wait ended with a pid")
    }
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`]. The only wait in
/// these modules: for a file a step creates, or for a killed process to be gone.
#[track_caller]
pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < DEADLINE,
            "gave up waiting for {what} after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` still runs. A zombie counts as gone: it runs nothing, and an
/// orphan's zombie waits for whichever init the test machine has to reap it.
pub(crate) fn is_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the command name, which ends with the last `)`.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Asserts that process `pid` is gone, allowing for the kernel to finish a kill that was
/// sent just before.
#[track_caller]
pub(crate) fn assert_gone(pid: i32, what: &str) {
    wait_until(&format!("{what} (pid {pid}) to be gone"), || !is_alive(pid));
}

/// The job called `name` in a `show --json` document.
#[track_caller]
pub(crate) fn job<'a>(show: &'a Value, name: &str) -> &'a Value {
    show["jobs"]
        .as_array()
        .expect("`jobs` is an array")
        .iter()
        .find(|job| job["name"] == name)
        .unwrap_or_else(|| panic!("no job `{name}` in {show:#}"))
}

/// The names of the jobs in a `show --json` document, in its order.
pub(crate) fn job_names(show: &Value) -> Vec<String> {
    show["jobs"]
        .as_array()
        .expect("`jobs` is an array")
        .iter()
        .map(|job| job["name"].as_str().expect("a job name is text").to_owned())
        .collect()
}

/// The status of job `name` in a `show --json` document.
#[track_caller]
pub(crate) fn status<'a>(show: &'a Value, name: &str) -> &'a str {
    job(show, name)["status"]
        .as_str()
        .expect("a job status is text")
}

#[test]
fn is_alive_tells_a_running_process_from_a_finished_one() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep starts");
    let pid = i32::try_from(child.id()).expect("pids fit i32");
    assert!(is_alive(pid));
    child.kill().expect("sleep can be killed");
    // Not yet reaped: a zombie, which counts as gone.
    wait_until("the killed sleep to exit", || !is_alive(pid));
    child.wait().expect("sleep can be reaped");
    assert!(!is_alive(pid));
}
