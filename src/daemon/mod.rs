//! `coreflow daemon`: the server mode that replaces cron.
//!
//! One loop owns the daemon's state: it reloads the workflow folder ([`catalog`]), fires
//! JobTriggers when they are due (schedules, `every`, `at`, file arrival, `after` another
//! workflow), applies `concurrency` and `catchup`, and drives the local worker pool
//! ([`scaler`]); the HTTP API ([`api`]) runs beside it. What a trigger has fired is persisted
//! before the run is created, so a `kill -9` and a restart never fire one instant twice.
//! Only one daemon owns an environment's triggers: it holds an exclusive `flock` on
//! `daemon.lock` in the environment, which the kernel releases however the daemon dies.

pub mod api;
pub mod catalog;
pub mod scaler;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::daemon::catalog::Catalog;
use crate::daemon::scaler::{Scaler, ScalerConfig};
use crate::engine::queued::{advance_run, load_run_definition, queue_run};
use crate::spec::Loaded;
use crate::spec::model::{AfterStatus, Catchup, OnOverlap, Trigger};
use crate::spec::params::{self, Overrides};
use crate::state::RunState;
use crate::store::{NewRun, QueueStore, RunFilter, SeenFile, SqliteStore, Store, TriggerStore};
use crate::triggers::{Fire, TimeTrigger};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub workflows: PathBuf,
    pub env: PathBuf,
    pub min_workers: usize,
    pub max_workers: usize,
    pub labels: Vec<String>,
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    pub grace: Duration,
    pub lease: Duration,
    pub idle: Duration,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another daemon (pid {0}) owns the triggers of this environment")]
    Locked(String),
    #[error("{0}")]
    Start(String),
}

/// Takes the environment's daemon lock, or says who holds it.
///
/// # Errors
/// Another daemon holds it, or the lock file cannot be opened.
pub fn lock(env: &Path) -> Result<File, DaemonError> {
    use std::io::{Read, Seek, Write};
    let path = env.join("daemon.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| DaemonError::Start(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(DaemonError::Locked(holder.trim().to_owned()));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}

/// One armed trigger of one workflow.
struct Armed {
    workflow: String,
    index: usize,
    key: String,
    params: IndexMap<String, String>,
    kind: Kind,
}

enum Kind {
    Time {
        trigger: Box<TimeTrigger>,
        next: Option<Fire>,
        description: String,
    },
    File {
        pattern: String,
        settle: Duration,
        waiting: HashMap<String, (i64, u64, Instant)>,
    },
    After {
        workflow: String,
        status: AfterStatus,
        cursor: i64,
        fired: HashSet<i64>,
    },
    /// `datablock:` triggers fire on new versions; they are armed when DataBlocks exist.
    Other,
}

/// A fire waiting for a run slot: its trigger record and parameters.
type WaitingFire = (serde_json::Value, IndexMap<String, String>);

struct Daemon {
    store: Arc<SqliteStore>,
    catalog: Catalog,
    workflows: Arc<RwLock<BTreeMap<String, Loaded>>>,
    armed: Vec<Armed>,
    /// Fires waiting for a run slot (`on_overlap: queue`), per workflow.
    waiting: HashMap<String, VecDeque<WaitingFire>>,
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
/// The API address cannot be bound.
pub async fn run(config: DaemonConfig, store: Arc<SqliteStore>) -> Result<(), DaemonError> {
    let workflows = Arc::new(RwLock::new(BTreeMap::new()));
    let mut daemon = Daemon {
        catalog: Catalog::new(config.workflows.clone()),
        store: Arc::clone(&store),
        workflows: Arc::clone(&workflows),
        armed: Vec::new(),
        waiting: HashMap::new(),
    };
    let server = match config.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| DaemonError::Start(format!("cannot listen on {addr}: {e}")))?;
            let state = Arc::new(api::ApiState {
                store: Arc::clone(&store),
                workflows,
                token: config.token.clone(),
            });
            info!(%addr, token = config.token.is_some(), "api: listening");
            Some(tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, api::router(state)).await {
                    error!(error = %err, "api: server stopped");
                }
            }))
        }
        None => None,
    };
    let mut scaler = Scaler::new(ScalerConfig {
        min: config.min_workers,
        max: config.max_workers,
        env: config.env.clone(),
        labels: config.labels.clone(),
        grace: config.grace,
        lease: config.lease,
        idle: config.idle,
    });
    let mut terms = signal(SignalKind::terminate()).ok();
    let mut ints = signal(SignalKind::interrupt()).ok();
    info!(
        workflows = %config.workflows.display(),
        env = %config.env.display(),
        min_workers = config.min_workers,
        max_workers = config.max_workers,
        "daemon started"
    );
    daemon.reload(Utc::now());
    let mut last_reload = Instant::now();
    let mut last_slow = Instant::now() - Duration::from_secs(1);
    loop {
        let now = Utc::now();
        daemon.fire_due(now);
        if last_reload.elapsed() >= Duration::from_secs(1) {
            last_reload = Instant::now();
            daemon.reload(now);
        }
        if last_slow.elapsed() >= Duration::from_millis(250) {
            last_slow = Instant::now();
            daemon.watch_events(now);
            daemon.start_waiting();
            daemon.housekeeping();
            let backlog = store
                .oldest_runnable(&scaler_labels(&config))
                .ok()
                .flatten()
                .is_some();
            scaler.tick(&store, backlog);
        }
        // Sleep until the next due fire, or the next quarter second.
        let next_due = daemon.next_due();
        let mut wait = Duration::from_millis(250);
        if let Some(due) = next_due {
            let until = (due - Utc::now()).to_std().unwrap_or_default();
            wait = wait.min(until);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Some(()) = recv(&mut terms) => break,
            Some(()) = recv(&mut ints) => break,
        }
    }
    info!(
        grace_ms = u64::try_from(config.grace.as_millis()).unwrap_or(u64::MAX),
        "daemon stopping: no more fires; workers finish or re-queue their jobs"
    );
    let deadline = config.grace + Duration::from_secs(5);
    let _ = tokio::task::spawn_blocking(move || scaler.shutdown(deadline)).await;
    if let Some(server) = server {
        server.abort();
    }
    info!("daemon stopped");
    Ok(())
}

fn scaler_labels(config: &DaemonConfig) -> Vec<String> {
    let mut labels = crate::engine::setup::local_labels();
    labels.extend(config.labels.iter().cloned());
    labels
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// A key that changes when the trigger's meaning changes, so an edited trigger starts fresh.
fn trigger_key(index: usize, trigger: &Trigger) -> String {
    let what = serde_json::to_string(trigger).unwrap_or_default();
    format!("{index}:{what}")
}

impl Daemon {
    /// Rescans the folder; re-arms the triggers of workflows that changed.
    fn reload(&mut self, now: DateTime<Utc>) {
        let changes = self.catalog.rescan();
        if changes.is_empty() && !self.armed.is_empty() {
            return;
        }
        for path in changes.added.iter().chain(&changes.changed) {
            match self.catalog.entries.get(path).map(|e| &e.loaded) {
                Some(Ok(loaded)) => {
                    info!(file = %path.display(), workflow = %loaded.name, "workflow loaded")
                }
                Some(Err(errors)) => {
                    warn!(file = %path.display(), errors = %errors.trim_end(), "invalid workflow skipped")
                }
                None => {}
            }
        }
        for path in &changes.removed {
            info!(file = %path.display(), "workflow removed");
        }
        let workflows: BTreeMap<String, Loaded> = self
            .catalog
            .workflows()
            .into_iter()
            .map(|(name, loaded)| (name, loaded.clone()))
            .collect();
        // Keep armed triggers whose workflow is unchanged; arm the rest anew.
        let unchanged: HashSet<String> = workflows
            .iter()
            .filter(|(name, loaded)| {
                self.workflows
                    .read()
                    .ok()
                    .and_then(|w| w.get(*name).map(|old| old.hash == loaded.hash))
                    .unwrap_or(false)
            })
            .map(|(name, _)| name.clone())
            .collect();
        self.armed.retain(|a| unchanged.contains(&a.workflow));
        for (name, loaded) in &workflows {
            if unchanged.contains(name) && self.armed.iter().any(|a| &a.workflow == name) {
                continue;
            }
            let source = std::fs::canonicalize(&loaded.file).ok();
            let _ = self.store.save_definition(&crate::store::NewDefinition {
                name,
                hash: &loaded.hash,
                yaml: &loaded.source,
                source_path: source.as_deref().and_then(Path::to_str),
                seen_at: now,
            });
            for (index, trigger) in loaded.workflow.triggers.iter().enumerate() {
                if let Some(armed) = self.arm(loaded, index, trigger, now) {
                    self.armed.push(armed);
                }
            }
        }
        if let Ok(mut shared) = self.workflows.write() {
            *shared = workflows;
        }
    }

    fn arm(
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
                error!(workflow = %loaded.name, error = %err, "cannot read trigger state");
                return None;
            }
        };
        let fresh = state.first_seen
            == DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let params: IndexMap<String, String> = trigger
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
            .collect();
        let kind = match TimeTrigger::from_spec(trigger, state.first_seen) {
            Ok(Some(time)) => {
                let description = describe_time(trigger);
                // What fell due while the daemon was away: catchup decides.
                if let Some(last) = state.last_fire {
                    let owed = time.fires_between(last, now);
                    if !owed.is_empty() {
                        let catchup = loaded.workflow.catchup.unwrap_or_default();
                        let chosen: Vec<Fire> = match catchup {
                            Catchup::None => Vec::new(),
                            Catchup::Latest => owed.last().copied().into_iter().collect(),
                            Catchup::All => owed.clone(),
                        };
                        info!(
                            workflow = %loaded.name,
                            trigger = index,
                            missed = owed.len(),
                            firing = chosen.len(),
                            catchup = ?catchup,
                            "catchup after downtime"
                        );
                        let _ = self.store.set_last_fire(
                            &loaded.name,
                            &key,
                            owed.last().map_or(now, |f| f.at),
                        );
                        for fire in chosen {
                            let json = json!({
                                "type": time_kind(trigger),
                                "trigger": index,
                                "spec": description,
                                "scheduled_for": fire.at.to_rfc3339(),
                                "catchup": true,
                            });
                            self.fire(&loaded.name, json, params.clone());
                        }
                    }
                }
                let after = state.last_fire.map_or(now, |l| l.max(now));
                let next = time.next_fire(after);
                Kind::Time {
                    trigger: Box::new(time),
                    next,
                    description,
                }
            }
            Ok(None) => {
                if let Some(file) = &trigger.file {
                    let pattern = loaded.dir.join(&file.path).display().to_string();
                    if fresh {
                        // Files present when the trigger is first seen do not fire.
                        let present = scan(&pattern);
                        let _ = self.store.mark_files(&loaded.name, &key, &present);
                    }
                    let settle = file
                        .settle
                        .as_ref()
                        .map_or(Duration::ZERO, crate::spec::model::DurationSpec::get);
                    Kind::File {
                        pattern,
                        settle,
                        waiting: HashMap::new(),
                    }
                } else if let Some(after) = &trigger.after {
                    let cursor = match state.cursor {
                        Some(cursor) => cursor,
                        None => {
                            let max = self.store.max_run_id().unwrap_or(0);
                            let _ = self.store.set_cursor(&loaded.name, &key, max);
                            max
                        }
                    };
                    Kind::After {
                        workflow: after.workflow.clone(),
                        status: after.status,
                        cursor,
                        fired: HashSet::new(),
                    }
                } else {
                    Kind::Other
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

    fn next_due(&self) -> Option<DateTime<Utc>> {
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

    /// Fires every time trigger that is due.
    fn fire_due(&mut self, now: DateTime<Utc>) {
        let mut fires = Vec::new();
        for armed in &mut self.armed {
            let Kind::Time {
                trigger,
                next,
                description,
            } = &mut armed.kind
            else {
                continue;
            };
            while let Some(fire) = *next {
                if fire.at > now {
                    break;
                }
                // Persist first: after a crash an instant is lost at worst, never doubled.
                if let Err(err) = self
                    .store
                    .set_last_fire(&armed.workflow, &armed.key, fire.at)
                {
                    error!(workflow = %armed.workflow, error = %err, "cannot record a fire; not firing");
                    break;
                }
                let mut json = json!({
                    "type": armed_kind(description),
                    "trigger": armed.index,
                    "spec": description,
                    "scheduled_for": fire.at.to_rfc3339(),
                });
                if let Some(note) = fire.note {
                    json["dst"] = json!(format!("{note:?}"));
                }
                let late_ms = (now - fire.at).num_milliseconds();
                info!(workflow = %armed.workflow, trigger = armed.index, scheduled_for = %fire.at.to_rfc3339(), late_ms, "trigger due");
                fires.push((armed.workflow.clone(), json, armed.params.clone()));
                *next = trigger.next_fire(fire.at);
            }
        }
        for (workflow, json, params) in fires {
            self.fire(&workflow, json, params);
        }
    }

    /// File arrivals and other workflows' runs ending.
    fn watch_events(&mut self, _now: DateTime<Utc>) {
        let mut fires = Vec::new();
        for armed in &mut self.armed {
            match &mut armed.kind {
                Kind::File {
                    pattern,
                    settle,
                    waiting,
                } => {
                    let seen: HashMap<String, (i64, u64)> = self
                        .store
                        .seen_files(&armed.workflow, &armed.key)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|f| (f.path, (f.mtime_ms, f.size)))
                        .collect();
                    let mut ready = Vec::new();
                    for file in scan(pattern) {
                        if seen.get(&file.path) == Some(&(file.mtime_ms, file.size)) {
                            waiting.remove(&file.path);
                            continue;
                        }
                        let entry = waiting.entry(file.path.clone()).or_insert((
                            file.mtime_ms,
                            file.size,
                            Instant::now(),
                        ));
                        if (entry.0, entry.1) != (file.mtime_ms, file.size) {
                            *entry = (file.mtime_ms, file.size, Instant::now());
                        } else if entry.2.elapsed() >= *settle {
                            ready.push(file);
                        }
                    }
                    if !ready.is_empty()
                        && self
                            .store
                            .mark_files(&armed.workflow, &armed.key, &ready)
                            .is_ok()
                    {
                        for file in ready {
                            waiting.remove(&file.path);
                            info!(workflow = %armed.workflow, trigger = armed.index, file = %file.path, "file arrived");
                            let json = json!({ "type": "file", "trigger": armed.index, "file": file.path });
                            fires.push((armed.workflow.clone(), json, armed.params.clone()));
                        }
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
                    for (id, state) in &finished {
                        if fired.contains(id) {
                            continue;
                        }
                        fired.insert(*id);
                        let matches = match status {
                            AfterStatus::Success => state == "succeeded",
                            AfterStatus::Failure => state == "failed",
                            AfterStatus::Any => true,
                        };
                        if matches {
                            info!(workflow = %armed.workflow, after = %workflow, run = id, status = %state, "upstream run ended");
                            let json = json!({ "type": "after", "trigger": armed.index, "workflow": workflow, "run": id, "status": state });
                            fires.push((armed.workflow.clone(), json, armed.params.clone()));
                        }
                    }
                    // The cursor passes only runs that have all ended, so a slow run is not missed.
                    let unfinished = self
                        .store
                        .runs(&RunFilter {
                            workflow: Some(workflow.clone()),
                            status: None,
                            limit: Some(1000),
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
                        *cursor = next;
                        fired.retain(|id| *id > next);
                        let _ = self.store.set_cursor(&armed.workflow, &armed.key, next);
                    }
                }
                Kind::Time { .. } | Kind::Other => {}
            }
        }
        for (workflow, json, params) in fires {
            self.fire(&workflow, json, params);
        }
    }

    /// Creates a run for a trigger fire, under the workflow's concurrency policy.
    fn fire(
        &mut self,
        workflow: &str,
        trigger: serde_json::Value,
        params: IndexMap<String, String>,
    ) {
        let Some(loaded) = self
            .workflows
            .read()
            .ok()
            .and_then(|w| w.get(workflow).cloned())
        else {
            return;
        };
        if let Some(concurrency) = &loaded.workflow.concurrency
            && let Some(max) = concurrency.max_runs
        {
            let active = self.active_runs(workflow);
            if active.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
                match concurrency.on_overlap {
                    OnOverlap::Skip => {
                        let reason = format!(
                            "{} run(s) active, max_runs {max}: on_overlap skip",
                            active.len()
                        );
                        info!(workflow, reason = %reason, "fire skipped");
                        self.record_skipped(&loaded, trigger, &reason);
                        return;
                    }
                    OnOverlap::Queue => {
                        info!(
                            workflow,
                            active = active.len(),
                            max,
                            "fire waits for a run slot (on_overlap queue)"
                        );
                        self.waiting
                            .entry(workflow.to_owned())
                            .or_default()
                            .push_back((trigger, params));
                        return;
                    }
                    OnOverlap::CancelRunning => {
                        for run in &active {
                            info!(
                                workflow,
                                run = run.0,
                                "cancelling a running run (on_overlap cancel_running)"
                            );
                            let _ = self.store.request_cancel_run(*run);
                        }
                    }
                }
            }
        }
        self.start(&loaded, trigger, &params);
    }

    fn start(
        &self,
        loaded: &Loaded,
        trigger: serde_json::Value,
        params: &IndexMap<String, String>,
    ) {
        let values = match params::resolve(&loaded.workflow, params, &Overrides::default()) {
            Ok(values) => values,
            Err(errors) => {
                let message: Vec<String> = errors.iter().map(ToString::to_string).collect();
                warn!(workflow = %loaded.name, errors = %message.join("; "), "fire refused: parameters do not fit");
                return;
            }
        };
        let source = std::fs::canonicalize(&loaded.file).ok();
        match queue_run(
            &self.store,
            loaded,
            &values,
            &Overrides::default(),
            source.as_deref().and_then(Path::to_str),
            trigger.clone(),
        ) {
            Ok(run) => {
                info!(workflow = %loaded.name, run = run.0, trigger = %trigger, "run created")
            }
            Err(err) => error!(workflow = %loaded.name, error = %err, "cannot create a run"),
        }
    }

    fn active_runs(&self, workflow: &str) -> Vec<crate::state::RunId> {
        let mut active = Vec::new();
        for status in [RunState::Queued, RunState::Running] {
            let filter = RunFilter {
                workflow: Some(workflow.to_owned()),
                status: Some(status),
                limit: Some(10_000),
            };
            active.extend(
                self.store
                    .runs(&filter)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.id),
            );
        }
        active
    }

    fn record_skipped(&self, loaded: &Loaded, trigger: serde_json::Value, reason: &str) {
        let run = NewRun {
            workflow: loaded.name.clone(),
            def_hash: loaded.hash.clone(),
            params: json!({}),
            trigger,
            status: RunState::Skipped,
            reason: Some(reason.to_owned()),
            owner: None,
            created_at: Utc::now(),
            jobs: Vec::new(),
        };
        if let Err(err) = self.store.create_run(&run) {
            error!(workflow = %loaded.name, error = %err, "cannot record a skipped fire");
        }
    }

    /// Starts fires that waited for a run slot.
    fn start_waiting(&mut self) {
        let names: Vec<String> = self.waiting.keys().cloned().collect();
        for name in names {
            let Some(loaded) = self
                .workflows
                .read()
                .ok()
                .and_then(|w| w.get(&name).cloned())
            else {
                self.waiting.remove(&name);
                continue;
            };
            let max = loaded
                .workflow
                .concurrency
                .as_ref()
                .and_then(|c| c.max_runs)
                .unwrap_or(u32::MAX);
            while self.active_runs(&name).len() < usize::try_from(max).unwrap_or(usize::MAX) {
                let Some((trigger, params)) =
                    self.waiting.get_mut(&name).and_then(VecDeque::pop_front)
                else {
                    break;
                };
                info!(workflow = %name, "a run slot freed: starting a waiting fire");
                self.start(&loaded, trigger, &params);
            }
            if self.waiting.get(&name).is_some_and(VecDeque::is_empty) {
                self.waiting.remove(&name);
            }
        }
    }

    /// Re-queues or fails jobs whose worker's lease expired, and moves their runs on.
    fn housekeeping(&self) {
        match self.store.expire_leases(Utc::now()) {
            Ok(lost) => {
                for job in lost {
                    warn!(run = job.run.0, job = %job.name, "lease expired: job re-queued or failed as lost");
                    if let Ok(Some(run)) = self.store.run(job.run)
                        && let Ok(definition) = load_run_definition(&self.store, &run)
                    {
                        let _ = advance_run(&self.store, &run, &definition);
                    }
                }
            }
            Err(err) => error!(error = %err, "cannot expire leases"),
        }
    }
}

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

fn armed_kind(description: &str) -> &'static str {
    if description.starts_with("every ") {
        "every"
    } else if description.starts_with("at ") {
        "at"
    } else {
        "schedule"
    }
}

/// The files matching a glob, with their modification time and size.
fn scan(pattern: &str) -> Vec<SeenFile> {
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
                path: path.display().to_string(),
                mtime_ms: mtime,
                size: meta.len(),
            })
        })
        .collect()
}
