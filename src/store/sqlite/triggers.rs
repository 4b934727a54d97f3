//! [`TriggerStore`] for SQLite.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::error::Error;
use crate::store::triggers::{FireClaim, SeenFile, TriggerState, TriggerStore, WaitingFire};

use super::{SqliteStore, to_ms};

/// Claims a time trigger's instant inside `tx` (see [`FireClaim`]): `last_fire` moves to
/// it, or the claim fails with [`Error::AlreadyFired`] when it is not past `last_fire`.
pub(super) fn claim_fire(tx: &Connection, fire: &FireClaim) -> Result<(), Error> {
    let claimed = tx
        .prepare_cached(
            "INSERT INTO trigger_state AS t (workflow, trigger_key, first_seen, last_fire)
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (workflow, trigger_key) DO UPDATE SET last_fire = excluded.last_fire
             WHERE t.last_fire IS NULL OR t.last_fire < excluded.last_fire",
        )?
        .execute(params![fire.workflow, fire.key, to_ms(fire.at)])?;
    if claimed == 1 {
        Ok(())
    } else {
        Err(fire.taken())
    }
}

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
            let new = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO trigger_state (workflow, trigger_key, first_seen) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![workflow, key, to_ms(now)])?
                == 1;
            let (first, last, cursor): (i64, Option<i64>, Option<i64>) = tx
                .prepare_cached(
                    "SELECT first_seen, last_fire, cursor FROM trigger_state
                     WHERE workflow = ?1 AND trigger_key = ?2",
                )?
                .query_row(params![workflow, key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            Ok(TriggerState { first_seen: from_ms(first), last_fire: last.map(from_ms), cursor, new })
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

    fn push_waiting(
        &self,
        workflow: &str,
        trigger: &serde_json::Value,
        params: &serde_json::Value,
        at: DateTime<Utc>,
        fire: Option<&FireClaim>,
    ) -> Result<i64, Error> {
        self.write(|tx| {
            if let Some(fire) = fire {
                claim_fire(tx, fire)?;
            }
            tx.prepare_cached(
                "INSERT INTO trigger_waiting (workflow, trigger, params, queued_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![workflow, trigger.to_string(), params.to_string(), to_ms(at)])?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn waiting_fires(&self) -> Result<Vec<WaitingFire>, Error> {
        self.read(|tx| {
            let mut select = tx.prepare_cached(
                "SELECT id, workflow, trigger, params, queued_at FROM trigger_waiting ORDER BY id",
            )?;
            let rows = select.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, workflow, trigger, params, at) = row?;
                out.push(WaitingFire {
                    id,
                    workflow,
                    // A record this store wrote; a damaged one still starts its run.
                    trigger: serde_json::from_str(&trigger).unwrap_or(serde_json::Value::Null),
                    params: serde_json::from_str(&params).unwrap_or(serde_json::Value::Null),
                    queued_at: from_ms(at),
                });
            }
            Ok(out)
        })
    }

    fn take_waiting(&self, id: i64) -> Result<bool, Error> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM trigger_waiting WHERE id = ?1")?
                .execute([id])?
                == 1)
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn trigger_state_is_created_once_and_last_fire_only_moves_forward() {
        let (_dir, store) = store();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let first = store.trigger_state("wf", "0:x", t0).unwrap();
        assert!(first.new);
        assert_eq!(first.first_seen, t0);
        let later = t0 + chrono::TimeDelta::hours(1);
        store.set_last_fire("wf", "0:x", later).unwrap();
        store.set_last_fire("wf", "missing", later).unwrap();
        store.set_last_fire("wf", "0:x", t0).unwrap();
        let again = store.trigger_state("wf", "0:x", later).unwrap();
        assert!(!again.new);
        assert_eq!(again.first_seen, t0);
        assert_eq!(again.last_fire, Some(later));
    }

    #[test]
    fn a_fire_is_claimed_once_with_what_it_creates() {
        let (_dir, store) = store();
        crate::store::triggers::conformance::a_fire_is_claimed_once_with_what_it_creates(&store);
    }

    #[test]
    fn waiting_fires_keep_their_order_and_are_taken_once() {
        let (_dir, store) = store();
        let at = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let a = store
            .push_waiting(
                "wf",
                &json!({"type": "every"}),
                &json!({"x": "1"}),
                at,
                None,
            )
            .unwrap();
        let b = store
            .push_waiting("wf", &json!({"type": "file"}), &json!({}), at, None)
            .unwrap();
        assert!(a < b);
        let waiting = store.waiting_fires().unwrap();
        assert_eq!(waiting.iter().map(|w| w.id).collect::<Vec<_>>(), [a, b]);
        assert_eq!(waiting[0].trigger, json!({"type": "every"}));
        assert_eq!(waiting[0].params, json!({"x": "1"}));
        assert!(store.take_waiting(a).unwrap());
        assert!(!store.take_waiting(a).unwrap());
        assert_eq!(store.waiting_fires().unwrap().len(), 1);
    }
}
