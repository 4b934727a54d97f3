//! `coreflow retry RUN`: repair a run in the foreground, keeping its id. Jobs that did not
//! succeed, and everything downstream of them, run again; the rest keep their outputs. With
//! `--detach` the run is reopened for workers instead, its ready jobs queued.

use std::collections::BTreeMap;

use crate::cli::args::{GlobalArgs, RetryArgs};
use crate::cli::env;
use crate::cli::run::Foreground;
use crate::engine::JobRt;
use crate::engine::queued::{RunDefinition, advance_run, load_run_definition};
use crate::engine::setup::prepare;
use crate::error::Error;
use crate::state::JobState;
use crate::store::Owner;

pub(super) fn run(global: &GlobalArgs, args: &RetryArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    let run = super::runs::find_run(&*store, &args.run)?;
    if !run.status.is_terminal() {
        return Err(Error::Usage(format!(
            "run {} is still {}; cancel it first",
            run.id, run.status
        )));
    }
    // The run's definition and its own parameter values (job-level `-p JOB.NAME=V` too).
    let RunDefinition {
        loaded,
        mut values,
        mut overrides,
    } = load_run_definition(&*store, &run)?;
    // The run's DataBlock parameters name fixed versions: they must still exist.
    super::blocks::pin(&*store, &loaded, &mut values, &mut overrides)?;

    let records = store.jobs(run.id).map_err(Error::Store)?;
    let present: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
    let prepared = prepare(&loaded, &values, &[], false)?;
    // The run's jobs in plan order (a run made with `--only` holds a subset).
    let keep: Vec<usize> = (0..prepared.len())
        .filter(|&i| present.contains(&prepared[i].plan.name))
        .collect();
    let mut remap = vec![usize::MAX; prepared.len()];
    for (new, &old) in keep.iter().enumerate() {
        remap[old] = new;
    }
    let by_name: BTreeMap<&str, &crate::store::JobRecord> =
        records.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut jobs: Vec<JobRt> = Vec::with_capacity(keep.len());
    for &old in &keep {
        let plan = &prepared[old].plan;
        let record = by_name[plan.name.as_str()];
        jobs.push(JobRt {
            id: record.id,
            name: plan.name.clone(),
            base: plan.base.clone(),
            matrix: plan.matrix.clone(),
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
    // What did not succeed, and everything downstream of it, runs again.
    let mut rerun: Vec<bool> = jobs
        .iter()
        .map(|j| j.state != JobState::Succeeded)
        .collect();
    // Needs may point forward in declaration order: spread until nothing changes.
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..jobs.len() {
            if !rerun[i] && jobs[i].needs.iter().any(|&n| rerun[n]) {
                rerun[i] = true;
                changed = true;
            }
        }
    }
    let ids: Vec<_> = jobs
        .iter()
        .zip(&rerun)
        .filter(|(_, r)| **r)
        .map(|(j, _)| j.id)
        .collect();
    if ids.is_empty() {
        if !global.quiet {
            super::output::print(&format!(
                "run {}: every job succeeded, nothing to retry\n",
                run.id
            ))?;
        }
        return Ok(());
    }
    if args.detach {
        // Nobody owns the reopened run: workers (or a daemon's) take its jobs, and the
        // jobs whose needs already succeeded are queued now.
        store
            .reset_for_retry(run.id, &ids, None)
            .map_err(Error::Store)?;
        let definition = RunDefinition {
            loaded,
            values,
            overrides,
        };
        advance_run(&*store, &run, &definition).map_err(Error::Store)?;
        let reopened = crate::engine::admission::Admission::Created(run.id);
        return super::queue::print_admission(global, &reopened);
    }
    let junit = super::run::junit_writer(args.junit.as_deref())?;
    store
        .reset_for_retry(run.id, &ids, Some(&Owner::current()))
        .map_err(Error::Store)?;
    for (job, again) in jobs.iter_mut().zip(&rerun) {
        if *again {
            job.state = JobState::Pending;
            job.outputs.clear();
            job.exit_code = None;
            job.reason = None;
            job.duration = None;
        }
    }
    let foreground = Foreground {
        progress: args.progress,
        junit,
        workers: args.workers,
    };
    let trigger = run.trigger.clone();
    foreground.execute(
        global, &store, &loaded, values, overrides, trigger, run.id, jobs,
    )
}
