//! `JobTrigger`s (SPEC §2): when a workflow's triggers fire.
//!
//! This module holds the pure, clock-driven part: given an instant, when do the time-based
//! triggers fire next, and which fires fall in a span of time. Nothing here reads the clock
//! or sleeps; callers pass instants, from a [`Clock`](crate::clock::Clock) in the daemon and
//! from a [`ManualClock`](crate::clock::ManualClock) in tests. Firing, catchup (none, latest,
//! all) and overlap policies belong to the daemon.
//!
//! - [`cron`]: `schedule:` in an IANA zone, with SPEC §7's daylight-saving rule.
//! - [`every`]: `every:`, real elapsed time on a grid from an anchor.
//! - [`at`]: `at:`, once.
//! - [`time_trigger`]: the three behind one enum, built from the model.
//! - [`fire`]: one fire and its daylight-saving note.
//! - [`transition`]: a zone's offset changes, for showing them.

pub mod at;
pub mod cron;
pub mod every;
pub mod fire;
pub mod time_trigger;
pub mod transition;

pub use at::At;
pub use cron::CronSchedule;
pub use every::Every;
pub use fire::{DstNote, Fire};
pub use time_trigger::TimeTrigger;
pub use transition::{Transition, transitions_between};

/// A time-based trigger that cannot be built (the loader's validation reports these with
/// positions first, so a loaded workflow does not produce them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Cron(#[from] crate::spec::cron::CronError),
    #[error("unknown time zone `{0}`")]
    UnknownZone(String),
    #[error("`{0}` is not an RFC 3339 instant")]
    NotAnInstant(String),
    #[error("`every` interval {0:?} must be positive and finite")]
    Interval(std::time::Duration),
}
