//! Copying a whole environment into another store (`coreflow env copy`): the [`CopyStore`]
//! trait, the store-neutral rows it moves ([`Snapshot`]), and opening an empty destination.
//!
//! Both stores hold the same records in the same shapes (integers, text, NULL; times as
//! milliseconds, JSON as text), so a copy is table by table: the source reads every table
//! listed in [`TABLES`] in one snapshot ([`CopyStore::export`]), the destination writes
//! them back with their ids in one transaction ([`CopyStore::import`]) — all or nothing —
//! and moves its id sequences past the source's, so that `show 42` is the same run after
//! the copy and no id is ever handed out twice. Step output is the one record kept
//! differently (files beside a SQLite database, `log_chunks` rows in PostgreSQL) but in the
//! same bytes: the destination reads each attempt's log from the source
//! ([`CopyStore::export_log`]) in pieces and stores it its own way, naming it in the
//! attempt row its own way ([`Snapshot::logs`]).
//!
//! Not copied: the daemons' leadership lease (a daemon of the destination takes its own)
//! and a store's own bookkeeping (schema versions). DataBlock content is not in the store;
//! `crate::blocks::copy_content` copies it. Opening the destination, empty, is
//! `store/destination.rs`.

use crate::state::{JobId, RunId};
use std::collections::HashMap;
use std::fmt::Write as _;

use super::error::Error;

/// What a column holds: every column of both stores is one of these (or NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer (SQLite INTEGER, PostgreSQL BIGINT): ids, times, counts, flags.
    Int,
    /// Text: names, states, JSON.
    Text,
}

/// One column of a copied table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// A copied table: its columns in the order rows hold them, and whether its `id` column
/// is handed out by the store (an identity / AUTOINCREMENT column).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub generated_id: bool,
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Int,
    }
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Text,
    }
}

/// Every table a copy moves, parents before the rows that refer to them.
pub const TABLES: &[Table] = &[
    Table {
        name: "definitions",
        columns: &[
            text("name"),
            text("hash"),
            text("yaml"),
            text("source_path"),
            int("first_seen"),
            int("last_seen"),
            int("seen_seq"),
        ],
        generated_id: false,
    },
    Table {
        name: "runs",
        columns: &[
            int("id"),
            text("workflow"),
            text("def_hash"),
            text("status"),
            text("reason"),
            text("params"),
            text("trigger"),
            int("created_at"),
            int("started_at"),
            int("finished_at"),
            int("owner_pid"),
            int("owner_start"),
            text("owner_host"),
            int("cancel_requested"),
            int("parent_run"),
            int("parent_job"),
            text("notify_state"),
        ],
        generated_id: true,
    },
    Table {
        name: "notifications",
        columns: &[
            int("id"),
            int("run_id"),
            int("notifier"),
            text("kind"),
            text("target"),
            int("attempt"),
            int("ok"),
            text("error"),
            int("at"),
        ],
        generated_id: true,
    },
    Table {
        name: "queues",
        columns: &[
            text("name"),
            int("concurrency"),
            int("paused"),
            int("created_at"),
        ],
        generated_id: false,
    },
    Table {
        name: "jobs",
        columns: &[
            int("id"),
            int("run_id"),
            text("name"),
            text("base_name"),
            text("matrix"),
            text("queue"),
            int("priority"),
            text("metadata"),
            text("needs"),
            text("status"),
            text("reason"),
            int("attempts"),
            int("attempts_before_retry"),
            int("max_attempts"),
            int("exit_code"),
            int("queued_at"),
            int("started_at"),
            int("finished_at"),
            int("duration_ms"),
            int("peak_rss_bytes"),
            int("cpu_ms"),
            text("kill_token"),
            int("cancel_requested"),
            text("runs_on"),
            int("top_seq"),
            int("not_before"),
            int("worker_id"),
            int("lease_expires"),
            text("item"),
            int("continue_on_error"),
            int("cpu_milli"),
            int("memory"),
        ],
        generated_id: true,
    },
    Table {
        name: "attempts",
        columns: &[
            int("job_id"),
            int("number"),
            text("status"),
            text("reason"),
            int("exit_code"),
            int("started_at"),
            int("finished_at"),
            int("duration_ms"),
            int("peak_rss_bytes"),
            int("cpu_ms"),
            text("kill_token"),
            text("log_path"),
            int("log_bytes"),
            int("log_lines"),
        ],
        generated_id: false,
    },
    Table {
        name: "steps",
        columns: &[
            int("job_id"),
            int("attempt"),
            int("idx"),
            text("name"),
            text("status"),
            int("exit_code"),
            int("started_at"),
            int("finished_at"),
        ],
        generated_id: false,
    },
    Table {
        name: "outputs",
        columns: &[int("job_id"), text("key"), text("value")],
        generated_id: false,
    },
    Table {
        name: "workers",
        columns: &[
            int("id"),
            text("name"),
            text("labels"),
            int("pid"),
            text("host"),
            int("started_at"),
            int("heartbeat_at"),
            text("state"),
            int("current_job"),
            int("jobs_done"),
            text("move_to"),
            int("start_time"),
            int("cpu_milli"),
            int("memory"),
            text("enforcement"),
        ],
        generated_id: true,
    },
    Table {
        name: "block_versions",
        columns: &[
            int("id"),
            text("name"),
            int("version"),
            text("hash"),
            text("kind"),
            int("size"),
            int("files"),
            text("file_name"),
            int("executable"),
            int("created_at"),
            int("removed_at"),
        ],
        generated_id: true,
    },
    Table {
        name: "block_productions",
        columns: &[
            int("id"),
            int("version_id"),
            int("run_id"),
            text("workflow"),
            int("job_id"),
            text("job_name"),
            text("job_base"),
            int("attempt"),
            int("new"),
            int("created_at"),
        ],
        generated_id: true,
    },
    Table {
        name: "block_consumptions",
        columns: &[
            int("job_id"),
            int("attempt"),
            text("input"),
            int("version_id"),
            int("run_id"),
            text("workflow"),
            text("job_name"),
            text("job_base"),
            int("consumed_at"),
        ],
        generated_id: false,
    },
    Table {
        name: "trigger_state",
        columns: &[
            text("workflow"),
            text("trigger_key"),
            int("first_seen"),
            int("last_fire"),
            int("cursor"),
        ],
        generated_id: false,
    },
    Table {
        name: "trigger_files",
        columns: &[
            text("workflow"),
            text("trigger_key"),
            text("path"),
            int("mtime"),
            int("size"),
        ],
        generated_id: false,
    },
    Table {
        name: "trigger_waiting",
        columns: &[
            int("id"),
            text("workflow"),
            text("trigger"),
            text("params"),
            int("queued_at"),
        ],
        generated_id: true,
    },
];

/// The queue every environment is created with: an empty destination holds it already, and
/// the copy replaces it with the source's.
pub const DEFAULT_QUEUE: &str = "default";

impl Table {
    /// `SELECT <columns> FROM <table>`, in a stable order (the first column, then the rest).
    #[must_use]
    pub fn select_sql(&self) -> String {
        let columns = self.column_list();
        let order = (1..=self.columns.len())
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {columns} FROM {} ORDER BY {order}", self.name)
    }

    /// `INSERT INTO <table> (<columns>) VALUES (<placeholders>)`, the placeholder of the
    /// n-th value (from 1) written by `placeholder` (`?1` for SQLite, `$1` for PostgreSQL).
    #[must_use]
    pub fn insert_sql(&self, placeholder: impl Fn(usize) -> String) -> String {
        let values = (1..=self.columns.len())
            .map(placeholder)
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} ({}) VALUES ({values})",
            self.name,
            self.column_list()
        )
    }

    /// `SELECT count(*) FROM <table>` of what makes an environment not empty: every row,
    /// except the default queue every new environment has.
    #[must_use]
    pub fn count_sql(&self) -> String {
        if self.name == "queues" {
            format!("SELECT count(*) FROM queues WHERE name <> '{DEFAULT_QUEUE}'")
        } else {
            format!("SELECT count(*) FROM {}", self.name)
        }
    }

    /// Where column `name` is in a row of this table.
    ///
    /// # Panics
    /// When the table has no such column (a mistake in this file).
    #[must_use]
    pub fn column(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|column| column.name == name)
            .unwrap_or_else(|| panic!("table {} has no column {name}", self.name))
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|column| column.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The table named `name` in [`TABLES`].
///
/// # Panics
/// When there is none (a mistake in this file).
#[must_use]
pub fn table(name: &str) -> &'static Table {
    TABLES
        .iter()
        .find(|table| table.name == name)
        .unwrap_or_else(|| panic!("no copied table {name}"))
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl Value {
    /// The value as column kind `kind` holds it. SQLite keeps what it is given: a number in
    /// a text column comes back as text here, digits in an integer column as a number;
    /// anything else is a damaged environment.
    ///
    /// # Errors
    /// A value that is not of the column's kind: [`Error::Environment`] is not known here, so
    /// the message says which table and column; the caller adds where.
    pub fn coerce(self, kind: Kind) -> Result<Value, String> {
        match (self, kind) {
            (Value::Null, _) => Ok(Value::Null),
            (Value::Int(n), Kind::Int) => Ok(Value::Int(n)),
            (Value::Text(s), Kind::Text) => Ok(Value::Text(s)),
            (Value::Int(n), Kind::Text) => Ok(Value::Text(n.to_string())),
            (Value::Text(s), Kind::Int) => s
                .trim()
                .parse()
                .map(Value::Int)
                .map_err(|_| format!("`{s}` where an integer belongs")),
        }
    }

    /// The integer, if this is one.
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The text, if this is text.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// The rows of one table, each with the table's columns in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows(pub Vec<Vec<Value>>);

/// Everything an environment's tables hold, read in one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The rows of each table of [`TABLES`], by table name.
    tables: HashMap<&'static str, Rows>,
    /// The highest id each table with a [`Table::generated_id`] ever handed out (a store
    /// never reuses one, even after rows were deleted), by table name.
    pub high_water: HashMap<&'static str, i64>,
}

impl Snapshot {
    /// Records the rows of `table`.
    pub fn set(&mut self, table: &'static Table, rows: Rows) {
        self.tables.insert(table.name, rows);
    }

    /// The rows of `table` (none when it was not read).
    #[must_use]
    pub fn rows(&self, table: &str) -> &[Vec<Value>] {
        self.tables.get(table).map_or(&[], |rows| rows.0.as_slice())
    }

    /// How many rows `table` holds.
    #[must_use]
    pub fn count(&self, table: &str) -> usize {
        self.rows(table).len()
    }

    /// The highest id of `table` the destination must not hand out again: the source's
    /// high-water mark, or its largest id when higher.
    #[must_use]
    pub fn next_id_floor(&self, table: &Table) -> i64 {
        let id = table.column("id");
        let largest = self
            .rows(table.name)
            .iter()
            .filter_map(|row| row[id].as_int())
            .max()
            .unwrap_or(0);
        largest.max(self.high_water.get(table.name).copied().unwrap_or(0))
    }

    /// The log of every attempt, in the order of the attempt rows.
    #[must_use]
    pub fn logs(&self) -> Vec<AttemptLog> {
        let logs = self.log_finder();
        self.rows("attempts").iter().filter_map(logs).collect()
    }

    /// Finds the log an attempt row names (its run from the job's row).
    fn log_finder(&self) -> impl Fn(&Vec<Value>) -> Option<AttemptLog> + use<> {
        let jobs = table("jobs");
        let (job_id, run_id) = (jobs.column("id"), jobs.column("run_id"));
        let run_of: HashMap<i64, i64> = self
            .rows(jobs.name)
            .iter()
            .filter_map(|row| Some((row[job_id].as_int()?, row[run_id].as_int()?)))
            .collect();
        let attempts = table("attempts");
        let (job, number, path) = (
            attempts.column("job_id"),
            attempts.column("number"),
            attempts.column("log_path"),
        );
        move |row: &Vec<Value>| {
            let job = row[job].as_int()?;
            Some(AttemptLog {
                run: RunId(*run_of.get(&job)?),
                job: JobId(job),
                attempt: u32::try_from(row[number].as_int()?).ok()?,
                path: row[path].as_text().unwrap_or_default().to_owned(),
            })
        }
    }

    /// The ids of the runs that are `running`, and how many jobs are: a live environment,
    /// which a copy would catch halfway.
    #[must_use]
    pub fn running(&self) -> (Vec<RunId>, usize) {
        let status_of =
            |table: &Table, row: &[Value]| row[table.column("status")].as_text() == Some("running");
        let runs = table("runs");
        let running_runs = self
            .rows(runs.name)
            .iter()
            .filter(|row| status_of(runs, row))
            .filter_map(|row| row[runs.column("id")].as_int().map(RunId))
            .collect();
        let jobs = table("jobs");
        let running_jobs = self
            .rows(jobs.name)
            .iter()
            .filter(|row| status_of(jobs, row))
            .count();
        (running_runs, running_jobs)
    }
}

/// One attempt's log, as the source names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLog {
    pub run: RunId,
    pub job: JobId,
    pub attempt: u32,
    /// The attempt row's `log_path` in the source (a file under a SQLite environment's
    /// folder; only a name in PostgreSQL).
    pub path: String,
}

/// The rows of `attempts` with each `log_path` replaced by `rename(log)`: each store names
/// an attempt's log its own way, and the copy follows the destination's.
#[must_use]
pub fn renamed_logs(snapshot: &Snapshot, rename: impl Fn(&AttemptLog) -> String) -> Rows {
    let path = table("attempts").column("log_path");
    let find = snapshot.log_finder();
    let rows = snapshot
        .rows("attempts")
        .iter()
        .map(|row| {
            let mut row = row.clone();
            if let Some(log) = find(&row) {
                row[path] = Value::Text(rename(&log));
            }
            row
        })
        .collect();
    Rows(rows)
}

/// What an import wrote beside the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Attempt logs copied.
    pub logs: u64,
    /// Their bytes.
    pub log_bytes: u64,
}

/// How much of a log file is read at once: a PostgreSQL log chunk's largest usual size.
pub const LOG_PIECE: usize = 64 * 1024;

/// An environment that can be copied out of and into.
pub trait CopyStore: Send + Sync {
    /// Where this environment is, for messages (a folder, or a URL without its password).
    fn location(&self) -> String;

    /// Every row of every table of [`TABLES`], and the id high-water marks, in one snapshot.
    ///
    /// # Errors
    /// The store cannot be read, or holds a value of the wrong kind.
    fn export(&self) -> Result<Snapshot, Error>;

    /// Hands the bytes of `log` to `each` in order, a piece at a time (a file in reads of
    /// [`LOG_PIECE`] bytes, a database's log chunk by chunk), so that no log is held whole;
    /// a log never written is empty.
    ///
    /// # Errors
    /// The log cannot be read, or `each` failed.
    fn export_log(
        &self,
        log: &AttemptLog,
        each: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error>;

    /// What this environment holds, as `(table, rows)` for each table of [`TABLES`] (and
    /// stored logs) that is not empty; the default queue does not count.
    ///
    /// # Errors
    /// The store cannot be read.
    fn contents(&self) -> Result<Vec<(&'static str, u64)>, Error>;

    /// Writes `snapshot` into this environment, and the log of each of its attempts read
    /// from `source`, in one transaction; refuses ([`CopyError::NotEmpty`]) when this
    /// environment holds anything already.
    ///
    /// # Errors
    /// Not empty, or a write or a log read failed: nothing was written.
    fn import(&self, snapshot: &Snapshot, source: &dyn CopyStore) -> Result<Imported, CopyError>;
}

/// Why a copy was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The destination already holds CoreFlow data or other files.
    #[error(
        "the destination `{location}` is not empty ({holds}): `coreflow env copy` needs an \
         empty destination (a PostgreSQL database or schema without CoreFlow data, or a \
         missing or empty folder)"
    )]
    NotEmpty { location: String, holds: String },

    /// The source has work running: its copy would catch it halfway.
    #[error(
        "the source `{location}` has work running ({what}): stop its daemon and workers, or \
         wait for the runs to end, then copy"
    )]
    Running { location: String, what: String },

    /// The source and the destination are one environment.
    #[error("the source and the destination are the same environment `{0}`")]
    Same(String),

    /// Reading the source or writing the destination failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl CopyError {
    /// A refusal is bad usage (2); a store failure keeps its class.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            CopyError::Store(error) => error.exit_code(),
            _ => crate::exit::USAGE,
        }
    }
}

/// Refuses a snapshot of a source with work running.
///
/// # Errors
/// [`CopyError::Running`], naming the runs.
pub fn refuse_running(source: &dyn CopyStore, snapshot: &Snapshot) -> Result<(), CopyError> {
    let (runs, jobs) = snapshot.running();
    if runs.is_empty() && jobs == 0 {
        return Ok(());
    }
    let mut what = String::new();
    if !runs.is_empty() {
        let ids: Vec<String> = runs.iter().map(ToString::to_string).collect();
        let _ = write!(
            what,
            "run{} {} running",
            if runs.len() == 1 { "" } else { "s" },
            ids.join(", ")
        );
    }
    if jobs > 0 {
        if !what.is_empty() {
            what.push_str(", ");
        }
        let _ = write!(
            what,
            "{jobs} job{} running",
            if jobs == 1 { "" } else { "s" }
        );
    }
    Err(CopyError::Running {
        location: source.location(),
        what,
    })
}

/// `3 runs, 1 definition` for a refusal.
#[must_use]
pub fn describe_contents(contents: &[(&'static str, u64)]) -> String {
    contents
        .iter()
        .map(|(what, n)| {
            let what = what.replace('_', " ");
            if *n == 1 {
                format!("1 row of {what}")
            } else {
                format!("{n} rows of {what}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Value]) -> Vec<Value> {
        values.to_vec()
    }

    /// A job row of `table("jobs")` with only the columns the copy looks at filled in.
    fn job_row(id: i64, run: i64, status: &str) -> Vec<Value> {
        let jobs = table("jobs");
        let mut row = vec![Value::Null; jobs.columns.len()];
        row[jobs.column("id")] = Value::Int(id);
        row[jobs.column("run_id")] = Value::Int(run);
        row[jobs.column("status")] = Value::Text(status.into());
        row
    }

    fn attempt_row(job: i64, number: i64, path: &str) -> Vec<Value> {
        let attempts = table("attempts");
        let mut row = vec![Value::Null; attempts.columns.len()];
        row[attempts.column("job_id")] = Value::Int(job);
        row[attempts.column("number")] = Value::Int(number);
        row[attempts.column("log_path")] = Value::Text(path.into());
        row
    }

    #[test]
    fn statements_name_every_column_in_order() {
        let queues = table("queues");
        assert_eq!(
            queues.select_sql(),
            "SELECT name, concurrency, paused, created_at FROM queues ORDER BY 1, 2, 3, 4"
        );
        assert_eq!(
            queues.insert_sql(|n| format!("${n}")),
            "INSERT INTO queues (name, concurrency, paused, created_at) VALUES ($1, $2, $3, $4)"
        );
        assert_eq!(
            queues.count_sql(),
            "SELECT count(*) FROM queues WHERE name <> 'default'"
        );
        assert_eq!(table("runs").count_sql(), "SELECT count(*) FROM runs");
        // Parents first: a row never refers to a table written after it.
        let order: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        let position = |name| order.iter().position(|t| *t == name).unwrap();
        assert!(position("runs") < position("jobs"));
        assert!(position("jobs") < position("attempts"));
        assert!(position("attempts") < position("steps"));
        assert!(position("block_versions") < position("block_productions"));
        assert!(position("block_versions") < position("block_consumptions"));
    }

    #[test]
    fn values_are_read_as_their_column_holds_them() {
        assert_eq!(Value::Int(7).coerce(Kind::Int), Ok(Value::Int(7)));
        assert_eq!(Value::Null.coerce(Kind::Text), Ok(Value::Null));
        assert_eq!(
            Value::Int(7).coerce(Kind::Text),
            Ok(Value::Text("7".into()))
        );
        assert_eq!(
            Value::Text("42".into()).coerce(Kind::Int),
            Ok(Value::Int(42))
        );
        let error = Value::Text("x".into()).coerce(Kind::Int).unwrap_err();
        assert!(error.contains("`x`"), "{error}");
    }

    #[test]
    fn attempt_logs_are_named_the_destination_s_way() {
        let mut snapshot = Snapshot::default();
        snapshot.set(
            table("jobs"),
            Rows(vec![job_row(3, 1, "succeeded"), job_row(4, 2, "failed")]),
        );
        snapshot.set(
            table("attempts"),
            Rows(vec![
                attempt_row(3, 1, "logs/1/3-1.log"),
                attempt_row(4, 1, "logs/2/4-1.log"),
                attempt_row(4, 2, "logs/2/4-2.log"),
            ]),
        );
        let logs = snapshot.logs();
        assert_eq!(
            logs[2],
            AttemptLog {
                run: RunId(2),
                job: JobId(4),
                attempt: 2,
                path: "logs/2/4-2.log".into()
            }
        );
        let rows = renamed_logs(&snapshot, |log| format!("db:{}-{}", log.job, log.attempt));
        let path = table("attempts").column("log_path");
        let paths: Vec<_> = rows.0.iter().map(|row| row[path].clone()).collect();
        assert_eq!(
            paths,
            ["db:3-1", "db:4-1", "db:4-2"].map(|p| Value::Text(p.into()))
        );
        // Everything else of the row is kept.
        assert_eq!(rows.0[1][0], Value::Int(4));
    }

    #[test]
    fn running_work_and_id_floors_are_found_in_the_rows() {
        let mut snapshot = Snapshot::default();
        let runs = table("runs");
        let mut run = vec![Value::Null; runs.columns.len()];
        run[runs.column("id")] = Value::Int(5);
        run[runs.column("status")] = Value::Text("running".into());
        snapshot.set(runs, Rows(vec![row(&run)]));
        snapshot.set(
            table("jobs"),
            Rows(vec![job_row(8, 5, "running"), job_row(9, 5, "queued")]),
        );
        assert_eq!(snapshot.running(), (vec![RunId(5)], 1));
        assert_eq!(snapshot.next_id_floor(runs), 5);
        snapshot.high_water.insert("runs", 12);
        assert_eq!(snapshot.next_id_floor(runs), 12);
        assert_eq!(snapshot.next_id_floor(table("workers")), 0);
    }

    #[test]
    fn refusals_say_what_the_destination_holds() {
        assert_eq!(
            describe_contents(&[("runs", 3), ("block_versions", 1)]),
            "3 rows of runs, 1 row of block versions"
        );
    }
}
