//! CoreFlow: a local-first workflow runner.
//!
//! The library holds everything the `coreflow` binary does, so integration tests and later
//! components share one implementation.
//!
//! - [`spec`] turns workflow YAML into the typed model, with positioned diagnostics.
//! - [`graph`] builds and checks the job DAG, fans out matrices, and draws it.
//! - [`state`] names run and job states.
//! - [`cli`] is the command-line front end; [`error`] maps failures to exit codes.

pub mod blocks;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod graph;
pub mod scheduler;
pub mod spec;
pub mod state;
pub mod store;
pub mod triggers;
pub mod ui;
pub mod worker;
