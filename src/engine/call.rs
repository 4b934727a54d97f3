//! A `workflow:` job: the child run it starts (or, when the job runs again after a retry,
//! repairs), driven by a coordinator of its own on the calling run's slots, and the job's
//! result and outputs taken from it.
//!
//! The foreground's coordinator (`run.rs`) waits for a child with a nested coordinator; a
//! run moved on through the store (`queued.rs`) starts and ends calling jobs as it advances.
//!
//! The child is an ordinary run of the same environment (trigger `{"type": "workflow"}`, its
//! `parent` the calling job), so `show`, `logs`, `cancel` and `retry` work on it as on any
//! run. Its progress goes to the calling run's reporter, its jobs named `caller/job`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::engine::attempt::AttemptInput;
use crate::engine::context::{self, LazyValue};
use crate::engine::decide::{NeedInfo, views};
use crate::engine::definition::{RunDefinition, load_definition, load_run_definition};
use crate::engine::job::scratch_dir;
use crate::engine::setup::{Origin, Repair, create_run, plan_repair, prepare, runtime_jobs};
use crate::engine::shared::RunShared;
use crate::engine::tracked::JobRt;
use crate::engine::{EngineError, JobFailure};
use crate::spec::Loaded;
use crate::spec::calls::{called_path, is_workflow_file};
use crate::spec::params::{self, Overrides};
use crate::spec::template;
use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::{Environment, Owner, ParentLink};
use crate::ui::{Event, Reporter, Stream};

/// How deep `workflow:` calls may nest: a run at this depth cannot call another workflow.
pub const MAX_DEPTH: u32 = 8;

/// The trigger record of a child run.
#[must_use]
pub fn child_trigger() -> serde_json::Value {
    serde_json::json!({ "type": "workflow" })
}

/// How a calling job ends with its child run.
pub struct Ended {
    pub state: JobState,
    pub reason: Option<String>,
    pub outputs: Vec<(String, String)>,
}

/// The calling job's end for a child run `run` of `loaded` that ended in `state` with
/// `jobs`: succeeded with the child's `outputs:`, else failed or cancelled with the child.
#[must_use]
pub fn ended(run: RunId, state: RunState, loaded: &Loaded, jobs: &[NeedInfo<'_>]) -> Ended {
    let (state, reason) = match state {
        RunState::Succeeded => match outputs(loaded, jobs) {
            Ok(outputs) => {
                return Ended {
                    state: JobState::Succeeded,
                    reason: None,
                    outputs,
                };
            }
            Err(failure) => (JobState::Failed, failure.0),
        },
        RunState::Cancelled => (JobState::Cancelled, format!("child run {run} cancelled")),
        state => (JobState::Failed, format!("child run {run} {state}")),
    };
    Ended {
        state,
        reason: Some(reason),
        outputs: Vec::new(),
    }
}

/// The child run a calling job is about to wait for.
pub enum Child {
    /// A new run, or a finished one reopened for repair.
    Start {
        shared: Arc<RunShared>,
        jobs: Vec<JobRt>,
        loaded: Loaded,
    },
    /// The job ran before and its child run succeeded: nothing to run again.
    Finished {
        run: RunId,
        jobs: Vec<JobRt>,
        loaded: Loaded,
    },
}

/// A calling job's child run as [`find_or_create`] leaves it.
pub struct Found {
    pub run: RunId,
    pub loaded: Loaded,
    pub values: params::Values,
    pub overrides: Overrides,
    /// Its jobs as a coordinator tracks them (those to run again `pending`).
    pub jobs: Vec<JobRt>,
    pub state: FoundState,
}

/// What there is to do for a found child run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundState {
    /// Created now, or reopened for a repair: its jobs are to run.
    Ready,
    /// It succeeded before: the calling job takes its result as it is.
    Succeeded,
    /// Another process created it and moves it on (a calling job started through the store
    /// by two processes at once, or one that died before recording the start).
    Elsewhere,
}

/// What a calling job gives [`find_or_create`].
pub struct Call<'a> {
    /// The calling run's folder: a called file is found from here.
    pub dir: &'a Path,
    pub parent: RunId,
    pub job: JobId,
    /// The `workflow:` value.
    pub called: &'a str,
    /// `with:`, rendered.
    pub given: IndexMap<String, String>,
    /// How many calls led to the calling run.
    pub depth: u32,
    /// The process executing the child: the foreground `coreflow run`, or `None` for
    /// workers.
    pub owner: Option<Owner>,
}

/// The child run of a calling job: the one it started before — reopened for a repair when it
/// did not succeed (only its jobs that did not succeed run again, as `retry` does), taken as
/// it is when it did — else a new run of the called workflow with `with:` as its parameters.
///
/// # Errors
/// Calls nested too deep, a called workflow that cannot be loaded, `with:` values that do
/// not fit, or the store failing: the calling job fails with the message.
pub fn find_or_create(store: &dyn Environment, call: Call<'_>) -> Result<Found, JobFailure> {
    let store_error = |e: crate::store::Error| JobFailure(e.to_string());
    if call.depth >= MAX_DEPTH {
        return Err(JobFailure(format!(
            "calls nest deeper than {MAX_DEPTH}: `{}` would be call number {}",
            call.called,
            call.depth + 1
        )));
    }
    let record = store
        .job(call.job)
        .map_err(store_error)?
        .ok_or_else(|| JobFailure(format!("job {} is not in the environment", call.job)))?;
    if let Some(&previous) = record.child_runs.last() {
        return reopen(store, previous, call.owner.as_ref());
    }
    let loaded = load_called(store, call.dir, call.called)?;
    let overrides = Overrides::default();
    let values = params::resolve(&loaded.workflow, &call.given, &overrides).map_err(|errors| {
        JobFailure(format!(
            "`with:` does not fit the params of `{}`: {}",
            call.called,
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let prepared = prepare(&loaded, &values, &[], call.owner.is_some())
        .map_err(|e| JobFailure(e.to_string()))?;
    let source = is_workflow_file(call.called)
        .then(|| std::fs::canonicalize(called_path(call.dir, call.called)).ok())
        .flatten();
    let created = create_run(
        store,
        &loaded,
        &values,
        &overrides,
        &prepared,
        source.as_deref().and_then(Path::to_str),
        Origin {
            trigger: child_trigger(),
            fire: None,
            owner: call.owner.clone(),
            parent: Some(ParentLink {
                run: call.parent,
                job: call.job,
            }),
        },
    );
    match created {
        Ok((run, ids)) => Ok(Found {
            run,
            jobs: runtime_jobs(&prepared, &ids),
            loaded,
            values,
            overrides,
            state: FoundState::Ready,
        }),
        // A job has one child run (a unique index): another process made it meanwhile.
        Err(err) => match store
            .job(call.job)
            .map_err(store_error)?
            .and_then(|job| job.child_runs.last().copied())
        {
            Some(run) => Ok(Found {
                run,
                jobs: runtime_jobs(&prepared, &[]),
                loaded,
                values,
                overrides,
                state: FoundState::Elsewhere,
            }),
            None => Err(store_error(err)),
        },
    }
}

/// A child run found again: reopened for a repair under `owner`, or as it is.
fn reopen(store: &dyn Environment, run: RunId, owner: Option<&Owner>) -> Result<Found, JobFailure> {
    let failure = |e: EngineError| JobFailure(e.to_string());
    let record = store
        .run(run)
        .map_err(|e| JobFailure(e.to_string()))?
        .ok_or_else(|| JobFailure(format!("child run {run} is gone")))?;
    let RunDefinition {
        loaded,
        values,
        overrides,
    } = load_run_definition(store, &record).map_err(failure)?;
    if !record.status.is_terminal() {
        if owner.is_some() {
            return Err(JobFailure(format!(
                "child run {run} is still {}",
                record.status
            )));
        }
        return Ok(Found {
            run,
            loaded,
            values,
            overrides,
            jobs: Vec::new(),
            state: FoundState::Elsewhere,
        });
    }
    let records = store.jobs(run).map_err(|e| JobFailure(e.to_string()))?;
    let Repair { jobs, rerun } = plan_repair(&loaded, &values, &records).map_err(failure)?;
    let state = if rerun.is_empty() {
        FoundState::Succeeded
    } else {
        store
            .reset_for_retry(run, &rerun, owner)
            .map_err(|e| JobFailure(e.to_string()))?;
        FoundState::Ready
    };
    Ok(Found {
        run,
        loaded,
        values,
        overrides,
        jobs,
        state,
    })
}

/// Creates the child run of the calling job `input`, or reopens the one it started before:
/// for the foreground, whose coordinator then drives it.
///
/// # Errors
/// As [`find_or_create`]; a child run another process moves on.
pub fn start(shared: &Arc<RunShared>, input: &AttemptInput) -> Result<Child, JobFailure> {
    let job_def = &shared.workflow.jobs[input.base.as_str()];
    let Some(called) = job_def.workflow.as_deref() else {
        return Err(JobFailure(format!(
            "job `{}` calls no workflow",
            input.name
        )));
    };
    let given = render_with(job_def, &input.context)?;
    let store = &shared.store;
    let found = find_or_create(
        &**store,
        Call {
            dir: &shared.dir,
            parent: shared.run_id,
            job: input.job,
            called,
            given,
            depth: shared.depth,
            owner: Some(Owner::current()),
        },
    )?;
    let Found {
        run,
        loaded,
        values,
        overrides,
        jobs,
        state,
    } = found;
    match state {
        FoundState::Succeeded => return Ok(Child::Finished { run, jobs, loaded }),
        FoundState::Elsewhere => {
            return Err(JobFailure(format!(
                "child run {run} is run by another process"
            )));
        }
        FoundState::Ready => {}
    }
    let tmp = scratch_dir(store.dir(), run)
        .map_err(|err| JobFailure(format!("cannot create a scratch folder: {err}")))?;
    let child = RunShared {
        run_id: run,
        workflow: loaded.workflow.clone(),
        workflow_name: loaded.name.clone(),
        dir: loaded.dir.clone(),
        tmp,
        store: Arc::clone(store),
        reporter: Mutex::new(Box::new(Nested {
            parent: Arc::clone(shared),
            caller: input.name.clone(),
        })),
        params: values,
        overrides,
        trigger: child_trigger(),
        process_env: shared.process_env.clone(),
        queue_loads: shared.queue_loads.clone(),
        dir_resolved: std::sync::OnceLock::new(),
        depth: shared.depth + 1,
    };
    Ok(Child::Start {
        shared: Arc::new(child),
        jobs,
        loaded,
    })
}

/// The workflow a job calls: a file beside the caller's (in `dir`), or one the environment
/// knows.
fn load_called(store: &dyn Environment, dir: &Path, called: &str) -> Result<Loaded, JobFailure> {
    if is_workflow_file(called) {
        let path = called_path(dir, called);
        return crate::spec::load(&path).map_err(|err| {
            JobFailure(format!(
                "cannot load the called workflow {}: {}",
                path.display(),
                err.render().trim_end()
            ))
        });
    }
    let definition = store
        .definition(called)
        .map_err(|e| JobFailure(e.to_string()))?
        .ok_or_else(|| {
            JobFailure(format!(
                "no workflow named `{called}` is known to this environment (run or trigger it \
                 once, or name its file)"
            ))
        })?;
    // Its own calls are checked as its jobs start; `MAX_DEPTH` ends a cycle among names.
    load_definition(&definition).map_err(|err| {
        JobFailure(format!(
            "cannot load `{called}`: {}",
            err.render().trim_end()
        ))
    })
}

/// The calling job's outputs: the child workflow's `outputs:`, rendered over its jobs.
fn outputs(loaded: &Loaded, jobs: &[NeedInfo<'_>]) -> Result<Vec<(String, String)>, JobFailure> {
    if loaded.workflow.outputs.is_empty() {
        return Ok(Vec::new());
    }
    let jobs = context::map(
        views(&loaded.workflow, jobs)
            .into_iter()
            .map(|(name, view)| (name, view.value())),
    );
    let context = context::map([("jobs", jobs)]);
    loaded
        .workflow
        .outputs
        .iter()
        .map(|(key, text)| {
            template::render(text.as_str(), &context)
                .map(|value| (key.clone(), value))
                .map_err(|err| {
                    JobFailure(format!(
                        "cannot render output `{key}` of workflow `{}`: {err}",
                        loaded.name
                    ))
                })
        })
        .collect()
}

/// A coordinator's jobs as the child's `outputs:` read them (a `for_each` job, not its
/// items, whose outputs it holds).
#[must_use]
pub fn need_infos(jobs: &[JobRt]) -> Vec<NeedInfo<'_>> {
    jobs.iter()
        .filter(|job| job.item.is_null())
        .map(|job| NeedInfo {
            name: &job.name,
            base: &job.base,
            state: job.state,
            outputs: &job.outputs,
        })
        .collect()
}

/// `with:` of calling job `job`, rendered in its template context.
///
/// # Errors
/// A value that does not render: the job fails with the message.
pub fn render_with(
    job: &crate::spec::model::Job,
    context: &crate::engine::context::TemplateContext,
) -> Result<IndexMap<String, String>, JobFailure> {
    let value = LazyValue::default();
    job.with
        .iter()
        .map(|(name, text)| {
            context
                .render(&value, text.as_str(), &format!("`with.{name}`"))
                .map(|rendered| (name.clone(), rendered))
        })
        .collect()
}

/// A child run's reporter: its events go to the calling run's, named under the calling job.
struct Nested {
    parent: Arc<RunShared>,
    caller: String,
}

impl Nested {
    fn name(&self, job: &str) -> String {
        format!("{}/{job}", self.caller)
    }
}

impl Reporter for Nested {
    fn event(&mut self, ev: &Event) {
        let ev = match ev {
            // The calling run announced the child already (`Event::ChildRun`), and the
            // calling job's end reports how it ended.
            Event::RunStarted { .. } | Event::RunFinished { .. } => return,
            Event::ChildRun {
                ts,
                job,
                run_id,
                workflow,
                jobs,
            } => Event::ChildRun {
                ts: *ts,
                job: self.name(job),
                run_id: *run_id,
                workflow: workflow.clone(),
                jobs: *jobs,
            },
            Event::JobState(change) => Event::JobState(crate::ui::JobChange {
                job: self.name(&change.job),
                ..change.clone()
            }),
            Event::StepStarted {
                ts,
                job,
                step,
                index,
            } => Event::StepStarted {
                ts: *ts,
                job: self.name(job),
                step: step.clone(),
                index: *index,
            },
            Event::Output {
                ts,
                job,
                step,
                stream,
                line,
            } => Event::Output {
                ts: *ts,
                job: self.name(job),
                step: step.clone(),
                stream: *stream,
                line: line.clone(),
            },
        };
        self.parent.report(&ev);
    }

    fn output(&mut self, ts: DateTime<Utc>, job: &str, step: &str, stream: Stream, line: &[u8]) {
        self.parent.output(ts, &self.name(job), step, stream, line);
    }
}
