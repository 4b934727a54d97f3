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

/// Persistence of trigger state.
pub trait TriggerStore {
    /// The state of a trigger, created (first seen now) when new.
    fn trigger_state(
        &self,
        workflow: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<TriggerState, Error>;
    /// Records that time triggers fired, each for its instant (only moves forward), in one
    /// transaction: `(workflow, trigger key, instant)`.
    fn set_last_fires(&self, fires: &[(&str, &str, DateTime<Utc>)]) -> Result<(), Error>;
    /// Records that a time trigger fired for `at` (only moves forward).
    fn set_last_fire(&self, workflow: &str, key: &str, at: DateTime<Utc>) -> Result<(), Error> {
        self.set_last_fires(&[(workflow, key, at)])
    }
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
    /// Puts a fire in line for a run slot; returns its id.
    fn push_waiting(
        &self,
        workflow: &str,
        trigger: &serde_json::Value,
        params: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<i64, Error>;
    /// Every fire in line, oldest first.
    fn waiting_fires(&self) -> Result<Vec<WaitingFire>, Error>;
    /// Takes a fire out of line; `false` when it was not there.
    fn take_waiting(&self, id: i64) -> Result<bool, Error>;
}
