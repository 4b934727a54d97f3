//! Plain progress: timestamped lines without any control character, for pipes, log files
//! and CI; with GitHub Actions folding when `GITHUB_ACTIONS` is set.
//!
//! The format of each line comes from [`format`](mod@crate::ui::format):
//!
//! ```text
//! 12:00:00.000 run 42 started: etl, 3 jobs, 2 workers
//! 12:00:00.010 build: running
//! 12:00:00.011 build/compile: started
//! 12:00:00.350 build/compile | cc -c main.c
//! 12:00:01.200 build: failed (exit 1, step "compile", 1.2s)
//!
//! JOB    STATE   ATTEMPTS  DURATION  EXIT  NOTE
//! build  failed  1         1.2s      1     step "compile"
//! run 42 failed in 1.3s: 1 failed
//! ```
//!
//! Timestamps are local time (UTC with [`PlainReporter::with_utc`]). With `--quiet` only
//! `failed` and `timed_out` state lines and the final result line are printed.
//!
//! In GitHub Actions mode, state lines still appear as they happen, while a job's step lines
//! (`started` and output) are held back and printed as one `::group::JOB` … `::endgroup::`
//! just before the line of the state that ends the attempt. A job without output gets no
//! group. After the summary, each job that ended `failed` or `timed_out` gets an `::error`
//! annotation naming it and its failing step; annotations wait for the end of the run so a
//! failed attempt that a retry repaired does not raise one.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, FixedOffset, Local, Offset, Utc};

use crate::state::JobState;
use crate::ui::error::Error;
use crate::ui::events::{Event, JobChange, Reporter, Stream};
use crate::ui::format::{self, Paint};
use crate::ui::github::{self, GroupBuffer, JobGroups};
use crate::ui::options::UiOptions;
use crate::ui::sink::Sink;

/// Writes plain lines (see the module documentation).
pub struct PlainReporter {
    sink: Sink,
    quiet: bool,
    utc: bool,
    /// The local offset and when it was looked up.
    offset: std::cell::Cell<Option<(DateTime<Utc>, FixedOffset)>>,
    /// Some in GitHub Actions mode.
    groups: Option<JobGroups>,
    /// When each job's current attempt started running, to measure it if the event does not.
    running_since: HashMap<String, DateTime<Utc>>,
    /// The step at which each job's last attempt failed or timed out.
    failed_steps: HashMap<String, String>,
}

impl PlainReporter {
    /// A reporter writing to `out`, quiet and GitHub-folding as `options` say.
    #[must_use]
    pub fn new(out: Box<dyn Write + Send>, options: &UiOptions) -> Self {
        PlainReporter {
            sink: Sink::new(out),
            quiet: options.quiet,
            utc: false,
            offset: std::cell::Cell::new(None),
            groups: options.github_actions.then(JobGroups::new),
            running_since: HashMap::new(),
            failed_steps: HashMap::new(),
        }
    }

    /// Prints timestamps in UTC instead of local time.
    #[must_use]
    pub fn with_utc(mut self) -> Self {
        self.utc = true;
        self
    }

    /// `ts` in the zone lines are printed in.
    fn zoned(&self, ts: DateTime<Utc>) -> DateTime<FixedOffset> {
        if self.utc {
            ts.fixed_offset()
        } else {
            // Looking the local offset up costs more than formatting a line: keep it for a
            // minute (a DST change shows up within that minute).
            let mut cached = self.offset.get();
            if cached.is_none_or(|(at, _)| (ts - at).num_seconds().abs() >= 60) {
                let offset = ts.with_timezone(&Local).offset().fix();
                cached = Some((ts, offset));
                self.offset.set(cached);
            }
            let offset = cached.map_or_else(|| ts.with_timezone(&Local).offset().fix(), |(_, o)| o);
            ts.with_timezone(&offset)
        }
    }

    /// Prints a job's held-back group, if it has one.
    fn flush_group(&mut self, job: &str) {
        if let Some(group) = self.groups.as_mut().and_then(|groups| groups.close(job)) {
            self.write_group(job, group);
        }
    }

    /// Prints every held-back group, at the end of the run.
    fn flush_all_groups(&mut self) {
        let open = self
            .groups
            .as_mut()
            .map(JobGroups::close_all)
            .unwrap_or_default();
        for (job, group) in open {
            self.write_group(&job, group);
        }
    }

    /// Prints one group at once; an empty one is left out.
    fn write_group(&mut self, job: &str, group: GroupBuffer) {
        if group.is_empty() {
            return;
        }
        let start = github::group_start(job, group.attempt);
        self.sink.write_with(|out| {
            writeln!(out, "{start}")?;
            group.write_to(out)?;
            writeln!(out, "{}", github::GROUP_END)
        });
    }

    /// Prints a step line now, or holds it in its job's group.
    fn step_line(&mut self, job: &str, line: &str) {
        match &mut self.groups {
            Some(groups) => groups.push(job, line),
            None => self.sink.buffered_line(line),
        }
    }

    fn job_state(&mut self, change: &JobChange) {
        let job = change.job.as_str();
        let measured = if change.state == JobState::Running {
            self.running_since.insert(job.to_owned(), change.ts);
            self.failed_steps.remove(job);
            // Lines held for an attempt that never reported its end still get printed.
            self.flush_group(job);
            if let Some(groups) = &mut self.groups {
                groups.open(job, change.attempt);
            }
            None
        } else {
            self.flush_group(job);
            let since = self.running_since.remove(job);
            since.and_then(|since| (change.ts - since).to_std().ok())
        };
        if let (JobState::Failed | JobState::TimedOut, Some(step)) = (change.state, &change.step) {
            self.failed_steps.insert(job.to_owned(), step.clone());
        }
        if self.quiet && !matches!(change.state, JobState::Failed | JobState::TimedOut) {
            return;
        }
        let line = format::job_state_line(&self.zoned(change.ts), change, measured);
        self.sink.line(&line);
    }
}

impl Reporter for PlainReporter {
    fn event(&mut self, ev: &Event) {
        match ev {
            Event::RunStarted {
                ts,
                run_id,
                workflow,
                jobs,
                workers,
            } => {
                if !self.quiet {
                    let line = format::run_started_line(
                        &self.zoned(*ts),
                        *run_id,
                        workflow,
                        *jobs,
                        *workers,
                    );
                    self.sink.line(&line);
                }
            }
            Event::ChildRun {
                ts,
                job,
                run_id,
                workflow,
                jobs,
            } => {
                if !self.quiet {
                    let line =
                        format::child_run_line(&self.zoned(*ts), job, *run_id, workflow, *jobs);
                    self.sink.line(&line);
                }
            }
            Event::JobState(change) => self.job_state(change),
            Event::StepStarted { ts, job, step, .. } => {
                if !self.quiet {
                    let line = format::step_started_line(&self.zoned(*ts), job, step);
                    self.step_line(job, &line);
                }
            }
            Event::Output {
                ts,
                job,
                step,
                line,
                ..
            } => {
                if !self.quiet {
                    let line = format::output_line(&self.zoned(*ts), job, step, line);
                    self.step_line(job, &line);
                }
            }
            Event::RunFinished {
                run_id,
                state,
                duration,
                jobs,
                ..
            } => {
                self.flush_all_groups();
                if !self.quiet {
                    let table = format::summary_table(jobs, &self.failed_steps, Paint::none());
                    self.sink.write(&format!("\n{table}"));
                }
                self.sink.line(&format::run_result_line(
                    *run_id,
                    *state,
                    *duration,
                    jobs,
                    Paint::none(),
                ));
                if self.groups.is_some() {
                    for job in jobs {
                        let step = self.failed_steps.get(&job.name).map(String::as_str);
                        if let Some(annotation) = github::error_annotation(
                            &job.name,
                            job.state,
                            step,
                            job.exit_code,
                            job.attempts,
                        ) {
                            self.sink.line(&annotation);
                        }
                    }
                }
            }
        }
    }

    fn output(&mut self, ts: DateTime<Utc>, job: &str, step: &str, stream: Stream, line: &[u8]) {
        if self.quiet {
            return;
        }
        if self.groups.is_some() {
            let text = String::from_utf8_lossy(line);
            let line = format::output_line(&self.zoned(ts), job, step, &text);
            self.step_line(job, &line);
            return;
        }
        let _ = stream;
        // The hot path of a chatty step: no allocation unless the line needs cleaning.
        let clock = format::clock_bytes(&self.zoned(ts));
        let text = match std::str::from_utf8(line) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        let text = format::sanitize(&text);
        let job = format::sanitize(job);
        let step = format::sanitize(step);
        let sep: &[u8] = if text.is_empty() { b" |" } else { b" | " };
        self.sink.buffered_parts(&[
            &clock,
            b" ",
            job.as_bytes(),
            b"/",
            step.as_bytes(),
            sep,
            text.as_bytes(),
        ]);
    }

    fn tick(&mut self) {
        self.sink.flush();
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.flush_all_groups();
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::PlainReporter;
    use crate::state::JobState;
    use crate::ui::events::{Event, Reporter};
    use crate::ui::fixtures::{Failing, Shared, out, scripted_run, state};
    use crate::ui::options::UiOptions;

    fn run(events: &[Event], options: &UiOptions) -> String {
        let shared = Shared::default();
        let mut reporter = PlainReporter::new(Box::new(shared.clone()), options).with_utc();
        for ev in events {
            reporter.event(ev);
        }
        reporter.finish().unwrap();
        shared.text()
    }

    #[test]
    fn plain_run() {
        insta::assert_snapshot!(run(&scripted_run(), &UiOptions::default()), @r#"
        12:00:00.000 run 42 started: etl, 4 jobs, 2 workers
        12:00:00.001 extract: queued
        12:00:00.002 extract: running
        12:00:00.003 extract/download: started
        12:00:00.100 extract/download | fetched 120 rows
        12:00:01.200 extract: succeeded (1.1s)
        12:00:01.201 transform: running
        12:00:01.202 load: running
        12:00:01.203 transform/build: started
        12:00:01.204 load/upload: started
        12:00:01.300 transform/build | error: missing column
        12:00:01.301 load/upload | flaky network
        12:00:01.500 transform: failed (exit 1, step "build", 0.2s)
        12:00:01.600 load: failed (exit 7, step "upload", 0.3s)
        12:00:01.601 load: queued (attempt 2, retry in 1s)
        12:00:01.602 report[format=csv]: skipped (needs failed)
        12:00:02.601 load: running (attempt 2)
        12:00:02.602 load/upload: started
        12:00:02.700 load/upload | uploaded	tab kept
        12:00:02.900 load: succeeded (attempt 2, 0.2s)

        JOB                 STATE      ATTEMPTS  DURATION  EXIT  NOTE
        extract             succeeded  1         1.1s      0
        transform           failed     1         0.2s      1     step "build"
        load                succeeded  2         0.2s      0
        report[format=csv]  skipped    0         -         -     needs failed
        run 42 failed in 3.0s: 2 succeeded, 1 failed, 1 skipped
        "#);
    }

    #[test]
    fn plain_output_has_no_control_characters() {
        let mut events = scripted_run();
        events.insert(
            5,
            out(
                150,
                "extract\u{1b}[2J",
                "dl\r",
                "\u{1b}]0;evil\u{7}\u{1b}[1mbold\u{8}\u{0}\u{1b}",
            ),
        );
        for options in [
            UiOptions::default(),
            UiOptions {
                github_actions: true,
                ..UiOptions::default()
            },
            UiOptions {
                quiet: true,
                ..UiOptions::default()
            },
        ] {
            let text = run(&events, &options);
            let bad: Vec<u8> = text
                .bytes()
                .filter(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
                .collect();
            assert!(bad.is_empty(), "control bytes {bad:?} in\n{text}");
            assert!(!text.contains('\u{9b}'));
        }
    }

    #[test]
    fn quiet_shows_failures_and_result_only() {
        let options = UiOptions {
            quiet: true,
            ..UiOptions::default()
        };
        insta::assert_snapshot!(run(&scripted_run(), &options), @r#"
        12:00:01.500 transform: failed (exit 1, step "build", 0.2s)
        12:00:01.600 load: failed (exit 7, step "upload", 0.3s)
        run 42 failed in 3.0s: 2 succeeded, 1 failed, 1 skipped
        "#);
    }

    #[test]
    fn github_actions_groups_interleaved_jobs() {
        let options = UiOptions {
            github_actions: true,
            ..UiOptions::default()
        };
        insta::assert_snapshot!(run(&scripted_run(), &options), @r#"
        12:00:00.000 run 42 started: etl, 4 jobs, 2 workers
        12:00:00.001 extract: queued
        12:00:00.002 extract: running
        ::group::extract
        12:00:00.003 extract/download: started
        12:00:00.100 extract/download | fetched 120 rows
        ::endgroup::
        12:00:01.200 extract: succeeded (1.1s)
        12:00:01.201 transform: running
        12:00:01.202 load: running
        ::group::transform
        12:00:01.203 transform/build: started
        12:00:01.300 transform/build | error: missing column
        ::endgroup::
        12:00:01.500 transform: failed (exit 1, step "build", 0.2s)
        ::group::load
        12:00:01.204 load/upload: started
        12:00:01.301 load/upload | flaky network
        ::endgroup::
        12:00:01.600 load: failed (exit 7, step "upload", 0.3s)
        12:00:01.601 load: queued (attempt 2, retry in 1s)
        12:00:01.602 report[format=csv]: skipped (needs failed)
        12:00:02.601 load: running (attempt 2)
        ::group::load (attempt 2)
        12:00:02.602 load/upload: started
        12:00:02.700 load/upload | uploaded	tab kept
        ::endgroup::
        12:00:02.900 load: succeeded (attempt 2, 0.2s)

        JOB                 STATE      ATTEMPTS  DURATION  EXIT  NOTE
        extract             succeeded  1         1.1s      0
        transform           failed     1         0.2s      1     step "build"
        load                succeeded  2         0.2s      0
        report[format=csv]  skipped    0         -         -     needs failed
        run 42 failed in 3.0s: 2 succeeded, 1 failed, 1 skipped
        ::error title=transform failed::job transform failed at step "build" (exit 1)
        "#);
    }

    #[test]
    fn github_groups_left_open_are_flushed_at_finish() {
        let options = UiOptions {
            github_actions: true,
            ..UiOptions::default()
        };
        let events = [
            state(0, "a", JobState::Running, 1),
            out(1, "a", "s", "half done"),
        ];
        insta::assert_snapshot!(run(&events, &options), @r"
        12:00:00.000 a: running
        ::group::a
        12:00:00.001 a/s | half done
        ::endgroup::
        ");
    }

    #[test]
    fn closed_stdout_ends_quietly() {
        let mut reporter = PlainReporter::new(
            Box::new(Failing(io::ErrorKind::BrokenPipe)),
            &UiOptions::default(),
        );
        for ev in scripted_run() {
            reporter.event(&ev);
        }
        assert!(reporter.finish().is_ok());
    }
}
