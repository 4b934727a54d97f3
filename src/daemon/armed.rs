//! One armed trigger ([`Armed`]) and arming it: reading what the environment remembers of the
//! trigger, applying `catchup` to the instants that fell due while no daemon was running,
//! and noting the files present when a file trigger is first seen.
//!
//! A trigger is identified by its workflow and a key made of its position and its text, so
//! an edit that changes a trigger starts it afresh, while an edit elsewhere in the file keeps
//! its state (no instant fires twice because the file changed).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::json;
use tracing::{error, info, warn};

use crate::daemon::firing::Daemon;
use crate::spec::Loaded;
use crate::spec::model::{AfterStatus, Catchup, DurationSpec, Trigger};
use crate::store::{RunFilter, SeenFile};
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
fn describe_time(trigger: &Trigger) -> String {
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

fn time_kind(trigger: &Trigger) -> &'static str {
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

impl Daemon {
    /// Arms one trigger of `loaded`, firing what `catchup` owes after downtime.
    pub(super) fn arm(
        &mut self,
        loaded: &Loaded,
        index: usize,
        trigger: &Trigger,
        now: DateTime<Utc>,
    ) -> Option<Armed> {
        let key = trigger_key(index, trigger);
        let state = match self.store.trigger_state(&loaded.name, &key, now) {
            Ok(state) => state,
            Err(err) => {
                error!(workflow = %loaded.name, trigger = index, error = %err, "cannot read trigger state; trigger not armed");
                return None;
            }
        };
        let params: IndexMap<String, String> = trigger
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
            .collect();
        let kind = match TimeTrigger::from_spec(trigger, state.first_seen) {
            Ok(Some(time)) => {
                let spec = describe_time(trigger);
                let kind = time_kind(trigger);
                // What fell due while no daemon ran: catchup decides.
                if let Some(last) = state.last_fire {
                    let owed = time.fires_between(last, now);
                    if let Some(newest) = owed.last() {
                        let catchup = loaded.workflow.catchup.unwrap_or_default();
                        let chosen = catchup_choice(catchup, &owed);
                        info!(
                            workflow = %loaded.name,
                            trigger = index,
                            missed = owed.len(),
                            firing = chosen.len(),
                            catchup = ?catchup,
                            "catchup after downtime"
                        );
                        // Persisted before any run exists: a crash now loses these fires at
                        // worst, and never repeats them.
                        if let Err(err) = self.store.set_last_fire(&loaded.name, &key, newest.at) {
                            error!(workflow = %loaded.name, error = %err, "cannot record catchup; trigger not armed");
                            return None;
                        }
                        for fire in chosen {
                            let record = time_record(kind, index, &spec, &fire, true);
                            self.fire(&loaded.name, record, params.clone(), now);
                        }
                    }
                }
                let after = state.last_fire.map_or(now, |l| l.max(now));
                Kind::Time {
                    next: time.next_fire(after),
                    trigger: Box::new(time),
                    kind,
                    spec,
                }
            }
            Ok(None) => {
                if let Some(file) = &trigger.file {
                    let pattern = loaded.dir.join(&file.path).display().to_string();
                    if state.new {
                        // Files present when the trigger is first seen do not fire.
                        let present = scan(&pattern);
                        if let Err(err) = self.store.mark_files(&loaded.name, &key, &present) {
                            error!(workflow = %loaded.name, error = %err, "cannot record present files; trigger not armed");
                            return None;
                        }
                    }
                    let seen = match self.store.seen_files(&loaded.name, &key) {
                        Ok(seen) => seen
                            .into_iter()
                            .map(|f| (f.path, (f.mtime_ms, f.size)))
                            .collect(),
                        Err(err) => {
                            error!(workflow = %loaded.name, error = %err, "cannot read seen files; trigger not armed");
                            return None;
                        }
                    };
                    Kind::File {
                        pattern,
                        settle: file
                            .settle
                            .as_ref()
                            .map_or(Duration::ZERO, DurationSpec::get),
                        seen,
                        settling: HashMap::new(),
                    }
                } else if let Some(after) = &trigger.after {
                    let cursor = match state.cursor {
                        Some(cursor) => cursor,
                        None => {
                            // Only runs that end from now on count.
                            let max = self.store.max_run_id().unwrap_or(0);
                            let _ = self.store.set_cursor(&loaded.name, &key, max);
                            max
                        }
                    };
                    Kind::After {
                        workflow: after.workflow.clone(),
                        status: after.status,
                        cursor,
                        fired: self.fired_after(&loaded.name, index, &after.workflow, cursor),
                    }
                } else if let Some(block) = &trigger.datablock {
                    let cursor = match state.cursor {
                        Some(cursor) => cursor,
                        None => {
                            // Versions that exist when the trigger is first seen do not fire.
                            let seq = match self.store.block_seq() {
                                Ok(seq) => seq,
                                Err(err) => {
                                    error!(workflow = %loaded.name, error = %err, "cannot read the DataBlock registry; trigger not armed");
                                    return None;
                                }
                            };
                            let _ = self.store.set_cursor(&loaded.name, &key, seq);
                            seq
                        }
                    };
                    Kind::DataBlock {
                        name: block.clone(),
                        cursor,
                    }
                } else {
                    warn!(workflow = %loaded.name, trigger = index, "a trigger of no known kind; not armed");
                    return None;
                }
            }
            Err(err) => {
                warn!(workflow = %loaded.name, trigger = index, error = %err, "trigger not armed");
                return None;
            }
        };
        Some(Armed {
            workflow: loaded.name.clone(),
            index,
            key,
            params,
            kind,
        })
    }

    /// The upstream runs above `cursor` that trigger `index` of `workflow` already fired
    /// for: a run's trigger record names them, so a restart does not fire them again.
    fn fired_after(
        &self,
        workflow: &str,
        index: usize,
        upstream: &str,
        cursor: i64,
    ) -> HashSet<i64> {
        let runs = self
            .store
            .runs(&RunFilter {
                workflow: Some(workflow.to_owned()),
                status: None,
                limit: Some(10_000),
            })
            .unwrap_or_default();
        runs.iter()
            .filter(|run| {
                run.trigger["type"] == "after"
                    && run.trigger["trigger"] == index
                    && run.trigger["workflow"] == upstream
            })
            .filter_map(|run| run.trigger["run"].as_i64())
            .filter(|id| *id > cursor)
            .collect()
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
