//! [`Environment`]: every store trait in one, the only door to an environment's state that
//! code outside `store/` uses; [`open`] opens one from `--env`: a folder (SQLite) or a
//! `postgres://` URL (PostgreSQL).

use std::path::Path;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::store::blocks::BlockStore;
use crate::store::error::Error;
use crate::store::leader::LeaderStore;
use crate::store::logs::LogStore;
use crate::store::postgres::PgStore;
use crate::store::queues::QueueStore;
use crate::store::runs::RunStore;
use crate::store::sqlite::SqliteStore;
use crate::store::triggers::TriggerStore;
use crate::store::workers::WorkerStore;

/// An environment's state, whatever holds it: runs and jobs ([`RunStore`]), step output ([`LogStore`]), queues and claims
/// ([`QueueStore`]), workers and leases ([`WorkerStore`]), trigger state ([`TriggerStore`])
/// the DataBlock registry ([`BlockStore`]) and the daemons' leadership ([`LeaderStore`]).
pub trait Environment:
    RunStore + LogStore + QueueStore + WorkerStore + TriggerStore + BlockStore + LeaderStore
{
    /// The local folder for what is kept as files: scratch space of runs on this host, step
    /// logs, DataBlock content.
    fn dir(&self) -> &Path;

    /// Where "now" comes from, for this environment's records and for every decision made
    /// against it (timestamps, leases, retry delays): one clock per opened environment, so
    /// that tests drive time by hand ([`crate::clock::ManualClock`]) instead of sleeping.
    fn clock(&self) -> &dyn Clock;
}

impl Environment for SqliteStore {
    fn dir(&self) -> &Path {
        SqliteStore::dir(self)
    }

    fn clock(&self) -> &dyn Clock {
        SqliteStore::clock(self)
    }
}

impl Environment for PgStore {
    fn dir(&self) -> &Path {
        PgStore::dir(self)
    }

    fn clock(&self) -> &dyn Clock {
        PgStore::clock(self)
    }
}

/// A shared handle on an environment.
pub type Env = Arc<dyn Environment>;

/// Opens the environment at `location`: a folder (created on first use, SQLite), or a
/// PostgreSQL URL (`postgres://user@host/db`; the database must exist, its schema is
/// created on first use).
///
/// # Errors
/// The environment cannot be opened or reached, or is not CoreFlow's:
/// [`Error::is_environment`] (exit 3).
pub fn open(location: &Path) -> Result<Env, Error> {
    open_with_clock(location, Arc::new(SystemClock))
}

/// [`open`], reading "now" from `clock`.
///
/// # Errors
/// As [`open`].
pub fn open_with_clock(location: &Path, clock: Arc<dyn Clock>) -> Result<Env, Error> {
    let text = location.to_string_lossy();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::open(&text)?.with_clock(clock)));
    }
    Ok(Arc::new(SqliteStore::open(location)?.with_clock(clock)))
}
