//! Read verbs of [`super::PgStore`] and the mapping from rows to records.
//!
//! A value this version cannot read (an unknown state name, bad JSON, a figure out of range)
//! fails the column's conversion, a [`postgres::Error`] without an SQL state, which
//! [`Error::is_environment`] counts as a corrupt environment, as the SQLite store's conversion
//! failures are.
//!
//! Text is ordered bytewise (`COLLATE "C"`), as SQLite's `BINARY` collation orders it,
//! whatever the database's default collation.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use postgres::Row;
use postgres::types::{FromSql, Type};

use super::tx::Tx;
use serde_json::Value;

use crate::scheduler::resources::Request;
use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::logs::LogSummary;
use crate::store::owner::Owner;
use crate::store::runs::{
    AttemptRecord, CancelRequests, Definition, JobFilter, JobRecord, ParentLink, RunFilter,
    RunRecord, StepRecord,
};

/// Why a column could not be read.
type ConversionError = Box<dyn std::error::Error + Sync + Send>;

/// A BIGINT column read as a figure that must fit `T` (an attempt number, an exit code, a
/// pid).
pub(super) struct Fits<T>(pub(super) T);

impl<'a, T: TryFrom<i64>> FromSql<'a> for Fits<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let value = i64::from_sql(ty, raw)?;
        T::try_from(value)
            .map(Fits)
            .map_err(|_| format!("{value} is out of range").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// A BIGINT column of milliseconds since the epoch.
pub(super) struct Millis(pub(super) DateTime<Utc>);

impl<'a> FromSql<'a> for Millis {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let ms = i64::from_sql(ty, raw)?;
        DateTime::from_timestamp_millis(ms)
            .map(Millis)
            .ok_or_else(|| format!("{ms} ms since the epoch is out of range").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// A TEXT column holding the name of a state (`JobState`, `RunState`).
pub(super) struct State<T>(pub(super) T);

impl<'a, T> FromSql<'a> for State<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        Ok(State(text.parse()?))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A TEXT column holding JSON.
struct Json(Value);

impl<'a> FromSql<'a> for Json {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, ConversionError> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        Ok(Json(serde_json::from_str(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A state column.
pub(super) fn get_state<T>(row: &Row, index: usize) -> Result<T, postgres::Error>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(row.try_get::<_, State<T>>(index)?.0)
}

/// A JSON column; NULL reads as `Value::Null`.
fn get_json(row: &Row, index: usize) -> Result<Value, postgres::Error> {
    Ok(row
        .try_get::<_, Option<Json>>(index)?
        .map_or(Value::Null, |json| json.0))
}

fn get_time(row: &Row, index: usize) -> Result<DateTime<Utc>, postgres::Error> {
    Ok(row.try_get::<_, Millis>(index)?.0)
}

fn get_opt_time(row: &Row, index: usize) -> Result<Option<DateTime<Utc>>, postgres::Error> {
    Ok(row.try_get::<_, Option<Millis>>(index)?.map(|time| time.0))
}

/// A figure that must fit `T`.
pub(super) fn get_fit<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T, postgres::Error> {
    Ok(row.try_get::<_, Fits<T>>(index)?.0)
}

/// An optional figure that must fit `T`.
pub(super) fn get_opt_fit<T: TryFrom<i64>>(
    row: &Row,
    index: usize,
) -> Result<Option<T>, postgres::Error> {
    Ok(row.try_get::<_, Option<Fits<T>>>(index)?.map(|fit| fit.0))
}

/// An unsigned figure; a negative one reads as 0, as in the SQLite store.
fn get_opt_u64(row: &Row, index: usize) -> Result<Option<u64>, postgres::Error> {
    Ok(row
        .try_get::<_, Option<i64>>(index)?
        .map(|value| u64::try_from(value).unwrap_or(0)))
}

/// A 0/1 flag.
pub(super) fn get_flag(row: &Row, index: usize) -> Result<bool, postgres::Error> {
    Ok(row.try_get::<_, i64>(index)? != 0)
}

/// Which jobs [`jobs`] loads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope {
    Run(RunId),
    Job(JobId),
}

impl Scope {
    /// The condition on `jobs AS j`, with the id as `$1`.
    fn condition(self) -> &'static str {
        match self {
            Scope::Run(_) => "j.run_id = $1",
            Scope::Job(_) => "j.id = $1",
        }
    }

    /// The condition on `runs` for the child runs of the jobs in scope, with the id as `$1`.
    fn children(self) -> &'static str {
        match self {
            Scope::Run(_) => "parent_run = $1",
            Scope::Job(_) => "parent_job = $1",
        }
    }

    fn id(self) -> i64 {
        match self {
            Scope::Run(run) => run.0,
            Scope::Job(job) => job.0,
        }
    }
}

const DEFINITION_COLUMNS: &str = "name, hash, yaml, source_path, first_seen, last_seen";

fn definition_from_row(row: &Row) -> Result<Definition, postgres::Error> {
    Ok(Definition {
        name: row.try_get(0)?,
        hash: row.try_get(1)?,
        yaml: row.try_get(2)?,
        source_path: row.try_get(3)?,
        first_seen: get_time(row, 4)?,
        last_seen: get_time(row, 5)?,
    })
}

/// The latest definition of `name`, or its version `hash`.
pub(super) fn definition(
    tx: &mut Tx<'_>,
    name: &str,
    hash: Option<&str>,
) -> Result<Option<Definition>, Error> {
    let sql = format!(
        "SELECT {DEFINITION_COLUMNS} FROM definitions
         WHERE name = $1 AND ($2::TEXT IS NULL OR hash = $2)
         ORDER BY seen_seq DESC LIMIT 1"
    );
    Ok(tx
        .query_opt(&sql, &[&name, &hash])?
        .map(|row| definition_from_row(&row))
        .transpose()?)
}

pub(super) fn definitions(tx: &mut Tx<'_>) -> Result<Vec<Definition>, Error> {
    let sql = format!(
        "SELECT {DEFINITION_COLUMNS} FROM definitions AS d
         WHERE seen_seq = (SELECT max(seen_seq) FROM definitions WHERE name = d.name)
         ORDER BY name COLLATE \"C\""
    );
    let rows = tx.query(&sql, &[])?;
    Ok(rows
        .iter()
        .map(definition_from_row)
        .collect::<Result<_, _>>()?)
}

const RUN_COLUMNS: &str = "id, workflow, status, trigger, params, created_at, started_at, \
                           finished_at, reason, def_hash, owner_pid, owner_start, owner_host, \
                           cancel_requested, parent_run, parent_job";

pub(super) fn run_from_row(row: &Row) -> Result<RunRecord, postgres::Error> {
    Ok(RunRecord {
        id: RunId(row.try_get(0)?),
        workflow: row.try_get(1)?,
        status: get_state(row, 2)?,
        trigger: get_json(row, 3)?,
        params: get_json(row, 4)?,
        created_at: get_time(row, 5)?,
        started_at: get_opt_time(row, 6)?,
        finished_at: get_opt_time(row, 7)?,
        reason: row.try_get(8)?,
        def_hash: row.try_get(9)?,
        owner: owner_from_row(row, 10)?,
        cancel_requested: get_flag(row, 13)?,
        parent: parent_from_row(row.try_get(14)?, row.try_get(15)?),
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
pub(super) fn owner_from_row(row: &Row, index: usize) -> Result<Option<Owner>, postgres::Error> {
    let Some(pid) = get_opt_fit::<u32>(row, index)? else {
        return Ok(None);
    };
    Ok(Some(Owner {
        pid,
        start_time: get_opt_u64(row, index + 1)?.unwrap_or(0),
        host: row
            .try_get::<_, Option<String>>(index + 2)?
            .unwrap_or_default(),
    }))
}

pub(super) fn run(tx: &mut Tx<'_>, id: RunId) -> Result<Option<RunRecord>, Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
    Ok(tx
        .query_opt(&sql, &[&id.0])?
        .map(|row| run_from_row(&row))
        .transpose()?)
}

pub(super) fn latest_run(tx: &mut Tx<'_>) -> Result<Option<RunRecord>, Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT 1");
    Ok(tx
        .query_opt(&sql, &[])?
        .map(|row| run_from_row(&row))
        .transpose()?)
}

/// The run id a command-line reference names: `42`, or `last` (`None` when there is no run).
fn run_id(tx: &mut Tx<'_>, reference: &str) -> Result<Option<RunId>, Error> {
    if reference == "last" {
        let id: Option<i64> = tx.query_one("SELECT max(id) FROM runs", &[])?.try_get(0)?;
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

pub(super) fn resolve_run(tx: &mut Tx<'_>, reference: &str) -> Result<Option<RunRecord>, Error> {
    match run_id(tx, reference.trim())? {
        Some(id) => run(tx, id),
        None => Ok(None),
    }
}

pub(super) fn runs(tx: &mut Tx<'_>, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
    // A filter left out is bound as NULL (PostgreSQL plans each statement with the values
    // bound, so the condition folds away).
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE ($1::TEXT IS NULL OR workflow = $1) AND ($2::TEXT IS NULL OR status = $2)
           AND ($4::BIGINT IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $3"
    );
    let rows = tx.query(
        &sql,
        &[
            &filter.workflow,
            &filter.status.map(RunState::as_str),
            &limit(filter.limit),
            &filter.before.map(|run| run.0),
        ],
    )?;
    Ok(rows.iter().map(run_from_row).collect::<Result<_, _>>()?)
}

/// A `LIMIT` value; NULL means none (`LIMIT NULL` is `LIMIT ALL`).
fn limit(limit: Option<usize>) -> Option<i64> {
    limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX))
}

const JOB_COLUMNS: &str = "j.id, j.run_id, j.name, j.status, j.queue, j.priority, j.metadata, \
                           j.attempts, j.exit_code, j.started_at, j.finished_at, j.duration_ms, \
                           j.peak_rss_bytes, j.cpu_ms, j.reason, j.base_name, j.matrix, \
                           j.needs, j.max_attempts, j.attempts_before_retry, j.queued_at, \
                           j.kill_token, j.cancel_requested, \
                           (SELECT r.created_at FROM runs AS r WHERE r.id = j.run_id), j.item, \
                           j.runs_on, j.cpu_milli, j.memory";

fn job_from_row(row: &Row) -> Result<JobRecord, postgres::Error> {
    Ok(JobRecord {
        id: JobId(row.try_get(0)?),
        run_id: RunId(row.try_get(1)?),
        name: row.try_get(2)?,
        status: get_state(row, 3)?,
        queue: row.try_get(4)?,
        priority: row.try_get(5)?,
        metadata: get_json(row, 6)?,
        attempts: get_fit(row, 7)?,
        exit_code: get_opt_fit(row, 8)?,
        started_at: get_opt_time(row, 9)?,
        finished_at: get_opt_time(row, 10)?,
        duration_ms: get_opt_u64(row, 11)?,
        peak_rss_bytes: get_opt_u64(row, 12)?,
        cpu_ms: get_opt_u64(row, 13)?,
        outputs: BTreeMap::new(),
        reason: row.try_get(14)?,
        base_name: row.try_get(15)?,
        matrix: get_json(row, 16)?,
        needs: strings(get_json(row, 17)?),
        max_attempts: get_fit(row, 18)?,
        history: Vec::new(),
        child_runs: Vec::new(),
        attempts_before_retry: get_fit(row, 19)?,
        queued_at: get_opt_time(row, 20)?,
        kill_token: row.try_get(21)?,
        cancel_requested: get_flag(row, 22)?,
        created_at: get_time(row, 23)?,
        item: get_json(row, 24)?,
        runs_on: strings(get_json(row, 25)?),
        request: Request::from_milli(row.try_get(26)?, row.try_get(27)?),
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

fn attempt_from_row(row: &Row) -> Result<(JobId, AttemptRecord), postgres::Error> {
    let log = match (get_opt_u64(row, 11)?, get_opt_u64(row, 12)?) {
        (Some(bytes), Some(lines)) => Some(LogSummary { bytes, lines }),
        _ => None,
    };
    let attempt = AttemptRecord {
        number: get_fit(row, 1)?,
        status: get_state(row, 2)?,
        reason: row.try_get(3)?,
        exit_code: get_opt_fit(row, 4)?,
        started_at: get_time(row, 5)?,
        finished_at: get_opt_time(row, 6)?,
        duration_ms: get_opt_u64(row, 7)?,
        peak_rss_bytes: get_opt_u64(row, 8)?,
        cpu_ms: get_opt_u64(row, 9)?,
        steps: Vec::new(),
        kill_token: row.try_get(10)?,
        log,
    };
    Ok((JobId(row.try_get(0)?), attempt))
}

const STEP_COLUMNS: &str =
    "s.job_id, s.attempt, s.idx, s.name, s.status, s.exit_code, s.started_at, s.finished_at";

fn step_from_row(row: &Row) -> Result<StepRecord, postgres::Error> {
    Ok(StepRecord {
        job: JobId(row.try_get(0)?),
        attempt: get_fit(row, 1)?,
        index: get_fit(row, 2)?,
        name: row.try_get(3)?,
        status: get_state(row, 4)?,
        exit_code: get_opt_fit(row, 5)?,
        started_at: get_opt_time(row, 6)?,
        finished_at: get_opt_time(row, 7)?,
    })
}

/// The jobs in `scope` with history and outputs, in creation order. Four queries whatever the
/// number of jobs; call inside a read transaction for one consistent snapshot.
pub(super) fn jobs(tx: &mut Tx<'_>, scope: Scope) -> Result<Vec<JobRecord>, Error> {
    let mut jobs = jobs_without_history(tx, scope)?;
    let condition = scope.condition();
    let id = scope.id();
    let index = positions(&jobs);

    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
         WHERE {condition} ORDER BY a.job_id, a.number"
    );
    let mut attempt_index: HashMap<(JobId, u32), (usize, usize)> = HashMap::new();
    for row in tx.query(&sql, &[&id])? {
        let (job, attempt) = attempt_from_row(&row)?;
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
    for row in tx.query(&sql, &[&id])? {
        let step = step_from_row(&row)?;
        if let Some(&(job_at, attempt_at)) = attempt_index.get(&(step.job, step.attempt)) {
            jobs[job_at].history[attempt_at].steps.push(step);
        }
    }

    let sql = format!(
        "SELECT parent_job, id FROM runs WHERE {} ORDER BY id",
        scope.children()
    );
    for row in tx.query(&sql, &[&id])? {
        if let Some(&at) = index.get(&JobId(row.try_get(0)?)) {
            jobs[at].child_runs.push(RunId(row.try_get(1)?));
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

/// The jobs of `scope` with their outputs, without their attempts (`history` empty).
pub(super) fn jobs_without_history(tx: &mut Tx<'_>, scope: Scope) -> Result<Vec<JobRecord>, Error> {
    jobs_where(tx, scope.condition(), &[&scope.id()], true)
}

/// What a worker needs of the job it claims, read under the claim's locks: the job (a new
/// attempt has no outputs yet, so none are read) and the jobs it needs, with their outputs
/// and without attempts.
pub(super) fn claimed_jobs(
    tx: &mut Tx<'_>,
    job: JobId,
    run: RunId,
    needs: impl FnOnce(&JobRecord) -> Vec<String>,
) -> Result<(JobRecord, Vec<JobRecord>), Error> {
    let claimed = jobs_where(tx, "j.id = $1", &[&job.0], false)?
        .pop()
        .ok_or(Error::JobNotFound(job))?;
    let names = needs(&claimed);
    if names.is_empty() {
        return Ok((claimed, Vec::new()));
    }
    let mut needed = jobs_where(
        tx,
        "j.run_id = $1 AND j.name = ANY($2)",
        &[&run.0, &names],
        true,
    )?;
    // In the order the job names them.
    needed.sort_by_key(|job| names.iter().position(|name| *name == job.name));
    Ok((claimed, needed))
}

/// The jobs matching `condition` on `jobs AS j`, by id, with their outputs when asked.
fn jobs_where(
    tx: &mut Tx<'_>,
    condition: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    outputs: bool,
) -> Result<Vec<JobRecord>, Error> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs AS j WHERE {condition} ORDER BY j.id");
    let mut jobs: Vec<JobRecord> = tx
        .query(&sql, params)?
        .iter()
        .map(job_from_row)
        .collect::<Result<_, _>>()?;
    if !outputs || jobs.is_empty() {
        return Ok(jobs);
    }
    let index = positions(&jobs);
    let sql = format!(
        "SELECT o.job_id, o.key, o.value FROM outputs AS o JOIN jobs AS j ON j.id = o.job_id
         WHERE {condition}"
    );
    for row in tx.query(&sql, params)? {
        let job = JobId(row.try_get(0)?);
        let key: String = row.try_get(1)?;
        let value: String = row.try_get(2)?;
        if let Some(&at) = index.get(&job) {
            jobs[at].outputs.insert(key, value);
        }
    }
    Ok(jobs)
}

/// A job named `17` (job id), `42/extract` or `last/report[format=csv]`.
pub(super) fn resolve_job(tx: &mut Tx<'_>, reference: &str) -> Result<Option<JobRecord>, Error> {
    let reference = reference.trim();
    let id: Option<i64> = match reference.split_once('/') {
        Some((run, name)) => {
            let Some(run) = run_id(tx, run)? else {
                return Ok(None);
            };
            tx.query_opt(
                "SELECT id FROM jobs WHERE run_id = $1 AND name = $2",
                &[&run.0, &name],
            )?
            .map(|row| row.try_get(0))
            .transpose()?
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
        Some(id) => Ok(jobs(tx, Scope::Job(JobId(id)))?.pop()),
        None => Ok(None),
    }
}

pub(super) fn list_jobs(tx: &mut Tx<'_>, filter: &JobFilter) -> Result<Vec<JobRecord>, Error> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs AS j
         WHERE ($1::TEXT IS NULL OR j.queue = $1) AND ($2::TEXT IS NULL OR j.status = $2)
         ORDER BY j.id DESC LIMIT $3"
    );
    let rows = tx.query(
        &sql,
        &[
            &filter.queue,
            &filter.status.map(JobState::as_str),
            &limit(filter.limit),
        ],
    )?;
    Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
}

pub(super) fn attempts(tx: &mut Tx<'_>, job: JobId) -> Result<Vec<AttemptRecord>, Error> {
    Ok(jobs(tx, Scope::Job(job))?
        .pop()
        .map(|job| job.history)
        .unwrap_or_default())
}

pub(super) fn outputs(tx: &mut Tx<'_>, job: JobId) -> Result<BTreeMap<String, String>, Error> {
    let rows = tx.query(
        "SELECT key, value FROM outputs WHERE job_id = $1",
        &[&job.0],
    )?;
    Ok(rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, postgres::Error>>()?)
}

/// The cancel flags of `run` and its jobs, without clearing them.
pub(super) fn cancel_requests(tx: &mut Tx<'_>, run: RunId) -> Result<CancelRequests, Error> {
    let Some(row) = tx.query_opt("SELECT cancel_requested FROM runs WHERE id = $1", &[&run.0])?
    else {
        return Err(Error::RunNotFound(run));
    };
    let flagged = get_flag(&row, 0)?;
    let jobs = tx
        .query(
            "SELECT id FROM jobs WHERE run_id = $1 AND cancel_requested <> 0 ORDER BY id",
            &[&run.0],
        )?
        .iter()
        .map(|row| Ok(JobId(row.try_get(0)?)))
        .collect::<Result<_, postgres::Error>>()?;
    Ok(CancelRequests { run: flagged, jobs })
}

/// Queued and running runs that have an owner, with it.
pub(super) fn owned_active_runs(tx: &mut Tx<'_>) -> Result<Vec<(RunId, Owner)>, Error> {
    let rows = tx.query(
        "SELECT id, owner_pid, owner_start, owner_host FROM runs
         WHERE status IN ('queued', 'running') AND owner_pid IS NOT NULL",
        &[],
    )?;
    let mut runs = Vec::new();
    for row in rows {
        if let Some(owner) = owner_from_row(&row, 1)? {
            runs.push((RunId(row.try_get(0)?), owner));
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::super::test_support::store;
    use crate::state::{JobState, RunId, RunState};
    use crate::store::error::Error;
    use crate::store::logs::LogSummary;
    use crate::store::runs::{Change, JobFilter, RunFilter, RunStore, RunTransition, Transition};
    use crate::store::test_support::{job, run};

    #[test]
    fn resolves_run_and_job_references() {
        let store = store();
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
        let store = store();
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

    /// The log lines themselves are `LogStore`'s (`logs.rs`); the run store records where an
    /// attempt's log lives and its summary once closed.
    #[test]
    fn attempts_name_their_log_and_keep_its_summary() {
        let store = store();
        let (_, ids) = store
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        let a = ids[0];
        let t0 = Utc::now();
        let at = |ms| t0 + Duration::milliseconds(ms);
        store
            .apply(&[Transition::new(a, JobState::Running, at(0)).into()])
            .unwrap();
        assert_eq!(store.attempts(a).unwrap()[0].log, None);
        store
            .apply(&[
                Transition::new(a, JobState::Failed, at(5)).into(),
                Change::LogClosed {
                    job: a,
                    attempt: 1,
                    summary: LogSummary {
                        bytes: 30,
                        lines: 2,
                    },
                },
                Transition::new(a, JobState::Queued, at(6)).into(),
                Transition::new(a, JobState::Running, at(7)).into(),
            ])
            .unwrap();
        let attempts = store.attempts(a).unwrap();
        assert_eq!(
            attempts[0].log,
            Some(LogSummary {
                bytes: 30,
                lines: 2
            })
        );
        assert_eq!(attempts[1].log, None);
        let paths: Vec<String> = store
            .read(|tx| {
                let rows = tx.query(
                    "SELECT log_path FROM attempts WHERE job_id = $1 ORDER BY number",
                    &[&a.0],
                )?;
                Ok(rows.iter().map(|row| row.get(0)).collect())
            })
            .unwrap();
        assert_eq!(paths, [format!("db:{a}-1"), format!("db:{a}-2")]);
    }

    #[test]
    fn a_damaged_record_is_an_environment_error() {
        let store = store();
        let (run_id, ids) = store
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        store
            .apply(&[Transition::new(ids[0], JobState::Running, Utc::now()).into()])
            .unwrap();
        // The schema's checks keep unknown states out of `jobs` and `runs`, not `attempts`.
        for (sql, detail) in [
            (
                "UPDATE attempts SET status = 'exploded'",
                "unknown state `exploded`",
            ),
            (
                "UPDATE attempts SET status = 'running'; UPDATE jobs SET metadata = '{'",
                "EOF",
            ),
            (
                "UPDATE jobs SET metadata = '{}', attempts = -1",
                "-1 is out of range",
            ),
        ] {
            store
                .write(|tx| {
                    tx.batch_execute(sql)?;
                    Ok(())
                })
                .unwrap();
            for error in [
                store.jobs(run_id).unwrap_err(),
                store.job(ids[0]).unwrap_err(),
            ] {
                assert!(error.is_environment(), "{sql}: {error}");
                let mut chain = Vec::new();
                let mut next: Option<&dyn std::error::Error> = Some(&error);
                while let Some(cause) = next {
                    chain.push(cause.to_string());
                    next = cause.source();
                }
                assert!(
                    chain.iter().any(|text| text.contains(detail)),
                    "{sql}: {chain:?}"
                );
            }
        }
    }
}
