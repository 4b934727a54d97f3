//! Cancel requests between processes: `coreflow cancel` flags work for the process that owns
//! it, which polls the flags cheaply; work nobody owns is cancelled on the spot.

use super::tx::Tx;
use chrono::{DateTime, Utc};

use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::runs::{CancelOutcome, CancelRequests, REASON_CANCELLED, Transition};

use super::read::{cancel_requests, get_state};
use super::write::{
    cancel_waiting_jobs, finish_run, has_owner, jobs_in, run_status, transition_job,
};

pub(super) fn request_cancel_run(
    tx: &mut Tx<'_>,
    run: RunId,
    now: DateTime<Utc>,
) -> Result<CancelOutcome, Error> {
    if run_status(tx, run)?.is_terminal() {
        return Ok(CancelOutcome::AlreadyFinished);
    }
    let has_running = !jobs_in(tx, run, &[JobState::Running])?.is_empty();
    if has_owner(tx, run)? || has_running {
        tx.execute(
            "UPDATE runs SET cancel_requested = 1 WHERE id = $1",
            &[&run.0],
        )?;
        return Ok(CancelOutcome::Requested);
    }
    cancel_waiting_jobs(tx, run, REASON_CANCELLED, now)?;
    finish_run(tx, run, RunState::Cancelled, REASON_CANCELLED, now)?;
    Ok(CancelOutcome::Cancelled)
}

pub(super) fn request_cancel_job(
    tx: &mut Tx<'_>,
    job: JobId,
    now: DateTime<Utc>,
) -> Result<CancelOutcome, Error> {
    let row = tx
        .query_opt("SELECT run_id, status FROM jobs WHERE id = $1", &[&job.0])?
        .ok_or(Error::JobNotFound(job))?;
    let run = RunId(row.try_get(0)?);
    let state: JobState = get_state(&row, 1)?;
    if state.is_terminal() {
        return Ok(CancelOutcome::AlreadyFinished);
    }
    if has_owner(tx, run)? || state == JobState::Running {
        tx.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = $1",
            &[&job.0],
        )?;
        return Ok(CancelOutcome::Requested);
    }
    transition_job(
        tx,
        &Transition::new(job, JobState::Cancelled, now).reason(REASON_CANCELLED),
    )?;
    Ok(CancelOutcome::Cancelled)
}

pub(super) fn take_cancel_requests(tx: &mut Tx<'_>, run: RunId) -> Result<CancelRequests, Error> {
    let requests = cancel_requests(tx, run)?;
    if requests.run {
        tx.execute(
            "UPDATE runs SET cancel_requested = 0 WHERE id = $1",
            &[&run.0],
        )?;
    }
    if !requests.jobs.is_empty() {
        tx.execute(
            "UPDATE jobs SET cancel_requested = 0 WHERE run_id = $1 AND cancel_requested <> 0",
            &[&run.0],
        )?;
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::store;
    use crate::state::{JobState, RunState};
    use crate::store::runs::{CancelOutcome, RunStore};
    use crate::store::test_support::{job, run};

    #[test]
    fn cancel_requests_reach_the_owner_or_act_directly() {
        let store = store();
        let (owned, ids) = store
            .create_run(&run(
                "wf",
                vec![
                    job("a", &[], JobState::Queued),
                    job("b", &[], JobState::Queued),
                ],
            ))
            .unwrap();
        assert!(store.take_cancel_requests(owned).unwrap().is_empty());
        assert_eq!(
            store.request_cancel_job(ids[1]).unwrap(),
            CancelOutcome::Requested
        );
        assert_eq!(
            store.request_cancel_run(owned).unwrap(),
            CancelOutcome::Requested
        );
        let taken = store.take_cancel_requests(owned).unwrap();
        assert!(taken.run);
        assert_eq!(taken.jobs, [ids[1]]);
        assert!(store.take_cancel_requests(owned).unwrap().is_empty());

        let mut detached = run(
            "wf",
            vec![
                job("a", &[], JobState::Queued),
                job("b", &[], JobState::Pending),
            ],
        );
        detached.owner = None;
        detached.status = RunState::Queued;
        let (queued, queued_ids) = store.create_run(&detached).unwrap();
        assert_eq!(
            store.request_cancel_job(queued_ids[1]).unwrap(),
            CancelOutcome::Cancelled
        );
        assert_eq!(
            store.request_cancel_run(queued).unwrap(),
            CancelOutcome::Cancelled
        );
        assert_eq!(
            store.run(queued).unwrap().unwrap().status,
            RunState::Cancelled
        );
        assert!(
            store
                .jobs(queued)
                .unwrap()
                .iter()
                .all(|job| job.status == JobState::Cancelled)
        );
        assert_eq!(
            store.request_cancel_run(queued).unwrap(),
            CancelOutcome::AlreadyFinished
        );
        assert_eq!(
            store.request_cancel_job(queued_ids[0]).unwrap(),
            CancelOutcome::AlreadyFinished
        );
    }
}
