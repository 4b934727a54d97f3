//! Events and writers shared by the unit tests of this module.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::state::{JobState, RunId, RunState};
use crate::ui::events::{Event, JobChange, JobSummary, Stream};

/// A writer whose bytes the test can read afterwards.
#[derive(Clone, Default)]
pub(crate) struct Shared(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Shared {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that fails like a closed pipe or a full disk.
pub(crate) struct Failing(pub(crate) io::ErrorKind);

impl Write for Failing {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(self.0))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::from(self.0))
    }
}

/// 12:00:00 plus `ms` milliseconds.
pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
}

pub(crate) fn state(ms: i64, job: &str, state: JobState, attempt: u32) -> Event {
    Event::JobState(JobChange::new(at(ms), job, state, attempt))
}

pub(crate) fn failed(ms: i64, job: &str, attempt: u32, step: &str, exit: i32) -> Event {
    Event::JobState(JobChange {
        exit_code: Some(exit),
        step: Some(step.to_owned()),
        ..JobChange::new(at(ms), job, JobState::Failed, attempt)
    })
}

pub(crate) fn step(ms: i64, job: &str, step: &str, index: usize) -> Event {
    Event::StepStarted {
        ts: at(ms),
        job: job.to_owned(),
        step: step.to_owned(),
        index,
    }
}

pub(crate) fn out(ms: i64, job: &str, step: &str, line: &str) -> Event {
    Event::Output {
        ts: at(ms),
        job: job.to_owned(),
        step: step.to_owned(),
        stream: Stream::Stdout,
        line: line.to_owned(),
    }
}

pub(crate) fn summary(
    name: &str,
    state: JobState,
    attempts: u32,
    ms: Option<u64>,
    exit: Option<i32>,
) -> JobSummary {
    JobSummary {
        name: name.to_owned(),
        state,
        attempts,
        duration: ms.map(Duration::from_millis),
        exit_code: exit,
        reason: None,
    }
}

/// A run with a success, a failure with colored output, a retry that succeeds, and a skip.
pub(crate) fn scripted_run() -> Vec<Event> {
    vec![
        Event::RunStarted {
            ts: at(0),
            run_id: RunId(42),
            workflow: "etl".to_owned(),
            jobs: 4,
            workers: 2,
        },
        state(1, "extract", JobState::Queued, 1),
        state(2, "extract", JobState::Running, 1),
        step(3, "extract", "download", 0),
        out(100, "extract", "download", "fetched 120 rows"),
        Event::JobState(JobChange {
            exit_code: Some(0),
            duration: Some(Duration::from_millis(1_198)),
            ..JobChange::new(at(1_200), "extract", JobState::Succeeded, 1)
        }),
        state(1_201, "transform", JobState::Running, 1),
        state(1_202, "load", JobState::Running, 1),
        step(1_203, "transform", "build", 0),
        step(1_204, "load", "upload", 0),
        out(
            1_300,
            "transform",
            "build",
            "\u{1b}[31merror\u{1b}[0m: missing column\r",
        ),
        out(1_301, "load", "upload", "flaky network\u{7}"),
        failed(1_500, "transform", 1, "build", 1),
        failed(1_600, "load", 1, "upload", 7),
        Event::JobState(JobChange {
            reason: Some("retry in 1s".to_owned()),
            ..JobChange::new(at(1_601), "load", JobState::Queued, 2)
        }),
        Event::JobState(JobChange {
            reason: Some("needs failed".to_owned()),
            ..JobChange::new(at(1_602), "report[format=csv]", JobState::Skipped, 0)
        }),
        state(2_601, "load", JobState::Running, 2),
        step(2_602, "load", "upload", 0),
        out(2_700, "load", "upload", "uploaded\ttab kept"),
        state(2_900, "load", JobState::Succeeded, 2),
        Event::RunFinished {
            ts: at(3_000),
            run_id: RunId(42),
            state: RunState::Failed,
            duration: Duration::from_secs(3),
            jobs: vec![
                summary("extract", JobState::Succeeded, 1, Some(1_198), Some(0)),
                summary("transform", JobState::Failed, 1, Some(299), Some(1)),
                summary("load", JobState::Succeeded, 2, Some(299), Some(0)),
                JobSummary {
                    reason: Some("needs failed".to_owned()),
                    ..summary("report[format=csv]", JobState::Skipped, 0, None, None)
                },
            ],
        },
    ]
}
