//! The engine's errors, decided where they arise: [`EngineError`] for a run that cannot be
//! set up, admitted or moved on (each variant knows its exit class), [`JobFailure`] for a
//! job that fails before its steps run (its text becomes the job's recorded reason).

use crate::exit;
use crate::spec::params::ParamError;

/// Why a run could not be set up, admitted, queued or moved on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Parameter texts that do not parse, or values the workflow refuses.
    #[error("{}", join(.0))]
    Params(Vec<ParamError>),
    /// `--only` naming no job of the workflow (`hint` is empty or starts with ": ").
    #[error("`--only {name}` names no job of this workflow{hint}")]
    UnknownJob { name: String, hint: String },
    /// A job whose `runs_on` labels no local worker carries.
    #[error("{0}")]
    Labels(String),
    /// A job whose `resources` no worker can ever offer.
    #[error("{0}")]
    Resources(String),
    /// A DataBlock parameter naming a block or version that does not exist.
    #[error(transparent)]
    Blocks(#[from] crate::blocks::Error),
    /// The definition a run was created from is missing or no longer parses.
    #[error("{0}")]
    Definition(String),
    /// A job that calls another workflow (`workflow:`): validated, not yet executed.
    #[error(
        "job `{job}` calls the workflow `{called}`: running `workflow:` jobs is not supported by \
         this version (`validate` and `graph` check them)"
    )]
    Calls { job: String, called: String },
    /// The environment's store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A secret that cannot be read: the run does not start.
    #[error(transparent)]
    Secret(#[from] crate::engine::secrets::SecretError),
}

impl EngineError {
    /// The exit class: the store's or the DataBlocks' own; everything else is what the caller
    /// asked for (2).
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Store(err) => err.exit_code(),
            EngineError::Blocks(err) => err.exit_code(),
            _ => exit::USAGE,
        }
    }
}

fn join(errors: &[ParamError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a job fails before or around its steps without a step failing: a template that does
/// not render, a parameter that does not fit, an input that cannot be placed. Its text is
/// recorded as the job's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JobFailure(pub String);

impl From<String> for JobFailure {
    fn from(reason: String) -> JobFailure {
        JobFailure(reason)
    }
}

impl From<&str> for JobFailure {
    fn from(reason: &str) -> JobFailure {
        JobFailure(reason.to_owned())
    }
}

impl From<JobFailure> for String {
    fn from(failure: JobFailure) -> String {
        failure.0
    }
}

impl From<ParamError> for EngineError {
    fn from(error: ParamError) -> EngineError {
        EngineError::Params(vec![error])
    }
}
