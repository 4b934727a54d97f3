//! The command-line front end: clap types, one module per command, and the dispatch that
//! turns a command's [`Error`] into its exit code.

mod args;
mod blocks;
mod cancel;
mod completions;
mod daemon;
mod env;
mod envcopy;
mod graph;
mod init;
mod man;
mod output;
mod queue;
mod retry;
mod run;
mod runs;
mod schedule;
mod schema;
mod sqlstep;
mod ui;
mod validate;

use std::io::Write;

use clap::Parser;

pub use args::{Cli, Command, GlobalArgs};

use crate::error::Error;

/// Runs the command line and returns the process exit code.
#[must_use]
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => crate::error::exit::SUCCESS,
        Err(err) => report(&err),
    }
}

fn run(cli: &Cli) -> Result<(), Error> {
    // The daemon sets up its own log (text or JSON lines); every other command logs only
    // with `--verbose`: what it opened, recovered, started and wrote, on stderr.
    if cli.global.verbose && !matches!(cli.command, Command::Daemon(_)) {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .try_init();
    }
    match &cli.command {
        Command::Validate(args) => validate::run(&cli.global, args),
        Command::Graph(args) => graph::run(&cli.global, args),
        Command::Schema(args) => schema::run(args),
        Command::Init(args) => init::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Runs(args) => runs::runs(&cli.global, args),
        Command::Show(args) => runs::show(&cli.global, args),
        Command::Logs(args) => runs::logs(&cli.global, args),
        Command::Cancel(args) => cancel::run(&cli.global, args),
        Command::Retry(args) => retry::run(&cli.global, args),
        Command::Trigger(args) => queue::trigger(&cli.global, args),
        Command::Schedule(args) => schedule::run(&cli.global, args),
        Command::Queue(args) => queue::queue(&cli.global, args),
        Command::Jobs(args) => queue::jobs(&cli.global, args),
        Command::Worker(args) => queue::worker(&cli.global, args),
        Command::Workers(args) => queue::workers(&cli.global, args),
        Command::Daemon(args) => daemon::daemon(&cli.global, args),
        Command::Ui(args) => ui::run(&cli.global, args),
        Command::Blocks(args) => blocks::run(&cli.global, args),
        Command::Env(args) => envcopy::run(&cli.global, args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(&cli.global, args),
        Command::SqlStep => sqlstep::run(),
        Command::Attempt => dedicated_attempt(),
    }
}

/// `coreflow attempt`: one attempt of a dedicated job (see [`crate::engine::dedicated`]).
fn dedicated_attempt() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(crate::engine::dedicated::serve())
        .map_err(|err| Error::Environment(err.to_string()))
}

/// Prints an error the way every command does and returns its exit code.
fn report(err: &Error) -> i32 {
    let mut stderr = std::io::stderr().lock();
    match err {
        Error::AlreadyReported | Error::RunFailed { .. } | Error::Interrupted => {}
        Error::Invalid(load) => {
            let _ = stderr.write_all(load.render().as_bytes());
        }
        Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
            // A closed stdout (`coreflow … | head`) ends quietly.
            return crate::error::exit::SUCCESS;
        }
        other => {
            let _ = writeln!(stderr, "error: {other}");
        }
    }
    err.exit_code()
}
