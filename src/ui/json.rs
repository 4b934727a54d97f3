//! `--progress json`: one JSON object per event, one per line, for scripts and tests.
//!
//! Every object has `event` (its kind) and `ts` (RFC 3339, UTC, milliseconds:
//! `2026-03-01T12:00:00.123Z`). Field names are stable; optional fields are left out when they
//! have no value; durations are whole milliseconds.
//!
//! - `run_started`: `run_id` (integer), `workflow`, `jobs` (how many), `workers` (how many).
//! - `job_state`: `job`, `state` (`pending`, `queued`, `running`, `succeeded`, `failed`,
//!   `timed_out`, `cancelled`, `skipped`), `attempt` (from 1); when known `reason`,
//!   `exit_code`, `duration_ms`, and `step` (the step that failed or timed out).
//! - `step_started`: `job`, `step`, `index` (the step's position in the job, from 0).
//! - `output`: `job`, `step`, `stream` (`stdout` or `stderr`), `line` (as the step printed it,
//!   escape sequences included, without the line terminator).
//! - `run_finished`: `run_id`, `state` (`succeeded`, `failed`, `cancelled`, …), `duration_ms`,
//!   `jobs`: one object per job, `{name, state, attempts}` and when known `duration_ms`,
//!   `exit_code`, `reason`.
//!
//! ```text
//! {"event":"job_state","ts":"2026-03-01T12:00:01.500Z","job":"build","state":"failed","attempt":1,"exit_code":1,"duration_ms":1200,"step":"compile"}
//! ```
//!
//! `--quiet` does not apply: a script that asked for events gets all of them.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::state::{JobState, RunId, RunState};
use crate::ui::error::Error;
use crate::ui::events::{Event, JobSummary, Reporter};
use crate::ui::sink::Sink;

/// Writes one JSON object per event and line.
pub struct JsonReporter {
    sink: Sink,
}

impl JsonReporter {
    #[must_use]
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonReporter {
            sink: Sink::new(out),
        }
    }
}

/// An event as written; borrowed from [`Event`] so the wire format is declared in one place.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Wire<'a> {
    RunStarted {
        ts: String,
        run_id: RunId,
        workflow: &'a str,
        jobs: usize,
        workers: usize,
    },
    ChildRun {
        ts: String,
        job: &'a str,
        run_id: RunId,
        workflow: &'a str,
        jobs: usize,
    },
    JobState {
        ts: String,
        job: &'a str,
        state: JobState,
        attempt: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<&'a str>,
    },
    StepStarted {
        ts: String,
        job: &'a str,
        step: &'a str,
        index: usize,
    },
    Output {
        ts: String,
        job: &'a str,
        step: &'a str,
        stream: &'static str,
        line: &'a str,
    },
    RunFinished {
        ts: String,
        run_id: RunId,
        state: RunState,
        duration_ms: u64,
        jobs: Vec<WireJob<'a>>,
    },
}

#[derive(Serialize)]
struct WireJob<'a> {
    name: &'a str,
    state: JobState,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

fn ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'a> Wire<'a> {
    fn from_event(ev: &'a Event) -> Self {
        match ev {
            Event::RunStarted {
                ts: at,
                run_id,
                workflow,
                jobs,
                workers,
            } => Wire::RunStarted {
                ts: ts(at),
                run_id: *run_id,
                workflow,
                jobs: *jobs,
                workers: *workers,
            },
            Event::ChildRun {
                ts: at,
                job,
                run_id,
                workflow,
                jobs,
            } => Wire::ChildRun {
                ts: ts(at),
                job,
                run_id: *run_id,
                workflow,
                jobs: *jobs,
            },
            Event::JobState(change) => Wire::JobState {
                ts: ts(&change.ts),
                job: &change.job,
                state: change.state,
                attempt: change.attempt,
                reason: change.reason.as_deref(),
                exit_code: change.exit_code,
                duration_ms: change.duration.map(millis),
                step: change.step.as_deref(),
            },
            Event::StepStarted {
                ts: at,
                job,
                step,
                index,
            } => Wire::StepStarted {
                ts: ts(at),
                job,
                step,
                index: *index,
            },
            Event::Output {
                ts: at,
                job,
                step,
                stream,
                line,
            } => Wire::Output {
                ts: ts(at),
                job,
                step,
                stream: stream.as_str(),
                line,
            },
            Event::RunFinished {
                ts: at,
                run_id,
                state,
                duration,
                jobs,
            } => Wire::RunFinished {
                ts: ts(at),
                run_id: *run_id,
                state: *state,
                duration_ms: millis(*duration),
                jobs: jobs.iter().map(WireJob::from_summary).collect(),
            },
        }
    }
}

impl<'a> WireJob<'a> {
    fn from_summary(job: &'a JobSummary) -> Self {
        WireJob {
            name: &job.name,
            state: job.state,
            attempts: job.attempts,
            duration_ms: job.duration.map(millis),
            exit_code: job.exit_code,
            reason: job.reason.as_deref(),
        }
    }
}

/// The JSON line of one event, without its line feed.
///
/// # Panics
///
/// Never: the wire types hold only strings, numbers and options, which always serialize.
#[must_use]
pub fn event_json(ev: &Event) -> String {
    serde_json::to_string(&Wire::from_event(ev))
        .expect("the wire types hold only strings, numbers and options")
}

impl Reporter for JsonReporter {
    fn event(&mut self, ev: &Event) {
        if matches!(ev, Event::Output { .. }) {
            self.sink.buffered_line(&event_json(ev));
        } else {
            self.sink.line(&event_json(ev));
        }
    }

    fn tick(&mut self) {
        self.sink.flush();
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{JsonReporter, event_json};
    use crate::ui::events::Reporter;
    use crate::ui::fixtures::Shared;
    use crate::ui::fixtures::scripted_run;

    #[test]
    fn every_event_is_one_parseable_line() {
        let shared = Shared::default();
        let mut reporter = JsonReporter::new(Box::new(shared.clone()));
        let events = scripted_run();
        for ev in &events {
            reporter.event(ev);
        }
        reporter.finish().unwrap();
        let text = shared.text();
        let values: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(values.len(), events.len());
        for value in &values {
            assert!(
                value["event"].is_string() && value["ts"].is_string(),
                "{value}"
            );
        }
        let failed = values
            .iter()
            .find(|v| v["event"] == "job_state" && v["state"] == "failed")
            .unwrap();
        assert_eq!(failed["job"], "transform");
        assert_eq!(failed["exit_code"], 1);
        assert_eq!(failed["step"], "build");
        let output = values.iter().find(|v| v["event"] == "output").unwrap();
        assert_eq!(output["stream"], "stdout");
        let colored = values
            .iter()
            .find(|v| v["event"] == "output" && v["job"] == "transform")
            .unwrap();
        assert_eq!(
            colored["line"],
            "\u{1b}[31merror\u{1b}[0m: missing column\r"
        );
    }

    #[test]
    fn event_shapes() {
        let events = scripted_run();
        let picked: Vec<String> = [0, 2, 3, 4, 5, 14, events.len() - 1]
            .into_iter()
            .map(|i| event_json(&events[i]))
            .collect();
        insta::assert_snapshot!(
            picked.join("\n"),
            @r#"
        {"event":"run_started","ts":"2026-03-01T12:00:00.000Z","run_id":42,"workflow":"etl","jobs":4,"workers":2}
        {"event":"job_state","ts":"2026-03-01T12:00:00.002Z","job":"extract","state":"running","attempt":1}
        {"event":"step_started","ts":"2026-03-01T12:00:00.003Z","job":"extract","step":"download","index":0}
        {"event":"output","ts":"2026-03-01T12:00:00.100Z","job":"extract","step":"download","stream":"stdout","line":"fetched 120 rows"}
        {"event":"job_state","ts":"2026-03-01T12:00:01.200Z","job":"extract","state":"succeeded","attempt":1,"exit_code":0,"duration_ms":1198}
        {"event":"job_state","ts":"2026-03-01T12:00:01.601Z","job":"load","state":"queued","attempt":2,"reason":"retry in 1s"}
        {"event":"run_finished","ts":"2026-03-01T12:00:03.000Z","run_id":42,"state":"failed","duration_ms":3000,"jobs":[{"name":"extract","state":"succeeded","attempts":1,"duration_ms":1198,"exit_code":0},{"name":"transform","state":"failed","attempts":1,"duration_ms":299,"exit_code":1},{"name":"load","state":"succeeded","attempts":2,"duration_ms":299,"exit_code":0},{"name":"report[format=csv]","state":"skipped","attempts":0,"reason":"needs failed"}]}
        "#
        );
    }
}
