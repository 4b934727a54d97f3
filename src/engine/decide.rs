//! What happens to a job whose needs have all ended — queue, skip, cancel or fail — and the
//! template context it runs with. Shared by the in-process coordinator and the standalone
//! workers, which advance runs through the store.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use minijinja::Value;

use crate::engine::JobFailure;
use crate::engine::context::{JobView, LazyValue, NeedView, RunView, TemplateContext, fan_in};
use crate::engine::setup::axis_renderer;
use crate::spec::matrix;
use crate::spec::model::{RunIf, Workflow};
use crate::spec::params::{self, Overrides, Values};
use crate::spec::template;
use crate::state::JobState;

/// A finished need as a decision sees it.
pub struct NeedInfo<'a> {
    pub name: &'a str,
    pub base: &'a str,
    pub state: JobState,
    pub outputs: &'a BTreeMap<String, String>,
}

impl<'a> NeedInfo<'a> {
    /// A need as the store recorded it.
    #[must_use]
    pub fn of(job: &'a crate::store::JobRecord) -> NeedInfo<'a> {
        NeedInfo {
            name: &job.name,
            base: &job.base_name,
            state: job.status,
            outputs: &job.outputs,
        }
    }
}

/// The verdict for a job whose needs have ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Queue,
    Skip(String),
    Cancel(String),
    Fail(String),
}

/// What a run's templates share, whoever executes its jobs.
pub struct RunInputs<'a> {
    pub workflow: &'a Workflow,
    pub workflow_name: &'a str,
    pub run_id: i64,
    pub params: &'a Values,
    pub overrides: &'a Overrides,
    pub trigger: &'a serde_json::Value,
    pub process_env: &'a BTreeMap<String, String>,
}

/// Whether a job of `base` must wait because `max_parallel` of its matrix siblings are
/// active (`active` counts them as the caller's loop sees them: running in a foreground run;
/// queued or running through the store).
#[must_use]
pub fn at_max_parallel(workflow: &Workflow, base: &str, active: usize) -> bool {
    workflow
        .jobs
        .get(base)
        .and_then(|job| job.max_parallel)
        .is_some_and(|max| active >= usize::try_from(max).unwrap_or(usize::MAX))
}

/// What a need's end counts as for its dependents: a failure of a job with
/// `continue_on_error` counts as success.
fn effective(workflow: &Workflow, need: &NeedInfo<'_>) -> JobState {
    let tolerated = workflow
        .jobs
        .get(need.base)
        .is_some_and(|job| job.continue_on_error);
    match need.state {
        JobState::Failed | JobState::TimedOut if tolerated => JobState::Succeeded,
        state => state,
    }
}

/// The status functions of `if:` (`success()`, `failure()`, `always()`, `cancelled()`),
/// answering for `needs`.
fn status_functions(states: &[JobState]) -> Vec<(&'static str, Value)> {
    let success = states.iter().all(|s| *s == JobState::Succeeded);
    let failure = states
        .iter()
        .any(|s| matches!(s, JobState::Failed | JobState::TimedOut));
    let cancelled = states.contains(&JobState::Cancelled);
    vec![
        ("success", Value::from_function(move || success)),
        ("failure", Value::from_function(move || failure)),
        ("always", Value::from_function(|| true)),
        ("cancelled", Value::from_function(move || cancelled)),
    ]
}

/// Applies `run_if` (SPEC §7), then `if:`. An `if:` calling a status function
/// (`always()`, …) replaces `run_if`.
pub fn decide(
    inputs: &RunInputs<'_>,
    job_name: &str,
    base: &str,
    matrix: &IndexMap<String, String>,
    needs: &[NeedInfo<'_>],
) -> Decision {
    let job_def = &inputs.workflow.jobs[base];
    let run_if = job_def.run_if.unwrap_or_default();
    let states: Vec<JobState> = needs
        .iter()
        .map(|n| effective(inputs.workflow, n))
        .collect();
    let failed = |s: &JobState| matches!(s, JobState::Failed | JobState::TimedOut);
    let by_status = job_def
        .condition
        .as_ref()
        .is_some_and(|c| template::calls_status_function(c.as_str()));
    let allowed = by_status
        || match run_if {
            RunIf::AllSuccess => states.iter().all(|s| *s == JobState::Succeeded),
            RunIf::AllDone => true,
            RunIf::NoneFailed => !states
                .iter()
                .any(|s| failed(s) || *s == JobState::Cancelled),
            RunIf::AnyFailed => states.iter().any(failed),
        };
    if !allowed {
        if run_if == RunIf::AllSuccess && needs.iter().any(|n| n.state == JobState::Cancelled) {
            return Decision::Cancel("a need was cancelled".to_owned());
        }
        let unmet: Vec<String> = needs
            .iter()
            .filter(|n| n.state != JobState::Succeeded)
            .map(|n| format!("{} {}", n.name, n.state))
            .take(3)
            .collect();
        return Decision::Skip(format!(
            "run_if {}: {}",
            run_if_name(run_if),
            unmet.join(", ")
        ));
    }
    if !job_def.matrix.is_empty()
        && matrix.is_empty()
        && let Err(problem) = matrix::legs(&job_def.matrix, &axis_renderer(inputs.params))
    {
        // Its template axes did not render when the run was created (`setup::prepare`).
        return Decision::Fail(problem);
    }
    let Some(condition) = &job_def.condition else {
        return Decision::Queue;
    };
    let context = match context(inputs, job_name, base, matrix, needs) {
        Ok(context) => context,
        Err(reason) => return Decision::Fail(reason.0),
    };
    let value = if by_status {
        context.value_with(status_functions(&states))
    } else {
        context.value()
    };
    match template::eval_condition(condition.as_str(), &value) {
        Ok(true) => Decision::Queue,
        Ok(false) => Decision::Skip("`if` is false".to_owned()),
        Err(err) => Decision::Fail(format!("cannot evaluate `if`: {err}")),
    }
}

/// The template context of one job, with its effective parameters.
///
/// # Errors
/// A job-level parameter that cannot be rendered or does not fit its type.
pub fn context(
    inputs: &RunInputs<'_>,
    job_name: &str,
    base: &str,
    matrix: &IndexMap<String, String>,
    needs: &[NeedInfo<'_>],
) -> Result<TemplateContext, JobFailure> {
    let job_def = &inputs.workflow.jobs[base];
    let mut context = TemplateContext {
        params: inputs.params.clone(),
        needs: views(inputs.workflow, needs),
        matrix: matrix.clone(),
        env: inputs.process_env.clone(),
        run: RunView {
            id: inputs.run_id,
            workflow: inputs.workflow_name.to_owned(),
        },
        job: JobView {
            name: job_name.to_owned(),
        },
        trigger: inputs.trigger.clone(),
        steps: BTreeMap::new(),
        secrets: BTreeMap::new(),
        each: None,
    };
    // A key that `include` adds to other legs reads as empty in this one.
    for key in job_def.matrix.keys() {
        if !context.matrix.contains_key(key) {
            context.matrix.insert(key.to_owned(), String::new());
        }
    }
    for (key, value) in inputs.workflow.env.iter().chain(job_def.env.iter()) {
        context.env.insert(key.clone(), value.as_str().to_owned());
    }
    if !job_def.params.is_empty() || inputs.overrides.jobs.iter().any(|(j, _, _)| j == base) {
        let value = LazyValue::default();
        let mut own = IndexMap::new();
        for (key, text) in &job_def.params {
            own.insert(
                key.clone(),
                context.render(&value, text.as_str(), &format!("`params.{key}`"))?,
            );
        }
        context.params =
            params::for_job(inputs.workflow, base, inputs.params, &own, inputs.overrides)
                .map_err(|e| JobFailure(e.to_string()))?;
    }
    Ok(context)
}

/// Finished jobs as templates read them, by their name in the workflow: the outputs and
/// result of `needs.<job>` for a job, of `jobs.<job>` for a workflow's `outputs:`. The
/// outputs of a matrix job are JSON arrays of its legs' values, in leg order.
#[must_use]
pub fn views(workflow: &Workflow, jobs: &[NeedInfo<'_>]) -> BTreeMap<String, NeedView> {
    let mut views: BTreeMap<String, NeedView> = BTreeMap::new();
    let mut legs: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for need in jobs {
        let view = views.entry(need.base.to_owned()).or_default();
        if workflow
            .jobs
            .get(need.base)
            .is_some_and(|job| !job.matrix.is_empty())
        {
            legs.entry(need.base).or_default().push(need.outputs);
        } else {
            view.outputs
                .extend(need.outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let result = need.state.result().map_or("", |r| r.as_str());
        // For a fanned-out job the worst result wins.
        if rank(result) > rank(&view.result) {
            view.result = result.to_owned();
        }
    }
    for (base, outputs) in legs {
        if let Some(view) = views.get_mut(base) {
            view.outputs = fan_in(&outputs);
        }
    }
    views
}

fn rank(result: &str) -> u8 {
    match result {
        "" => 0,
        "success" => 1,
        "skipped" => 2,
        "cancelled" => 3,
        _ => 4,
    }
}

fn run_if_name(run_if: RunIf) -> &'static str {
    match run_if {
        RunIf::AllSuccess => "all_success",
        RunIf::AllDone => "all_done",
        RunIf::NoneFailed => "none_failed",
        RunIf::AnyFailed => "any_failed",
    }
}
