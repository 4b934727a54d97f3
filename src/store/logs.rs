//! Captured step output: one append-only log per job attempt, merged on reading.
//!
//! A row per line in SQLite tops out near 230,000 lines/s (PERFORMANCE.md), so each attempt's
//! output goes to `logs/<run_id>/<job_id>-<attempt>.log` through a buffered [`LogWriter`] and
//! the database only indexes the file (the attempt row). [`LogReader`] merges the files of a run
//! in timestamp order, streaming, with one pending line and one small buffer per open file; a
//! file is opened only once the merge reaches its attempt's start, so a run of thousands of jobs
//! keeps about as many files open as ran at once. A [`LogCursor`] remembers how far each file
//! was read, for `logs --follow`.
//!
//! # Logs kept in a database
//!
//! A store shared by several hosts (PostgreSQL) keeps the same bytes in its database instead:
//! a writer made with [`LogWriter::to_chunks`] hands each flush of its buffer to a
//! [`ChunkSink`] as one chunk, and a reader made with [`LogReader::from_chunks`] reads an
//! attempt's chunks from a [`ChunkSource`] one at a time, in order, as if they were its file.
//! Offsets (and so cursors) are byte offsets in the concatenated chunks, exactly as in a file.
//! Either side holds one chunk of an attempt's log at a time: at most a writer's buffer, or
//! one record when a record is longer.
//!
//! # File format
//!
//! One record per line, fields separated by one space:
//!
//! ```text
//! <unix micros> <o|e> <step index> <step name> <line>\n
//! ```
//!
//! The line is stored as the raw bytes the step printed (invalid UTF-8 and tabs included), with
//! `\` written `\\` and a newline written `\n`; the step name also has space written `\s`.
//! Only complete records (ending in a newline) are read, so a reader never sees half a line
//! that a writer is still appending.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

pub use crate::state::Stream;
use crate::state::{JobId, RunId};

use super::error::Error;

/// Step output: one log per attempt (a file, or chunks in the database), indexed by the store.
pub trait LogStore {
    /// A writer for the output of one attempt. The attempt's log is indexed when the attempt
    /// starts (the transition to `running`); [`Change::LogClosed`](super::Change::LogClosed)
    /// records its size.
    fn log_writer(&self, run: RunId, job: JobId, attempt: u32) -> Result<LogWriter, Error>;

    /// A run's output (or one job's), merged across jobs in timestamp order, starting after
    /// `cursor` when given (`logs --follow`).
    fn read_logs(
        &self,
        run: RunId,
        job: Option<JobId>,
        cursor: Option<&LogCursor>,
    ) -> Result<LogReader, Error>;
}

/// How long a written line may sit in the buffer before the next write flushes it. The owner
/// should also call [`LogWriter::flush`] when a step ends or goes quiet.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Buffer size of a writer.
const WRITE_BUFFER: usize = 64 * 1024;

/// Buffer size of each file a reader has open.
const READ_BUFFER: usize = 16 * 1024;

/// The one-byte tag of a stream in a log file.
fn tag(stream: Stream) -> u8 {
    match stream {
        Stream::Stdout => b'o',
        Stream::Stderr => b'e',
    }
}

/// How much an attempt's log holds, recorded when it is closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSummary {
    pub bytes: u64,
    pub lines: u64,
}

/// Appends one attempt's output lines to its log.
#[derive(Debug)]
pub struct LogWriter {
    out: BufWriter<Sink>,
    /// The file, or the name of a log kept in chunks (for messages).
    path: PathBuf,
    summary: LogSummary,
    last_flush: Instant,
    scratch: Vec<u8>,
}

impl LogWriter {
    /// Opens `path` for appending, creating it and its folder.
    pub fn create(path: &Path) -> Result<LogWriter, Error> {
        let error = |source| Error::Log {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            super::private::create_dir_all(parent).map_err(error)?;
        }
        let file = super::private::file_options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(error)?;
        let bytes = file.metadata().map_err(error)?.len();
        Ok(LogWriter::with_sink(
            Sink::File(file),
            path.to_owned(),
            bytes,
        ))
    }

    /// A writer that hands each flush to `sink` as one chunk, continuing a log that already
    /// holds `written` bytes (0 for a new one). `name` stands for the log in messages.
    pub(crate) fn to_chunks(sink: Box<dyn ChunkSink>, name: PathBuf, written: u64) -> LogWriter {
        LogWriter::with_sink(Sink::Chunks { sink, written }, name, written)
    }

    fn with_sink(sink: Sink, path: PathBuf, bytes: u64) -> LogWriter {
        LogWriter {
            out: BufWriter::with_capacity(WRITE_BUFFER, sink),
            path,
            summary: LogSummary { bytes, lines: 0 },
            last_flush: Instant::now(),
            scratch: Vec::with_capacity(256),
        }
    }

    /// The file written, or the name of a log kept in chunks.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (without its newline) printed by step `step_index` named `step_name`.
    pub fn write_line(
        &mut self,
        ts: DateTime<Utc>,
        stream: Stream,
        step_index: u32,
        step_name: &str,
        line: &[u8],
    ) -> Result<(), Error> {
        let record = &mut self.scratch;
        record.clear();
        // Writing into a Vec cannot fail.
        push_decimal(record, ts.timestamp_micros());
        record.push(b' ');
        record.push(tag(stream));
        record.push(b' ');
        push_decimal(record, i64::from(step_index));
        record.push(b' ');
        escape_into(record, step_name.as_bytes(), true);
        record.push(b' ');
        escape_into(record, line, false);
        record.push(b'\n');
        let result = self.out.write_all(record);
        result.map_err(|source| log_error(&self.path, source))?;
        self.summary.bytes += record.len() as u64;
        self.summary.lines += 1;
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands buffered lines to the file (or the sink, as one chunk), so `logs --follow` sees
    /// them.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.last_flush = Instant::now();
        self.out
            .flush()
            .map_err(|source| log_error(&self.path, source))
    }

    /// Flushes when lines wait in the buffer: what a quiet step printed last becomes
    /// visible to readers elsewhere. Costs nothing when the buffer is empty.
    pub fn flush_if_pending(&mut self) -> Result<(), Error> {
        if self.out.buffer().is_empty() {
            return Ok(());
        }
        self.flush()
    }

    /// Flushes and closes the log, returning its size for [`super::Change::LogClosed`].
    pub fn finish(mut self) -> Result<LogSummary, Error> {
        self.flush()?;
        Ok(self.summary)
    }
}

/// Where a log kept in a database takes its chunks (the PostgreSQL store's `log_chunks`).
pub(crate) trait ChunkSink: Send + fmt::Debug {
    /// Stores `bytes` (never empty), which start at byte `offset` of the attempt's log: each
    /// call continues where the previous successful one ended. On an error nothing may be
    /// stored: the writer keeps the bytes and hands them again, at the same offset and perhaps
    /// followed by newer ones, with its next flush.
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error>;
}

/// Where a [`LogWriter`]'s buffer goes when it is flushed.
#[derive(Debug)]
enum Sink {
    /// Appended to the attempt's file.
    File(File),
    /// One chunk per flush; `written` is the log's length so far.
    Chunks {
        sink: Box<dyn ChunkSink>,
        written: u64,
    },
}

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(file) => file.write(bytes),
            Sink::Chunks { sink, written } => {
                if bytes.is_empty() {
                    return Ok(0);
                }
                sink.append(*written, bytes).map_err(io::Error::other)?;
                *written += bytes.len() as u64;
                Ok(bytes.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(file) => file.flush(),
            Sink::Chunks { .. } => Ok(()),
        }
    }
}

/// An I/O error on the log at `path`; the store error of a chunk sink, which crossed
/// [`Write`] wrapped in an `io::Error`, comes back as itself (a lost database connection stays
/// an environment error).
fn log_error(path: &Path, source: io::Error) -> Error {
    match source.downcast::<Error>() {
        Ok(error) => error,
        Err(source) => Error::Log {
            path: path.to_owned(),
            source,
        },
    }
}

/// Appends `n` in decimal without going through `fmt` (this runs once per output line).
fn push_decimal(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut value = n.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `bytes` escaped: `\` → `\\`, newline → `\n`, and for a field, space → `\s`.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8], field: bool) {
    let special = |byte: u8| byte == b'\\' || byte == b'\n' || (field && byte == b' ');
    // Most lines need no escaping: a vectorisable scan first, then one copy.
    if !bytes
        .iter()
        .fold(false, |found, &byte| found | special(byte))
    {
        out.extend_from_slice(bytes);
        return;
    }
    let mut rest = bytes;
    while let Some(position) = rest.iter().position(|&byte| special(byte)) {
        out.extend_from_slice(&rest[..position]);
        out.extend_from_slice(match rest[position] {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            _ => b"\\s",
        });
        rest = &rest[position + 1..];
    }
    out.extend_from_slice(rest);
}

/// Reverses [`escape_into`]; an unknown escape is kept as written.
fn unescape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied();
    while let Some(byte) = iter.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match iter.next() {
            // A lone backslash at the end is kept as written.
            Some(b'\\') | None => out.push(b'\\'),
            Some(b'n') => out.push(b'\n'),
            Some(b's') => out.push(b' '),
            Some(other) => out.extend_from_slice(&[b'\\', other]),
        }
    }
    out
}

/// One captured output line, as `logs --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    #[serde(serialize_with = "micros_rfc3339")]
    pub ts: DateTime<Utc>,
    /// The job's full name.
    pub job: String,
    #[serde(skip)]
    pub job_id: JobId,
    pub attempt: u32,
    pub step: String,
    #[serde(skip)]
    pub step_index: u32,
    pub stream: Stream,
    /// The line, invalid UTF-8 replaced.
    pub line: String,
}

fn micros_rfc3339<S: Serializer>(ts: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// One attempt's log, as the store indexes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub job_id: JobId,
    /// The job's full name.
    pub job: String,
    pub attempt: u32,
    /// The log file; for a log kept in chunks, the name its attempt row records (for
    /// messages only).
    pub path: PathBuf,
    /// No line of the log is older than this (the attempt's start); the merge opens the log
    /// only when it gets there.
    pub not_before: DateTime<Utc>,
}

/// How far each log of a run has been read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogCursor {
    offsets: HashMap<(JobId, u32), u64>,
}

impl LogCursor {
    /// The byte offset in the log of `attempt` of `job` up to which lines were read.
    #[must_use]
    pub fn offset(&self, job: JobId, attempt: u32) -> u64 {
        self.offsets.get(&(job, attempt)).copied().unwrap_or(0)
    }

    /// The cursor as text, for a client to hand back (the API's `after`, an event stream's
    /// `Last-Event-ID`): `JOB.ATTEMPT.OFFSET` for each log read, joined by `,`, in order.
    #[must_use]
    pub fn to_token(&self) -> String {
        let mut entries: Vec<(&(JobId, u32), &u64)> = self
            .offsets
            .iter()
            .filter(|(_, offset)| **offset > 0)
            .collect();
        entries.sort_unstable();
        entries
            .iter()
            .map(|((job, attempt), offset)| format!("{}.{attempt}.{offset}", job.0))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A cursor from [`to_token`](Self::to_token)'s text; `None` when it is not one.
    #[must_use]
    pub fn from_token(text: &str) -> Option<LogCursor> {
        let mut offsets = HashMap::new();
        for entry in text.split(',').filter(|entry| !entry.is_empty()) {
            let mut parts = entry.split('.');
            let job = parts.next()?.parse().ok()?;
            let attempt = parts.next()?.parse().ok()?;
            let offset = parts.next()?.parse().ok()?;
            if parts.next().is_some() {
                return None;
            }
            offsets.insert((JobId(job), attempt), offset);
        }
        Some(LogCursor { offsets })
    }
}

/// A piece of a log kept in a database, as one flush of its writer stored it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Where its first byte is in the attempt's log.
    pub(crate) offset: u64,
    pub(crate) bytes: Vec<u8>,
}

/// Where a [`LogReader`] finds logs kept in a database (the PostgreSQL store's `log_chunks`).
pub(crate) trait ChunkSource: Send + Sync + fmt::Debug {
    /// The chunk of the log of `attempt` of `job` that holds byte `offset`, or `None` when
    /// the log (so far) ends at or before that byte.
    fn chunk_at(&self, job: JobId, attempt: u32, offset: u64) -> Result<Option<Chunk>, Error>;
}

/// An open log during the merge.
#[derive(Debug)]
enum Body {
    File(BufReader<File>),
    /// A log kept in chunks: the chunk being read and the position in it.
    Chunks {
        source: Arc<dyn ChunkSource>,
        chunk: Chunk,
        at: usize,
    },
}

impl Body {
    /// A log kept in chunks, read from byte `offset` on (nothing is fetched yet).
    fn chunks(source: Arc<dyn ChunkSource>, offset: u64) -> Body {
        let chunk = Chunk {
            offset,
            bytes: Vec::new(),
        };
        Body::Chunks {
            source,
            chunk,
            at: 0,
        }
    }

    /// Appends the next record of the log of `info`, up to and including its newline, to
    /// `out` and returns its length: 0 at the end of the log, and no newline at the end when
    /// the log ends inside a record (still being written).
    fn read_record(&mut self, info: &LogSource, out: &mut Vec<u8>) -> Result<usize, Error> {
        let (source, chunk, at) = match self {
            Body::File(file) => {
                return file
                    .read_until(b'\n', out)
                    .map_err(|error| log_error(&info.path, error));
            }
            Body::Chunks { source, chunk, at } => (source, chunk, at),
        };
        let start = out.len();
        loop {
            let rest = &chunk.bytes[*at..];
            if let Some(newline) = rest.iter().position(|&byte| byte == b'\n') {
                out.extend_from_slice(&rest[..=newline]);
                *at += newline + 1;
                return Ok(out.len() - start);
            }
            out.extend_from_slice(rest);
            *at = chunk.bytes.len();
            // The record goes on in the next chunk, if there is one yet.
            let end = chunk.offset + chunk.bytes.len() as u64;
            let next = source.chunk_at(info.job_id, info.attempt, end)?;
            let Some(next) = next.filter(|next| next.offset + next.bytes.len() as u64 > end) else {
                return Ok(out.len() - start);
            };
            // `end` is inside the chunk (at its start unless a cursor points into it).
            let skip = usize::try_from(end.saturating_sub(next.offset)).unwrap_or(usize::MAX);
            *at = skip.min(next.bytes.len());
            *chunk = next;
        }
    }
}

/// A source during the merge.
#[derive(Debug)]
struct OpenSource {
    info: LogSource,
    /// The open log, until it ends.
    body: Option<Body>,
    /// Offset after the last record read from the log.
    read_offset: u64,
    /// Offset after the last record handed out.
    consumed_offset: u64,
    /// The line read but not yet handed out.
    pending: Option<LogLine>,
    /// Timestamp of the previous record, for a malformed one.
    last_ts: DateTime<Utc>,
}

/// A streaming, timestamp-ordered merge of logs; see the module documentation.
#[derive(Debug)]
pub struct LogReader {
    /// Sorted by `not_before`.
    sources: Vec<OpenSource>,
    /// Where the logs are kept when they are not files.
    chunks: Option<Arc<dyn ChunkSource>>,
    /// Sources before this index have been opened.
    next_to_open: usize,
    /// Pending lines by (timestamp in micros, source index).
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    buffer: Vec<u8>,
    failed: bool,
}

impl LogReader {
    /// A reader over the log files of `sources`, each starting at `cursor`'s offset (the
    /// beginning without one). Missing files are read as empty.
    #[must_use]
    pub fn new(sources: Vec<LogSource>, cursor: Option<&LogCursor>) -> LogReader {
        LogReader::with_logs(sources, None, cursor)
    }

    /// A reader over the logs of `sources` kept in chunks by `chunks`, each starting at
    /// `cursor`'s offset (the beginning without one). A log without chunks is read as empty.
    pub(crate) fn from_chunks(
        sources: Vec<LogSource>,
        chunks: Arc<dyn ChunkSource>,
        cursor: Option<&LogCursor>,
    ) -> LogReader {
        LogReader::with_logs(sources, Some(chunks), cursor)
    }

    fn with_logs(
        mut sources: Vec<LogSource>,
        chunks: Option<Arc<dyn ChunkSource>>,
        cursor: Option<&LogCursor>,
    ) -> LogReader {
        sources.sort_by_key(|source| (source.not_before, source.job_id, source.attempt));
        let sources = sources
            .into_iter()
            .map(|info| {
                let offset = cursor.map_or(0, |cursor| cursor.offset(info.job_id, info.attempt));
                OpenSource {
                    last_ts: info.not_before,
                    info,
                    body: None,
                    read_offset: offset,
                    consumed_offset: offset,
                    pending: None,
                }
            })
            .collect();
        LogReader {
            sources,
            chunks,
            next_to_open: 0,
            heap: BinaryHeap::new(),
            buffer: Vec::with_capacity(256),
            failed: false,
        }
    }

    /// Where reading stopped: the lines handed out so far. Give it to the next reader to
    /// continue from there.
    #[must_use]
    pub fn cursor(&self) -> LogCursor {
        let offsets = self
            .sources
            .iter()
            .map(|source| {
                let key = (source.info.job_id, source.info.attempt);
                (key, source.consumed_offset)
            })
            .collect();
        LogCursor { offsets }
    }

    /// Opens source `index` at its offset and reads its first line.
    fn open(&mut self, index: usize) -> Result<(), Error> {
        let source = &mut self.sources[index];
        source.body = match &self.chunks {
            Some(chunks) => Some(Body::chunks(Arc::clone(chunks), source.read_offset)),
            None => open_file(&source.info.path, source.read_offset)?,
        };
        self.advance(index)
    }

    /// Reads the next complete record of source `index` into its pending slot.
    fn advance(&mut self, index: usize) -> Result<(), Error> {
        let source = &mut self.sources[index];
        let Some(body) = source.body.as_mut() else {
            return Ok(());
        };
        self.buffer.clear();
        let read = body.read_record(&source.info, &mut self.buffer)?;
        if read == 0 || self.buffer.last() != Some(&b'\n') {
            // End of the log, or a record still being written: leave it for the next reader.
            source.body = None;
            return Ok(());
        }
        source.read_offset += read as u64;
        let line = parse_record(&self.buffer[..read - 1], &source.info, source.last_ts);
        source.last_ts = line.ts;
        self.heap.push(Reverse((line.ts.timestamp_micros(), index)));
        source.pending = Some(line);
        Ok(())
    }

    fn next_line(&mut self) -> Result<Option<LogLine>, Error> {
        // Open every log that may hold a line older than the oldest pending one.
        while let Some(next) = self.sources.get(self.next_to_open) {
            let not_before = next.info.not_before.timestamp_micros();
            match self.heap.peek() {
                Some(Reverse((oldest, _))) if not_before > *oldest => break,
                _ => {}
            }
            let index = self.next_to_open;
            self.next_to_open += 1;
            self.open(index)?;
        }
        let Some(Reverse((_, index))) = self.heap.pop() else {
            return Ok(None);
        };
        let source = &mut self.sources[index];
        let line = source
            .pending
            .take()
            .expect("a source in the heap has a pending line");
        source.consumed_offset = source.read_offset;
        self.advance(index)?;
        Ok(Some(line))
    }
}

/// Opens the log file at `path` at `offset`; a missing file is an empty log.
fn open_file(path: &Path, offset: u64) -> Result<Option<Body>, Error> {
    let error = |source| Error::Log {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(error(source)),
    };
    if offset > 0 {
        file.seek(SeekFrom::Start(offset)).map_err(error)?;
    }
    Ok(Some(Body::File(BufReader::with_capacity(
        READ_BUFFER,
        file,
    ))))
}

impl Iterator for LogReader {
    type Item = Result<LogLine, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_line() {
            Ok(line) => line.map(Ok),
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}

/// Parses one record (without its newline). A malformed record, which only a damaged file
/// holds, is kept whole as an stdout line at the previous record's time.
fn parse_record(record: &[u8], source: &LogSource, last_ts: DateTime<Utc>) -> LogLine {
    let mut fields = record.splitn(5, |&byte| byte == b' ');
    let parsed = (|| {
        let ts = std::str::from_utf8(fields.next()?)
            .ok()?
            .parse::<i64>()
            .ok()?;
        let ts = DateTime::from_timestamp_micros(ts)?;
        let stream = match fields.next()? {
            b"o" => Stream::Stdout,
            b"e" => Stream::Stderr,
            _ => return None,
        };
        let step_index = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
        let step = String::from_utf8_lossy(&unescape(fields.next()?)).into_owned();
        let line = String::from_utf8_lossy(&unescape(fields.next()?)).into_owned();
        Some((ts, stream, step_index, step, line))
    })();
    let (ts, stream, step_index, step, line) = parsed.unwrap_or_else(|| {
        let line = String::from_utf8_lossy(record).into_owned();
        (last_ts, Stream::Stdout, 0, String::new(), line)
    });
    LogLine {
        ts,
        job: source.job.clone(),
        job_id: source.job_id,
        attempt: source.attempt,
        step,
        step_index,
        stream,
        line,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, Duration, Utc};

    use super::{
        Chunk, ChunkSink, ChunkSource, LogCursor, LogReader, LogSource, LogWriter, Stream,
        escape_into, unescape,
    };
    use crate::state::JobId;
    use crate::store::error::Error;

    fn source(dir: &Path, job: i64, name: &str, start: DateTime<Utc>) -> LogSource {
        LogSource {
            job_id: JobId(job),
            job: name.to_owned(),
            attempt: 1,
            path: dir.join(format!("1/{job}-1.log")),
            not_before: start,
        }
    }

    #[test]
    fn a_cursor_survives_its_token() {
        let mut cursor = LogCursor::default();
        assert_eq!(cursor.to_token(), "");
        cursor.offsets.insert((crate::state::JobId(7), 1), 120);
        cursor.offsets.insert((crate::state::JobId(3), 2), 5);
        cursor.offsets.insert((crate::state::JobId(9), 1), 0);
        let token = cursor.to_token();
        assert_eq!(token, "3.2.5,7.1.120");
        let back = LogCursor::from_token(&token).expect("a token");
        assert_eq!(back.offset(crate::state::JobId(7), 1), 120);
        assert_eq!(back.offset(crate::state::JobId(3), 2), 5);
        assert_eq!(LogCursor::from_token("").expect("empty").to_token(), "");
        for bad in ["x", "1.2", "1.2.3.4", "1.a.3"] {
            assert!(LogCursor::from_token(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn escaping_round_trips_awkward_bytes() {
        for (bytes, field) in [
            (&b"plain"[..], false),
            (b"a\\b\nc\td e\xff\xfe", false),
            (b"step with spaces \\ and \n", true),
            (b"", true),
            (b"trailing\\", false),
        ] {
            let mut out = Vec::new();
            escape_into(&mut out, bytes, field);
            assert!(!out.contains(&b'\n'));
            if field {
                assert!(!out.contains(&b' '));
            }
            assert_eq!(unescape(&out), bytes);
        }
    }

    #[test]
    fn round_trip_with_invalid_utf8_tabs_and_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let src = source(dir.path(), 7, "report[format=csv]", start);
        let mut writer = LogWriter::create(&src.path).unwrap();
        writer
            .write_line(start, Stream::Stdout, 0, "fetch data", b"hello\tworld")
            .unwrap();
        writer
            .write_line(start, Stream::Stderr, 1, "", b"bad \xff byte \\n")
            .unwrap();
        writer
            .write_line(start, Stream::Stdout, 1, "", b"")
            .unwrap();
        let summary = writer.finish().unwrap();
        assert_eq!(summary.lines, 3);
        assert_eq!(summary.bytes, fs::metadata(&src.path).unwrap().len());

        let lines: Vec<_> = LogReader::new(vec![src], None)
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].step, "fetch data");
        assert_eq!(lines[0].line, "hello\tworld");
        assert_eq!(lines[0].job, "report[format=csv]");
        assert_eq!(lines[0].ts.timestamp_micros(), start.timestamp_micros());
        assert_eq!(lines[1].stream, Stream::Stderr);
        assert_eq!(lines[1].step_index, 1);
        assert_eq!(lines[1].line, "bad \u{fffd} byte \\n");
        assert_eq!(lines[2].line, "");
        let json = serde_json::to_value(&lines[1]).unwrap();
        assert_eq!(json["stream"], "stderr");
        assert_eq!(json["job"], "report[format=csv]");
    }

    #[test]
    fn merges_jobs_in_timestamp_order_and_follows() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let at = |ms| t0 + Duration::milliseconds(ms);
        let a = source(dir.path(), 1, "a", t0);
        let b = source(dir.path(), 2, "b", at(5));
        let late = source(dir.path(), 3, "late", at(100));
        let mut wa = LogWriter::create(&a.path).unwrap();
        let mut wb = LogWriter::create(&b.path).unwrap();
        for (ms, line) in [(0, "a0"), (10, "a10"), (30, "a30")] {
            wa.write_line(at(ms), Stream::Stdout, 0, "s", line.as_bytes())
                .unwrap();
        }
        for (ms, line) in [(5, "b5"), (20, "b20"), (40, "b40")] {
            wb.write_line(at(ms), Stream::Stdout, 0, "s", line.as_bytes())
                .unwrap();
        }
        wa.flush().unwrap();
        wb.flush().unwrap();
        // A half-written record at the end is not read yet.
        let mut partial = fs::OpenOptions::new().append(true).open(&b.path).unwrap();
        partial.write_all(b"123 o 0 s unfinished").unwrap();

        let sources = vec![late.clone(), b.clone(), a.clone()];
        let mut reader = LogReader::new(sources.clone(), None);
        let texts: Vec<_> = reader.by_ref().map(|line| line.unwrap().line).collect();
        assert_eq!(texts, ["a0", "b5", "a10", "b20", "a30", "b40"]);

        // Follow: only what was appended since.
        let cursor = reader.cursor();
        wa.write_line(at(50), Stream::Stdout, 0, "s", b"a50")
            .unwrap();
        wa.flush().unwrap();
        let mut reader = LogReader::new(sources.clone(), Some(&cursor));
        let texts: Vec<_> = reader.by_ref().map(|line| line.unwrap().line).collect();
        assert_eq!(texts, ["a50"]);
        let cursor = reader.cursor();
        assert_eq!(LogReader::new(sources, Some(&cursor)).count(), 0);

        // One job only.
        let only_b: Vec<_> = LogReader::new(vec![b], None)
            .map(|l| l.unwrap().line)
            .collect();
        assert_eq!(only_b, ["b5", "b20", "b40"]);
    }

    #[test]
    fn malformed_records_do_not_stop_reading() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), 1, "a", Utc::now());
        fs::create_dir_all(src.path.parent().unwrap()).unwrap();
        fs::write(&src.path, b"garbage line\n1 o 0 s fine\n\xff\xff\n").unwrap();
        let lines: Vec<_> = LogReader::new(vec![src], None)
            .map(|l| l.unwrap().line)
            .collect();
        assert_eq!(lines, ["garbage line", "fine", "\u{fffd}\u{fffd}"]);
    }

    /// Logs kept in chunks in memory, as a database keeps them: (job, attempt, chunk).
    #[derive(Debug, Default)]
    struct MemoryChunks(Mutex<Vec<(JobId, u32, Chunk)>>);

    impl ChunkSource for MemoryChunks {
        fn chunk_at(&self, job: JobId, attempt: u32, offset: u64) -> Result<Option<Chunk>, Error> {
            let chunks = self.0.lock().unwrap();
            Ok(chunks
                .iter()
                .filter(|(j, a, c)| *j == job && *a == attempt && c.offset <= offset)
                .map(|(_, _, chunk)| chunk)
                .max_by_key(|chunk| chunk.offset)
                .filter(|chunk| chunk.offset + chunk.bytes.len() as u64 > offset)
                .cloned())
        }
    }

    /// Appends to a [`MemoryChunks`]; fails the calls `fail` counts down.
    #[derive(Debug)]
    struct MemorySink {
        chunks: Arc<MemoryChunks>,
        job: JobId,
        fail: usize,
    }

    impl ChunkSink for MemorySink {
        fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(Error::JobNotFound(self.job));
            }
            let mut chunks = self.chunks.0.lock().unwrap();
            let end = chunks
                .iter()
                .filter(|(job, _, _)| *job == self.job)
                .map(|(_, _, c)| c.offset + c.bytes.len() as u64)
                .max();
            assert_eq!(end.unwrap_or(0), offset, "chunks follow on");
            let chunk = Chunk {
                offset,
                bytes: bytes.to_vec(),
            };
            chunks.push((self.job, 1, chunk));
            Ok(())
        }
    }

    #[test]
    fn logs_in_chunks_read_like_files() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Arc::new(MemoryChunks::default());
        let t0 = Utc::now();
        let file_source = source(dir.path(), 1, "a", t0);
        let chunk_source = LogSource {
            path: PathBuf::from("chunks/1-1"),
            ..file_source.clone()
        };
        let mut file = LogWriter::create(&file_source.path).unwrap();
        let sink = MemorySink {
            chunks: Arc::clone(&memory),
            job: JobId(1),
            fail: 0,
        };
        let mut chunked = LogWriter::to_chunks(Box::new(sink), chunk_source.path.clone(), 0);
        assert_eq!(chunked.path(), Path::new("chunks/1-1"));
        // Lines short and long (past the 64 KiB buffer), flushed at uneven points.
        let lines: Vec<Vec<u8>> = (0..400_usize)
            .map(|n| {
                let len = if n % 97 == 5 { 70_000 } else { n * 37 % 300 };
                let mut line = format!("{n} ").into_bytes();
                line.extend(std::iter::repeat_n(b"ab\\ \n"[n % 5], len));
                line
            })
            .collect();
        for (n, line) in lines.iter().enumerate() {
            let at = t0 + Duration::microseconds(i64::try_from(n).unwrap());
            for writer in [&mut file, &mut chunked] {
                writer.write_line(at, Stream::Stdout, 0, "s", line).unwrap();
                if n % 13 == 0 {
                    writer.flush().unwrap();
                }
            }
        }
        assert_eq!(file.finish().unwrap(), chunked.finish().unwrap());
        assert!(memory.0.lock().unwrap().len() > 20);

        // Read one line at a time, each by a new reader from the last one's cursor.
        let (mut file_cursor, mut chunk_cursor) = (None, None);
        for line in &lines {
            let mut from_file = LogReader::new(vec![file_source.clone()], file_cursor.as_ref());
            let source: Arc<dyn ChunkSource> = memory.clone();
            let mut from_chunks =
                LogReader::from_chunks(vec![chunk_source.clone()], source, chunk_cursor.as_ref());
            let expected = String::from_utf8_lossy(line);
            assert_eq!(from_file.next().unwrap().unwrap().line, expected);
            assert_eq!(from_chunks.next().unwrap().unwrap().line, expected);
            assert_eq!(from_file.cursor(), from_chunks.cursor());
            (file_cursor, chunk_cursor) = (Some(from_file.cursor()), Some(from_chunks.cursor()));
        }
        let source: Arc<dyn ChunkSource> = memory;
        assert_eq!(
            LogReader::from_chunks(vec![chunk_source], source, chunk_cursor.as_ref()).count(),
            0
        );
    }

    #[test]
    fn a_failed_chunk_is_stored_with_the_next_flush_and_its_error_kept() {
        let memory = Arc::new(MemoryChunks::default());
        let sink = MemorySink {
            chunks: Arc::clone(&memory),
            job: JobId(1),
            fail: 1,
        };
        let mut writer = LogWriter::to_chunks(Box::new(sink), PathBuf::from("chunks/1-1"), 0);
        let t0 = Utc::now();
        writer
            .write_line(t0, Stream::Stdout, 0, "s", b"one")
            .unwrap();
        // The store's own error, not an I/O error on a file.
        assert!(matches!(writer.flush(), Err(Error::JobNotFound(JobId(1)))));
        writer
            .write_line(t0, Stream::Stdout, 0, "s", b"two")
            .unwrap();
        writer.finish().unwrap();
        let source = LogSource {
            job_id: JobId(1),
            job: "a".to_owned(),
            attempt: 1,
            path: PathBuf::from("chunks/1-1"),
            not_before: t0,
        };
        let lines: Vec<_> = LogReader::from_chunks(vec![source], memory, None)
            .map(|line| line.unwrap().line)
            .collect();
        assert_eq!(lines, ["one", "two"]);
    }
}
