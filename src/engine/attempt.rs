//! What an attempt of a job is given ([`AttemptInput`]) and what it gives back
//! ([`AttemptOutcome`]): the terms between the loops that start attempts, the attempt itself
//! (`job.rs`) and its DataBlock hooks (`blocks.rs`).

use std::time::Duration;

use crate::engine::context::TemplateContext;
use crate::state::{JobId, JobState};
use crate::store::StepRecord;

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
