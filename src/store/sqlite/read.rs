//! Read verbs of [`super::SqliteStore`] and the mapping from rows to records.
//!
//! A value this version cannot read (an unknown state name, bad JSON) is reported as a
//! conversion failure, which [`Error::is_environment`] counts as a corrupt environment.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use crate::scheduler::resources::Request;
use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::logs::{LogSource, LogSummary};
use crate::store::owner::Owner;
use crate::store::runs::{
    AttemptRecord, CancelRequests, Definition, JobFilter, JobRecord, ParentLink, RunFilter,
    RunRecord, StepRecord,
};

/// Which jobs [`jobs`] loads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope {
    Run(RunId),
    Job(JobId),
}

impl Scope {
    /// The condition on `jobs AS j`, with the id as `?1`.
    fn condition(self) -> &'static str {
        match self {
            Scope::Run(_) => "j.run_id = ?1",
            Scope::Job(_) => "j.id = ?1",
        }
    }

    /// The condition on `runs` for the child runs of the jobs in scope, with the id as `?1`.
    fn children(self) -> &'static str {
        match self {
            Scope::Run(_) => "parent_run = ?1",
            Scope::Job(_) => "parent_job = ?1",
        }
    }

    fn id(self) -> i64 {
        match self {
            Scope::Run(run) => run.0,
            Scope::Job(job) => job.0,
        }
    }
}

/// Parses a state name stored by the write side.
pub(super) fn parse_state<T>(text: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse().map_err(|error| {
        Error::Sqlite(rusqlite::Error::FromSqlConversionFailure(
            0,
            Type::Text,
            Box::new(error),
        ))
    })
}

fn conversion(
    index: usize,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
}

fn get_state<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    text.parse().map_err(|error| conversion(index, error))
}

/// A JSON column; NULL reads as `Value::Null`.
fn get_json(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    match row.get::<_, Option<String>>(index)? {
        None => Ok(Value::Null),
        Some(text) => serde_json::from_str(&text).map_err(|error| conversion(index, error)),
    }
}

fn get_time(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let ms: i64 = row.get(index)?;
    DateTime::from_timestamp_millis(ms).ok_or(rusqlite::Error::IntegralValueOutOfRange(index, ms))
}

fn get_opt_time(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(_) => get_time(row, index).map(Some),
    }
}

fn get_opt_u64(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row
        .get::<_, Option<i64>>(index)?
        .map(|value| u64::try_from(value).unwrap_or(0)))
}

const DEFINITION_COLUMNS: &str = "name, hash, yaml, source_path, first_seen, last_seen";

fn definition_from_row(row: &Row<'_>) -> rusqlite::Result<Definition> {
    Ok(Definition {
        name: row.get(0)?,
        hash: row.get(1)?,
        yaml: row.get(2)?,
        source_path: row.get(3)?,
        first_seen: get_time(row, 4)?,
        last_seen: get_time(row, 5)?,
    })
}

/// The latest definition of `name`, or its version `hash`.
pub(super) fn definition(
    conn: &Connection,
    name: &str,
    hash: Option<&str>,
) -> Result<Option<Definition>, Error> {
    let sql = format!(
        "SELECT {DEFINITION_COLUMNS} FROM definitions
         WHERE name = ?1 AND (?2 IS NULL OR hash = ?2)
         ORDER BY seen_seq DESC LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![name, hash], definition_from_row)
        .optional()?)
}

pub(super) fn definitions(conn: &Connection) -> Result<Vec<Definition>, Error> {
    let sql = format!(
        "SELECT {DEFINITION_COLUMNS} FROM definitions AS d
         WHERE seen_seq = (SELECT max(seen_seq) FROM definitions WHERE name = d.name)
         ORDER BY name"
    );
    let mut select = conn.prepare_cached(&sql)?;
    let rows = select.query_map([], definition_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const RUN_COLUMNS: &str = "id, workflow, status, trigger, params, created_at, started_at, \
                           finished_at, reason, def_hash, owner_pid, owner_start, owner_host, \
                           cancel_requested, parent_run, parent_job";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: RunId(row.get(0)?),
        workflow: row.get(1)?,
        status: get_state(row, 2)?,
        trigger: get_json(row, 3)?,
        params: get_json(row, 4)?,
        created_at: get_time(row, 5)?,
        started_at: get_opt_time(row, 6)?,
        finished_at: get_opt_time(row, 7)?,
        reason: row.get(8)?,
        def_hash: row.get(9)?,
        owner: owner_from_row(row, 10)?,
        cancel_requested: row.get(13)?,
        parent: parent_from_row(row.get(14)?, row.get(15)?),
    })
}

/// A child run's parent, from its `parent_run` and `parent_job` columns.
fn parent_from_row(run: Option<i64>, job: Option<i64>) -> Option<ParentLink> {
    Some(ParentLink {
        run: RunId(run?),
        job: JobId(job?),
    })
}

/// The owner in columns `index..index + 3` (pid, start time, host).
fn owner_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Owner>> {
    let pid: Option<u32> = row.get(index)?;
    let Some(pid) = pid else {
        return Ok(None);
    };
    Ok(Some(Owner {
        pid,
        start_time: get_opt_u64(row, index + 1)?.unwrap_or(0),
        host: row.get::<_, Option<String>>(index + 2)?.unwrap_or_default(),
    }))
}

pub(super) fn run(conn: &Connection, id: RunId) -> Result<Option<RunRecord>, Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.0], run_from_row)
        .optional()?)
}

pub(super) fn latest_run(conn: &Connection) -> Result<Option<RunRecord>, Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT 1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([], run_from_row)
        .optional()?)
}

/// The run id a command-line reference names: `42`, or `last` (`None` when there is no run).
fn run_id(conn: &Connection, reference: &str) -> Result<Option<RunId>, Error> {
    if reference == "last" {
        let id = conn
            .prepare_cached("SELECT max(id) FROM runs")?
            .query_row([], |row| row.get::<_, Option<i64>>(0))?;
        return Ok(id.map(RunId));
    }
    match reference.parse::<i64>() {
        Ok(id) if id > 0 && reference.bytes().all(|byte| byte.is_ascii_digit()) => {
            Ok(Some(RunId(id)))
        }
        _ => Err(Error::InvalidReference {
            reference: reference.to_owned(),
        }),
    }
}

pub(super) fn resolve_run(conn: &Connection, reference: &str) -> Result<Option<RunRecord>, Error> {
    match run_id(conn, reference.trim())? {
        Some(id) => run(conn, id),
        None => Ok(None),
    }
}

pub(super) fn runs(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
    let mut conditions = Vec::new();
    if filter.workflow.is_some() {
        conditions.push("workflow = ?1");
    }
    if filter.status.is_some() {
        conditions.push("status = ?2");
    }
    // Always named: SQLite refuses a bound parameter above the largest one used.
    conditions.push("(?4 IS NULL OR id < ?4)");
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs {} ORDER BY id DESC LIMIT ?3",
        where_clause(&conditions)
    );
    let mut select = conn.prepare_cached(&sql)?;
    let rows = select.query_map(
        params![
            filter.workflow,
            filter.status.map(RunState::as_str),
            limit(filter.limit),
            filter.before.map(|run| run.0),
        ],
        run_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `WHERE a AND b`, or nothing. Parameters a condition does not name are still bound, which
/// SQLite allows for numbered parameters up to the largest one used.
fn where_clause(conditions: &[&str]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// A `LIMIT` value; -1 means none.
fn limit(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX))
}

const JOB_COLUMNS: &str = "j.id, j.run_id, j.name, j.status, j.queue, j.priority, j.metadata, \
                           j.attempts, j.exit_code, j.started_at, j.finished_at, j.duration_ms, \
                           j.peak_rss_bytes, j.cpu_ms, j.reason, j.base_name, j.matrix, \
                           j.needs, j.max_attempts, j.attempts_before_retry, j.queued_at, \
                           j.kill_token, j.cancel_requested, \
                           (SELECT r.created_at FROM runs AS r WHERE r.id = j.run_id), j.item, \
                           j.runs_on, j.cpu_milli, j.memory";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: JobId(row.get(0)?),
        run_id: RunId(row.get(1)?),
        name: row.get(2)?,
        status: get_state(row, 3)?,
        queue: row.get(4)?,
        priority: row.get(5)?,
        metadata: get_json(row, 6)?,
        attempts: row.get(7)?,
        exit_code: row.get(8)?,
        started_at: get_opt_time(row, 9)?,
        finished_at: get_opt_time(row, 10)?,
        duration_ms: get_opt_u64(row, 11)?,
        peak_rss_bytes: get_opt_u64(row, 12)?,
        cpu_ms: get_opt_u64(row, 13)?,
        outputs: BTreeMap::new(),
        reason: row.get(14)?,
        base_name: row.get(15)?,
        matrix: get_json(row, 16)?,
        needs: strings(get_json(row, 17)?),
        max_attempts: row.get(18)?,
        history: Vec::new(),
        child_runs: Vec::new(),
        attempts_before_retry: row.get(19)?,
        queued_at: get_opt_time(row, 20)?,
        kill_token: row.get(21)?,
        cancel_requested: row.get(22)?,
        created_at: get_time(row, 23)?,
        item: get_json(row, 24)?,
        runs_on: strings(get_json(row, 25)?),
        request: Request::from_milli(row.get(26)?, row.get(27)?),
    })
}

/// The strings of a JSON array (`needs`, `runs_on`); nothing for anything else.
fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

const ATTEMPT_COLUMNS: &str = "a.job_id, a.number, a.status, a.reason, a.exit_code, \
                               a.started_at, a.finished_at, a.duration_ms, a.peak_rss_bytes, \
                               a.cpu_ms, a.kill_token, a.log_bytes, a.log_lines";

fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<(JobId, AttemptRecord)> {
    let log = match (get_opt_u64(row, 11)?, get_opt_u64(row, 12)?) {
        (Some(bytes), Some(lines)) => Some(LogSummary { bytes, lines }),
        _ => None,
    };
    let attempt = AttemptRecord {
        number: row.get(1)?,
        status: get_state(row, 2)?,
        reason: row.get(3)?,
        exit_code: row.get(4)?,
        started_at: get_time(row, 5)?,
        finished_at: get_opt_time(row, 6)?,
        duration_ms: get_opt_u64(row, 7)?,
        peak_rss_bytes: get_opt_u64(row, 8)?,
        cpu_ms: get_opt_u64(row, 9)?,
        steps: Vec::new(),
        kill_token: row.get(10)?,
        log,
    };
    Ok((JobId(row.get(0)?), attempt))
}

const STEP_COLUMNS: &str =
    "s.job_id, s.attempt, s.idx, s.name, s.status, s.exit_code, s.started_at, s.finished_at";

fn step_from_row(row: &Row<'_>) -> rusqlite::Result<StepRecord> {
    Ok(StepRecord {
        job: JobId(row.get(0)?),
        attempt: row.get(1)?,
        index: row.get(2)?,
        name: row.get(3)?,
        status: get_state(row, 4)?,
        exit_code: row.get(5)?,
        started_at: get_opt_time(row, 6)?,
        finished_at: get_opt_time(row, 7)?,
    })
}

/// The jobs in `scope` with history and outputs, in creation order. Four queries whatever the
/// number of jobs; call inside a read transaction for one consistent snapshot.
pub(super) fn jobs(conn: &Connection, scope: Scope) -> Result<Vec<JobRecord>, Error> {
    let mut jobs = jobs_without_history(conn, scope)?;
    let condition = scope.condition();
    let id = scope.id();
    let index = positions(&jobs);

    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
         WHERE {condition} ORDER BY a.job_id, a.number"
    );
    let mut attempt_index: HashMap<(JobId, u32), (usize, usize)> = HashMap::new();
    for row in conn
        .prepare_cached(&sql)?
        .query_map([id], attempt_from_row)?
    {
        let (job, attempt) = row?;
        if let Some(&at) = index.get(&job) {
            let history = &mut jobs[at].history;
            attempt_index.insert((job, attempt.number), (at, history.len()));
            history.push(attempt);
        }
    }

    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM steps AS s JOIN jobs AS j ON j.id = s.job_id
         WHERE {condition} ORDER BY s.job_id, s.attempt, s.idx"
    );
    for row in conn.prepare_cached(&sql)?.query_map([id], step_from_row)? {
        let step = row?;
        if let Some(&(job_at, attempt_at)) = attempt_index.get(&(step.job, step.attempt)) {
            jobs[job_at].history[attempt_at].steps.push(step);
        }
    }

    let sql = format!(
        "SELECT parent_job, id FROM runs WHERE {} ORDER BY id",
        scope.children()
    );
    let mut select = conn.prepare_cached(&sql)?;
    let mut rows = select.query([id])?;
    while let Some(row) = rows.next()? {
        if let Some(&at) = index.get(&JobId(row.get(0)?)) {
            jobs[at].child_runs.push(RunId(row.get(1)?));
        }
    }
    Ok(jobs)
}

/// Where each job sits in `jobs`.
fn positions(jobs: &[JobRecord]) -> HashMap<JobId, usize> {
    jobs.iter()
        .enumerate()
        .map(|(at, job)| (job.id, at))
        .collect()
}

/// The jobs of `scope` with their outputs, without their attempts (`history` empty): what a
/// worker needs of the job it claims and of its needs, read under the write lock.
pub(super) fn jobs_without_history(
    conn: &Connection,
    scope: Scope,
) -> Result<Vec<JobRecord>, Error> {
    let condition = scope.condition();
    let id = scope.id();

    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs AS j WHERE {condition} ORDER BY j.id");
    let mut jobs: Vec<JobRecord> = conn
        .prepare_cached(&sql)?
        .query_map([id], job_from_row)?
        .collect::<Result<_, _>>()?;
    let index = positions(&jobs);

    let sql = format!(
        "SELECT o.job_id, o.key, o.value FROM outputs AS o JOIN jobs AS j ON j.id = o.job_id
         WHERE {condition}"
    );
    let mut select = conn.prepare_cached(&sql)?;
    let rows = select.query_map([id], |row| {
        Ok((
            JobId(row.get(0)?),
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (job, key, value) = row?;
        if let Some(&at) = index.get(&job) {
            jobs[at].outputs.insert(key, value);
        }
    }
    Ok(jobs)
}

/// A job named `17` (job id), `42/extract` or `last/report[format=csv]`.
pub(super) fn resolve_job(conn: &Connection, reference: &str) -> Result<Option<JobRecord>, Error> {
    let reference = reference.trim();
    let id = match reference.split_once('/') {
        Some((run, name)) => {
            let Some(run) = run_id(conn, run)? else {
                return Ok(None);
            };
            conn.prepare_cached("SELECT id FROM jobs WHERE run_id = ?1 AND name = ?2")?
                .query_row(params![run.0, name], |row| row.get(0))
                .optional()?
        }
        None => match reference.parse::<i64>() {
            Ok(id) if id > 0 && reference.bytes().all(|byte| byte.is_ascii_digit()) => Some(id),
            _ => {
                return Err(Error::InvalidReference {
                    reference: reference.to_owned(),
                });
            }
        },
    };
    match id {
        Some(id) => Ok(jobs(conn, Scope::Job(JobId(id)))?.pop()),
        None => Ok(None),
    }
}

pub(super) fn list_jobs(conn: &Connection, filter: &JobFilter) -> Result<Vec<JobRecord>, Error> {
    let mut conditions = Vec::new();
    if filter.queue.is_some() {
        conditions.push("j.queue = ?1");
    }
    if filter.status.is_some() {
        conditions.push("j.status = ?2");
    }
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs AS j {} ORDER BY j.id DESC LIMIT ?3",
        where_clause(&conditions)
    );
    let mut select = conn.prepare_cached(&sql)?;
    let rows = select.query_map(
        params![
            filter.queue,
            filter.status.map(JobState::as_str),
            limit(filter.limit)
        ],
        job_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn attempts(conn: &Connection, job: JobId) -> Result<Vec<AttemptRecord>, Error> {
    Ok(jobs(conn, Scope::Job(job))?
        .pop()
        .map(|job| job.history)
        .unwrap_or_default())
}

pub(super) fn outputs(conn: &Connection, job: JobId) -> Result<BTreeMap<String, String>, Error> {
    let mut select = conn.prepare_cached("SELECT key, value FROM outputs WHERE job_id = ?1")?;
    let rows = select.query_map([job.0], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The cancel flags of `run` and its jobs, without clearing them.
pub(super) fn cancel_requests(conn: &Connection, run: RunId) -> Result<CancelRequests, Error> {
    let flagged: Option<bool> = conn
        .prepare_cached("SELECT cancel_requested FROM runs WHERE id = ?1")?
        .query_row([run.0], |row| row.get(0))
        .optional()?;
    let Some(flagged) = flagged else {
        return Err(Error::RunNotFound(run));
    };
    let mut select = conn.prepare_cached(
        "SELECT id FROM jobs WHERE run_id = ?1 AND cancel_requested <> 0 ORDER BY id",
    )?;
    let jobs = select
        .query_map([run.0], |row| Ok(JobId(row.get(0)?)))?
        .collect::<Result<_, _>>()?;
    Ok(CancelRequests { run: flagged, jobs })
}

/// Queued and running runs that have an owner, with it.
pub(super) fn owned_active_runs(conn: &Connection) -> Result<Vec<(RunId, Owner)>, Error> {
    let mut select = conn.prepare_cached(
        "SELECT id, owner_pid, owner_start, owner_host FROM runs
         WHERE status IN ('queued', 'running') AND owner_pid IS NOT NULL",
    )?;
    let rows = select.query_map([], |row| Ok((RunId(row.get(0)?), owner_from_row(row, 1)?)))?;
    let mut runs = Vec::new();
    for row in rows {
        if let (run, Some(owner)) = row? {
            runs.push((run, owner));
        }
    }
    Ok(runs)
}

/// The log files of `run` (or of one of its jobs).
pub(super) fn log_sources(
    conn: &Connection,
    dir: &Path,
    run: RunId,
    job: Option<JobId>,
) -> Result<Vec<LogSource>, Error> {
    let mut select = conn.prepare_cached(
        "SELECT a.job_id, j.name, a.number, a.log_path, a.started_at
         FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
         WHERE j.run_id = ?1 AND (?2 IS NULL OR j.id = ?2)
         ORDER BY a.started_at, a.job_id, a.number",
    )?;
    let rows = select.query_map(params![run.0, job.map(|job| job.0)], |row| {
        Ok(LogSource {
            job_id: JobId(row.get(0)?),
            job: row.get(1)?,
            attempt: row.get(2)?,
            path: dir.join(row.get::<_, String>(3)?),
            not_before: get_time(row, 4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::super::test_support::{job, run, store};
    use crate::state::{JobId, JobState, RunId, RunState};
    use crate::store::error::Error;
    use crate::store::logs::LogStore;
    use crate::store::logs::Stream;
    use crate::store::runs::{Change, JobFilter, RunFilter, RunStore, RunTransition, Transition};

    #[test]
    fn resolves_run_and_job_references() {
        let (_dir, store) = store();
        assert!(store.resolve_run("last").unwrap().is_none());
        assert!(store.resolve_job("last/extract").unwrap().is_none());
        let (first, first_ids) = store
            .create_run(&run("wf", vec![job("extract", &[], JobState::Queued)]))
            .unwrap();
        let (second, ids) = store
            .create_run(&run(
                "wf",
                vec![
                    job("extract", &[], JobState::Queued),
                    job("report[format=csv]", &["extract"], JobState::Pending),
                    job("report[path=a/b]", &["extract"], JobState::Pending),
                ],
            ))
            .unwrap();

        assert_eq!(store.resolve_run("last").unwrap().unwrap().id, second);
        assert_eq!(
            store.resolve_run(&first.to_string()).unwrap().unwrap().id,
            first
        );
        assert!(store.resolve_run("999").unwrap().is_none());
        for bad in ["", "-1", "0", "abc", "+3", "1.5"] {
            assert!(
                matches!(store.resolve_run(bad), Err(Error::InvalidReference { .. })),
                "{bad}"
            );
        }

        let id = |reference: &str| store.resolve_job(reference).unwrap().map(|job| job.id);
        assert_eq!(id(&format!("{first}/extract")), Some(first_ids[0]));
        assert_eq!(id("last/extract"), Some(ids[0]));
        assert_eq!(id(&format!("{second}/report[format=csv]")), Some(ids[1]));
        assert_eq!(id("last/report[path=a/b]"), Some(ids[2]));
        assert_eq!(id(&ids[1].to_string()), Some(ids[1]));
        assert_eq!(id("last/report"), None);
        assert_eq!(id("999/extract"), None);
        assert_eq!(id("999999"), None);
        for bad in ["extract", "x/extract", "1.5"] {
            assert!(
                matches!(store.resolve_job(bad), Err(Error::InvalidReference { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn lists_runs_and_jobs_newest_first_with_filters() {
        let (_dir, store) = store();
        let mut ids = Vec::new();
        for workflow in ["a", "b", "a"] {
            let mut other = job("j", &[], JobState::Queued);
            other.queue = "etl".into();
            let new = run(workflow, vec![job("i", &[], JobState::Pending), other]);
            ids.push(store.create_run(&new).unwrap().0);
        }
        let finish = RunTransition {
            run: ids[0],
            to: RunState::Failed,
            at: Utc::now(),
            reason: None,
        };
        store.apply(&[finish.into()]).unwrap();

        let all = store.runs(&RunFilter::default()).unwrap();
        let order: Vec<RunId> = all.iter().map(|run| run.id).collect();
        assert_eq!(order, [ids[2], ids[1], ids[0]]);
        let filter = RunFilter {
            workflow: Some("a".into()),
            status: None,
            limit: Some(1),
            before: None,
        };
        assert_eq!(store.runs(&filter).unwrap()[0].id, ids[2]);
        let failed = RunFilter {
            status: Some(RunState::Failed),
            ..RunFilter::default()
        };
        assert_eq!(store.runs(&failed).unwrap().len(), 1);
        assert_eq!(store.latest_run().unwrap().unwrap().id, ids[2]);

        let etl = JobFilter {
            queue: Some("etl".into()),
            status: Some(JobState::Queued),
            limit: None,
        };
        let jobs = store.list_jobs(&etl).unwrap();
        assert_eq!(jobs.len(), 3);
        assert!(jobs[0].id > jobs[1].id);
        let pending = JobFilter {
            status: Some(JobState::Pending),
            limit: Some(2),
            ..JobFilter::default()
        };
        assert_eq!(store.list_jobs(&pending).unwrap().len(), 2);
    }

    #[test]
    fn a_runs_logs_merge_across_jobs_and_attempts() {
        let (_dir, store) = store();
        let (run_id, ids) = store
            .create_run(&run(
                "wf",
                vec![
                    job("a", &[], JobState::Queued),
                    job("b", &[], JobState::Queued),
                ],
            ))
            .unwrap();
        let (a, b) = (ids[0], ids[1]);
        let t0 = Utc::now();
        let at = |ms| t0 + Duration::milliseconds(ms);
        let start =
            |job: JobId, ms| -> Change { Transition::new(job, JobState::Running, at(ms)).into() };
        store.apply(&[start(a, 0), start(b, 1)]).unwrap();
        let mut wa = store.log_writer(run_id, a, 1).unwrap();
        let mut wb = store.log_writer(run_id, b, 1).unwrap();
        wa.write_line(at(2), Stream::Stdout, 0, "s", b"a1").unwrap();
        wb.write_line(at(3), Stream::Stderr, 0, "t", b"b1\xff")
            .unwrap();
        wa.write_line(at(4), Stream::Stdout, 0, "s", b"a2").unwrap();
        let summary = wa.finish().unwrap();
        wb.finish().unwrap();
        store
            .apply(&[
                Transition::new(a, JobState::Failed, at(5)).into(),
                Change::LogClosed {
                    job: a,
                    attempt: 1,
                    summary,
                },
                Transition::new(a, JobState::Queued, at(6)).into(),
                start(a, 7),
            ])
            .unwrap();
        let mut retry = store.log_writer(run_id, a, 2).unwrap();
        retry
            .write_line(at(8), Stream::Stdout, 0, "s", b"a3")
            .unwrap();
        retry.flush().unwrap();

        let lines: Vec<_> = store
            .read_logs(run_id, None, None)
            .unwrap()
            .map(|line| line.unwrap())
            .collect();
        let seen: Vec<_> = lines
            .iter()
            .map(|line| (line.job.as_str(), line.attempt, line.line.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", 1, "a1"),
                ("b", 1, "b1\u{fffd}"),
                ("a", 1, "a2"),
                ("a", 2, "a3")
            ]
        );
        assert_eq!(store.attempts(a).unwrap()[0].log.unwrap().lines, 2);

        let mut reader = store.read_logs(run_id, Some(b), None).unwrap();
        assert_eq!(reader.by_ref().count(), 1);
        let cursor = reader.cursor();
        assert_eq!(
            store
                .read_logs(run_id, Some(b), Some(&cursor))
                .unwrap()
                .count(),
            0
        );
    }
}
