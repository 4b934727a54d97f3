//! [`JobRt`]: a job of a run as a coordinator tracks it in memory, made by
//! `setup::runtime_jobs` for a new run and by `setup::plan_repair` for a repaired one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::state::{JobId, JobState};

/// One job of the run as the coordinator tracks it.
#[derive(Debug, Clone)]
pub struct JobRt {
    pub id: JobId,
    pub name: String,
    pub base: String,
    pub matrix: IndexMap<String, String>,
    /// A `for_each` item's record (`{"index": 0, "value": …}`), else `Value::Null`.
    pub item: serde_json::Value,
    /// Indexes of needed jobs in the run's job list.
    pub needs: Vec<usize>,
    pub state: JobState,
    /// Attempts made so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: i64,
    /// The JobQueue it waits in.
    pub queue: String,
    pub outputs: BTreeMap<String, String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// From the first attempt's start to the last attempt's end, retry delays included: the
    /// span `show` prints as the job's duration (`None` for a job that never started).
    pub duration: Option<Duration>,
    /// When the first attempt started.
    pub first_started: Option<Instant>,
}
