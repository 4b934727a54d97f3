//! `store::Error`: everything that can go wrong between the engine and the state store.
//!
//! The CLI maps [`Error::is_environment`] to exit code 3 ("the environment could not be opened
//! or is corrupt"); the other variants are ordinary failures of one command.

use std::io;
use std::path::PathBuf;

use crate::state::{JobId, JobState, RunId, RunState};

/// An error of the state store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The environment could not be opened, is not a CoreFlow database, or is corrupt.
    #[error("cannot open environment `{}`: {detail}", path.display())]
    Environment {
        /// The environment folder or database file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// A job transition that [`JobState::can_become`] forbids.
    #[error("illegal transition of job `{name}` (id {job}) from {from} to {to}")]
    IllegalTransition {
        job: JobId,
        name: String,
        from: JobState,
        to: JobState,
    },

    /// A run status change out of a finished state (only a retry may reopen a run).
    #[error("illegal transition of run {run} from {from} to {to}")]
    IllegalRunTransition {
        run: RunId,
        from: RunState,
        to: RunState,
    },

    /// A retry was asked for a job that has not finished.
    #[error("job `{name}` (id {job}) is {state}, it cannot be reset for a retry")]
    NotFinished {
        job: JobId,
        name: String,
        state: JobState,
    },

    /// A job or attempt id that does not exist.
    #[error("no job with id {0}")]
    JobNotFound(JobId),

    /// A run id that does not exist.
    #[error("no run with id {0}")]
    RunNotFound(RunId),

    /// A run or job reference that does not parse (`42`, `last`, `42/extract`, `17`).
    #[error(
        "invalid reference `{reference}`: expected a run id, `last`, RUN/JOB or a numeric job id"
    )]
    InvalidReference { reference: String },

    /// A log file could not be written or read.
    #[error("log file `{}`: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A JSON value (params, metadata) could not be encoded.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// A DataBlock needs a content location this environment lacks (PostgreSQL without
    /// `--blocks`).
    #[error(
        "DataBlocks of a PostgreSQL environment need a folder every host reaches: give \
         --blocks DIR (a shared mount) or set COREFLOW_BLOCKS"
    )]
    NoBlocksLocation,

    /// A time trigger's instant was already fired: another daemon (a leader that took over,
    /// or one that lost the lead and does not know it yet) claimed it first.
    #[error("trigger `{key}` of workflow `{workflow}` already fired for {at}")]
    AlreadyFired {
        workflow: String,
        key: String,
        at: chrono::DateTime<chrono::Utc>,
    },

    /// Any other SQLite failure.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// Any other PostgreSQL failure.
    #[error("state database: {0}")]
    Postgres(#[from] postgres::Error),
}

impl Error {
    /// Whether this error means the environment is unusable (exit code 3): it could not be
    /// opened, is not a CoreFlow database, or turned out corrupt while being read.
    #[must_use]
    pub fn is_environment(&self) -> bool {
        match self {
            Error::Environment { .. } => true,
            Error::Sqlite(error) => is_environment_code(error),
            // The server went away, refused us, or holds what this version cannot read.
            Error::Postgres(error) => error.is_closed() || error.code().is_none(),
            _ => false,
        }
    }

    /// The exit class: a broken environment is 3, anything else (a name not found, a
    /// refused change) 2.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        if self.is_environment() {
            crate::exit::ENVIRONMENT
        } else {
            crate::exit::USAGE
        }
    }
}

/// Whether SQLite reports a broken or unreachable database file, or the database holds a value
/// this version cannot read (an unknown state name, bad JSON).
pub(crate) fn is_environment_code(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    if matches!(
        error,
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..)
    ) {
        return true;
    }
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::PermissionDenied
        )
    )
}

#[cfg(test)]
mod tests {
    use super::Error;
    use crate::state::{JobId, JobState};

    #[test]
    fn messages_are_lowercase_fragments() {
        let error = Error::IllegalTransition {
            job: JobId(7),
            name: "extract".into(),
            from: JobState::Succeeded,
            to: JobState::Running,
        };
        assert_eq!(
            error.to_string(),
            "illegal transition of job `extract` (id 7) from succeeded to running"
        );
        assert!(!error.is_environment());
        let corrupt = Error::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        ));
        assert!(corrupt.is_environment());
    }
}
