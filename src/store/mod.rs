//! The environment's state store: definitions, runs, jobs, attempts, step results, outputs and
//! captured logs.
//!
//! [`RunStore`] speaks the engine's verbs — create a run with its jobs, apply a batch of state
//! changes, answer queries, carry cancel requests between processes, reset jobs for a retry,
//! recover runs whose process died — and so do the other traits, split by concern and joined
//! in [`Environment`]. Two stores implement them: [`SqliteStore`], the default (a folder), and
//! [`PgStore`] (a PostgreSQL database several hosts share). Deciding transitions is the
//! engine's job; the store records them, rejecting any move
//! [`crate::state::JobState::can_become`] forbids, and keeps everything one call is given in
//! one transaction.
//!
//! Step output does not go through the database row by row: each job attempt's
//! [`LogWriter`] writes buffered chunks — to a file the SQLite database indexes, or as rows
//! of PostgreSQL's `log_chunks` — and [`LogReader`] merges a run's logs in timestamp order.
//!
//! Exit code 3 ("environment could not be opened or is corrupt") is
//! [`Error::is_environment`].

mod blocks;
pub mod copy;
mod destination;
mod environment;
mod error;
mod leader;
mod logs;
pub mod metrics;
mod owner;
mod postgres;
pub mod private;
mod queues;
mod runs;
mod sqlite;
#[cfg(test)]
pub(crate) use sqlite::test_support;
mod triggers;
mod workers;

pub use blocks::{
    BlockKey, BlockKind, BlockStore, BlockSummary, BlockVersion, BlockVersionId, BlocksLocation,
    ContentHash, JobAttempt, JobBlocks, Lineage, LineageLink, NewBlock, Published, UnknownKind,
};
pub use destination::{Destination, open_destination};
pub use environment::{
    Env, Environment, OpenOptions, is_database_url, open, open_with, open_with_clock,
};
pub use error::Error;
pub use leader::{LeaderStore, Leadership, daemon_identity, holder_is_dead_here};
pub use logs::{LogCursor, LogLine, LogReader, LogSource, LogStore, LogSummary, LogWriter, Stream};
pub use metrics::{MetricsSnapshot, MetricsStore};
pub use owner::{Owner, host_identity, host_name, is_this_host, owner_is_alive};
pub use postgres::PgStore;
pub(crate) use postgres::outside_runtime;
pub use queues::{Advance, ClaimEnd, Claimed, QueueRecord, QueueStore, RemoveOutcome, RunJob};
pub(crate) use runs::rfc3339;
pub use runs::{
    AttemptRecord, CancelOutcome, CancelRequests, Change, Definition, JobFilter, JobRecord,
    LostJob, NewDefinition, NewJob, NewRun, NotificationRecord, ParentLink, REASON_CANCELLED,
    REASON_LOST, REASON_OWNER_LOST, Recovered, RunFilter, RunRecord, RunStore, RunTransition,
    StepRecord, Transition, owner_token_prefix,
};
pub use sqlite::{DATABASE_FILE, LOG_DIR, SqliteStore};
pub use triggers::{FireClaim, SeenFile, TriggerState, TriggerStore, WaitingFire};
pub use workers::{Heartbeat, WORKER_RETENTION, WorkerId, WorkerRecord, WorkerStore};
