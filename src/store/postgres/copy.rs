//! [`CopyStore`] for PostgreSQL: the tables read in one repeatable-read snapshot, written in
//! one transaction under the environment's write lock; attempt logs as `log_chunks` rows
//! (`seq` the byte offset of each piece, as a log writer stores them), and each identity
//! column's sequence moved past the source's ids (`setval`).

use postgres::types::ToSql;

use crate::store::copy::{
    AttemptLog, CopyError, CopyStore, Imported, Kind, Rows, Snapshot, TABLES, Table, Value,
    describe_contents, renamed_logs,
};
use crate::store::error::Error;

use super::tx::Tx;
use super::write::log_path;
use super::{PgStore, to_sql_u64};

/// The chunk of an attempt's log after offset `$3` (`-1` for the first).
const NEXT_CHUNK: &str = "SELECT seq, data FROM log_chunks
                          WHERE job_id = $1 AND attempt = $2 AND seq > $3
                          ORDER BY seq LIMIT 1";

const INSERT_CHUNK: &str = "INSERT INTO log_chunks (job_id, attempt, seq, run_id, data)
                            VALUES ($1, $2, $3, $4, $5)";

impl CopyStore for PgStore {
    fn location(&self) -> String {
        self.shown().to_owned()
    }

    fn export(&self) -> Result<Snapshot, Error> {
        self.read(|tx| {
            let mut snapshot = Snapshot::default();
            for table in TABLES {
                snapshot.set(table, read_table(tx, table)?);
            }
            for table in TABLES.iter().filter(|table| table.generated_id) {
                let last: Option<i64> = tx
                    .query_one(
                        "SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass)",
                        &[&table.name],
                    )?
                    .get(0);
                if let Some(last) = last {
                    snapshot.high_water.insert(table.name, last);
                }
            }
            Ok(snapshot)
        })
    }

    fn export_log(
        &self,
        log: &AttemptLog,
        each: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let (job, attempt) = (log.job.0, i64::from(log.attempt));
        let mut after = -1_i64;
        loop {
            let chunk = self.call(|client| {
                let row = client.query_opt(NEXT_CHUNK, &[&job, &attempt, &after])?;
                row.map(|row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, Vec<u8>>(1)?)))
                    .transpose()
            })?;
            let Some((seq, bytes)) = chunk else {
                return Ok(());
            };
            each(&bytes)?;
            after = seq;
        }
    }

    fn contents(&self) -> Result<Vec<(&'static str, u64)>, Error> {
        self.read(contents)
    }

    fn import(&self, snapshot: &Snapshot, source: &dyn CopyStore) -> Result<Imported, CopyError> {
        let location = self.location();
        // A refusal commits a transaction that wrote nothing.
        self.write(|tx| {
            let held = contents(tx)?;
            if !held.is_empty() {
                return Ok(Err(CopyError::NotEmpty {
                    location,
                    holds: describe_contents(&held),
                }));
            }
            Ok(Ok(write_all(tx, snapshot, source)?))
        })?
    }
}

/// Writes every row of `snapshot` and every log, then moves the sequences on.
fn write_all(
    tx: &mut Tx<'_>,
    snapshot: &Snapshot,
    source: &dyn CopyStore,
) -> Result<Imported, Error> {
    // The default queue every environment starts with gives way to the source's.
    tx.execute("DELETE FROM queues", &[])?;
    for table in TABLES {
        let renamed;
        let rows = if table.name == "attempts" {
            renamed = renamed_logs(snapshot, |log| log_path(log.job, log.attempt));
            &renamed.0[..]
        } else {
            snapshot.rows(table.name)
        };
        let insert = tx.prepare(&table.insert_sql(|n| format!("${n}")))?;
        for row in rows {
            let values: Vec<Box<dyn ToSql + Sync>> = table
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| to_sql(column.kind, value))
                .collect();
            let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
            tx.execute(&insert, &params)?;
        }
    }
    for table in TABLES.iter().filter(|table| table.generated_id) {
        let floor = snapshot.next_id_floor(table);
        if floor > 0 {
            tx.query_one(
                "SELECT setval(pg_get_serial_sequence($1, 'id'), $2)",
                &[&table.name, &floor],
            )?;
        }
    }
    let mut imported = Imported::default();
    let insert = tx.prepare(INSERT_CHUNK)?;
    for log in snapshot.logs() {
        let (job, attempt, run) = (log.job.0, i64::from(log.attempt), log.run.0);
        let mut offset = 0_u64;
        source.export_log(&log, &mut |bytes| {
            let seq = to_sql_u64(offset);
            tx.execute(&insert, &[&job, &attempt, &seq, &run, &bytes])?;
            offset += bytes.len() as u64;
            Ok(())
        })?;
        imported.logs += 1;
        imported.log_bytes += offset;
    }
    Ok(imported)
}

/// Every row of `table`, each value read as its column's kind.
fn read_table(tx: &mut Tx<'_>, table: &Table) -> Result<Rows, Error> {
    let rows = tx.query(&table.select_sql(), &[])?;
    let mut read = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut values = Vec::with_capacity(table.columns.len());
        for (index, column) in table.columns.iter().enumerate() {
            let value = match column.kind {
                Kind::Int => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
                Kind::Text => row.try_get::<_, Option<String>>(index)?.map(Value::Text),
            };
            values.push(value.unwrap_or(Value::Null));
        }
        read.push(values);
    }
    Ok(Rows(read))
}

/// The tables that are not empty, with their rows (the default queue does not count), and
/// stored logs.
fn contents(tx: &mut Tx<'_>) -> Result<Vec<(&'static str, u64)>, Error> {
    let mut held = Vec::new();
    let counts = TABLES
        .iter()
        .map(|table| (table.name, table.count_sql()))
        .chain([("log_chunks", "SELECT count(*) FROM log_chunks".to_owned())]);
    for (name, sql) in counts {
        let count: i64 = tx.query_one(&sql, &[])?.get(0);
        if count > 0 {
            held.push((name, u64::try_from(count).unwrap_or(0)));
        }
    }
    Ok(held)
}

/// A value as a parameter of its column's type (a NULL too must be typed).
fn to_sql(kind: Kind, value: &Value) -> Box<dyn ToSql + Sync> {
    match (kind, value) {
        (Kind::Int, Value::Int(n)) => Box::new(Some(*n)),
        (Kind::Text, Value::Text(text)) => Box::new(Some(text.clone())),
        (Kind::Int, Value::Text(text)) => Box::new(text.trim().parse::<i64>().ok()),
        (Kind::Text, Value::Int(n)) => Box::new(Some(n.to_string())),
        (Kind::Int, Value::Null) => Box::new(None::<i64>),
        (Kind::Text, Value::Null) => Box::new(None::<String>),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::test_support::store;
    use crate::state::JobState;
    use crate::store::copy::CopyStore;
    use crate::store::logs::{LogStore, Stream};
    use crate::store::runs::{Change, RunStore, Transition};
    use crate::store::sqlite::test_support::{job, run, store as sqlite_store};

    /// SQLite → PostgreSQL → SQLite: ids, the log's bytes and the sequences survive.
    #[test]
    fn a_copy_round_trips_through_postgresql() {
        let (_dir, from) = sqlite_store();
        let (run_id, jobs) = from
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        // Attempt 1 starts (its row names the log), writes and fails.
        let job_id = jobs[0];
        let to = |state| Change::Job(Transition::new(job_id, state, Utc::now()));
        from.apply(&[to(JobState::Running)]).unwrap();
        let mut writer = from.log_writer(run_id, job_id, 1).unwrap();
        for n in 0..5000 {
            let line = format!("line {n}");
            writer
                .write_line(Utc::now(), Stream::Stderr, 0, "s", line.as_bytes())
                .unwrap();
        }
        writer.finish().unwrap();
        from.apply(&[to(JobState::Failed)]).unwrap();
        let snapshot = from.export().unwrap();

        let pg = store();
        let imported = pg.import(&snapshot, &from).unwrap();
        let back = pg.export().unwrap();
        assert_eq!(back.rows("runs"), snapshot.rows("runs"));
        assert_eq!(back.rows("jobs"), snapshot.rows("jobs"));
        let lines: Vec<String> = pg
            .read_logs(run_id, None, None)
            .unwrap()
            .map(|line| line.unwrap().line)
            .collect();
        let expected: Vec<String> = from
            .read_logs(run_id, None, None)
            .unwrap()
            .map(|line| line.unwrap().line)
            .collect();
        assert_eq!(lines, expected);
        assert_eq!(imported.logs, u64::try_from(snapshot.logs().len()).unwrap());
        let (next, _) = pg
            .create_run(&run("wf", vec![job("b", &[], JobState::Queued)]))
            .unwrap();
        assert_eq!(next.0, run_id.0 + 1);

        let dir = tempfile::tempdir().unwrap();
        let again = crate::store::SqliteStore::open(&dir.path().join("env")).unwrap();
        again.import(&back, &pg).unwrap();
        let copied: Vec<String> = again
            .read_logs(run_id, None, None)
            .unwrap()
            .map(|line| line.unwrap().line)
            .collect();
        assert_eq!(copied, expected);
        // The PostgreSQL destination is no longer empty.
        let error = pg.import(&snapshot, &from).unwrap_err();
        assert!(error.to_string().contains("is not empty"), "{error}");
    }
}
