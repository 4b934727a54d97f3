//! [`DaemonConfig`]: how the daemon runs, validated by `cli/daemon.rs`; [`DaemonError`]: why
//! it could not start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The folder of workflow files (absolute).
    pub workflows: PathBuf,
    /// The environment folder (absolute) or URL, for the API and the local workers.
    pub env: PathBuf,
    /// Where DataBlock content lives (`--blocks`), for the API and the local workers.
    pub blocks: Option<crate::store::BlocksLocation>,
    pub min_workers: usize,
    pub max_workers: usize,
    /// Labels of the local workers, besides the automatic ones.
    pub labels: Vec<String>,
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    /// Host names the API answers to besides its address and loopback (`--public-host`).
    pub public_hosts: Vec<String>,
    /// On SIGTERM, how long running jobs may take to finish before they are re-queued.
    pub grace: Duration,
    /// The lease of the local workers' jobs.
    pub lease: Duration,
    /// How long a local worker may sit idle above the minimum.
    pub idle: Duration,
    /// The daemon logs JSON lines (`--log-format json`).
    pub json_log: bool,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another daemon (pid {0}) owns the triggers of this environment")]
    Locked(String),
    #[error("{0}")]
    Start(String),
}
