//! The local execution engine: a coordinator that owns a run's job states ([`run`]) and the
//! attempts it starts on free workers ([`job`]), with the template context they share
//! ([`context`]). Setting a run up from a workflow file is [`setup`]'s job.

pub mod context;
pub mod decide;
pub mod job;
pub mod queued;
pub mod run;
pub mod setup;
pub mod worker;

pub use run::{JobRt, RunEnd, RunShared, execute};
