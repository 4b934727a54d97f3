//! Records as the API and the `--json` of the commands show them, built once for both: a run
//! with its jobs ([`RunDocument`], the object of `coreflow show --json` and `GET
//! /api/v1/runs/{id}`), each job with what it asked of its host and the DataBlocks it
//! consumed and produced.

use serde::Serialize;

use crate::state::RunId;
use crate::store::{
    Environment, Error as StoreError, JobRecord, LineageLink, NotificationRecord, RunRecord,
};

/// A run with its jobs and the notifications sent when it ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunDocument {
    #[serde(flatten)]
    pub run: RunRecord,
    pub jobs: Vec<JobDocument>,
    /// Every attempt of every notifier, when the workflow has notifiers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationRecord>,
}

/// A job of a [`RunDocument`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobDocument {
    #[serde(flatten)]
    pub job: JobRecord,
    /// What it asked of its host (`resources:`), when it asked anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesView>,
    /// DataBlock versions it read.
    pub consumed_blocks: Vec<BlockLink>,
    /// DataBlock versions it published.
    pub produced_blocks: Vec<BlockLink>,
}

/// A job's `resources` request.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct ResourcesView {
    pub cpus: f64,
    pub memory_bytes: u64,
}

/// A DataBlock version a job consumed or produced.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BlockLink {
    pub name: String,
    pub version: u64,
    pub hash: String,
    pub removed: bool,
    /// The input name it was read as (`COREFLOW_INPUT_<NAME>`), for a consumption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// For a publication: whether it created the version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
}

impl BlockLink {
    #[must_use]
    pub fn of(link: &LineageLink) -> BlockLink {
        BlockLink {
            name: link.block.name.clone(),
            version: link.block.version,
            hash: link.block.hash.to_string(),
            removed: link.block.removed,
            input: link.input.clone(),
            new: link.new,
        }
    }
}

/// Run `id` with its jobs, or `None` when there is no such run.
///
/// # Errors
/// The store cannot be read.
pub fn run_document(store: &dyn Environment, id: RunId) -> Result<Option<RunDocument>, StoreError> {
    let Some(run) = store.run(id)? else {
        return Ok(None);
    };
    let jobs = store.jobs(run.id)?;
    let blocks = store.run_blocks(run.id)?;
    let jobs = jobs
        .into_iter()
        .map(|job| {
            let found = blocks.iter().find(|b| b.job_id == job.id);
            let links = |pick: fn(&crate::store::JobBlocks) -> &Vec<LineageLink>| {
                found
                    .map(|b| pick(b).iter().map(BlockLink::of).collect())
                    .unwrap_or_default()
            };
            JobDocument {
                resources: (!job.request.is_empty()).then_some(ResourcesView {
                    cpus: job.request.cpus,
                    memory_bytes: job.request.memory,
                }),
                consumed_blocks: links(|b| &b.consumed),
                produced_blocks: links(|b| &b.produced),
                job,
            }
        })
        .collect();
    let notifications = store.notifications(run.id)?;
    Ok(Some(RunDocument {
        run,
        jobs,
        notifications,
    }))
}
