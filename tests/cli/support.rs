//! The test harness: [`Coreflow`] runs the real `coreflow` binary in a fresh temporary
//! directory, in the style of just's `Test` builder.
//!
//! Every run gets its own `tempfile::TempDir` as working directory, `COREFLOW_ENV` pointing
//! inside it, `NO_COLOR=1`, `CI=1`, a null stdin unless told otherwise, and a deadline after
//! which the process group is killed and the test fails. Whatever the outcome, a panic
//! message or exit code 101 on the binary's side fails the test: no input may make CoreFlow
//! panic.

// The harness serves every command module, and a helper may have no user yet; `expect`
// would turn into a warning the day one appears, so this is an `allow`.
#![allow(
    dead_code,
    reason = "helpers for command modules that are still to come"
)]

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

/// How long one invocation may take before it is killed and the test fails.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where `COREFLOW_ENV` points, relative to the temporary directory.
pub(crate) const ENV_DIR: &str = ".coreflow-env";

/// Whether this pass of the suite runs against PostgreSQL (`COREFLOW_TEST_STORE=postgres`):
/// then every environment the harness hands out is a database of its own in the test server
/// (`COREFLOW_TEST_POSTGRES`, else the one `scripts/test-postgres.sh` starts).
pub(crate) fn on_postgres() -> bool {
    std::env::var("COREFLOW_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// The environment of the folder `dir`: `dir/.coreflow-env` for SQLite, or, on the
/// PostgreSQL pass, a schema of its own in the test server (see [`postgres_location`]).
pub(crate) fn env_location(dir: &Path) -> OsString {
    if !on_postgres() {
        return dir.join(ENV_DIR).into_os_string();
    }
    postgres_location(dir)
}

/// The database of the test server that holds the tests' environments, one schema each: a
/// schema costs a few kilobytes where a database costs megabytes.
const TEST_DATABASE: &str = "coreflow_tests";

/// The URL of a PostgreSQL environment for the folder `dir`: a schema named after it in the
/// test server's [`TEST_DATABASE`], created on first use, selected by `search_path` in the
/// URL. Also for tests of what only a shared database can do (several daemons on one
/// environment), whichever pass runs them.
pub(crate) fn postgres_location(dir: &Path) -> OsString {
    let server = std::env::var("COREFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/postgres".to_owned());
    let (base, _) = server.rsplit_once('/').expect("a URL with a database");
    let connect = |url: &str| {
        postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
            panic!("no test PostgreSQL at {url} ({e}): run scripts/test-postgres.sh")
        })
    };
    let database = format!("{base}/{TEST_DATABASE}");
    let mut client = match postgres::Client::connect(&database, postgres::NoTls) {
        Ok(client) => client,
        Err(_) => {
            // Another test may create it at the same moment: that is fine.
            let _ = connect(&server).batch_execute(&format!("CREATE DATABASE {TEST_DATABASE}"));
            connect(&database)
        }
    };
    let name = database_name(dir);
    // Concurrent creations of one schema may collide: the loser's error is harmless.
    let _ = client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {name}"));
    OsString::from(format!("{database}?options=-csearch_path%3D{name}"))
}

/// The folder a PostgreSQL environment of the folder `dir` keeps DataBlock content in
/// (`COREFLOW_BLOCKS`, "a folder every host reaches"): where a SQLite environment there keeps
/// it, so that tests look in one place on both passes.
pub(crate) fn shared_blocks(dir: &Path) -> PathBuf {
    dir.join(ENV_DIR).join("blocks")
}

/// A schema name for a folder: `cf_` and 16 hex digits of a hash of its path.
fn database_name(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    format!("cf_{:016x}", hasher.finish())
}

/// Inherited variables that would change CoreFlow's behaviour and so are removed.
const SCRUBBED_VARS: &[&str] = &[
    "GITHUB_ACTIONS",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "FORCE_COLOR",
    "TERM",
    "COLUMNS",
    "LINES",
];

/// A `coreflow` invocation under construction.
#[must_use]
pub(crate) struct Coreflow {
    dir: TempDir,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    current_dir: Option<PathBuf>,
    timeout: Duration,
    umask: Option<u32>,
}

impl Coreflow {
    /// A fresh temporary directory and no arguments.
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("coreflow-test-")
            .tempdir()
            .expect("a temporary directory can be created");
        Coreflow {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            current_dir: None,
            timeout: DEFAULT_TIMEOUT,
            umask: None,
        }
    }

    /// The temporary directory the binary runs in.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` at `path` (relative to the temporary directory), creating folders.
    pub(crate) fn file(self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Self {
        let full = self.dir.path().join(path.as_ref());
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("the parent folder can be created");
        }
        std::fs::write(&full, contents).expect("the file can be written");
        self
    }

    /// Creates an empty folder (relative to the temporary directory).
    pub(crate) fn dir(self, path: impl AsRef<Path>) -> Self {
        std::fs::create_dir_all(self.dir.path().join(path)).expect("the folder can be created");
        self
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (after the defaults, so it can override them).
    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable, including one of the defaults.
    pub(crate) fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Feeds `bytes` on stdin instead of the default null stdin.
    pub(crate) fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs in a subfolder of the temporary directory instead of its root.
    pub(crate) fn current_dir(mut self, path: impl AsRef<Path>) -> Self {
        self.current_dir = Some(path.as_ref().to_owned());
        self
    }

    /// Changes the deadline after which the process is killed and the test fails.
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the binary to its end, whatever its exit code; only a panic, a signal or the
    /// deadline fail the test here.
    pub(crate) fn run(self) -> Output {
        self.spawn().wait()
    }

    /// Starts the binary under this umask (the test's own is left alone).
    pub(crate) fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }

    /// Runs the binary and asserts that it exits 0.
    #[track_caller]
    pub(crate) fn succeeds(self) -> Output {
        self.fails(0)
    }

    /// Runs the binary and asserts its exit code (`fails(2)`; `fails(0)` is `succeeds`).
    #[track_caller]
    pub(crate) fn fails(self, code: i32) -> Output {
        let output = self.run();
        assert_eq!(output.code(), Some(code), "unexpected exit code\n{output}");
        output
    }

    /// Starts the binary without waiting for it, for tests that signal it mid-run.
    pub(crate) fn spawn(self) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coreflow"));
        let cwd = match &self.current_dir {
            Some(sub) => self.dir.path().join(sub),
            None => self.dir.path().to_owned(),
        };
        command
            .args(&self.args)
            .current_dir(cwd)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that the deadline can kill whatever it started.
            .process_group(0);
        for var in SCRUBBED_VARS {
            command.env_remove(var);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("COREFLOW_") {
                command.env_remove(key);
            }
        }
        command.env("COREFLOW_ENV", env_location(self.dir.path()));
        if on_postgres() {
            command.env("COREFLOW_BLOCKS", shared_blocks(self.dir.path()));
        }
        command.env("NO_COLOR", "1").env("CI", "1");
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(mask) = self.umask {
            let mask = nix::sys::stat::Mode::from_bits_truncate(mask);
            // SAFETY: umask(2) is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(move || {
                    nix::sys::stat::umask(mask);
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("the coreflow binary starts");
        if let Some(bytes) = self.stdin {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            // A thread, so that a child that never reads cannot block the test.
            thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let stdout = reader(child.stdout.take().expect("stdout is piped"));
        let stderr = reader(child.stderr.take().expect("stderr is piped"));
        Running {
            child,
            stdout,
            stderr,
            dir: self.dir,
            args: self.args,
            timeout: self.timeout,
        }
    }
}

/// Reads a pipe to its end on a thread, so that stdout and stderr drain concurrently.
fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A started `coreflow` process.
pub(crate) struct Running {
    child: Child,
    stdout: thread::JoinHandle<Vec<u8>>,
    stderr: thread::JoinHandle<Vec<u8>>,
    dir: TempDir,
    args: Vec<OsString>,
    timeout: Duration,
}

impl Running {
    /// The process id (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory the process runs in.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sends `signal` to the process alone (not its group), as a terminal's Ctrl-C would.
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("pids fit i32"));
        nix::sys::signal::kill(pid, signal).expect("the process can be signalled");
    }

    /// Waits for the process to end and its output to be read, killing its process group
    /// and failing the test when the deadline passes first.
    pub(crate) fn wait(self) -> Output {
        let Running {
            mut child,
            stdout,
            stderr,
            dir,
            args,
            timeout,
        } = self;
        let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pids fit i32"));
        let (done, finished) = mpsc::channel();
        // The waiter owns the child and reaps it; the pipes are read by their own threads and
        // end when every process holding them has gone. Until the waiter reports, the child is
        // not reaped, so its pid (and process group id) cannot have been reused.
        thread::spawn(move || {
            let status = child.wait();
            let stdout = stdout.join().unwrap_or_default();
            let stderr = stderr.join().unwrap_or_default();
            let _ = done.send((status, stdout, stderr));
        });
        let (status, stdout, stderr) = match finished.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => {
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                panic!(
                    "coreflow {} did not finish within {timeout:?}: killed",
                    show_args(&args)
                );
            }
        };
        let status = status.expect("waiting for the child works");
        let output = Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            args,
            dir,
        };
        output.assert_no_panic();
        output
    }
}

fn show_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a finished `coreflow` process left: exit status, output and its temporary directory
/// (kept alive so that tests can inspect files it wrote).
pub(crate) struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    args: Vec<OsString>,
    dir: TempDir,
}

impl Output {
    /// The exit code; `None` when a signal ended the process.
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended the process, if one did.
    pub(crate) fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Standard output, lossily decoded.
    pub(crate) fn stdout(&self) -> &str {
        &self.stdout
    }

    /// Standard error, lossily decoded.
    pub(crate) fn stderr(&self) -> &str {
        &self.stderr
    }

    /// Standard output parsed as one JSON document.
    #[track_caller]
    pub(crate) fn stdout_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON: {err}\n{self}"))
    }

    /// Standard output with the temporary directory's path replaced by `[TEMP]`.
    pub(crate) fn stdout_redacted(&self) -> String {
        self.redact(&self.stdout)
    }

    /// Standard error with the temporary directory's path replaced by `[TEMP]`.
    pub(crate) fn stderr_redacted(&self) -> String {
        self.redact(&self.stderr)
    }

    /// The temporary directory the process ran in.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.dir.path().display().to_string(), "[TEMP]")
    }

    /// Fails when the binary panicked or crashed: exit code 101, a panic message, a stack
    /// overflow, or death by a signal that only a crash sends (a test that signals the
    /// process itself checks [`Output::signal`] instead).
    #[track_caller]
    fn assert_no_panic(&self) {
        use nix::sys::signal::Signal;
        let crash_signals = [
            Signal::SIGSEGV,
            Signal::SIGABRT,
            Signal::SIGBUS,
            Signal::SIGILL,
            Signal::SIGFPE,
        ];
        assert_ne!(self.code(), Some(101), "coreflow panicked\n{self}");
        assert!(
            !self
                .signal()
                .is_some_and(|s| crash_signals.iter().any(|c| *c as i32 == s)),
            "coreflow crashed\n{self}"
        );
        for text in [&self.stdout, &self.stderr] {
            assert!(
                !text.contains("panicked at") && !text.contains("has overflowed its stack"),
                "coreflow panicked\n{self}"
            );
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const LIMIT: usize = 4000;
        let clip = |text: &str| -> String {
            if text.len() <= LIMIT {
                return text.to_owned();
            }
            let mut end = LIMIT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes in all)", &text[..end], text.len())
        };
        writeln!(f, "--- command: coreflow {}", show_args(&self.args))?;
        writeln!(f, "--- status: {}", self.status)?;
        writeln!(f, "--- stdout:\n{}", clip(&self.stdout))?;
        write!(f, "--- stderr:\n{}", clip(&self.stderr))
    }
}

/// One rendered diagnostic, read back from stderr.
#[derive(Debug)]
pub(crate) struct Diag {
    /// `file:line:col`.
    pub(crate) location: String,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

/// Splits stderr into workflow diagnostics: a header line `file:line:col: error: message`, then the
/// excerpt, then an optional `= help:` line.
pub(crate) fn diagnostics(stderr: &str) -> Vec<Diag> {
    let mut found: Vec<Diag> = Vec::new();
    for line in stderr.lines() {
        if let Some((location, message)) = line.split_once(": error: ") {
            found.push(Diag {
                location: location.to_owned(),
                message: message.to_owned(),
                help: None,
            });
        } else if let Some((_, help)) = line.split_once("= help: ")
            && let Some(last) = found.last_mut()
        {
            last.help = Some(help.to_owned());
        }
    }
    found
}

/// The repository root, for reading `examples/` and `schemas/`.
pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails unless the checked-in file `path` (relative to the repository root) is exactly what
/// `coreflow ARGS…` prints, naming the first differing line and the command that
/// regenerates it.
#[track_caller]
pub(crate) fn assert_generated_file(path: &str, args: &[&str]) {
    let output = Coreflow::new().args(args).succeeds();
    let checked_in = std::fs::read_to_string(repo_root().join(path)).unwrap_or_default();
    if output.stdout() != checked_in {
        let first_difference = output
            .stdout()
            .lines()
            .zip(checked_in.lines())
            .position(|(generated, file)| generated != file)
            .map_or_else(
                || "one is a prefix of the other".to_owned(),
                |line| format!("first difference at line {}", line + 1),
            );
        panic!(
            "{path} is out of date with `coreflow {}` ({first_difference}).\n\
             Regenerate it from the repository root with:\n\n    \
             cargo run -q -- {} > {path}\n\n\
             and commit the result.",
            args.join(" "),
            args.join(" ")
        );
    }
}
