//! [`RunShared`]: what every attempt of a run shares, whichever loop drives it (the
//! in-process coordinator or a standalone worker).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use chrono::Utc;

use crate::engine::decide::RunInputs;
use crate::engine::definition::RunDefinition;
use crate::scheduler::QueueLoad;
use crate::spec::model::Workflow;
use crate::spec::params::{Overrides, Values};
use crate::state::RunId;
use crate::store::RunRecord;
use crate::ui::{Event, Reporter};

/// What every attempt of a run shares.
pub struct RunShared {
    pub run_id: RunId,
    pub workflow: Workflow,
    pub workflow_name: String,
    /// The workflow file's folder: relative paths start here.
    pub dir: PathBuf,
    /// Scratch folder for `$COREFLOW_OUTPUT` files.
    pub tmp: PathBuf,
    pub store: crate::store::Env,
    pub reporter: Mutex<Box<dyn Reporter>>,
    pub params: Values,
    pub overrides: Overrides,
    pub trigger: serde_json::Value,
    /// The process environment, read once, for `env.*` in templates.
    pub process_env: BTreeMap<String, String>,
    /// Reads queue limits and load (None: no queue limits apply).
    pub queue_loads: Option<QueueLoadsFn>,
    /// `dir` made absolute, once: see [`RunShared::default_workdir`].
    pub dir_resolved: OnceLock<PathBuf>,
    /// How many `workflow:` calls led to this run: 0 for a run started any other way.
    pub depth: u32,
}

/// Reads every queue's limits and load from the environment.
pub type QueueLoadsFn =
    std::sync::Arc<dyn Fn() -> Result<HashMap<String, QueueLoad>, String> + Send + Sync>;

impl RunShared {
    /// What the attempts of a recorded run share in a process that did not create it (a
    /// standalone worker, a dedicated worker process): its definition and values as
    /// recorded, `tmp` for its scratch files — shared by every job of the run on every
    /// worker of this host, `$COREFLOW_OUTPUT` files being named by job and attempt — and
    /// no queue limits (the claim respected them).
    #[must_use]
    pub fn of_recorded_run(
        run: &RunRecord,
        definition: &RunDefinition,
        store: crate::store::Env,
        tmp: PathBuf,
        reporter: Box<dyn Reporter>,
        process_env: BTreeMap<String, String>,
    ) -> RunShared {
        RunShared {
            run_id: run.id,
            workflow: definition.loaded.workflow.clone(),
            workflow_name: run.workflow.clone(),
            dir: definition.loaded.dir.clone(),
            tmp,
            store,
            reporter: Mutex::new(reporter),
            params: definition.values.clone(),
            overrides: definition.overrides.clone(),
            trigger: run.trigger.clone(),
            process_env,
            queue_loads: None,
            dir_resolved: OnceLock::new(),
            depth: 0,
        }
    }

    /// The current instant by the environment's clock.
    #[must_use]
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.store.clock().now()
    }

    /// The working directory of jobs without `workdir`: the workflow's folder, absolute.
    pub fn default_workdir(&self) -> &Path {
        self.dir_resolved
            .get_or_init(|| std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone()))
    }

    /// What templates of this run share.
    #[must_use]
    pub fn inputs(&self) -> RunInputs<'_> {
        RunInputs {
            workflow: &self.workflow,
            workflow_name: &self.workflow_name,
            run_id: self.run_id.0,
            params: &self.params,
            overrides: &self.overrides,
            trigger: &self.trigger,
            process_env: &self.process_env,
        }
    }

    /// Sends one line of step output to the reporter.
    pub fn output(
        &self,
        ts: chrono::DateTime<Utc>,
        job: &str,
        step: &str,
        stream: crate::ui::Stream,
        line: &[u8],
    ) {
        if let Ok(mut reporter) = self.reporter.lock() {
            reporter.output(ts, job, step, stream, line);
        }
    }

    /// Sends an event to the reporter.
    pub fn report(&self, event: &Event) {
        if let Ok(mut reporter) = self.reporter.lock() {
            reporter.event(event);
        }
    }
}
