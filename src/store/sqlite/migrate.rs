//! Schema migrations: the numbered SQL files of `migrations/`, applied in order.
//!
//! `PRAGMA user_version` holds the number of the last migration applied and
//! `PRAGMA application_id` marks the file as CoreFlow's, so another program's SQLite file is
//! refused rather than altered. Migrating runs in one `BEGIN IMMEDIATE` transaction that reads
//! the version again, so two processes opening a new environment at once apply it once.

use rusqlite::{Connection, TransactionBehavior};

/// `PRAGMA application_id` of a CoreFlow database: "CFLW".
pub(super) const APPLICATION_ID: i32 = 0x4346_4c57;

/// Every migration, numbered from 1; the number becomes `user_version`.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_queues.sql")),
];

/// Why migrating failed.
#[derive(Debug)]
pub(super) enum Problem {
    /// SQLite failed (includes "file is not a database").
    Sqlite(rusqlite::Error),
    /// The file is a database, but not one this version of CoreFlow can use.
    Foreign(String),
}

impl From<rusqlite::Error> for Problem {
    fn from(error: rusqlite::Error) -> Self {
        Problem::Sqlite(error)
    }
}

/// The schema version this build writes.
pub(super) fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// Brings the schema to [`latest_version`].
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Problem> {
    // Usual case: already current; find out without the write lock.
    if check(conn)? == latest_version() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version = check(&tx)?;
    for (number, sql) in MIGRATIONS {
        if *number > version {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", number)?;
        }
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()?;
    Ok(())
}

/// The schema version, after checking that the file is CoreFlow's (or empty) and not newer.
fn check(conn: &Connection) -> Result<i32, Problem> {
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let version: i32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if application_id == 0 && version == 0 {
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
        if tables > 0 {
            return Err(Problem::Foreign(
                "not a CoreFlow database (it holds another program's tables)".to_owned(),
            ));
        }
        return Ok(0);
    }
    if application_id != APPLICATION_ID {
        return Err(Problem::Foreign(format!(
            "not a CoreFlow database (application id {application_id:#x})"
        )));
    }
    if version > latest_version() {
        return Err(Problem::Foreign(format!(
            "made by a newer CoreFlow (schema version {version}, this one knows up to {})",
            latest_version()
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{APPLICATION_ID, Problem, latest_version, migrate};

    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let version: i32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, latest_version());
        let id: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        migrate(&mut conn).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN \
                 ('definitions', 'runs', 'jobs', 'attempts', 'steps', 'outputs')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 6);
    }

    #[test]
    fn refuses_foreign_and_newer_databases() {
        let mut foreign = Connection::open_in_memory().unwrap();
        foreign
            .execute_batch("CREATE TABLE notes (text TEXT)")
            .unwrap();
        assert!(matches!(migrate(&mut foreign), Err(Problem::Foreign(_))));

        let mut newer = Connection::open_in_memory().unwrap();
        migrate(&mut newer).unwrap();
        newer
            .pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        match migrate(&mut newer) {
            Err(Problem::Foreign(detail)) => assert!(detail.contains("newer"), "{detail}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
