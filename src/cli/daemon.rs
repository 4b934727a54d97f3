//! `coreflow daemon [WORKFLOW_DIR]`: load a folder of workflows, fire their triggers, run a
//! pool of local workers, serve the HTTP API, stop gracefully on SIGTERM.

use std::time::Duration;

use clap::Args;

use crate::cli::args::GlobalArgs;
use crate::cli::env;
use crate::daemon::{DaemonConfig, DaemonError, lock, run};
use crate::error::Error;

/// `coreflow daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The folder of workflow files (*.yaml, *.yml), reloaded when files change
    #[arg(value_name = "WORKFLOW_DIR", default_value = ".")]
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
    /// Serve the HTTP API on this IP:PORT (other than loopback only with a token:
    /// COREFLOW_API_TOKEN or --token-file)
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// A host name the API answers to besides its address and loopback names (a reverse
    /// proxy's or the server's DNS name); repeatable. Requests naming any other host get 421
    #[arg(long = "public-host", value_name = "NAME")]
    pub public_hosts: Vec<String>,
    /// Read the API token from this file (first line) instead of COREFLOW_API_TOKEN
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// On SIGTERM, how long running jobs may take to finish before they are re-queued
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Duration,
    /// How long a local worker's job stays leased without a heartbeat before another worker
    /// may take it over (workers heartbeat every second; at least 2s)
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_lease)]
    pub lease: Duration,
    /// How long an idle local worker lives above the minimum
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// The daemon's own log: text or json
    #[arg(long, default_value = "text", value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: String,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::spec::model::parse_duration(text)
}

fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_duration(text)?;
    if lease < Duration::from_secs(2) {
        return Err(format!(
            "a lease of {text} would expire between two heartbeats (every second): use at least 2s"
        ));
    }
    Ok(lease)
}

/// The API token: the first line of `--token-file`, else `COREFLOW_API_TOKEN`; never empty.
///
/// # Errors
/// The file cannot be read, or holds no token (exit 2).
fn api_token(file: Option<&std::path::Path>) -> Result<Option<String>, Error> {
    let Some(file) = file else {
        return Ok(std::env::var("COREFLOW_API_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty()));
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::Usage(format!(
            "cannot read the token file {}: {e}",
            file.display()
        ))
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(Error::Usage(format!(
            "the token file {} is empty",
            file.display()
        )));
    }
    Ok(Some(token.to_owned()))
}

pub(super) fn daemon(global: &GlobalArgs, args: &DaemonArgs) -> Result<(), Error> {
    // Settings first: a usage error exits 2 before anything starts.
    let token = api_token(args.token_file.as_deref())?;
    if let Some(addr) = args.listen
        && !addr.ip().is_loopback()
        && token.is_none()
    {
        return Err(Error::Usage(format!(
            "refusing to listen on {addr} without a token: set COREFLOW_API_TOKEN, or listen on loopback"
        )));
    }
    let workflows = std::fs::canonicalize(&args.dir)
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} is not a folder of workflows",
                args.dir.display()
            ))
        })?;
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let (min, max) = match (args.workers, args.min_workers, args.max_workers) {
        (Some(n), _, _) => (n, n),
        (None, Some(a), Some(b)) => (a, b),
        (None, None, Some(b)) => (0, b),
        _ => (cpus, cpus),
    };
    if min > max {
        return Err(Error::Usage(format!(
            "--min-workers {min} is above --max-workers {max}"
        )));
    }
    if global.env.len() > 1 {
        return Err(Error::Usage(
            "a daemon serves one environment: give --env once".to_owned(),
        ));
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(if global.verbose {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        })
        .with_target(false);
    let _ = if args.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    let dir = env::env_dir(global);
    let store = env::open(global)?;
    let _lock = lock(&dir).map_err(|e| match e {
        DaemonError::Locked(_) => Error::Usage(e.to_string()),
        DaemonError::Start(message) => Error::Environment(message),
    })?;
    let config = DaemonConfig {
        workflows,
        env: std::fs::canonicalize(&dir).unwrap_or(dir),
        min_workers: min,
        max_workers: max,
        labels: args.labels.clone(),
        listen: args.listen,
        token,
        public_hosts: args.public_hosts.clone(),
        grace: args.grace,
        lease: args.lease,
        idle: args.idle_timeout,
        json_log: args.log_format == "json",
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    runtime
        .block_on(run(config, store))
        .map_err(|e| Error::Usage(e.to_string()))
}
