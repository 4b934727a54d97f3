//! The text of progress output: pure functions from event data to strings.
//!
//! Every line that plain, GitHub Actions and live (TTY) output print is built here, so it can
//! be snapshot-tested without a terminal, a clock or a writer. Nothing here reads the time or
//! the environment: timestamps and durations come from the events, colors from a [`Paint`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::time::Duration;

use chrono::{DateTime, TimeZone};
use console::Style;

use crate::state::{JobState, RunId, RunState};
use crate::ui::events::{JobChange, JobSummary};

/// Colors for live output, or none.
///
/// Styling is forced when enabled, so the result depends only on this value and not on
/// console's global detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    enabled: bool,
}

impl Paint {
    #[must_use]
    pub fn new(enabled: bool) -> Self {
        Paint { enabled }
    }

    /// No colors at all.
    #[must_use]
    pub fn none() -> Self {
        Paint { enabled: false }
    }

    #[must_use]
    pub fn is_enabled(self) -> bool {
        self.enabled
    }

    fn apply(self, style: Style, text: &str) -> String {
        if self.enabled {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text.to_owned()
        }
    }

    #[must_use]
    pub fn bold(self, text: &str) -> String {
        self.apply(Style::new().bold(), text)
    }

    #[must_use]
    pub fn dim(self, text: &str) -> String {
        self.apply(Style::new().dim(), text)
    }

    /// Colors `text` as `state` is shown: green for success, red for failure, yellow for
    /// cancelled, dim for skipped, cyan while running.
    #[must_use]
    pub fn state(self, state: JobState, text: &str) -> String {
        let style = match state {
            JobState::Succeeded => Style::new().green(),
            JobState::Failed | JobState::TimedOut => Style::new().red().bold(),
            JobState::Cancelled => Style::new().yellow(),
            JobState::Skipped | JobState::Pending | JobState::Queued => Style::new().dim(),
            JobState::Running => Style::new().cyan(),
        };
        self.apply(style, text)
    }

    /// Colors `text` as the run's final `state` is shown.
    #[must_use]
    pub fn run_state(self, state: RunState, text: &str) -> String {
        let job_state = match state {
            RunState::Succeeded => JobState::Succeeded,
            RunState::Failed => JobState::Failed,
            RunState::Cancelled => JobState::Cancelled,
            RunState::Skipped => JobState::Skipped,
            RunState::Queued => JobState::Queued,
            RunState::Running => JobState::Running,
        };
        self.state(job_state, text)
    }
}

/// A duration as people read it: `0.3s`, `12.0s`, `2m03s`, `1h05m00s`.
///
/// Below a minute it shows tenths of a second, truncated (so `59.99s` never reads `60.0s`).
#[must_use]
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}.{}s", d.subsec_millis() / 100)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

/// The time of day with milliseconds, `HH:MM:SS.mmm`, in the time zone of `ts`.
#[must_use]
pub fn clock<Tz: TimeZone>(ts: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    // Written by hand: this runs once per output line, and strftime parsing showed up in
    // profiles of chatty steps.
    String::from_utf8_lossy(&clock_bytes(ts)).into_owned()
}

/// `HH:MM:SS.mmm` as bytes, without allocating.
#[must_use]
pub fn clock_bytes<Tz: TimeZone>(ts: &DateTime<Tz>) -> [u8; 12] {
    use chrono::Timelike;
    let digit = |n: u32| b'0' + u8::try_from(n % 10).unwrap_or(0);
    let (h, m, s) = (ts.hour(), ts.minute(), ts.second());
    let ms = ts.timestamp_subsec_millis().min(999);
    [
        digit(h / 10),
        digit(h),
        b':',
        digit(m / 10),
        digit(m),
        b':',
        digit(s / 10),
        digit(s),
        b'.',
        digit(ms / 100),
        digit(ms / 10),
        digit(ms),
    ]
}

/// `text` without escape sequences and control characters, as a terminal would have shown it.
///
/// ANSI escape sequences (CSI, OSC, DCS and two-byte escapes) are removed; a carriage return
/// moves back to the start of the line and what follows overwrites it, as progress bars in
/// step output expect (a trailing `\r` of a CRLF line thus changes nothing); a backspace moves
/// back one character; a line feed becomes a space; tabs stay; every other C0 or C1 control
/// character and DEL is dropped.
#[must_use]
pub fn sanitize(text: &str) -> Cow<'_, str> {
    // C0 controls and DEL are single bytes; C1 controls are encoded as 0xC2 0x80..=0x9F, so
    // a byte scan for those finds every control character.
    // A fold rather than `any` so the scan vectorises: most lines have nothing to clean.
    let has_control = text.bytes().fold(false, |found, b| {
        found | ((b < 0x20 && b != b'\t') || b == 0x7f || b == 0xc2)
    });
    if !has_control || !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut cells: Vec<char> = Vec::with_capacity(text.len());
    let mut cursor: usize = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                Some(' '..='/') => {
                    // nF escapes such as `ESC ( B`: intermediates, then one final byte.
                    while chars.next_if(|c| matches!(c, ' '..='/')).is_some() {}
                    chars.next();
                }
                Some(_) | None => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\r' => cursor = 0,
            '\u{8}' => cursor = cursor.saturating_sub(1),
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => {
                let c = if c == '\n' { ' ' } else { c };
                if cursor < cells.len() {
                    cells[cursor] = c;
                } else {
                    cells.push(c);
                }
                cursor += 1;
            }
        }
    }
    Cow::Owned(cells.into_iter().collect())
}

/// Skips a CSI sequence's parameter and intermediate bytes and its final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars
        .next_if(|c| matches!(c, '0'..='?' | ' '..='/'))
        .is_some()
    {}
    chars.next_if(|c| matches!(c, '@'..='~'));
}

/// Skips an OSC, DCS, SOS, PM or APC string up to its terminator (BEL, `ESC \` or ST).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}

/// The name of a job state in plain output and JSON (`timed_out`).
#[must_use]
pub fn state_name(state: JobState) -> &'static str {
    state.as_str()
}

/// The name of a job state in live output (`timed out`).
#[must_use]
pub fn state_label(state: JobState) -> &'static str {
    match state {
        JobState::TimedOut => "timed out",
        state => state.as_str(),
    }
}

/// The symbol in front of a job in live output.
#[must_use]
pub fn state_symbol(state: JobState) -> &'static str {
    match state {
        JobState::Succeeded => "✓",
        JobState::Failed | JobState::TimedOut => "✗",
        JobState::Cancelled => "⊘",
        JobState::Skipped => "○",
        JobState::Pending | JobState::Queued => "·",
        JobState::Running => "▸",
    }
}

/// `exit 1` (not for a success), `step "build"`, `attempt 2` (only above 1), the reason, in
/// that order.
fn details(change: &JobChange) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(code) = change
        .exit_code
        .filter(|_| change.state != JobState::Succeeded)
    {
        parts.push(format!("exit {code}"));
    }
    if let Some(step) = &change.step {
        parts.push(format!("step \"{}\"", sanitize(step)));
    }
    if change.attempt > 1 {
        parts.push(format!("attempt {}", change.attempt));
    }
    if let Some(reason) = &change.reason {
        parts.push(sanitize(reason).into_owned());
    }
    parts
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `12:00:00.000 run 42 started: etl, 3 jobs, 2 workers`.
#[must_use]
pub fn run_started_line<Tz: TimeZone>(
    ts: &DateTime<Tz>,
    run_id: RunId,
    workflow: &str,
    jobs: usize,
    workers: usize,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!(
        "{} run {run_id} started: {}, {}, {}",
        clock(ts),
        sanitize(workflow),
        plural(jobs, "job", "jobs"),
        plural(workers, "worker", "workers"),
    )
}

/// `12:00:01.200 ingest: child run 43 started: ingest-shard, 10 jobs`.
#[must_use]
pub fn child_run_line<Tz: TimeZone>(
    ts: &DateTime<Tz>,
    job: &str,
    run_id: RunId,
    workflow: &str,
    jobs: usize,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!(
        "{} {}: child run {run_id} started: {}, {}",
        clock(ts),
        sanitize(job),
        sanitize(workflow),
        plural(jobs, "job", "jobs"),
    )
}

/// `12:00:01.200 build: failed (exit 1, step "compile", 1.2s)`: one plain line per state change.
///
/// In parentheses, when known: the exit code, the failing step, the attempt when above 1, the
/// reason, and the duration (the change's own, else `measured`). `ts` is the change's time in
/// the zone the line is printed in.
#[must_use]
pub fn job_state_line<Tz: TimeZone>(
    ts: &DateTime<Tz>,
    change: &JobChange,
    measured: Option<Duration>,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut parts = details(change);
    if let Some(d) = change.duration.or(measured) {
        parts.push(duration(d));
    }
    let mut line = format!(
        "{} {}: {}",
        clock(ts),
        sanitize(&change.job),
        state_name(change.state)
    );
    if !parts.is_empty() {
        let _ = write!(line, " ({})", parts.join(", "));
    }
    line
}

/// `12:00:00.100 build/compile | the line`: one line of step output, sanitized.
#[must_use]
pub fn output_line<Tz: TimeZone>(ts: &DateTime<Tz>, job: &str, step: &str, line: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let text = sanitize(line);
    let mut out = format!("{} {}/{} |", clock(ts), sanitize(job), sanitize(step));
    if !text.is_empty() {
        out.push(' ');
        out.push_str(&text);
    }
    out
}

/// `12:00:00.100 build/compile: started`: a step of a job started.
#[must_use]
pub fn step_started_line<Tz: TimeZone>(ts: &DateTime<Tz>, job: &str, step: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!(
        "{} {}/{}: started",
        clock(ts),
        sanitize(job),
        sanitize(step)
    )
}

/// The per-state counts of a run's jobs: `2 succeeded, 1 failed, 1 skipped`.
#[must_use]
pub fn state_counts(jobs: &[JobSummary]) -> String {
    let order = [
        JobState::Succeeded,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
        JobState::Skipped,
        JobState::Running,
        JobState::Queued,
        JobState::Pending,
    ];
    let counts: Vec<String> = order
        .into_iter()
        .filter_map(|state| {
            let n = jobs.iter().filter(|job| job.state == state).count();
            (n > 0).then(|| format!("{n} {}", state_name(state)))
        })
        .collect();
    if counts.is_empty() {
        "no jobs".to_owned()
    } else {
        counts.join(", ")
    }
}

/// `run 42 failed in 3.5s: 2 succeeded, 1 failed`: the last line of a run's output.
#[must_use]
pub fn run_result_line(
    run_id: RunId,
    state: RunState,
    elapsed: Duration,
    jobs: &[JobSummary],
    paint: Paint,
) -> String {
    format!(
        "run {run_id} {} in {}: {}",
        paint.run_state(state, state.as_str()),
        duration(elapsed),
        state_counts(jobs)
    )
}

/// The summary table printed when a run ends, one row per job, with a trailing newline.
///
/// Columns: `JOB`, `STATE`, `ATTEMPTS`, `DURATION` (`-` if the job never ran), `EXIT` (`-`
/// without an exit code) and `NOTE` (the failing step, from `failed_steps`, and the reason).
/// Columns are separated by two spaces; lines carry no trailing spaces.
#[must_use]
pub fn summary_table<S: BuildHasher>(
    jobs: &[JobSummary],
    failed_steps: &HashMap<String, String, S>,
    paint: Paint,
) -> String {
    let header = ["JOB", "STATE", "ATTEMPTS", "DURATION", "EXIT", "NOTE"].map(str::to_owned);
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|job| {
            let mut note = Vec::new();
            if let Some(step) = failed_steps.get(&job.name) {
                note.push(format!("step \"{}\"", sanitize(step)));
            }
            if let Some(reason) = &job.reason {
                note.push(sanitize(reason).into_owned());
            }
            [
                sanitize(&job.name).into_owned(),
                state_name(job.state).to_owned(),
                job.attempts.to_string(),
                job.duration.map_or_else(|| "-".to_owned(), duration),
                job.exit_code
                    .map_or_else(|| "-".to_owned(), |code| code.to_string()),
                note.join(", "),
            ]
        })
        .collect();
    let mut widths = [0; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(console::measure_text_width(cell));
        }
    }
    let mut out = String::new();
    let mut push_row = |row: &[String; 6], state: Option<JobState>| {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - console::measure_text_width(cell);
            let text = match (i, state) {
                (0 | 1, None) => paint.bold(cell),
                (1, Some(state)) => paint.state(state, cell),
                _ => cell.clone(),
            };
            line.push_str(&text);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&header, None);
    for (row, job) in rows.iter().zip(jobs) {
        push_row(row, Some(job.state));
    }
    out
}

/// `✓ build  1.2s`, `✓ build (attempt 2)  1.2s` or `✗ test  failed (exit 1, step "unit")  0.3s`:
/// a finished job in live output, printed above the bars. The duration is the change's own,
/// else `measured`.
#[must_use]
pub fn finished_line(change: &JobChange, measured: Option<Duration>, paint: Paint) -> String {
    let symbol = paint.state(change.state, state_symbol(change.state));
    let mut line = format!("{symbol} {}", paint.bold(&sanitize(&change.job)));
    if change.state == JobState::Succeeded && change.attempt > 1 {
        let _ = write!(
            line,
            " {}",
            paint.dim(&format!("(attempt {})", change.attempt))
        );
    } else if change.state != JobState::Succeeded {
        let parts = details(change);
        let mut label = state_label(change.state).to_owned();
        if !parts.is_empty() {
            let _ = write!(label, " ({})", parts.join(", "));
        }
        line.push_str("  ");
        line.push_str(&paint.state(change.state, &label));
    }
    if let Some(d) = change.duration.or(measured) {
        line.push_str("  ");
        line.push_str(&paint.dim(&duration(d)));
    }
    line
}

/// `↻ build  requeued (retry in 2s)  0.3s`: a running job that went back to its queue for
/// another attempt, in live output. The duration is the change's own, else `measured`.
#[must_use]
pub fn requeued_line(change: &JobChange, measured: Option<Duration>, paint: Paint) -> String {
    let mut label = "requeued".to_owned();
    if let Some(reason) = &change.reason {
        let _ = write!(label, " ({})", sanitize(reason));
    }
    let mut line = format!(
        "{} {}  {}",
        paint.dim("↻"),
        paint.bold(&sanitize(&change.job)),
        label
    );
    if let Some(d) = change.duration.or(measured) {
        line.push_str("  ");
        line.push_str(&paint.dim(&duration(d)));
    }
    line
}

/// `    │ text`: one of a failed job's last output lines, under its `✗` line.
#[must_use]
pub fn tail_line(line: &str, paint: Paint) -> String {
    let text = sanitize(line);
    if text.is_empty() {
        format!("    {}", paint.dim("│"))
    } else {
        format!("    {} {text}", paint.dim("│"))
    }
}

/// `    │ … 12 earlier lines`: how many output lines a tail left out.
#[must_use]
pub fn tail_dropped_line(dropped: u64, paint: Paint) -> String {
    let noun = if dropped == 1 { "line" } else { "lines" };
    format!(
        "    {} {}",
        paint.dim("│"),
        paint.dim(&format!("… {dropped} earlier {noun}"))
    )
}

/// `3/10 jobs · 2 running · 1 failed`: the message beside the overall bar.
#[must_use]
pub fn overall_message(
    done: usize,
    total: usize,
    running: usize,
    failed: usize,
    paint: Paint,
) -> String {
    let mut msg = format!("{done}/{total} jobs");
    if running > 0 {
        let _ = write!(msg, " · {running} running");
    }
    if failed > 0 {
        let _ = write!(
            msg,
            " · {}",
            paint.state(JobState::Failed, &format!("{failed} failed"))
        );
    }
    msg
}

/// `build › compile (attempt 2)`: the text of a running job's live line.
#[must_use]
pub fn running_message(job: &str, step: Option<&str>, attempt: u32, paint: Paint) -> String {
    let mut msg = paint.bold(&sanitize(job));
    if let Some(step) = step {
        let _ = write!(msg, " {} {}", paint.dim("›"), sanitize(step));
    }
    if attempt > 1 {
        let _ = write!(msg, " {}", paint.dim(&format!("(attempt {attempt})")));
    }
    msg
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::{
        Paint, duration, finished_line, job_state_line, output_line, overall_message,
        run_result_line, run_started_line, running_message, sanitize, summary_table, tail_line,
    };
    use crate::state::{JobState, RunId, RunState};
    use crate::ui::events::{JobChange, JobSummary};

    fn change(job: &str, state: JobState) -> JobChange {
        let ts = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        JobChange::new(ts, job, state, 1)
    }

    #[test]
    fn durations_read_well() {
        let cases = [
            (Duration::ZERO, "0.0s"),
            (Duration::from_millis(340), "0.3s"),
            (Duration::from_millis(1_250), "1.2s"),
            (Duration::from_millis(59_999), "59.9s"),
            (Duration::from_secs(61), "1m01s"),
            (Duration::from_secs(123), "2m03s"),
            (Duration::from_secs(3_599), "59m59s"),
            (Duration::from_secs(3_901), "1h05m01s"),
            (Duration::from_secs(100 * 3_600 + 1), "100h00m01s"),
        ];
        for (d, text) in cases {
            assert_eq!(duration(d), text, "{d:?}");
        }
    }

    #[test]
    fn sanitize_strips_escapes_and_controls() {
        assert_eq!(sanitize("plain\ttext"), "plain\ttext");
        assert!(matches!(sanitize("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(sanitize("\u{1b}[1;31merror\u{1b}[0m: boom"), "error: boom");
        assert_eq!(sanitize("50%\r100%"), "100%");
        assert_eq!(sanitize("abcdef\rXY"), "XYcdef");
        assert_eq!(sanitize("crlf\r"), "crlf");
        assert_eq!(sanitize("ab\u{8}c"), "ac");
        assert_eq!(sanitize("bell\u{7} nul\0 del\u{7f}"), "bell nul del");
        assert_eq!(sanitize("\u{1b}]0;title\u{7}after"), "after");
        assert_eq!(
            sanitize("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\"),
            "link"
        );
        assert_eq!(sanitize("\u{1b}(Bok\u{1b}7"), "ok");
        assert_eq!(sanitize("c1\u{9b}32mgreen\u{85}"), "c1green");
        assert_eq!(sanitize("two\nlines"), "two lines");
        assert_eq!(sanitize("trailing escape \u{1b}"), "trailing escape ");
    }

    #[test]
    fn plain_lines() {
        let ts = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 1).unwrap()
            + chrono::Duration::milliseconds(234);
        let mut failed = change("build", JobState::Failed);
        failed.exit_code = Some(1);
        failed.step = Some("compile".to_owned());
        failed.duration = Some(Duration::from_millis(1_234));
        let mut retry = change("build", JobState::Running);
        retry.attempt = 2;
        let mut skipped = change("report[format=csv]", JobState::Skipped);
        skipped.reason = Some("needs failed".to_owned());
        let lines = [
            run_started_line(&ts, RunId(42), "etl", 3, 1),
            job_state_line(&ts, &change("build", JobState::Running), None),
            job_state_line(&ts, &retry, None),
            job_state_line(&ts, &failed, None),
            job_state_line(&ts, &skipped, None),
            output_line(&ts, "build", "compile", "\u{1b}[32mok\u{1b}[0m"),
            output_line(&ts, "build", "compile", ""),
        ];
        insta::assert_snapshot!(lines.join("\n"), @r#"
        12:00:01.234 run 42 started: etl, 3 jobs, 1 worker
        12:00:01.234 build: running
        12:00:01.234 build: running (attempt 2)
        12:00:01.234 build: failed (exit 1, step "compile", 1.2s)
        12:00:01.234 report[format=csv]: skipped (needs failed)
        12:00:01.234 build/compile | ok
        12:00:01.234 build/compile |
        "#);
    }

    fn summaries() -> Vec<JobSummary> {
        let job =
            |name: &str, state, attempts, ms: Option<u64>, exit_code, reason: Option<&str>| {
                JobSummary {
                    name: name.to_owned(),
                    state,
                    attempts,
                    duration: ms.map(Duration::from_millis),
                    exit_code,
                    reason: reason.map(str::to_owned),
                }
            };
        vec![
            job(
                "extract",
                JobState::Succeeded,
                1,
                Some(1_200),
                Some(0),
                None,
            ),
            job(
                "transform",
                JobState::Failed,
                3,
                Some(123_000),
                Some(2),
                None,
            ),
            job(
                "report[format=csv]",
                JobState::Skipped,
                0,
                None,
                None,
                Some("needs failed"),
            ),
            job("notify", JobState::TimedOut, 1, Some(300_000), None, None),
        ]
    }

    #[test]
    fn summary_table_aligns_columns() {
        let steps = HashMap::from([
            ("transform".to_owned(), "load".to_owned()),
            ("notify".to_owned(), "send".to_owned()),
        ]);
        let jobs = summaries();
        let mut out = summary_table(&jobs, &steps, Paint::none());
        out.push_str(&run_result_line(
            RunId(7),
            RunState::Failed,
            Duration::from_secs(130),
            &jobs,
            Paint::none(),
        ));
        insta::assert_snapshot!(out, @r#"
        JOB                 STATE      ATTEMPTS  DURATION  EXIT  NOTE
        extract             succeeded  1         1.2s      0
        transform           failed     3         2m03s     2     step "load"
        report[format=csv]  skipped    0         -         -     needs failed
        notify              timed_out  1         5m00s     -     step "send"
        run 7 failed in 2m10s: 1 succeeded, 1 failed, 1 timed_out, 1 skipped
        "#);
    }

    #[test]
    fn colored_table_keeps_alignment() {
        let jobs = summaries();
        let plain = summary_table(&jobs, &HashMap::new(), Paint::none());
        let colored = summary_table(&jobs, &HashMap::new(), Paint::new(true));
        assert_ne!(plain, colored);
        assert_eq!(console::strip_ansi_codes(&colored), plain);
    }

    #[test]
    fn live_lines() {
        let mut ok = change("build", JobState::Succeeded);
        ok.duration = Some(Duration::from_millis(1_200));
        let mut failed = change("test", JobState::Failed);
        failed.exit_code = Some(1);
        failed.step = Some("unit".to_owned());
        failed.duration = Some(Duration::from_millis(300));
        let mut skipped = change("deploy", JobState::Skipped);
        skipped.reason = Some("needs failed".to_owned());
        let lines = [
            finished_line(&ok, None, Paint::none()),
            finished_line(&failed, None, Paint::none()),
            tail_line("assertion failed\r", Paint::none()),
            finished_line(&skipped, None, Paint::none()),
            overall_message(3, 10, 2, 1, Paint::none()),
            running_message("build", Some("compile"), 2, Paint::none()),
        ];
        insta::assert_snapshot!(lines.join("\n"), @r#"
        ✓ build  1.2s
        ✗ test  failed (exit 1, step "unit")  0.3s
            │ assertion failed
        ○ deploy  skipped (needs failed)
        3/10 jobs · 2 running · 1 failed
        build › compile (attempt 2)
        "#);
    }
}
