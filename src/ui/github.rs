//! GitHub Actions workflow commands for plain output: one `::group::` per job attempt, and an
//! `::error` annotation per failed job.
//!
//! Jobs run in parallel, so their lines interleave; a group must hold one job's lines only.
//! `JobGroups` therefore keeps each running job's lines aside until the attempt ends, and the
//! plain reporter then prints the whole group at once. Memory stays bounded: beyond
//! [`SPILL_THRESHOLD`] bytes a job's buffer moves to an anonymous temporary file.
//!
//! Every buffered line starts with its timestamp, so no step output can start a line with
//! `::` and smuggle in a workflow command of its own.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use crate::state::JobState;
use crate::ui::format::sanitize;

/// How many bytes of one job's output stay in memory before they move to a temporary file.
pub const SPILL_THRESHOLD: usize = 1024 * 1024;

/// The line that closes a group.
pub const GROUP_END: &str = "::endgroup::";

/// Escapes the message of a workflow command: `%`, `\r` and `\n`, as the runner expects.
#[must_use]
pub fn escape_data(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a property value of a workflow command (`title=…`): as [`escape_data`], plus `:`
/// and `,`, which end a property.
#[must_use]
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::group::build` (or `::group::build (attempt 2)`): opens a job's group.
#[must_use]
pub fn group_start(job: &str, attempt: u32) -> String {
    let mut title = sanitize(job).into_owned();
    if attempt > 1 {
        let _ = write!(title, " (attempt {attempt})");
    }
    format!("::group::{}", escape_data(&title))
}

/// `::error title=build failed::job build failed at step "compile" (exit 1)`: the annotation
/// for a job that ended `failed` or `timed_out`; `None` for other states.
///
/// The message names the job, the failing step when known, the exit code when known, and the
/// number of attempts when there were several.
#[must_use]
pub fn error_annotation(
    job: &str,
    state: JobState,
    step: Option<&str>,
    exit_code: Option<i32>,
    attempts: u32,
) -> Option<String> {
    let verb = match state {
        JobState::Failed => "failed",
        JobState::TimedOut => "timed out",
        _ => return None,
    };
    let job = sanitize(job);
    let mut message = format!("job {job} {verb}");
    if let Some(step) = step {
        let _ = write!(message, " at step \"{}\"", sanitize(step));
    }
    if let Some(code) = exit_code {
        let _ = write!(message, " (exit {code})");
    }
    if attempts > 1 {
        let _ = write!(message, " after {attempts} attempts");
    }
    let title = format!("{job} {verb}");
    Some(format!(
        "::error title={}::{}",
        escape_property(&title),
        escape_data(&message)
    ))
}

/// One job attempt's lines, kept until the attempt ends.
#[derive(Debug)]
pub(crate) struct GroupBuffer {
    pub(crate) attempt: u32,
    memory: Vec<u8>,
    file: Option<File>,
    /// Bytes lost because the temporary file could not be created or written.
    lost: u64,
    threshold: usize,
}

impl GroupBuffer {
    fn new(attempt: u32, threshold: usize) -> Self {
        GroupBuffer {
            attempt,
            memory: Vec::new(),
            file: None,
            lost: 0,
            threshold,
        }
    }

    fn push(&mut self, line: &str) {
        if let Some(file) = &mut self.file {
            if file
                .write_all(line.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .is_err()
            {
                self.lost += line.len() as u64 + 1;
            }
            return;
        }
        self.memory.extend_from_slice(line.as_bytes());
        self.memory.push(b'\n');
        if self.memory.len() > self.threshold {
            self.spill();
        }
    }

    /// Moves the buffered lines to a temporary file; on failure they are dropped and counted.
    fn spill(&mut self) {
        let spilled = tempfile::tempfile().and_then(|mut file| {
            file.write_all(&self.memory)?;
            Ok(file)
        });
        match spilled {
            Ok(file) => self.file = Some(file),
            Err(_) => self.lost += self.memory.len() as u64,
        }
        self.memory = Vec::new();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.file.is_none() && self.lost == 0
    }

    /// Copies the buffered lines to `out`.
    pub(crate) fn write_to(mut self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(file) = &mut self.file {
            file.seek(SeekFrom::Start(0))?;
            io::copy(file, out)?;
        }
        out.write_all(&self.memory)?;
        if self.lost > 0 {
            writeln!(
                out,
                "({} bytes of output lost: the temporary file failed)",
                self.lost
            )?;
        }
        Ok(())
    }
}

/// The open groups of the jobs now running, by job name.
#[derive(Debug)]
pub(crate) struct JobGroups {
    open: HashMap<String, GroupBuffer>,
    threshold: usize,
}

impl JobGroups {
    pub(crate) fn new() -> Self {
        JobGroups::with_threshold(SPILL_THRESHOLD)
    }

    pub(crate) fn with_threshold(threshold: usize) -> Self {
        JobGroups {
            open: HashMap::new(),
            threshold,
        }
    }

    /// Starts a new group for `job`'s `attempt`; the caller closes any earlier one first.
    pub(crate) fn open(&mut self, job: &str, attempt: u32) {
        self.open
            .insert(job.to_owned(), GroupBuffer::new(attempt, self.threshold));
    }

    /// Adds a line to `job`'s group, opening one for attempt 1 if the job has none.
    pub(crate) fn push(&mut self, job: &str, line: &str) {
        if !self.open.contains_key(job) {
            self.open(job, 1);
        }
        if let Some(group) = self.open.get_mut(job) {
            group.push(line);
        }
    }

    /// Closes `job`'s group, returning its lines.
    pub(crate) fn close(&mut self, job: &str) -> Option<GroupBuffer> {
        self.open.remove(job)
    }

    /// Closes every group, in job name order.
    pub(crate) fn close_all(&mut self) -> Vec<(String, GroupBuffer)> {
        let mut all: Vec<_> = self.open.drain().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::{JobGroups, error_annotation, escape_data, escape_property, group_start};
    use crate::state::JobState;

    #[test]
    fn escapes_as_github_requires() {
        assert_eq!(escape_data("100% done\r\nnext"), "100%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }

    #[test]
    fn annotations_name_job_and_step() {
        let failed = error_annotation("build", JobState::Failed, Some("compile"), Some(1), 1);
        assert_eq!(
            failed.as_deref(),
            Some("::error title=build failed::job build failed at step \"compile\" (exit 1)")
        );
        let matrix = error_annotation(
            "report[a=1,b=2]",
            JobState::TimedOut,
            Some("100%\nslow"),
            None,
            3,
        );
        assert_eq!(
            matrix.as_deref(),
            Some(
                "::error title=report[a=1%2Cb=2] timed out::job report[a=1,b=2] timed out at \
                 step \"100%25 slow\" after 3 attempts"
            )
        );
        assert_eq!(
            error_annotation("a", JobState::Cancelled, None, None, 1),
            None
        );
        assert_eq!(group_start("a", 2), "::group::a (attempt 2)");
    }

    #[test]
    fn large_groups_spill_to_disk_and_come_back_whole() {
        let mut groups = JobGroups::with_threshold(64);
        let lines: Vec<String> = (0..100).map(|i| format!("line {i:03}")).collect();
        for line in &lines {
            groups.push("big", line);
        }
        let group = groups.close("big").unwrap();
        assert!(group.file.is_some(), "the buffer should have spilled");
        let mut out = Vec::new();
        group.write_to(&mut out).unwrap();
        let expected = lines.join("\n") + "\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert!(groups.close("big").is_none());
    }
}
