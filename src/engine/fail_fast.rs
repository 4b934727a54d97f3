//! `fail_fast`: a matrix leg that fails cancels its siblings that have not ended. The rule,
//! shared by the in-process coordinator and the store-driven path.

use crate::spec::model::Workflow;
use crate::state::JobState;

/// Whether a leg of `base` ending in `state` cancels its siblings: the job has `fail_fast`,
/// the leg failed or timed out, and its failure is not tolerated (`continue_on_error`).
#[must_use]
pub fn stops_siblings(workflow: &Workflow, base: &str, state: JobState) -> bool {
    matches!(state, JobState::Failed | JobState::TimedOut)
        && workflow
            .jobs
            .get(base)
            .is_some_and(|job| job.fail_fast && !job.continue_on_error)
}

/// The reason a sibling of the failed leg `leg` is cancelled with.
#[must_use]
pub fn reason(leg: &str) -> String {
    format!("fail_fast: {leg} failed")
}
