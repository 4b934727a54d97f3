//! A trigger fire becoming a run, under the workflow's `concurrency`:
//!
//! - below `max_runs` (or without it), the run is created and its ready jobs queued;
//! - `on_overlap: skip` records a `skipped` run with the reason, so the decision shows in
//!   `coreflow runs`;
//! - `on_overlap: queue` puts the fire in line, in the environment (it survives a restart),
//!   until a run of the workflow ends; beyond `max_queued` fires in line (default 100), a
//!   fire is recorded as a `skipped` run with the reason, like `skip`;
//! - `on_overlap: cancel_running` asks the oldest active runs to cancel, as many as it takes
//!   to make room, and creates the run at once.
//!
//! A fire whose parameters do not fit the workflow is refused with a log line.

use std::collections::VecDeque;
use std::path::Path;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use tracing::{error, info, warn};

use crate::daemon::firing::Daemon;
use crate::engine::queued::queue_run;
use crate::spec::Loaded;
use crate::spec::model::OnOverlap;
use crate::spec::params::{self, Overrides, Values};
use crate::state::{RunId, RunState};
use crate::store::{NewRun, RunFilter, Store, TriggerStore, WaitingFire};

impl Daemon {
    /// Creates a run for a trigger fire, under the workflow's concurrency policy.
    pub(super) fn fire(
        &mut self,
        workflow: &str,
        trigger: serde_json::Value,
        params: IndexMap<String, String>,
        now: DateTime<Utc>,
    ) {
        let Some(loaded) = self.workflow(workflow) else {
            warn!(
                workflow,
                "fire dropped: the workflow is no longer in the folder"
            );
            return;
        };
        let Some(values) = resolve(&loaded, &params) else {
            return;
        };
        let max = loaded
            .workflow
            .concurrency
            .as_ref()
            .and_then(|c| c.max_runs)
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        if let (Some(concurrency), Some(max)) = (&loaded.workflow.concurrency, max) {
            // Fires already in line go first.
            let in_line = self.waiting.get(workflow).is_some_and(|w| !w.is_empty());
            let active = self.active_runs(workflow);
            if active.len() >= max || (in_line && concurrency.on_overlap == OnOverlap::Queue) {
                match concurrency.on_overlap {
                    OnOverlap::Skip => {
                        let reason = format!(
                            "{} run(s) active, max_runs {max}: on_overlap skip",
                            active.len()
                        );
                        info!(workflow, reason = %reason, "fire skipped");
                        self.record_skipped(&loaded, trigger, &values, &reason);
                        return;
                    }
                    OnOverlap::Queue
                        if self.waiting.get(workflow).map_or(0, VecDeque::len)
                            >= concurrency.max_queued() =>
                    {
                        let reason = format!(
                            "{} fire(s) already waiting for a run slot, max_queued {}",
                            self.waiting.get(workflow).map_or(0, VecDeque::len),
                            concurrency.max_queued()
                        );
                        info!(workflow, reason = %reason, "fire skipped");
                        self.record_skipped(&loaded, trigger, &values, &reason);
                        return;
                    }
                    OnOverlap::Queue => {
                        let params = serde_json::to_value(&params).unwrap_or_default();
                        match self.store.push_waiting(workflow, &trigger, &params, now) {
                            Ok(id) => {
                                info!(
                                    workflow,
                                    active = active.len(),
                                    max,
                                    waiting =
                                        self.waiting.get(workflow).map_or(0, VecDeque::len) + 1,
                                    "fire waits for a run slot (on_overlap queue)"
                                );
                                self.waiting
                                    .entry(workflow.to_owned())
                                    .or_default()
                                    .push_back(WaitingFire {
                                        id,
                                        workflow: workflow.to_owned(),
                                        trigger,
                                        params,
                                        queued_at: now,
                                    });
                            }
                            Err(err) => {
                                error!(workflow, error = %err, "cannot put a fire in line; fire lost");
                            }
                        }
                        return;
                    }
                    OnOverlap::CancelRunning => {
                        // Oldest first, just enough to make room for this run.
                        let excess = active.len() + 1 - max;
                        for run in active.iter().take(excess) {
                            info!(
                                workflow,
                                run = run.0,
                                "cancelling an active run (on_overlap cancel_running)"
                            );
                            if let Err(err) = self.store.request_cancel_run(*run) {
                                error!(workflow, run = run.0, error = %err, "cannot cancel a run");
                            }
                        }
                    }
                }
            }
        }
        self.start(&loaded, trigger, &values);
    }

    /// Creates the run and queues its ready jobs.
    fn start(&self, loaded: &Loaded, trigger: serde_json::Value, values: &Values) {
        let source = std::fs::canonicalize(&loaded.file).ok();
        match queue_run(
            &self.store,
            loaded,
            values,
            &Overrides::default(),
            source.as_deref().and_then(Path::to_str),
            trigger.clone(),
        ) {
            Ok(run) => {
                info!(workflow = %loaded.name, run = run.0, trigger = %trigger, "run created");
            }
            Err(err) => error!(workflow = %loaded.name, error = %err, "cannot create a run"),
        }
    }

    /// The workflow's queued and running runs, oldest first.
    fn active_runs(&self, workflow: &str) -> Vec<RunId> {
        let mut active = Vec::new();
        for status in [RunState::Queued, RunState::Running] {
            let filter = RunFilter {
                workflow: Some(workflow.to_owned()),
                status: Some(status),
                limit: Some(10_000),
            };
            match self.store.runs(&filter) {
                Ok(runs) => active.extend(runs.into_iter().map(|r| r.id)),
                Err(err) => error!(workflow, error = %err, "cannot count active runs"),
            }
        }
        active.sort_unstable();
        active
    }

    fn record_skipped(
        &self,
        loaded: &Loaded,
        trigger: serde_json::Value,
        values: &Values,
        reason: &str,
    ) {
        let run = NewRun {
            workflow: loaded.name.clone(),
            def_hash: loaded.hash.clone(),
            params: serde_json::to_value(values).unwrap_or_default(),
            trigger,
            status: RunState::Skipped,
            reason: Some(reason.to_owned()),
            owner: None,
            created_at: Utc::now(),
            jobs: Vec::new(),
        };
        if let Err(err) = self.store.create_run(&run) {
            error!(workflow = %loaded.name, error = %err, "cannot record a skipped fire");
        }
    }

    /// Reads the fires that were waiting for a run slot when the last daemon stopped.
    pub(super) fn load_waiting(&mut self) {
        match self.store.waiting_fires() {
            Ok(fires) => {
                if !fires.is_empty() {
                    info!(fires = fires.len(), "fires still waiting for a run slot");
                }
                for fire in fires {
                    self.waiting
                        .entry(fire.workflow.clone())
                        .or_default()
                        .push_back(fire);
                }
            }
            Err(err) => error!(error = %err, "cannot read the fires waiting for a run slot"),
        }
    }

    /// Starts fires that waited for a run slot, oldest first, as slots free up.
    pub(super) fn start_waiting(&mut self) {
        let names: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, line)| !line.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            // A workflow that left the folder keeps its line in the environment, for when it
            // comes back.
            let Some(loaded) = self.workflow(&name) else {
                continue;
            };
            let max = loaded
                .workflow
                .concurrency
                .as_ref()
                .and_then(|c| c.max_runs)
                .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
            let mut active = self.active_runs(&name).len();
            while active < max {
                let Some(fire) = self.waiting.get_mut(&name).and_then(VecDeque::pop_front) else {
                    break;
                };
                // Out of line first: a crash now loses this fire at worst, never doubles it.
                match self.store.take_waiting(fire.id) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        error!(workflow = %name, error = %err, "cannot take a fire out of line; retrying");
                        if let Some(line) = self.waiting.get_mut(&name) {
                            line.push_front(fire);
                        }
                        break;
                    }
                }
                let params: IndexMap<String, String> = fire
                    .params
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let Some(values) = resolve(&loaded, &params) else {
                    continue;
                };
                info!(workflow = %name, waited_ms = (Utc::now() - fire.queued_at).num_milliseconds(), "a run slot freed: starting a waiting fire");
                self.start(&loaded, fire.trigger, &values);
                active += 1;
            }
        }
        self.waiting.retain(|_, line| !line.is_empty());
    }
}

/// The run's parameter values: the workflow's defaults under the trigger's `params`.
fn resolve(loaded: &Loaded, params: &IndexMap<String, String>) -> Option<Values> {
    match params::resolve(&loaded.workflow, params, &Overrides::default()) {
        Ok(values) => Some(values),
        Err(errors) => {
            let message: Vec<String> = errors.iter().map(ToString::to_string).collect();
            warn!(workflow = %loaded.name, errors = %message.join("; "), "fire refused: its parameters do not fit the workflow");
            None
        }
    }
}
