//! [`TriggerStore`]: what the daemon remembers of each JobTrigger across restarts, so that a
//! schedule never fires twice for one instant, a file never fires twice for one version, and
//! a fire waiting for a run slot (`on_overlap: queue`) survives a restart.

use chrono::{DateTime, Utc};

use super::error::Error;

/// A trigger's remembered state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerState {
    /// When the daemon first saw the trigger.
    pub first_seen: DateTime<Utc>,
    /// The instant it last fired for (time-based triggers).
    pub last_fire: Option<DateTime<Utc>>,
    /// Event triggers' cursor (`after`: the last run id looked at).
    pub cursor: Option<i64>,
    /// Whether this call saw the trigger for the first time (and created its state).
    pub new: bool,
}

/// A file a file trigger has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenFile {
    pub path: String,
    pub mtime_ms: i64,
    pub size: u64,
}

/// A trigger fire waiting for a run slot of its workflow (`on_overlap: queue`).
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingFire {
    /// Its place in line (increasing).
    pub id: i64,
    pub workflow: String,
    /// The trigger record its run will carry.
    pub trigger: serde_json::Value,
    /// The trigger's parameters (an object of texts).
    pub params: serde_json::Value,
    pub queued_at: DateTime<Utc>,
}

/// A time trigger's instant, claimed in the transaction that records what it fired (its run,
/// a skipped run, or its place in the line for a run slot): the trigger's `last_fire` moves
/// to `at` there, and only forward, so an instant fires once whichever daemon fires it, and
/// a crash before the run exists leaves the instant unfired for the next leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireClaim {
    pub workflow: String,
    /// The trigger's key (see [`TriggerStore::trigger_state`]).
    pub key: String,
    pub at: DateTime<Utc>,
}

impl FireClaim {
    /// The error of a claim that found its instant taken.
    pub(crate) fn taken(&self) -> Error {
        Error::AlreadyFired {
            workflow: self.workflow.clone(),
            key: self.key.clone(),
            at: self.at,
        }
    }
}

/// Persistence of trigger state.
pub trait TriggerStore {
    /// The state of a trigger, created (first seen now) when new.
    fn trigger_state(
        &self,
        workflow: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<TriggerState, Error>;
    /// Records that a time trigger's instants up to `at` are gone by (only moves forward):
    /// those `catchup` passes over. A fired instant is recorded with its run ([`FireClaim`]).
    fn set_last_fire(&self, workflow: &str, key: &str, at: DateTime<Utc>) -> Result<(), Error>;
    /// Records an event trigger's cursor.
    fn set_cursor(&self, workflow: &str, key: &str, cursor: i64) -> Result<(), Error>;
    /// The files a file trigger has seen.
    fn seen_files(&self, workflow: &str, key: &str) -> Result<Vec<SeenFile>, Error>;
    /// Records files as seen (fired, or present at the first sighting).
    fn mark_files(&self, workflow: &str, key: &str, files: &[SeenFile]) -> Result<(), Error>;
    /// Runs of `workflow` that ended, with an id above `after`: `(id, status)`.
    fn finished_runs_after(&self, workflow: &str, after: i64) -> Result<Vec<(i64, String)>, Error>;
    /// The highest run id so far (0 when none).
    fn max_run_id(&self) -> Result<i64, Error>;
    /// Puts a fire in line for a run slot; returns its id. With `fire`, claims that instant
    /// in the same transaction ([`Error::AlreadyFired`] when it was claimed before).
    fn push_waiting(
        &self,
        workflow: &str,
        trigger: &serde_json::Value,
        params: &serde_json::Value,
        at: DateTime<Utc>,
        fire: Option<&FireClaim>,
    ) -> Result<i64, Error>;
    /// Every fire in line, oldest first.
    fn waiting_fires(&self) -> Result<Vec<WaitingFire>, Error>;
    /// Takes a fire out of line; `false` when it was not there.
    fn take_waiting(&self, id: i64) -> Result<bool, Error>;
}

/// Checks every store must pass, run by each store's tests.
#[cfg(test)]
pub(crate) mod conformance {
    use chrono::{TimeDelta, TimeZone, Utc};
    use serde_json::json;

    use super::FireClaim;
    use crate::state::RunState;
    use crate::store::{Environment, Error, NewRun, RunFilter};

    fn run(fire: Option<FireClaim>) -> NewRun {
        NewRun {
            workflow: "wf".into(),
            def_hash: "hash".into(),
            params: json!({}),
            trigger: json!({"type": "schedule"}),
            fire,
            status: RunState::Queued,
            reason: None,
            owner: None,
            created_at: Utc::now(),
            jobs: Vec::new(),
            parent: None,
            notify: false,
        }
    }

    /// An instant is claimed once, with the run (or place in line) it creates; a refused
    /// claim creates nothing; an instant not past the last one is refused.
    pub(crate) fn a_fire_is_claimed_once_with_what_it_creates(env: &dyn Environment) {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        let claim = |at| FireClaim {
            workflow: "wf".into(),
            key: "0:schedule".into(),
            at,
        };
        // A trigger the store has not seen yet is claimed too (its state is created).
        env.create_run(&run(Some(claim(t0)))).unwrap();
        let again = env.create_run(&run(Some(claim(t0))));
        assert!(
            matches!(again, Err(Error::AlreadyFired { at, .. }) if at == t0),
            "{again:?}"
        );
        let older = env.create_run(&run(Some(claim(t0 - TimeDelta::hours(1)))));
        assert!(
            matches!(older, Err(Error::AlreadyFired { .. })),
            "{older:?}"
        );
        let t1 = t0 + TimeDelta::hours(1);
        env.push_waiting("wf", &json!({}), &json!({}), t1, Some(&claim(t1)))
            .unwrap();
        let twice = env.push_waiting("wf", &json!({}), &json!({}), t1, Some(&claim(t1)));
        assert!(
            matches!(twice, Err(Error::AlreadyFired { .. })),
            "{twice:?}"
        );
        let runs = env
            .runs(&RunFilter {
                workflow: Some("wf".into()),
                status: None,
                limit: None,
                before: None,
            })
            .unwrap();
        assert_eq!(runs.len(), 1, "refused claims created no run");
        assert_eq!(env.waiting_fires().unwrap().len(), 1);
        let state = env.trigger_state("wf", "0:schedule", t1).unwrap();
        assert_eq!(state.last_fire, Some(t1));
        assert!(!state.new);
    }
}
