//! The top-level error of a command, and the one place a command's failure becomes an exit
//! code ([`Error::exit_code`], the codes in [`exit`]). Lower layers return their own typed
//! errors, each knowing its class; they enter here through `?`.

pub use crate::exit;
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
    /// A run could not be set up, admitted or moved on.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The environment's store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A DataBlock could not be found, stored or placed.
    #[error(transparent)]
    Blocks(#[from] crate::blocks::Error),
    /// An environment copy was refused or failed.
    #[error(transparent)]
    Copy(#[from] crate::store::copy::CopyError),
    /// A `sql:` step's statements failed (the step fails).
    #[error("sql: {0}")]
    Sql(#[from] crate::step::sql::SqlError),
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
            Error::RunFailed { .. } | Error::Io(_) | Error::Sql(_) => exit::FAILED,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Engine(err) => err.exit_code(),
            Error::Store(err) => err.exit_code(),
            Error::Blocks(err) => err.exit_code(),
            Error::Copy(err) => err.exit_code(),
        }
    }
}

/// The result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;
