//! The top-level error of a command and the only mapping to exit codes (SPEC §4):
//!
//! | Code | Constant | Meaning |
//! |---|---|---|
//! | 0 | [`exit::SUCCESS`] | success |
//! | 1 | [`exit::FAILED`] | the run failed or was cancelled (also: output could not be written) |
//! | 2 | [`exit::USAGE`] | bad usage, an invalid workflow or parameter, something not found |
//! | 3 | [`exit::ENVIRONMENT`] | the environment could not be opened or is corrupt |
//! | 130 | [`exit::INTERRUPTED`] | interrupted (Ctrl-C) |

use crate::spec::LoadError;
use crate::spec::params::ParamError;

/// The process exit codes, one per class of outcome.
pub mod exit {
    /// The command did what it was asked.
    pub const SUCCESS: i32 = 0;
    /// The run failed or was cancelled.
    pub const FAILED: i32 = 1;
    /// Bad usage, an invalid workflow or parameter, or something named that does not exist.
    pub const USAGE: i32 = 2;
    /// The environment could not be opened or is corrupt.
    pub const ENVIRONMENT: i32 = 3;
    /// Interrupted by a signal (128 + SIGINT).
    pub const INTERRUPTED: i32 = 130;
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage: an unknown name, a missing argument, something not found.
    #[error("{0}")]
    Usage(String),
    /// One or more workflow files are invalid; their diagnostics are already rendered.
    #[error("{0}")]
    Invalid(Box<LoadError>),
    /// Parameter values were refused.
    #[error("{}", render_params(.0))]
    Params(Vec<ParamError>),
    /// Workflow files were reported invalid on the way; nothing more to print.
    #[error("invalid workflow")]
    AlreadyReported,
    /// The environment could not be opened or is corrupt.
    #[error("{0}")]
    Environment(String),
    /// The run ended without success.
    #[error("run {run} {status}")]
    RunFailed { run: i64, status: String },
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
    /// Writing output or another I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn render_params(errors: &[ParamError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\nerror: ")
}

impl Error {
    /// The process exit code for this error.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Invalid(_) | Error::Params(_) | Error::AlreadyReported => {
                exit::USAGE
            }
            Error::Environment(_) => exit::ENVIRONMENT,
            Error::RunFailed { .. } | Error::Io(_) => exit::FAILED,
            Error::Interrupted => exit::INTERRUPTED,
        }
    }
}

/// The result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;
