//! The PostgreSQL store: an environment that workers and daemons on several hosts share
//! (`--env postgres://…`).
//!
//! It holds the same records as the SQLite store, in the same shapes (times as milliseconds,
//! JSON as text; `migrations/`), behind the same traits. Differences a caller can see:
//!
//! - **Connections.** The `postgres` crate's client runs its own small runtime and must not
//!   be driven from inside another one; the engine calls the store from async tasks, so a
//!   call made inside a tokio runtime runs on a short-lived scoped thread ([`PgStore::call`]).
//! - **Writes are serialised** per environment by a transaction-level advisory lock
//!   ([`LOCK_SQL`]), the equivalent of SQLite's `BEGIN IMMEDIATE`: every rule the SQLite
//!   store keeps by running one writer at a time holds here too, across hosts. Claims take
//!   it in its shared mode and run side by side, keeping their rules by row locks (`queues`).
//! - **Statements are prepared once** per connection ([`tx::Tx`]).
//! - **An environment is a schema**: the first of the URL's `search_path`
//!   (`postgres://host/db?options=-csearch_path%3Dflows`), `public` by default; several
//!   environments may share a database.
//! - **Files.** What the SQLite store keeps beside its database lives in tables here (step
//!   output in `log_chunks`); [`PgStore::dir`] is this host's private folder for scratch
//!   space only.
//!
//! Schema versions are recorded in `coreflow_schema`; a database whose schema is newer than
//! this binary knows is refused (exit 3), as a SQLite environment is.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use postgres::{Client, NoTls};

use crate::clock::{Clock, SystemClock};
use crate::step::sql::hide_password;

use super::error::Error;
use super::private;

mod blocks;
mod cancel;
mod copy;
mod leader;
mod logs;
mod metrics;
mod notifications;
mod notify;
mod queues;
mod read;
mod recover;
mod retry;
mod runs;
mod triggers;
mod tx;
mod write;

use tx::{Statements, Tx};

/// Milliseconds since the epoch, as stored.
pub(crate) fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// An unsigned figure as stored (bigint).
pub(crate) fn to_sql_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The seed of the advisory lock every write transaction takes first.
pub(crate) const WRITE_LOCK: i64 = 0x436f_7265_466c_6f77; // "CoreFlow"

/// Takes the environment's write lock: one per schema (an environment is the schema its
/// URL's `search_path` selects, `public` by default), so that environments sharing a
/// database do not wait on each other.
pub(crate) const LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), $1))";

/// The migrations, in order; the schema version is the number of those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_claim_order.sql"),
    include_str!("migrations/0003_work_notify.sql"),
    include_str!("migrations/0004_claim_candidates.sql"),
    include_str!("migrations/0005_parent_runs.sql"),
    include_str!("migrations/0006_job_items.sql"),
    include_str!("migrations/0007_continue_on_error.sql"),
    include_str!("migrations/0008_notifications.sql"),
    include_str!("migrations/0009_resources.sql"),
];

/// An environment in a PostgreSQL database.
pub struct PgStore {
    /// The URL with its password hidden, for messages.
    shown: String,
    /// The URL as given, for connections of its own (work notifications); never shown.
    url: String,
    /// The environment's channel for work notifications.
    channel: String,
    /// Listening for work notifications, once a worker asked ([`PgStore::watch_work`]).
    listener: Mutex<Option<notify::Listener>>,
    /// Shared with what streams into the database beside the store's own calls (log writers).
    client: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    /// This host's private folder for the environment's scratch files.
    dir: PathBuf,
    /// Where DataBlock content lives (`--blocks`): a folder every host reaches.
    blocks: Option<crate::store::BlocksLocation>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.shown)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), creating the
    /// schema on first use and migrating an older one.
    ///
    /// # Errors
    /// [`Error::Environment`] when the server cannot be reached, refuses the login, or
    /// holds a schema newer than this binary knows.
    pub fn open(url: &str) -> Result<PgStore, Error> {
        let shown = hide_password(url);
        let environment = |detail: String| Error::Environment {
            path: PathBuf::from(&shown),
            detail,
        };
        let mut client = Connection::new(
            outside_runtime(|| Client::connect(url, NoTls))
                .map_err(|error| environment(error.to_string()))?,
        );
        let conn: &mut Client = &mut client;
        outside_runtime(move || migrate(conn)).map_err(|error| match error {
            Error::Environment { detail, .. } => environment(detail),
            other => environment(other.to_string()),
        })?;
        let dir = host_dir(url).map_err(|error| {
            environment(format!("cannot create this host's folder for it: {error}"))
        })?;
        let conn: &mut Client = &mut client;
        let channel: String = outside_runtime(move || conn.query_one(notify::CHANNEL_SQL, &[]))
            .map_err(|error| environment(error.to_string()))?
            .get(0);
        Ok(PgStore {
            shown,
            url: url.to_owned(),
            channel,
            listener: Mutex::new(None),
            client: Arc::new(Mutex::new(client)),
            clock: Arc::new(SystemClock),
            dir,
            blocks: None,
        })
    }

    /// The same store reading "now" from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> PgStore {
        self.clock = clock;
        self
    }

    /// Where DataBlock content lives, when given (`--blocks`).
    #[must_use]
    pub fn blocks_location(&self) -> Option<&crate::store::BlocksLocation> {
        self.blocks.as_ref()
    }

    /// The same store keeping DataBlock content in `blocks` (`--blocks`); without it, this
    /// environment refuses to publish or read blocks.
    #[must_use]
    pub fn with_blocks(mut self, blocks: Option<crate::store::BlocksLocation>) -> PgStore {
        self.blocks = blocks;
        self
    }

    /// The clock the store reads "now" from.
    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The current instant by the store's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The URL as given, password included: for opening the environment again in a process
    /// of this host, never for showing.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This host's private folder for the environment's scratch files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Wakes `wake` whenever work may have become claimable here (`LISTEN`), until the store
    /// is dropped; one listener per store, the last call's `wake` is the one woken.
    ///
    /// # Errors
    /// The listening thread could not be started.
    pub(crate) fn listen_for_work(&self, wake: Arc<tokio::sync::Notify>) -> std::io::Result<()> {
        let listener = notify::listen(self.url.clone(), self.channel.clone(), wake)?;
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(listener);
        Ok(())
    }

    /// The URL, password hidden.
    #[must_use]
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn client(&self) -> MutexGuard<'_, Connection> {
        lock(&self.client)
    }

    /// The connection, for what streams into the database on its own (a log writer): lock
    /// it with [`lock`] and drive it with [`outside_runtime`], as [`PgStore::call`] does.
    pub(crate) fn shared_client(&self) -> Arc<Mutex<Connection>> {
        Arc::clone(&self.client)
    }

    /// Runs `work` with the connection, outside any tokio runtime (see the module docs).
    pub(crate) fn call<T: Send>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        self.connect(|connection| work(connection))
    }

    /// [`PgStore::call`] with the connection and its prepared statements.
    fn connect<T: Send>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        let mut guard = self.client();
        let connection: &mut Connection = &mut guard;
        outside_runtime(move || work(connection))
    }

    /// Runs `work` in a write transaction, after every other writer of the environment.
    pub(crate) fn write<T: Send>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        self.connect(|connection| {
            let mut tx = connection.transaction()?;
            tx.execute(LOCK_SQL, &[&WRITE_LOCK])?;
            let value = work(&mut tx)?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// Runs `work` in a read-only transaction with one snapshot.
    pub(crate) fn read<T: Send>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        self.connect(|connection| {
            let mut tx = connection.read_transaction()?;
            let value = work(&mut tx)?;
            tx.commit()?;
            Ok(value)
        })
    }
}

/// The connection to the server, with the statements prepared on it. The `postgres` client
/// closes its connection on drop by blocking on its own runtime, which panics inside another
/// one: this drops it outside any.
pub(crate) struct Connection {
    client: Option<Client>,
    statements: Statements,
}

impl Connection {
    fn new(client: Client) -> Self {
        Connection {
            client: Some(client),
            statements: Statements::default(),
        }
    }

    /// A read-write transaction.
    pub(crate) fn transaction(&mut self) -> Result<Tx<'_>, postgres::Error> {
        let client = self
            .client
            .as_mut()
            .expect("a connection is only taken when dropped");
        Ok(Tx::new(client.transaction()?, &mut self.statements))
    }

    /// A read-only transaction with one snapshot.
    pub(crate) fn read_transaction(&mut self) -> Result<Tx<'_>, postgres::Error> {
        let client = self
            .client
            .as_mut()
            .expect("a connection is only taken when dropped");
        let tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        Ok(Tx::new(tx, &mut self.statements))
    }
}

impl std::ops::Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a connection is only taken when dropped")
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a connection is only taken when dropped")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            outside_runtime(move || drop(client));
        }
    }
}

/// Locks the connection. A panic while it was held dropped its transaction, which rolled
/// back: the connection is usable.
pub(crate) fn lock(client: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    client.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work` on this thread when it is not driving a tokio runtime, else on a scoped
/// thread of its own (the `postgres` client blocks on its own runtime, which tokio refuses
/// to start inside another).
pub(crate) fn outside_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Applies the migrations this database lacks, in one transaction under the write lock.
fn migrate(client: &mut Client) -> Result<(), Error> {
    // The environment's schema (the first of the URL's `search_path`) is created on first
    // use, as a SQLite environment's folder is.
    let path: String = client.query_one("SHOW search_path", &[])?.get(0);
    if let Some(schema) = first_schema(&path) {
        client.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"",
            schema.replace('"', "\"\"")
        ))?;
    }
    let mut tx = client.transaction()?;
    tx.execute(LOCK_SQL, &[&WRITE_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS coreflow_schema (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let current: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM coreflow_schema", &[])?
        .get(0);
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(Error::Environment {
            path: PathBuf::new(),
            detail: format!(
                "the database has CoreFlow schema version {current}, newer than this coreflow \
                 knows ({known}); use a newer coreflow"
            ),
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.batch_execute(sql)?;
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO coreflow_schema (version) VALUES ($1)",
            &[&version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The schema a `search_path` setting names first, unquoted; `None` for the default
/// (`"$user", public`), whose `public` exists.
fn first_schema(search_path: &str) -> Option<String> {
    let first = search_path.split(',').next()?.trim();
    let unquoted = first
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .map_or_else(|| first.to_owned(), |inner| inner.replace("\"\"", "\""));
    (!unquoted.is_empty() && unquoted != "$user" && unquoted != "public").then_some(unquoted)
}

/// This host's private folder for an environment at `url`: under `$XDG_STATE_HOME` (else
/// `~/.local/state`, else the temporary folder) in `coreflow/pg-<hash of the URL>`.
fn host_dir(url: &str) -> std::io::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(hide_password(url).as_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join("coreflow").join(format!("pg-{name}"));
    private::create_dir_all(&dir)?;
    Ok(dir)
}

/// A database of its own for each test, in the test server (`scripts/test-postgres.sh`).
#[cfg(test)]
pub(crate) mod test_support {
    use super::PgStore;

    /// The test server's URL: `COREFLOW_TEST_POSTGRES`, else the one `scripts/test-postgres.sh`
    /// starts.
    pub(crate) fn server_url() -> String {
        std::env::var("COREFLOW_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/postgres".to_owned())
    }

    /// The URL of a new, empty environment: a schema of its own in the test server's
    /// `coreflow_tests` database (a schema costs kilobytes, a database megabytes). Fails
    /// (never skips) without a server: start it with `scripts/test-postgres.sh`
    /// (`scripts/test-deps.sh` does).
    pub(crate) fn fresh_url() -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = server_url();
        let (base, _) = server.rsplit_once('/').expect("a URL with a database");
        let database = format!("{base}/coreflow_tests");
        let connect = |url: &str| {
            postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
                panic!("no test PostgreSQL at {url} ({e}): run scripts/test-postgres.sh")
            })
        };
        let mut client = match postgres::Client::connect(&database, postgres::NoTls) {
            Ok(client) => client,
            Err(_) => {
                // Another test may create it at the same moment: that is fine.
                let _ = connect(&server).batch_execute("CREATE DATABASE coreflow_tests");
                connect(&database)
            }
        };
        let name = format!(
            "cf_unit_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros()
        );
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create a test schema");
        format!("{database}?options=-csearch_path%3D{name}")
    }

    /// A store in a new database.
    pub(crate) fn store() -> PgStore {
        std::thread::spawn(|| PgStore::open(&fresh_url()).expect("open the test database"))
            .join()
            .expect("open")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_created_once_and_a_newer_one_is_refused() {
        let url = test_support::fresh_url();
        let store = PgStore::open(&url).expect("first open creates the schema");
        let version: i64 = store
            .call(|client| {
                Ok(client
                    .query_one("SELECT MAX(version) FROM coreflow_schema", &[])?
                    .get(0))
            })
            .expect("version");
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).unwrap());
        drop(store);
        // Opening again applies nothing and keeps the data.
        let store = PgStore::open(&url).expect("second open");
        store
            .write(|tx| {
                tx.execute("INSERT INTO coreflow_schema (version) VALUES (999)", &[])?;
                Ok(())
            })
            .expect("pretend a newer binary migrated");
        drop(store);
        let error = PgStore::open(&url).expect_err("a newer schema is refused");
        assert!(error.is_environment(), "{error}");
        assert!(
            error
                .to_string()
                .contains("schema version 999, newer than this coreflow"),
            "{error}"
        );
    }

    #[test]
    fn calls_work_from_inside_a_tokio_runtime() {
        let store = test_support::store();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let url = test_support::fresh_url();
        let one: i64 = runtime.block_on(async {
            let one = store
                .read(|tx| Ok(tx.query_one("SELECT 1::BIGINT", &[])?.get(0)))
                .expect("a read inside the runtime");
            // Opened and closed inside the runtime too (the client blocks on close).
            drop(store);
            drop(PgStore::open(&url).expect("open inside the runtime"));
            one
        });
        assert_eq!(one, 1);
    }

    #[test]
    fn the_schema_of_the_search_path_is_created_on_first_use() {
        assert_eq!(first_schema("\"$user\", public"), None);
        assert_eq!(first_schema("staging"), Some("staging".to_owned()));
        assert_eq!(
            first_schema("\"My \"\"x\"\"\", public"),
            Some("My \"x\"".to_owned())
        );
        let url = test_support::fresh_url();
        let fresh = format!("{}_new", url);
        let store = PgStore::open(&fresh).expect("a schema not created beforehand");
        let schema: String = store
            .call(|client| Ok(client.query_one("SELECT current_schema()", &[])?.get(0)))
            .expect("schema");
        assert!(schema.ends_with("_new"), "{schema}");
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            hide_password("postgres://cf:s3cret@db.example:5432/flows"),
            "postgres://cf:***@db.example:5432/flows"
        );
        assert_eq!(
            hide_password("postgres://cf@db/flows"),
            "postgres://cf@db/flows"
        );
        assert_eq!(hide_password("postgres:///flows"), "postgres:///flows");
    }
}
