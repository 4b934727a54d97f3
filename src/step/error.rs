//! The error of this module: why a step could not be run at all.
//!
//! A step that runs and fails is no error: it is a [`StepEnd`](super::StepEnd) in the
//! report. Turning an [`Error`] into a failed step (exit code 127 and the message in its
//! log) is the caller's business.

use std::io;
use std::path::PathBuf;

/// Why a step could not be run.
///
/// Messages are lowercase fragments for a step's log: the cause is part of the
/// message, not a separate `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `command: []`.
    #[error("empty command: the first item must name the program to run")]
    EmptyCommand,
    /// The working directory is missing or not a directory.
    #[error("cannot use working directory `{}`: {error}", .path.display())]
    WorkingDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The script could not be written to a temporary file.
    #[error("cannot write the script for shell `{shell}` to a temporary file: {error}")]
    Script {
        /// The shell.
        shell: String,
        /// Why.
        error: io::Error,
    },
    /// The program could not be started (not found, not executable, …).
    #[error("cannot start `{program}`: {error}")]
    Spawn {
        /// The program, as written.
        program: String,
        /// Why.
        error: io::Error,
    },
    /// Waiting for the process failed; it was killed.
    #[error("cannot wait for `{program}` (pid {pid}): {error}")]
    Wait {
        /// The program, as written.
        program: String,
        /// Its pid.
        pid: u32,
        /// Why.
        error: io::Error,
    },
}

impl Error {
    /// The exit code a shell reports for the same failure: 126 when the program exists but
    /// cannot be executed, 127 otherwise (not found, unusable directory, …).
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Spawn { error, .. } if error.kind() == io::ErrorKind::PermissionDenied => 126,
            _ => 127,
        }
    }
}
