//! `coreflow retry`: putting finished jobs of a finished run back to `pending`, keeping their
//! attempts in history, and reopening the run under a new owner.

use rusqlite::{Connection, OptionalExtension, params};

use crate::state::{JobId, JobState, RunId, RunState};
use crate::store::error::Error;
use crate::store::owner::Owner;

use super::read::parse_state;
use super::to_sql_u64;
use super::write::run_status;

pub(super) fn reset_for_retry(
    tx: &Connection,
    run: RunId,
    jobs: &[JobId],
    owner: Option<&Owner>,
) -> Result<(), Error> {
    // Queued until a job starts, whoever runs it (SPEC §3).
    let reopened = RunState::Queued;
    let from = run_status(tx, run)?;
    if !from.is_terminal() {
        return Err(Error::IllegalRunTransition {
            run,
            from,
            to: reopened,
        });
    }
    for &job in jobs {
        // A job of another run counts as not found.
        let (name, status): (String, String) = tx
            .prepare_cached("SELECT name, status FROM jobs WHERE id = ?1 AND run_id = ?2")?
            .query_row(params![job.0, run.0], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
            .ok_or(Error::JobNotFound(job))?;
        let state: JobState = parse_state(&status)?;
        if !state.is_terminal() {
            return Err(Error::NotFinished { job, name, state });
        }
        tx.prepare_cached(
            "UPDATE jobs SET status = 'pending', reason = NULL, exit_code = NULL,
                 queued_at = NULL, started_at = NULL, finished_at = NULL, duration_ms = NULL,
                 peak_rss_bytes = NULL, cpu_ms = NULL, kill_token = NULL, cancel_requested = 0,
                 attempts_before_retry = attempts
             WHERE id = ?1",
        )?
        .execute([job.0])?;
        tx.prepare_cached("DELETE FROM outputs WHERE job_id = ?1")?
            .execute([job.0])?;
    }
    tx.prepare_cached(
        "UPDATE runs SET status = ?2, reason = NULL, finished_at = NULL, cancel_requested = 0,
             owner_pid = ?3, owner_start = ?4, owner_host = ?5,
             notify_state = CASE WHEN notify_state IS NULL THEN NULL ELSE 'pending' END
         WHERE id = ?1",
    )?
    .execute(params![
        run.0,
        reopened.as_str(),
        owner.map(|owner| owner.pid),
        owner.map(|owner| to_sql_u64(owner.start_time)),
        owner.map(|owner| owner.host.as_str()),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::test_support::{job, run, store};
    use crate::state::{JobState, RunState};
    use crate::store::error::Error;
    use crate::store::owner::Owner;
    use crate::store::runs::{RunStore, RunTransition, Transition};

    #[test]
    fn reset_for_retry_reopens_the_run_and_keeps_history() {
        let (_dir, store) = store();
        let (run_id, ids) = store
            .create_run(&run(
                "wf",
                vec![
                    job("a", &[], JobState::Queued),
                    job("b", &["a"], JobState::Pending),
                ],
            ))
            .unwrap();
        let (a, b) = (ids[0], ids[1]);
        let now = Utc::now();
        store
            .apply(&[
                Transition::new(a, JobState::Running, now).into(),
                Transition::new(a, JobState::Failed, now)
                    .exit_code(1)
                    .into(),
                Transition::new(b, JobState::Cancelled, now).into(),
            ])
            .unwrap();
        // A run still running cannot be retried.
        assert!(matches!(
            store.reset_for_retry(run_id, &[a, b], Some(&Owner::current())),
            Err(Error::IllegalRunTransition { .. })
        ));
        store
            .apply(&[RunTransition {
                run: run_id,
                to: RunState::Failed,
                at: now,
                reason: None,
            }
            .into()])
            .unwrap();

        let new_owner = Owner {
            pid: 1,
            start_time: 7,
            host: "elsewhere".into(),
        };
        store
            .reset_for_retry(run_id, &[a, b], Some(&new_owner))
            .unwrap();
        let record = store.run(run_id).unwrap().unwrap();
        // Queued until its owner starts a job.
        assert_eq!(record.status, RunState::Queued);
        assert_eq!(record.finished_at, None);
        assert_eq!(record.owner, Some(new_owner));
        let job_a = store.job(a).unwrap().unwrap();
        assert_eq!(job_a.status, JobState::Pending);
        assert_eq!((job_a.attempts, job_a.attempts_before_retry), (1, 1));
        assert_eq!(job_a.exit_code, None);
        assert_eq!(job_a.history.len(), 1);

        store
            .apply(&[
                Transition::new(a, JobState::Queued, now).into(),
                Transition::new(a, JobState::Running, now).into(),
            ])
            .unwrap();
        assert_eq!(store.job(a).unwrap().unwrap().history[1].number, 2);
        assert!(matches!(
            store.reset_for_retry(run_id, &[a], None),
            Err(Error::IllegalRunTransition { .. })
        ));
    }
}
