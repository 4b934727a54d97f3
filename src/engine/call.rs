//! A `workflow:` job: the child run it starts (or, when the job runs again after a retry,
//! repairs), driven by a coordinator of its own on the calling run's slots, and the job's
//! result and outputs taken from it.
//!
//! The child is an ordinary run of the same environment (trigger `{"type": "workflow"}`, its
//! `parent` the calling job), so `show`, `logs`, `cancel` and `retry` work on it as on any
//! run. Its progress goes to the calling run's reporter, its jobs named `caller/job`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use tokio::sync::watch;

use crate::engine::JobFailure;
use crate::engine::attempt::{AttemptInput, AttemptOutcome};
use crate::engine::context::LazyValue;
use crate::engine::decide::{NeedInfo, views};
use crate::engine::definition::{RunDefinition, load_definition, load_run_definition};
use crate::engine::job::scratch_dir;
use crate::engine::run::{Control, JobRt, RunEnd, Slots, execute};
use crate::engine::setup::{Origin, Repair, create_run, plan_repair, prepare, runtime_jobs};
use crate::engine::shared::RunShared;
use crate::spec::Loaded;
use crate::spec::calls::{called_path, is_workflow_file};
use crate::spec::params::{self, Overrides};
use crate::spec::template;
use crate::state::{JobState, RunId, RunState};
use crate::step::CancelMode;
use crate::store::{Owner, ParentLink};
use crate::ui::{Event, Reporter, Stream};

/// How deep `workflow:` calls may nest: a run at this depth cannot call another workflow.
pub const MAX_DEPTH: u32 = 8;

/// The trigger record of a child run.
#[must_use]
pub fn child_trigger() -> serde_json::Value {
    serde_json::json!({ "type": "workflow" })
}

/// Runs the calling job `input`: its child run to the end, cancelled with the job (`cancel`)
/// or at its timeout.
pub async fn call(
    shared: Arc<RunShared>,
    input: AttemptInput,
    mut cancel: watch::Receiver<Option<CancelMode>>,
    slots: Slots,
) -> AttemptOutcome {
    let started = Instant::now();
    let mut outcome = AttemptOutcome {
        state: JobState::Failed,
        exit_code: None,
        step: None,
        reason: None,
        outputs: Vec::new(),
        steps: Vec::new(),
        peak_rss_bytes: 0,
        cpu_ms: 0,
        duration: Duration::ZERO,
    };
    let child = match start(&shared, &input) {
        Ok(child) => child,
        Err(failure) => {
            outcome.reason = Some(failure.0);
            outcome.duration = started.elapsed();
            return outcome;
        }
    };
    let (end, timed_out) = match child {
        Child::Finished { run, jobs, loaded } => (
            RunEnd {
                state: RunState::Succeeded,
                interrupted: false,
                jobs,
            },
            (run, loaded, false),
        ),
        Child::Start {
            shared: child_shared,
            jobs,
            loaded,
        } => {
            let run = child_shared.run_id;
            shared.report(&Event::ChildRun {
                ts: shared.now(),
                job: input.name.clone(),
                run_id: run,
                workflow: child_shared.workflow_name.clone(),
                jobs: jobs.len(),
            });
            let (stop, stopped) = watch::channel(None);
            // Boxed: a child's jobs may call workflows in turn.
            let mut child: Pin<Box<dyn Future<Output = RunEnd> + Send>> =
                Box::pin(execute(child_shared, jobs, slots, Control::Parent(stopped)));
            let deadline = input
                .timeout
                .map(|limit| tokio::time::Instant::now() + limit);
            let mut timed_out = false;
            let end = loop {
                tokio::select! {
                    end = &mut child => break end,
                    changed = cancel.changed() => {
                        if changed.is_err() {
                            // The caller is gone: nothing more will ask.
                            break child.await;
                        }
                        if let Some(mode) = *cancel.borrow_and_update() {
                            let _ = stop.send(Some(mode));
                        }
                    }
                    () = sleep_until(deadline), if !timed_out => {
                        timed_out = true;
                        let _ = stop.send(Some(CancelMode::Graceful));
                    }
                }
            };
            (end, (run, loaded, timed_out))
        }
    };
    let (run, loaded, timed_out) = timed_out;
    outcome.duration = started.elapsed();
    match end.state {
        RunState::Succeeded => match outputs(&loaded, &end.jobs) {
            Ok(outputs) => {
                outcome.state = JobState::Succeeded;
                outcome.outputs = outputs;
            }
            Err(failure) => outcome.reason = Some(failure.0),
        },
        state if timed_out => {
            outcome.state = JobState::TimedOut;
            outcome.reason = Some(format!("timeout: child run {run} {state}"));
        }
        RunState::Cancelled => {
            outcome.state = JobState::Cancelled;
            outcome.reason = Some(format!("child run {run} cancelled"));
        }
        state => outcome.reason = Some(format!("child run {run} {state}")),
    }
    outcome
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The child run a calling job is about to wait for.
enum Child {
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

/// Creates the child run of the calling job, or reopens the one it started before.
fn start(shared: &Arc<RunShared>, input: &AttemptInput) -> Result<Child, JobFailure> {
    let job_def = &shared.workflow.jobs[input.base.as_str()];
    let Some(called) = job_def.workflow.as_deref() else {
        return Err(JobFailure(format!(
            "job `{}` calls no workflow",
            input.name
        )));
    };
    if shared.depth >= MAX_DEPTH {
        return Err(JobFailure(format!(
            "calls nest deeper than {MAX_DEPTH}: `{called}` would be call number {}",
            shared.depth + 1
        )));
    }
    let store = &shared.store;
    let record = store
        .job(input.job)
        .map_err(|e| JobFailure(e.to_string()))?
        .ok_or_else(|| JobFailure(format!("job {} is not in the environment", input.job)))?;
    let owner = Owner::current();
    let (loaded, values, overrides, run, jobs) = if let Some(&previous) = record.child_runs.last() {
        // A retry of the parent repairs the child it started, rather than starting another.
        let run = store
            .run(previous)
            .map_err(|e| JobFailure(e.to_string()))?
            .ok_or_else(|| JobFailure(format!("child run {previous} is gone")))?;
        if !run.status.is_terminal() {
            return Err(JobFailure(format!(
                "child run {previous} is still {}",
                run.status
            )));
        }
        let RunDefinition {
            loaded,
            values,
            overrides,
        } = load_run_definition(&**store, &run).map_err(|e| JobFailure(e.to_string()))?;
        let records = store.jobs(run.id).map_err(|e| JobFailure(e.to_string()))?;
        let Repair { jobs, rerun } =
            plan_repair(&loaded, &values, &records).map_err(|e| JobFailure(e.to_string()))?;
        if rerun.is_empty() {
            return Ok(Child::Finished {
                run: run.id,
                jobs,
                loaded,
            });
        }
        store
            .reset_for_retry(run.id, &rerun, Some(&owner))
            .map_err(|e| JobFailure(e.to_string()))?;
        (loaded, values, overrides, run.id, jobs)
    } else {
        let loaded = load_called(shared, called)?;
        let mut given = IndexMap::new();
        let value = LazyValue::default();
        for (name, text) in &job_def.with {
            let rendered =
                input
                    .context
                    .render(&value, text.as_str(), &format!("`with.{name}`"))?;
            given.insert(name.clone(), rendered);
        }
        let overrides = Overrides::default();
        let values = params::resolve(&loaded.workflow, &given, &overrides).map_err(|errors| {
            JobFailure(format!(
                "`with:` does not fit the params of `{called}`: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let prepared =
            prepare(&loaded, &values, &[], true).map_err(|e| JobFailure(e.to_string()))?;
        let source = is_workflow_file(called)
            .then(|| std::fs::canonicalize(called_path(&shared.dir, called)).ok())
            .flatten();
        let source = source.as_deref().and_then(Path::to_str);
        let (run, ids) = create_run(
            &**store,
            &loaded,
            &values,
            &overrides,
            &prepared,
            source,
            Origin {
                trigger: child_trigger(),
                fire: None,
                owner: Some(owner),
                parent: Some(ParentLink {
                    run: shared.run_id,
                    job: input.job,
                }),
            },
        )
        .map_err(|e| JobFailure(e.to_string()))?;
        let jobs = runtime_jobs(&prepared, &ids);
        (loaded, values, overrides, run, jobs)
    };
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

/// The workflow a job calls: a file beside the caller's, or one the environment knows.
fn load_called(shared: &RunShared, called: &str) -> Result<Loaded, JobFailure> {
    if is_workflow_file(called) {
        let path = called_path(&shared.dir, called);
        return crate::spec::load(&path).map_err(|err| {
            JobFailure(format!(
                "cannot load the called workflow {}: {}",
                path.display(),
                err.render().trim_end()
            ))
        });
    }
    let definition = shared
        .store
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
fn outputs(loaded: &Loaded, jobs: &[JobRt]) -> Result<Vec<(String, String)>, JobFailure> {
    if loaded.workflow.outputs.is_empty() {
        return Ok(Vec::new());
    }
    let infos: Vec<NeedInfo<'_>> = jobs
        .iter()
        .map(|job| NeedInfo {
            name: &job.name,
            base: &job.base,
            state: job.state,
            outputs: &job.outputs,
        })
        .collect();
    let jobs: BTreeMap<String, _> = views(&infos).into_iter().collect();
    let context =
        minijinja::Value::from(minijinja::value::Serde(serde_json::json!({ "jobs": jobs })));
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
