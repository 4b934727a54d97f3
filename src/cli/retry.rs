//! `coreflow retry RUN`: repair a run in the foreground, keeping its id. Jobs that did not
//! succeed, and everything downstream of them, run again; the rest keep their outputs. With
//! `--detach` the run is reopened for workers instead, its ready jobs queued.

use crate::cli::args::{GlobalArgs, RetryArgs};
use crate::cli::env;
use crate::cli::run::Foreground;
use crate::engine::definition::{RunDefinition, load_run_definition};
use crate::engine::queued::Reopened;
use crate::engine::setup::{Repair, plan_repair};
use crate::error::Error;
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
    if args.detach {
        // Nobody owns the reopened run: workers (or a daemon's) take its jobs.
        return match crate::engine::queued::reopen_for_retry(&*store, &run)? {
            Reopened::NothingToRetry => nothing_to_retry(global, &run),
            Reopened::Reopened(_) => super::queue::print_admission(
                global,
                &crate::engine::admission::Admission::Created(run.id),
            ),
        };
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
    let Repair { jobs, rerun: ids } = plan_repair(&loaded, &values, &records)?;
    if ids.is_empty() {
        return nothing_to_retry(global, &run);
    }
    let junit = super::run::junit_writer(args.junit.as_deref())?;
    store
        .reset_for_retry(run.id, &ids, Some(&Owner::current()))
        .map_err(Error::Store)?;
    let foreground = Foreground {
        progress: args.progress,
        junit,
        workers: args.workers,
        offer: crate::scheduler::resources::Offer::of_host(args.offer.cpus, args.offer.memory),
    };
    let trigger = run.trigger.clone();
    foreground.execute(
        global, &store, &loaded, values, overrides, trigger, run.id, jobs,
    )
}

fn nothing_to_retry(global: &GlobalArgs, run: &crate::store::RunRecord) -> Result<(), Error> {
    if !global.quiet {
        super::output::print(&format!(
            "run {}: every job succeeded, nothing to retry\n",
            run.id
        ))?;
    }
    Ok(())
}
