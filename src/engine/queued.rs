//! Runs that live in the store rather than in one process: creating a run and queueing its
//! ready jobs (`run --detach`, `trigger`), and advancing a run's DAG after a job ends, which
//! any standalone worker may do.
//!
//! Advancing reads the run's jobs, decides every pending job whose needs have ended with the
//! same [`decide`] the in-process coordinator uses, and applies each decision only if the job
//! is still where it was read ([`Advance`]): two workers finishing jobs of one run at once
//! cannot queue a job twice, and the last one to commit sees every finished need.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::engine::decide::{Decision, NeedInfo, RunInputs, at_max_parallel, context, decide};
use crate::engine::definition::{RunDefinition, load_run_definition};
use crate::engine::setup::{create_run, prepare};
use crate::engine::{EngineError, JobFailure};
use crate::engine::{call, fail_fast, fan_out};
use crate::spec::Loaded;
use crate::spec::model::Workflow;
use crate::spec::params::{Overrides, Values};
use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::{
    Advance, CancelOutcome, Change, Error, JobRecord, LostJob, RunJob, RunRecord, Transition,
};
use crate::store::{Env, Environment};

/// Creates a run without an owner and queues its ready jobs, for workers to execute.
///
/// # Errors
/// A job whose `--only`/labels do not fit, or the store failing.
pub fn queue_run(
    store: &Env,
    loaded: &Loaded,
    values: &Values,
    overrides: &Overrides,
    source_path: Option<&str>,
    trigger: serde_json::Value,
    fire: Option<crate::store::FireClaim>,
) -> Result<RunId, EngineError> {
    // DataBlock parameters are fixed to versions now, whoever queues the run (`trigger`, the
    // daemon, the API): a missing block is refused before anything is created.
    let (mut values, mut overrides) = (values.clone(), overrides.clone());
    crate::blocks::pin_params(
        store.as_ref(),
        &loaded.workflow,
        &mut values,
        &mut overrides,
    )?;
    let (values, overrides) = (&values, &overrides);
    let prepared = prepare(loaded, values, &[], false)?;
    let (run_id, _) = create_run(
        &**store,
        loaded,
        values,
        overrides,
        &prepared,
        source_path,
        crate::engine::setup::Origin {
            trigger,
            fire,
            owner: None,
            parent: None,
        },
    )?;
    let run = store
        .run(run_id)?
        .ok_or(crate::store::Error::RunNotFound(run_id))?;
    let definition = RunDefinition {
        loaded: loaded.clone(),
        values: values.clone(),
        overrides: overrides.clone(),
    };
    advance_run(&**store, &run, &definition)?;
    Ok(run_id)
}

/// Decides the run's pending jobs whose needs have ended and finishes the run when every
/// job has ended.
///
/// # Errors
/// The store failing.
pub fn advance_run(
    store: &dyn Environment,
    run: &RunRecord,
    definition: &RunDefinition,
) -> Result<Option<RunState>, Error> {
    let run = store.run(run.id)?.unwrap_or_else(|| run.clone());
    let mut jobs = store.run_jobs(run.id)?;
    if conclude_fan_outs(store, &definition.loaded, &jobs)? {
        jobs = store.run_jobs(run.id)?;
    }
    // First, so that no sibling of a failed `fail_fast` leg is queued below.
    let stopped = stop_failed_legs_siblings(store, &definition.loaded.workflow, &jobs)?;
    let process_env: BTreeMap<String, String> = std::env::vars().collect();
    let inputs = definition.inputs(&run, &process_env);
    let Decided {
        mut advances,
        calls,
        fan_outs,
    } = decisions(store, &inputs, &jobs, run.cancel_requested)?;
    // What needs the cancelled siblings is decided in the next pass.
    let mut again = !stopped.is_empty();
    advances.splice(0..0, stopped);
    for FanStart { index, items } in fan_outs {
        let job = &jobs[index];
        let now = store.clock().now();
        let made = items.and_then(|items| {
            let before = jobs
                .iter()
                .any(|j| j.base_name == job.name && j.name != job.name);
            if items.is_empty() || before {
                // None, or made before (a repaired run): its reset items are decided next.
                return Ok(items.len());
            }
            let record = store
                .job(job.id)
                .map_err(|e| JobFailure(e.to_string()))?
                .ok_or_else(|| JobFailure(format!("job {} is gone", job.id)))?;
            let parent = fan_out::Parent {
                name: &job.name,
                base: &job.base_name,
                queue: &record.queue,
                priority: record.priority,
                needs: job.needs.clone(),
            };
            let new = fan_out::item_jobs(&definition.loaded.workflow, &parent, &items);
            store
                .add_jobs(run.id, &new)
                .map_err(|e| JobFailure(e.to_string()))?;
            Ok(items.len())
        });
        // What needs it, or its items, are decided in the next pass.
        again = true;
        let transition = match made {
            Ok(0) => Transition::new(job.id, JobState::Skipped, now).reason(fan_out::NO_ITEMS),
            Ok(_) => {
                advances.push(Advance {
                    from: JobState::Pending,
                    transition: Transition::new(job.id, JobState::Queued, now),
                });
                Transition::new(job.id, JobState::Running, now)
            }
            Err(failure) => Transition::new(job.id, JobState::Failed, now).reason(failure.0),
        };
        let from = if transition.to == JobState::Running {
            JobState::Queued
        } else {
            JobState::Pending
        };
        advances.push(Advance { from, transition });
    }
    // Calling jobs start their child run (or find it again) and are running at once: no
    // worker ever claims them.
    let mut children = Vec::new();
    let mut failed_call = false;
    if !calls.is_empty() {
        let depth = call_depth(store, &run)?;
        for CallStart { index, given } in calls {
            let job = &jobs[index];
            let called = definition.loaded.workflow.jobs[job.base_name.as_str()]
                .workflow
                .as_deref()
                .unwrap_or_default();
            let found = given.and_then(|given| {
                call::find_or_create(
                    store,
                    call::Call {
                        dir: &definition.loaded.dir,
                        parent: run.id,
                        job: job.id,
                        called,
                        given,
                        depth,
                        owner: None,
                    },
                )
            });
            let now = store.clock().now();
            match found {
                Ok(found) => {
                    advances.push(Advance {
                        from: JobState::Pending,
                        transition: Transition::new(job.id, JobState::Queued, now),
                    });
                    advances.push(Advance {
                        from: JobState::Queued,
                        transition: Transition::new(job.id, JobState::Running, now),
                    });
                    children.push(found);
                }
                Err(failure) => {
                    failed_call = true;
                    advances.push(Advance {
                        from: JobState::Pending,
                        transition: Transition::new(job.id, JobState::Failed, now)
                            .reason(failure.0),
                    });
                }
            }
        }
    }
    if run.cancel_requested {
        cancel_children(store, &definition.loaded, &jobs)?;
    }
    let ended = store.advance(run.id, &advances)?;
    for found in children {
        if found.state == call::FoundState::Ready
            && let Some(child) = store.run(found.run)?
        {
            let child_definition = RunDefinition {
                loaded: found.loaded,
                values: found.values,
                overrides: found.overrides,
            };
            advance_run(store, &child, &child_definition)?;
        }
        // A child that succeeded before (or ended meanwhile) ends its calling job now.
        conclude_parent(store, found.run)?;
    }
    if (failed_call || again) && ended.is_none() {
        // What needed the failed calling job is decided now.
        return advance_run(store, &run, definition);
    }
    if ended.is_some() {
        conclude_parent(store, run.id)?;
    }
    Ok(ended)
}

/// `fail_fast`: the siblings of a failed matrix leg that have not ended are cancelled: those
/// running are asked to stop (their worker cancels them); the cancels of those waiting are
/// returned, to be applied if they still wait.
fn stop_failed_legs_siblings(
    store: &dyn Environment,
    workflow: &Workflow,
    jobs: &[RunJob],
) -> Result<Vec<Advance>, Error> {
    let mut advances = Vec::new();
    for failed in jobs
        .iter()
        .filter(|j| fail_fast::stops_siblings(workflow, &j.base_name, j.status))
    {
        for sibling in jobs.iter().filter(|j| {
            j.base_name == failed.base_name && j.id != failed.id && !j.status.is_terminal()
        }) {
            if sibling.status == JobState::Running {
                store.request_cancel_job(sibling.id)?;
            } else {
                let now = store.clock().now();
                advances.push(Advance {
                    from: sibling.status,
                    transition: Transition::new(sibling.id, JobState::Cancelled, now)
                        .reason(fail_fast::reason(&failed.name)),
                });
            }
        }
    }
    Ok(advances)
}

/// Ends every running `for_each` job whose items have all ended, with their result and
/// outputs (see [`fan_out::conclusion`]); returns whether one ended.
fn conclude_fan_outs(
    store: &dyn Environment,
    loaded: &Loaded,
    jobs: &[RunJob],
) -> Result<bool, Error> {
    let mut concluded = false;
    for job in jobs {
        let fans_out = loaded
            .workflow
            .jobs
            .get(job.base_name.as_str())
            .is_some_and(|def| def.for_each.is_some());
        if !fans_out || job.name != job.base_name || job.status != JobState::Running {
            continue;
        }
        let items: Vec<&RunJob> = jobs
            .iter()
            .filter(|item| item.base_name == job.name && item.name != job.name)
            .collect();
        if items.is_empty() || items.iter().any(|item| !item.status.is_terminal()) {
            continue;
        }
        let outputs: Vec<BTreeMap<String, String>> = items
            .iter()
            .map(|item| store.outputs(item.id))
            .collect::<Result<_, _>>()?;
        let states: Vec<(JobState, &BTreeMap<String, String>)> = items
            .iter()
            .zip(&outputs)
            .map(|(item, out)| (item.status, out))
            .collect();
        let ended = fan_out::conclusion(&states);
        let mut changes: Vec<Change> = ended
            .outputs
            .into_iter()
            .map(|(key, value)| Change::Output {
                job: job.id,
                key,
                value,
            })
            .collect();
        let mut transition = Transition::new(job.id, ended.state, store.clock().now());
        transition.reason = ended.reason;
        changes.push(transition.into());
        match store.apply(&changes) {
            Ok(()) => concluded = true,
            // Another process ended it first.
            Err(Error::IllegalTransition { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(concluded)
}

/// When running calling job `job` of `run` (moved on through the store) times out, by its
/// `timeout:`; `None` without one.
fn call_deadline(
    store: &dyn Environment,
    run: &RunRecord,
    job: JobId,
) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(record) = store.job(job)? else {
        return Ok(None);
    };
    let (JobState::Running, Some(started)) = (record.status, record.started_at) else {
        return Ok(None);
    };
    let Ok(definition) = load_run_definition(store, run) else {
        return Ok(None);
    };
    if !definition
        .loaded
        .workflow
        .jobs
        .contains_key(&record.base_name)
    {
        return Ok(None);
    }
    let limit = crate::engine::policy::limits(&definition.loaded.workflow, &record.base_name);
    Ok(limit
        .timeout
        .and_then(|timeout| chrono::Duration::from_std(timeout).ok())
        .map(|timeout| started + timeout))
}

/// Cancels the child runs whose calling job (in a run moved on through the store) is past
/// its `timeout:`; each child's end then ends its job `timed_out`. A foreground run times
/// its own calling jobs out. Every worker runs this as it keeps house.
pub fn time_out_calls(store: &dyn Environment) {
    let now = store.clock().now();
    for status in [RunState::Queued, RunState::Running] {
        let filter = crate::store::RunFilter {
            status: Some(status),
            ..Default::default()
        };
        let Ok(runs) = store.runs(&filter) else {
            continue;
        };
        for child in runs {
            let Some(parent) = child.parent else {
                continue;
            };
            let Ok(Some(parent_run)) = store.run(parent.run) else {
                continue;
            };
            if parent_run.owner.is_some() {
                continue;
            }
            if let Ok(Some(deadline)) = call_deadline(store, &parent_run, parent.job)
                && now >= deadline
                && let Err(err) = cancel_run(store, child.id)
            {
                eprintln!("coreflow: cannot time out child run {}: {err}", child.id);
            }
        }
    }
}

/// How many calls led to `run`.
fn call_depth(store: &dyn Environment, run: &RunRecord) -> Result<u32, Error> {
    let mut depth = 0;
    let mut parent = run.parent;
    while let Some(link) = parent
        && depth <= call::MAX_DEPTH
    {
        depth += 1;
        parent = store.run(link.run)?.and_then(|run| run.parent);
    }
    Ok(depth)
}

/// Asks the child runs of a cancelled run's running calling jobs to cancel, and moves them
/// on; each child's end then ends its calling job.
fn cancel_children(store: &dyn Environment, loaded: &Loaded, jobs: &[RunJob]) -> Result<(), Error> {
    for job in jobs {
        if job.status != JobState::Running
            || loaded.workflow.jobs[job.base_name.as_str()]
                .workflow
                .is_none()
        {
            continue;
        }
        let Some(record) = store.job(job.id)? else {
            continue;
        };
        for &child in &record.child_runs {
            cancel_run(store, child)?;
        }
    }
    Ok(())
}

/// Ends the calling job of child run `child` once the child has ended, with the child's
/// result and outputs (see [`call::ended`]), and moves the calling run on. Nothing happens
/// for a child still going, a job already ended, or a calling run executed in the
/// foreground (its coordinator ends its own jobs).
///
/// # Errors
/// The store failing.
pub fn conclude_parent(store: &dyn Environment, child: RunId) -> Result<(), Error> {
    let Some(record) = store.run(child)? else {
        return Ok(());
    };
    let (Some(parent), true) = (record.parent, record.status.is_terminal()) else {
        return Ok(());
    };
    let Some(parent_run) = store.run(parent.run)? else {
        return Ok(());
    };
    if parent_run.owner.is_some() || parent_run.status.is_terminal() {
        return Ok(());
    }
    if store
        .job(parent.job)?
        .is_none_or(|job| job.status != JobState::Running)
    {
        return Ok(());
    }
    let mut ended = match load_run_definition(store, &record) {
        Ok(definition) => {
            let jobs = store.jobs(child)?;
            let infos: Vec<NeedInfo<'_>> = jobs
                .iter()
                .filter(|job| job.item.is_null())
                .map(NeedInfo::of)
                .collect();
            call::ended(child, record.status, &definition.loaded, &infos)
        }
        Err(err) => call::Ended {
            state: JobState::Failed,
            reason: Some(err.to_string()),
            outputs: Vec::new(),
        },
    };
    // A child cancelled at its calling job's timeout ends the job `timed_out`.
    if ended.state == JobState::Cancelled
        && let Some(deadline) = call_deadline(store, &parent_run, parent.job)?
        && record.finished_at.is_some_and(|at| at >= deadline)
    {
        ended.state = JobState::TimedOut;
        ended.reason = Some(format!("timeout: child run {child} cancelled"));
    }
    let now = store.clock().now();
    let mut changes: Vec<Change> = ended
        .outputs
        .into_iter()
        .map(|(key, value)| Change::Output {
            job: parent.job,
            key,
            value,
        })
        .collect();
    let mut transition = Transition::new(parent.job, ended.state, now);
    transition.reason = ended.reason;
    changes.push(transition.into());
    match store.apply(&changes) {
        Ok(()) => {}
        // Another process ended it first.
        Err(Error::IllegalTransition { .. }) => return Ok(()),
        Err(err) => return Err(err),
    }
    match load_run_definition(store, &parent_run) {
        Ok(definition) => advance_run(store, &parent_run, &definition).map(|_| ()),
        Err(err) => {
            eprintln!("coreflow: cannot move run {} on: {err}", parent_run.id);
            Ok(())
        }
    }
}

/// Moves a run nobody owns on after some of its waiting jobs were cancelled from outside
/// (`cancel RUN/JOB`, `jobs cancel`, `queue remove --force`): what needed them is decided,
/// and a run with nothing left ends. A run executed in the foreground is its owner's to
/// move on. Problems are reported on stderr: the cancel itself is done.
pub fn advance_unowned(store: &dyn Environment, run: RunId) {
    let Ok(Some(record)) = store.run(run) else {
        return;
    };
    if record.status.is_terminal() || record.owner.is_some() {
        return;
    }
    let moved = load_run_definition(store, &record)
        .and_then(|definition| Ok(advance_run(store, &record, &definition)?));
    if let Err(err) = moved {
        eprintln!("coreflow: cannot move run {run} on: {err}");
    }
}

/// Asks for run `run` to be cancelled (see [`RunStore::request_cancel_run`]) and moves a
/// run nobody owns on at once: its waiting jobs are cancelled, and so are the child runs of
/// its running calling jobs. Every way of cancelling a run comes here.
///
/// # Errors
/// The store failing.
///
/// [`RunStore::request_cancel_run`]: crate::store::RunStore::request_cancel_run
pub fn cancel_run(store: &dyn Environment, run: RunId) -> Result<CancelOutcome, Error> {
    let outcome = store.request_cancel_run(run)?;
    if outcome == CancelOutcome::Requested {
        advance_unowned(store, run);
    }
    Ok(outcome)
}

/// Asks for job `job` to be cancelled (see [`RunStore::request_cancel_job`]): a waiting job
/// of a run nobody owns is cancelled at once and its run moved on; a running calling job's
/// child run is cancelled, whose end ends the job.
///
/// # Errors
/// The store failing.
///
/// [`RunStore::request_cancel_job`]: crate::store::RunStore::request_cancel_job
pub fn cancel_job(store: &dyn Environment, job: JobId) -> Result<CancelOutcome, Error> {
    let outcome = store.request_cancel_job(job)?;
    let Some(record) = store.job(job)? else {
        return Ok(outcome);
    };
    match outcome {
        CancelOutcome::Cancelled => advance_unowned(store, record.run_id),
        CancelOutcome::Requested => {
            for &child in &record.child_runs {
                cancel_run(store, child)?;
            }
        }
        CancelOutcome::AlreadyFinished => {}
    }
    Ok(outcome)
}

/// The names (in the workflow) of the jobs some other job needs, and of the jobs bounded by
/// `max_parallel` (the end of one lets a sibling go): only their end can make another job
/// ready. After any other job ends, [`advance_run`] has nothing to decide unless
/// the run is being cancelled; skipping it there keeps draining a large run linear.
#[must_use]
pub fn needed_jobs(definition: &RunDefinition) -> HashSet<String> {
    let jobs = &definition.loaded.workflow.jobs;
    // A job bounded by `max_parallel` waits for its own siblings too.
    // A `for_each` job ends when its last item does; a failed `fail_fast` leg cancels its
    // siblings.
    let bounded = jobs
        .iter()
        .filter(|(_, job)| job.max_parallel.is_some() || job.for_each.is_some() || job.fail_fast)
        .map(|(name, _)| name.clone());
    jobs.values()
        .flat_map(|job| job.needs.iter().cloned())
        .chain(bounded)
        .collect()
}

/// Re-queues the jobs whose worker's lease expired (or fails them as `lost` when no attempts
/// remain) and moves their runs on. Returns them, for [`kill_leftovers`].
#[must_use]
pub fn expire_leases(store: &dyn Environment) -> Vec<LostJob> {
    let lost = match store.expire_leases(store.clock().now()) {
        Ok(lost) => lost,
        Err(err) => {
            eprintln!("coreflow: cannot expire leases: {err}");
            return Vec::new();
        }
    };
    for job in &lost {
        if let Ok(Some(run)) = store.run(job.run)
            && let Ok(definition) = load_run_definition(store, &run)
        {
            let _ = advance_run(store, &run, &definition);
        }
    }
    lost
}

/// Kills, on a thread of their own, what is left on this host of lost attempts (SPEC §3:
/// nothing of a lost attempt keeps running while its job runs again elsewhere). A worker
/// on another host leaves nothing here to find.
pub fn kill_leftovers(lost: Vec<LostJob>) {
    let tokens: Vec<String> = lost.into_iter().filter_map(|job| job.kill_token).collect();
    if tokens.is_empty() {
        return;
    }
    std::thread::spawn(move || {
        for token in tokens {
            let _ = crate::step::kill_token_processes(&token, Duration::from_secs(2));
        }
    });
}

/// What [`decisions`] found to do.
struct Decided {
    advances: Vec<Advance>,
    /// Calling jobs to start (their child runs are made before they are recorded running).
    calls: Vec<CallStart>,
    /// `for_each` jobs to fan out.
    fan_outs: Vec<FanStart>,
}

/// A `for_each` job whose needs let it start.
struct FanStart {
    /// Its index in the run's jobs.
    index: usize,
    items: Result<Vec<serde_json::Value>, JobFailure>,
}

/// A calling job whose needs let it start.
struct CallStart {
    /// Its index in the run's jobs.
    index: usize,
    /// Its `with:`, rendered.
    given: Result<IndexMap<String, String>, JobFailure>,
}

/// The decisions for every pending job whose needs have ended, cascading through skips.
fn decisions(
    store: &dyn Environment,
    inputs: &RunInputs<'_>,
    jobs: &[RunJob],
    cancelled: bool,
) -> Result<Decided, Error> {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let mut states: Vec<JobState> = jobs.iter().map(|j| j.status).collect();
    // Outputs are read only for the needs of jobs being decided.
    let mut outputs: HashMap<usize, BTreeMap<String, String>> = HashMap::new();
    let mut out = Vec::new();
    let mut calls = Vec::new();
    let mut fan_outs = Vec::new();
    let now = store.clock().now();
    loop {
        let mut changed = false;
        for (i, job) in jobs.iter().enumerate() {
            if states[i] != JobState::Pending && !(cancelled && states[i] == JobState::Queued) {
                continue;
            }
            if cancelled {
                let from = states[i];
                states[i] = JobState::Cancelled;
                out.push(Advance {
                    from,
                    transition: Transition::new(job.id, JobState::Cancelled, now)
                        .reason("cancelled"),
                });
                changed = true;
                continue;
            }
            let need_ids: Vec<usize> = job
                .needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect();
            if need_ids.iter().any(|&n| !states[n].is_terminal()) {
                continue;
            }
            for &n in &need_ids {
                if let std::collections::hash_map::Entry::Vacant(entry) = outputs.entry(n) {
                    // A need decided in this pass (skipped, cancelled) has no outputs.
                    let read = if jobs[n].status.is_terminal() {
                        store.outputs(jobs[n].id)?
                    } else {
                        BTreeMap::new()
                    };
                    entry.insert(read);
                }
            }
            let needs: Vec<NeedInfo<'_>> = need_ids
                .iter()
                .map(|&n| NeedInfo {
                    name: &jobs[n].name,
                    base: &jobs[n].base_name,
                    state: states[n],
                    outputs: &outputs[&n],
                })
                .collect();
            let matrix = matrix_values(&job.matrix);
            let (to, reason) = match decide(inputs, &job.name, &job.base_name, &matrix, &needs) {
                Decision::Queue if held_by_max_parallel(inputs, jobs, &states, i) => continue,
                Decision::Queue
                    if job.name == job.base_name
                        && inputs.workflow.jobs[job.base_name.as_str()]
                            .for_each
                            .is_some() =>
                {
                    let items = fan_out::items(inputs, &job.name, &job.base_name, &needs);
                    // Running once its items exist: what needs it waits.
                    states[i] = JobState::Running;
                    fan_outs.push(FanStart { index: i, items });
                    changed = true;
                    continue;
                }
                Decision::Queue
                    if inputs.workflow.jobs[job.base_name.as_str()]
                        .workflow
                        .is_some() =>
                {
                    // A `for_each` item reads its item as `each.*`.
                    let item = if job.name == job.base_name {
                        serde_json::Value::Null
                    } else {
                        store
                            .job(job.id)?
                            .map(|record| record.item)
                            .unwrap_or_default()
                    };
                    let given = context(inputs, &job.name, &job.base_name, &matrix, &needs)
                        .and_then(|mut context| {
                            context.each = crate::engine::context::EachView::of(&item);
                            call::render_with(
                                &inputs.workflow.jobs[job.base_name.as_str()],
                                &context,
                            )
                        });
                    // Running once its child run exists: what needs it waits.
                    states[i] = JobState::Running;
                    calls.push(CallStart { index: i, given });
                    changed = true;
                    continue;
                }
                Decision::Queue => (JobState::Queued, None),
                Decision::Skip(reason) => (JobState::Skipped, Some(reason)),
                Decision::Cancel(reason) => (JobState::Cancelled, Some(reason)),
                Decision::Fail(reason) => (JobState::Failed, Some(reason)),
            };
            states[i] = to;
            let mut transition = Transition::new(job.id, to, now);
            transition.reason = reason;
            out.push(Advance {
                from: JobState::Pending,
                transition,
            });
            changed = true;
        }
        if !changed {
            return Ok(Decided {
                advances: out,
                calls,
                fan_outs,
            });
        }
    }
}

/// Whether job `i` must stay pending because `max_parallel` of its matrix siblings are
/// queued or running already; the end of one of them moves the run on again (see
/// [`needed_jobs`]).
fn held_by_max_parallel(
    inputs: &RunInputs<'_>,
    jobs: &[RunJob],
    states: &[JobState],
    i: usize,
) -> bool {
    let base = jobs[i].base_name.as_str();
    if inputs
        .workflow
        .jobs
        .get(base)
        .is_none_or(|job| job.max_parallel.is_none())
    {
        return false;
    }
    let active = jobs
        .iter()
        .zip(states)
        .filter(|(job, state)| {
            // A `for_each` job itself runs nothing: its items count.
            job.base_name == base
                && job.name != base
                && matches!(state, JobState::Queued | JobState::Running)
        })
        .count();
    at_max_parallel(inputs.workflow, base, active)
}

/// A job record's matrix values in the order written.
#[must_use]
pub fn matrix_of(job: &JobRecord) -> IndexMap<String, String> {
    matrix_values(&job.matrix)
}

/// Matrix values (a JSON object) in the order written.
fn matrix_values(matrix: &serde_json::Value) -> IndexMap<String, String> {
    matrix
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What [`reopen_for_retry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reopened {
    /// Every job succeeded: nothing to run again.
    NothingToRetry,
    /// The jobs that will run again (those that did not succeed and everything downstream).
    Reopened(Vec<JobId>),
}

/// `coreflow retry --detach` and the API's retry: reopens ended run `run` for workers,
/// keeping its id — jobs that did not succeed and everything downstream of them run again,
/// the rest keep their outputs; the jobs whose needs already succeeded are queued now.
/// Nobody owns the reopened run.
///
/// # Errors
/// The run's definition cannot be loaded, one of its DataBlock parameters names a version
/// that no longer exists, or the store fails.
pub fn reopen_for_retry(store: &dyn Environment, run: &RunRecord) -> Result<Reopened, EngineError> {
    let RunDefinition {
        loaded,
        mut values,
        mut overrides,
    } = load_run_definition(store, run)?;
    // The run's DataBlock parameters name fixed versions: they must still exist.
    crate::blocks::pin_params(store, &loaded.workflow, &mut values, &mut overrides)?;
    let records = store.jobs(run.id)?;
    let crate::engine::setup::Repair { rerun, .. } =
        crate::engine::setup::plan_repair(&loaded, &values, &records)?;
    if rerun.is_empty() {
        return Ok(Reopened::NothingToRetry);
    }
    store.reset_for_retry(run.id, &rerun, None)?;
    let definition = RunDefinition {
        loaded,
        values,
        overrides,
    };
    advance_run(store, run, &definition)?;
    Ok(Reopened::Reopened(rerun))
}
