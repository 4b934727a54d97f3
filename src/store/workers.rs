//! [`WorkerStore`]: standalone workers, their heartbeats and the leases of the jobs they
//! hold.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::scheduler::resources::{Offer, Request};
use crate::state::JobId;

use super::error::Error;
use super::runs::LostJob;

/// A worker's id in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct WorkerId(pub i64);

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkerRecord {
    pub id: WorkerId,
    pub name: String,
    pub labels: Vec<String>,
    pub pid: u32,
    pub host: String,
    pub state: String,
    pub current_job: Option<JobId>,
    pub jobs_done: u64,
    #[serde(serialize_with = "super::runs::rfc3339::required")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "super::runs::rfc3339::required")]
    pub heartbeat_at: DateTime<Utc>,
    pub move_to: Option<String>,
    /// What it offers jobs' `resources` (the CPUs and memory of its host, shared with the
    /// other workers there); `None` for a worker that admits by count only.
    pub offer: Option<Offer>,
    /// What its current job asks.
    pub used: Request,
    /// How memory limits are enforced where it runs: `cgroup` or `sampling`.
    pub enforcement: Option<String>,
}

impl WorkerRecord {
    /// Whether the worker is serving (`idle`, `busy` or `stopping`), not `stopped`, `moved`
    /// or `lost`.
    #[must_use]
    pub fn is_live(&self) -> bool {
        matches!(self.state.as_str(), "idle" | "busy" | "stopping")
    }
}

/// How long a stopped, moved or lost worker stays listed by `coreflow workers --all`.
pub const WORKER_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// What a heartbeat learns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// `coreflow workers move` asked the worker to serve this environment instead.
    pub move_to: Option<String>,
    /// The current job, or its run, was asked to cancel (or is no longer the worker's).
    pub cancel_current: bool,
}

/// Workers and leases.
pub trait WorkerStore {
    /// Registers a worker process.
    fn register_worker(&self, name: &str, labels: &[String]) -> Result<WorkerId, Error>;
    /// Records what a registered worker offers jobs' `resources`, and how memory limits are
    /// enforced where it runs (`cgroup` or `sampling`): claims admit requests against it.
    fn set_worker_offer(
        &self,
        worker: WorkerId,
        offer: Offer,
        enforcement: &str,
    ) -> Result<(), Error>;
    /// Records that a worker is alive, renews its job's lease, and says what it should do.
    fn heartbeat(
        &self,
        worker: WorkerId,
        state: &str,
        job: Option<JobId>,
        lease: std::time::Duration,
    ) -> Result<Heartbeat, Error>;
    /// Every registered worker, newest first.
    fn workers(&self) -> Result<Vec<WorkerRecord>, Error>;
    /// Asks a worker (by id or name) to move; returns whether it exists.
    fn request_move(&self, worker: &str, to: &str) -> Result<bool, Error>;
    /// Jobs whose worker's lease expired, or whose worker on this host is gone (its pid and
    /// process start time no longer match a live process): re-queued when attempts remain,
    /// else failed `lost`; their workers, and workers without a job silent for 30 s, become
    /// `lost`.
    fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<LostJob>, Error>;
    /// Marks a worker stopped.
    fn stop_worker(&self, worker: WorkerId) -> Result<(), Error>;
}
