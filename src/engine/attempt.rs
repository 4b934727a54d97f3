//! One attempt of a job, as every loop that starts attempts sees it: what it is given
//! ([`AttemptInput`], made by [`prepare`]), what it gives back ([`AttemptOutcome`], from
//! `job.rs`), and what that means for the job ([`Conclusion`], by [`conclude`]). The
//! in-process coordinator (`run.rs`) and the standalone worker (`worker.rs`) both go through
//! these, so the rules for context, time limits, retries and records are written once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::engine::JobFailure;
use crate::engine::context::TemplateContext;
use crate::engine::decide::{self, NeedInfo, RunInputs};
use crate::engine::policy::{self, Limits, RetryAfter};
use crate::engine::secrets;
use crate::spec::model::Workflow;
use crate::state::{JobId, JobState};
use crate::store::{Change, StepRecord, Transition};

/// What the coordinator hands an attempt.
pub struct AttemptInput {
    pub job: JobId,
    pub name: String,
    pub base: String,
    pub attempt: u32,
    pub context: TemplateContext,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    pub kill_token: String,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub state: JobState,
    pub exit_code: Option<i32>,
    /// The step that failed, timed out or was cancelled.
    pub step: Option<String>,
    pub reason: Option<String>,
    pub outputs: Vec<(String, String)>,
    pub steps: Vec<StepRecord>,
    pub peak_rss_bytes: u64,
    pub cpu_ms: u64,
    pub duration: Duration,
}

impl AttemptOutcome {
    /// An attempt that ended in `state` with nothing run, measured or set yet.
    #[must_use]
    pub fn new(state: JobState) -> AttemptOutcome {
        AttemptOutcome {
            state,
            exit_code: None,
            step: None,
            reason: None,
            outputs: Vec::new(),
            steps: Vec::new(),
            peak_rss_bytes: 0,
            cpu_ms: 0,
            duration: Duration::ZERO,
        }
    }
}

/// Everything a job's next attempt needs, from its run's inputs and its needs: the template
/// context, the time limits of `engine/policy.rs`, and the kill token its processes carry.
/// The same for the in-process coordinator and for a standalone worker's claim.
///
/// # Errors
/// A job-level parameter that cannot be rendered or does not fit: the job fails without
/// an attempt.
pub fn prepare(
    inputs: &RunInputs<'_>,
    job: &JobRef<'_>,
    needs: &[NeedInfo<'_>],
    kill_token: String,
) -> Result<AttemptInput, JobFailure> {
    let mut context = decide::context(inputs, job.name, job.base, job.matrix, needs)?;
    context.each = crate::engine::context::EachView::of(job.item);
    // Read now, from the process starting the job; never part of what is recorded.
    context.secrets = secrets::resolve(inputs.workflow, inputs.process_env)
        .map_err(|err| JobFailure(err.to_string()))?;
    let Limits { timeout, grace } = policy::limits(inputs.workflow, job.base);
    Ok(AttemptInput {
        job: job.id,
        name: job.name.to_owned(),
        base: job.base.to_owned(),
        attempt: job.attempt,
        context,
        timeout,
        grace,
        kill_token,
    })
}

/// The job an attempt is prepared for.
pub struct JobRef<'a> {
    pub id: JobId,
    pub name: &'a str,
    /// Its name in the workflow (without matrix values).
    pub base: &'a str,
    pub matrix: &'a IndexMap<String, String>,
    /// A `for_each` item's record (`{"index": 0, "value": …}`), else `Value::Null`.
    pub item: &'a serde_json::Value,
    /// The number of the attempt being prepared, from 1.
    pub attempt: u32,
}

/// What an ended attempt means for its job, by the retry policy of `engine/policy.rs`.
#[derive(Debug)]
pub struct Conclusion {
    /// The attempt's step records and outputs, then the job's transition: in the order they
    /// are to be recorded.
    pub changes: Vec<Change>,
    /// Where the job goes: the attempt's end state, or `Queued` for another attempt.
    pub to: JobState,
    /// The delay before the next attempt and its reason, when there is one.
    pub retry: Option<RetryAfter>,
}

impl Conclusion {
    /// Gives the job back to its queue instead (a standalone worker stopping mid-job): the
    /// attempt does not count as a failure and runs again without delay.
    pub fn requeue(&mut self, reason: &str) {
        if let Some(Change::Job(transition)) = self.changes.last_mut() {
            transition.to = JobState::Queued;
            transition.attempt_end = None;
            transition.reason = Some(reason.to_owned());
        }
        self.to = JobState::Queued;
        self.retry = None;
    }
}

/// Concludes an attempt of `job`: records its steps, outputs and usage, and decides whether
/// the job runs again. `attempts` counts the attempts made since the run's last
/// `coreflow retry`; a run being cancelled retries nothing.
#[must_use]
pub fn conclude(
    workflow: &Workflow,
    job: JobId,
    base: &str,
    (attempts, max_attempts): (u32, u32),
    outcome: &AttemptOutcome,
    cancelling: bool,
    now: DateTime<Utc>,
) -> Conclusion {
    let mut changes: Vec<Change> = outcome.steps.iter().cloned().map(Change::Step).collect();
    changes.extend(outcome.outputs.iter().map(|(key, value)| Change::Output {
        job,
        key: key.clone(),
        value: value.clone(),
    }));
    let mut transition =
        Transition::new(job, outcome.state, now).usage(outcome.peak_rss_bytes, outcome.cpu_ms);
    transition.exit_code = outcome.exit_code;
    transition.reason.clone_from(&outcome.reason);
    let retry = policy::retry_after(
        workflow,
        base,
        outcome.state,
        attempts,
        max_attempts,
        outcome.step.as_deref(),
    )
    .filter(|_| !cancelling);
    if let Some(again) = &retry {
        transition.to = JobState::Queued;
        transition.attempt_end = Some(outcome.state);
        transition.reason = Some(again.reason.clone());
    }
    let to = transition.to;
    changes.push(transition.into());
    Conclusion { changes, to, retry }
}
