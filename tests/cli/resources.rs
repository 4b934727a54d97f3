//! `resources:` in a foreground run (SPEC §2): jobs start only where their CPUs and memory
//! fit beside the running ones, within `--cpus`/`--memory`; a big job reserves its share so
//! small jobs cannot starve it; a request no worker offers stops the run before it starts.
//! Through the store, standalone workers admit the same way against what their host offers,
//! and `jobs` and `workers` say why a job waits and what each worker offers.

use crate::engine_support::{Workspace, job, wait_until};
use crate::queue_support::{Worker, detach, jobs, wait_for_run, workers};

/// `(name, start, end)` of every job that appended a line `name start end` to `spans`.
fn spans(ws: &Workspace) -> Vec<(String, f64, f64)> {
    ws.lines("spans")
        .iter()
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            (
                parts[0].to_owned(),
                parts[1].parse().expect("a start time"),
                parts[2].parse().expect("an end time"),
            )
        })
        .collect()
}

/// A step that records when it ran, sleeping `seconds` in between.
fn timed(seconds: &str) -> String {
    format!(
        "steps:\n      - run: |\n          start=$(date +%s.%N); sleep {seconds}; echo \"$COREFLOW_JOB $start $(date +%s.%N)\" >> spans\n"
    )
}

#[test]
fn jobs_needing_the_whole_host_never_overlap_while_small_jobs_fill_the_gaps() {
    let mut yaml = String::from("jobs:\n");
    for i in 1..=3 {
        yaml.push_str(&format!(
            "  big{i}:\n    resources: {{ cpus: 2 }}\n    {}",
            timed("0.3")
        ));
    }
    for i in 1..=6 {
        yaml.push_str(&format!("  small{i}:\n    {}", timed("0.2")));
    }
    let ws = Workspace::with_workflow(&yaml);
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "4", "--cpus", "2"])
        .succeeds();
    let spans = spans(&ws);
    assert_eq!(spans.len(), 9, "{spans:?}");
    never_overlap(&spans, "big");
    let big: Vec<&(String, f64, f64)> = spans.iter().filter(|s| s.0.starts_with("big")).collect();
    // Jobs without `resources` ran beside the big ones.
    let small_beside_big = spans
        .iter()
        .filter(|s| s.0.starts_with("small"))
        .any(|s| big.iter().any(|b| s.1 < b.2 && b.1 < s.2));
    assert!(small_beside_big, "{spans:?}");
}

#[test]
fn a_big_job_is_not_starved_by_a_stream_of_small_ones() {
    let mut yaml = String::from("jobs:\n");
    for i in 1..=2 {
        yaml.push_str(&format!(
            "  small{i}:\n    resources: {{ cpus: 1 }}\n    {}",
            timed("0.3")
        ));
    }
    yaml.push_str(&format!(
        "  big:\n    resources: {{ cpus: 2 }}\n    {}",
        timed("0.1")
    ));
    for i in 3..=8 {
        yaml.push_str(&format!(
            "  small{i}:\n    resources: {{ cpus: 1 }}\n    {}",
            timed("0.3")
        ));
    }
    let ws = Workspace::with_workflow(&yaml);
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "4", "--cpus", "2"])
        .succeeds();
    let spans = spans(&ws);
    let start = |name: &str| {
        spans
            .iter()
            .find(|s| s.0 == name)
            .unwrap_or_else(|| panic!("{name} did not run: {spans:?}"))
            .1
    };
    for i in 3..=8 {
        assert!(
            start("big") < start(&format!("small{i}")),
            "small{i} started before the big job that waited first: {spans:?}"
        );
    }
    // And the CPUs were never over-committed.
    let mut events: Vec<(f64, f64)> = Vec::new();
    for (name, s, e) in &spans {
        let cpus = if name == "big" { 2.0 } else { 1.0 };
        events.push((*s, cpus));
        events.push((*e, -cpus));
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut used = 0.0;
    for (_, delta) in events {
        used += delta;
        assert!(used <= 2.0 + 1e-9, "more than 2 CPUs in use: {spans:?}");
    }
}

/// No two of `spans` whose names start with `prefix` overlap.
#[track_caller]
fn never_overlap(spans: &[(String, f64, f64)], prefix: &str) {
    let picked: Vec<&(String, f64, f64)> =
        spans.iter().filter(|s| s.0.starts_with(prefix)).collect();
    for a in &picked {
        for b in &picked {
            if a.0 != b.0 {
                assert!(a.2 <= b.1 || b.2 <= a.1, "{a:?} overlaps {b:?}");
            }
        }
    }
}

#[test]
fn workers_of_one_host_admit_requests_against_its_offer() {
    // Three workers on one host offering 2 CPUs: the `cpus: 2` jobs run one at a time, the
    // jobs asking nothing beside them, and a `cpus: 1` job queued behind a waiting big
    // one does not take the CPU it waits for.
    let mut yaml = String::from("jobs:\n");
    for i in 1..=3 {
        yaml.push_str(&format!(
            "  big{i}:\n    resources: {{ cpus: 2 }}\n    {}",
            timed("0.3")
        ));
    }
    for i in 1..=4 {
        yaml.push_str(&format!("  small{i}:\n    {}", timed("0.2")));
    }
    let ws = Workspace::with_workflow(&yaml);
    let run = detach(&ws, "wf.yaml", &[]);
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start(&ws, &["--cpus", "2"]))
        .collect();
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    for worker in workers {
        worker.stop();
    }
    let spans = spans(&ws);
    assert_eq!(spans.len(), 7, "{spans:?}");
    never_overlap(&spans, "big");
    let small_beside_big = spans.iter().filter(|s| s.0.starts_with("small")).any(|s| {
        spans
            .iter()
            .any(|b| b.0.starts_with("big") && s.1 < b.2 && b.1 < s.2)
    });
    assert!(small_beside_big, "{spans:?}");
}

#[test]
fn jobs_say_why_they_wait_and_workers_show_their_offer() {
    let ws = Workspace::with_workflow(
        "jobs:\n  hold:\n    resources: { cpus: 2 }\n    steps:\n      - run: |\n          touch started; while [ ! -e release ]; do sleep 0.02; done\n  next:\n    resources: { cpus: 2 }\n    steps: [{ run: 'true' }]\n  huge:\n    resources: { cpus: 8 }\n    steps: [{ run: 'true' }]\n",
    );
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start(&ws, &["--cpus", "2", "--memory", "1GiB"]);
    let other = Worker::start(&ws, &["--cpus", "2", "--memory", "1GiB"]);
    ws.wait_for_file("started");
    // The worker reports its offer and how limits are enforced where it runs.
    let mut entry = serde_json::Value::Null;
    wait_until("a worker to be busy", || {
        entry = workers(&ws, &[])
            .into_iter()
            .find(|w| w["state"] == "busy")
            .unwrap_or_default();
        !entry.is_null()
    });
    assert_eq!(entry["offer"]["cpus"], 2.0, "{entry:#}");
    assert_eq!(entry["offer"]["memory"], 1_073_741_824_u64, "{entry:#}");
    assert_eq!(entry["used"]["cpus"], 2.0, "{entry:#}");
    assert!(
        matches!(entry["enforcement"].as_str(), Some("cgroup" | "sampling")),
        "{entry:#}"
    );
    let waiting = |name: &str| -> String {
        jobs(&ws, &[])
            .into_iter()
            .find(|j| j["name"] == name)
            .and_then(|j| j["waiting"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    assert_eq!(waiting("huge"), "needs 8 cpus; the largest worker offers 2");
    assert_eq!(
        waiting("next"),
        "waits for 2 cpus; at most 0 are free on a worker's host"
    );
    let text = ws.coreflow().arg("jobs").succeeds();
    assert!(
        text.stdout().contains("WAITING")
            && text
                .stdout()
                .contains("needs 8 cpus; the largest worker offers 2"),
        "{text}"
    );
    let text = ws.coreflow().arg("workers").succeeds();
    assert!(
        text.stdout().contains("CPUS") && text.stdout().contains("2/2"),
        "{text}"
    );
    ws.file("release", "");
    // `next` runs once `hold` has ended; `huge` never fits, and waits.
    wait_until("`next` to succeed", || {
        jobs(&ws, &[])
            .iter()
            .any(|j| j["name"] == "next" && j["status"] == "succeeded")
    });
    assert_eq!(waiting("huge"), "needs 8 cpus; the largest worker offers 2");
    ws.coreflow().args(["cancel", &run]).succeeds();
    assert_eq!(wait_for_run(&ws, &run), "cancelled");
    worker.stop();
    other.stop();
}

#[test]
fn a_request_no_worker_offers_stops_the_run_before_it_starts() {
    let ws = Workspace::with_workflow(
        "jobs:\n  a:\n    steps: [{ run: touch a-ran }]\n  huge:\n    resources: { cpus: 8, memory: 1GiB }\n    steps: [{ run: 'true' }]\n",
    );
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--cpus", "2"])
        .fails(2);
    assert!(
        output
            .stderr()
            .contains("job `huge` needs 8 cpus; the largest worker offers 2"),
        "{output}"
    );
    assert!(!ws.exists("a-ran"));
    assert!(ws.runs().is_empty());
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--cpus", "8", "--memory", "512MiB"])
        .fails(2);
    assert!(
        output
            .stderr()
            .contains("job `huge` needs 1GiB of memory; the largest worker offers 512MiB"),
        "{output}"
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--cpus", "8", "--memory", "2GiB"])
        .succeeds();
    let show = ws.show("last");
    assert_eq!(job(&show, "huge")["status"], "succeeded");
    // `show` has each job's request beside its peak.
    assert_eq!(
        job(&show, "huge")["resources"],
        serde_json::json!({ "cpus": 8.0, "memory_bytes": 1_073_741_824_u64 })
    );
    assert!(job(&show, "a").get("resources").is_none(), "{show:#}");
    let text = ws.coreflow().args(["show", "last"]).succeeds();
    assert!(
        text.stdout().contains("REQUEST") && text.stdout().contains("8 cpus, 1GiB"),
        "{text}"
    );
}

#[test]
fn validate_checks_resources() {
    let ws = Workspace::with_workflow(
        "defaults:\n  resources: { memory: 12 parsecs }\njobs:\n  a:\n    resources: { cpus: -1, disk: 1GiB }\n    compute: borrowed\n    steps: [{ run: 'true' }]\n",
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    let stderr = output.stderr();
    for expected in [
        "unknown size unit `parsecs`",
        "unknown key `disk`",
        "`borrowed` is not a valid value for `compute`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
}
