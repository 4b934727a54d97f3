//! Running one step as a real child process.
//!
//! This module owns everything between "here is a step's command" and "here is how it
//! ended": spawning, output capture, timeouts, cancel, stopping a whole process tree,
//! resource sampling, and parsing the `$COREFLOW_OUTPUT` file. It knows nothing of
//! workflows, jobs, stores or the UI; the engine builds a [`StepCommand`] (with the step's
//! `COREFLOW_*` variables in `env`), calls [`run_step`], and turns the [`StepReport`] into a
//! step result.
//!
//! # Running a step
//!
//! ```text
//! run_step(&StepCommand, watch::Receiver<Option<CancelMode>>, &mut dyn Sink)
//!     -> Result<StepReport, Error>
//! ```
//!
//! - The program is a [`Program::Script`] run by a [`Shell`] (`sh -e -c`,
//!   `bash --noprofile --norc -eo pipefail -c`, `python3 FILE`, or a `"CMD {0}"` template
//!   given the path of a temporary file holding the script), or a [`Program::Argv`] run
//!   without a shell. `Shell` parses from the YAML `shell:` string ([`ShellError`]).
//! - The child gets its own process group, stdin from `/dev/null`, the inherited
//!   environment plus `StepCommand::env`, and `COREFLOW_KILL_TOKEN=<kill_token>`
//!   ([`KILL_TOKEN_VAR`]). It is spawned with `posix_spawn` semantics (no `pre_exec`; a
//!   step-level `PATH` is searched here so that the standard library need not fork).
//! - stdout and stderr are read concurrently, 64 KiB at a time, and split into lines
//!   (without `\n` / `\r\n`) handed to the sink in order per stream; a line longer than
//!   [`MAX_LINE`] arrives in pieces of that size, and memory stays bounded whatever the child
//!   prints. After the main process exits, output is read for at most 100 ms more, so a
//!   background process holding the pipes cannot hold the step.
//! - On timeout, or when the cancel channel turns to `Some`, the process group gets SIGTERM,
//!   and so do the members of the tree outside it (found through parent links and the kill
//!   token). When the grace has passed — or earlier, once the main process exited and
//!   nothing that got SIGTERM is alive — everything left gets SIGKILL: the group, the
//!   descendants, and every process carrying the token, until two scans of `/proc` find
//!   none. [`CancelMode::Kill`] skips the grace, also in the middle of a graceful stop. The
//!   report then says [`StepEnd::TimedOut`] or [`StepEnd::Cancelled`].
//! - After a normal exit nothing is killed: background processes the step left belong to
//!   the job, which clears them with [`kill_token_processes`] when it ends.
//! - The tree's CPU time and resident memory are sampled right after the start (cheaply,
//!   through `/proc/<pid>/task/*/children`) and every 500 ms (with a scan for token
//!   carriers); the exit adds the exact figures of the main process and the children it
//!   waited for (`waitid` with `WNOWAIT`, before Tokio reaps it). [`StepReport`] carries the
//!   peak memory and the CPU time.
//! - A program that cannot start is an [`Error`] naming it and the cause;
//!   [`Error::exit_code`] gives 126 or 127 as a shell would.
//! - Dropping the future before the step ended kills the step's tree.
//! - [`run_step_in`] also moves the main process into a [`cgroup::Cgroup`] right after the
//!   spawn, so that the kernel holds the step to the attempt's `memory.max` and `cpu.max`.
//!
//! `run_step` needs a Tokio runtime with IO and time enabled; its `/proc` scans run on the
//! blocking pool.
//!
//! # Around a step
//!
//! - [`kill_token_processes`] stops, blocking, every process carrying a kill token (TERM,
//!   grace, KILL): for what steps left running when their job ends, or what survived a crash
//!   of `coreflow`. With nothing left it costs one read per process on the machine.
//! - [`sample_tree`] sums CPU time and memory over a tree from `/proc` ([`TreeSample`]).
//! - [`parse_outputs`] reads the `$COREFLOW_OUTPUT` format (`key=value`, `key<<DELIM`),
//!   with [`OutputsError`] naming the line.
//!
//! Linux only: the tree is found through `/proc`.

mod capture;
pub mod cgroup;
mod command;
mod error;
mod kill;
mod output_file;
mod process;
mod procfs;
pub mod sql;

pub use capture::MAX_LINE;
pub use command::{DEFAULT_GRACE, Program, Shell, ShellError, StepCommand};
pub use error::Error;
pub use kill::kill_token_processes;
pub use output_file::{OutputsError, format_outputs, parse_outputs};
pub use process::{CancelMode, Sink, StepEnd, StepReport, Stream, run_step, run_step_in};
pub use procfs::{KILL_TOKEN_VAR, TreeSample, sample_tree};

/// The variable that hands a `sql:` step's child process its request, as JSON
/// ([`sql::SqlRequest`]).
pub const SQL_REQUEST_VAR: &str = "COREFLOW_SQL_REQUEST";
