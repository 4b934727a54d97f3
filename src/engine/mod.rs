//! The local execution engine: a coordinator that owns a run's job states ([`run`]) and the
//! attempts it starts on free workers ([`job`]), with the template context they share
//! ([`context`]). Setting a run up from a workflow file is [`setup`]'s job; recording the
//! coordinator's changes, on a thread of its own, the writer's.

pub mod admission;
pub mod attempt;
pub mod blocks;
pub mod call;
pub mod context;
pub mod decide;
pub mod dedicated;
pub mod definition;
mod error;
pub mod fail_fast;
pub mod fan_out;
pub mod job;
pub mod notify;
pub mod policy;
pub mod queued;
pub mod run;
pub mod secrets;
pub mod setup;
pub mod shared;
pub mod tracked;
pub mod worker;
mod writer;

pub use error::{EngineError, JobFailure};
pub use run::{Control, JobRt, RunEnd, Slots, execute};
pub use shared::RunShared;

/// The next delivery of `signal`, or never when it could not be installed.
pub(crate) async fn recv_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
