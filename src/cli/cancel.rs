//! `coreflow cancel RUN|JOB`: ask the run's owner to stop it (queued jobs are dropped,
//! running ones stopped as on timeout, downstream jobs cancelled).

use crate::cli::args::{CancelArgs, GlobalArgs};
use crate::cli::env;
use crate::engine::queued::{cancel_job, cancel_run};
use crate::error::Error;
use crate::store::CancelOutcome;

pub(super) fn run(global: &GlobalArgs, args: &CancelArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    let target = &args.target;
    let (what, outcome) = if target.contains('/') {
        let job = store
            .resolve_job(target)
            .map_err(Error::Store)?
            .ok_or_else(|| Error::Usage(format!("no job `{target}` in this environment")))?;
        let outcome = cancel_job(&*store, job.id).map_err(Error::Store)?;
        (format!("job {}/{}", job.run_id, job.name), outcome)
    } else {
        let run = super::runs::find_run(&*store, target)?;
        let outcome = cancel_run(&*store, run.id).map_err(Error::Store)?;
        (format!("run {}", run.id), outcome)
    };
    if !global.quiet {
        let message = match outcome {
            CancelOutcome::Requested => format!("{what}: cancel requested\n"),
            CancelOutcome::Cancelled => format!("{what}: cancelled\n"),
            CancelOutcome::AlreadyFinished => {
                format!("{what}: already finished, nothing to cancel\n")
            }
        };
        super::output::print(&message)?;
    }
    Ok(())
}
