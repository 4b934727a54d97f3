//! `coreflow runs`, `coreflow show RUN` and `coreflow logs RUN [JOB]`: reading runs back.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::args::{GlobalArgs, LogsArgs, RunsArgs, ShowArgs};
use crate::cli::env;
use crate::error::Error;
use crate::scheduler::resources::Request;
use crate::state::RunState;
use crate::store::Environment;
use crate::store::{JobRecord, RunFilter, RunRecord};
use crate::ui::format;

pub(super) fn runs(global: &GlobalArgs, args: &RunsArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    let status = match &args.status {
        Some(s) => Some(
            s.parse::<RunState>()
                .map_err(|e| Error::Usage(e.to_string()))?,
        ),
        None => None,
    };
    let filter = RunFilter {
        workflow: args.workflow.clone(),
        status,
        limit: Some(args.limit),
        before: None,
    };
    let runs = store.runs(&filter).map_err(Error::Store)?;
    if global.json {
        return super::output::print(&super::output::json_text(&runs));
    }
    if runs.is_empty() {
        return super::output::print("no runs\n");
    }
    let mut rows = vec![
        ["ID", "WORKFLOW", "STATUS", "TRIGGER", "CREATED", "DURATION"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for run in &runs {
        rows.push(vec![
            run.id.to_string(),
            run.workflow.clone(),
            run.status.to_string(),
            trigger_name(run),
            run.created_at
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            run_duration(run),
        ]);
    }
    super::output::print(&super::output::table(&rows))
}

pub(super) fn show(global: &GlobalArgs, args: &ShowArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    let run = find_run(&*store, &args.run)?;
    let jobs = store.jobs(run.id).map_err(Error::Store)?;
    // What each job asked of its host (`resources`).
    let requests: Vec<Request> = jobs.iter().map(|job| job.request).collect();
    if global.json {
        let document = crate::web::views::run_document(&*store, run.id)
            .map_err(Error::Store)?
            .ok_or_else(|| Error::Usage(format!("no run {}", run.id)))?;
        return super::output::print(&super::output::json_text(&document));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} · {} · {} · {}",
        run.id,
        run.workflow,
        run.status,
        run_duration(&run)
    );
    let _ = writeln!(out, "trigger: {}", trigger_name(&run));
    if let Some(parent) = run.parent {
        let caller = store
            .job(parent.job)
            .ok()
            .flatten()
            .map_or_else(|| parent.job.to_string(), |job| job.name);
        let _ = writeln!(out, "called by: run {} job {caller}", parent.run);
    }
    if let Some(params) = run.params.as_object().filter(|p| !p.is_empty()) {
        let shown: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect();
        let _ = writeln!(out, "params: {}", shown.join(" "));
    }
    out.push('\n');
    let mut header = [
        "JOB", "STATUS", "ATTEMPTS", "DURATION", "EXIT", "PEAK RSS", "CPU", "NOTE",
    ]
    .map(str::to_owned)
    .to_vec();
    // A REQUEST column only for runs whose jobs ask for resources.
    let with_requests = requests.iter().any(|r| !r.is_empty());
    if with_requests {
        header.insert(5, "REQUEST".to_owned());
    }
    let mut rows = vec![header];
    for (job, request) in jobs.iter().zip(&requests) {
        let mut row = vec![
            job.name.clone(),
            job.status.to_string(),
            job.attempts.to_string(),
            job.duration_ms.map_or_else(
                || "-".into(),
                |ms| format::duration(Duration::from_millis(ms)),
            ),
            job.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            job.peak_rss_bytes.map_or_else(|| "-".into(), bytes),
            job.cpu_ms
                .map_or_else(|| "-".into(), |ms| format!("{:.2}s", ms as f64 / 1000.0)),
            note(job),
        ];
        if with_requests {
            row.insert(5, describe_request(*request));
        }
        rows.push(row);
    }
    out.push_str(&super::output::table(&rows));
    out.push_str(&super::blocks::show_section(&*store, run.id, &jobs)?);
    let notifications = store.notifications(run.id).map_err(Error::Store)?;
    if !notifications.is_empty() {
        out.push_str("\nnotifications:\n");
        for n in &notifications {
            let result = match &n.error {
                None => "sent".to_owned(),
                Some(error) => format!("failed: {error}"),
            };
            let _ = writeln!(
                out,
                "  {} {} · attempt {} · {result}",
                n.kind, n.target, n.attempt
            );
        }
    }
    super::output::print(&out)
}

pub(super) fn logs(global: &GlobalArgs, args: &LogsArgs) -> Result<(), Error> {
    let store = env::open(global)?;
    // `logs 42/build` names the run and the job in one, as `cancel` and `jobs` take them.
    let (run_ref, job_ref) = match (&args.job, args.run.split_once('/')) {
        (None, Some((run, job))) => (run.to_owned(), Some(job.to_owned())),
        _ => (args.run.clone(), args.job.clone()),
    };
    let run = find_run(&*store, &run_ref)?;
    let job = match &job_ref {
        Some(name) => {
            let reference = if name.contains('/') || name.parse::<i64>().is_ok() {
                name.clone()
            } else {
                format!("{}/{name}", run.id)
            };
            let job = store.resolve_job(&reference).map_err(Error::Store)?;
            match job {
                Some(job) if job.run_id == run.id => Some(job.id),
                _ => return Err(Error::Usage(format!("run {} has no job `{name}`", run.id))),
            }
        }
        None => None,
    };
    let mut cursor = None;
    loop {
        // Look at the run before reading: when it has ended, this read holds every line it
        // wrote, and it is the last one.
        let ended = !args.follow
            || store
                .run(run.id)
                .map_err(Error::Store)?
                .is_none_or(|r| r.status.is_terminal());
        let mut reader = store
            .read_logs(run.id, job, cursor.as_ref())
            .map_err(Error::Store)?;
        let mut out = String::new();
        for line in reader.by_ref() {
            let line = line.map_err(Error::Store)?;
            if global.json {
                out.push_str(&serde_json::to_string(&line).unwrap_or_default());
                out.push('\n');
            } else {
                let _ = writeln!(out, "{}/{} | {}", line.job, line.step, line.line);
            }
            if out.len() > 64 * 1024 {
                super::output::print(&std::mem::take(&mut out))?;
            }
        }
        super::output::print(&out)?;
        if ended {
            return Ok(());
        }
        cursor = Some(reader.cursor());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Finds a run by id or `last`; not found is exit 2.
pub(super) fn find_run(store: &dyn Environment, reference: &str) -> Result<RunRecord, Error> {
    store
        .resolve_run(reference)
        .map_err(Error::Store)?
        .ok_or_else(|| Error::Usage(format!("no run `{reference}` in this environment")))
}

/// What started the run: its trigger's type, with the calling run for a child run
/// (`workflow (run 1)`).
fn trigger_name(run: &RunRecord) -> String {
    let kind = run
        .trigger
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("manual");
    match run.parent {
        Some(parent) => format!("{kind} (run {})", parent.run),
        None => kind.to_owned(),
    }
}

fn run_duration(run: &RunRecord) -> String {
    match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) => format::duration((end - start).to_std().unwrap_or_default()),
        (Some(_), None) => "running".to_owned(),
        _ => "-".to_owned(),
    }
}

fn note(job: &JobRecord) -> String {
    let mut parts = Vec::new();
    if let Some(child) = job.child_runs.last() {
        parts.push(format!("child run {child}"));
    }
    if !job.outputs.is_empty() {
        let shown: Vec<String> = job
            .outputs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.lines().next().unwrap_or("")))
            .collect();
        parts.push(shown.join(" "));
    }
    if let Some(reason) = &job.reason {
        parts.push(reason.clone());
    }
    parts.join("; ")
}

fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bytes(n: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a display figure")]
    let mib = n as f64 / (1024.0 * 1024.0);
    format!("{mib:.1} MiB")
}

/// `2 cpus, 4GiB`, or `-` for a job that asks for nothing.
fn describe_request(request: Request) -> String {
    let mut parts = Vec::new();
    if request.cpus > 0.0 {
        parts.push(format!("{} cpus", request.cpus));
    }
    if request.memory > 0 {
        parts.push(crate::spec::model::MemorySize(request.memory).to_string());
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}
