//! Turning a loaded workflow and its parameters into a run: job selection (`--only`),
//! matrix fan-out, queue/priority/metadata rendering, label checks, and the store records.

use std::collections::{BTreeMap, HashSet};

use indexmap::IndexMap;

use crate::engine::EngineError;
use crate::engine::context::{JobView, RunView, TemplateContext};
use crate::engine::tracked::JobRt;
use crate::graph::plan::{PlannedJob, expand};
use crate::scheduler::resources::Request;
use crate::spec::Loaded;
use crate::spec::diag::suggest;
use crate::spec::model::Text;
use crate::spec::params::Values;
use crate::spec::template;
use crate::state::{JobId, JobState};
use crate::store::NewJob;

/// A planned job with what the store needs to create it.
pub struct PreparedJob {
    pub plan: PlannedJob,
    pub new: NewJob,
}

/// The labels a local worker of a foreground `coreflow run` carries.
#[must_use]
pub fn local_labels() -> Vec<String> {
    vec![
        std::env::consts::OS.to_owned(),
        std::env::consts::ARCH.to_owned(),
        crate::store::host_name().to_owned(),
    ]
}

/// Selects the jobs of `--only` and everything they need, transitively; all jobs without.
///
/// # Errors
/// An unknown job name, with a suggestion.
pub fn select(plan: &[PlannedJob], only: &[String]) -> Result<Vec<bool>, EngineError> {
    if only.is_empty() {
        return Ok(vec![true; plan.len()]);
    }
    let mut selected = vec![false; plan.len()];
    let mut stack = Vec::new();
    for name in only {
        let matches: Vec<usize> = plan
            .iter()
            .enumerate()
            .filter(|(_, job)| job.name == *name || job.base == *name)
            .map(|(i, _)| i)
            .collect();
        if matches.is_empty() {
            let bases: Vec<&str> = plan
                .iter()
                .map(|j| j.base.as_str())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let hint = suggest(name, bases.iter().copied())
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            return Err(EngineError::UnknownJob {
                name: name.clone(),
                hint,
            });
        }
        stack.extend(matches);
    }
    while let Some(i) = stack.pop() {
        if !selected[i] {
            selected[i] = true;
            stack.extend(plan[i].needs.iter().copied());
        }
    }
    Ok(selected)
}

/// Plans the run's jobs and renders what is known when they are created.
///
/// # Errors
/// `--only` naming no job, or a job whose `runs_on` no local worker carries.
pub fn prepare(
    loaded: &Loaded,
    params: &Values,
    only: &[String],
    check_labels: bool,
) -> Result<Vec<PreparedJob>, EngineError> {
    let workflow = &loaded.workflow;
    let plan = expand(workflow, &axis_renderer(params));
    let selected = select(&plan, only)?;
    let labels = local_labels();
    let mut prepared = Vec::new();
    // Plan indexes to indexes among the selected jobs.
    let mut remap = vec![usize::MAX; plan.len()];
    for (i, job) in plan.iter().enumerate() {
        if selected[i] {
            remap[i] = prepared.len();
            prepared.push(job.clone());
        }
    }
    let mut out = Vec::with_capacity(prepared.len());
    for mut job in prepared {
        job.needs = job.needs.iter().map(|&n| remap[n]).collect();
        let def = &workflow.jobs[job.base.as_str()];
        let defaults = &workflow.defaults;
        let context = TemplateContext {
            params: params.clone(),
            needs: BTreeMap::new(),
            matrix: job.matrix.clone(),
            env: workflow
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                .collect(),
            run: RunView {
                id: 0,
                workflow: loaded.name.clone(),
            },
            job: JobView {
                name: job.name.clone(),
            },
            trigger: serde_json::Value::Null,
            steps: BTreeMap::new(),
            secrets: BTreeMap::new(),
            each: None,
        };
        let value = context.value();
        let render = |text: &str| {
            if template::has_template(text) {
                template::render(text, &value).unwrap_or_else(|_| text.to_owned())
            } else {
                text.to_owned()
            }
        };
        let queue = def
            .queue
            .as_deref()
            .or(defaults.queue.as_deref())
            .map_or_else(|| "default".to_owned(), &render);
        let priority = def
            .priority
            .as_ref()
            .or(defaults.priority.as_ref())
            .map_or(0, |p| render(&p.0).trim().parse::<i64>().unwrap_or(0));
        let metadata: IndexMap<String, String> = def
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), render(v.as_str())))
            .collect();
        let runs_on: Vec<String> = def
            .runs_on
            .as_ref()
            .or(defaults.runs_on.as_ref())
            .map(|labels| labels.iter().map(|l| render(l.as_str())).collect())
            .unwrap_or_default();
        if check_labels && let Some(label) = runs_on.iter().find(|l| !labels.contains(l)) {
            return Err(EngineError::Labels(format!(
                "job `{}` runs on workers labelled `{label}`, and the local workers carry only {}",
                job.name,
                labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let retry = def.retry.as_ref().or(defaults.retry.as_ref());
        let new = NewJob {
            name: job.name.clone(),
            base_name: job.base.clone(),
            matrix: serde_json::to_value(&job.matrix).unwrap_or_default(),
            queue,
            priority,
            metadata: serde_json::to_value(&metadata).unwrap_or_default(),
            needs: job.needs.iter().map(|&n| n.to_string()).collect(),
            max_attempts: retry.map_or(1, |r| r.max_attempts.max(1)),
            // The coordinator queues jobs itself, after `if:` and `run_if`.
            state: JobState::Pending,
            runs_on,
            item: serde_json::Value::Null,
            continue_on_error: def.continue_on_error,
            // A job calling a workflow runs no process: its child run's jobs ask.
            request: if def.workflow.is_some() {
                Request::default()
            } else {
                Request::of(workflow, &job.base)
            },
        };
        out.push(PreparedJob { plan: job, new });
    }
    // Store needs by name, not index.
    let names: Vec<String> = out.iter().map(|p| p.plan.name.clone()).collect();
    for job in &mut out {
        job.new.needs = job.plan.needs.iter().map(|&n| names[n].clone()).collect();
    }
    Ok(out)
}

/// Renders a matrix's template axes when a run is created: they read the run's `params`.
pub fn axis_renderer(params: &Values) -> impl Fn(&Text) -> Result<String, String> {
    let value =
        minijinja::context! { params => minijinja::Value::from(minijinja::value::Serde(params)) };
    move |text| template::render(text.as_str(), &value).map_err(|e| e.to_string())
}

/// The coordinator's view of freshly created jobs.
#[must_use]
pub fn runtime_jobs(prepared: &[PreparedJob], ids: &[JobId]) -> Vec<JobRt> {
    prepared
        .iter()
        .zip(ids)
        .map(|(job, &id)| JobRt {
            id,
            name: job.plan.name.clone(),
            base: job.plan.base.clone(),
            matrix: job.plan.matrix.clone(),
            item: serde_json::Value::Null,
            needs: job.plan.needs.clone(),
            state: JobState::Pending,
            attempts: 0,
            max_attempts: job.new.max_attempts,
            priority: job.new.priority,
            queue: job.new.queue.clone(),
            outputs: BTreeMap::new(),
            exit_code: None,
            reason: None,
            duration: None,
            first_started: None,
        })
        .collect()
}

/// What `retry` of a finished run does again.
pub struct Repair {
    /// The run's jobs as the coordinator tracks them: those that run again are `pending`
    /// with no outputs, the others keep their state and outputs.
    pub jobs: Vec<JobRt>,
    /// The jobs that run again: those that did not succeed and everything downstream.
    pub rerun: Vec<JobId>,
}

/// Plans the repair of a finished run from its records: jobs that did not succeed, and
/// everything downstream of them, run again; the rest keep their outputs. The same for
/// `coreflow retry` and for a `workflow:` job repairing its child run.
///
/// # Errors
/// The definition no longer plans (a parameter that does not fit).
pub fn plan_repair(
    loaded: &Loaded,
    values: &Values,
    records: &[crate::store::JobRecord],
) -> Result<Repair, EngineError> {
    let prepared = prepare(loaded, values, &[], false)?;
    // The run's jobs in plan order (a run made with `--only` holds a subset).
    let by_name: BTreeMap<&str, &crate::store::JobRecord> =
        records.iter().map(|r| (r.name.as_str(), r)).collect();
    let keep: Vec<usize> = (0..prepared.len())
        .filter(|&i| by_name.contains_key(prepared[i].plan.name.as_str()))
        .collect();
    let mut remap = vec![usize::MAX; prepared.len()];
    for (new, &old) in keep.iter().enumerate() {
        remap[old] = new;
    }
    let mut jobs: Vec<JobRt> = Vec::with_capacity(keep.len());
    for &old in &keep {
        let plan = &prepared[old].plan;
        let record = by_name[plan.name.as_str()];
        jobs.push(JobRt {
            id: record.id,
            name: plan.name.clone(),
            base: plan.base.clone(),
            matrix: plan.matrix.clone(),
            item: serde_json::Value::Null,
            needs: plan
                .needs
                .iter()
                .map(|&n| remap[n])
                .filter(|&n| n != usize::MAX)
                .collect(),
            state: record.status,
            attempts: record.attempts,
            max_attempts: record.attempts + prepared[old].new.max_attempts,
            priority: record.priority,
            queue: record.queue.clone(),
            outputs: record.outputs.clone(),
            exit_code: record.exit_code,
            reason: record.reason.clone(),
            duration: record.duration_ms.map(std::time::Duration::from_millis),
            first_started: None,
        });
    }
    // The item jobs a `for_each` job made, after the planned jobs: they need what it needs
    // and run again with it.
    let planned = jobs.len();
    for record in records.iter().filter(|r| !r.item.is_null()) {
        let Some(parent) = jobs[..planned]
            .iter()
            .position(|job| job.name == record.base_name)
        else {
            continue;
        };
        let mut job = jobs[parent].clone();
        job.id = record.id;
        job.name.clone_from(&record.name);
        job.item = record.item.clone();
        job.state = record.status;
        job.attempts = record.attempts;
        job.max_attempts = record.attempts + record.max_attempts;
        job.outputs.clone_from(&record.outputs);
        job.exit_code = record.exit_code;
        job.reason.clone_from(&record.reason);
        job.duration = record.duration_ms.map(std::time::Duration::from_millis);
        jobs.push(job);
    }
    let mut rerun: Vec<bool> = jobs
        .iter()
        .map(|j| j.state != JobState::Succeeded)
        .collect();
    // Needs may point forward in declaration order, and a `for_each` job runs again with
    // its items: spread until nothing changes.
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..jobs.len() {
            let item_again = i < planned
                && jobs[planned..]
                    .iter()
                    .zip(&rerun[planned..])
                    .any(|(item, again)| *again && item.base == jobs[i].name);
            if !rerun[i] && (item_again || jobs[i].needs.iter().any(|&n| rerun[n])) {
                rerun[i] = true;
                changed = true;
            }
        }
    }
    let mut ids = Vec::new();
    for (job, again) in jobs.iter_mut().zip(&rerun) {
        if *again {
            ids.push(job.id);
            job.state = JobState::Pending;
            job.outputs.clear();
            job.exit_code = None;
            job.reason = None;
            job.duration = None;
        }
    }
    Ok(Repair { jobs, rerun: ids })
}

/// Keeps a run's job-level `-p JOB.NAME=V` in its trigger record, where [`run_overrides`](crate::engine::definition::run_overrides)
/// finds them again (for workers, `retry`).
pub fn record_job_params(
    trigger: &mut serde_json::Value,
    overrides: &crate::spec::params::Overrides,
) {
    if !overrides.jobs.is_empty() {
        let texts: Vec<String> = overrides
            .jobs
            .iter()
            .map(|(job, name, value)| format!("{job}.{name}={value}"))
            .collect();
        trigger["job_params"] = serde_json::json!(texts);
    }
}

/// Where a new run comes from.
pub struct Origin {
    /// The trigger record the run carries (`{"type": "manual"}`, a cron fire, a file…).
    pub trigger: serde_json::Value,
    /// The time trigger's instant it fires, claimed in the transaction creating the run.
    pub fire: Option<crate::store::FireClaim>,
    /// The process executing it: a foreground `coreflow run`; `None` for workers.
    pub owner: Option<crate::store::Owner>,
    /// The `workflow:` job calling it, for a child run.
    pub parent: Option<crate::store::ParentLink>,
}

/// Records a new run: the workflow's definition (so `coreflow trigger` and workers can load
/// it later), the job-level parameters in the trigger record, and the run with its prepared
/// jobs. The one way every run is created.
///
/// # Errors
/// The store failing; [`crate::store::Error::AlreadyFired`] when the origin's fire was
/// claimed before.
pub fn create_run(
    store: &dyn crate::store::Environment,
    loaded: &Loaded,
    values: &Values,
    overrides: &crate::spec::params::Overrides,
    prepared: &[PreparedJob],
    source_path: Option<&str>,
    origin: Origin,
) -> Result<(crate::state::RunId, Vec<JobId>), crate::store::Error> {
    let Origin {
        mut trigger,
        fire,
        owner,
        parent,
    } = origin;
    let now = store.clock().now();
    store.save_definition(&crate::store::NewDefinition {
        name: &loaded.name,
        hash: &loaded.hash,
        yaml: &loaded.source,
        source_path,
        seen_at: now,
    })?;
    record_job_params(&mut trigger, overrides);
    store.create_run(&crate::store::NewRun {
        workflow: loaded.name.clone(),
        def_hash: loaded.hash.clone(),
        params: serde_json::to_value(values).unwrap_or_default(),
        trigger,
        fire,
        status: crate::state::RunState::Queued,
        reason: None,
        owner,
        created_at: now,
        jobs: prepared.iter().map(|p| p.new.clone()).collect(),
        parent,
        notify: !loaded.workflow.notify.is_empty(),
    })
}
