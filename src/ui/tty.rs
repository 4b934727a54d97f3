//! Live progress on a terminal, drawn with indicatif.
//!
//! Layout: an overall bar (`done/total jobs`, running and failed counts, elapsed time) with one
//! live line per running job under it (spinner, job, current step, elapsed). When a job ends
//! its line disappears and a result line is printed above the bars (`✓ build  1.2s`,
//! `✗ test  failed (exit 1, step "unit")  0.3s`); a failed or timed-out job's last
//! [`TAIL_LINES`] output lines follow its `✗` line. Step output is otherwise not shown. The
//! summary table ends the run.
//!
//! This layer stays thin: every text comes from [`format`](mod@crate::ui::format); this file only
//! decides when to add, change and remove bars.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use console::Term;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::state::JobState;
use crate::ui::error::Error;
use crate::ui::events::{Event, JobChange, JobSummary, Reporter};
use crate::ui::format::{self, Paint};
use crate::ui::options::UiOptions;
use crate::ui::ring::LineRing;

/// How many of a failed job's last output lines are shown under it.
pub const TAIL_LINES: usize = 20;

/// The byte budget of that tail, so a job printing huge lines stays bounded.
const TAIL_BYTES: usize = 16 * 1024;

/// How often spinners and elapsed times are redrawn.
const TICK: Duration = Duration::from_millis(100);

/// A running job's live line.
struct JobLine {
    bar: ProgressBar,
    attempt: u32,
    step: Option<String>,
    since: DateTime<Utc>,
}

/// Draws live bars (see the module documentation).
pub struct TtyReporter {
    multi: MultiProgress,
    paint: Paint,
    overall: Option<ProgressBar>,
    running: HashMap<String, JobLine>,
    tails: HashMap<String, LineRing>,
    states: HashMap<String, JobState>,
    failed_steps: HashMap<String, String>,
    total: usize,
    closed: bool,
}

/// Writes an indicatif duration as [`format::duration`] does, for the `{took}` template key.
fn took(state: &ProgressState, w: &mut dyn fmt::Write) {
    let _ = w.write_str(&format::duration(state.elapsed()));
}

fn overall_style() -> ProgressStyle {
    ProgressStyle::with_template("{bar:30} {msg}  {took}")
        .expect("the template is valid")
        .progress_chars("━╸─")
        .with_key("took", took)
}

fn job_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {msg}  {took}")
        .expect("the template is valid")
        .with_key("took", took)
}

impl TtyReporter {
    /// Live bars on stdout, drawn even if stdout is not a terminal (the caller decided), with
    /// colors as `options` say.
    #[must_use]
    pub fn new(options: &UiOptions) -> Self {
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(Term::buffered_stdout()), 20);
        TtyReporter::with_draw_target(target, Paint::new(options.use_color()))
    }

    /// Live bars on `target`: a hidden one in tests, or a recording [`indicatif::TermLike`].
    #[must_use]
    pub fn with_draw_target(target: ProgressDrawTarget, paint: Paint) -> Self {
        TtyReporter {
            multi: MultiProgress::with_draw_target(target),
            paint,
            overall: None,
            running: HashMap::new(),
            tails: HashMap::new(),
            states: HashMap::new(),
            failed_steps: HashMap::new(),
            total: 0,
            closed: false,
        }
    }

    /// Prints `text` above the bars; a closed terminal is ignored, as everywhere in progress.
    fn println(&self, text: &str) {
        let _ = self.multi.println(text);
    }

    fn update_overall(&mut self) {
        let done = self.states.values().filter(|s| s.is_terminal()).count();
        let running = self
            .states
            .values()
            .filter(|s| **s == JobState::Running)
            .count();
        let failed = self
            .states
            .values()
            .filter(|s| matches!(s, JobState::Failed | JobState::TimedOut))
            .count();
        let total = self.total.max(self.states.len());
        let message = format::overall_message(done, total, running, failed, self.paint);
        if let Some(bar) = &self.overall {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(message);
        } else {
            // Built complete before it is added, so its first frame is already right.
            let bar = ProgressBar::new(total as u64)
                .with_style(overall_style())
                .with_position(done as u64)
                .with_message(message);
            let bar = self.multi.add(bar);
            bar.enable_steady_tick(TICK);
            self.overall = Some(bar);
        }
    }

    fn running_message(&self, job: &str, line: &JobLine) -> String {
        format::running_message(job, line.step.as_deref(), line.attempt, self.paint)
    }

    fn start_job(&mut self, ts: DateTime<Utc>, job: &str, attempt: u32) {
        self.failed_steps.remove(job);
        self.tails.remove(job);
        if let Some(old) = self.running.remove(job) {
            self.drop_bar(&old.bar);
        }
        let bar = self
            .multi
            .add(ProgressBar::new_spinner().with_style(job_style()));
        bar.enable_steady_tick(TICK);
        let line = JobLine {
            bar,
            attempt,
            step: None,
            since: ts,
        };
        line.bar.set_message(self.running_message(job, &line));
        self.running.insert(job.to_owned(), line);
    }

    fn drop_bar(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(bar);
    }

    /// Removes a job's live line, returning how long it ran by the events' clock.
    fn stop_job(&mut self, ts: DateTime<Utc>, job: &str) -> Option<Duration> {
        let line = self.running.remove(job)?;
        self.drop_bar(&line.bar);
        (ts - line.since).to_std().ok()
    }

    fn job_state(&mut self, change: &JobChange) {
        let job = change.job.as_str();
        self.states.insert(job.to_owned(), change.state);
        // Jobs added while the run goes (`for_each` items) count as they appear.
        self.total = self.total.max(self.states.len());
        match change.state {
            JobState::Running => self.start_job(change.ts, job, change.attempt),
            JobState::Pending | JobState::Queued => {
                if let Some(measured) = self.stop_job(change.ts, job) {
                    self.println(&format::requeued_line(change, Some(measured), self.paint));
                }
            }
            JobState::Succeeded
            | JobState::Failed
            | JobState::TimedOut
            | JobState::Cancelled
            | JobState::Skipped => {
                let measured = self.stop_job(change.ts, job);
                let mut text = format::finished_line(change, measured, self.paint);
                let tail = self.tails.remove(job);
                if matches!(change.state, JobState::Failed | JobState::TimedOut) {
                    if let Some(step) = &change.step {
                        self.failed_steps.insert(job.to_owned(), step.clone());
                    }
                    if let Some(tail) = tail {
                        if tail.dropped() > 0 {
                            text.push('\n');
                            text.push_str(&format::tail_dropped_line(tail.dropped(), self.paint));
                        }
                        for line in tail.lines() {
                            text.push('\n');
                            text.push_str(&format::tail_line(line, self.paint));
                        }
                    }
                }
                self.println(&text);
            }
        }
        self.update_overall();
    }

    fn run_finished(&mut self, jobs: &[JobSummary], text: &str) {
        self.clear_bars();
        let table = format::summary_table(jobs, &self.failed_steps, self.paint);
        self.println(&format!("\n{table}{text}"));
    }

    /// Removes every bar; idempotent.
    fn clear_bars(&mut self) {
        for (_, line) in std::mem::take(&mut self.running) {
            self.drop_bar(&line.bar);
        }
        if let Some(bar) = self.overall.take() {
            self.drop_bar(&bar);
        }
    }
}

impl Reporter for TtyReporter {
    fn event(&mut self, ev: &Event) {
        if self.closed {
            return;
        }
        match ev {
            Event::RunStarted { jobs, .. } => {
                self.total = *jobs;
                self.update_overall();
            }
            Event::ChildRun { jobs, .. } => {
                self.total += *jobs;
                self.update_overall();
            }
            Event::JobState(change) => self.job_state(change),
            Event::StepStarted { job, step, .. } => {
                if let Some(mut line) = self.running.remove(job) {
                    line.step = Some(step.clone());
                    line.bar.set_message(self.running_message(job, &line));
                    self.running.insert(job.clone(), line);
                }
            }
            Event::Output { job, line, .. } => {
                self.tails
                    .entry(job.clone())
                    .or_insert_with(|| LineRing::new(TAIL_LINES, TAIL_BYTES))
                    .push(line.clone());
            }
            Event::RunFinished {
                run_id,
                state,
                duration,
                jobs,
                ..
            } => {
                let result = format::run_result_line(*run_id, *state, *duration, jobs, self.paint);
                self.run_finished(jobs, &result);
                self.closed = true;
            }
        }
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.clear_bars();
        self.closed = true;
        Ok(())
    }
}

impl Drop for TtyReporter {
    /// Leaves the terminal clean even if the run ended without [`Reporter::finish`].
    fn drop(&mut self) {
        self.clear_bars();
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use indicatif::{ProgressDrawTarget, TermLike};

    use super::TtyReporter;
    use crate::ui::events::Reporter;
    use crate::ui::fixtures::scripted_run;
    use crate::ui::format::Paint;

    #[test]
    fn hidden_smoke_test() {
        let mut reporter =
            TtyReporter::with_draw_target(ProgressDrawTarget::hidden(), Paint::new(true));
        let events = scripted_run();
        for ev in &events[..10] {
            reporter.event(ev);
        }
        assert_eq!(reporter.running.len(), 2, "transform and load run");
        let overall = reporter.overall.as_ref().unwrap();
        assert_eq!((overall.position(), overall.length()), (1, Some(4)));
        for ev in &events[10..] {
            reporter.event(ev);
        }
        assert!(reporter.running.is_empty());
        assert!(reporter.overall.is_none());
        reporter.finish().unwrap();
    }

    /// A terminal that records what is written to it, without cursor movements.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<String>>);

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            100
        }
        fn height(&self) -> u16 {
            40
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            let mut text = self.0.lock().unwrap();
            text.push_str(s);
            text.push('\n');
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn finished_jobs_and_failure_tails_are_printed() {
        let recorder = Recorder::default();
        let target = ProgressDrawTarget::term_like(Box::new(recorder.clone()));
        let mut reporter = TtyReporter::with_draw_target(target, Paint::none());
        for ev in scripted_run() {
            reporter.event(&ev);
        }
        reporter.finish().unwrap();
        let screen = recorder.0.lock().unwrap().clone();
        // indicatif pads each line to the terminal's width instead of ending it; cut the
        // screen back into lines (every character used here is one column wide).
        let chars: Vec<char> = screen.chars().collect();
        let rows: Vec<String> = chars.chunks(100).map(|row| row.iter().collect()).collect();
        let lines: Vec<&str> = rows.iter().map(|row| row.trim_end()).collect();
        let find = |text: &str| lines.iter().position(|line| line.contains(text));
        for expected in [
            "✓ extract  1.1s",
            "✗ transform  failed (exit 1, step \"build\")  0.2s",
            "    │ error: missing column",
            "✗ load  failed (exit 7, step \"upload\")  0.3s",
            "    │ flaky network",
            "○ report[format=csv]  skipped (needs failed)",
            "✓ load (attempt 2)  0.2s",
            "transform           failed     1         0.2s      1     step \"build\"",
            "run 42 failed in 3.0s: 2 succeeded, 1 failed, 1 skipped",
        ] {
            assert!(
                find(expected).is_some(),
                "{expected:?} missing from\n{screen}"
            );
        }
        let failed = find("✗ transform").unwrap();
        assert_eq!(
            find("│ error: missing column"),
            Some(failed + 1),
            "{screen}"
        );
        assert!(
            !screen.contains("fetched 120 rows"),
            "successful output stays hidden"
        );
    }
}
