//! [`RunStore`] for [`PgStore`]: definitions, runs, jobs, attempts, steps and outputs, with
//! the records, errors and ordering of the SQLite store.
//!
//! Writes run in one transaction after the environment's write lock, reads in one
//! repeatable-read snapshot each. The SQL lives beside the SQLite store's, in files of the
//! same names: `write.rs`, `read.rs`, `cancel.rs`, `retry.rs`, `recover.rs`.

use std::collections::BTreeMap;

use crate::state::{JobId, RunId};
use crate::store::error::Error;
use crate::store::owner::Owner;
use crate::store::runs::{
    AttemptRecord, CancelOutcome, CancelRequests, Change, Definition, JobFilter, JobRecord,
    NewDefinition, NewRun, NotificationRecord, Recovered, RunFilter, RunRecord, RunStore,
};

use super::{PgStore, cancel, notifications, read, recover, retry, write};

impl RunStore for PgStore {
    fn claim_notifications(&self, run: RunId) -> Result<bool, Error> {
        self.write(|tx| notifications::claim(tx, run))
    }

    fn pending_notifications(&self, limit: usize) -> Result<Vec<RunId>, Error> {
        self.read(|tx| notifications::pending(tx, limit))
    }

    fn record_notification(&self, record: &NotificationRecord) -> Result<(), Error> {
        self.write(|tx| notifications::record(tx, record))
    }

    fn notifications(&self, run: RunId) -> Result<Vec<NotificationRecord>, Error> {
        self.read(|tx| notifications::list(tx, run))
    }

    fn save_definition(&self, definition: &NewDefinition<'_>) -> Result<(), Error> {
        self.write(|tx| write::save_definition(tx, definition))
    }

    fn definition(&self, name: &str) -> Result<Option<Definition>, Error> {
        self.read(|tx| read::definition(tx, name, None))
    }

    fn definition_version(&self, name: &str, hash: &str) -> Result<Option<Definition>, Error> {
        self.read(|tx| read::definition(tx, name, Some(hash)))
    }

    fn definitions(&self) -> Result<Vec<Definition>, Error> {
        self.read(read::definitions)
    }

    fn create_run(&self, run: &NewRun) -> Result<(RunId, Vec<JobId>), Error> {
        self.write(|tx| write::create_run(tx, run))
    }

    fn add_jobs(&self, run: RunId, jobs: &[crate::store::NewJob]) -> Result<Vec<JobId>, Error> {
        let created = super::to_ms(self.clock().now());
        self.write(|tx| write::insert_jobs(tx, run, jobs, created))
    }

    fn apply(&self, changes: &[Change]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        self.write(|tx| write::apply(tx, changes))
    }

    fn claim_run(&self, run: RunId, owner: &Owner) -> Result<bool, Error> {
        self.write(|tx| write::claim_run(tx, run, owner))
    }

    fn run(&self, id: RunId) -> Result<Option<RunRecord>, Error> {
        self.read(|tx| read::run(tx, id))
    }

    fn latest_run(&self) -> Result<Option<RunRecord>, Error> {
        self.read(read::latest_run)
    }

    fn resolve_run(&self, reference: &str) -> Result<Option<RunRecord>, Error> {
        self.read(|tx| read::resolve_run(tx, reference))
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
        self.read(|tx| read::runs(tx, filter))
    }

    fn jobs(&self, run: RunId) -> Result<Vec<JobRecord>, Error> {
        self.read(|tx| read::jobs(tx, read::Scope::Run(run)))
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>, Error> {
        self.read(|tx| Ok(read::jobs(tx, read::Scope::Job(id))?.pop()))
    }

    fn resolve_job(&self, reference: &str) -> Result<Option<JobRecord>, Error> {
        self.read(|tx| read::resolve_job(tx, reference))
    }

    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, Error> {
        self.read(|tx| read::list_jobs(tx, filter))
    }

    fn attempts(&self, job: JobId) -> Result<Vec<AttemptRecord>, Error> {
        self.read(|tx| read::attempts(tx, job))
    }

    fn outputs(&self, job: JobId) -> Result<BTreeMap<String, String>, Error> {
        self.read(|tx| read::outputs(tx, job))
    }

    fn request_cancel_run(&self, run: RunId) -> Result<CancelOutcome, Error> {
        let now = self.now();
        self.write(|tx| cancel::request_cancel_run(tx, run, now))
    }

    fn request_cancel_job(&self, job: JobId) -> Result<CancelOutcome, Error> {
        let now = self.now();
        self.write(|tx| cancel::request_cancel_job(tx, job, now))
    }

    fn take_cancel_requests(&self, run: RunId) -> Result<CancelRequests, Error> {
        // The common answer is "nothing": find that out without taking the write lock.
        let pending = self.read(|tx| read::cancel_requests(tx, run))?;
        if pending.is_empty() {
            return Ok(pending);
        }
        self.write(|tx| cancel::take_cancel_requests(tx, run))
    }

    fn reset_for_retry(
        &self,
        run: RunId,
        jobs: &[JobId],
        owner: Option<&Owner>,
    ) -> Result<(), Error> {
        self.write(|tx| retry::reset_for_retry(tx, run, jobs, owner))
    }

    fn recover_lost(&self, is_alive: &dyn Fn(&Owner) -> bool) -> Result<Recovered, Error> {
        // Look for dead owners without the write lock first: nearly always there are none.
        // `is_alive` runs outside any transaction (and on the caller's thread), so it may use
        // the store itself.
        let active = self.read(read::owned_active_runs)?;
        let dead: Vec<(RunId, Owner)> = active
            .into_iter()
            .filter(|(_, owner)| !is_alive(owner))
            .collect();
        if dead.is_empty() {
            return Ok(Recovered::default());
        }
        let now = self.now();
        self.write(|tx| recover::recover_lost(tx, &dead, now))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use chrono::Utc;

    use super::super::PgStore;
    use super::super::test_support::{fresh_url, store};
    use crate::state::{JobState, RunId};
    use crate::store::runs::{Change, RunFilter, RunStore, StepRecord, Transition};
    use crate::store::test_support::{job, run};

    #[test]
    fn creates_the_environment_and_reopens_it() {
        let url = fresh_url();
        let first = PgStore::open(&url).unwrap();
        let (id, _) = first
            .create_run(&run("wf", vec![job("a", &[], JobState::Queued)]))
            .unwrap();
        drop(first);

        let again = PgStore::open(&url).unwrap();
        assert_eq!(again.run(id).unwrap().unwrap().workflow, "wf");
        let (next, _) = again.create_run(&run("wf", vec![])).unwrap();
        assert_eq!(next, RunId(id.0 + 1));
    }

    #[test]
    fn two_processes_worth_of_writers_do_not_lock_each_other_out() {
        let url = Arc::new(fresh_url());
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let url = Arc::clone(&url);
                std::thread::spawn(move || {
                    // Each thread opens its own connection.
                    let store = PgStore::open(&url).unwrap();
                    let mut ids = Vec::new();
                    for n in 0..200 {
                        let name = format!("w{worker}");
                        let jobs = vec![job("a", &[], JobState::Queued)];
                        let (id, job_ids) = store.create_run(&run(&name, jobs)).unwrap();
                        if n % 4 == 0 {
                            let t = Transition::new(job_ids[0], JobState::Running, Utc::now());
                            store.apply(&[t.into()]).unwrap();
                            store.recover_lost(&|_| true).unwrap();
                        }
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        let mut ids: Vec<RunId> = workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 400);
        let store = PgStore::open(&url).unwrap();
        let all = store.runs(&RunFilter::default()).unwrap();
        assert_eq!(all.len(), 400);
    }

    /// Not an assertion: prints what a 1,000-job run costs.
    #[test]
    fn measure_a_thousand_job_run() {
        for batch_jobs in [1, 100] {
            let store = store();
            let jobs: Vec<_> = (0..1000)
                .map(|n| job(&format!("job{n}"), &[], JobState::Pending))
                .collect();
            let started = Instant::now();
            let (run_id, ids) = store.create_run(&run("bench", jobs)).unwrap();
            let create = started.elapsed();

            let started = Instant::now();
            let mut transactions = 0;
            for chunk in ids.chunks(batch_jobs) {
                let now = Utc::now();
                let mut changes = Vec::with_capacity(chunk.len() * 5);
                for &id in chunk {
                    changes.push(Change::from(Transition::new(id, JobState::Queued, now)));
                    changes.push(
                        Transition::new(id, JobState::Running, now)
                            .kill_token("t")
                            .into(),
                    );
                    changes.push(Change::Step(StepRecord {
                        job: id,
                        attempt: 1,
                        index: 0,
                        name: "step".into(),
                        status: JobState::Succeeded,
                        exit_code: Some(0),
                        started_at: Some(now),
                        finished_at: Some(now),
                    }));
                    changes.push(Change::Output {
                        job: id,
                        key: "rows".into(),
                        value: "1".into(),
                    });
                    changes.push(
                        Transition::new(id, JobState::Succeeded, now)
                            .exit_code(0)
                            .usage(1 << 20, 3)
                            .into(),
                    );
                }
                store.apply(&changes).unwrap();
                transactions += 1;
            }
            let apply = started.elapsed();

            let started = Instant::now();
            let loaded = store.jobs(run_id).unwrap();
            let query = started.elapsed();
            assert_eq!(loaded.len(), 1000);
            assert!(loaded.iter().all(|job| job.status == JobState::Succeeded));
            println!(
                "PostgreSQL, 1,000-job run: create {create:?}; 5,000 changes in {transactions} \
                 transactions of {batch_jobs} job(s): {apply:?} ({:.1} µs per change); load all \
                 jobs: {query:?}",
                apply.as_secs_f64() * 1e6 / 5000.0
            );
        }
    }
}
