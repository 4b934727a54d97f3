//! `coreflow daemon [WORKFLOW_DIR]`: load a folder of workflows, fire their triggers, run a
//! pool of local workers, serve the HTTP API, stop gracefully on SIGTERM.

use crate::cli::args::{DaemonArgs, GlobalArgs};
use crate::cli::env;
use crate::daemon::{DaemonConfig, DaemonError, launcher, lock, run};
use crate::error::Error;
use crate::store::BlocksLocation;

/// The API token: the first line of `--token-file`, else `COREFLOW_API_TOKEN`; never empty.
///
/// # Errors
/// The file cannot be read, or holds no token (exit 2).
pub(super) fn api_token(file: Option<&std::path::Path>) -> Result<Option<String>, Error> {
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
    // `LABEL:MAX=COMMAND`, or `LABEL=COMMAND` with the daemon's `--max-workers` (else 4).
    let default_max = args
        .max_workers
        .filter(|&max| max > 0)
        .unwrap_or(launcher::DEFAULT_MAX);
    let mut launchers: Vec<launcher::LauncherSpec> = Vec::new();
    for value in &args.launchers {
        let spec = launcher::LauncherSpec::parse(value, default_max)
            .map_err(|e| Error::Usage(e.to_string()))?;
        if launchers.iter().any(|other| other.label == spec.label) {
            return Err(Error::Usage(format!(
                "invalid --launcher `{value}`: another --launcher starts workers for `{}`",
                spec.label
            )));
        }
        launchers.push(spec);
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
    // One daemon per environment folder on a host (for PostgreSQL, this host's folder of
    // it): several hosts' daemons share a PostgreSQL environment through its leadership.
    let _lock = lock(store.dir()).map_err(|e| match e {
        DaemonError::Locked(_) => Error::Usage(e.to_string()),
        DaemonError::Start(message) => Error::Environment(message),
        DaemonError::Launcher { .. } => Error::Usage(e.to_string()),
    })?;
    let config = DaemonConfig {
        workflows,
        env: std::fs::canonicalize(&dir).unwrap_or(dir),
        blocks: global.blocks.as_ref().map(|blocks| match blocks {
            BlocksLocation::Folder(dir) => {
                BlocksLocation::Folder(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
            }
            remote @ BlocksLocation::ObjectStore(_) => remote.clone(),
        }),
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
        launchers,
        cpus: args.offer.cpus,
        memory: args.offer.memory,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    runtime
        .block_on(run(config, store))
        .map_err(|e| Error::Usage(e.to_string()))
}
