//! A trigger fire becoming a run, and the line of requests waiting for a run slot.
//!
//! A fire goes through [`admission`](crate::engine::admission), as the API, `coreflow
//! trigger` and `run --detach` do, so `concurrency.max_runs` counts every run of the
//! workflow. The daemon serves the line (`on_overlap: queue`), which lives in the
//! environment: whoever put a request in it, the daemon creates its run, oldest first, when
//! a run of the workflow ends. A request whose parameters no longer fit the workflow is
//! dropped with a log line.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use tracing::{error, info, warn};

use crate::daemon::firing::{Daemon, Fired};
use crate::engine::EngineError;
use crate::engine::admission::{self, Admission, Request, active_runs};
use crate::engine::definition::load_definition;
use crate::engine::queued::queue_run;
use crate::spec::Loaded;
use crate::spec::params::param_texts;
use crate::store::{Error as StoreError, FireClaim, WaitingFire};

impl Daemon {
    /// Creates a run for a trigger fire, under the workflow's concurrency policy; `claim` is
    /// the time trigger's instant, claimed with what the fire creates.
    pub(super) fn fire(
        &mut self,
        workflow: &str,
        trigger: serde_json::Value,
        params: IndexMap<String, String>,
        now: DateTime<Utc>,
        claim: Option<FireClaim>,
    ) -> Fired {
        let Some(loaded) = self.workflow(workflow) else {
            warn!(
                workflow,
                "fire dropped: the workflow is no longer in the folder"
            );
            return Fired::Done;
        };
        let texts: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let source = std::fs::canonicalize(&loaded.file).ok();
        let request = Request {
            loaded: &loaded,
            params: &texts,
            trigger: trigger.clone(),
            source: source.as_deref().and_then(Path::to_str),
            now,
            fire: claim,
        };
        match admission::admit(&self.store, &request) {
            Ok(Admission::Created(run)) => {
                info!(workflow, run = run.0, trigger = %trigger, "run created");
            }
            Ok(Admission::Waiting { ahead }) => {
                info!(
                    workflow,
                    waiting = ahead + 1,
                    "fire waits for a run slot (on_overlap queue)"
                );
            }
            Ok(Admission::Skipped { run, reason }) => {
                info!(workflow, run = run.0, reason = %reason, "fire skipped");
            }
            Err(EngineError::Store(StoreError::AlreadyFired { at, .. })) => {
                warn!(workflow, scheduled_for = %at, "fire dropped: another daemon fired this instant (it leads now)");
                return Fired::Already;
            }
            Err(EngineError::Store(err)) => {
                error!(workflow, error = %err, "cannot record the fire; retrying");
                return Fired::Retry;
            }
            Err(err) => {
                warn!(workflow, error = %err, "fire refused");
            }
        }
        Fired::Done
    }

    /// Logs how many requests wait for a run slot, at start-up.
    pub(super) fn load_waiting(&mut self) {
        match self.store.waiting_fires() {
            Ok(fires) if !fires.is_empty() => {
                info!(fires = fires.len(), "requests waiting for a run slot");
            }
            Ok(_) => {}
            Err(err) => error!(error = %err, "cannot read the requests waiting for a run slot"),
        }
    }

    /// Starts requests that waited for a run slot, oldest first, as slots free up.
    pub(super) fn start_waiting(&mut self) {
        let fires = match self.store.waiting_fires() {
            Ok(fires) => fires,
            Err(err) => {
                error!(error = %err, "cannot read the requests waiting for a run slot");
                return;
            }
        };
        let mut lines: BTreeMap<String, Vec<WaitingFire>> = BTreeMap::new();
        for fire in fires {
            lines.entry(fire.workflow.clone()).or_default().push(fire);
        }
        for (name, line) in lines {
            // A workflow that left the folder is served from its recorded definition.
            let Some(loaded) = self.workflow(&name).or_else(|| self.recorded(&name)) else {
                continue;
            };
            let max = loaded
                .workflow
                .concurrency
                .as_ref()
                .and_then(|c| c.max_runs)
                .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
            let mut active = match active_runs(&*self.store, &name) {
                Ok(active) => active.len(),
                Err(err) => {
                    error!(workflow = %name, error = %err, "cannot count active runs");
                    continue;
                }
            };
            for fire in line {
                if active >= max {
                    break;
                }
                // Out of line first: a crash now loses this request at worst, never doubles it.
                match self.store.take_waiting(fire.id) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        error!(workflow = %name, error = %err, "cannot take a request out of line; retrying");
                        break;
                    }
                }
                info!(workflow = %name, waited_ms = (self.store.clock().now() - fire.queued_at).num_milliseconds(), "a run slot freed: starting a waiting request");
                self.start(&loaded, &fire);
                active += 1;
            }
        }
    }

    /// Creates the run of a request that waited.
    fn start(&self, loaded: &Loaded, fire: &WaitingFire) {
        let texts = param_texts(&fire.params);
        let source = std::fs::canonicalize(&loaded.file).ok();
        let request = Request {
            loaded,
            params: &texts,
            trigger: fire.trigger.clone(),
            source: source.as_deref().and_then(Path::to_str),
            now: self.store.clock().now(),
            fire: None,
        };
        let created = request.resolve().and_then(|(values, overrides)| {
            queue_run(
                &self.store,
                loaded,
                &values,
                &overrides,
                request.source,
                request.trigger.clone(),
                None,
            )
        });
        match created {
            Ok(run) => {
                info!(workflow = %loaded.name, run = run.0, trigger = %fire.trigger, "run created");
            }
            Err(err) => {
                warn!(workflow = %loaded.name, error = %err, "waiting request dropped: it no longer fits the workflow");
            }
        }
    }

    /// The workflow as the environment recorded it, for requests of a workflow that is not
    /// (or no longer) in the folder.
    fn recorded(&self, name: &str) -> Option<Arc<Loaded>> {
        let definition = self.store.definition(name).ok().flatten()?;
        load_definition(&definition).ok().map(Arc::new)
    }
}
