//! `coreflow queue`, `jobs`, `trigger`, `worker` and `workers`: queueing work without running
//! it, and the standalone workers that run it.

use std::time::Duration;

use indexmap::IndexMap;

use crate::cli::args::{
    GlobalArgs, JobsAction, JobsArgs, QueueAction, QueueArgs, TriggerArgs, WorkerArgs,
    WorkersAction, WorkersArgs,
};
use crate::cli::env;
use crate::cli::output::table;
use crate::daemon::launcher::LaunchReport;
use crate::engine::admission::{Admission, Request, admit};
use crate::engine::definition::load_definition;
use crate::engine::queued::{advance_unowned, cancel_job};
use crate::engine::setup::local_labels;
use crate::engine::worker::{WorkerConfig, serve};
use crate::error::Error;
use crate::scheduler::resources::{self, Offer, why_waiting};
use crate::spec::params::{self, Overrides};
use crate::state::JobState;
use crate::store::Environment;
use crate::store::{CancelOutcome, JobFilter, JobRecord, RemoveOutcome};

pub(super) fn queue(global: &GlobalArgs, args: &QueueArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    let fail = Error::Store;
    match &args.action {
        QueueAction::List => {
            let queues = store.queues().map_err(fail)?;
            if global.json {
                return super::output::print(&super::output::json_text(&queues));
            }
            let mut rows = vec![
                ["QUEUE", "DEPTH", "RUNNING", "CONCURRENCY", "PAUSED"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            for q in queues {
                rows.push(vec![
                    q.name,
                    q.depth.to_string(),
                    q.running.to_string(),
                    q.concurrency.map_or_else(|| "-".into(), |c| c.to_string()),
                    if q.paused { "yes".into() } else { "no".into() },
                ]);
            }
            super::output::print(&table(&rows))
        }
        QueueAction::Add { name, concurrency } => {
            let created = store.add_queue(name, *concurrency).map_err(fail)?;
            let limit =
                concurrency.map_or_else(|| "no limit".to_owned(), |c| format!("concurrency {c}"));
            let verb = if created { "added" } else { "updated" };
            quiet_print(global, &format!("queue {name} {verb} ({limit})\n"))
        }
        QueueAction::Pause { name } | QueueAction::Resume { name } => {
            let pause = matches!(args.action, QueueAction::Pause { .. });
            if !store.set_paused(name, pause).map_err(fail)? {
                return Err(no_queue(&*store, name));
            }
            quiet_print(
                global,
                &format!(
                    "queue {name} {}\n",
                    if pause { "paused" } else { "resumed" }
                ),
            )
        }
        QueueAction::Remove { name, force } => {
            match store.remove_queue(name, *force).map_err(fail)? {
                RemoveOutcome::Removed(runs) => {
                    // Jobs it cancelled may have been their runs' last, or needed by others.
                    for run in runs {
                        advance_unowned(&*store, run);
                    }
                    quiet_print(global, &format!("queue {name} removed\n"))
                }
                RemoveOutcome::NotFound => Err(no_queue(&*store, name)),
                RemoveOutcome::Busy(n) => Err(Error::Usage(format!(
                    "queue {name} still holds {n} job{}; wait for them, or use --force to cancel them",
                    if n == 1 { "" } else { "s" }
                ))),
            }
        }
    }
}

fn no_queue(store: &dyn Environment, name: &str) -> Error {
    let names: Vec<String> = store
        .queues()
        .map(|q| q.into_iter().map(|q| q.name).collect())
        .unwrap_or_default();
    let hint = crate::spec::diag::suggest(name, names.iter().map(String::as_str))
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    Error::Usage(format!("no queue `{name}`{hint}"))
}

pub(super) fn jobs(global: &GlobalArgs, args: &JobsArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    let fail = Error::Store;
    match &args.action {
        None => {
            let status = match &args.status {
                Some(s) => Some(
                    s.parse::<JobState>()
                        .map_err(|e| Error::Usage(e.to_string()))?,
                ),
                None => None,
            };
            let filter = JobFilter {
                queue: args.queue.clone(),
                status,
                limit: Some(args.limit),
            };
            let jobs = store.list_jobs(&filter).map_err(fail)?;
            let waiting = why_jobs_wait(&*store, &jobs)?;
            if global.json {
                let mut values = serde_json::to_value(&jobs).unwrap_or_default();
                if let Some(array) = values.as_array_mut() {
                    for (value, why) in array.iter_mut().zip(&waiting) {
                        if let Some(why) = why {
                            value["waiting"] = serde_json::json!(why);
                        }
                    }
                }
                return super::output::print(&super::output::json_text(&values));
            }
            if jobs.is_empty() {
                return super::output::print("no jobs\n");
            }
            let now = store.clock().now();
            let mut header = [
                "ID", "JOB", "QUEUE", "PRIORITY", "STATUS", "AGE", "PEAK RSS", "CPU", "METADATA",
            ]
            .map(str::to_owned)
            .to_vec();
            // A WAITING column only when a job waits for resources.
            let with_waiting = waiting.iter().any(Option::is_some);
            if with_waiting {
                header.push("WAITING".to_owned());
            }
            let mut rows = vec![header];
            for (job, why) in jobs.iter().zip(&waiting) {
                // SPEC §7: from the job's creation, so a `pending` job ages too.
                let since = job.created_at;
                rows.push(vec![
                    job.id.to_string(),
                    format!("{}/{}", job.run_id, job.name),
                    job.queue.clone(),
                    job.priority.to_string(),
                    job.status.to_string(),
                    crate::ui::format::duration((now - since).to_std().unwrap_or_default()),
                    job.peak_rss_bytes.map_or_else(
                        || "-".into(),
                        |b| format!("{:.1} MiB", b as f64 / 1_048_576.0),
                    ),
                    job.cpu_ms
                        .map_or_else(|| "-".into(), |ms| format!("{:.2}s", ms as f64 / 1000.0)),
                    metadata(job),
                ]);
                if with_waiting && let Some(row) = rows.last_mut() {
                    row.push(why.clone().unwrap_or_default());
                }
            }
            super::output::print(&table(&rows))
        }
        Some(JobsAction::Priority { job, priority }) => {
            let record = waiting_job(&*store, job)?;
            store
                .apply(&[crate::store::Change::Priority {
                    job: record.id,
                    priority: *priority,
                }])
                .map_err(fail)?;
            quiet_print(
                global,
                &format!("{}/{}: priority {priority}\n", record.run_id, record.name),
            )
        }
        Some(JobsAction::Top { job }) => {
            let record = waiting_job(&*store, job)?;
            store.set_top(record.id).map_err(fail)?;
            quiet_print(
                global,
                &format!(
                    "{}/{}: first in queue {}\n",
                    record.run_id, record.name, record.queue
                ),
            )
        }
        Some(JobsAction::Cancel { job }) => {
            let record = find_job(&*store, job)?;
            let message = match cancel_job(&*store, record.id).map_err(fail)? {
                CancelOutcome::Requested => "cancel requested",
                CancelOutcome::Cancelled => "cancelled",
                CancelOutcome::AlreadyFinished => "already finished, nothing to cancel",
            };
            quiet_print(
                global,
                &format!("{}/{}: {message}\n", record.run_id, record.name),
            )
        }
    }
}

/// Why each of `jobs` that is queued with a request waits, where that is resources: it fits
/// on no live worker's host ever, or on none now (SPEC §2 `resources`). Jobs of foreground
/// runs are left out: their own `coreflow run` admits them.
fn why_jobs_wait(
    store: &dyn Environment,
    jobs: &[JobRecord],
) -> Result<Vec<Option<String>>, Error> {
    if !jobs
        .iter()
        .any(|job| job.status == JobState::Queued && !job.request.is_empty())
    {
        return Ok(vec![None; jobs.len()]);
    }
    let workers: Vec<_> = store
        .workers()
        .map_err(Error::Store)?
        .into_iter()
        .filter(crate::store::WorkerRecord::is_live)
        .collect();
    // What runs on each host: the requests of its workers' current jobs.
    let mut used: std::collections::HashMap<&str, resources::Request> =
        std::collections::HashMap::new();
    for worker in &workers {
        let entry = used.entry(worker.host.as_str()).or_default();
        *entry = entry.plus(worker.used);
    }
    let mut owned: std::collections::HashMap<crate::state::RunId, bool> =
        std::collections::HashMap::new();
    let mut reasons = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.status != JobState::Queued || job.request.is_empty() {
            reasons.push(None);
            continue;
        }
        let foreground = match owned.get(&job.run_id) {
            Some(&owner) => owner,
            None => {
                let owner = store
                    .run(job.run_id)
                    .map_err(Error::Store)?
                    .is_some_and(|run| run.owner.is_some());
                owned.insert(job.run_id, owner);
                owner
            }
        };
        if foreground {
            reasons.push(None);
            continue;
        }
        // One entry per host with a worker that may take the job.
        let mut hosts: Vec<(&str, Offer, resources::Request)> = Vec::new();
        for worker in &workers {
            let Some(offer) = worker.offer else { continue };
            if !job
                .runs_on
                .iter()
                .all(|label| worker.labels.contains(label))
                || hosts.iter().any(|(host, ..)| *host == worker.host)
            {
                continue;
            }
            hosts.push((&worker.host, offer, used[worker.host.as_str()]));
        }
        let hosts: Vec<(Offer, resources::Request)> = hosts
            .into_iter()
            .map(|(_, offer, used)| (offer, used))
            .collect();
        reasons.push(why_waiting(job.request, &hosts));
    }
    Ok(reasons)
}

/// Bytes in GiB, to a tenth.
fn gib(bytes: u64) -> String {
    format!("{:.1}GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn metadata(job: &JobRecord) -> String {
    job.metadata
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn find_job(store: &dyn Environment, reference: &str) -> Result<JobRecord, Error> {
    store
        .resolve_job(reference)
        .map_err(Error::Store)?
        .ok_or_else(|| Error::Usage(format!("no job `{reference}` in this environment")))
}

/// A job that has not started: priority and top only apply to those.
fn waiting_job(store: &dyn Environment, reference: &str) -> Result<JobRecord, Error> {
    let job = find_job(store, reference)?;
    if !matches!(job.status, JobState::Pending | JobState::Queued) {
        return Err(Error::Usage(format!(
            "{}/{} is {} already; only a waiting job can be reprioritised",
            job.run_id, job.name, job.status
        )));
    }
    Ok(job)
}

pub(super) fn trigger(global: &GlobalArgs, args: &TriggerArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    let definition = store
        .definition(&args.workflow)
        .map_err(Error::Store)?
        .ok_or_else(|| {
            let names: Vec<String> = store
                .definitions()
                .map(|d| d.into_iter().map(|d| d.name).collect())
                .unwrap_or_default();
            let hint = crate::spec::diag::suggest(&args.workflow, names.iter().map(String::as_str))
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            Error::Usage(format!(
                "no workflow `{}` in this environment{hint}",
                args.workflow
            ))
        })?;
    let loaded = load_definition(&definition).map_err(|e| Error::Invalid(Box::new(e)))?;
    // Parameters are checked here first, for exit 2 with the usual messages.
    let overrides = Overrides::parse(&args.params).map_err(|e| Error::Params(vec![e]))?;
    params::resolve(&loaded.workflow, &IndexMap::new(), &overrides).map_err(Error::Params)?;
    let request = Request {
        loaded: &loaded,
        params: &args.params,
        trigger: serde_json::json!({ "type": "api" }),
        source: definition.source_path.as_deref(),
        now: store.clock().now(),
        fire: None,
    };
    let admission = admit(&store, &request)?;
    print_admission(global, &admission)
}

/// Prints what became of a request for a run: the queued run's id (`--json`: `{"run_id":
/// N, "status": "queued"}`); for a skipped one its id, and the reason on stderr; for one
/// waiting in line nothing on stdout (`--json`: `{"status": "waiting", "ahead": N}`) and a
/// note on stderr.
pub(super) fn print_admission(global: &GlobalArgs, admission: &Admission) -> Result<(), Error> {
    let (value, text, note) = match admission {
        Admission::Created(run) => (
            serde_json::json!({ "run_id": run.0, "status": "queued" }),
            format!("{run}\n"),
            None,
        ),
        Admission::Skipped { run, reason } => (
            serde_json::json!({ "run_id": run.0, "status": "skipped", "reason": reason }),
            format!("{run}\n"),
            Some(format!("run {run} skipped: {reason}")),
        ),
        Admission::Waiting { ahead } => (
            serde_json::json!({ "status": "waiting", "ahead": ahead }),
            String::new(),
            Some(format!(
                "waiting for a run slot (concurrency.max_runs), behind {ahead} other request(s): the daemon starts it when a run ends"
            )),
        ),
    };
    if let Some(note) = note
        && !global.quiet
    {
        eprintln!("coreflow: {note}");
    }
    if global.json {
        super::output::print(&super::output::json_text(&value))
    } else {
        super::output::print(&text)
    }
}

pub(super) fn worker(global: &GlobalArgs, args: &WorkerArgs) -> Result<(), Error> {
    let mut labels = local_labels();
    for label in &args.labels {
        if !label.is_empty() && !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    let envs = if global.env.is_empty() {
        vec![env::env_dir(global)]
    } else {
        global.env.iter().map(Into::into).collect()
    };
    let config = WorkerConfig {
        envs,
        labels,
        lease: args.lease,
        grace: args.grace,
        poll: Duration::from_millis(100),
        name: args
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", crate::store::host_name(), std::process::id())),
        once: args.once,
        offer: crate::scheduler::resources::Offer::of_host(args.offer.cpus, args.offer.memory),
    };
    // One job at a time: a single thread runs the claim loop and the attempt without handing
    // work between threads (the handoffs cost a tenth of a busy worker's CPU).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(serve(config, |dir| env::open_dir(dir, global)))
        .map_err(|e| Error::Environment(e.to_string()))
}

pub(super) fn workers(global: &GlobalArgs, args: &WorkersArgs) -> Result<(), Error> {
    let dirs: Vec<std::path::PathBuf> = if global.env.is_empty() {
        vec![env::env_dir(global)]
    } else {
        global.env.iter().map(Into::into).collect()
    };
    if let Some(WorkersAction::Move { worker, to }) = &args.action {
        // The worker reads the path from its own folder: make it independent of ours.
        let to = if to.contains("://") {
            to.clone()
        } else {
            std::path::absolute(to).map_or_else(|_| to.clone(), |path| path.display().to_string())
        };
        let to = &to;
        for dir in &dirs {
            let store = env::open_dir(dir, global)?;
            if store.request_move(worker, to).map_err(Error::Store)? {
                return quiet_print(global, &format!("worker {worker}: moving to {to}\n"));
            }
        }
        return Err(Error::Usage(format!("no running worker `{worker}`")));
    }
    let mut all = Vec::new();
    // Launchers whose last launch failed, as the daemon of each environment reports them.
    let mut failed_launches = Vec::new();
    for dir in &dirs {
        let store = env::open_dir(dir, global)?;
        if let Some(report) = LaunchReport::read(store.dir()) {
            for launcher in report.launchers {
                if launcher.failures > 0 {
                    failed_launches.push((dir.display().to_string(), report.pid, launcher));
                }
            }
        }
        // Settle vanished workers first: with every worker gone, nobody else would.
        crate::engine::queued::kill_leftovers(crate::engine::queued::expire_leases(&*store));
        for worker in store.workers().map_err(Error::Store)? {
            if !args.all && !worker.is_live() {
                continue;
            }
            let job = match worker.current_job {
                Some(id) => store
                    .job(id)
                    .ok()
                    .flatten()
                    .map(|j| format!("{}/{}", j.run_id, j.name)),
                None => None,
            };
            all.push((dir.display().to_string(), worker, job));
        }
    }
    if global.json {
        let mut values: Vec<serde_json::Value> = all
            .iter()
            .map(|(env, w, job)| {
                let mut value = serde_json::to_value(w).unwrap_or_default();
                value["environment"] = serde_json::json!(env);
                value["job"] = serde_json::json!(job);
                value
            })
            .collect();
        values.extend(failed_launches.iter().map(|(env, pid, launcher)| {
            serde_json::json!({
                "id": null,
                "name": format!("launcher {}", launcher.label),
                "labels": [launcher.label],
                "pid": pid,
                "state": "launch_failed",
                "launcher": launcher.label,
                "command": launcher.command,
                "error": launcher.error,
                "failures": launcher.failures,
                "failed_at": launcher.failed_at,
                "retry_at": launcher.retry_at,
                "environment": env,
                "job": null,
            })
        }));
        return super::output::print(&super::output::json_text(&values));
    }
    if all.is_empty() && failed_launches.is_empty() {
        return super::output::print(if args.all {
            "no workers\n"
        } else {
            "no live workers (`coreflow workers --all` lists stopped and lost ones)\n"
        });
    }
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let mut rows = vec![
        [
            "ID",
            "NAME",
            "STATE",
            "LABELS",
            "ENVIRONMENT",
            "JOB",
            "HEARTBEAT",
            "DONE",
            "CPUS",
            "MEMORY",
            "LIMITS",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for (env, w, job) in all {
        // Used by its job of what it offers; the offer is its host's.
        let (cpus, memory) = w.offer.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |offer| {
                (
                    format!("{}/{}", w.used.cpus, offer.cpus),
                    format!("{}/{}", gib(w.used.memory), gib(offer.memory)),
                )
            },
        );
        rows.push(vec![
            w.id.0.to_string(),
            w.name,
            w.state,
            w.labels.join(","),
            env,
            job.unwrap_or_else(|| "-".into()),
            format!(
                "{} ago",
                crate::ui::format::duration((now - w.heartbeat_at).to_std().unwrap_or_default())
            ),
            w.jobs_done.to_string(),
            cpus,
            memory,
            w.enforcement.unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut notes = String::new();
    for (env, _, launcher) in failed_launches {
        let since = |at: &Option<String>| {
            at.as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .map(|at| at.with_timezone(&chrono::Utc))
        };
        let ago = since(&launcher.failed_at).map_or_else(
            || "-".to_owned(),
            |at| {
                format!(
                    "{} ago",
                    crate::ui::format::duration((now - at).to_std().unwrap_or_default())
                )
            },
        );
        rows.push(vec![
            "-".to_owned(),
            format!("launcher {}", launcher.label),
            "launch_failed".to_owned(),
            launcher.label.clone(),
            env,
            "-".to_owned(),
            ago,
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
        ]);
        let retry = since(&launcher.retry_at).map_or_else(String::new, |at| {
            format!(
                "; next try in {}",
                crate::ui::format::duration((at - now).to_std().unwrap_or_default())
            )
        });
        notes.push_str(&format!(
            "launcher {}: {} ({} failed launch(es) in a row{retry})\n",
            launcher.label,
            launcher.error.as_deref().unwrap_or("launch failed"),
            launcher.failures,
        ));
    }
    let mut text = table(&rows);
    if !notes.is_empty() {
        text.push('\n');
        text.push_str(&notes);
    }
    super::output::print(&text)
}

fn quiet_print(global: &GlobalArgs, text: &str) -> Result<(), Error> {
    if global.quiet {
        Ok(())
    } else {
        super::output::print(text)
    }
}
