//! [`QueueStore`]: JobQueues, claims and the decisions that move a run nobody owns — the part
//! of the store that standalone workers and the daemon need beyond [`super::RunStore`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::state::{JobId, JobState, RunId, RunState};

use super::error::Error;
use super::runs::{Change, JobRecord, RunRecord, Transition};
use super::workers::WorkerId;

/// A JobQueue with its load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueRecord {
    pub name: String,
    pub concurrency: Option<u32>,
    pub paused: bool,
    /// Jobs waiting (`queued`).
    pub depth: u32,
    pub running: u32,
}

/// A job a worker claimed, with its run. The job records come without their attempts
/// (`history` is empty): a worker has no use for them, and they are read under the lock.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: JobRecord,
    pub run: RunRecord,
    /// The jobs it needs (for their outputs and results). Only those: reading every job of
    /// a large run at each claim made claiming quadratic.
    pub needs: Vec<JobRecord>,
}

/// A job as a run's DAG sees it: enough to decide what comes next, nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct RunJob {
    pub id: JobId,
    pub name: String,
    pub base_name: String,
    pub matrix: serde_json::Value,
    pub needs: Vec<String>,
    pub status: JobState,
}

/// What recording the end of a claimed attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClaimEnd {
    /// The run's final state, when that was its last job.
    pub run_ended: Option<RunState>,
    /// The run was asked to cancel: its waiting jobs are to be cancelled.
    pub cancelling: bool,
}

/// What `queue remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Removed; with `--force`, the runs whose waiting jobs it cancelled (to be advanced).
    Removed(Vec<RunId>),
    NotFound,
    /// The queue still holds this many waiting or running jobs.
    Busy(u32),
}

/// A decision for a job of a run, applied only if the job is still in `from`.
#[derive(Debug, Clone)]
pub struct Advance {
    pub from: JobState,
    pub transition: Transition,
}

/// Queues and claims.
pub trait QueueStore {
    /// Every queue with its depth and running count, by name.
    fn queues(&self) -> Result<Vec<QueueRecord>, Error>;
    /// Creates a queue, or changes its concurrency; returns whether it was created.
    fn add_queue(&self, name: &str, concurrency: Option<u32>) -> Result<bool, Error>;
    /// Pauses or resumes a queue; returns whether it exists.
    fn set_paused(&self, name: &str, paused: bool) -> Result<bool, Error>;
    /// Removes a queue. Refused while it holds waiting or running jobs, unless `force`, which
    /// cancels its waiting jobs and asks its running ones to cancel.
    fn remove_queue(&self, name: &str, force: bool) -> Result<RemoveOutcome, Error>;
    /// Puts a waiting job first in its queue, above any priority.
    fn set_top(&self, job: JobId) -> Result<(), Error>;
    /// Wakes `wake` whenever work may have become claimable (a job queued, a slot of a
    /// limited queue freed, a queue resumed), for idle workers, for as long as the store
    /// lives; returns whether this store does (PostgreSQL, by `LISTEN/NOTIFY`). Workers of a
    /// store that does not poll.
    fn watch_work(&self, wake: std::sync::Arc<tokio::sync::Notify>) -> bool;
    /// How many queued jobs whose `runs_on` holds `label` a worker could start now: their
    /// retry delay is over, their queue is not paused, and no foreground `coreflow run` owns
    /// their run (the daemon's launchers start workers for them).
    fn queued_with_label(&self, label: &str) -> Result<u32, Error>;
    /// The time the oldest job a worker with `labels` could take has waited since.
    fn oldest_runnable(&self, labels: &[String]) -> Result<Option<DateTime<Utc>>, Error>;
    /// Atomically takes the next job for a worker: running, leased, with a kill token.
    fn claim_next(
        &self,
        worker: WorkerId,
        labels: &[String],
        lease: std::time::Duration,
        kill_token: &dyn Fn(RunId, JobId, u32) -> String,
    ) -> Result<Option<Claimed>, Error>;
    /// Records the end of a claimed attempt (changes as for `apply`), frees the worker, sets
    /// the earliest start of a retry, and finishes the run when every job of it has ended.
    /// Nothing is recorded for a job the worker no longer holds (its lease expired).
    fn finish_claim(
        &self,
        worker: WorkerId,
        job: JobId,
        changes: &[Change],
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<ClaimEnd, Error>;
    /// [`finish_claim`](Self::finish_claim), then [`claim_next`](Self::claim_next): a
    /// draining worker hands back one job and takes the next at once (a store may do both
    /// in one transaction).
    #[expect(
        clippy::too_many_arguments,
        reason = "finish_claim's arguments and claim_next's"
    )]
    fn finish_and_claim(
        &self,
        worker: WorkerId,
        job: JobId,
        changes: &[Change],
        retry_at: Option<DateTime<Utc>>,
        labels: &[String],
        lease: std::time::Duration,
        kill_token: &dyn Fn(RunId, JobId, u32) -> String,
    ) -> Result<(ClaimEnd, Option<Claimed>), Error> {
        let end = self.finish_claim(worker, job, changes, retry_at)?;
        Ok((end, self.claim_next(worker, labels, lease, kill_token)?))
    }
    /// The jobs of a run in creation order, without history or outputs.
    fn run_jobs(&self, run: RunId) -> Result<Vec<RunJob>, Error>;
    /// Applies decisions about a run's jobs (each only if the job is still in its `from`
    /// state) and, when every job has ended, the run's final state; a run that was queued
    /// becomes running once a job of it runs.
    fn advance(&self, run: RunId, decisions: &[Advance]) -> Result<Option<RunState>, Error>;
}
