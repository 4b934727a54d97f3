//! `--junit PATH`: a `JUnit` XML report of a run, one testcase per job.
//!
//! The report validates against the Jenkins xUnit plugin's `junit-10.xsd`
//! (`tests/fixtures/junit.xsd`). Its shape:
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <testsuites name="etl" tests="3" failures="1" errors="0" time="3.000">
//!   <testsuite name="etl" tests="3" failures="1" errors="0" skipped="1" time="3.000"
//!              timestamp="2026-03-01T12:00:00.000Z" id="42">
//!     <properties>
//!       <property name="run_id" value="42"/>
//!       <property name="run_state" value="failed"/>
//!     </properties>
//!     <testcase name="extract" classname="etl" time="1.198"/>
//!     <testcase name="transform" classname="etl" time="0.299">
//!       <failure type="failed" message="job transform failed at step &quot;build&quot; (exit 1)">build | error: missing column
//! </failure>
//!     </testcase>
//!     <testcase name="report[format=csv]" classname="etl" time="0.000">
//!       <skipped message="needs failed"/>
//!     </testcase>
//!   </testsuite>
//! </testsuites>
//! ```
//!
//! - `succeeded` → a bare testcase; `failed`, `timed_out` → `<failure type="failed|timed_out">`;
//!   `skipped` → `<skipped>`; `cancelled` → `<error type="cancelled">`, because a cancelled job
//!   did not do its work and a report of a cancelled run must not look green; a job still
//!   `pending`, `queued` or `running` when the report is written (the run was interrupted) →
//!   `<error type="pending|queued|running">`.
//! - The body of `<failure>` and `<error>` is the job's captured output, `step | line`, escape
//!   sequences removed, bounded to its last [`OUTPUT_LIMIT`] bytes (a note says how many lines
//!   were left out); each retry starts with a `--- attempt N ---` line. Succeeded and skipped
//!   jobs carry no output.
//! - A job that failed before it succeeded (a flaky one) keeps a `<flakyFailure>` per failed
//!   attempt; a job whose every attempt failed has its last one as `<failure>` and the
//!   earlier ones as `<rerunFailure>`, as Maven Surefire and nextest write them.
//! - `time` is seconds with three decimals; `classname` is the workflow name.
//!
//! The report is written when the run finishes (or at [`Reporter::finish`] if it never did),
//! into a temporary file beside `PATH` that then replaces `PATH`, so a reader never sees half
//! a report.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tempfile::NamedTempFile;

use crate::state::{JobState, RunId, RunState};
use crate::ui::error::Error;
use crate::ui::events::{Event, JobChange, JobSummary, Reporter};
use crate::ui::format::sanitize;
use crate::ui::ring::LineRing;

/// How many bytes of each job's output the report keeps (its last ones).
pub const OUTPUT_LIMIT: usize = 64 * 1024;

enum Target {
    File {
        path: PathBuf,
        temp: Option<NamedTempFile>,
    },
    Writer(Box<dyn Write + Send>),
}

/// What the report knows about one job.
struct Case {
    name: String,
    state: JobState,
    attempts: u32,
    exit_code: Option<i32>,
    reason: Option<String>,
    step: Option<String>,
    duration: Option<Duration>,
    running_since: Option<DateTime<Utc>>,
    output: LineRing,
    /// The change that ended each attempt that failed or timed out, in order.
    failed_attempts: Vec<JobChange>,
}

/// `attempt 1 failed at step "build" (exit 1)`: the message of a failed attempt's change.
fn attempt_message(failed: &JobChange) -> String {
    let what = if failed.state == JobState::TimedOut {
        "timed out"
    } else {
        "failed"
    };
    let mut message = format!("attempt {} {what}", failed.attempt);
    if let Some(step) = &failed.step {
        let _ = write!(message, " at step \"{step}\"");
    }
    if let Some(code) = failed.exit_code {
        let _ = write!(message, " (exit {code})");
    }
    message
}

/// Collects a run's events and writes its `JUnit` report.
pub struct JUnitWriter {
    target: Target,
    workflow: String,
    run_id: Option<RunId>,
    run_state: Option<RunState>,
    started: Option<DateTime<Utc>>,
    elapsed: Option<Duration>,
    last_ts: Option<DateTime<Utc>>,
    cases: Vec<Case>,
    index: HashMap<String, usize>,
    output_limit: usize,
    written: bool,
    error: Option<Error>,
}

impl JUnitWriter {
    /// A writer for the report at `path`.
    ///
    /// # Errors
    ///
    /// When no temporary file can be created in `path`'s folder: checked now, so an unwritable
    /// path stops the run before it starts.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        // Like pytest and nextest, create the report's folder (`--junit out/report.xml`).
        std::fs::create_dir_all(&dir).map_err(|source| Error::JUnitCreate {
            path: path.clone(),
            source,
        })?;
        if path.is_dir() {
            return Err(Error::JUnitCreate {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "it is a folder; name the report file, e.g. junit.xml",
                ),
            });
        }
        // A report is a file the user asked for: 0666 less the umask, as any program writes.
        let temp = tempfile::Builder::new()
            .prefix(".coreflow-junit")
            .suffix(".xml")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&dir)
            .map_err(|source| Error::JUnitCreate {
                path: path.clone(),
                source,
            })?;
        Ok(JUnitWriter::with_target(Target::File {
            path,
            temp: Some(temp),
        }))
    }

    /// A writer that writes the report to `out` instead of a file.
    #[must_use]
    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        JUnitWriter::with_target(Target::Writer(out))
    }

    fn with_target(target: Target) -> Self {
        JUnitWriter {
            target,
            workflow: "coreflow".to_owned(),
            run_id: None,
            run_state: None,
            started: None,
            elapsed: None,
            last_ts: None,
            cases: Vec::new(),
            index: HashMap::new(),
            output_limit: OUTPUT_LIMIT,
            written: false,
            error: None,
        }
    }

    fn case(&mut self, name: &str) -> &mut Case {
        let i = *self.index.entry(name.to_owned()).or_insert_with(|| {
            self.cases.push(Case {
                name: name.to_owned(),
                state: JobState::Pending,
                attempts: 0,
                exit_code: None,
                reason: None,
                step: None,
                duration: None,
                running_since: None,
                output: LineRing::new(usize::MAX, self.output_limit),
                failed_attempts: Vec::new(),
            });
            self.cases.len() - 1
        });
        &mut self.cases[i]
    }

    /// Takes the final word on each job from the run's summary, keeping the captured output
    /// and failing steps, in the summary's order.
    fn apply_summary(&mut self, jobs: &[JobSummary]) {
        for job in jobs {
            let case = self.case(&job.name);
            case.state = job.state;
            case.attempts = job.attempts;
            case.exit_code = job.exit_code;
            case.reason.clone_from(&job.reason);
            case.duration = job.duration.or(case.duration);
        }
        let order: HashMap<&str, usize> = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| (job.name.as_str(), i))
            .collect();
        self.cases
            .sort_by_key(|case| order.get(case.name.as_str()).copied().unwrap_or(usize::MAX));
        self.index = self
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
    }

    /// Writes the report once; a failure is kept for [`Reporter::finish`].
    fn write_report(&mut self) {
        if self.written {
            return;
        }
        self.written = true;
        let xml = self.render();
        let result = match &mut self.target {
            Target::Writer(out) => out
                .write_all(xml.as_bytes())
                .and_then(|()| out.flush())
                .map_err(Error::Output),
            Target::File { path, temp } => persist(path, temp.take(), &xml),
        };
        if let Err(err) = result {
            self.error = Some(err);
        }
    }

    /// The report's XML.
    fn render(&self) -> String {
        let count = |f: fn(JobState) -> bool| self.cases.iter().filter(|c| f(c.state)).count();
        let tests = self.cases.len();
        let failures = count(|s| matches!(s, JobState::Failed | JobState::TimedOut));
        let errors = count(|s| {
            matches!(
                s,
                JobState::Cancelled | JobState::Pending | JobState::Queued | JobState::Running
            )
        });
        let skipped = count(|s| s == JobState::Skipped);
        let elapsed = self.elapsed.or_else(|| {
            let (start, end) = (self.started?, self.last_ts?);
            (end - start).to_std().ok()
        });
        let name = attr(&self.workflow);
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let time = elapsed
            .map(|d| format!(" time=\"{}\"", seconds(d)))
            .unwrap_or_default();
        let _ = writeln!(
            xml,
            "<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" \
             errors=\"{errors}\"{time}>"
        );
        let _ = write!(
            xml,
            "  <testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" \
             errors=\"{errors}\" skipped=\"{skipped}\"{time}"
        );
        if let Some(started) = self.started {
            let _ = write!(
                xml,
                " timestamp=\"{}\"",
                started.to_rfc3339_opts(SecondsFormat::Millis, true)
            );
        }
        if let Some(run_id) = self.run_id {
            let _ = write!(xml, " id=\"{run_id}\"");
        }
        xml.push_str(">\n");
        let mut properties = Vec::new();
        if let Some(run_id) = self.run_id {
            properties.push(("run_id", run_id.to_string()));
        }
        if let Some(state) = self.run_state {
            properties.push(("run_state", state.as_str().to_owned()));
        }
        if !properties.is_empty() {
            xml.push_str("    <properties>\n");
            for (key, value) in properties {
                let _ = writeln!(
                    xml,
                    "      <property name=\"{key}\" value=\"{}\"/>",
                    attr(&value)
                );
            }
            xml.push_str("    </properties>\n");
        }
        for case in &self.cases {
            render_case(&mut xml, case, &name);
        }
        xml.push_str("  </testsuite>\n</testsuites>\n");
        xml
    }
}

fn render_case(xml: &mut String, case: &Case, classname: &str) {
    let time = seconds(case.duration.unwrap_or_default());
    let _ = write!(
        xml,
        "    <testcase name=\"{}\" classname=\"{classname}\" time=\"{time}\"",
        attr(&sanitize(&case.name))
    );
    let (element, kind) = match case.state {
        JobState::Succeeded if case.failed_attempts.is_empty() => {
            xml.push_str("/>\n");
            return;
        }
        JobState::Succeeded => {
            xml.push_str(">\n");
            reruns(xml, "flakyFailure", &case.failed_attempts);
            xml.push_str("    </testcase>\n");
            return;
        }
        JobState::Skipped => {
            xml.push_str(">\n      <skipped");
            if let Some(reason) = &case.reason {
                let _ = write!(xml, " message=\"{}\"", attr(reason));
            }
            xml.push_str("/>\n    </testcase>\n");
            return;
        }
        JobState::Failed | JobState::TimedOut => ("failure", case.state.as_str()),
        JobState::Cancelled | JobState::Pending | JobState::Queued | JobState::Running => {
            ("error", case.state.as_str())
        }
    };
    let _ = write!(
        xml,
        ">\n      <{element} type=\"{kind}\" message=\"{}\">",
        attr(&case_message(case))
    );
    if case.output.dropped() > 0 {
        let _ = writeln!(xml, "[{} earlier lines left out]", case.output.dropped());
    }
    for line in case.output.lines() {
        xml.push_str(&text(line));
        xml.push('\n');
    }
    let _ = writeln!(xml, "</{element}>");
    // The earlier failures of a job whose every attempt failed (the last is `<failure>`).
    if let Some((_, earlier)) = case.failed_attempts.split_last()
        && matches!(case.state, JobState::Failed | JobState::TimedOut)
    {
        reruns(xml, "rerunFailure", earlier);
    }
    xml.push_str("    </testcase>\n");
}

/// One `<flakyFailure>` or `<rerunFailure>` per failed attempt.
fn reruns(xml: &mut String, element: &str, attempts: &[JobChange]) {
    for failed in attempts {
        let _ = writeln!(
            xml,
            "      <{element} type=\"{}\" message=\"{}\"/>",
            failed.state.as_str(),
            attr(&attempt_message(failed))
        );
    }
}

/// `job build failed at step "compile" (exit 1) after 3 attempts: reason`.
fn case_message(case: &Case) -> String {
    let what = match case.state {
        JobState::Failed => "failed",
        JobState::TimedOut => "timed out",
        JobState::Cancelled => "was cancelled",
        JobState::Pending | JobState::Queued | JobState::Running => "did not finish",
        JobState::Succeeded | JobState::Skipped => "ended",
    };
    let mut message = format!("job {} {what}", sanitize(&case.name));
    if matches!(
        case.state,
        JobState::Pending | JobState::Queued | JobState::Running
    ) {
        let _ = write!(message, " (it was {})", case.state.as_str());
    } else if let Some(step) = &case.step {
        let _ = write!(message, " at step \"{}\"", sanitize(step));
    }
    if let Some(code) = case.exit_code {
        let _ = write!(message, " (exit {code})");
    }
    if case.attempts > 1 {
        let _ = write!(message, " after {} attempts", case.attempts);
    }
    if let Some(reason) = &case.reason {
        let _ = write!(message, ": {}", sanitize(reason));
    }
    message
}

fn persist(path: &Path, temp: Option<NamedTempFile>, xml: &str) -> Result<(), Error> {
    let write_error = |source| Error::JUnitWrite {
        path: path.to_owned(),
        source,
    };
    let mut temp = temp.ok_or_else(|| write_error(std::io::Error::other("already written")))?;
    temp.write_all(xml.as_bytes())
        .and_then(|()| temp.flush())
        .map_err(write_error)?;
    temp.persist(path).map_err(|err| write_error(err.error))?;
    Ok(())
}

/// Seconds with three decimals, as the schema's `SUREFIRE_TIME` allows: `1.234`.
fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Whether XML 1.0 allows `c` at all (its `Char` production).
fn is_xml_char(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..
    )
}

/// Escapes character data; characters XML 1.0 forbids are dropped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| is_xml_char(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value (double-quoted), keeping tabs and line breaks as character
/// references so attribute normalisation does not turn them into spaces.
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| is_xml_char(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

impl Reporter for JUnitWriter {
    fn event(&mut self, ev: &Event) {
        self.last_ts = Some(ev.ts());
        match ev {
            Event::RunStarted {
                ts,
                run_id,
                workflow,
                ..
            } => {
                self.workflow = sanitize(workflow).into_owned();
                self.run_id = Some(*run_id);
                self.started = Some(*ts);
            }
            Event::JobState(change) => {
                let case = self.case(&change.job);
                case.state = change.state;
                case.attempts = case.attempts.max(change.attempt);
                case.reason.clone_from(&change.reason);
                case.exit_code = change.exit_code;
                if change.state == JobState::Running {
                    if change.attempt > 1 {
                        case.output
                            .push(format!("--- attempt {} ---", change.attempt));
                    }
                    case.running_since = Some(change.ts);
                    case.step = None;
                } else {
                    let measured = case
                        .running_since
                        .and_then(|since| (change.ts - since).to_std().ok());
                    case.duration = change.duration.or(measured).or(case.duration);
                    if change.step.is_some() {
                        case.step.clone_from(&change.step);
                    }
                    if matches!(change.state, JobState::Failed | JobState::TimedOut)
                        && case
                            .failed_attempts
                            .last()
                            .is_none_or(|f| f.attempt < change.attempt)
                    {
                        case.failed_attempts.push(change.clone());
                    }
                }
            }
            Event::StepStarted { .. } | Event::ChildRun { .. } => {}
            Event::Output {
                job, step, line, ..
            } => {
                let line = format!("{} | {}", sanitize(step), sanitize(line));
                self.case(job).output.push(line);
            }
            Event::RunFinished {
                run_id,
                state,
                duration,
                jobs,
                ..
            } => {
                self.run_id = Some(*run_id);
                self.run_state = Some(*state);
                self.elapsed = Some(*duration);
                self.apply_summary(jobs);
                self.write_report();
            }
        }
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.write_report();
        match self.error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::Duration;

    use super::{JUnitWriter, attr, text};
    use crate::state::JobState;
    use crate::ui::events::{Event, JobChange, Reporter};
    use crate::ui::fixtures::Shared;
    use crate::ui::fixtures::{at, failed, out, scripted_run, state};

    fn report(events: &[Event]) -> String {
        let shared = Shared::default();
        let mut writer = JUnitWriter::to_writer(Box::new(shared.clone()));
        for ev in events {
            writer.event(ev);
        }
        writer.finish().unwrap();
        shared.text()
    }

    /// A run whose jobs cover every state, with hostile names and output.
    fn every_state() -> Vec<Event> {
        let mut events = scripted_run();
        let finished = events.pop().unwrap();
        let Event::RunFinished {
            ts,
            run_id,
            state: run_state,
            duration,
            mut jobs,
        } = finished
        else {
            panic!("the scripted run ends with RunFinished");
        };
        let job = "evil <&\"'>\u{1}\u{fffe}";
        events.push(state(2_901, job, JobState::Running, 1));
        events.push(out(
            2_902,
            job,
            "s]]>",
            "\u{1b}[1mbold\u{0} & <tags> ]]> \u{1f600}",
        ));
        events.push(Event::JobState(JobChange {
            reason: Some("timeout 5m\nexceeded".to_owned()),
            step: Some("s]]>".to_owned()),
            ..JobChange::new(at(2_950), job, JobState::TimedOut, 1)
        }));
        events.push(state(2_960, "stopped", JobState::Cancelled, 1));
        // Every attempt failed: the last is the failure, the first a rerun failure.
        events.push(state(2_961, "doomed", JobState::Running, 1));
        events.push(failed(2_962, "doomed", 1, "s", 1));
        events.push(state(2_963, "doomed", JobState::Running, 2));
        events.push(failed(2_964, "doomed", 2, "s", 2));
        let mut extra = jobs[0].clone();
        extra.name = job.to_owned();
        extra.state = JobState::TimedOut;
        extra.duration = Some(Duration::from_millis(48));
        extra.exit_code = None;
        extra.reason = Some("timeout 5m\nexceeded".to_owned());
        jobs.push(extra);
        let mut stopped = jobs[0].clone();
        stopped.name = "stopped".to_owned();
        stopped.state = JobState::Cancelled;
        stopped.reason = Some("ctrl-c".to_owned());
        stopped.exit_code = None;
        jobs.push(stopped);
        let mut doomed = jobs[0].clone();
        doomed.name = "doomed".to_owned();
        doomed.state = JobState::Failed;
        doomed.attempts = 2;
        doomed.exit_code = Some(2);
        jobs.push(doomed);
        events.push(Event::RunFinished {
            ts,
            run_id,
            state: run_state,
            duration,
            jobs,
        });
        events
    }

    #[test]
    fn report_shape() {
        insta::assert_snapshot!(report(&scripted_run()), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="etl" tests="4" failures="1" errors="0" time="3.000">
          <testsuite name="etl" tests="4" failures="1" errors="0" skipped="1" time="3.000" timestamp="2026-03-01T12:00:00.000Z" id="42">
            <properties>
              <property name="run_id" value="42"/>
              <property name="run_state" value="failed"/>
            </properties>
            <testcase name="extract" classname="etl" time="1.198"/>
            <testcase name="transform" classname="etl" time="0.299">
              <failure type="failed" message="job transform failed at step &quot;build&quot; (exit 1)">build | error: missing column
        </failure>
            </testcase>
            <testcase name="load" classname="etl" time="0.299">
              <flakyFailure type="failed" message="attempt 1 failed at step &quot;upload&quot; (exit 7)"/>
            </testcase>
            <testcase name="report[format=csv]" classname="etl" time="0.000">
              <skipped message="needs failed"/>
            </testcase>
          </testsuite>
        </testsuites>
        "#);
    }

    #[test]
    fn escaping_drops_illegal_characters() {
        assert_eq!(
            text("a & b < c > d\u{0}\u{b}\u{fffe}\u{ffff}é"),
            "a &amp; b &lt; c &gt; dé"
        );
        assert_eq!(
            attr("\"q\" 'a'\n\t\r"),
            "&quot;q&quot; &apos;a&apos;&#10;&#9;&#13;"
        );
    }

    #[test]
    fn interrupted_run_is_still_reported() {
        let events = [
            state(0, "a", JobState::Running, 1),
            out(1, "a", "s", "working"),
        ];
        let xml = report(&events);
        let expected = "<error type=\"running\" message=\"job a did not finish (it was running)\">\
                        s | working\n</error>";
        assert!(xml.contains(expected), "{xml}");
        assert!(xml.contains("errors=\"1\""), "{xml}");
    }

    #[test]
    fn output_is_bounded() {
        let shared = Shared::default();
        let mut writer = JUnitWriter::to_writer(Box::new(shared.clone()));
        writer.output_limit = 1_000;
        writer.event(&state(0, "a", JobState::Running, 1));
        for i in 0..10_000 {
            writer.event(&out(1, "a", "s", &format!("line {i}")));
        }
        writer.event(&failed(2, "a", 1, "s", 1));
        writer.finish().unwrap();
        let xml = shared.text();
        assert!(xml.len() < 2_000, "{}", xml.len());
        assert!(xml.contains("earlier lines left out]"));
        assert!(xml.contains("s | line 9999\n</failure>"));
    }

    #[test]
    fn writes_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.xml");
        let mut writer = JUnitWriter::create(&path).unwrap();
        assert!(!path.exists());
        for ev in scripted_run() {
            writer.event(&ev);
        }
        writer.finish().unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(xml.starts_with("<?xml"));
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "the temporary file should have been renamed");
        // A missing folder is created; a path under a plain file cannot be.
        assert!(JUnitWriter::create(dir.path().join("missing/report.xml")).is_ok());
        std::fs::write(dir.path().join("blocker"), "").unwrap();
        assert!(JUnitWriter::create(dir.path().join("blocker/report.xml")).is_err());
    }

    /// Checks that `xml` is well formed and follows the schema's structure: the elements each
    /// element may hold and the attributes each must carry. A small stand-in for a validator,
    /// so the property holds even where `xmllint` is missing.
    fn check_structure(xml: &str) {
        let allowed = |parent: Option<&str>, child: &str| match parent {
            None => child == "testsuites",
            Some("testsuites") => child == "testsuite",
            Some("testsuite") => matches!(child, "properties" | "testcase" | "system-out"),
            Some("properties") => child == "property",
            Some("testcase") => matches!(
                child,
                "failure" | "error" | "skipped" | "system-out" | "flakyFailure" | "rerunFailure"
            ),
            Some(_) => false,
        };
        let required = |name: &str| -> &[&str] {
            match name {
                "testsuite" => &["name=", "tests=", "failures=", "errors="],
                "testcase" => &["name="],
                "flakyFailure" | "rerunFailure" => &["type=", "message="],
                "property" => &["name=", "value="],
                _ => &[],
            }
        };
        let body = xml
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .unwrap();
        let mut stack: Vec<String> = Vec::new();
        let mut rest = body;
        while let Some(open) = rest.find('<') {
            assert!(!rest[..open].contains('>'), "a bare `>` in text");
            let close = rest[open..].find('>').unwrap() + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "a `<` inside tag {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name));
            } else {
                let self_closing = tag.ends_with('/');
                let name = tag.trim_end_matches('/').split(' ').next().unwrap();
                assert!(
                    allowed(stack.last().map(String::as_str), name),
                    "{name} in {stack:?}"
                );
                for attribute in required(name) {
                    assert!(tag.contains(attribute), "{name} without {attribute}");
                }
                if !self_closing {
                    stack.push(name.to_owned());
                }
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        for c in xml.chars() {
            assert!(super::is_xml_char(c), "{c:?}");
        }
    }

    fn schema() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit.xsd")
    }

    #[test]
    fn failed_attempts_are_flaky_or_rerun_failures() {
        let xml = report(&every_state());
        let doomed = &xml[xml.find("<testcase name=\"doomed\"").unwrap()..];
        let doomed = &doomed[..doomed.find("</testcase>").unwrap()];
        assert_eq!(doomed.matches("<failure").count(), 1, "{doomed}");
        assert!(
            doomed.contains(r#"<rerunFailure type="failed" message="attempt 1 failed at step &quot;s&quot; (exit 1)"/>"#),
            "{doomed}"
        );
        let load = &xml[xml.find("<testcase name=\"load\"").unwrap()..];
        let load = &load[..load.find("</testcase>").unwrap()];
        assert!(load.contains("<flakyFailure"), "{load}");
        assert!(!load.contains("<failure"), "{load}");
    }

    #[test]
    fn report_validates_against_the_schema() {
        for events in [scripted_run(), every_state(), Vec::new()] {
            let xml = report(&events);
            check_structure(&xml);
            let schema = schema();
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("report.xml");
            std::fs::write(&file, &xml).unwrap();
            let result = Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(&schema)
                .arg(&file)
                .output()
                .unwrap_or_else(|err| {
                    panic!("xmllint must be installed (scripts/test-deps.sh installs it): {err}")
                });
            assert!(
                result.status.success(),
                "{}\n{xml}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
    }

    #[test]
    fn hostile_names_and_output_are_escaped() {
        let xml = report(&every_state());
        assert!(
            xml.contains("name=\"evil &lt;&amp;&quot;&apos;&gt;\""),
            "{xml}"
        );
        assert!(
            xml.contains("s]]&gt; | bold &amp; &lt;tags&gt; ]]&gt; \u{1f600}"),
            "{xml}"
        );
        assert!(xml.contains("<error type=\"cancelled\""), "{xml}");
        assert!(xml.contains(": timeout 5m exceeded\""), "{xml}");
    }
}
