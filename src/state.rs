//! Run and job states of SPEC §3, and the identifiers that name runs and jobs.
//!
//! This module owns the vocabulary only: which states exist, which are terminal, and which
//! moves between them are legal. Persisting a transition is the store's job; deciding one is
//! the engine's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A run id: a positive integer, unique in its environment.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct RunId(pub i64);

/// A job id: a positive integer, unique in its environment (across runs).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The state of one job of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its needs.
    Pending,
    /// Ready, waiting for a worker.
    Queued,
    /// A worker is executing it.
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// Its `if:` was false or its `run_if` was not met.
    Skipped,
}

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A trigger fire that the overlap policy dropped.
    Skipped,
}

/// The value of `needs.<job>.result` in templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobResult {
    Success,
    Failure,
    Skipped,
    Cancelled,
}

/// The error for a state name that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown state `{0}`")]
pub struct UnknownState(pub String);

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Pending,
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
        JobState::Skipped,
    ];

    /// The name used in the database, JSON and on screen.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed_out",
            JobState::Cancelled => "cancelled",
            JobState::Skipped => "skipped",
        }
    }

    /// Whether the job has finished for good (no further transition but a retry of the run).
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Failed
                | JobState::TimedOut
                | JobState::Cancelled
                | JobState::Skipped
        )
    }

    /// Whether moving from `self` to `to` is a legal transition.
    ///
    /// `Running -> Queued` is the re-queue of a retry or of lost work; any terminal state may
    /// go back to `Pending` only through `coreflow retry`, which resets jobs explicitly.
    #[must_use]
    pub fn can_become(self, to: JobState) -> bool {
        use JobState::{Cancelled, Failed, Pending, Queued, Running, Skipped, Succeeded, TimedOut};
        matches!(
            (self, to),
            (Pending, Queued | Skipped | Cancelled | Failed)
                | (Queued, Running | Cancelled | Skipped | Pending | Failed)
                | (Running, Succeeded | Failed | TimedOut | Cancelled | Queued)
                | (Failed | TimedOut | Cancelled | Skipped, Pending | Queued)
        )
    }

    /// The template-facing result of a terminal state; `None` while the job is unfinished.
    #[must_use]
    pub fn result(self) -> Option<JobResult> {
        match self {
            JobState::Succeeded => Some(JobResult::Success),
            JobState::Failed | JobState::TimedOut => Some(JobResult::Failure),
            JobState::Skipped => Some(JobResult::Skipped),
            JobState::Cancelled => Some(JobResult::Cancelled),
            JobState::Pending | JobState::Queued | JobState::Running => None,
        }
    }
}

impl RunState {
    /// The name used in the database, JSON and on screen.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Skipped => "skipped",
        }
    }

    /// Whether the run has ended.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

impl JobResult {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Success => "success",
            JobResult::Failure => "failure",
            JobResult::Skipped => "skipped",
            JobResult::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl FromStr for RunState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            RunState::Queued,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Cancelled,
            RunState::Skipped,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Which output stream of a step a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`, as JSON events and `coreflow logs --json` name it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert!("bogus".parse::<JobState>().is_err());
        assert_eq!("timed_out".parse::<RunState>().ok(), None);
    }

    #[test]
    fn terminal_states_do_not_run_again_without_reset() {
        assert!(!JobState::Succeeded.can_become(JobState::Running));
        assert!(JobState::Running.can_become(JobState::Queued));
        assert!(!JobState::Pending.can_become(JobState::Running));
    }
}
