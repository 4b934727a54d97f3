//! [`Environment`]: every store trait in one, the only door to an environment's state that
//! code outside `store/` uses; [`open`] opens one from `--env`: a folder (SQLite) or a
//! `postgres://` URL (PostgreSQL).

use std::path::Path;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::store::blocks::BlockStore;
use crate::store::copy::CopyStore;
use crate::store::error::Error;
use crate::store::leader::LeaderStore;
use crate::store::logs::LogStore;
use crate::store::metrics::MetricsStore;
use crate::store::postgres::PgStore;
use crate::store::queues::QueueStore;
use crate::store::runs::RunStore;
use crate::store::sqlite::SqliteStore;
use crate::store::triggers::TriggerStore;
use crate::store::workers::WorkerStore;

/// An environment's state, whatever holds it: runs and jobs ([`RunStore`]), step output ([`LogStore`]), queues and claims
/// ([`QueueStore`]), workers and leases ([`WorkerStore`]), trigger state ([`TriggerStore`])
/// the DataBlock registry ([`BlockStore`]), the daemons' leadership ([`LeaderStore`]) and
/// copying it all into another store ([`CopyStore`]).
pub trait Environment:
    RunStore
    + LogStore
    + QueueStore
    + WorkerStore
    + TriggerStore
    + BlockStore
    + LeaderStore
    + CopyStore
    + MetricsStore
{
    /// The local folder for what is kept as files: scratch space of runs on this host, step
    /// logs, DataBlock content.
    fn dir(&self) -> &Path;

    /// Where "now" comes from, for this environment's records and for every decision made
    /// against it (timestamps, leases, retry delays): one clock per opened environment, so
    /// that tests drive time by hand ([`crate::clock::ManualClock`]) instead of sleeping.
    fn clock(&self) -> &dyn Clock;

    /// How to open this environment again from another process: its location (a folder, or
    /// a PostgreSQL URL with its password — never show it) and where DataBlock content lives.
    fn reopen(&self) -> (String, Option<crate::store::BlocksLocation>);
}

impl Environment for SqliteStore {
    fn dir(&self) -> &Path {
        SqliteStore::dir(self)
    }

    fn clock(&self) -> &dyn Clock {
        SqliteStore::clock(self)
    }

    fn reopen(&self) -> (String, Option<crate::store::BlocksLocation>) {
        (
            SqliteStore::dir(self).display().to_string(),
            self.blocks_location().cloned(),
        )
    }
}

impl Environment for PgStore {
    fn dir(&self) -> &Path {
        PgStore::dir(self)
    }

    fn clock(&self) -> &dyn Clock {
        PgStore::clock(self)
    }

    fn reopen(&self) -> (String, Option<crate::store::BlocksLocation>) {
        (self.url().to_owned(), self.blocks_location().cloned())
    }
}

/// A shared handle on an environment.
pub type Env = Arc<dyn Environment>;

/// How to open an environment beyond its location.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Where "now" comes from (the system clock when `None`).
    pub clock: Option<Arc<dyn Clock>>,
    /// Where DataBlock content lives (`--blocks`); the SQLite default is `<env>/blocks`, a
    /// PostgreSQL environment has none.
    pub blocks: Option<crate::store::BlocksLocation>,
}

/// Whether `location` names a PostgreSQL environment (a `postgres://` or `postgresql://`
/// URL) rather than a folder.
#[must_use]
pub fn is_database_url(location: &Path) -> bool {
    let text = location.to_string_lossy();
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// Opens the environment at `location`: a folder (created on first use, SQLite), or a
/// PostgreSQL URL (`postgres://user@host/db`; the database must exist, its schema is
/// created on first use).
///
/// # Errors
/// The environment cannot be opened or reached, or is not CoreFlow's:
/// [`Error::is_environment`] (exit 3).
pub fn open(location: &Path) -> Result<Env, Error> {
    open_with(location, &OpenOptions::default())
}

/// [`open`], reading "now" from `clock`.
///
/// # Errors
/// As [`open`].
pub fn open_with_clock(location: &Path, clock: Arc<dyn Clock>) -> Result<Env, Error> {
    open_with(
        location,
        &OpenOptions {
            clock: Some(clock),
            blocks: None,
        },
    )
}

/// [`open`], with options.
///
/// # Errors
/// As [`open`].
pub fn open_with(location: &Path, options: &OpenOptions) -> Result<Env, Error> {
    let clock = options
        .clock
        .clone()
        .unwrap_or_else(|| Arc::new(SystemClock));
    let blocks = options.blocks.clone();
    let text = location.to_string_lossy();
    if is_database_url(location) {
        return Ok(Arc::new(
            PgStore::open(&text)?.with_clock(clock).with_blocks(blocks),
        ));
    }
    Ok(Arc::new(
        SqliteStore::open(location)?
            .with_clock(clock)
            .with_blocks(blocks),
    ))
}
