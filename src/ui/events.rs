//! The progress events the engine sends to the screen and to reports, and the [`Reporter`]
//! trait that consumes them.
//!
//! Events carry their own timestamp (`ts`, UTC), so every reporter formats what happened when it
//! happened, not when the event was drawn, and tests stay deterministic. The engine decides
//! which events to send and in which order; reporters only show them and never feed anything
//! back.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::state::Stream;
use crate::state::{JobState, RunId, RunState};
use crate::ui::error::Error;

/// One thing that happened during a run, as the engine tells it to the user interface.
///
/// Job names are full names, matrix part included (`report[format=csv]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run was created and is about to start its jobs.
    RunStarted {
        ts: DateTime<Utc>,
        run_id: RunId,
        workflow: String,
        /// How many jobs the run has (after matrix fan-out and `--only`).
        jobs: usize,
        /// How many local workers execute them.
        workers: usize,
    },
    /// A `workflow:` job started its child run, whose jobs follow as `job/child-job`.
    ChildRun {
        ts: DateTime<Utc>,
        /// The calling job's full name.
        job: String,
        run_id: RunId,
        workflow: String,
        /// How many jobs the child run has.
        jobs: usize,
    },
    /// A job moved to another state.
    JobState(JobChange),
    /// A step of a running job started.
    StepStarted {
        ts: DateTime<Utc>,
        job: String,
        step: String,
        /// The step's position in the job, counting from 0.
        index: usize,
    },
    /// One line a step printed, without its line terminator.
    Output {
        ts: DateTime<Utc>,
        job: String,
        step: String,
        stream: Stream,
        line: String,
    },
    /// The run ended; `jobs` lists every job of the run in definition order.
    RunFinished {
        ts: DateTime<Utc>,
        run_id: RunId,
        state: RunState,
        duration: Duration,
        jobs: Vec<JobSummary>,
    },
}

impl Event {
    /// When the event happened.
    #[must_use]
    pub fn ts(&self) -> DateTime<Utc> {
        match self {
            Event::RunStarted { ts, .. }
            | Event::ChildRun { ts, .. }
            | Event::JobState(JobChange { ts, .. })
            | Event::StepStarted { ts, .. }
            | Event::Output { ts, .. }
            | Event::RunFinished { ts, .. } => *ts,
        }
    }
}

/// One state change of a job, as [`Event::JobState`] carries it and every reporter reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobChange {
    /// When the job changed state.
    pub ts: DateTime<Utc>,
    /// The job's full name, matrix part included.
    pub job: String,
    /// The state the job moved to.
    pub state: JobState,
    /// The attempt this state belongs to, counting from 1.
    pub attempt: u32,
    /// Why, when the state has a reason: a skip's unmet condition, a cancel's cause,
    /// `lost`, a retry's delay.
    pub reason: Option<String>,
    /// The exit code of the failing step, for `failed`.
    pub exit_code: Option<i32>,
    /// How long the attempt ran, for terminal states. When absent, reporters measure it
    /// from the `running` change of the same attempt.
    pub duration: Option<Duration>,
    /// The step that failed or timed out.
    pub step: Option<String>,
}

impl JobChange {
    /// `job` moved to `state` in `attempt` at `ts`, with no reason, exit code, duration or
    /// step (set them on the result when the change has them).
    #[must_use]
    pub fn new(ts: DateTime<Utc>, job: impl Into<String>, state: JobState, attempt: u32) -> Self {
        JobChange {
            ts,
            job: job.into(),
            state,
            attempt,
            reason: None,
            exit_code: None,
            duration: None,
            step: None,
        }
    }
}

/// The outcome of one job, as listed by [`Event::RunFinished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub name: String,
    pub state: JobState,
    /// How many attempts ran (0 for a job that never started).
    pub attempts: u32,
    /// How long its last attempt ran.
    pub duration: Option<Duration>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// Something that shows or records a run's progress.
///
/// The engine calls [`event`](Reporter::event) for each event, in order, from one task, then
/// [`finish`](Reporter::finish) once. Reporters never fail the run: showing progress is best
/// effort (a closed stdout ends it quietly), and only `finish` reports an error, so the caller
/// can say that a report the user asked for, such as a `JUnit` file, is missing.
pub trait Reporter: Send {
    /// Shows or records one event.
    fn event(&mut self, ev: &Event);

    /// Flushes whatever is still buffered and releases the terminal.
    ///
    /// # Errors
    ///
    /// When a report file could not be written, or progress output failed for another reason
    /// than a closed pipe (a full disk behind a redirect, say).
    /// One line of step output. The default builds an [`Event::Output`]; reporters on the
    /// hot path of chatty steps override it to skip the allocations.
    fn output(&mut self, ts: DateTime<Utc>, job: &str, step: &str, stream: Stream, line: &[u8]) {
        self.event(&Event::Output {
            ts,
            job: job.to_owned(),
            step: step.to_owned(),
            stream,
            line: String::from_utf8_lossy(line).into_owned(),
        });
    }

    /// Called a few times a second: push out output held in buffers.
    fn tick(&mut self) {}

    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
}
