//! [`TriggerStore`] for SQLite.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::store::error::Error;
use crate::store::triggers::{SeenFile, TriggerState, TriggerStore};

use super::{SqliteStore, to_ms};

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl TriggerStore for SqliteStore {
    fn trigger_state(
        &self,
        workflow: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<TriggerState, Error> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO trigger_state (workflow, trigger_key, first_seen) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![workflow, key, to_ms(now)])?;
            let (first, last, cursor): (i64, Option<i64>, Option<i64>) = tx
                .prepare_cached(
                    "SELECT first_seen, last_fire, cursor FROM trigger_state
                     WHERE workflow = ?1 AND trigger_key = ?2",
                )?
                .query_row(params![workflow, key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            Ok(TriggerState { first_seen: from_ms(first), last_fire: last.map(from_ms), cursor })
        })
    }

    fn set_last_fire(&self, workflow: &str, key: &str, at: DateTime<Utc>) -> Result<(), Error> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE trigger_state SET last_fire = max(coalesce(last_fire, ?3), ?3)
                 WHERE workflow = ?1 AND trigger_key = ?2",
            )?
            .execute(params![workflow, key, to_ms(at)])?;
            Ok(())
        })
    }

    fn set_cursor(&self, workflow: &str, key: &str, cursor: i64) -> Result<(), Error> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE trigger_state SET cursor = ?3 WHERE workflow = ?1 AND trigger_key = ?2",
            )?
            .execute(params![workflow, key, cursor])?;
            Ok(())
        })
    }

    fn seen_files(&self, workflow: &str, key: &str) -> Result<Vec<SeenFile>, Error> {
        self.read(|tx| {
            let mut select = tx.prepare_cached(
                "SELECT path, mtime, size FROM trigger_files WHERE workflow = ?1 AND trigger_key = ?2",
            )?;
            let rows = select.query_map(params![workflow, key], |row| {
                Ok(SeenFile {
                    path: row.get(0)?,
                    mtime_ms: row.get(1)?,
                    size: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn mark_files(&self, workflow: &str, key: &str, files: &[SeenFile]) -> Result<(), Error> {
        self.write(|tx| {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO trigger_files (workflow, trigger_key, path, mtime, size) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (workflow, trigger_key, path) DO UPDATE SET mtime = ?4, size = ?5",
            )?;
            for file in files {
                upsert.execute(params![
                    workflow,
                    key,
                    file.path,
                    file.mtime_ms,
                    i64::try_from(file.size).unwrap_or(i64::MAX)
                ])?;
            }
            Ok(())
        })
    }

    fn finished_runs_after(&self, workflow: &str, after: i64) -> Result<Vec<(i64, String)>, Error> {
        self.read(|tx| {
            let mut select = tx.prepare_cached(
                "SELECT id, status FROM runs
                 WHERE workflow = ?1 AND id > ?2
                   AND status IN ('succeeded', 'failed', 'cancelled')
                 ORDER BY id",
            )?;
            let rows = select.query_map(params![workflow, after], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn max_run_id(&self) -> Result<i64, Error> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT max(id) FROM runs")?
                .query_row([], |row| row.get::<_, Option<i64>>(0))
                .optional()?
                .flatten()
                .unwrap_or(0))
        })
    }
}
