//! [`CopyStore`] for SQLite: the tables read in one read transaction, written in one
//! `BEGIN IMMEDIATE` transaction; attempt logs as the files `logs/<run>/<job>-<n>.log`
//! beside the database, and id high-water marks in `sqlite_sequence`.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Transaction, TransactionBehavior, params_from_iter};

use crate::store::copy::{
    AttemptLog, CopyError, CopyStore, Imported, LOG_PIECE, Rows, Snapshot, TABLES, Table, Value,
    describe_contents, renamed_logs,
};
use crate::store::error::Error;
use crate::store::private;

use super::{SqliteStore, log_relative_path};

impl CopyStore for SqliteStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn export(&self) -> Result<Snapshot, Error> {
        self.read(|tx| {
            let mut snapshot = Snapshot::default();
            for table in TABLES {
                snapshot.set(table, self.read_table(tx, table)?);
            }
            let mut select = tx.prepare("SELECT name, seq FROM sqlite_sequence")?;
            let marks = select.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            for mark in marks {
                let (name, seq) = mark?;
                if let Some(table) = TABLES.iter().find(|t| t.generated_id && t.name == name) {
                    snapshot.high_water.insert(table.name, seq);
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
        let path = self.dir.join(&log.path);
        let error = |source| Error::Log {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            // An attempt that never got to write its log has none: an empty one.
            Err(source) if source.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(error(source)),
        };
        let mut piece = vec![0; LOG_PIECE];
        loop {
            let read = match file.read(&mut piece) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(source) if source.kind() == ErrorKind::Interrupted => continue,
                Err(source) => return Err(error(source)),
            };
            each(&piece[..read])?;
        }
    }

    fn contents(&self) -> Result<Vec<(&'static str, u64)>, Error> {
        self.read(contents)
    }

    fn import(&self, snapshot: &Snapshot, source: &dyn CopyStore) -> Result<Imported, CopyError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::from)?;
        let held = contents(&tx)?;
        if !held.is_empty() {
            return Err(CopyError::NotEmpty {
                location: self.location(),
                holds: describe_contents(&held),
            });
        }
        // The default queue every environment starts with gives way to the source's.
        tx.execute("DELETE FROM queues", []).map_err(Error::from)?;
        for table in TABLES {
            let renamed;
            let rows = if table.name == "attempts" {
                renamed = renamed_logs(snapshot, |log| {
                    log_relative_path(log.run, log.job, log.attempt)
                });
                &renamed.0[..]
            } else {
                snapshot.rows(table.name)
            };
            let mut insert = tx
                .prepare(&table.insert_sql(|n| format!("?{n}")))
                .map_err(Error::from)?;
            for row in rows {
                insert
                    .execute(params_from_iter(row.iter().map(to_sql)))
                    .map_err(Error::from)?;
            }
        }
        for table in TABLES.iter().filter(|table| table.generated_id) {
            keep_high_water(&tx, table, snapshot.next_id_floor(table))?;
        }
        let mut imported = Imported::default();
        for log in snapshot.logs() {
            let path = self.log_path(log.run, log.job, log.attempt);
            let error = |source| Error::Log {
                path: path.clone(),
                source,
            };
            if let Some(parent) = path.parent() {
                private::create_dir_all(parent).map_err(error)?;
            }
            let mut file = private::file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(error)?;
            source.export_log(&log, &mut |bytes| {
                imported.log_bytes += bytes.len() as u64;
                file.write_all(bytes).map_err(error)
            })?;
            file.sync_all().map_err(error)?;
            imported.logs += 1;
        }
        tx.commit().map_err(Error::from)?;
        Ok(imported)
    }
}

impl SqliteStore {
    /// Every row of `table`, each value as its column's kind.
    fn read_table(&self, tx: &Transaction<'_>, table: &Table) -> Result<Rows, Error> {
        let mut select = tx.prepare(&table.select_sql())?;
        let mut rows = select.query([])?;
        let mut read = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(table.columns.len());
            for (index, column) in table.columns.iter().enumerate() {
                let value = match row.get_ref(index)? {
                    ValueRef::Null => Ok(Value::Null),
                    ValueRef::Integer(n) => Ok(Value::Int(n)),
                    ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                        .map(|text| Value::Text(text.to_owned()))
                        .map_err(|_| "text that is not UTF-8".to_owned()),
                    ValueRef::Real(_) | ValueRef::Blob(_) => {
                        Err("a value of neither kind the store writes".to_owned())
                    }
                };
                let value = value.and_then(|value| value.coerce(column.kind));
                values.push(value.map_err(|detail| Error::Environment {
                    path: self.dir.join(super::DATABASE_FILE),
                    detail: format!("{}.{}: {detail}", table.name, column.name),
                })?);
            }
            read.push(values);
        }
        Ok(Rows(read))
    }
}

/// The tables that are not empty, with their rows (the default queue does not count).
fn contents(tx: &Transaction<'_>) -> Result<Vec<(&'static str, u64)>, Error> {
    let mut held = Vec::new();
    for table in TABLES {
        let count: i64 = tx.query_row(&table.count_sql(), [], |row| row.get(0))?;
        if count > 0 {
            held.push((table.name, u64::try_from(count).unwrap_or(0)));
        }
    }
    Ok(held)
}

/// Makes `table` hand out ids above `floor` only: SQLite's `sqlite_sequence` row of an
/// AUTOINCREMENT table (it follows the ids inserted, but not the ones the source had
/// handed out and deleted). A table without AUTOINCREMENT has no row there and needs none.
fn keep_high_water(tx: &Transaction<'_>, table: &Table, floor: i64) -> Result<(), Error> {
    if floor <= 0 {
        return Ok(());
    }
    let autoincrement: bool = tx.query_row(
        "SELECT coalesce(sum(sql LIKE '%AUTOINCREMENT%'), 0) > 0 FROM sqlite_master
         WHERE type = 'table' AND name = ?1",
        [table.name],
        |row| row.get(0),
    )?;
    if !autoincrement {
        return Ok(());
    }
    let changed = tx.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
        rusqlite::params![table.name, floor],
    )?;
    if changed == 0 {
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
            rusqlite::params![table.name, floor],
        )?;
    }
    Ok(())
}

fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Int(n) => SqlValue::Integer(*n),
        Value::Text(text) => SqlValue::Text(text.clone()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::test_support::{job, run, store};
    use crate::state::JobState;
    use crate::store::copy::{CopyStore, Value, table};
    use crate::store::logs::{LogStore, Stream};
    use crate::store::runs::RunStore;

    #[test]
    fn a_copy_keeps_ids_logs_and_the_id_sequence() {
        let (_from_dir, from) = store();
        from.create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        let (second, jobs) = from
            .create_run(&run("wf", vec![job("b", &[], JobState::Queued)]))
            .unwrap();
        // An attempt with a log (the row, then the file).
        from.conn()
            .execute(
                "INSERT INTO attempts (job_id, number, status, started_at, log_path)
                 VALUES (?1, 1, 'failed', 0, ?2)",
                rusqlite::params![jobs[0].0, super::log_relative_path(second, jobs[0], 1)],
            )
            .unwrap();
        let mut writer = from.log_writer(second, jobs[0], 1).unwrap();
        writer
            .write_line(Utc::now(), Stream::Stdout, 0, "s", b"hello")
            .unwrap();
        writer.finish().unwrap();
        // Runs up to 40 were handed out (newer ones deleted): those ids must not come back.
        from.conn()
            .execute(
                "UPDATE sqlite_sequence SET seq = 40 WHERE name = 'runs'",
                [],
            )
            .unwrap();

        let snapshot = from.export().unwrap();
        assert_eq!(snapshot.count("runs"), 2);
        assert_eq!(snapshot.high_water.get("runs"), Some(&40));

        let dir = tempfile::tempdir().unwrap();
        let to = super::SqliteStore::open(&dir.path().join("env")).unwrap();
        let imported = to.import(&snapshot, &from).unwrap();
        assert_eq!(imported.logs, 1);
        assert!(imported.log_bytes > 0);
        assert_eq!(to.run(second).unwrap().unwrap().id, second);
        let mut lines = to.read_logs(second, None, None).unwrap();
        let line = lines.next().unwrap().unwrap();
        assert_eq!(line.line, "hello");
        let (next, _) = to
            .create_run(&run("wf", vec![job("c", &[], JobState::Queued)]))
            .unwrap();
        assert_eq!(next.0, 41, "ids go on after the source's high-water mark");

        // A second import is refused: the destination is no longer empty.
        let error = to.import(&snapshot, &from).unwrap_err();
        assert!(error.to_string().contains("rows of runs"), "{error}");
        let queues = table("queues");
        let rows = to.export().unwrap();
        assert!(
            rows.rows("queues")
                .iter()
                .any(|row| row[queues.column("name")] == Value::Text("default".into()))
        );
    }
}
