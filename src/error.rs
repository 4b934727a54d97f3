//! The top-level error of a command and the only mapping to exit codes (SPEC §4):
//! 0 success, 1 the run failed or was cancelled, 2 bad usage or an invalid workflow or
//! parameter, 3 the environment could not be opened or is corrupt, 130 interrupted.

use crate::spec::LoadError;
use crate::spec::params::ParamError;

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
            Error::Usage(_) | Error::Invalid(_) | Error::Params(_) | Error::AlreadyReported => 2,
            Error::Environment(_) => 3,
            Error::RunFailed { .. } => 1,
            Error::Interrupted => 130,
            Error::Io(_) => 1,
        }
    }
}

/// The result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;
