//! [`Daemon`]: the daemon's state and its steps, each given the current instant by the loop
//! (so that tests drive them with a manual clock):
//!
//! - [`Daemon::reload`]: rescan the folder, re-arm the triggers of workflows that changed.
//! - [`Daemon::fire_due`]: fire the time triggers that are due. Each instant is claimed in
//!   the transaction that creates its run, so it fires once whichever daemon leads.
//! - [`Daemon::watch_events`]: file arrivals and other workflows' runs ending.
//! - [`Daemon::housekeeping`]: re-queue the jobs of workers whose lease expired.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{error, info, warn};

use crate::daemon::armed::{Armed, Kind, catchup_choice, scan, time_record};
use crate::daemon::catalog::Catalog;
use crate::engine::definition::load_run_definition;
use crate::engine::queued::advance_run;
use crate::spec::Loaded;
use crate::spec::model::{AfterStatus, ParamType};
use crate::store::Env;
use crate::store::{FireClaim, RunFilter, SeenFile};
use crate::triggers::Fire;

/// The daemon's valid workflows by name, shared with the API.
pub(super) type Workflows = Arc<RwLock<BTreeMap<String, Arc<Loaded>>>>;

/// What became of a fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fired {
    /// Admitted: a run, a skipped run, or a place in line; or refused for good (bad
    /// parameters, the workflow gone), with a log line.
    Done,
    /// Its instant was claimed before, by another daemon.
    Already,
    /// The environment failed; nothing was recorded, and the fire is to be tried again.
    Retry,
}

/// The daemon's state, owned by its loop.
pub(super) struct Daemon {
    pub(super) store: Env,
    pub(super) catalog: Catalog,
    pub(super) workflows: Workflows,
    pub(super) armed: Vec<Armed>,
    /// Whether the folder has been loaded once.
    loaded: bool,
    /// Whether this daemon leads the environment and so arms and fires triggers; a daemon
    /// standing by loads the folder for the API only.
    leading: bool,
    /// Whether every trigger is to be armed again from what the environment remembers (this
    /// daemon just became the leader: another one fired meanwhile).
    rearm: bool,
}

impl Daemon {
    /// A daemon for the workflow folder `dir`; nothing is loaded until [`Daemon::reload`].
    pub(super) fn new(store: Env, dir: &Path) -> Daemon {
        Daemon {
            store,
            catalog: Catalog::new(dir.to_owned()),
            workflows: Arc::new(RwLock::new(BTreeMap::new())),
            armed: Vec::new(),
            loaded: false,
            leading: true,
            rearm: false,
        }
    }

    /// Arms (leading) or disarms (standing by) this daemon's triggers. Becoming the leader
    /// re-arms every trigger at the next [`Daemon::reload`] from the state the previous
    /// leader left in the environment, and reloads the waiting line.
    pub(super) fn set_leading(&mut self, leading: bool) {
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        self.armed.clear();
        self.rearm = leading;
    }

    /// Whether the triggers wait to be armed again (see [`Daemon::set_leading`]).
    pub(super) fn rearming(&self) -> bool {
        self.rearm
    }

    /// The workflow called `name`, if the folder holds a valid one.
    pub(super) fn workflow(&self, name: &str) -> Option<Arc<Loaded>> {
        self.workflows
            .read()
            .ok()
            .and_then(|w| w.get(name).map(Arc::clone))
    }

    /// Rescans the folder; re-arms the triggers of workflows that changed.
    pub(super) fn reload(&mut self, now: DateTime<Utc>) {
        let changes = self.catalog.rescan();
        if changes.is_empty() && self.loaded && !self.rearm {
            return;
        }
        let first = !self.loaded || self.rearm;
        let rearm = std::mem::take(&mut self.rearm);
        self.loaded = true;
        for path in changes.added.iter().chain(&changes.changed) {
            match self.catalog.entries.get(path).map(|e| &e.loaded) {
                Some(Ok(loaded)) => {
                    info!(file = %path.display(), workflow = %loaded.name, "workflow loaded");
                }
                Some(Err(errors)) => {
                    warn!(file = %path.display(), errors = %errors.trim_end(), "invalid workflow skipped");
                }
                None => {}
            }
        }
        for path in &changes.removed {
            info!(file = %path.display(), "workflow removed");
        }
        for (name, files) in self.catalog.duplicates() {
            warn!(workflow = %name, files = ?files, "two files define one workflow: the first is used");
        }
        let old = self.workflows.read().map(|w| w.clone()).unwrap_or_default();
        let workflows: BTreeMap<String, Arc<Loaded>> = self
            .catalog
            .workflows()
            .into_iter()
            .map(|(name, loaded)| {
                // An unchanged workflow keeps its shared copy.
                let shared = match old.get(&name) {
                    Some(old) if old.hash == loaded.hash && old.file == loaded.file => {
                        Arc::clone(old)
                    }
                    _ => Arc::new(loaded.clone()),
                };
                (name, shared)
            })
            .collect();
        let unchanged: HashSet<&String> = workflows
            .iter()
            .filter(|(name, loaded)| {
                !rearm && old.get(*name).is_some_and(|o| Arc::ptr_eq(o, loaded))
            })
            .map(|(name, _)| name)
            .collect();
        self.armed.retain(|a| unchanged.contains(&a.workflow));
        // Publish before arming: catchup fires look their workflow up.
        if let Ok(mut shared) = self.workflows.write() {
            shared.clone_from(&workflows);
        }
        if !self.leading {
            return;
        }
        if first {
            // Before arming, so that catchup fires queue behind those already waiting.
            self.load_waiting();
        }
        for (name, loaded) in &workflows {
            if unchanged.contains(name) {
                continue;
            }
            let source = std::fs::canonicalize(&loaded.file).ok();
            if let Err(err) = self.store.save_definition(&crate::store::NewDefinition {
                name,
                hash: &loaded.hash,
                yaml: &loaded.source,
                source_path: source.as_deref().and_then(Path::to_str),
                seen_at: now,
            }) {
                error!(workflow = %name, error = %err, "cannot record the workflow's definition");
            }
            for (index, trigger) in loaded.workflow.triggers.iter().enumerate() {
                if let Some(armed) = self.arm(loaded, index, trigger, now) {
                    self.armed.push(armed);
                }
            }
        }
        info!(
            workflows = workflows.len(),
            triggers = self.armed.len(),
            invalid = self
                .catalog
                .entries
                .values()
                .filter(|e| e.loaded.is_err())
                .count(),
            "workflows ready"
        );
    }

    /// The earliest instant a time trigger falls due.
    pub(super) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.armed
            .iter()
            .filter_map(|a| match &a.kind {
                Kind::Time {
                    next: Some(fire), ..
                } => Some(fire.at),
                _ => None,
            })
            .min()
    }

    /// Fires every time trigger that is due at `now`.
    ///
    /// When several instants of one trigger are due at once, the daemon was held up (the
    /// machine slept, the clock jumped): the newest fires, and `catchup` decides about the
    /// older ones, as after downtime.
    pub(super) fn fire_due(&mut self, now: DateTime<Utc>) {
        // What is due, and where each trigger goes next; nothing changes until persisted.
        let mut due: Vec<(usize, Vec<Fire>, Option<Fire>)> = Vec::new();
        for (i, armed) in self.armed.iter().enumerate() {
            let Kind::Time { trigger, next, .. } = &armed.kind else {
                continue;
            };
            let mut fires = Vec::new();
            let mut cursor = *next;
            while let Some(fire) = cursor {
                if fire.at > now {
                    break;
                }
                fires.push(fire);
                cursor = trigger.next_fire(fire.at);
                // A trigger far behind (a long suspend) is bounded by catchup below; this
                // bound only keeps one turn of the loop short.
                if fires.len() >= 10_000 {
                    cursor = trigger.next_fire(now);
                    break;
                }
            }
            if !fires.is_empty() {
                due.push((i, fires, cursor));
            }
        }
        for (i, fires, cursor) in due {
            let (newest, older) = fires
                .split_last()
                .expect("only triggers with fires are due");
            let armed = &self.armed[i];
            let mut chosen = Vec::new();
            if !older.is_empty() {
                let catchup = self
                    .workflow(&armed.workflow)
                    .and_then(|l| l.workflow.catchup)
                    .unwrap_or_default();
                // The newest fires anyway, so `latest` adds nothing to it.
                let kept = match catchup {
                    crate::spec::model::Catchup::All => catchup_choice(catchup, older),
                    _ => Vec::new(),
                };
                warn!(
                    workflow = %armed.workflow,
                    trigger = armed.index,
                    missed = older.len(),
                    firing = kept.len(),
                    catchup = ?catchup,
                    "the daemon fell behind: missed fires follow catchup"
                );
                chosen.extend(kept.iter().map(|f| (*f, true)));
            }
            chosen.push((*newest, false));
            // Oldest first, each instant claimed in the transaction creating its run: an
            // instant fires once whichever daemon gets to it, and one not recorded (the
            // environment failed, or this daemon died) is tried again, here or by the next
            // leader.
            let mut next = cursor;
            for (fire, caught_up) in chosen {
                let armed = &self.armed[i];
                let Kind::Time { kind, spec, .. } = &armed.kind else {
                    break;
                };
                let late_ms = (now - fire.at).num_milliseconds();
                info!(
                    workflow = %armed.workflow,
                    trigger = armed.index,
                    scheduled_for = %fire.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    late_ms,
                    "trigger due"
                );
                let record = time_record(kind, armed.index, spec, &fire, caught_up);
                let claim = FireClaim {
                    workflow: armed.workflow.clone(),
                    key: armed.key.clone(),
                    at: fire.at,
                };
                let (workflow, params) = (armed.workflow.clone(), armed.params.clone());
                if self.fire(&workflow, record, params, now, Some(claim)) == Fired::Retry {
                    next = Some(fire);
                    break;
                }
            }
            if let Kind::Time { next: armed, .. } = &mut self.armed[i].kind {
                *armed = next;
            }
        }
    }

    /// File arrivals, other workflows' runs ending, new DataBlock versions.
    pub(super) fn watch_events(&mut self, now: DateTime<Utc>) {
        let mut runs = Vec::new();
        // One cheap look at the registry for every `datablock` trigger.
        let block_seq = if self
            .armed
            .iter()
            .any(|a| matches!(a.kind, Kind::DataBlock { .. }))
        {
            self.store.block_seq().ok()
        } else {
            None
        };
        for armed in &mut self.armed {
            match &mut armed.kind {
                Kind::File {
                    pattern,
                    settle,
                    seen,
                    settling,
                } => {
                    let present = scan(pattern);
                    let mut ready: Vec<SeenFile> = Vec::new();
                    for file in &present {
                        let version = (file.mtime_ms, file.size);
                        if seen.get(&file.path) == Some(&version) {
                            settling.remove(&file.path);
                            continue;
                        }
                        let entry = settling.entry(file.path.clone()).or_insert((
                            version.0,
                            version.1,
                            Instant::now(),
                        ));
                        if (entry.0, entry.1) != version {
                            *entry = (version.0, version.1, Instant::now());
                        } else if entry.2.elapsed() >= *settle {
                            ready.push(file.clone());
                        }
                    }
                    // A file that vanished before it settled is forgotten.
                    settling.retain(|path, _| present.iter().any(|f| &f.path == path));
                    if ready.is_empty() {
                        continue;
                    }
                    // Persisted before the runs exist: a crash loses a fire, never doubles it.
                    if let Err(err) = self.store.mark_files(&armed.workflow, &armed.key, &ready) {
                        error!(workflow = %armed.workflow, error = %err, "cannot record arrived files; retrying");
                        continue;
                    }
                    for file in ready {
                        settling.remove(&file.path);
                        seen.insert(file.path.clone(), (file.mtime_ms, file.size));
                        info!(workflow = %armed.workflow, trigger = armed.index, file = %file.path, "file arrived");
                        let record =
                            json!({ "type": "file", "trigger": armed.index, "file": file.path });
                        runs.push((armed.workflow.clone(), record, armed.params.clone()));
                    }
                }
                Kind::After {
                    workflow,
                    status,
                    cursor,
                    fired,
                } => {
                    let Ok(finished) = self.store.finished_runs_after(workflow, *cursor) else {
                        continue;
                    };
                    if finished.iter().all(|(id, _)| fired.contains(id)) {
                        continue;
                    }
                    // The cursor passes only runs that have all ended, so a slow run below a
                    // finished one is not missed.
                    let unfinished = self
                        .store
                        .runs(&RunFilter {
                            workflow: Some(workflow.clone()),
                            status: None,
                            limit: Some(1000),
                            before: None,
                        })
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|r| !r.status.is_terminal() && r.id.0 > *cursor)
                        .map(|r| r.id.0)
                        .min();
                    let highest = finished.iter().map(|(id, _)| *id).max().unwrap_or(*cursor);
                    let next = unfinished
                        .map_or(highest, |u| (u - 1).min(highest))
                        .max(*cursor);
                    if next != *cursor {
                        if let Err(err) = self.store.set_cursor(&armed.workflow, &armed.key, next) {
                            error!(workflow = %armed.workflow, error = %err, "cannot record an after trigger's cursor; retrying");
                            continue;
                        }
                        *cursor = next;
                    }
                    for (id, state) in &finished {
                        if !fired.insert(*id) {
                            continue;
                        }
                        let matches = match status {
                            AfterStatus::Success => state == "succeeded",
                            AfterStatus::Failure => state == "failed",
                            AfterStatus::Any => true,
                        };
                        if matches {
                            info!(workflow = %armed.workflow, after = %workflow, run = id, status = %state, "upstream run ended");
                            let record = json!({ "type": "after", "trigger": armed.index, "workflow": workflow, "run": id, "status": state });
                            runs.push((armed.workflow.clone(), record, armed.params.clone()));
                        }
                    }
                    let cursor = *cursor;
                    fired.retain(|id| *id > cursor);
                }
                Kind::DataBlock { name, cursor } => {
                    if block_seq.is_none_or(|seq| seq <= *cursor) {
                        continue;
                    }
                    let versions = match self.store.block_versions_since(*cursor, 1000) {
                        Ok(versions) => versions,
                        Err(err) => {
                            error!(workflow = %armed.workflow, error = %err, "cannot read new DataBlock versions");
                            continue;
                        }
                    };
                    let Some(last) = versions.last().map(|v| v.seq) else {
                        continue;
                    };
                    // Persisted before the runs exist: a crash loses a fire, never doubles it.
                    if let Err(err) = self.store.set_cursor(&armed.workflow, &armed.key, last) {
                        error!(workflow = %armed.workflow, error = %err, "cannot record a datablock trigger's cursor; retrying");
                        continue;
                    }
                    *cursor = last;
                    for version in versions.iter().filter(|v| &v.name == name) {
                        info!(workflow = %armed.workflow, trigger = armed.index, block = %version.label(), "new DataBlock version");
                        let record = json!({
                            "type": "datablock",
                            "trigger": armed.index,
                            "block": version.name,
                            "version": version.version,
                            "seq": version.seq,
                        });
                        let mut params = armed.params.clone();
                        pin_block(
                            &self.workflows,
                            &armed.workflow,
                            &mut params,
                            &version.name,
                            version.version,
                        );
                        runs.push((armed.workflow.clone(), record, params));
                    }
                }
                Kind::Time { .. } => {}
            }
        }
        for (workflow, record, params) in runs {
            self.fire(&workflow, record, params, now, None);
        }
    }

    /// Re-queues or fails jobs whose worker's lease expired, kills what is left of them on
    /// this host, and moves their runs on; cancels the child runs of calling jobs past their
    /// `timeout:`.
    pub(super) fn housekeeping(&self, now: DateTime<Utc>) {
        crate::engine::queued::time_out_calls(&*self.store);
        let lost = match self.store.expire_leases(now) {
            Ok(lost) => lost,
            Err(err) => {
                error!(error = %err, "cannot expire leases");
                return;
            }
        };
        let mut tokens = Vec::new();
        for job in lost {
            warn!(run = job.run.0, job = %job.name, "lease expired: job re-queued or failed as lost");
            if let Ok(Some(run)) = self.store.run(job.run)
                && let Ok(definition) = load_run_definition(&*self.store, &run)
            {
                let _ = advance_run(&*self.store, &run, &definition);
            }
            tokens.extend(job.kill_token);
        }
        if !tokens.is_empty() {
            // SPEC §3: nothing of a lost attempt keeps running while its job runs again.
            // Killing takes up to a grace period, so it runs beside the loop.
            std::thread::spawn(move || {
                for token in tokens {
                    let _ = crate::step::kill_token_processes(&token, Duration::from_secs(2));
                }
            });
        }
    }
}

/// Pins the `datablock` parameters of `workflow` that would read the newest version of
/// `block` (their default names it, and the trigger does not set them) to `version`: the run
/// a new version fires reads that version, even if a newer one appears before it starts.
fn pin_block(
    workflows: &Workflows,
    workflow: &str,
    params: &mut indexmap::IndexMap<String, String>,
    block: &str,
    version: u64,
) {
    let Ok(workflows) = workflows.read() else {
        return;
    };
    let Some(loaded) = workflows.get(workflow) else {
        return;
    };
    for (name, param) in &loaded.workflow.params {
        if param.kind == ParamType::Datablock
            && param.default.as_ref().is_some_and(|d| d.as_str() == block)
            && !params.contains_key(name)
        {
            params.insert(name.clone(), format!("{block}@{version}"));
        }
    }
}
