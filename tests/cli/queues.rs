//! JobQueues, the Scheduler and standalone workers (issue 4), end to end with real
//! `coreflow worker` processes on a temporary environment: exactly-once execution, the
//! scheduler's order, labels, paused queues, concurrency limits, lost and stopped workers,
//! queue and job commands, `trigger`, `workers` and `workers move`, performance data.
//!
//! Steps record what happened in files; tests wait for files and states through the one
//! polling helper, never for a fixed time, and assert no durations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::engine_support::{Workspace, assert_gone, job, wait_until};
use crate::queue_support::{
    Worker, detach, jobs, run_status, wait_for, wait_for_run, wait_for_worker, workers,
};

/// A workflow of `n` independent jobs, each appending `RUN JOB TAG` to `ran`.
fn independent_jobs(n: usize) -> String {
    let mut yaml =
        String::from("name: many\nparams:\n  tag: { type: string, default: none }\njobs:\n");
    for i in 0..n {
        writeln!(
            yaml,
            "  j{i}: {{ steps: [{{ run: 'echo \"$COREFLOW_RUN_ID $COREFLOW_JOB ${{{{ params.tag }}}}\" >> ran' }}] }}"
        )
        .expect("writing to a String works");
    }
    yaml
}

#[test]
fn four_workers_drain_400_queued_jobs_running_each_exactly_once() {
    let ws = Workspace::with_workflow(&independent_jobs(100));
    let pool: Vec<Worker> = (0..4).map(|_| Worker::start(&ws, &[])).collect();
    // Four runs of 100 jobs, each with its own parameter: a worker must not mix them up.
    let tags = ["alpha", "beta", "gamma", "delta"];
    let runs: Vec<String> = tags
        .iter()
        .map(|tag| detach(&ws, "wf.yaml", &["-p", &format!("tag={tag}")]))
        .collect();
    for run in &runs {
        assert_eq!(wait_for_run(&ws, run), "succeeded");
    }

    let done = jobs(&ws, &["--status", "succeeded"]);
    assert_eq!(done.len(), 400);
    for job in &done {
        assert_eq!(job["attempts"], 1, "{job:#}");
    }
    // Each job's step ran once: 400 lines, no two alike, each with its own run's tag.
    let lines = ws.lines("ran");
    assert_eq!(lines.len(), 400, "{lines:?}");
    let unique: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), 400);
    let tag_of: BTreeMap<&str, &str> = runs.iter().map(String::as_str).zip(tags).collect();
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(tag_of[fields[0]], fields[2], "{line}");
    }
    let total: u64 = workers(&ws, &[])
        .iter()
        .map(|w| w["jobs_done"].as_u64().expect("jobs_done is a number"))
        .sum();
    assert_eq!(total, 400);
    for worker in pool {
        worker.stop();
    }
}

#[test]
fn a_worker_leaves_the_jobs_of_a_foreground_run_to_that_run() {
    // `coreflow run` marks its ready jobs `queued` in the environment as well; a worker
    // serving the same environment must not run them a second time. With one local worker
    // and every job waiting for `go`, 19 jobs sit queued while the worker looks on.
    let mut yaml = String::from("jobs:\n");
    for i in 0..20 {
        writeln!(
            yaml,
            "  j{i}: {{ steps: [{{ run: 'touch started; {}; echo $COREFLOW_JOB >> ran' }}] }}",
            wait_for("go")
        )
        .expect("writing to a String works");
    }
    let ws = Workspace::with_workflow(&yaml);
    let worker = Worker::start(&ws, &[]);
    wait_for_worker(&ws, &[], worker.pid(), "registered", |_| true);
    let foreground = ws
        .coreflow()
        .args(["run", "wf.yaml", "--workers", "1"])
        .spawn();
    ws.wait_for_file("started");
    wait_until("19 queued jobs", || {
        jobs(&ws, &["--status", "queued"]).len() == 19
    });
    // Two heartbeats later the worker has looked for work many times.
    for _ in 0..2 {
        let seen = wait_for_worker(&ws, &[], worker.pid(), "idle", |w| w["state"] == "idle");
        let beat = seen["heartbeat_at"].clone();
        wait_for_worker(&ws, &[], worker.pid(), "a later heartbeat", |w| {
            w["heartbeat_at"] != beat
        });
    }
    ws.file("go", "");
    let output = foreground.wait();
    assert_eq!(output.code(), Some(0), "{output}");
    let lines = ws.lines("ran");
    assert_eq!(lines.len(), 20, "{lines:?}");
    let listed = wait_for_worker(&ws, &[], worker.pid(), "idle", |w| w["state"] == "idle");
    assert_eq!(listed["jobs_done"], 0, "{listed:#}");
    worker.stop();
}

#[test]
fn one_worker_takes_the_top_job_then_higher_priority_then_older() {
    let ws = Workspace::new();
    ws.file(
        "first.yaml",
        r#"
defaults: { queue: ordered }
jobs:
  a_top: { priority: 0, steps: [{ run: echo $COREFLOW_JOB >> order }] }
  a_high: { priority: 5, steps: [{ run: echo $COREFLOW_JOB >> order }] }
  a_mid: { priority: 3, steps: [{ run: echo $COREFLOW_JOB >> order }] }
  a_low: { priority: 1, steps: [{ run: echo $COREFLOW_JOB >> order }] }
"#,
    );
    ws.file(
        "second.yaml",
        r#"
defaults: { queue: ordered }
jobs:
  b_mid: { priority: 3, steps: [{ run: echo $COREFLOW_JOB >> order }] }
"#,
    );
    ws.coreflow().args(["queue", "add", "ordered"]).succeeds();
    ws.coreflow().args(["queue", "pause", "ordered"]).succeeds();
    let first = detach(&ws, "first.yaml", &[]);
    let second = detach(&ws, "second.yaml", &[]);
    ws.coreflow()
        .args(["jobs", "top", &format!("{first}/a_top")])
        .succeeds();
    ws.coreflow()
        .args(["jobs", "priority", &format!("{first}/a_low"), "4"])
        .succeeds();
    let queued = jobs(&ws, &["--queue", "ordered", "--status", "queued"]);
    assert_eq!(queued.len(), 5);

    ws.coreflow()
        .args(["queue", "resume", "ordered"])
        .succeeds();
    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &first), "succeeded");
    assert_eq!(wait_for_run(&ws, &second), "succeeded");
    worker.stop();
    // `jobs top` first, then priority (a_low was raised to 4), then age: a_mid's run was
    // queued before b_mid's.
    assert_eq!(
        ws.lines("order"),
        ["a_top", "a_high", "a_low", "a_mid", "b_mid"]
    );
}

#[test]
fn a_job_asking_for_a_label_waits_for_a_worker_that_carries_it() {
    let ws = Workspace::new();
    ws.file(
        "gpu.yaml",
        "jobs:\n  train: { runs_on: [gpu], steps: [{ run: echo train >> ran }] }\n",
    );
    ws.file(
        "plain.yaml",
        "jobs:\n  plain: { steps: [{ run: echo plain >> ran }] }\n",
    );
    // The labelled job is older, so a worker looks at it first.
    let gpu = detach(&ws, "gpu.yaml", &[]);
    let plain = detach(&ws, "plain.yaml", &[]);
    let cpu_worker = Worker::start(&ws, &["--labels", "fast"]);
    assert_eq!(wait_for_run(&ws, &plain), "succeeded");
    // Well after that, through another heartbeat, the labelled job still waits.
    let seen = wait_for_worker(&ws, &[], cpu_worker.pid(), "idle", |w| w["state"] == "idle");
    let beat = seen["heartbeat_at"].clone();
    wait_for_worker(&ws, &[], cpu_worker.pid(), "a later heartbeat", |w| {
        w["heartbeat_at"] != beat
    });
    assert_eq!(run_status(&ws, &gpu), "queued");
    assert_eq!(ws.lines("ran"), ["plain"]);

    let gpu_worker = Worker::start(&ws, &["--labels", "gpu,fast"]);
    assert_eq!(wait_for_run(&ws, &gpu), "succeeded");
    assert_eq!(ws.lines("ran"), ["plain", "train"]);
    let all = workers(&ws, &[]);
    let done = |pid: u32| {
        all.iter()
            .find(|w| w["pid"] == pid)
            .expect("the worker is listed")["jobs_done"]
            .clone()
    };
    assert_eq!(done(cpu_worker.pid()), 1);
    assert_eq!(done(gpu_worker.pid()), 1);
    cpu_worker.stop();
    gpu_worker.stop();
}

#[test]
fn a_paused_queue_holds_its_jobs_until_it_is_resumed() {
    let ws = Workspace::new();
    // More held jobs than a worker reads at once, all older than the free one.
    let mut held = String::from("defaults: { queue: held }\njobs:\n");
    for i in 0..70 {
        writeln!(
            held,
            "  h{i}: {{ steps: [{{ run: echo h{i} >> held-ran }}] }}"
        )
        .expect("writing to a String works");
    }
    ws.file("held.yaml", held);
    ws.file(
        "free.yaml",
        "jobs:\n  free: { steps: [{ run: echo free >> free-ran }] }\n",
    );
    ws.coreflow().args(["queue", "add", "held"]).succeeds();
    ws.coreflow().args(["queue", "pause", "held"]).succeeds();
    let held_run = detach(&ws, "held.yaml", &[]);
    let free_run = detach(&ws, "free.yaml", &[]);

    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &free_run), "succeeded");
    let seen = wait_for_worker(&ws, &[], worker.pid(), "idle", |w| w["state"] == "idle");
    let beat = seen["heartbeat_at"].clone();
    wait_for_worker(&ws, &[], worker.pid(), "a later heartbeat", |w| {
        w["heartbeat_at"] != beat
    });
    assert!(!ws.exists("held-ran"), "a job of a paused queue ran");
    assert_eq!(
        jobs(&ws, &["--queue", "held", "--status", "queued"]).len(),
        70
    );
    let listed = ws
        .coreflow()
        .args(["queue", "list", "--json"])
        .succeeds()
        .stdout_json();
    let queue = listed
        .as_array()
        .expect("queue list is an array")
        .iter()
        .find(|q| q["name"] == "held")
        .expect("the queue is listed")
        .clone();
    assert_eq!(queue["paused"], true);
    assert_eq!(queue["depth"], 70);

    ws.coreflow().args(["queue", "resume", "held"]).succeeds();
    assert_eq!(wait_for_run(&ws, &held_run), "succeeded");
    assert_eq!(ws.lines("held-ran").len(), 70);
    worker.stop();
}

#[test]
fn a_foreground_run_whose_jobs_wait_in_a_paused_queue_is_queued_until_one_starts() {
    let ws = Workspace::with_workflow(
        "jobs:\n  held:\n    queue: held\n    steps:\n      - run: touch held-ran\n  after:\n    needs: [held]\n    steps:\n      - run: \"true\"\n",
    );
    ws.coreflow().args(["queue", "add", "held"]).succeeds();
    ws.coreflow().args(["queue", "pause", "held"]).succeeds();
    let running = ws.coreflow().args(["run", "wf.yaml"]).spawn();
    // The job reached its queue: everything the run wrote before it is committed.
    wait_until("the job to wait in its queue", || {
        jobs(&ws, &["--queue", "held"])
            .iter()
            .any(|j| j["status"] == "queued")
    });
    assert_eq!(run_status(&ws, "1"), "queued");
    // A pending job ages from its creation, with its run (SPEC §7), not from a queueing
    // that has not happened.
    let pending = jobs(&ws, &["--status", "pending"]);
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(
        pending[0]["created_at"],
        ws.show("1")["created_at"],
        "{pending:#?}"
    );
    ws.coreflow().args(["queue", "resume", "held"]).succeeds();
    let output = running.wait();
    assert_eq!(output.code(), Some(0), "{output}");
    assert_eq!(run_status(&ws, "1"), "succeeded");
    let show = ws.show("1");
    assert!(show["started_at"].is_string(), "{show:#}");
}

#[test]
fn four_workers_never_run_more_jobs_of_a_queue_than_its_concurrency() {
    let ws = Workspace::new();
    // Each job marks itself running, counts the running ones, works a little, unmarks.
    let mut yaml = String::from("defaults: { queue: pair }\njobs:\n");
    for i in 0..10 {
        writeln!(
            yaml,
            "  c{i}:\n    steps:\n      - run: |\n          touch slots/$COREFLOW_JOB\n          \
             ls slots | wc -l >> counts\n          sleep 0.2\n          rm slots/$COREFLOW_JOB"
        )
        .expect("writing to a String works");
    }
    ws.file("wf.yaml", yaml);
    ws.file("slots/.keep", "");
    ws.coreflow()
        .args(["queue", "add", "pair", "--concurrency", "2"])
        .succeeds();
    let pool: Vec<Worker> = (0..4).map(|_| Worker::start(&ws, &[])).collect();
    let run = detach(&ws, "wf.yaml", &[]);
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    let counts: Vec<usize> = ws
        .lines("counts")
        .iter()
        .map(|line| line.trim().parse().expect("a count"))
        .collect();
    assert_eq!(counts.len(), 10);
    // `ls` also lists nothing else: `.keep` is hidden.
    let most = counts.iter().copied().max().expect("ten counts");
    assert!(
        most <= 2,
        "{most} jobs of a queue limited to 2 ran at once: {counts:?}"
    );
    for worker in pool {
        worker.stop();
    }
}

/// A job whose first attempt writes its pid and blocks until `go` exists; later attempts
/// finish at once.
fn blocking_first_attempt(max_attempts: u32) -> String {
    format!(
        r#"
jobs:
  slow:
    retry: {{ max_attempts: {max_attempts}, delay: 100ms }}
    steps:
      - run: |
          echo "$COREFLOW_ATTEMPT" >> attempts
          if [ "$COREFLOW_ATTEMPT" = 1 ]; then
            echo $$ > pid.tmp && mv pid.tmp pid
            {}
          fi
"#,
        wait_for("go")
    )
}

#[test]
fn a_job_of_a_killed_worker_is_requeued_after_its_lease_and_finished_by_another() {
    let ws = Workspace::with_workflow(&blocking_first_attempt(2));
    let first = Worker::start(&ws, &["--lease", "2s"]);
    let killed_pid = first.pid();
    let run = detach(&ws, "wf.yaml", &[]);
    let step_pid = ws.wait_for_pid("pid");
    first.signal(Signal::SIGKILL);
    let output = first.wait();
    assert_eq!(output.signal(), Some(Signal::SIGKILL as i32), "{output}");

    let second = Worker::start(&ws, &["--lease", "2s"]);
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    let show = ws.show(&run);
    let slow = job(&show, "slow");
    assert_eq!(slow["status"], "succeeded", "{show:#}");
    assert_eq!(slow["attempts"], 2, "{show:#}");
    let history = slow["history"].as_array().expect("history is an array");
    assert_eq!(history.len(), 2, "{show:#}");
    assert_eq!(history[0]["status"], "failed", "{show:#}");
    assert_eq!(history[0]["reason"], "lost", "{show:#}");
    assert_eq!(history[1]["status"], "succeeded", "{show:#}");
    assert_eq!(ws.lines("attempts"), ["1", "2"]);
    // The lost attempt's process does not run on beside the new one.
    assert_gone(step_pid, "the lost attempt's step");
    // Live workers by default; `--all` for the history.
    assert!(
        !workers(&ws, &[]).iter().any(|w| w["pid"] == killed_pid),
        "a lost worker is listed as live"
    );
    let killed = workers(&ws, &["--all"])
        .into_iter()
        .find(|w| w["pid"] == killed_pid)
        .expect("the killed worker is listed");
    assert_eq!(killed["state"], "lost", "{killed:#}");
    second.stop();
}

#[test]
fn a_job_of_a_killed_worker_without_attempts_left_fails_as_lost() {
    let ws = Workspace::with_workflow(&blocking_first_attempt(1));
    let first = Worker::start(&ws, &["--lease", "2s"]);
    let run = detach(&ws, "wf.yaml", &[]);
    let step_pid = ws.wait_for_pid("pid");
    first.signal(Signal::SIGKILL);
    first.wait();

    let second = Worker::start(&ws, &["--lease", "2s"]);
    assert_eq!(wait_for_run(&ws, &run), "failed");
    let show = ws.show(&run);
    let slow = job(&show, "slow");
    assert_eq!(slow["status"], "failed", "{show:#}");
    assert_eq!(slow["reason"], "lost", "{show:#}");
    assert_eq!(slow["attempts"], 1, "{show:#}");
    assert_eq!(ws.lines("attempts"), ["1"]);
    assert_gone(step_pid, "the lost attempt's step");
    second.stop();
}

#[test]
fn sigterm_lets_the_current_job_finish_within_the_grace_and_starts_nothing_new() {
    let ws = Workspace::with_workflow(&format!(
        r#"
jobs:
  current:
    steps:
      - run: |
          touch started
          {}
          echo current >> ran
  next:
    needs: current
    steps:
      - run: echo next >> ran
"#,
        wait_for("go")
    ));
    let worker = Worker::start(&ws, &["--grace", "30s"]);
    let run = detach(&ws, "wf.yaml", &[]);
    ws.wait_for_file("started");
    worker.signal(Signal::SIGTERM);
    wait_for_worker(&ws, &[], worker.pid(), "stopping", |w| {
        w["state"] == "stopping"
    });
    ws.file("go", "");
    let output = worker.wait();
    assert_eq!(output.code(), Some(0), "{output}");
    let show = ws.show(&run);
    assert_eq!(job(&show, "current")["status"], "succeeded", "{show:#}");
    // The stopping worker took nothing more.
    assert_eq!(job(&show, "next")["status"], "queued", "{show:#}");
    assert_eq!(ws.lines("ran"), ["current"]);
}

#[test]
fn sigterm_requeues_a_job_that_outlasts_the_grace() {
    let ws = Workspace::with_workflow(&format!(
        r#"
jobs:
  long:
    steps:
      - run: |
          echo $$ > pid.tmp && mv pid.tmp pid
          {}
"#,
        wait_for("never")
    ));
    let worker = Worker::start(&ws, &["--grace", "1s"]);
    let run = detach(&ws, "wf.yaml", &[]);
    let step_pid = ws.wait_for_pid("pid");
    worker.signal(Signal::SIGTERM);
    let output = worker.wait();
    assert_eq!(output.code(), Some(0), "{output}");
    assert_gone(step_pid, "the step of a stopped worker");
    let show = ws.show(&run);
    let long = job(&show, "long");
    assert_eq!(long["status"], "queued", "{show:#}");
    let history = long["history"].as_array().expect("history is an array");
    assert_eq!(history.len(), 1, "{show:#}");
    assert_eq!(history[0]["status"], "failed", "{show:#}");
    assert_eq!(run_status(&ws, &run), "running");
}

#[test]
fn queue_remove_refuses_a_queue_that_holds_jobs_unless_forced() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  held: { queue: scratch, steps: [{ run: "true" }] }
  after: { needs: held, steps: [{ run: "true" }] }
"#,
    );
    ws.coreflow()
        .args(["queue", "add", "scratch", "--concurrency", "3"])
        .succeeds();
    let run = detach(&ws, "wf.yaml", &[]);
    let listed = ws
        .coreflow()
        .args(["queue", "list", "--json"])
        .succeeds()
        .stdout_json();
    assert_eq!(
        listed,
        serde_json::json!([
            { "name": "default", "concurrency": null, "paused": false, "depth": 0, "running": 0 },
            { "name": "scratch", "concurrency": 3, "paused": false, "depth": 1, "running": 0 },
        ])
    );

    let refused = ws.coreflow().args(["queue", "remove", "scratch"]).fails(2);
    assert!(refused.stderr().contains("--force"), "{refused}");
    assert_eq!(
        jobs(&ws, &["--queue", "scratch", "--status", "queued"]).len(),
        1
    );

    ws.coreflow()
        .args(["queue", "remove", "scratch", "--force"])
        .succeeds();
    let show = ws.show(&run);
    assert_eq!(job(&show, "held")["status"], "cancelled", "{show:#}");
    // What needed it follows, and the run ends.
    assert_eq!(job(&show, "after")["status"], "cancelled", "{show:#}");
    assert_eq!(run_status(&ws, &run), "cancelled");
    let names: Vec<Value> = ws
        .coreflow()
        .args(["queue", "list", "--json"])
        .succeeds()
        .stdout_json()
        .as_array()
        .expect("queue list is an array")
        .iter()
        .map(|q| q["name"].clone())
        .collect();
    assert_eq!(names, ["default"]);
    ws.coreflow().args(["queue", "remove", "nope"]).fails(2);
}

#[test]
fn trigger_queues_a_recorded_workflow_with_its_parameters_for_a_worker() {
    let ws = Workspace::new();
    ws.file(
        "nightly.yaml",
        r#"
params:
  who: { type: string, required: true }
jobs:
  greet:
    steps:
      - run: echo "$COREFLOW_RUN_ID ${{ params.who }} $COREFLOW_PARAM_WHO" >> greeted
"#,
    );
    // `run` records the definition; `trigger` finds it by name.
    ws.coreflow()
        .args(["run", "nightly.yaml", "-p", "who=first"])
        .succeeds();
    let second = ws
        .coreflow()
        .args(["trigger", "nightly", "-p", "who=second"])
        .succeeds()
        .stdout()
        .trim()
        .to_owned();
    let third = ws
        .coreflow()
        .args(["trigger", "nightly", "-p", "who=third"])
        .succeeds()
        .stdout()
        .trim()
        .to_owned();
    assert_eq!(run_status(&ws, &second), "queued");
    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &second), "succeeded");
    assert_eq!(wait_for_run(&ws, &third), "succeeded");
    worker.stop();
    assert_eq!(
        ws.lines("greeted"),
        [
            "1 first first".to_owned(),
            format!("{second} second second"),
            format!("{third} third third")
        ]
    );
    let runs = ws.runs();
    let trigger_of = |id: &str| {
        runs.iter()
            .find(|r| r["id"].as_i64() == id.parse::<i64>().ok())
            .expect("listed")["trigger"]["type"]
            .clone()
    };
    assert_eq!(trigger_of(&second), "api");

    let unknown = ws
        .coreflow()
        .args(["trigger", "nightyl", "-p", "who=x"])
        .fails(2);
    assert!(
        unknown.stderr().contains("did you mean `nightly`?"),
        "{unknown}"
    );
    ws.coreflow()
        .args(["trigger", "nightly", "-p", "nobody=x"])
        .fails(2);
}

#[test]
fn jobs_lists_rendered_metadata_and_acts_only_on_waiting_jobs() {
    let ws = Workspace::new();
    ws.file(
        "etl.yaml",
        r#"
params:
  date: { type: string, default: "2026-01-01" }
jobs:
  extract:
    queue: etl
    priority: 7
    metadata: { partition: "${{ params.date }}", cost: high }
    steps: [{ run: "true" }]
  load:
    needs: extract
    steps: [{ run: "true" }]
"#,
    );
    ws.file(
        "block.yaml",
        format!(
            "jobs:\n  block:\n    steps:\n      - run: touch started; {}\n",
            wait_for("go")
        ),
    );
    let etl = detach(&ws, "etl.yaml", &["-p", "date=2026-11-23"]);
    let listed = jobs(&ws, &["--queue", "etl"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "extract");
    assert_eq!(listed[0]["status"], "queued");
    assert_eq!(listed[0]["priority"], 7);
    assert_eq!(
        listed[0]["metadata"],
        serde_json::json!({ "partition": "2026-11-23", "cost": "high" })
    );
    let table = ws.coreflow().args(["jobs", "--queue", "etl"]).succeeds();
    assert!(table.stdout().contains("partition=2026-11-23"), "{table}");

    // A queued job is cancelled on the spot; what needs it follows, and the run ends.
    let cancelled = ws
        .coreflow()
        .args(["jobs", "cancel", &format!("{etl}/extract")])
        .succeeds();
    assert!(cancelled.stdout().contains("cancelled"), "{cancelled}");
    let show = ws.show(&etl);
    assert_eq!(job(&show, "extract")["status"], "cancelled", "{show:#}");
    assert_eq!(job(&show, "load")["status"], "cancelled", "{show:#}");
    assert_eq!(run_status(&ws, &etl), "cancelled");
    // A finished job cannot be reprioritised or put on top.
    let refused = ws
        .coreflow()
        .args(["jobs", "priority", &format!("{etl}/extract"), "9"])
        .fails(2);
    assert!(refused.stderr().contains("cancelled already"), "{refused}");

    // Neither can a running one.
    let block = detach(&ws, "block.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    ws.wait_for_file("started");
    let refused = ws
        .coreflow()
        .args(["jobs", "priority", &format!("{block}/block"), "9"])
        .fails(2);
    assert!(refused.stderr().contains("running already"), "{refused}");
    ws.coreflow()
        .args(["jobs", "top", &format!("{block}/block")])
        .fails(2);
    ws.file("go", "");
    assert_eq!(wait_for_run(&ws, &block), "succeeded");
    worker.stop();
}

#[test]
fn cancelling_the_waiting_jobs_of_a_detached_run_ends_it() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  first: { steps: [{ run: "true" }] }
  second: { needs: first, steps: [{ run: "true" }] }
"#,
    );
    let run = detach(&ws, "wf.yaml", &[]);
    let output = ws
        .coreflow()
        .args(["cancel", &format!("{run}/first")])
        .succeeds();
    assert!(output.stdout().contains("cancelled"), "{output}");
    let show = ws.show(&run);
    assert_eq!(job(&show, "second")["status"], "cancelled", "{show:#}");
    assert_eq!(run_status(&ws, &run), "cancelled");
}

#[test]
fn workers_lists_a_running_worker_and_move_redirects_it_to_another_environment() {
    let ws = Workspace::new();
    ws.file(
        "block.yaml",
        format!(
            "jobs:\n  block:\n    steps:\n      - run: touch started; {}\n",
            wait_for("go")
        ),
    );
    ws.file(
        "other.yaml",
        "jobs:\n  elsewhere: { steps: [{ run: echo moved > moved }] }\n",
    );
    let worker = Worker::start(&ws, &["--labels", "special"]);
    let listed = wait_for_worker(&ws, &[], worker.pid(), "registered", |_| true);
    let labels = listed["labels"].as_array().expect("labels are an array");
    for label in ["linux", "special"] {
        assert!(labels.iter().any(|l| l == label), "{listed:#}");
    }
    assert!(listed["heartbeat_at"].as_str().is_some(), "{listed:#}");
    assert_eq!(listed["job"], Value::Null, "{listed:#}");

    let run = detach(&ws, "block.yaml", &[]);
    ws.wait_for_file("started");
    let busy = wait_for_worker(&ws, &[], worker.pid(), "busy", |w| w["state"] == "busy");
    assert_eq!(busy["job"], format!("{run}/block"), "{busy:#}");
    ws.file("go", "");
    assert_eq!(wait_for_run(&ws, &run), "succeeded");

    // Moved, it serves the other environment without a restart: the same process runs a
    // job queued there.
    let other_env = ws.path().join("other-env");
    let other_env = other_env.to_str().expect("a UTF-8 path");
    let id = listed["id"].to_string();
    ws.coreflow()
        .args(["workers", "move", &id, "--to", other_env])
        .succeeds();
    ws.coreflow()
        .args(["run", "other.yaml", "--detach", "--env", other_env])
        .succeeds();
    ws.wait_for_file("moved");
    wait_for_worker(
        &ws,
        &["--env", other_env],
        worker.pid(),
        "listed there",
        |_| true,
    );
    let here = workers(&ws, &["--all"]);
    let old = here
        .iter()
        .find(|w| w["pid"] == worker.pid())
        .expect("still listed where it was");
    assert_eq!(old["state"], "stopped", "{old:#}");
    ws.coreflow()
        .args(["workers", "move", "nobody", "--to", other_env])
        .fails(2);
    worker.stop();
}

#[test]
fn a_worker_records_the_peak_memory_and_cpu_time_of_a_job() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  heavy:
    steps:
      - command:
          - python3
          - -c
          - |
            import time
            block = b"x" * (50 * 1024 * 1024)
            while time.process_time() < 1.5:
                pass
            print(len(block))
"#,
    );
    let worker = Worker::start(&ws, &[]);
    let run = detach(&ws, "wf.yaml", &[]);
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    worker.stop();
    let show = ws.show(&run);
    let heavy = job(&show, "heavy");
    let rss = heavy["peak_rss_bytes"]
        .as_u64()
        .expect("peak RSS is recorded");
    let cpu = heavy["cpu_ms"].as_u64().expect("CPU time is recorded");
    assert!(rss > 40 * 1024 * 1024, "peak RSS {rss} bytes\n{show:#}");
    assert!(cpu > 1000, "CPU {cpu} ms\n{show:#}");
    let listed = jobs(&ws, &["--status", "succeeded"]);
    assert_eq!(listed[0]["peak_rss_bytes"], rss);
}

#[test]
fn retry_detach_reopens_a_failed_run_for_workers() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  first:
    steps:
      - run: echo ran >> first.count
  flaky:
    needs: first
    steps:
      - run: test -f fixed
  last:
    needs: flaky
    steps:
      - run: touch last-ran
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .fails(1);
    ws.file("fixed", "");
    let output = ws.coreflow().args(["retry", "last", "--detach"]).succeeds();
    assert_eq!(output.stdout().trim(), "1", "{output}");
    // Reopened for workers: nobody owns it, the job whose need succeeded is queued.
    let show = ws.show("1");
    assert_eq!(show["status"], "queued", "{show:#}");
    assert_eq!(job(&show, "first")["status"], "succeeded", "{show:#}");
    assert_eq!(job(&show, "flaky")["status"], "queued", "{show:#}");
    assert_eq!(job(&show, "last")["status"], "pending", "{show:#}");
    assert!(!ws.exists("last-ran"));

    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, "1"), "succeeded");
    worker.stop();
    assert!(ws.exists("last-ran"));
    assert_eq!(
        ws.lines("first.count"),
        ["ran"],
        "the succeeded job ran again"
    );
    assert_eq!(ws.runs().len(), 1);
}
