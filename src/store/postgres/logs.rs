//! [`LogStore`] for PostgreSQL: step output in `log_chunks`, so that any host reads what an
//! attempt on any other host printed.
//!
//! An attempt's writer buffers lines exactly as the SQLite store's does and stores each flush
//! of its buffer as one row, in the byte format of the SQLite store's log files
//! (`store::logs`); a reader reads an attempt's rows in `seq` order as if they were its file,
//! one row at a time, so either side holds one row of a log at a time (a writer's buffer, or
//! one longer record) however much a step prints.
//!
//! The `seq` of a row is the byte offset of its first byte in the attempt's log (the length
//! of the rows before it). Rows sort by it as by a counter, and a reader that continues from a
//! cursor (a byte offset, as for a file) finds its row by the primary key alone, without
//! adding up the lengths of the rows before it. Where SQLite keeps `logs/<run>/<job>-<n>.log`
//! beside the database, the `log_path` of an attempt row here is only a name
//! ([`log_path`]), for messages.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use postgres::{Client, Statement};

use crate::state::{JobId, RunId};
use crate::store::error::Error;
use crate::store::logs::{
    Chunk, ChunkSink, ChunkSource, LogCursor, LogReader, LogSource, LogStore, LogWriter,
};

use super::write::log_path;
use super::{PgStore, lock, outside_runtime, to_sql_u64};

/// Stores one chunk; `seq` is its offset in the attempt's log.
const INSERT_CHUNK: &str = "INSERT INTO log_chunks (job_id, attempt, seq, run_id, data)
                            VALUES ($1, $2, $3, $4, $5)";

/// The chunk that holds byte `$3` of an attempt's log: the last one starting at or before it,
/// if it reaches past it.
const CHUNK_AT: &str = "SELECT seq, data FROM (
                            SELECT seq, data FROM log_chunks
                            WHERE job_id = $1 AND attempt = $2 AND seq <= $3
                            ORDER BY seq DESC LIMIT 1
                        ) AS chunk
                        WHERE seq + octet_length(data) > $3";

impl LogStore for PgStore {
    fn log_writer(&self, run: RunId, job: JobId, attempt: u32) -> Result<LogWriter, Error> {
        let number = i64::from(attempt);
        // An attempt's log is appended to, as a file is: a second writer goes on after the
        // chunks already stored.
        let (written, insert) = self.call(|client| {
            let end: Option<i64> = client
                .query_opt(
                    "SELECT seq + octet_length(data)::BIGINT FROM log_chunks
                     WHERE job_id = $1 AND attempt = $2
                     ORDER BY seq DESC LIMIT 1",
                    &[&job.0, &number],
                )?
                .map(|row| row.try_get(0))
                .transpose()?;
            let insert = client.prepare(INSERT_CHUNK)?;
            Ok((end.unwrap_or(0), insert))
        })?;
        let sink = PgChunkSink {
            client: self.shared_client(),
            insert,
            run,
            job,
            attempt: number,
        };
        Ok(LogWriter::to_chunks(
            Box::new(sink),
            PathBuf::from(log_path(job, attempt)),
            u64::try_from(written).unwrap_or(0),
        ))
    }

    fn read_logs(
        &self,
        run: RunId,
        job: Option<JobId>,
        cursor: Option<&LogCursor>,
    ) -> Result<LogReader, Error> {
        let (sources, select) = self.call(|client| {
            let sources = log_sources(client, run, job)?;
            let select = client.prepare(CHUNK_AT)?;
            Ok((sources, select))
        })?;
        let chunks = PgChunkSource {
            client: self.shared_client(),
            select,
        };
        Ok(LogReader::from_chunks(sources, Arc::new(chunks), cursor))
    }
}

/// The logs of a run's attempts (or of one job's), as the SQLite store lists them: from the
/// attempt rows, oldest attempt first.
fn log_sources(
    client: &mut Client,
    run: RunId,
    job: Option<JobId>,
) -> Result<Vec<LogSource>, Error> {
    let rows = client.query(
        "SELECT a.job_id, j.name, a.number, a.log_path, a.started_at
         FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
         WHERE j.run_id = $1 AND ($2::BIGINT IS NULL OR j.id = $2)
         ORDER BY a.started_at, a.job_id, a.number",
        &[&run.0, &job.map(|job| job.0)],
    )?;
    rows.iter()
        .map(|row| {
            let number: i64 = row.try_get(2)?;
            let path: String = row.try_get(3)?;
            let started_at: i64 = row.try_get(4)?;
            Ok(LogSource {
                job_id: JobId(row.try_get(0)?),
                job: row.try_get(1)?,
                attempt: u32::try_from(number).unwrap_or(u32::MAX),
                path: PathBuf::from(path),
                not_before: DateTime::from_timestamp_millis(started_at).unwrap_or_default(),
            })
        })
        .collect()
}

/// Stores a writer's flushes as rows of `log_chunks`, on the store's connection.
struct PgChunkSink {
    client: Arc<Mutex<super::Connection>>,
    /// [`INSERT_CHUNK`], prepared on that connection.
    insert: Statement,
    run: RunId,
    job: JobId,
    attempt: i64,
}

impl fmt::Debug for PgChunkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgChunkSink")
            .field("run", &self.run)
            .field("job", &self.job)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl ChunkSink for PgChunkSink {
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let seq = to_sql_u64(offset);
        let (insert, client) = (&self.insert, &self.client);
        let params = (self.job.0, self.attempt, self.run.0);
        // Writers run inside the engine's tokio runtime.
        outside_runtime(|| {
            let (job, attempt, run) = params;
            lock(client).execute(insert, &[&job, &attempt, &seq, &run, &bytes])?;
            Ok(())
        })
    }
}

/// Reads the rows of `log_chunks` for a reader, one at a time, on the store's connection.
struct PgChunkSource {
    client: Arc<Mutex<super::Connection>>,
    /// [`CHUNK_AT`], prepared on that connection.
    select: Statement,
}

impl fmt::Debug for PgChunkSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgChunkSource").finish_non_exhaustive()
    }
}

impl ChunkSource for PgChunkSource {
    fn chunk_at(&self, job: JobId, attempt: u32, offset: u64) -> Result<Option<Chunk>, Error> {
        let (number, offset) = (i64::from(attempt), to_sql_u64(offset));
        let row = outside_runtime(|| {
            lock(&self.client).query_opt(&self.select, &[&job.0, &number, &offset])
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let seq: i64 = row.try_get(0)?;
        Ok(Some(Chunk {
            offset: u64::try_from(seq).unwrap_or(0),
            bytes: row.try_get(1)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::super::test_support::store;
    use super::super::{PgStore, to_ms};
    use super::log_path;
    use crate::state::{JobId, RunId};
    use crate::store::logs::{LogStore, Stream};

    /// A run with jobs `names`, inserted directly (the tests need only the rows the logs'
    /// queries join).
    fn run_with_jobs(store: &PgStore, names: &[&str]) -> (RunId, Vec<JobId>) {
        let names: Vec<String> = names.iter().map(|&name| name.to_owned()).collect();
        store
            .write(|tx| {
                let run: i64 = tx
                    .query_one(
                        "INSERT INTO runs (workflow, def_hash, status, params, trigger, created_at)
                         VALUES ('wf', 'h', 'running', '{}', '{}', 0) RETURNING id",
                        &[],
                    )?
                    .get(0);
                let mut jobs = Vec::new();
                for name in &names {
                    let job: i64 = tx
                        .query_one(
                            "INSERT INTO jobs (run_id, name, base_name, queue, metadata, needs,
                                               status)
                             VALUES ($1, $2, $2, 'default', '{}', '[]', 'running') RETURNING id",
                            &[&run, name],
                        )?
                        .get(0);
                    jobs.push(JobId(job));
                }
                Ok((RunId(run), jobs))
            })
            .unwrap()
    }

    /// Records attempt `number` of `job` as started at `at`, as the running transition does.
    fn start(store: &PgStore, job: JobId, number: u32, at: DateTime<Utc>) {
        let path = log_path(job, number);
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO attempts (job_id, number, status, started_at, log_path)
                     VALUES ($1, $2, 'running', $3, $4)",
                    &[&job.0, &i64::from(number), &to_ms(at), &path],
                )?;
                Ok(())
            })
            .unwrap();
    }

    /// Stores `bytes` as a chunk at `seq` directly, as a writer (or damage) would.
    fn put_chunk(store: &PgStore, run: RunId, job: JobId, number: u32, seq: i64, bytes: &[u8]) {
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO log_chunks (job_id, attempt, seq, run_id, data)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&job.0, &i64::from(number), &seq, &run.0, &bytes],
                )?;
                Ok(())
            })
            .unwrap();
    }

    /// The chunks of an attempt's log: (seq, length) in order.
    fn chunks(store: &PgStore, job: JobId, number: u32) -> Vec<(i64, usize)> {
        store
            .read(|tx| {
                let rows = tx.query(
                    "SELECT seq, data FROM log_chunks WHERE job_id = $1 AND attempt = $2
                     ORDER BY seq",
                    &[&job.0, &i64::from(number)],
                )?;
                Ok(rows
                    .iter()
                    .map(|row| (row.get(0), row.get::<_, Vec<u8>>(1).len()))
                    .collect())
            })
            .unwrap()
    }

    fn texts(
        store: &PgStore,
        run: RunId,
        job: Option<JobId>,
        cursor: Option<&crate::store::LogCursor>,
    ) -> (Vec<String>, crate::store::LogCursor) {
        let mut reader = store.read_logs(run, job, cursor).unwrap();
        let lines = reader.by_ref().map(|line| line.unwrap().line).collect();
        (lines, reader.cursor())
    }

    #[test]
    fn round_trip_with_invalid_utf8_tabs_and_spaces() {
        let store = store();
        let (run, jobs) = run_with_jobs(&store, &["report[format=csv]"]);
        let start_at = Utc::now();
        start(&store, jobs[0], 1, start_at);
        let mut writer = store.log_writer(run, jobs[0], 1).unwrap();
        writer
            .write_line(start_at, Stream::Stdout, 0, "fetch data", b"hello\tworld")
            .unwrap();
        writer
            .write_line(start_at, Stream::Stderr, 1, "", b"bad \xff byte \\n")
            .unwrap();
        writer
            .write_line(start_at, Stream::Stdout, 1, "", b"")
            .unwrap();
        let summary = writer.finish().unwrap();
        assert_eq!(summary.lines, 3);
        let stored = chunks(&store, jobs[0], 1);
        assert_eq!(stored.len(), 1, "one row per flush");
        assert_eq!(summary.bytes, stored[0].1 as u64);

        let lines: Vec<_> = store
            .read_logs(run, None, None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].step, "fetch data");
        assert_eq!(lines[0].line, "hello\tworld");
        assert_eq!(lines[0].job, "report[format=csv]");
        assert_eq!(lines[0].attempt, 1);
        assert_eq!(lines[0].ts.timestamp_micros(), start_at.timestamp_micros());
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
        let store = store();
        let (run, jobs) = run_with_jobs(&store, &["a", "b", "late"]);
        let (a, b, late) = (jobs[0], jobs[1], jobs[2]);
        let t0 = Utc::now();
        let at = |ms| t0 + Duration::milliseconds(ms);
        start(&store, a, 1, t0);
        start(&store, b, 1, at(5));
        start(&store, late, 1, at(100));
        let mut wa = store.log_writer(run, a, 1).unwrap();
        let mut wb = store.log_writer(run, b, 1).unwrap();
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
        let b_end = i64::try_from(chunks(&store, b, 1)[0].1).unwrap();
        put_chunk(&store, run, b, 1, b_end, b"123 o 0 s unfinished");

        let (lines, cursor) = texts(&store, run, None, None);
        assert_eq!(lines, ["a0", "b5", "a10", "b20", "a30", "b40"]);

        // Follow: only what was appended since.
        wa.write_line(at(50), Stream::Stdout, 0, "s", b"a50")
            .unwrap();
        wa.flush().unwrap();
        let (lines, cursor) = texts(&store, run, None, Some(&cursor));
        assert_eq!(lines, ["a50"]);
        assert!(texts(&store, run, None, Some(&cursor)).0.is_empty());
        // The half-written record, completed in a later chunk, is read once, whole.
        put_chunk(&store, run, b, 1, b_end + 20, b"\n");
        let (lines, cursor) = texts(&store, run, None, Some(&cursor));
        assert_eq!(lines, ["unfinished"]);
        assert!(texts(&store, run, None, Some(&cursor)).0.is_empty());

        // One job only.
        let (only_b, _) = texts(&store, run, Some(b), None);
        assert_eq!(only_b, ["b5", "b20", "b40", "unfinished"]);
    }

    #[test]
    fn malformed_records_do_not_stop_reading() {
        let store = store();
        let (run, jobs) = run_with_jobs(&store, &["a"]);
        start(&store, jobs[0], 1, Utc::now());
        put_chunk(
            &store,
            run,
            jobs[0],
            1,
            0,
            b"garbage line\n1 o 0 s fine\n\xff\xff\n",
        );
        assert_eq!(
            texts(&store, run, None, None).0,
            ["garbage line", "fine", "\u{fffd}\u{fffd}"]
        );
    }

    #[test]
    fn a_runs_logs_merge_across_jobs_and_attempts() {
        let store = store();
        let (run, jobs) = run_with_jobs(&store, &["a", "b"]);
        let (a, b) = (jobs[0], jobs[1]);
        let t0 = Utc::now();
        let at = |ms| t0 + Duration::milliseconds(ms);
        start(&store, a, 1, at(0));
        start(&store, b, 1, at(1));
        let mut wa = store.log_writer(run, a, 1).unwrap();
        let mut wb = store.log_writer(run, b, 1).unwrap();
        wa.write_line(at(2), Stream::Stdout, 0, "s", b"a1").unwrap();
        wb.write_line(at(3), Stream::Stderr, 0, "t", b"b1\xff")
            .unwrap();
        wa.write_line(at(4), Stream::Stdout, 0, "s", b"a2").unwrap();
        assert_eq!(wa.finish().unwrap().lines, 2);
        wb.finish().unwrap();
        start(&store, a, 2, at(7));
        let mut retry = store.log_writer(run, a, 2).unwrap();
        retry
            .write_line(at(8), Stream::Stdout, 0, "s", b"a3")
            .unwrap();
        retry.flush().unwrap();

        let lines: Vec<_> = store
            .read_logs(run, None, None)
            .unwrap()
            .map(|line| line.unwrap())
            .collect();
        let seen: Vec<_> = lines
            .iter()
            .map(|line| (line.job.as_str(), line.attempt, line.line.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", 1, "a1"),
                ("b", 1, "b1\u{fffd}"),
                ("a", 1, "a2"),
                ("a", 2, "a3")
            ]
        );

        let mut reader = store.read_logs(run, Some(b), None).unwrap();
        assert_eq!(reader.by_ref().count(), 1);
        let cursor = reader.cursor();
        assert_eq!(
            store
                .read_logs(run, Some(b), Some(&cursor))
                .unwrap()
                .count(),
            0
        );
        // Another run's reader sees none of it.
        let (other, _) = run_with_jobs(&store, &["a"]);
        assert_eq!(store.read_logs(other, None, None).unwrap().count(), 0);
    }

    #[test]
    fn a_big_log_goes_in_bounded_chunks_and_reads_back_whole() {
        let store = store();
        let (run, jobs) = run_with_jobs(&store, &["loud"]);
        let t0 = Utc::now();
        start(&store, jobs[0], 1, t0);
        let mut writer = store.log_writer(run, jobs[0], 1).unwrap();
        // 3,000 lines of about 1 KiB: several buffers' worth, records split across chunks.
        let line = |n: usize| format!("{n:05} {}", "x".repeat(1000 + n % 7));
        for n in 0..3000 {
            writer
                .write_line(t0, Stream::Stdout, 0, "s", line(n).as_bytes())
                .unwrap();
        }
        let summary = writer.finish().unwrap();
        let stored = chunks(&store, jobs[0], 1);
        assert!(stored.len() > 10, "{} chunks", stored.len());
        let mut offset = 0;
        for &(seq, len) in &stored {
            assert_eq!(seq, offset, "seq is the chunk's offset in the log");
            assert!(
                len > 0 && len <= 64 * 1024,
                "a chunk is at most a buffer: {len}"
            );
            offset += i64::try_from(len).unwrap();
        }
        assert_eq!(u64::try_from(offset).unwrap(), summary.bytes);

        let mut reader = store.read_logs(run, None, None).unwrap();
        for n in 0..1234 {
            assert_eq!(reader.next().unwrap().unwrap().line, line(n));
        }
        // A cursor in the middle of a chunk continues there.
        let cursor = reader.cursor();
        let rest: Vec<_> = store
            .read_logs(run, None, Some(&cursor))
            .unwrap()
            .map(|l| l.unwrap().line)
            .collect();
        assert_eq!(rest.len(), 3000 - 1234);
        assert!(
            rest.iter()
                .enumerate()
                .all(|(i, text)| *text == line(1234 + i))
        );
    }

    #[test]
    fn a_second_writer_appends_after_the_stored_chunks() {
        let store = store();
        let (run, jobs) = run_with_jobs(&store, &["a"]);
        let t0 = Utc::now();
        start(&store, jobs[0], 1, t0);
        let mut first = store.log_writer(run, jobs[0], 1).unwrap();
        first
            .write_line(t0, Stream::Stdout, 0, "s", b"one")
            .unwrap();
        let written = first.finish().unwrap().bytes;
        let mut second = store.log_writer(run, jobs[0], 1).unwrap();
        second
            .write_line(t0, Stream::Stdout, 0, "s", b"two")
            .unwrap();
        let summary = second.finish().unwrap();
        assert_eq!(summary.lines, 1);
        assert_eq!(summary.bytes, written * 2, "the size counts the whole log");
        assert_eq!(texts(&store, run, None, None).0, ["one", "two"]);
        // Nothing is stored for a writer that wrote nothing.
        store.log_writer(run, jobs[0], 1).unwrap().finish().unwrap();
        assert_eq!(chunks(&store, jobs[0], 1).len(), 2);
    }

    #[test]
    fn writers_and_readers_work_inside_a_tokio_runtime() {
        let store = store();
        let (run, jobs) = run_with_jobs(&store, &["a"]);
        let t0 = Utc::now();
        start(&store, jobs[0], 1, t0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let lines = runtime.block_on(async {
            let mut writer = store.log_writer(run, jobs[0], 1).unwrap();
            writer
                .write_line(t0, Stream::Stdout, 0, "s", b"inside")
                .unwrap();
            writer.flush().unwrap();
            drop(writer);
            texts(&store, run, None, None).0
        });
        assert_eq!(lines, ["inside"]);
    }
}
