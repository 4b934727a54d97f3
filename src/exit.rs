//! The process exit codes, one per class of outcome (SPEC §4). Every error type that can end
//! a command says which class it belongs to; `error::Error::exit_code` is where a command's
//! failure becomes one of these.
//!
//! | Code | Constant | Meaning |
//! |---|---|---|
//! | 0 | [`SUCCESS`] | success |
//! | 1 | [`FAILED`] | the run failed or was cancelled (also: output could not be written) |
//! | 2 | [`USAGE`] | bad usage, an invalid workflow or parameter, something not found |
//! | 3 | [`ENVIRONMENT`] | the environment could not be opened or is corrupt |
//! | 130 | [`INTERRUPTED`] | interrupted (Ctrl-C) |

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
