//! `coreflow daemon`: the server mode that replaces cron.
//!
//! One loop ([`serve`]) owns the daemon's state: it reloads the workflow folder
//! ([`catalog`]), fires JobTriggers when they are due (schedules, `every`, `at`, file
//! arrival, `after` another workflow), applies `concurrency` and `catchup`, expires the leases
//! of vanished workers, drives the local worker pool ([`scaler`]) and starts workers elsewhere
//! for jobs needing a label ([`launcher`]); the HTTP API ([`crate::web::api`]) runs beside it. What a
//! trigger has fired is persisted before the run is created, so a `kill -9` and a restart
//! never fire one instant twice (at worst one is lost). Only one daemon owns an
//! environment's triggers: it holds an exclusive `flock` on `daemon.lock` in the environment
//! ([`lock`]), which the kernel releases however the daemon dies.
//!
//! The instants at which time-based triggers fall due come from [`crate::triggers`]; the
//! daemon asks a [`Clock`](crate::clock::Clock) what time it is, so its firing is tested
//! against a manual clock across daylight-saving changes without sleeping.
//!
//! - `serve.rs`: the loop, signals, start-up and shutdown.
//! - `firing.rs`: the daemon's state; reloading, due time triggers, file and `after` events.
//! - `armed.rs`: one armed trigger; `arming.rs`: arming it (catchup after downtime).
//! - `overlap.rs`: a fire becoming a run under the workflow's `concurrency`.
//! - `coalesce.rs`: concurrent reads of one run share one computation.
//! - `guard.rs`, `http.rs`: the one middleware every API request passes (Host, same
//!   origin, token, body limits), and serving with header timeouts.
//! - `launcher.rs`: `--launcher`, the Scaler's part that starts workers elsewhere for jobs
//!   needing a label, and the report `coreflow workers` reads.
//! - `config.rs`, `lock.rs`: settings and errors; the environment's lock.

mod armed;
mod arming;
pub mod catalog;
mod config;
mod firing;
#[cfg(test)]
mod firing_tests;
pub mod launcher;
mod lock;
mod overlap;
pub mod scaler;
mod serve;

pub use config::{DaemonConfig, DaemonError};
pub use lock::lock;
pub use serve::{run, serve};
