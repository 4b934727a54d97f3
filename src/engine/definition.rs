//! A run's definition as recorded in the environment, with its parameter values: what every
//! process that moves a run on without having started it (workers, the daemon, `retry`, a
//! calling job repairing its child) loads first.

use std::collections::BTreeMap;
use std::path::PathBuf;

use indexmap::IndexMap;

use crate::engine::EngineError;
use crate::engine::decide::RunInputs;
use crate::spec::params::{self, Overrides, ParamError, Values};
use crate::spec::{LoadError, Loaded, parse_str};
use crate::store::{Environment, RunRecord};

/// A run's definition and parameters, ready for templates.
pub struct RunDefinition {
    pub loaded: Loaded,
    pub values: Values,
    pub overrides: Overrides,
}

impl RunDefinition {
    /// The template inputs of `run`.
    #[must_use]
    pub fn inputs<'a>(
        &'a self,
        run: &'a RunRecord,
        process_env: &'a BTreeMap<String, String>,
    ) -> RunInputs<'a> {
        RunInputs {
            workflow: &self.loaded.workflow,
            workflow_name: &run.workflow,
            run_id: run.id.0,
            params: &self.values,
            overrides: &self.overrides,
            trigger: &run.trigger,
            process_env,
        }
    }
}

/// Loads the definition a run was created from, with its parameter values.
///
/// # Errors
/// The definition is missing or no longer parses, or the stored values no longer fit.
pub fn load_run_definition(
    store: &dyn Environment,
    run: &RunRecord,
) -> Result<RunDefinition, EngineError> {
    let definition = store
        .definition_version(&run.workflow, &run.def_hash)?
        .ok_or_else(|| {
            EngineError::Definition(format!(
                "the definition of run {} is not in this environment",
                run.id
            ))
        })?;
    let loaded = load_definition(&definition).map_err(|e| EngineError::Definition(e.render()))?;
    let overrides = run_overrides(run)?;
    let values = params::resolve(&loaded.workflow, &IndexMap::new(), &overrides)
        .map_err(EngineError::Params)?;
    Ok(RunDefinition {
        loaded,
        values,
        overrides,
    })
}

/// A stored definition as a loaded workflow: named as recorded, relative paths starting in
/// the folder of the file it was read from (the current folder when that is gone).
///
/// # Errors
/// The stored text no longer parses (a newer CoreFlow may be stricter).
pub fn load_definition(definition: &crate::store::Definition) -> Result<Loaded, LoadError> {
    let file = definition
        .source_path
        .clone()
        .unwrap_or_else(|| format!("{}.yaml", definition.name));
    let mut loaded = parse_str(&file, &definition.yaml)?;
    loaded.name.clone_from(&definition.name);
    loaded.dir = PathBuf::from(&file)
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    if !loaded.dir.is_dir() {
        loaded.dir = PathBuf::from(".");
    }
    Ok(loaded)
}

/// The run's parameter values (and job-level `-p JOB.NAME=V`, kept in its trigger) as `-p`
/// arguments would give them.
///
/// # Errors
/// A stored value that is not `NAME=VALUE`-shaped.
pub fn run_overrides(run: &RunRecord) -> Result<Overrides, ParamError> {
    let mut texts = params::param_texts(&run.params);
    if let Some(jobs) = run.trigger.get("job_params").and_then(|j| j.as_array()) {
        texts.extend(jobs.iter().filter_map(|j| j.as_str().map(str::to_owned)));
    }
    Overrides::parse(&texts)
}
