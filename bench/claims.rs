//! Claim throughput of a PostgreSQL environment, without process starts (`bench/claims.sh`).
//!
//! Queues `--jobs` independent jobs in one detached run, then `--workers` threads, each with
//! its own connection (as a `coreflow worker` process has), register as workers and drain
//! them: claim, record the attempt's success and claim the next in one call
//! (`finish_and_claim`, what a draining worker does), with no step process between. Prints
//! the wall time from the first claim to the last end, claims per second, and the checks:
//! every job claimed exactly once (doubled, lost) and the run finished.
//!
//! Usage: `cargo bench --bench claims -- URL [--jobs N] [--workers N]`; URL is a PostgreSQL
//! database; the bench makes a schema of its own in it and drops it at the end.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use chrono::Utc;
use coreflow::state::{JobState, RunState};
use coreflow::store::{Change, Env, NewJob, NewRun, Transition, open};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut url = None;
    let (mut jobs, mut workers) = (5000_usize, 8_usize);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail(&format!("{name} needs a number")))
        };
        match arg.as_str() {
            "--jobs" => jobs = number("--jobs"),
            "--workers" => workers = number("--workers"),
            _ if url.is_none() && arg.starts_with("postgres") => url = Some(arg),
            _ => fail(&format!("unknown argument {arg}")),
        }
    }
    let url = url.unwrap_or_else(|| fail("usage: claims URL [--jobs N] [--workers N]"));
    let schema = format!("cf_bench_claims_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let location = format!("{url}{sep}options=-csearch_path%3D{schema}");

    let env = open_env(&location);
    let job = |i: usize| NewJob {
        name: format!("j{i}"),
        base_name: format!("j{i}"),
        matrix: serde_json::Value::Null,
        queue: "default".to_owned(),
        priority: 0,
        metadata: serde_json::json!({}),
        needs: Vec::new(),
        max_attempts: 1,
        state: JobState::Queued,
        runs_on: Vec::new(),
        item: serde_json::Value::Null,
        continue_on_error: false,
        request: coreflow::scheduler::resources::Request::default(),
    };
    let run = NewRun {
        workflow: "claims".to_owned(),
        def_hash: "bench".to_owned(),
        params: serde_json::json!({}),
        trigger: serde_json::json!({"kind": "manual"}),
        fire: None,
        status: RunState::Queued,
        reason: None,
        owner: None,
        created_at: Utc::now(),
        jobs: (0..jobs).map(job).collect(),
        parent: None,
        notify: false,
    };
    let (run_id, _) = env
        .create_run(&run)
        .unwrap_or_else(|e| fail(&e.to_string()));

    let barrier = Arc::new(Barrier::new(workers + 1));
    let threads: Vec<_> = (0..workers)
        .map(|n| {
            let location = location.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let env = open_env(&location);
                let worker = env
                    .register_worker(&format!("bench-{n}"), &[])
                    .unwrap_or_else(|e| fail(&e.to_string()));
                let lease = Duration::from_secs(60);
                let token = |_, _, _| String::from("bench");
                barrier.wait();
                let mut claimed = Vec::new();
                let mut next = env
                    .claim_next(worker, &[], lease, &token)
                    .unwrap_or_else(|e| fail(&e.to_string()));
                while let Some(job) = next {
                    claimed.push(job.job.id.0);
                    let done =
                        Change::Job(Transition::new(job.job.id, JobState::Succeeded, Utc::now()));
                    next = env
                        .finish_and_claim(worker, job.job.id, &[done], None, &[], lease, &token)
                        .unwrap_or_else(|e| fail(&e.to_string()))
                        .1;
                }
                claimed
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let claimed: Vec<Vec<i64>> = threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| fail("a worker thread panicked"))
        })
        .collect();
    let wall = start.elapsed().as_secs_f64();

    let all: Vec<i64> = claimed.iter().flatten().copied().collect();
    let distinct: HashSet<i64> = all.iter().copied().collect();
    let doubled = all.len() - distinct.len();
    let lost = jobs.saturating_sub(distinct.len());
    let finished = env
        .run(run_id)
        .ok()
        .flatten()
        .map(|r| r.status)
        .unwrap_or(RunState::Running);
    let split: Vec<String> = claimed.iter().map(|c| c.len().to_string()).collect();
    println!("| jobs | workers | wall (s) | claims/s | doubled | lost | run | per worker |");
    println!("|---:|---:|---:|---:|---:|---:|---|---|");
    println!(
        "| {jobs} | {workers} | {wall:.2} | {:.0} | {doubled} | {lost} | {} | {} |",
        jobs as f64 / wall,
        finished.as_str(),
        split.join(" / ")
    );
    drop_schema(&url, &schema);
    if doubled > 0 || lost > 0 || finished != RunState::Succeeded {
        std::process::exit(1);
    }
}

fn open_env(location: &str) -> Env {
    open(Path::new(location)).unwrap_or_else(|e| fail(&e.to_string()))
}

fn drop_schema(url: &str, schema: &str) {
    match postgres::Client::connect(url, postgres::NoTls) {
        Ok(mut client) => {
            if let Err(e) = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")) {
                eprintln!("claims: could not drop schema {schema}: {e}");
            }
        }
        Err(e) => eprintln!("claims: could not drop schema {schema}: {e}"),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("claims: {message}");
    std::process::exit(2)
}
