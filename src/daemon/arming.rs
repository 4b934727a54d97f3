//! Arming a trigger: reading what the environment remembers of it, applying `catchup` to the
//! instants that fell due while no daemon was running, and noting the files present when a
//! file trigger is first seen.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use tracing::{error, info, warn};

use crate::daemon::armed::{
    Armed, Kind, catchup_choice, describe_time, scan, time_kind, time_record, trigger_key,
};
use crate::daemon::firing::{Daemon, Fired};
use crate::spec::Loaded;
use crate::spec::model::{DurationSpec, Trigger};
use crate::store::{FireClaim, RunFilter};
use crate::triggers::TimeTrigger;

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
                        // Each instant is claimed with its run, oldest first; then the ones
                        // catchup passes over are recorded as gone by.
                        for fire in chosen {
                            let record = time_record(kind, index, &spec, &fire, true);
                            let claim = FireClaim {
                                workflow: loaded.name.clone(),
                                key: key.clone(),
                                at: fire.at,
                            };
                            if self.fire(&loaded.name, record, params.clone(), now, Some(claim))
                                == Fired::Retry
                            {
                                return None;
                            }
                        }
                        if let Err(err) = self.store.set_last_fire(&loaded.name, &key, newest.at) {
                            error!(workflow = %loaded.name, error = %err, "cannot record catchup; trigger not armed");
                            return None;
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
                before: None,
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
