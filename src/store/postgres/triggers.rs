//! [`TriggerStore`] for PostgreSQL: the tables `trigger_state`, `trigger_files` and
//! `trigger_waiting`, with the same records and ordering as the SQLite store.

use chrono::{DateTime, Utc};

use crate::store::error::Error;
use crate::store::triggers::{FireClaim, SeenFile, TriggerState, TriggerStore, WaitingFire};

use super::tx::Tx;
use super::{PgStore, to_ms, to_sql_u64};

/// Claims a time trigger's instant inside `tx` (see [`FireClaim`]): `last_fire` moves to
/// it, or the claim fails with [`Error::AlreadyFired`] when it is not past `last_fire`. A
/// second daemon claiming the same instant waits on the row lock of the first, then finds
/// it taken.
pub(super) fn claim_fire(tx: &mut Tx<'_>, fire: &FireClaim) -> Result<(), Error> {
    let at = to_ms(fire.at);
    let claimed = tx.execute(
        "INSERT INTO trigger_state AS t (workflow, trigger_key, first_seen, last_fire)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (workflow, trigger_key) DO UPDATE SET last_fire = excluded.last_fire
         WHERE t.last_fire IS NULL OR t.last_fire < excluded.last_fire",
        &[&fire.workflow, &fire.key, &at],
    )?;
    if claimed == 1 {
        Ok(())
    } else {
        Err(fire.taken())
    }
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl TriggerStore for PgStore {
    fn trigger_state(
        &self,
        workflow: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<TriggerState, Error> {
        let now = to_ms(now);
        self.write(|tx| {
            let new = tx.execute(
                "INSERT INTO trigger_state (workflow, trigger_key, first_seen) VALUES ($1, $2, $3)
                 ON CONFLICT (workflow, trigger_key) DO NOTHING",
                &[&workflow, &key, &now],
            )? == 1;
            let row = tx.query_one(
                "SELECT first_seen, last_fire, cursor FROM trigger_state
                 WHERE workflow = $1 AND trigger_key = $2",
                &[&workflow, &key],
            )?;
            let first: i64 = row.try_get(0)?;
            let last: Option<i64> = row.try_get(1)?;
            let cursor: Option<i64> = row.try_get(2)?;
            Ok(TriggerState {
                first_seen: from_ms(first),
                last_fire: last.map(from_ms),
                cursor,
                new,
            })
        })
    }

    fn set_last_fire(&self, workflow: &str, key: &str, at: DateTime<Utc>) -> Result<(), Error> {
        self.write(|tx| {
            tx.execute(
                "UPDATE trigger_state SET last_fire = GREATEST(COALESCE(last_fire, $3), $3)
                 WHERE workflow = $1 AND trigger_key = $2",
                &[&workflow, &key, &to_ms(at)],
            )?;
            Ok(())
        })
    }

    fn set_cursor(&self, workflow: &str, key: &str, cursor: i64) -> Result<(), Error> {
        self.write(|tx| {
            tx.execute(
                "UPDATE trigger_state SET cursor = $3 WHERE workflow = $1 AND trigger_key = $2",
                &[&workflow, &key, &cursor],
            )?;
            Ok(())
        })
    }

    fn seen_files(&self, workflow: &str, key: &str) -> Result<Vec<SeenFile>, Error> {
        self.read(|tx| {
            // By path, bytewise: the order of SQLite's primary-key index.
            let rows = tx.query(
                "SELECT path, mtime, size FROM trigger_files
                 WHERE workflow = $1 AND trigger_key = $2 ORDER BY path COLLATE \"C\"",
                &[&workflow, &key],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(SeenFile {
                        path: row.try_get(0)?,
                        mtime_ms: row.try_get(1)?,
                        size: u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    fn mark_files(&self, workflow: &str, key: &str, files: &[SeenFile]) -> Result<(), Error> {
        self.write(|tx| {
            let upsert = tx.prepare(
                "INSERT INTO trigger_files (workflow, trigger_key, path, mtime, size)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (workflow, trigger_key, path) DO UPDATE SET mtime = $4, size = $5",
            )?;
            for file in files {
                tx.execute(
                    &upsert,
                    &[
                        &workflow,
                        &key,
                        &file.path,
                        &file.mtime_ms,
                        &to_sql_u64(file.size),
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn finished_runs_after(&self, workflow: &str, after: i64) -> Result<Vec<(i64, String)>, Error> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, status FROM runs
                 WHERE workflow = $1 AND id > $2
                   AND status IN ('succeeded', 'failed', 'cancelled')
                 ORDER BY id",
                &[&workflow, &after],
            )?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect()
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
        let (trigger, params, at) = (trigger.to_string(), params.to_string(), to_ms(at));
        self.write(|tx| {
            if let Some(fire) = fire {
                claim_fire(tx, fire)?;
            }
            Ok(tx
                .query_one(
                    "INSERT INTO trigger_waiting (workflow, trigger, params, queued_at)
                     VALUES ($1, $2, $3, $4) RETURNING id",
                    &[&workflow, &trigger, &params, &at],
                )?
                .try_get(0)?)
        })
    }

    fn waiting_fires(&self) -> Result<Vec<WaitingFire>, Error> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, workflow, trigger, params, queued_at FROM trigger_waiting ORDER BY id",
                &[],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let trigger: String = row.try_get(2)?;
                let params: String = row.try_get(3)?;
                out.push(WaitingFire {
                    id: row.try_get(0)?,
                    workflow: row.try_get(1)?,
                    // A record this store wrote; a damaged one still starts its run.
                    trigger: serde_json::from_str(&trigger).unwrap_or(serde_json::Value::Null),
                    params: serde_json::from_str(&params).unwrap_or(serde_json::Value::Null),
                    queued_at: from_ms(row.try_get(4)?),
                });
            }
            Ok(out)
        })
    }

    fn take_waiting(&self, id: i64) -> Result<bool, Error> {
        self.write(|tx| Ok(tx.execute("DELETE FROM trigger_waiting WHERE id = $1", &[&id])? == 1))
    }

    fn max_run_id(&self) -> Result<i64, Error> {
        self.read(|tx| {
            let max: Option<i64> = tx.query_one("SELECT max(id) FROM runs", &[])?.try_get(0)?;
            Ok(max.unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::super::test_support::store;
    use super::*;

    #[test]
    fn trigger_state_is_created_once_and_last_fire_only_moves_forward() {
        let store = store();
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
        let store = store();
        crate::store::triggers::conformance::a_fire_is_claimed_once_with_what_it_creates(&store);
    }

    #[test]
    fn waiting_fires_keep_their_order_and_are_taken_once() {
        let store = store();
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
        assert_eq!(waiting[0].queued_at, at);
        assert!(store.take_waiting(a).unwrap());
        assert!(!store.take_waiting(a).unwrap());
        assert_eq!(store.waiting_fires().unwrap().len(), 1);
    }

    #[test]
    fn cursors_and_seen_files_are_remembered() {
        let store = store();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        store.trigger_state("wf", "1:after", t0).unwrap();
        store.set_cursor("wf", "1:after", 42).unwrap();
        assert_eq!(
            store.trigger_state("wf", "1:after", t0).unwrap().cursor,
            Some(42)
        );

        assert!(store.seen_files("wf", "2:file").unwrap().is_empty());
        let file = |path: &str, mtime_ms: i64, size: u64| SeenFile {
            path: path.to_owned(),
            mtime_ms,
            size,
        };
        store
            .mark_files(
                "wf",
                "2:file",
                &[
                    file("in/b.csv", 1, 10),
                    file("in/B.csv", 2, 20),
                    file("in/a.csv", 3, 30),
                ],
            )
            .unwrap();
        // A file seen again is updated, not doubled.
        store
            .mark_files("wf", "2:file", &[file("in/a.csv", 4, 40)])
            .unwrap();
        assert_eq!(
            store.seen_files("wf", "2:file").unwrap(),
            [
                file("in/B.csv", 2, 20),
                file("in/a.csv", 4, 40),
                file("in/b.csv", 1, 10)
            ]
        );
        assert!(store.seen_files("wf", "other").unwrap().is_empty());
    }

    #[test]
    fn finished_runs_are_listed_after_a_cursor_by_id() {
        let store = store();
        assert_eq!(store.max_run_id().unwrap(), 0);
        assert!(store.finished_runs_after("wf", 0).unwrap().is_empty());
        // Rows written directly: only the trigger tables are this file's.
        store
            .write(|tx| {
                for (workflow, status) in [
                    ("wf", "succeeded"),
                    ("wf", "running"),
                    ("other", "failed"),
                    ("wf", "cancelled"),
                    ("wf", "failed"),
                    ("wf", "skipped"),
                ] {
                    tx.execute(
                        "INSERT INTO runs (workflow, def_hash, status, params, trigger, created_at)
                         VALUES ($1, 'h', $2, '{}', '{}', 0)",
                        &[&workflow, &status],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(store.max_run_id().unwrap(), 6);
        let ended = |after| store.finished_runs_after("wf", after).unwrap();
        assert_eq!(
            ended(0),
            [
                (1, "succeeded".to_owned()),
                (4, "cancelled".to_owned()),
                (5, "failed".to_owned())
            ]
        );
        assert_eq!(ended(4), [(5, "failed".to_owned())]);
        assert!(ended(5).is_empty());
    }
}
