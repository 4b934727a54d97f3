//! One armed trigger ([`Armed`]): what the daemon keeps of a trigger between turns, and the
//! pure helpers of arming (`catchup`'s choice, time records, scanning a file trigger's glob).
//! Arming itself, which reads and writes the environment, is `arming.rs`.
//!
//! A trigger is identified by its workflow and a key made of its position and its text, so
//! an edit that changes a trigger starts it afresh, while an edit elsewhere in the file keeps
//! its state (no instant fires twice because the file changed).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde_json::json;

use crate::spec::model::{AfterStatus, Catchup, Trigger};
use crate::store::SeenFile;
use crate::triggers::{Fire, TimeTrigger};

/// One armed trigger of one workflow.
pub(super) struct Armed {
    pub(super) workflow: String,
    /// The trigger's position in the workflow's `triggers:`.
    pub(super) index: usize,
    pub(super) key: String,
    pub(super) params: IndexMap<String, String>,
    pub(super) kind: Kind,
}

/// What an armed trigger watches.
pub(super) enum Kind {
    /// `schedule`, `every`, `at`: the next instant it falls due.
    Time {
        trigger: Box<TimeTrigger>,
        next: Option<Fire>,
        /// `schedule`, `every` or `at`, for the run's trigger record.
        kind: &'static str,
        /// The trigger as written, for the run's trigger record.
        spec: String,
    },
    /// `file`: new or changed files matching an absolute glob.
    File {
        pattern: String,
        settle: Duration,
        /// The version each file last fired for (or was present at the first sighting).
        seen: HashMap<String, (i64, u64)>,
        /// Files seen changed, waiting to stay unchanged for `settle`.
        settling: HashMap<String, (i64, u64, Instant)>,
    },
    /// `after`: another workflow's runs ending.
    After {
        workflow: String,
        status: AfterStatus,
        /// Every run of `workflow` up to here has ended and been looked at.
        cursor: i64,
        /// Runs above the cursor already looked at.
        fired: HashSet<i64>,
    },
    /// `datablock`: new versions of a DataBlock, after the publish sequence number `cursor`.
    DataBlock { name: String, cursor: i64 },
}

/// A key that changes when the trigger's meaning changes, so an edited trigger starts fresh.
pub(super) fn trigger_key(index: usize, trigger: &Trigger) -> String {
    let what = serde_json::to_string(trigger).unwrap_or_default();
    format!("{index}:{what}")
}

/// The trigger as written, for logs and the run's trigger record.
pub(super) fn describe_time(trigger: &Trigger) -> String {
    if let Some(schedule) = &trigger.schedule {
        format!(
            "{schedule} ({})",
            trigger.timezone.as_deref().unwrap_or("UTC")
        )
    } else if let Some(every) = &trigger.every {
        format!("every {}", humantime::format_duration(every.get()))
    } else if let Some(at) = &trigger.at {
        format!("at {at}")
    } else {
        String::new()
    }
}

pub(super) fn time_kind(trigger: &Trigger) -> &'static str {
    if trigger.schedule.is_some() {
        "schedule"
    } else if trigger.every.is_some() {
        "every"
    } else {
        "at"
    }
}

/// The trigger record of a time-based fire.
pub(super) fn time_record(
    kind: &str,
    index: usize,
    spec: &str,
    fire: &Fire,
    catchup: bool,
) -> serde_json::Value {
    let mut record = json!({
        "type": kind,
        "trigger": index,
        "spec": spec,
        "scheduled_for": fire.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(note) = fire.note {
        record["dst"] = json!(format!("{note:?}"));
    }
    if catchup {
        record["catchup"] = json!(true);
    }
    record
}

/// Which of the fires owed to a trigger `catchup` keeps.
pub(super) fn catchup_choice(catchup: Catchup, owed: &[Fire]) -> Vec<Fire> {
    match catchup {
        Catchup::None => Vec::new(),
        Catchup::Latest => owed.last().copied().into_iter().collect(),
        Catchup::All => owed.to_vec(),
    }
}

/// The files matching a glob, with their modification time and size.
pub(super) fn scan(pattern: &str) -> Vec<SeenFile> {
    let Ok(paths) = glob::glob(pattern) else {
        return Vec::new();
    };
    paths
        .flatten()
        .filter_map(|path| {
            let meta = std::fs::metadata(&path)
                .ok()
                .filter(std::fs::Metadata::is_file)?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            Some(SeenFile {
                path: Path::new(&path).display().to_string(),
                mtime_ms: mtime,
                size: meta.len(),
            })
        })
        .collect()
}
