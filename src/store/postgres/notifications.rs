//! Notifications of ended runs (`notify:`) in PostgreSQL, as in the SQLite store.

use chrono::{DateTime, Utc};

use crate::state::RunId;
use crate::store::error::Error;
use crate::store::runs::NotificationRecord;

use super::to_ms;
use super::tx::Tx;

/// The run states after which notifications are sent.
const ENDED: &str = "('succeeded', 'failed', 'cancelled', 'skipped')";

pub(super) fn claim(tx: &mut Tx<'_>, run: RunId) -> Result<bool, Error> {
    let changed = tx.execute(
        format!(
            "UPDATE runs SET notify_state = 'claimed'
             WHERE id = $1 AND notify_state = 'pending' AND status IN {ENDED}"
        )
        .as_str(),
        &[&run.0],
    )?;
    Ok(changed == 1)
}

pub(super) fn pending(tx: &mut Tx<'_>, limit: usize) -> Result<Vec<RunId>, Error> {
    let rows = tx.query(
        format!(
            "SELECT id FROM runs WHERE notify_state = 'pending' AND status IN {ENDED}
             ORDER BY id LIMIT $1"
        )
        .as_str(),
        &[&i64::try_from(limit).unwrap_or(i64::MAX)],
    )?;
    rows.iter().map(|row| Ok(RunId(row.try_get(0)?))).collect()
}

pub(super) fn record(tx: &mut Tx<'_>, record: &NotificationRecord) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO notifications (run_id, notifier, kind, target, attempt, ok, error, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &record.run.0,
            &i64::from(record.notifier),
            &record.kind,
            &record.target,
            &i64::from(record.attempt),
            &i64::from(record.ok),
            &record.error,
            &to_ms(record.at),
        ],
    )?;
    Ok(())
}

pub(super) fn list(tx: &mut Tx<'_>, run: RunId) -> Result<Vec<NotificationRecord>, Error> {
    let rows = tx.query(
        "SELECT notifier, kind, target, attempt, ok, error, at FROM notifications
         WHERE run_id = $1 ORDER BY id",
        &[&run.0],
    )?;
    rows.iter()
        .map(|row| {
            Ok(NotificationRecord {
                run,
                notifier: u32::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
                kind: row.try_get(1)?,
                target: row.try_get(2)?,
                attempt: u32::try_from(row.try_get::<_, i64>(3)?).unwrap_or(0),
                ok: row.try_get::<_, i64>(4)? != 0,
                error: row.try_get(5)?,
                at: DateTime::<Utc>::from_timestamp_millis(row.try_get(6)?).unwrap_or_default(),
            })
        })
        .collect()
}
