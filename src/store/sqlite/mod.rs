//! [`SqliteStore`]: the default [`RunStore`], one SQLite file per environment.
//!
//! The environment is a folder (`--env DIR`, default `./.coreflow`) holding `coreflow.db` and
//! `logs/`. Several `coreflow` processes may share it: the database runs in WAL mode (readers
//! never wait for the writer), every write transaction starts with `BEGIN IMMEDIATE` (it takes
//! the write lock up front, so it waits on the busy timeout instead of failing with "database is
//! locked" when upgrading a read), and the busy timeout is 10 s. `synchronous = NORMAL` keeps a
//! commit at about 23 µs: a killed process loses nothing it committed, a power loss may drop the
//! last commits but never corrupts the file.
//!
//! The schema is versioned by `PRAGMA user_version` and marked as CoreFlow's by
//! `PRAGMA application_id`; migrations are the numbered SQL files of `migrations/`.
//!
//! The connection sits behind a mutex, so one store may be shared between threads; each
//! process (or thread wanting its own lock-free path) may also open its own store.

mod blocks;
mod cancel;
mod copy;
mod leader;
mod metrics;
mod migrate;
mod notifications;
mod queues;
mod read;
mod recover;
mod retry;
mod triggers;
mod write;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::clock::{Clock, SystemClock};
use crate::state::{JobId, RunId};

use super::error::Error;
use super::logs::{LogCursor, LogReader, LogStore, LogWriter};
use super::owner::Owner;
use super::private;
use super::runs::{
    AttemptRecord, CancelOutcome, CancelRequests, Change, Definition, JobFilter, JobRecord,
    NewDefinition, NewRun, Recovered, RunFilter, RunRecord, RunStore,
};

/// The database file inside the environment folder.
pub const DATABASE_FILE: &str = "coreflow.db";

/// The log folder inside the environment folder.
pub const LOG_DIR: &str = "logs";
/// What CoreFlow keeps in an environment folder, made private by [`private::tighten`].
const OWNED: &[&str] = &[
    DATABASE_FILE,
    "coreflow.db-wal",
    "coreflow.db-shm",
    "coreflow.db-journal",
    LOG_DIR,
    "tmp",
    "blocks",
    "daemon.lock",
];

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL pages written between automatic checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// The size the WAL file is truncated to after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// The first bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// A state store in one SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    dir: PathBuf,
    conn: Mutex<Connection>,
    /// Where "now" comes from for what the store decides itself (leases, retry delays,
    /// cancel and recovery times).
    clock: Arc<dyn Clock>,
    /// Where DataBlock content lives when not in `<env>/blocks` (`--blocks`).
    blocks: Option<crate::store::BlocksLocation>,
}

impl SqliteStore {
    /// Opens the environment in `dir`, creating the folder, the database and its schema on first
    /// use and migrating an older schema.
    ///
    /// A file that is not a CoreFlow database (a text file, another program's SQLite file, a
    /// newer schema, a damaged header) gives [`Error::Environment`].
    pub fn open(dir: &Path) -> Result<SqliteStore, Error> {
        let environment = |detail: String| Error::Environment {
            path: dir.to_owned(),
            detail,
        };
        private::create_dir_all(&dir.join(LOG_DIR))
            .map_err(|error| environment(format!("cannot create the folder: {error}")))?;
        let tightened = private::tighten(dir, OWNED)
            .map_err(|error| environment(format!("cannot make the folder private: {error}")))?;
        if tightened > 0 {
            tracing::info!(
                env = %dir.display(),
                entries = tightened,
                "the environment was readable by other users: made private (folders 0700, files 0600)"
            );
        }
        let path = dir.join(DATABASE_FILE);
        check_header(&path).map_err(|detail| Error::Environment {
            path: path.clone(),
            detail,
        })?;
        // SQLite creates its -wal and -shm files with the database file's mode: a database
        // made private first keeps them private too.
        match private::file_options()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(environment(format!("cannot create the database: {error}"))),
        }
        let database = |error: Error| match error {
            Error::Environment { .. } => error,
            other => Error::Environment {
                path: path.clone(),
                detail: other.to_string(),
            },
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(&path, flags).map_err(|error| database(error.into()))?;
        configure(&mut conn).map_err(|error| database(error.into()))?;
        migrate::migrate(&mut conn).map_err(|error| match error {
            migrate::Problem::Sqlite(error) => database(error.into()),
            migrate::Problem::Foreign(detail) => Error::Environment {
                path: path.clone(),
                detail,
            },
        })?;
        Ok(SqliteStore {
            dir: dir.to_owned(),
            conn: Mutex::new(conn),
            clock: Arc::new(SystemClock),
            blocks: None,
        })
    }

    /// Where DataBlock content lives, when given (`--blocks`).
    #[must_use]
    pub fn blocks_location(&self) -> Option<&crate::store::BlocksLocation> {
        self.blocks.as_ref()
    }

    /// The same store keeping DataBlock content in `blocks` (`--blocks`), or in
    /// `<env>/blocks` when `None`.
    #[must_use]
    pub fn with_blocks(mut self, blocks: Option<crate::store::BlocksLocation>) -> SqliteStore {
        self.blocks = blocks;
        self
    }

    /// The same store reading "now" from `clock` (tests drive time by hand with a
    /// [`crate::clock::ManualClock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteStore {
        self.clock = clock;
        self
    }

    /// The clock the store reads "now" from.
    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The current instant by the store's clock.
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The environment folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of `attempt` of `job` in `run`.
    #[must_use]
    pub fn log_path(&self, run: RunId, job: JobId, attempt: u32) -> PathBuf {
        self.dir.join(log_relative_path(run, job, attempt))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock dropped its transaction, which rolled back: the
        // connection is usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `work` in a write transaction (`BEGIN IMMEDIATE`), committing when it succeeds.
    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = work(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `work` in a read transaction: one consistent snapshot, no write lock.
    fn read<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = work(&tx)?;
        tx.finish()?;
        Ok(value)
    }
}

/// Where the log of an attempt lives, relative to the environment folder.
fn log_relative_path(run: RunId, job: JobId, attempt: u32) -> String {
    format!("{LOG_DIR}/{run}/{job}-{attempt}.log")
}

/// Rejects a non-empty file that does not start like a SQLite database, with a clearer message
/// than SQLite's "file is not a database".
fn check_header(path: &Path) -> Result<(), String> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error.to_string()),
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(|error| error.to_string())?;
    if header.is_empty() || header == SQLITE_HEADER {
        Ok(())
    } else {
        Err("not a CoreFlow database (not a SQLite file)".to_owned())
    }
}

/// Waits out another process's write lock: SQLite's own handler sleeps 1 ms first and then
/// longer, while a transaction here holds the lock for a fraction of a millisecond, so
/// busy workers lost most of their time asleep. This one sleeps 20 µs first, doubling up to
/// 5 ms, for up to [`BUSY_TIMEOUT`] per lock.
fn busy_wait() -> impl FnMut(i32) -> bool + Send + 'static {
    let mut waited = Duration::ZERO;
    move |count| {
        if count == 0 {
            waited = Duration::ZERO;
        }
        if waited >= BUSY_TIMEOUT {
            return false;
        }
        let pause = Duration::from_micros(20 << count.clamp(0, 8)).min(Duration::from_millis(5));
        std::thread::sleep(pause);
        waited += pause;
        true
    }
}

fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(busy_wait()))?;
    conn.set_prepared_statement_cache_capacity(64);
    // The query planner stability guarantee: plans never depend on bound values. Without
    // it, SQLite recompiled cached statements on every new binding of a value it had
    // looked at while planning (a LIMIT, a comparison next to a partial index's condition):
    // about 14% of a standalone worker's CPU went to re-preparing statements.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // A closing connection leaves the log for the next one to fold in: that fold rewrites
    // every page the log holds and syncs the file, which made up several percent of a
    // short run's wall time. Writers still fold the log in when it passes 1,000 pages.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Switching to WAL needs a moment of exclusive access. SQLite answers SQLITE_BUSY at
    // once, without its busy handler, when another process opens the same new environment
    // at that moment (a daemon, its workers and a `coreflow runs` starting together), so
    // this retries for as long as the busy timeout.
    let started = std::time::Instant::now();
    loop {
        match conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        {
            Ok(_) => break,
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => return Err(error),
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A checkpoint fsyncs the WAL and the database. At the default of 1,000 pages it came
    // every ~125 job transactions and doubled their cost (about 130 µs → 70 µs per job on the
    // build machine); 10,000 pages (40 MB) makes it rare. The size limit then truncates the WAL
    // file after a checkpoint instead of leaving it at its peak.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    Ok(())
}

/// Milliseconds since the epoch, as stored.
fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// An unsigned figure as SQLite stores it.
fn to_sql_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl RunStore for SqliteStore {
    fn claim_notifications(&self, run: RunId) -> Result<bool, Error> {
        self.write(|tx| notifications::claim(tx, run))
    }

    fn pending_notifications(&self, limit: usize) -> Result<Vec<RunId>, Error> {
        notifications::pending(&self.conn(), limit)
    }

    fn record_notification(&self, record: &crate::store::NotificationRecord) -> Result<(), Error> {
        self.write(|tx| notifications::record(tx, record))
    }

    fn notifications(&self, run: RunId) -> Result<Vec<crate::store::NotificationRecord>, Error> {
        notifications::list(&self.conn(), run)
    }

    fn save_definition(&self, definition: &NewDefinition<'_>) -> Result<(), Error> {
        self.write(|tx| write::save_definition(tx, definition))
    }

    fn definition(&self, name: &str) -> Result<Option<Definition>, Error> {
        read::definition(&self.conn(), name, None)
    }

    fn definition_version(&self, name: &str, hash: &str) -> Result<Option<Definition>, Error> {
        read::definition(&self.conn(), name, Some(hash))
    }

    fn definitions(&self) -> Result<Vec<Definition>, Error> {
        read::definitions(&self.conn())
    }

    fn create_run(&self, run: &NewRun) -> Result<(RunId, Vec<JobId>), Error> {
        self.write(|tx| write::create_run(tx, run))
    }

    fn add_jobs(&self, run: RunId, jobs: &[crate::store::NewJob]) -> Result<Vec<JobId>, Error> {
        let created = to_ms(self.clock().now());
        self.write(|tx| write::insert_jobs(tx, run, jobs, created))
    }

    fn apply(&self, changes: &[Change]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        self.write(|tx| write::apply(tx, changes))
    }

    fn claim_run(&self, run: RunId, owner: &Owner) -> Result<bool, Error> {
        self.write(|tx| write::claim_run(tx, run, owner))
    }

    fn run(&self, id: RunId) -> Result<Option<RunRecord>, Error> {
        read::run(&self.conn(), id)
    }

    fn latest_run(&self) -> Result<Option<RunRecord>, Error> {
        read::latest_run(&self.conn())
    }

    fn resolve_run(&self, reference: &str) -> Result<Option<RunRecord>, Error> {
        read::resolve_run(&self.conn(), reference)
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
        read::runs(&self.conn(), filter)
    }

    fn jobs(&self, run: RunId) -> Result<Vec<JobRecord>, Error> {
        self.read(|tx| read::jobs(tx, read::Scope::Run(run)))
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>, Error> {
        self.read(|tx| Ok(read::jobs(tx, read::Scope::Job(id))?.pop()))
    }

    fn resolve_job(&self, reference: &str) -> Result<Option<JobRecord>, Error> {
        self.read(|tx| read::resolve_job(tx, reference))
    }

    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, Error> {
        read::list_jobs(&self.conn(), filter)
    }

    fn attempts(&self, job: JobId) -> Result<Vec<AttemptRecord>, Error> {
        self.read(|tx| read::attempts(tx, job))
    }

    fn outputs(&self, job: JobId) -> Result<BTreeMap<String, String>, Error> {
        read::outputs(&self.conn(), job)
    }

    fn request_cancel_run(&self, run: RunId) -> Result<CancelOutcome, Error> {
        let now = self.now();
        self.write(|tx| cancel::request_cancel_run(tx, run, now))
    }

    fn request_cancel_job(&self, job: JobId) -> Result<CancelOutcome, Error> {
        let now = self.now();
        self.write(|tx| cancel::request_cancel_job(tx, job, now))
    }

    fn take_cancel_requests(&self, run: RunId) -> Result<CancelRequests, Error> {
        // The common answer is "nothing": find that out without taking the write lock.
        let pending = read::cancel_requests(&self.conn(), run)?;
        if pending.is_empty() {
            return Ok(pending);
        }
        self.write(|tx| cancel::take_cancel_requests(tx, run))
    }

    fn reset_for_retry(
        &self,
        run: RunId,
        jobs: &[JobId],
        owner: Option<&Owner>,
    ) -> Result<(), Error> {
        self.write(|tx| retry::reset_for_retry(tx, run, jobs, owner))
    }

    fn recover_lost(&self, is_alive: &dyn Fn(&Owner) -> bool) -> Result<Recovered, Error> {
        // Look for dead owners without the write lock first: nearly always there are none.
        // `is_alive` runs without the connection locked, so it may use the store itself.
        let active = read::owned_active_runs(&self.conn())?;
        let dead: Vec<(RunId, Owner)> = active
            .into_iter()
            .filter(|(_, owner)| !is_alive(owner))
            .collect();
        if dead.is_empty() {
            return Ok(Recovered::default());
        }
        let now = self.now();
        self.write(|tx| recover::recover_lost(tx, &dead, now))
    }
}

impl LogStore for SqliteStore {
    fn log_writer(&self, run: RunId, job: JobId, attempt: u32) -> Result<LogWriter, Error> {
        LogWriter::create(&self.log_path(run, job, attempt))
    }

    fn read_logs(
        &self,
        run: RunId,
        job: Option<JobId>,
        cursor: Option<&LogCursor>,
    ) -> Result<LogReader, Error> {
        let sources = read::log_sources(&self.conn(), &self.dir, run, job)?;
        Ok(LogReader::new(sources, cursor))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixtures shared by the store's tests.

    use chrono::Utc;
    use serde_json::json;

    use crate::state::{JobState, RunState};
    use crate::store::owner::{Owner, host_identity};
    use crate::store::runs::{NewJob, NewRun};

    use super::SqliteStore;

    /// A new environment in a temporary folder.
    pub(crate) fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("env")).expect("open store");
        (dir, store)
    }

    /// An owner that existed on this host but has exited: a child spawned and reaped.
    pub(crate) fn dead_owner() -> Owner {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait for true");
        Owner {
            pid,
            start_time: 1,
            host: host_identity().to_owned(),
        }
    }

    /// A job in `default` needing `needs`.
    pub(crate) fn job(name: &str, needs: &[&str], state: JobState) -> NewJob {
        let base = name.split('[').next().unwrap_or(name);
        NewJob {
            name: name.to_owned(),
            base_name: base.to_owned(),
            matrix: serde_json::Value::Null,
            queue: "default".to_owned(),
            priority: 0,
            metadata: json!({"partition": "2026-01-01"}),
            needs: needs.iter().map(|need| (*need).to_owned()).collect(),
            max_attempts: 2,
            state,
            runs_on: Vec::new(),
            item: serde_json::Value::Null,
            continue_on_error: false,
            request: crate::scheduler::resources::Request::default(),
        }
    }

    /// A running run of `workflow` owned by this process, with `jobs`.
    pub(crate) fn run(workflow: &str, jobs: Vec<NewJob>) -> NewRun {
        NewRun {
            workflow: workflow.to_owned(),
            def_hash: "hash".to_owned(),
            params: json!({"date": "2026-01-01"}),
            trigger: json!({"kind": "manual"}),
            fire: None,
            status: RunState::Running,
            reason: None,
            owner: Some(Owner::current()),
            created_at: Utc::now(),
            jobs,
            parent: None,
            notify: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;
    use std::time::Instant;

    use chrono::Utc;

    use super::test_support::{job, run, store};
    use super::{DATABASE_FILE, LOG_DIR, SqliteStore};
    use crate::state::{JobState, RunId};
    use crate::store::error::Error;
    use crate::store::runs::{Change, RunFilter, RunStore, StepRecord, Transition};

    #[test]
    fn creates_the_environment_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("nested/.coreflow");
        let first = SqliteStore::open(&env).unwrap();
        assert!(env.join(DATABASE_FILE).is_file());
        assert!(env.join(LOG_DIR).is_dir());
        let (id, _) = first
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        drop(first);

        let again = SqliteStore::open(&env).unwrap();
        assert_eq!(again.run(id).unwrap().unwrap().workflow, "wf");
        let (next, _) = again.create_run(&run("wf", vec![])).unwrap();
        assert_eq!(next, RunId(id.0 + 1));
    }

    fn open_error(contents: &[u8]) -> Error {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DATABASE_FILE), contents).unwrap();
        SqliteStore::open(dir.path()).unwrap_err()
    }

    #[test]
    fn files_that_are_not_coreflow_databases_are_refused() {
        let mut random = vec![0u8; 8192];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for byte in &mut random {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state.to_le_bytes()[0];
        }
        let mut bad_body = b"SQLite format 3\0".to_vec();
        bad_body.extend_from_slice(&random);
        for contents in [&random[..], b"name: not a database\n", &bad_body, b"S"] {
            let error = open_error(contents);
            assert!(error.is_environment(), "{error}");
            assert!(matches!(error, Error::Environment { .. }), "{error:?}");
        }

        // Another program's SQLite database is left alone.
        let dir = tempfile::tempdir().unwrap();
        let other = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        other
            .execute_batch("CREATE TABLE notes (text TEXT)")
            .unwrap();
        drop(other);
        let error = SqliteStore::open(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("not a CoreFlow database"),
            "{error}"
        );

        // An environment path that is a file, and a database path that is a folder.
        let file = dir.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        assert!(SqliteStore::open(&file).unwrap_err().is_environment());
        let odd = dir.path().join("odd");
        fs::create_dir_all(odd.join(DATABASE_FILE)).unwrap();
        assert!(SqliteStore::open(&odd).unwrap_err().is_environment());
    }

    #[test]
    fn two_processes_worth_of_writers_do_not_lock_each_other_out() {
        let dir = tempfile::tempdir().unwrap();
        let env = Arc::new(dir.path().join("env"));
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let env = Arc::clone(&env);
                std::thread::spawn(move || {
                    // Each thread opens its own connection, racing to create the schema.
                    let store = SqliteStore::open(&env).unwrap();
                    let mut ids = Vec::new();
                    for n in 0..200 {
                        let name = format!("w{worker}");
                        let jobs = vec![job("a", &[], JobState::Queued)];
                        let (id, job_ids) = store.create_run(&run(&name, jobs)).unwrap();
                        if n % 4 == 0 {
                            let t = Transition::new(job_ids[0], JobState::Running, Utc::now());
                            store.apply(&[t.into()]).unwrap();
                            store.recover_lost(&|_| true).unwrap();
                        }
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        let mut ids: Vec<RunId> = workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 400);
        let store = SqliteStore::open(&env).unwrap();
        let all = store.runs(&RunFilter::default()).unwrap();
        assert_eq!(all.len(), 400);
    }

    /// Not an assertion: prints what a 1,000-job run costs (see PERFORMANCE.md).
    #[test]
    fn measure_a_thousand_job_run() {
        for batch_jobs in [1, 100] {
            let (_dir, store) = store();
            let jobs: Vec<_> = (0..1000)
                .map(|n| job(&format!("job{n}"), &[], JobState::Pending))
                .collect();
            let started = Instant::now();
            let (run_id, ids) = store.create_run(&run("bench", jobs)).unwrap();
            let create = started.elapsed();

            let started = Instant::now();
            let mut transactions = 0;
            for chunk in ids.chunks(batch_jobs) {
                let now = Utc::now();
                let mut changes = Vec::with_capacity(chunk.len() * 5);
                for &id in chunk {
                    changes.push(Change::from(Transition::new(id, JobState::Queued, now)));
                    changes.push(
                        Transition::new(id, JobState::Running, now)
                            .kill_token("t")
                            .into(),
                    );
                    changes.push(Change::Step(StepRecord {
                        job: id,
                        attempt: 1,
                        index: 0,
                        name: "step".into(),
                        status: JobState::Succeeded,
                        exit_code: Some(0),
                        started_at: Some(now),
                        finished_at: Some(now),
                    }));
                    changes.push(Change::Output {
                        job: id,
                        key: "rows".into(),
                        value: "1".into(),
                    });
                    changes.push(
                        Transition::new(id, JobState::Succeeded, now)
                            .exit_code(0)
                            .usage(1 << 20, 3)
                            .into(),
                    );
                }
                store.apply(&changes).unwrap();
                transactions += 1;
            }
            let apply = started.elapsed();

            let started = Instant::now();
            let loaded = store.jobs(run_id).unwrap();
            let query = started.elapsed();
            assert_eq!(loaded.len(), 1000);
            assert!(loaded.iter().all(|job| job.status == JobState::Succeeded));
            println!(
                "1,000-job run: create {create:?}; 5,000 changes in {transactions} transactions \
                 of {batch_jobs} job(s): {apply:?} ({:.1} µs per change); load all jobs: \
                 {query:?}",
                apply.as_secs_f64() * 1e6 / 5000.0
            );
        }
    }
}
