//! clap types: the global options and one `Args` struct per command.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

use crate::graph::draw::Format;
use crate::ui::{ColorChoice, ProgressMode};

/// CoreFlow runs workflows described in YAML: typed parameters, triggers and a DAG of jobs.
#[derive(Debug, Parser)]
#[command(name = "coreflow", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the command name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The environment: a state directory (default ./.coreflow) or a postgres:// URL
    #[arg(
        long,
        global = true,
        env = "COREFLOW_ENV",
        hide_env_values = true,
        value_name = "DIR_OR_URL"
    )]
    pub env: Vec<String>,
    /// Where DataBlock content lives: a folder (default <env>/blocks; one every host reaches
    /// for a PostgreSQL environment) or an S3-compatible store, s3://BUCKET[/PREFIX]
    #[allow(rustdoc::invalid_html_tags)] // `<env>` is for `--help`, which shows it as written
    #[arg(
        long,
        global = true,
        env = "COREFLOW_BLOCKS",
        hide_env_values = true,
        value_name = "DIR_OR_URL"
    )]
    pub blocks: Option<crate::store::BlocksLocation>,
    /// Print machine-readable JSON
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print more
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// When to use colors: auto, always, never (`auto` honours NO_COLOR)
    #[arg(long, global = true, default_value = "auto", value_name = "WHEN")]
    pub color: ColorChoice,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files without running anything
    Validate(ValidateArgs),
    /// Print a workflow's job graph
    Graph(GraphArgs),
    /// Print the JSON Schema of the workflow format
    Schema(SchemaArgs),
    /// Write a starter workflow, and the schema beside it for editors
    Init(InitArgs),
    /// Run a workflow on local workers and wait for it
    Run(RunArgs),
    /// List runs, newest first
    Runs(RunsArgs),
    /// Show a run's jobs: state, attempts, duration, exit code, memory, CPU, outputs
    Show(ShowArgs),
    /// Print a run's captured output
    Logs(LogsArgs),
    /// Cancel a run or one of its jobs
    Cancel(CancelArgs),
    /// Re-run what did not succeed in a run, and everything downstream of it
    Retry(RetryArgs),
    /// Queue a run of a workflow the environment knows, for workers or a daemon
    Trigger(TriggerArgs),
    /// Preview when a workflow's schedule, every and at triggers fire, across DST changes
    Schedule(ScheduleArgs),
    /// JobQueues: list, add, pause, resume, remove
    Queue(QueueArgs),
    /// Jobs across runs with their metadata; reprioritise, move to the top, cancel
    Jobs(JobsArgs),
    /// Run queued jobs of the environment(s) as a standalone worker
    Worker(WorkerArgs),
    /// Workers with labels, environment, current job and heartbeat; move one
    Workers(WorkersArgs),
    /// Load a folder of workflows, fire their triggers, run workers, serve the HTTP API
    Daemon(DaemonArgs),
    /// Serve the web UI and the HTTP API over the environment, without a daemon
    Ui(UiArgs),
    /// DataBlocks: list them, show versions and lineage, get one, collect garbage
    Blocks(BlocksArgs),
    /// Environments: copy one into another store (SQLite to PostgreSQL)
    Env(EnvArgs),
    /// Print a shell's completion script: bash, zsh, fish, elvish, powershell
    Completions(CompletionsArgs),
    /// Write a man page per command into DIR (without DIR: print coreflow(1))
    Man(ManArgs),
    /// Runs a `sql:` step (the child process CoreFlow starts for one; not for direct use)
    #[command(name = "sql-step", hide = true)]
    SqlStep,
    /// The process of one attempt of a `compute: dedicated` job (started by CoreFlow, with
    /// its order on stdin)
    #[command(hide = true)]
    Attempt,
}

/// `coreflow schema`
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print the book's workflow reference (docs/src/reference.md), rendered from the schema
    #[arg(long, hide = true)]
    pub markdown: bool,
}

/// `coreflow trigger WORKFLOW`
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The workflow's name (as recorded by `coreflow run` or the daemon)
    #[arg(value_name = "WORKFLOW")]
    pub workflow: String,
    /// Set a parameter: NAME=VALUE, or JOB.NAME=VALUE for one job
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

/// `coreflow queue …`
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub action: QueueAction,
}

/// What to do with queues.
#[derive(Debug, clap::Subcommand)]
pub enum QueueAction {
    /// List queues: depth, running, concurrency, paused
    List,
    /// Create a queue, or change its concurrency
    Add {
        /// The queue's name
        name: String,
        /// Most jobs of this queue running at once (default: no limit)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: Option<u32>,
    },
    /// Stop starting jobs from a queue
    Pause {
        /// The queue's name
        name: String,
    },
    /// Start jobs from a paused queue again
    Resume {
        /// The queue's name
        name: String,
    },
    /// Remove a queue (refused while it holds jobs, unless --force cancels them)
    Remove {
        /// The queue's name
        name: String,
        /// Cancel the queue's jobs
        #[arg(long)]
        force: bool,
    },
}

/// `coreflow jobs …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    /// Only jobs of this queue
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Only jobs in this state (pending, queued, running, succeeded, failed, …)
    #[arg(long, value_name = "STATE")]
    pub status: Option<String>,
    /// At most this many jobs
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
    #[command(subcommand)]
    pub action: Option<JobsAction>,
}

/// What to do with one job.
#[derive(Debug, clap::Subcommand)]
pub enum JobsAction {
    /// Change a waiting job's priority (higher runs first)
    Priority {
        /// RUN/JOB or a job id
        job: String,
        /// The new priority
        #[arg(allow_negative_numbers = true)]
        priority: i64,
    },
    /// Place a waiting job first in its queue, above any priority
    Top {
        /// RUN/JOB or a job id
        job: String,
    },
    /// Cancel a job (a running one is stopped as on timeout)
    Cancel {
        /// RUN/JOB or a job id
        job: String,
    },
}

/// `coreflow worker`
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Labels this worker carries, besides its OS, architecture and host name
    #[arg(long, value_name = "L,…", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Take one job, run it, and exit (for launchers that create a worker per job)
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub offer: OfferArgs,
    /// How long a job stays leased without a heartbeat before it is re-queued
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub lease: std::time::Duration,
    /// On SIGTERM, how long the current job may go on before it is stopped and re-queued
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub grace: std::time::Duration,
    /// This worker's name (default: host-pid)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `coreflow workers …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkersArgs {
    #[command(subcommand)]
    pub action: Option<WorkersAction>,
    /// Also list stopped, moved and lost workers (kept for a week after their last heartbeat)
    #[arg(long)]
    pub all: bool,
}

/// What to do with a worker.
#[derive(Debug, clap::Subcommand)]
pub enum WorkersAction {
    /// Redirect a running worker to another environment, without restarting it
    Move {
        /// The worker's id or name
        worker: String,
        /// The environment it should serve instead
        #[arg(long, value_name = "ENV")]
        to: String,
    },
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    crate::spec::model::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_cpus_arg(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(cpus) if cpus.is_finite() && cpus > 0.0 => Ok(cpus),
        _ => Err(format!("`{text}` is not a number of CPUs above 0")),
    }
}

/// What a host offers the jobs that run on it (`resources:` of jobs are admitted against it).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct OfferArgs {
    /// CPUs offered to jobs' `resources.cpus` (default: the host's CPU count)
    #[arg(long, value_name = "N", value_parser = parse_cpus_arg)]
    pub cpus: Option<f64>,
    /// Memory offered to jobs' `resources.memory`, e.g. 8GiB (default: the host's memory)
    #[arg(long, value_name = "SIZE", value_parser = crate::spec::model::MemorySize::parse)]
    pub memory: Option<crate::spec::model::MemorySize>,
}

/// `coreflow runs`
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this workflow
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only runs in this state (queued, running, succeeded, failed, cancelled, skipped)
    #[arg(long, value_name = "STATE")]
    pub status: Option<String>,
    /// At most this many runs
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
}

/// `coreflow show RUN`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run id, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
}

/// `coreflow logs RUN [JOB]`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A run id, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Only this job (its name, like `build` or `report[format=csv]`)
    #[arg(value_name = "JOB")]
    pub job: Option<String>,
    /// Keep printing new lines until the run ends
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `coreflow cancel RUN|JOB`
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// A run id or `last`, or a job as `RUN/JOB`
    #[arg(value_name = "RUN|JOB")]
    pub target: String,
}

/// `coreflow retry RUN`
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// A run id, or `last`
    #[arg(value_name = "RUN")]
    pub run: String,
    /// How many jobs run at once (default: the number of CPUs)
    #[arg(long, short = 'w', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    #[command(flatten)]
    pub offer: OfferArgs,
    /// Progress display: auto, tty, plain, json
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub progress: ProgressMode,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub junit: Option<PathBuf>,
    /// Only reopen the run and queue its jobs again, for workers or a daemon
    #[arg(long, conflicts_with_all = ["workers", "junit"])]
    pub detach: bool,
}

/// `coreflow run FILE`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Set a parameter: NAME=VALUE, or JOB.NAME=VALUE for one job
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// How many jobs run at once (default: the number of CPUs)
    #[arg(long, short = 'w', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    #[command(flatten)]
    pub offer: OfferArgs,
    /// Run only these jobs and what they need
    #[arg(long, value_name = "JOB", num_args = 1..)]
    pub only: Vec<String>,
    /// Progress display: auto, tty, plain, json
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub progress: ProgressMode,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub junit: Option<PathBuf>,
    /// Only create the run and queue its jobs, for workers or a daemon; print the run id
    #[arg(long, conflicts_with_all = ["workers", "only", "junit"])]
    pub detach: bool,
}

/// `coreflow validate FILE…`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files to check
    #[arg(required = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub files: Vec<PathBuf>,
    /// Count warnings (such as script injection) as errors: exit 2 when there are any
    #[arg(long)]
    pub deny_warnings: bool,
}

/// `coreflow graph FILE`
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `coreflow blocks`
#[derive(Debug, Args)]
pub struct BlocksArgs {
    #[command(subcommand)]
    pub action: Option<BlocksAction>,
}

/// What `coreflow blocks` does; `list` when nothing is given.
#[derive(Debug, Subcommand)]
pub enum BlocksAction {
    /// Every DataBlock with its newest version
    List,
    /// A DataBlock's versions, and the lineage of one version (default: the newest)
    Show {
        /// NAME or NAME@VERSION
        #[arg(value_name = "NAME[@VERSION]")]
        block: String,
    },
    /// Write a DataBlock's content at DEST (a file, or a folder for folder blocks)
    Get {
        /// NAME (the newest version) or NAME@VERSION
        #[arg(value_name = "NAME[@VERSION]")]
        block: String,
        /// Where to write it
        #[arg(value_name = "DEST", value_hint = ValueHint::AnyPath)]
        dest: PathBuf,
        /// Replace DEST if it exists
        #[arg(long)]
        force: bool,
    },
    /// Remove old versions and free the content nothing kept refers to
    Gc {
        /// Versions of each name to keep, newest first (blocks of queued or running runs,
        /// and what kept versions were made from, are kept too)
        #[arg(long, default_value_t = 5, value_name = "N")]
        keep: usize,
    },
}

/// `coreflow env`
#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    pub action: EnvAction,
}

/// What `coreflow env` does.
#[derive(Debug, Subcommand)]
pub enum EnvAction {
    /// Copy an environment (definitions, runs, jobs, logs, queues, workers, triggers'
    /// state, DataBlocks) into an empty one, keeping every id
    Copy(EnvCopyArgs),
}

/// `coreflow env copy --to DEST [--from SRC]`
#[derive(Debug, Args)]
pub struct EnvCopyArgs {
    /// The destination: a missing or empty folder (SQLite), or a postgres:// URL of a
    /// database or schema without CoreFlow data
    #[arg(long, value_name = "DIR_OR_URL")]
    pub to: String,
    /// The source (default: the environment, --env / COREFLOW_ENV / ./.coreflow)
    #[arg(long, value_name = "DIR_OR_URL")]
    pub from: Option<String>,
    /// Where the destination keeps DataBlock content: a folder or s3://BUCKET[/PREFIX]
    /// (default <DEST>/blocks for a folder; needed for a PostgreSQL destination when the
    /// source has DataBlocks)
    #[arg(long, value_name = "DIR_OR_URL")]
    pub to_blocks: Option<crate::store::BlocksLocation>,
}

/// `coreflow schedule`
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

/// The `schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Show when a workflow's schedule, every and at triggers fire next, in their zone and UTC
    Preview(PreviewArgs),
}

/// `coreflow schedule preview FILE`
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The workflow file
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// How many fires to show for each trigger
    #[arg(long, short = 'n', default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub next: u32,
    /// Start here instead of now: an RFC 3339 instant, or a date YYYY-MM-DD (midnight UTC)
    #[arg(long, value_name = "TIME", value_parser = parse_from)]
    pub from: Option<DateTime<Utc>>,
}

/// Parses `--from`: RFC 3339, or a date meaning its midnight in UTC.
pub(super) fn parse_from(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{text}` is not an RFC 3339 instant (2026-03-28T00:00:00Z) or a date (2026-03-28)"
    ))
}

/// `coreflow ui`
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Serve on this IP:PORT (other than loopback only with a token: COREFLOW_API_TOKEN or
    /// --token-file)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A host name the UI answers to besides its address and loopback names; repeatable
    #[arg(long = "public-host", value_name = "NAME")]
    pub public_hosts: Vec<String>,
    /// Read the API token from this file (first line) instead of COREFLOW_API_TOKEN
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub token_file: Option<std::path::PathBuf>,
}

/// `coreflow daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The folder of workflow files (*.yaml, *.yml), reloaded when files change
    #[arg(value_name = "WORKFLOW_DIR", default_value = ".", value_hint = ValueHint::DirPath)]
    pub dir: std::path::PathBuf,
    /// A fixed number of local workers (default: one per CPU; 0: only standalone workers)
    #[arg(long, value_name = "N", conflicts_with_all = ["min_workers", "max_workers"])]
    pub workers: Option<usize>,
    /// The fewest local workers the Scaler keeps
    #[arg(long, value_name = "A", requires = "max_workers")]
    pub min_workers: Option<usize>,
    /// The most local workers the Scaler starts while jobs wait
    #[arg(long, value_name = "B")]
    pub max_workers: Option<usize>,
    /// Labels the local workers carry, besides OS, architecture and host name
    #[arg(long, value_name = "L,…", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// How to start a worker for jobs whose `runs_on` holds LABEL when none carries it:
    /// LABEL=COMMAND or LABEL:MAX=COMMAND, with {env}, {labels} and {blocks} substituted
    /// (repeatable)
    #[arg(long = "launcher", value_name = "LABEL[:MAX]=COMMAND")]
    pub launchers: Vec<String>,
    #[command(flatten)]
    pub offer: OfferArgs,
    /// Serve the HTTP API on this IP:PORT (other than loopback only with a token:
    /// COREFLOW_API_TOKEN or --token-file)
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// A host name the API answers to besides its address and loopback names (a reverse
    /// proxy's or the server's DNS name); repeatable. Requests naming any other host get 421
    #[arg(long = "public-host", value_name = "NAME")]
    pub public_hosts: Vec<String>,
    /// Read the API token from this file (first line) instead of COREFLOW_API_TOKEN
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub token_file: Option<std::path::PathBuf>,
    /// On SIGTERM, how long running jobs may take to finish before they are re-queued
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub grace: Duration,
    /// How long a local worker's job stays leased without a heartbeat before another worker
    /// may take it over (workers heartbeat every second; at least 2s)
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_lease)]
    pub lease: Duration,
    /// How long an idle local worker lives above the minimum
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub idle_timeout: Duration,
    /// The daemon's own log: text or json
    #[arg(long, default_value = "text", value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: String,
}

fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_duration_arg(text)?;
    if lease < Duration::from_secs(2) {
        return Err(format!(
            "a lease of {text} would expire between two heartbeats (every second): use at least 2s"
        ));
    }
    Ok(lease)
}

/// `coreflow init [FILE] [--template NAME] [--force] [--vscode]`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The workflow file to write
    #[arg(value_name = "FILE", default_value = "workflow.yaml", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// The starter workflow to write
    #[arg(long, short = 't', value_enum, default_value_t = Template::Hello, value_name = "NAME")]
    pub template: Template,
    /// Replace the workflow, and the schema beside it, when they exist
    #[arg(long)]
    pub force: bool,
    /// Also map the schema to the workflow in .vscode/settings.json, in the current folder
    /// (the mapping is added when the file exists)
    #[arg(long)]
    pub vscode: bool,
}

/// The starter workflows `coreflow init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// One job greeting someone: a parameter, steps, an output
    Hello,
    /// Extract then load: parameters, a nightly schedule, two jobs passing outputs
    Etl,
    /// A job fanned out over a matrix, and a report reading every leg's output
    Matrix,
}

/// `coreflow completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `coreflow man [DIR]`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The folder to write coreflow.1, coreflow-run.1, … into (created when missing)
    #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}
