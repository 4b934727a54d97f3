//! CoreFlow: a local-first workflow runner.
//!
//! The library holds everything the `coreflow` binary does, so integration tests and later
//! components share one implementation.
//!
//! - [`spec`] turns workflow YAML into the typed model, with positioned diagnostics.
//! - [`graph`] builds and checks the job DAG, fans out matrices, and draws it.
//! - [`state`] names run and job states.
//! - [`step`] runs one step as a child process; [`engine`] runs runs; [`store`] is the
//!   environment's state; [`daemon`] serves triggers and the HTTP API; [`ui`] shows progress.
//! - [`cli`] is the command-line front end; [`error`] maps failures to exit codes.
//!
//! `ARCHITECTURE.md` at the repository's root has the layers and the rules between them.

pub mod blocks;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod exit;
pub mod graph;
pub mod scheduler;
pub mod spec;
pub mod state;
pub mod step;
pub mod store;
pub mod triggers;
pub mod ui;
pub mod web;
