//! The execution rules that the two ways of running a job share — the in-process
//! coordinator of `coreflow run` ([`super::run`]) and the standalone workers
//! ([`super::worker`]) — written once: a job's time limits, and whether and when a failed
//! attempt runs again.

use std::time::Duration;

use crate::spec::model::{DurationSpec, Retry, Workflow};
use crate::state::JobState;
use crate::step::DEFAULT_GRACE;

/// How long a job's attempt may run, and how long its steps get between SIGTERM and SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Option<Duration>,
    pub grace: Duration,
}

/// The limits of job `base` (its own keys, else the workflow's `defaults`).
#[must_use]
pub fn limits(workflow: &Workflow, base: &str) -> Limits {
    let job = &workflow.jobs[base];
    let defaults = &workflow.defaults;
    Limits {
        timeout: job
            .timeout
            .as_ref()
            .or(defaults.timeout.as_ref())
            .map(DurationSpec::get),
        grace: job
            .cancel_grace
            .as_ref()
            .or(defaults.cancel_grace.as_ref())
            .map_or(DEFAULT_GRACE, DurationSpec::get),
    }
}

/// A failed attempt that runs again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    /// How long to wait before the next attempt.
    pub delay: Duration,
    /// The reason recorded with the job's return to its queue:
    /// `failed attempt 1 of 3; retry in 2s (step "build")`.
    pub reason: String,
}

/// Whether an attempt that ended in `state` runs again: a failed or timed-out attempt does
/// while attempts remain (`attempts` made of `max_attempts`, counted from the last `coreflow
/// retry`), after the job's (or the defaults') `retry` delay.
#[must_use]
pub fn retry_after(
    workflow: &Workflow,
    base: &str,
    state: JobState,
    attempts: u32,
    max_attempts: u32,
    step: Option<&str>,
) -> Option<RetryAfter> {
    if !matches!(state, JobState::Failed | JobState::TimedOut) || attempts >= max_attempts {
        return None;
    }
    let retry = workflow.jobs[base]
        .retry
        .as_ref()
        .or(workflow.defaults.retry.as_ref());
    let delay = retry_delay(retry, attempts + 1);
    let mut reason = format!(
        "{} attempt {attempts} of {max_attempts}; retry in {}",
        state.as_str(),
        crate::ui::format::duration(delay)
    );
    if let Some(step) = step {
        reason.push_str(&format!(" (step \"{step}\")"));
    }
    Some(RetryAfter { delay, reason })
}

/// The delay before attempt `next`, with jitter when asked.
fn retry_delay(retry: Option<&Retry>, next: u32) -> Duration {
    let Some(retry) = retry else {
        return Duration::from_secs(1);
    };
    let delay = retry.delay_before(next);
    if retry.jitter {
        // Up to 10% more, from the standard library's per-process random hash keys: enough
        // to spread retries apart, without a random-number crate.
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let extra = u64::try_from(delay.as_millis() / 10).unwrap_or(u64::MAX);
        if extra > 0 {
            return delay + Duration::from_millis(random % extra);
        }
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(yaml: &str) -> Workflow {
        crate::spec::parse_str("wf.yaml", yaml)
            .expect("valid")
            .workflow
    }

    #[test]
    fn limits_come_from_the_job_else_the_defaults() {
        let wf = workflow(
            "defaults: { timeout: 5m, cancel_grace: 3s }\njobs:\n  a: { steps: [{ run: x }] }\n  b: { timeout: 1s, steps: [{ run: x }] }\n",
        );
        assert_eq!(
            limits(&wf, "a"),
            Limits {
                timeout: Some(Duration::from_secs(300)),
                grace: Duration::from_secs(3)
            }
        );
        assert_eq!(limits(&wf, "b").timeout, Some(Duration::from_secs(1)));
        let bare = workflow("jobs:\n  a: { steps: [{ run: x }] }\n");
        assert_eq!(limits(&bare, "a").grace, DEFAULT_GRACE);
    }

    #[test]
    fn failed_attempts_retry_while_attempts_remain() {
        let wf = workflow(
            "jobs:\n  a:\n    retry: { max_attempts: 3, delay: 2s, backoff: constant }\n    steps: [{ run: x }]\n",
        );
        let again = retry_after(&wf, "a", JobState::Failed, 1, 3, Some("build")).unwrap();
        assert_eq!(again.delay, Duration::from_secs(2));
        assert_eq!(
            again.reason,
            "failed attempt 1 of 3; retry in 2.0s (step \"build\")"
        );
        assert!(retry_after(&wf, "a", JobState::TimedOut, 2, 3, None).is_some());
        assert!(retry_after(&wf, "a", JobState::Failed, 3, 3, None).is_none());
        assert!(retry_after(&wf, "a", JobState::Cancelled, 1, 3, None).is_none());
        assert!(retry_after(&wf, "a", JobState::Succeeded, 1, 3, None).is_none());
    }
}
