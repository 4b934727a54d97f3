//! Crash recovery: runs whose owning process died (kill -9, power loss) fail, their running
//! jobs as `lost`. Finding and killing leftover processes is the caller's part.

use super::tx::Tx;
use chrono::{DateTime, Utc};

use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::owner::Owner;
use crate::store::runs::{LostJob, REASON_LOST, REASON_OWNER_LOST, Recovered, Transition};

use super::to_sql_u64;
use super::write::{cancel_waiting_jobs, finish_run, transition_job};

/// Fails the runs in `dead` (found without the lock) that are still active under the same
/// owner now that the lock is held: another process may have recovered or retried them since.
pub(super) fn recover_lost(
    tx: &mut Tx<'_>,
    dead: &[(RunId, Owner)],
    now: DateTime<Utc>,
) -> Result<Recovered, Error> {
    let mut lost = Recovered::default();
    for (run, owner) in dead {
        let still_dead = tx
            .query_opt(
                "SELECT 1 FROM runs
                 WHERE id = $1 AND status IN ('queued', 'running')
                   AND owner_pid = $2 AND owner_start = $3 AND owner_host = $4",
                &[
                    &run.0,
                    &i64::from(owner.pid),
                    &to_sql_u64(owner.start_time),
                    &owner.host,
                ],
            )?
            .is_some();
        if !still_dead {
            continue;
        }
        let running: Vec<(JobId, String, Option<String>)> = tx
            .query(
                "SELECT id, name, kill_token FROM jobs
                 WHERE run_id = $1 AND status = 'running' ORDER BY id",
                &[&run.0],
            )?
            .iter()
            .map(|row| Ok((JobId(row.try_get(0)?), row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<_, postgres::Error>>()?;
        for (job, name, kill_token) in running {
            transition_job(
                tx,
                &Transition::new(job, JobState::Failed, now).reason(REASON_LOST),
            )?;
            lost.jobs.push(LostJob {
                job,
                run: *run,
                name,
                kill_token,
            });
        }
        cancel_waiting_jobs(tx, *run, REASON_OWNER_LOST, now)?;
        finish_run(tx, *run, RunState::Failed, REASON_LOST, now)?;
        lost.runs.push((*run, owner.clone()));
    }
    Ok(lost)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::PgStore;
    use super::super::test_support::fresh_url;
    use crate::state::{JobState, RunState};
    use crate::store::owner::{Owner, owner_is_alive};
    use crate::store::runs::{REASON_LOST, RunStore, Transition};
    use crate::store::test_support::{dead_owner, job, run};

    #[test]
    fn recover_lost_fails_running_jobs_of_dead_owners_once() {
        let url = fresh_url();
        let store = PgStore::open(&url).unwrap();
        let mut new = run(
            "wf",
            vec![
                job("a", &[], JobState::Queued),
                job("b", &["a"], JobState::Pending),
                job("c", &[], JobState::Queued),
            ],
        );
        new.owner = Some(dead_owner());
        let (lost_run, ids) = store.create_run(&new).unwrap();
        let (alive_run, alive_ids) = store
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        let now = Utc::now();
        store
            .apply(&[
                Transition::new(ids[0], JobState::Running, now)
                    .kill_token("tok-a")
                    .into(),
                Transition::new(alive_ids[0], JobState::Running, now).into(),
            ])
            .unwrap();

        let lost = store.recover_lost(&owner_is_alive).unwrap();
        assert_eq!(lost.runs, vec![(lost_run, new.owner.clone().unwrap())]);
        let lost = lost.jobs;
        assert_eq!(lost.len(), 1);
        assert_eq!((lost[0].job, lost[0].run), (ids[0], lost_run));
        assert_eq!(lost[0].kill_token.as_deref(), Some("tok-a"));

        let run_record = store.run(lost_run).unwrap().unwrap();
        assert_eq!(run_record.status, RunState::Failed);
        assert_eq!(run_record.reason.as_deref(), Some(REASON_LOST));
        let jobs = store.jobs(lost_run).unwrap();
        assert_eq!(jobs[0].status, JobState::Failed);
        assert_eq!(jobs[0].reason.as_deref(), Some(REASON_LOST));
        assert_eq!(jobs[0].history[0].status, JobState::Failed);
        assert_eq!(jobs[0].history[0].reason.as_deref(), Some(REASON_LOST));
        assert!(jobs[0].history[0].finished_at.is_some());
        assert_eq!(jobs[1].status, JobState::Cancelled);
        assert_eq!(jobs[2].status, JobState::Cancelled);

        // The live owner's run is untouched, and a second pass finds nothing.
        assert_eq!(
            store.run(alive_run).unwrap().unwrap().status,
            RunState::Running
        );
        assert_eq!(
            store.recover_lost(&owner_is_alive).unwrap(),
            Default::default()
        );

        // Two stores recovering at once fail a dead run exactly once.
        let mut again = run("wf", vec![job("a", &[], JobState::Queued)]);
        again.owner = Some(dead_owner());
        let (_, again_ids) = store.create_run(&again).unwrap();
        store
            .apply(&[Transition::new(again_ids[0], JobState::Running, now).into()])
            .unwrap();
        let other = PgStore::open(&url).unwrap();
        let dead_pid = again.owner.as_ref().unwrap().pid;
        let is_alive = |owner: &Owner| owner.pid != dead_pid;
        let (first, second) = std::thread::scope(|scope| {
            let one = scope.spawn(|| store.recover_lost(&is_alive));
            let two = scope.spawn(|| other.recover_lost(&is_alive));
            (one.join().unwrap().unwrap(), two.join().unwrap().unwrap())
        });
        assert_eq!(first.jobs.len() + second.jobs.len(), 1);
        assert_eq!(first.runs.len() + second.runs.len(), 1);
        assert_eq!(store.attempts(again_ids[0]).unwrap().len(), 1);
    }
}
