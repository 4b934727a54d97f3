//! Schema migrations: the numbered SQL files of `migrations/`, applied in order.
//!
//! `PRAGMA user_version` holds the highest migration number applied and
//! `PRAGMA application_id` marks the file as CoreFlow's, so another program's SQLite file is
//! refused rather than altered. Migrating runs in one `BEGIN IMMEDIATE` transaction that reads
//! the version again, so two processes opening a new environment at once apply it once.
//!
//! Migrations are numbered by the feature that needs them, and features do not always land
//! in number order (4 before 3, say). So the table `schema_migrations` records each number
//! applied, and every number of [`MIGRATIONS`] missing from it is applied, in order, even one
//! below `user_version`. A database made before that table existed is taken to hold every
//! migration up to its `user_version` whose first table exists.

use rusqlite::{Connection, TransactionBehavior};

/// `PRAGMA application_id` of a CoreFlow database: "CFLW".
pub(super) const APPLICATION_ID: i32 = 0x4346_4c57;

/// Every migration, numbered from 1; the number becomes `user_version`.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_queues.sql")),
    (3, include_str!("migrations/0003_blocks.sql")),
    (4, include_str!("migrations/0004_triggers.sql")),
    (5, include_str!("migrations/0005_trigger_waiting.sql")),
    (6, include_str!("migrations/0006_jobs_by_run_status.sql")),
    (7, include_str!("migrations/0007_worker_start_time.sql")),
    (8, include_str!("migrations/0008_leader.sql")),
    (9, include_str!("migrations/0009_parent_runs.sql")),
    (10, include_str!("migrations/0010_job_items.sql")),
    (11, include_str!("migrations/0011_continue_on_error.sql")),
    (12, include_str!("migrations/0012_notifications.sql")),
    (13, include_str!("migrations/0013_resources.sql")),
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
    MIGRATIONS
        .iter()
        .map(|(version, _)| *version)
        .max()
        .unwrap_or(0)
}

/// Brings the schema to [`latest_version`].
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Problem> {
    // Usual case: already current; find out without the write lock, in one snapshot: read
    // statement by statement, a version of 0 followed by the tables another process's
    // migration has just committed looked like another program's database.
    let current = {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let current = check(&tx)? == latest_version() && applied(&tx)?.len() == MIGRATIONS.len();
        tx.finish()?;
        current
    };
    if current {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version = check(&tx)?;
    let mut done = applied(&tx)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
         version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) WITHOUT ROWID",
    )?;
    if done.is_empty() && version > 0 {
        done = legacy_applied(&tx, version)?;
        for number in &done {
            record(&tx, *number)?;
        }
    }
    let mut sorted: Vec<&(i32, &str)> = MIGRATIONS.iter().collect();
    sorted.sort_by_key(|(number, _)| *number);
    for (number, sql) in sorted {
        if !done.contains(number) {
            tx.execute_batch(sql)?;
            record(&tx, *number)?;
        }
    }
    tx.pragma_update(None, "user_version", version.max(latest_version()))?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()?;
    Ok(())
}

/// The migrations `schema_migrations` lists among those this build knows (none when the
/// table does not exist yet).
fn applied(conn: &Connection) -> Result<Vec<i32>, Problem> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare("SELECT version FROM schema_migrations")?;
    let numbers = statement.query_map([], |row| row.get::<_, i32>(0))?;
    let mut known = Vec::new();
    for number in numbers {
        let number = number?;
        if MIGRATIONS.iter().any(|(n, _)| *n == number) {
            known.push(number);
        }
    }
    Ok(known)
}

fn record(tx: &Connection, number: i32) -> Result<(), Problem> {
    tx.execute(
        "INSERT OR IGNORE INTO schema_migrations (version, applied_at) \
         VALUES (?1, CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
        [number],
    )?;
    Ok(())
}

/// What a database migrated by number alone holds: each migration up to `version` whose
/// first `CREATE TABLE` exists (or that creates no table).
fn legacy_applied(conn: &Connection, version: i32) -> Result<Vec<i32>, Problem> {
    let mut done = Vec::new();
    for (number, sql) in MIGRATIONS {
        if *number > version {
            continue;
        }
        let present = match first_table(sql) {
            Some(table) => conn.query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |row| row.get(0),
            )?,
            None => true,
        };
        if present {
            done.push(*number);
        }
    }
    Ok(done)
}

/// The name of the first table a migration creates.
fn first_table(sql: &str) -> Option<&str> {
    let start = sql.find("CREATE TABLE ")? + "CREATE TABLE ".len();
    let rest = sql[start..].trim_start();
    let rest = rest
        .strip_prefix("IF NOT EXISTS ")
        .unwrap_or(rest)
        .trim_start();
    let end = rest.find(|c: char| c.is_whitespace() || c == '(')?;
    Some(&rest[..end])
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

    use super::{
        APPLICATION_ID, MIGRATIONS, Problem, applied, first_table, latest_version, migrate,
    };

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

    fn table_exists(conn: &Connection, name: &str) -> bool {
        conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Migration 3 (DataBlocks) may land after a later number was applied: a database
    /// migrated by number alone up to the latest, without 3, still gets it.
    #[test]
    fn a_migration_that_lands_after_a_higher_number_is_still_applied() {
        let late = 3;
        let mut conn = Connection::open_in_memory().unwrap();
        for (number, sql) in MIGRATIONS {
            if *number != late {
                conn.execute_batch(sql).unwrap();
            }
        }
        conn.pragma_update(None, "user_version", latest_version())
            .unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        assert!(!table_exists(&conn, "block_versions"));
        migrate(&mut conn).unwrap();
        assert!(table_exists(&conn, "block_versions"));
        assert_eq!(applied(&conn).unwrap().len(), MIGRATIONS.len());

        // With the ledger in place, a missing number is found the same way.
        conn.execute_batch(
            "DROP TABLE block_consumptions; DROP TABLE block_productions; \
             DROP TABLE block_versions; DELETE FROM schema_migrations WHERE version = 3",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert!(table_exists(&conn, "block_versions"));
        migrate(&mut conn).unwrap();
    }

    /// A daemon, its workers and a `coreflow runs` may open a new environment at the same
    /// moment: switching it to WAL answered "database is locked" at once, and the version
    /// check saw another opener's fresh tables as another program's.
    #[test]
    fn processes_opening_a_new_environment_together_all_succeed() {
        for _ in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let dir = dir.path().to_owned();
                    std::thread::spawn(move || crate::store::SqliteStore::open(&dir).map(|_| ()))
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn first_table_names_what_a_migration_creates() {
        assert_eq!(first_table("-- x\nCREATE TABLE runs (\n id"), Some("runs"));
        assert_eq!(first_table("CREATE TABLE IF NOT EXISTS t(x)"), Some("t"));
        assert_eq!(first_table("ALTER TABLE jobs ADD COLUMN x"), None);
    }
}
