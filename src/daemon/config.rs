//! [`DaemonConfig`]: how the daemon runs, validated by `cli/daemon.rs`, with its
//! [`LauncherSpec`]s (`--launcher`); [`DaemonError`]: why it could not start.

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
    /// `--launcher`: how to start workers elsewhere for jobs needing a label.
    pub launchers: Vec<LauncherSpec>,
    /// `--cpus`, passed on to the pool's workers (they offer the host's CPU count without).
    pub cpus: Option<f64>,
    /// `--memory`, passed on to the pool's workers (they offer the host's memory without).
    pub memory: Option<crate::spec::model::MemorySize>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another daemon (pid {0}) owns the triggers of this environment")]
    Locked(String),
    #[error("{0}")]
    Start(String),
    /// A malformed `--launcher` value.
    #[error("invalid --launcher `{value}`: {reason}")]
    Launcher { value: String, reason: String },
}

/// The launcher maximum when neither `LABEL:MAX=` nor `--max-workers` gives one.
pub const DEFAULT_MAX: usize = 4;

/// One `--launcher LABEL[:MAX]=COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherSpec {
    /// The label the workers it starts carry.
    pub label: String,
    /// The most launches alive at once.
    pub max: usize,
    /// The shell command, with its `{env}`, `{labels}` and `{blocks}` still in it.
    pub command: String,
}

impl LauncherSpec {
    /// Reads `LABEL=COMMAND` or `LABEL:MAX=COMMAND`; `default_max` when MAX is not given.
    ///
    /// # Errors
    /// A value without `=`, an empty or ill-formed label, a maximum that is not a whole
    /// number above 0, or an empty command.
    pub fn parse(text: &str, default_max: usize) -> Result<LauncherSpec, DaemonError> {
        let invalid = |reason: &str| DaemonError::Launcher {
            value: text.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((head, command)) = text.split_once('=') else {
            return Err(invalid("expected LABEL=COMMAND or LABEL:MAX=COMMAND"));
        };
        let (label, max) = match head.split_once(':') {
            Some((label, max)) => match max.trim().parse::<usize>() {
                Ok(max) if max > 0 => (label.trim(), max),
                _ => {
                    return Err(invalid(&format!(
                        "the maximum `{max}` is not a whole number above 0"
                    )));
                }
            },
            None => (head.trim(), default_max),
        };
        if label.is_empty() {
            return Err(invalid("the label is empty"));
        }
        if label
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ",:={}".contains(c))
        {
            return Err(invalid(&format!(
                "the label `{label}` holds a space or one of `,:={{}}`"
            )));
        }
        if command.trim().is_empty() {
            return Err(invalid("the command is empty"));
        }
        Ok(LauncherSpec {
            label: label.to_owned(),
            max,
            command: command.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::LauncherSpec;

    #[test]
    fn a_launcher_reads_with_and_without_its_maximum() {
        let plain = LauncherSpec::parse("gpu=ssh box coreflow worker", 4).expect("valid");
        assert_eq!(plain.label, "gpu");
        assert_eq!(plain.max, 4);
        assert_eq!(plain.command, "ssh box coreflow worker");
        let bounded = LauncherSpec::parse("gpu:3=a=b", 4).expect("valid");
        assert_eq!((bounded.label.as_str(), bounded.max), ("gpu", 3));
        assert_eq!(bounded.command, "a=b");
    }

    #[test]
    fn malformed_launchers_say_why() {
        for (value, why) in [
            ("gpu", "expected LABEL=COMMAND"),
            ("=cmd", "the label is empty"),
            ("gpu:0=cmd", "not a whole number above 0"),
            ("gpu:x=cmd", "not a whole number above 0"),
            ("gpu=  ", "the command is empty"),
            ("g pu=cmd", "holds a space"),
        ] {
            let err = LauncherSpec::parse(value, 4).expect_err(value).to_string();
            assert!(err.contains(why), "{value}: {err}");
            assert!(err.contains(value.trim()), "{value}: {err}");
        }
    }
}
