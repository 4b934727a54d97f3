//! Notifications of ended runs (`notify:`) in SQLite: taking a run's notifications once,
//! and the record of every attempt.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::state::RunId;
use crate::store::error::Error;
use crate::store::runs::NotificationRecord;

use super::to_ms;

/// The run states after which notifications are sent.
const ENDED: &str = "('succeeded', 'failed', 'cancelled', 'skipped')";

pub(super) fn claim(tx: &Connection, run: RunId) -> Result<bool, Error> {
    let changed = tx
        .prepare_cached(&format!(
            "UPDATE runs SET notify_state = 'claimed'
             WHERE id = ?1 AND notify_state = 'pending' AND status IN {ENDED}"
        ))?
        .execute([run.0])?;
    Ok(changed == 1)
}

pub(super) fn pending(conn: &Connection, limit: usize) -> Result<Vec<RunId>, Error> {
    let mut select = conn.prepare_cached(&format!(
        "SELECT id FROM runs WHERE notify_state = 'pending' AND status IN {ENDED}
         ORDER BY id LIMIT ?1"
    ))?;
    let rows = select.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
        row.get::<_, i64>(0)
    })?;
    Ok(rows
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(RunId)
        .collect())
}

pub(super) fn record(tx: &Connection, record: &NotificationRecord) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO notifications (run_id, notifier, kind, target, attempt, ok, error, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        record.run.0,
        record.notifier,
        record.kind,
        record.target,
        record.attempt,
        record.ok,
        record.error,
        to_ms(record.at),
    ])?;
    Ok(())
}

pub(super) fn list(conn: &Connection, run: RunId) -> Result<Vec<NotificationRecord>, Error> {
    let mut select = conn.prepare_cached(
        "SELECT notifier, kind, target, attempt, ok, error, at FROM notifications
         WHERE run_id = ?1 ORDER BY id",
    )?;
    let rows = select.query_map([run.0], |row| {
        Ok(NotificationRecord {
            run,
            notifier: row.get(0)?,
            kind: row.get(1)?,
            target: row.get(2)?,
            attempt: row.get(3)?,
            ok: row.get(4)?,
            error: row.get(5)?,
            at: DateTime::<Utc>::from_timestamp_millis(row.get(6)?).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
