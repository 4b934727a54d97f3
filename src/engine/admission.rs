//! Admission: a request for a run of a workflow (a trigger fire, the API, `coreflow trigger`,
//! `run --detach`) becoming a run under the workflow's `concurrency` (SPEC §7:
//! `max_runs` counts every run of the workflow, whatever started it).
//!
//! - below `max_runs` (or without it), the run is created and its ready jobs queued;
//! - `on_overlap: skip` records a `skipped` run with the reason;
//! - `on_overlap: queue` puts the request in the environment's line (it survives restarts),
//!   which the daemon serves, oldest first, as runs of the workflow end; beyond
//!   `max_queued` requests in line, a request is recorded as a `skipped` run instead;
//! - `on_overlap: cancel_running` asks the oldest active runs to cancel, as many as it takes
//!   to make room, and creates the run at once.
//!
//! A request in line keeps its parameters as texts (`NAME=V`, `JOB.NAME=V`), resolved again
//! when its run is created.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::engine::EngineError;
use crate::engine::queued::queue_run;
use crate::spec::Loaded;
use crate::spec::model::OnOverlap;
use crate::spec::params::{self, Overrides, Values};
use crate::state::{RunId, RunState};
use crate::store::{Env, Environment};
use crate::store::{FireClaim, NewRun, RunFilter};

/// What became of a request for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The run was created and its ready jobs queued.
    Created(RunId),
    /// The request waits in line for a run slot, behind `ahead` others.
    Waiting { ahead: usize },
    /// The request was recorded as a `skipped` run.
    Skipped { run: RunId, reason: String },
}

/// A request for a run.
pub struct Request<'a> {
    pub loaded: &'a Loaded,
    /// The parameters as given (`NAME=V`, `JOB.NAME=V`), kept for a request that waits.
    pub params: &'a [String],
    /// The trigger record the run will carry.
    pub trigger: serde_json::Value,
    /// The workflow file, recorded with its definition.
    pub source: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// The time trigger's instant the request fires, claimed with what it creates (see
    /// [`FireClaim`]); `None` for every other kind of request.
    pub fire: Option<FireClaim>,
}

impl Request<'_> {
    /// The parameter values, checked against the workflow.
    ///
    /// # Errors
    /// A parameter that does not parse or fit.
    pub fn resolve(&self) -> Result<(Values, Overrides), EngineError> {
        let overrides = Overrides::parse(self.params)?;
        let values = params::resolve(&self.loaded.workflow, &IndexMap::new(), &overrides)
            .map_err(EngineError::Params)?;
        Ok((values, overrides))
    }
}

/// Admits `request` under its workflow's concurrency.
///
/// # Errors
/// Bad parameters, a missing DataBlock, or the store failing; nothing was created.
pub fn admit(store: &Env, request: &Request<'_>) -> Result<Admission, EngineError> {
    let (values, overrides) = request.resolve()?;
    let loaded = request.loaded;
    let create = || {
        queue_run(
            store,
            loaded,
            &values,
            &overrides,
            request.source,
            request.trigger.clone(),
            request.fire.clone(),
        )
        .map(Admission::Created)
    };
    let Some(concurrency) = &loaded.workflow.concurrency else {
        return create();
    };
    let Some(max) = concurrency.max_runs else {
        return create();
    };
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let active = active_runs(&**store, &loaded.name)?;
    let in_line = waiting(&**store, &loaded.name)?;
    let queue = concurrency.on_overlap == OnOverlap::Queue;
    // Requests already in line go first.
    if active.len() < max && !(queue && in_line > 0) {
        return create();
    }
    let skip = |reason: String| {
        record_skipped(
            &**store,
            loaded,
            request.trigger.clone(),
            &values,
            &reason,
            request.now,
            request.fire.as_ref(),
        )
        .map(|run| Admission::Skipped { run, reason })
        .map_err(EngineError::from)
    };
    match concurrency.on_overlap {
        OnOverlap::Skip => skip(format!(
            "{} run(s) active, max_runs {max}: on_overlap skip",
            active.len()
        )),
        OnOverlap::Queue if in_line >= concurrency.max_queued() => skip(format!(
            "{in_line} request(s) already waiting for a run slot, max_queued {}",
            concurrency.max_queued()
        )),
        OnOverlap::Queue => {
            let params: serde_json::Map<String, serde_json::Value> = request
                .params
                .iter()
                .filter_map(|text| text.split_once('='))
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect();
            store.push_waiting(
                &loaded.name,
                &request.trigger,
                &serde_json::Value::Object(params),
                request.now,
                request.fire.as_ref(),
            )?;
            Ok(Admission::Waiting { ahead: in_line })
        }
        OnOverlap::CancelRunning => {
            // Oldest first, just enough to make room for this run.
            let excess = active.len() + 1 - max;
            for run in active.iter().take(excess) {
                tracing::info!(
                    workflow = %loaded.name,
                    run = run.0,
                    "cancelling an active run (on_overlap cancel_running)"
                );
                crate::engine::queued::cancel_run(&**store, *run)?;
            }
            create()
        }
    }
}

/// The workflow's `queued` and `running` runs, oldest first.
///
/// # Errors
/// The store failing.
pub fn active_runs(
    store: &dyn Environment,
    workflow: &str,
) -> Result<Vec<RunId>, crate::store::Error> {
    let mut active = Vec::new();
    for status in [RunState::Queued, RunState::Running] {
        let filter = RunFilter {
            workflow: Some(workflow.to_owned()),
            status: Some(status),
            limit: Some(100_000),
            before: None,
        };
        let runs = store.runs(&filter)?;
        active.extend(runs.into_iter().map(|r| r.id));
    }
    active.sort_unstable();
    Ok(active)
}

/// How many requests for the workflow wait in line.
fn waiting(store: &dyn Environment, workflow: &str) -> Result<usize, crate::store::Error> {
    Ok(store
        .waiting_fires()?
        .iter()
        .filter(|fire| fire.workflow == workflow)
        .count())
}

/// Records a request that did not become a run as a `skipped` run with its reason.
fn record_skipped(
    store: &dyn Environment,
    loaded: &Loaded,
    trigger: serde_json::Value,
    values: &Values,
    reason: &str,
    now: DateTime<Utc>,
    fire: Option<&FireClaim>,
) -> Result<RunId, crate::store::Error> {
    let run = NewRun {
        parent: None,
        workflow: loaded.name.clone(),
        def_hash: loaded.hash.clone(),
        params: serde_json::to_value(values).unwrap_or_default(),
        trigger,
        fire: fire.cloned(),
        status: RunState::Skipped,
        reason: Some(reason.to_owned()),
        owner: None,
        created_at: now,
        jobs: Vec::new(),
        // A fire that did not become a run notifies nobody.
        notify: false,
    };
    store.create_run(&run).map(|(id, _)| id)
}
