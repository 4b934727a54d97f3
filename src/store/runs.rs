//! The [`RunStore`] trait and the records it reads and writes.
//!
//! The trait speaks the engine's verbs (create a run, apply a batch of changes, recover lost
//! work), never SQL, so that a PostgreSQL store can later sit beside [`super::SqliteStore`].
//! Everything that happens together goes through one call and so one transaction: a small
//! transaction costs about 23 µs, a state change inside a batch a few.
//!
//! Records serialize to the `--json` shapes of SPEC §4; times are RFC 3339 UTC.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::scheduler::resources::Request;
use crate::state::{JobId, JobState, RunId, RunState};

use super::error::Error;
use super::logs::LogSummary;
use super::owner::Owner;

/// The environment's state store.
///
/// Implementations are shared between threads (`Send + Sync`) and between processes: several
/// `coreflow` commands may use one environment at once.
pub trait RunStore: Send + Sync {
    /// Records a workflow definition (`coreflow run` does, so `coreflow trigger NAME` can run it
    /// later). The same name and hash seen again only moves `last_seen`.
    fn save_definition(&self, definition: &NewDefinition<'_>) -> Result<(), Error>;

    /// The definition of `name` seen most recently.
    fn definition(&self, name: &str) -> Result<Option<Definition>, Error>;

    /// One version of a definition, by its content hash (the one a run was made from).
    fn definition_version(&self, name: &str, hash: &str) -> Result<Option<Definition>, Error>;

    /// The most recent definition of every known workflow, by name.
    fn definitions(&self) -> Result<Vec<Definition>, Error>;

    /// Creates a run and all its jobs in one transaction; the job ids come back in the order of
    /// `run.jobs`.
    fn create_run(&self, run: &NewRun) -> Result<(RunId, Vec<JobId>), Error>;

    /// Adds jobs to an existing run (a `for_each` fan-out), in one transaction; the ids come
    /// back in the order of `jobs`.
    fn add_jobs(&self, run: RunId, jobs: &[NewJob]) -> Result<Vec<JobId>, Error>;

    /// Applies a batch of changes in one transaction. An illegal job transition (see
    /// [`JobState::can_become`]) or a change to a finished run rejects the whole batch.
    fn apply(&self, changes: &[Change]) -> Result<(), Error>;

    /// Gives an ownerless queued run (`--detach`, `trigger`) to `owner`; `false` when the run is
    /// not queued or already has an owner.
    fn claim_run(&self, run: RunId, owner: &Owner) -> Result<bool, Error>;

    /// One run.
    fn run(&self, id: RunId) -> Result<Option<RunRecord>, Error>;

    /// The newest run (`last`).
    fn latest_run(&self) -> Result<Option<RunRecord>, Error>;

    /// A run named as on the command line: `42` or `last`.
    fn resolve_run(&self, reference: &str) -> Result<Option<RunRecord>, Error>;

    /// Runs matching `filter`, newest first.
    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error>;

    /// A run's jobs in creation order, with their attempt history and outputs.
    fn jobs(&self, run: RunId) -> Result<Vec<JobRecord>, Error>;

    /// One job, with its attempt history and outputs.
    fn job(&self, id: JobId) -> Result<Option<JobRecord>, Error>;

    /// A job named as on the command line: `42/extract`, `42/report[format=csv]`,
    /// `last/extract` or a numeric job id `17`.
    fn resolve_job(&self, reference: &str) -> Result<Option<JobRecord>, Error>;

    /// Jobs across runs (`coreflow jobs`), newest first, without history and outputs.
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, Error>;

    /// A job's attempts, first first, each with its step results.
    fn attempts(&self, job: JobId) -> Result<Vec<AttemptRecord>, Error>;

    /// A job's outputs (its current attempt's).
    fn outputs(&self, job: JobId) -> Result<BTreeMap<String, String>, Error>;

    /// Asks for a run to be cancelled. A run without an owner (queued for a daemon) is cancelled
    /// at once; an owned run gets a flag its owner picks up with [`RunStore::take_cancel_requests`].
    /// Call [`RunStore::recover_lost`] first, so that a run whose owner died is not left waiting
    /// for it.
    fn request_cancel_run(&self, run: RunId) -> Result<CancelOutcome, Error>;

    /// Asks for one job to be cancelled, as [`RunStore::request_cancel_run`] does for a run.
    fn request_cancel_job(&self, job: JobId) -> Result<CancelOutcome, Error>;

    /// Takes the notifications of ended run `run` for sending: `true` for the one caller that
    /// gets them (the run's own process or the leading daemon, whichever comes first);
    /// `false` when the run has none pending or has not ended.
    fn claim_notifications(&self, run: RunId) -> Result<bool, Error>;

    /// Ended runs whose notifications nobody has taken yet, oldest first, at most `limit`.
    fn pending_notifications(&self, limit: usize) -> Result<Vec<RunId>, Error>;

    /// Records one attempt of a notifier.
    fn record_notification(&self, record: &NotificationRecord) -> Result<(), Error>;

    /// The recorded notification attempts of `run`, in order.
    fn notifications(&self, run: RunId) -> Result<Vec<NotificationRecord>, Error>;

    /// The cancel requests for `run` made since the last call, clearing them. Cheap when there
    /// are none (one read, no write), so the owning engine may poll it often.
    fn take_cancel_requests(&self, run: RunId) -> Result<CancelRequests, Error>;

    /// Puts finished `jobs` of `run` back to `pending` for `coreflow retry`, keeping their
    /// attempts in history (numbering goes on) and clearing their outputs, and reopens the run:
    /// `running` under `owner`, or `queued` without one.
    fn reset_for_retry(
        &self,
        run: RunId,
        jobs: &[JobId],
        owner: Option<&Owner>,
    ) -> Result<(), Error>;

    /// Finds queued or running runs whose owner is gone (`is_alive` says no): their running jobs
    /// fail with reason `lost` (the attempt too), their pending and queued jobs are cancelled,
    /// the run fails. Returns the runs and the lost jobs so the caller can kill leftover
    /// processes by kill token. Idempotent, and safe when several processes recover at once.
    fn recover_lost(&self, is_alive: &dyn Fn(&Owner) -> bool) -> Result<Recovered, Error>;
}

/// The reason of a job that was running when its owner died, and of that run.
pub const REASON_LOST: &str = "lost";

/// The reason of a pending or queued job cancelled because its run's owner died.
pub const REASON_OWNER_LOST: &str = "owner lost";

/// The reason of work that `coreflow cancel` cancelled directly, as nobody owned it.
pub const REASON_CANCELLED: &str = "cancelled by request";

/// A workflow definition to record.
#[derive(Debug, Clone, Copy)]
pub struct NewDefinition<'a> {
    pub name: &'a str,
    /// Content hash of `yaml`.
    pub hash: &'a str,
    pub yaml: &'a str,
    /// The file it was read from, if any.
    pub source_path: Option<&'a str>,
    pub seen_at: DateTime<Utc>,
}

/// A recorded workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    pub name: String,
    pub hash: String,
    pub yaml: String,
    pub source_path: Option<String>,
    #[serde(serialize_with = "rfc3339::required")]
    pub first_seen: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::required")]
    pub last_seen: DateTime<Utc>,
}

/// A run to create, with its planned jobs.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub workflow: String,
    /// Hash of the definition it runs.
    pub def_hash: String,
    /// Effective parameters, a JSON object.
    pub params: Value,
    /// What created it (`{"kind": "manual"}`, a cron fire, a file…).
    pub trigger: Value,
    /// The time trigger's instant this run fires, claimed in the transaction that creates it.
    pub fire: Option<super::triggers::FireClaim>,
    /// `running` for a foreground run, `queued` for a detached one, `skipped` for a fire the
    /// overlap policy dropped.
    pub status: RunState,
    /// Why, for a skipped run.
    pub reason: Option<String>,
    /// The process executing it; `None` until a daemon or worker claims it.
    pub owner: Option<Owner>,
    pub created_at: DateTime<Utc>,
    pub jobs: Vec<NewJob>,
    /// The `workflow:` job whose child this run is.
    pub parent: Option<ParentLink>,
    /// Whether its workflow has notifiers to send when it ends (`notify:`).
    pub notify: bool,
}

/// One attempt of one notifier (`notify:`) of an ended run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NotificationRecord {
    #[serde(skip)]
    pub run: RunId,
    /// Its position in the workflow's `notify:` list, from 0.
    pub notifier: u32,
    /// `webhook`, `run` or `email`.
    pub kind: String,
    /// The URL, the command or the recipients.
    pub target: String,
    /// From 1.
    pub attempt: u32,
    pub ok: bool,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// The job (and its run) that started a child run: the child's `parent` in `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ParentLink {
    pub run: RunId,
    pub job: JobId,
}

/// A planned job of a new run.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Full name: `extract`, `report[format=csv]`.
    pub name: String,
    /// The job's name in the workflow: `report`.
    pub base_name: String,
    /// The matrix values, a JSON object, or `Value::Null`.
    pub matrix: Value,
    pub queue: String,
    pub priority: i64,
    /// Computed metadata, a JSON object.
    pub metadata: Value,
    /// Full names of the jobs it needs.
    pub needs: Vec<String>,
    pub max_attempts: u32,
    /// `pending`, `queued`, `skipped` or `cancelled`; anything else is refused.
    pub state: JobState,
    /// Worker labels the job asks for.
    pub runs_on: Vec<String>,
    /// A `for_each` job's item, `{"index": 0, "value": …}`; `Value::Null` for other jobs.
    pub item: Value,
    /// Its failure does not fail the run (`continue_on_error`).
    pub continue_on_error: bool,
    /// What it asks of its worker's host (`resources:`).
    pub request: Request,
}

/// One state change of a batch given to [`RunStore::apply`].
#[derive(Debug, Clone)]
pub enum Change {
    /// A job changes state; attempts are recorded from it (see [`Transition`]).
    Job(Transition),
    /// Resource use of a running job's current attempt, as measured so far.
    Usage {
        job: JobId,
        peak_rss_bytes: u64,
        cpu_ms: u64,
    },
    /// A step started (status `running`) or finished; a later record of the same step replaces
    /// the earlier one.
    Step(StepRecord),
    /// An output of a job; a later write of the same key wins.
    Output {
        job: JobId,
        key: String,
        value: String,
    },
    /// A run changes state.
    Run(RunTransition),
    /// The log of an attempt is complete.
    LogClosed {
        job: JobId,
        attempt: u32,
        summary: LogSummary,
    },
    /// A queued job's priority changes (`coreflow jobs priority`).
    Priority { job: JobId, priority: i64 },
}

/// A job state change.
///
/// Attempts follow from transitions: moving to `running` starts attempt `attempts + 1` (which
/// also clears the job's outputs, exit code and resource figures); moving out of `running`
/// finishes that attempt with the new state (`failed` when the job goes back to `queued` or
/// `pending`), the exit code, the reason and the final resource figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub job: JobId,
    pub to: JobState,
    pub at: DateTime<Utc>,
    /// Why (`lost`, `timeout`, `if: false`, `cancelled by user`); replaces the previous reason.
    pub reason: Option<String>,
    /// The exit code of the failing (or last) step, when leaving `running`.
    pub exit_code: Option<i32>,
    /// When moving to `running`: the token that marks the attempt's processes.
    pub kill_token: Option<String>,
    /// When leaving `running`: the attempt's final peak memory, if measured.
    pub peak_rss_bytes: Option<u64>,
    /// When leaving `running`: the attempt's final CPU time, if measured.
    pub cpu_ms: Option<u64>,
    /// How the attempt ended when the job leaves `running` for `queued` (a retry or a lost
    /// worker): `failed` unless said otherwise (`timed_out` for a retried timeout).
    pub attempt_end: Option<JobState>,
}

impl Transition {
    /// A transition with no reason, exit code, token or figures.
    #[must_use]
    pub fn new(job: JobId, to: JobState, at: DateTime<Utc>) -> Transition {
        Transition {
            job,
            to,
            at,
            reason: None,
            exit_code: None,
            kill_token: None,
            peak_rss_bytes: None,
            cpu_ms: None,
            attempt_end: None,
        }
    }

    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Transition {
        self.reason = Some(reason.into());
        self
    }

    #[must_use]
    pub fn exit_code(mut self, code: i32) -> Transition {
        self.exit_code = Some(code);
        self
    }

    #[must_use]
    pub fn kill_token(mut self, token: impl Into<String>) -> Transition {
        self.kill_token = Some(token.into());
        self
    }

    #[must_use]
    pub fn usage(mut self, peak_rss_bytes: u64, cpu_ms: u64) -> Transition {
        self.peak_rss_bytes = Some(peak_rss_bytes);
        self.cpu_ms = Some(cpu_ms);
        self
    }
}

impl From<Transition> for Change {
    fn from(transition: Transition) -> Change {
        Change::Job(transition)
    }
}

/// A run state change. Moving to `running` sets `started_at` (once); a finished state sets
/// `finished_at`. A finished run only reopens through [`RunStore::reset_for_retry`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunTransition {
    pub run: RunId,
    pub to: RunState,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl From<RunTransition> for Change {
    fn from(transition: RunTransition) -> Change {
        Change::Run(transition)
    }
}

/// A stored run: the `runs --json` object.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: RunId,
    pub workflow: String,
    pub status: RunState,
    pub trigger: Value,
    pub params: Value,
    #[serde(serialize_with = "rfc3339::required")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::optional")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339::optional")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it ended as it did, when that is not obvious (`lost`, an overlap policy's skip).
    pub reason: Option<String>,
    /// The `workflow:` job that started this run, for a child run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
    #[serde(skip)]
    pub def_hash: String,
    #[serde(skip)]
    pub owner: Option<Owner>,
    #[serde(skip)]
    pub cancel_requested: bool,
}

/// A stored job: the job object of `show --json`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: JobId,
    pub run_id: RunId,
    pub name: String,
    pub status: JobState,
    pub queue: String,
    pub priority: i64,
    pub metadata: Value,
    /// How many attempts have started, over the job's whole life (retries of the run included).
    pub attempts: u32,
    /// The exit code of the last attempt (`None` while running, or when it was killed).
    pub exit_code: Option<i32>,
    /// When the first attempt (since the last retry of the run) started.
    #[serde(serialize_with = "rfc3339::optional")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the job reached its final state.
    #[serde(serialize_with = "rfc3339::optional")]
    pub finished_at: Option<DateTime<Utc>>,
    /// `finished_at - started_at`: all attempts and the delays between them.
    pub duration_ms: Option<u64>,
    /// Peak memory of the last attempt's process tree.
    pub peak_rss_bytes: Option<u64>,
    /// CPU time of the last attempt's process tree.
    pub cpu_ms: Option<u64>,
    /// The outputs of the last attempt.
    pub outputs: BTreeMap<String, String>,
    pub reason: Option<String>,
    pub base_name: String,
    pub matrix: Value,
    /// A `for_each` job's item, `{"index": 0, "value": …}`.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub item: Value,
    pub needs: Vec<String>,
    pub max_attempts: u32,
    /// Every attempt, first first.
    pub history: Vec<AttemptRecord>,
    /// The runs a `workflow:` job started (one per call), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub child_runs: Vec<RunId>,
    /// `attempts` when the run was last reset for a retry: the attempts of the current round
    /// are `attempts - attempts_before_retry`, to compare with `max_attempts`.
    #[serde(skip)]
    pub attempts_before_retry: u32,
    #[serde(serialize_with = "rfc3339::optional")]
    pub queued_at: Option<DateTime<Utc>>,
    /// When the job was created, with its run: a job's age counts from here.
    #[serde(serialize_with = "rfc3339::required")]
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub kill_token: Option<String>,
    /// Worker labels it asks for.
    #[serde(skip)]
    pub runs_on: Vec<String>,
    /// What it asks of its worker's host (`resources:`).
    #[serde(skip)]
    pub request: Request,
    #[serde(skip)]
    pub cancel_requested: bool,
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    /// From 1.
    pub number: u32,
    /// `running`, or the state the attempt ended the job in (`failed` when re-queued).
    pub status: JobState,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    #[serde(serialize_with = "rfc3339::required")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::optional")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub steps: Vec<StepRecord>,
    #[serde(skip)]
    pub kill_token: Option<String>,
    /// Size of the attempt's log, once closed.
    #[serde(skip)]
    pub log: Option<LogSummary>,
}

/// The result of one step of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepRecord {
    #[serde(skip)]
    pub job: JobId,
    #[serde(skip)]
    pub attempt: u32,
    /// From 0, in the order written.
    pub index: u32,
    pub name: String,
    /// `running` while it runs, then `succeeded`, `failed`, `timed_out`, `cancelled` or
    /// `skipped`.
    pub status: JobState,
    pub exit_code: Option<i32>,
    #[serde(serialize_with = "rfc3339::optional")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339::optional")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which runs [`RunStore::runs`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunState>,
    pub limit: Option<usize>,
    /// Only runs older than this one (a page after another, newest first).
    pub before: Option<RunId>,
}

/// Which jobs [`RunStore::list_jobs`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub queue: Option<String>,
    pub status: Option<JobState>,
    pub limit: Option<usize>,
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The owner of the run was asked; it will stop the work.
    Requested,
    /// Nobody owned the work, so it was cancelled directly.
    Cancelled,
    /// The run or job had already finished.
    AlreadyFinished,
}

/// Cancel requests waiting for the owner of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelRequests {
    /// The whole run is to be cancelled.
    pub run: bool,
    /// These jobs are to be cancelled.
    pub jobs: Vec<JobId>,
}

impl CancelRequests {
    /// Whether nothing was asked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.run && self.jobs.is_empty()
    }
}

/// What [`RunStore::recover_lost`] settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The runs failed because their owner is gone, with that owner. Every process an owner
    /// started carries a kill token starting with [`owner_token_prefix`]: an owner records
    /// a job's start with what follows it, so a job it started just before dying may be
    /// missing from `jobs`.
    pub runs: Vec<(RunId, Owner)>,
    /// Their jobs that were recorded as running.
    pub jobs: Vec<LostJob>,
}

/// What the kill token of every step that `owner` runs for run `run` starts with:
/// `cf-<run>-<pid>-<start time>-`, unique on the host even when environments share run ids.
#[must_use]
pub fn owner_token_prefix(run: RunId, owner: &Owner) -> String {
    format!("cf-{run}-{}-{}-", owner.pid, owner.start_time)
}

/// A job that [`RunStore::recover_lost`] failed because its owner is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostJob {
    pub job: JobId,
    pub run: RunId,
    pub name: String,
    /// The token of its last attempt's processes, to find and kill survivors.
    pub kill_token: Option<String>,
}

/// Serializers for times in the `--json` shapes: RFC 3339, UTC, milliseconds.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub(crate) fn required<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    #[expect(clippy::ref_option, reason = "serde's serialize_with passes &Option")]
    pub(crate) fn optional<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => required(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn instants<S: Serializer>(
        times: &[DateTime<Utc>],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            times
                .iter()
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true)),
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::{RunRecord, Transition};
    use crate::state::{JobId, JobState, RunId, RunState};

    #[test]
    fn run_serializes_to_the_documented_shape() {
        let record = RunRecord {
            id: RunId(42),
            workflow: "nightly".into(),
            status: RunState::Running,
            trigger: json!({"kind": "manual"}),
            params: json!({"date": "2026-01-02"}),
            created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            started_at: None,
            finished_at: None,
            reason: None,
            def_hash: "abc".into(),
            owner: None,
            cancel_requested: false,
            parent: None,
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            json!({
                "id": 42, "workflow": "nightly", "status": "running",
                "trigger": {"kind": "manual"}, "params": {"date": "2026-01-02"},
                "created_at": "2026-01-02T03:04:05.000Z", "started_at": null,
                "finished_at": null, "reason": null,
            })
        );
    }

    #[test]
    fn transition_builder_fills_fields() {
        let at = Utc::now();
        let transition = Transition::new(JobId(1), JobState::Failed, at)
            .reason("boom")
            .exit_code(3)
            .usage(10, 20);
        assert_eq!(transition.reason.as_deref(), Some("boom"));
        assert_eq!(transition.exit_code, Some(3));
        assert_eq!(
            (transition.peak_rss_bytes, transition.cpu_ms),
            (Some(10), Some(20))
        );
    }
}
