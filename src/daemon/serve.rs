//! The daemon's loop: start-up (load the folder, then serve the API), then turns that fire
//! due time triggers as soon as they are due, and every quarter second watch files and other
//! workflows' runs, start fires waiting for a run slot, scale the worker pool and run the
//! launchers (the leader alone launches); every second, reload the folder and expire leases. SIGTERM (or SIGINT) ends the loop: no more
//! fires, the workers finish or re-queue their jobs within the grace, exit 0.
//!
//! Only the daemon that leads the environment ([`crate::store::LeaderStore`]) fires, serves
//! the waiting line and expires leases; the others serve the API, scale their own host's
//! pool, and take over when the leader's lease ends. A SQLite environment has one daemon
//! (its lock file), which always leads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use crate::clock::{Clock, SystemClock};
use crate::daemon::config::{DaemonConfig, DaemonError};
use crate::daemon::firing::Daemon;
use crate::daemon::launcher::Launchers;
use crate::daemon::scaler::{Scaler, ScalerConfig};
use crate::engine::recv_signal as recv;
use crate::store::Env;
use crate::web::api;
use crate::web::guard::Guard;
use crate::web::http;

/// How often files, `after` triggers, waiting fires and the pool are looked at.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How often the folder is rescanned and leases are checked.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Runs the daemon on the system clock until SIGTERM or SIGINT.
///
/// # Errors
/// The API address cannot be bound.
pub async fn run(config: DaemonConfig, store: Env) -> Result<(), DaemonError> {
    serve(config, store, Arc::new(SystemClock)).await
}

/// Runs the daemon until SIGTERM or SIGINT, reading the time from `clock`.
///
/// # Errors
/// The API address cannot be bound.
pub async fn serve(
    config: DaemonConfig,
    store: Env,
    clock: Arc<dyn Clock>,
) -> Result<(), DaemonError> {
    let mut terms = signal(SignalKind::terminate()).ok();
    let mut ints = signal(SignalKind::interrupt()).ok();
    // Bound first, so that a taken address fails before anything fires.
    let listener = match config.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| DaemonError::Start(format!("cannot listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    info!(
        workflows = %config.workflows.display(),
        env = %config.env.display(),
        min_workers = config.min_workers,
        max_workers = config.max_workers,
        launchers = config.launchers.len(),
        pid = std::process::id(),
        "daemon started"
    );
    let mut daemon = Daemon::new(Arc::clone(&store), &config.workflows);
    let mut leading = Leading::new(config.lease);
    daemon.set_leading(leading.check(&*store));
    daemon.reload(clock.now());
    if leading.leads {
        // Jobs held by workers of this host that died with a previous daemon run again at
        // once.
        daemon.housekeeping(clock.now());
    }
    // The API starts once the folder is loaded: no request sees an empty daemon.
    let server = listener.map(|listener| {
        // Its own connection, so that a long read never waits on (or holds up) the loop's.
        let options = crate::store::OpenOptions {
            clock: None,
            blocks: config.blocks.clone(),
        };
        let api_store = crate::store::open_with(&config.env, &options).unwrap_or_else(|err| {
            error!(error = %err, "api: no connection of its own; sharing the daemon's");
            Arc::clone(&store)
        });
        let state = Arc::new(api::ApiState::new(
            api_store,
            api::Workflows::Daemon(Arc::clone(&daemon.workflows)),
        ));
        let addr = listener.local_addr().ok().or(config.listen);
        let guard = addr.map(|addr| Guard::new(addr, &config.public_hosts, config.token.as_deref()));
        info!(addr = %config.listen.map(|a| a.to_string()).unwrap_or_default(), token = config.token.is_some(), "api: listening");
        tokio::spawn(async move {
            if let Some(guard) = guard {
                http::serve(listener, api::router(state, guard)).await;
            }
        })
    });
    let mut scaler = Scaler::new(ScalerConfig {
        min: config.min_workers,
        max: config.max_workers,
        env: config.env.clone(),
        blocks: config.blocks.clone(),
        labels: config.labels.clone(),
        grace: config.grace,
        lease: config.lease,
        idle: config.idle,
        relay_stderr: config.json_log,
        cpus: config.cpus,
        memory: config.memory,
    });
    let mut launchers = Launchers::new(
        config.launchers.clone(),
        &config.env,
        config.blocks.as_ref(),
        &config.labels,
        store.dir(),
    );
    let labels = scaler_labels(&config);
    let mut last_reload = Instant::now();
    let mut last_watch: Option<Instant> = None;
    // Keys of webhooks and the SMTP server of notifiers are read from here.
    let process_env: Arc<BTreeMap<String, String>> = Arc::new(std::env::vars().collect());
    loop {
        let now = clock.now();
        let leads = leading.check(&*store);
        daemon.set_leading(leads);
        if !leads {
            // Another daemon leads: this one serves the API and stands by.
            if last_reload.elapsed() >= RELOAD_EVERY {
                last_reload = Instant::now();
                daemon.reload(now);
            }
            // Each daemon scales the pool of its own host from the shared backlog.
            let backlog = store.oldest_runnable(&labels).is_ok_and(|o| o.is_some());
            scaler.tick(&*store, backlog);
            // Only the leader launches; this one follows the launches it started.
            launchers.tick(&*store, false);
            tokio::select! {
                () = tokio::time::sleep(leading.renew_every()) => {}
                Some(()) = recv(&mut terms) => break,
                Some(()) = recv(&mut ints) => break,
            }
            continue;
        }
        if daemon.rearming() || last_reload.elapsed() >= RELOAD_EVERY {
            last_reload = Instant::now();
            daemon.reload(now);
            daemon.housekeeping(now);
        }
        daemon.fire_due(now);
        if last_watch.is_none_or(|t| t.elapsed() >= WATCH_EVERY) {
            last_watch = Some(Instant::now());
            daemon.watch_events(now);
            daemon.start_waiting();
            let backlog = match store.oldest_runnable(&labels) {
                Ok(oldest) => oldest.is_some(),
                Err(err) => {
                    error!(error = %err, "cannot look for runnable jobs");
                    false
                }
            };
            scaler.tick(&*store, backlog);
            launchers.tick(&*store, true);
            send_notifications(&store, &process_env);
        }
        // Sleep until the next due fire, or the next look around.
        let mut wait = WATCH_EVERY.min(leading.renew_every());
        if let Some(due) = daemon.next_due() {
            wait = wait.min((due - clock.now()).to_std().unwrap_or_default());
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Some(()) = recv(&mut terms) => break,
            Some(()) = recv(&mut ints) => break,
        }
    }
    info!(
        grace_ms = u64::try_from(config.grace.as_millis()).unwrap_or(u64::MAX),
        workers = scaler.size(),
        "daemon stopping: no more fires; workers finish or re-queue their jobs"
    );
    leading.resign(&*store);
    let deadline = config.grace + Duration::from_secs(5);
    let _ = tokio::task::spawn_blocking(move || {
        scaler.shutdown(deadline);
        launchers.shutdown(deadline);
    })
    .await;
    if let Some(server) = server {
        server.abort();
    }
    info!("daemon stopped");
    Ok(())
}

/// This daemon's hold on the environment's leadership ([`crate::store::LeaderStore`]): taken
/// or renewed every third of the lease, so that a live leader never loses it and a dead
/// one's successor takes over within twice the lease.
struct Leading {
    identity: String,
    lease: Duration,
    last_check: Option<Instant>,
    leads: bool,
}

impl Leading {
    fn new(lease: Duration) -> Leading {
        Leading {
            identity: crate::store::daemon_identity(),
            lease,
            last_check: None,
            leads: false,
        }
    }

    fn renew_every(&self) -> Duration {
        (self.lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Whether this daemon leads, renewing or taking the lease when due.
    fn check(&mut self, store: &dyn crate::store::Environment) -> bool {
        if self
            .last_check
            .is_some_and(|at| at.elapsed() < self.renew_every())
        {
            return self.leads;
        }
        self.last_check = Some(Instant::now());
        let leads = match store.lead(&self.identity, self.lease) {
            Ok(false) => self.take_from_the_dead(store),
            Ok(leads) => leads,
            Err(err) => {
                // Without the store nothing can be fired anyway; keep trying.
                error!(error = %err, "cannot take or renew the leadership");
                false
            }
        };
        if leads != self.leads {
            if leads {
                info!(daemon = %self.identity, "leading: firing triggers, expiring leases, scaling");
            } else {
                info!(daemon = %self.identity, "another daemon leads: standing by");
            }
        }
        self.leads = leads;
        leads
    }

    /// Takes the leadership from a leader of this host whose process is gone (a daemon
    /// killed and restarted), without waiting out its lease.
    fn take_from_the_dead(&self, store: &dyn crate::store::Environment) -> bool {
        let Ok(Some(held)) = store.leadership() else {
            return false;
        };
        if !crate::store::holder_is_dead_here(&held.holder) {
            return false;
        }
        info!(previous = %held.holder, "the leading daemon of this host is gone: taking over");
        store.resign(&held.holder).is_ok()
            && store.lead(&self.identity, self.lease).unwrap_or(false)
    }

    /// Gives the leadership up, so that a standing-by daemon takes over at once.
    fn resign(&self, store: &dyn crate::store::Environment) {
        if self.leads
            && let Err(err) = store.resign(&self.identity)
        {
            error!(error = %err, "cannot give the leadership up; it ends with the lease");
        }
    }
}

/// The labels the local workers carry, to tell whether a queued job is runnable by them.
fn scaler_labels(config: &DaemonConfig) -> Vec<String> {
    let mut labels = crate::engine::setup::local_labels();
    for label in &config.labels {
        if !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    labels
}

/// The leading daemon sends the notifications of ended runs that no other process has taken
/// (detached runs, runs of triggers and workers), each beside the loop.
fn send_notifications(store: &Env, env: &Arc<BTreeMap<String, String>>) {
    let pending = match store.pending_notifications(16) {
        Ok(pending) => pending,
        Err(err) => {
            error!(error = %err, "cannot look for notifications to send");
            return;
        }
    };
    for run in pending {
        let store = Arc::clone(store);
        let env = Arc::clone(env);
        tokio::spawn(async move {
            crate::engine::notify::send(&*store, run, &env).await;
        });
    }
}
