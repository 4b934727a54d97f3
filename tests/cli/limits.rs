//! `resources: { memory }` as a limit: a job whose process tree goes over its `memory` is
//! stopped as on timeout and ends `failed` with reason `memory_limit`, in a foreground run
//! and on a standalone worker, with and without a cgroup per attempt.
//!
//! The steps allocate 300 MB in Python and then sleep 30 s: a job that was not stopped
//! would take the whole sleep. How quickly it is stopped is printed (the step writes the
//! time it starts allocating; the job's `finished_at` is the stop), not asserted.

use serde_json::Value;

use crate::engine_support::{Workspace, assert_gone, job, status};
use crate::queue_support::{Worker, detach, wait_for_run};

/// A job `hog` that allocates 300 MB (`b'x' * n` writes every page, so the memory really is
/// resident), with `resources` as given, then sleeps 30 s. It writes its pid to `hog.pid`
/// and the time it starts allocating to `allocating`.
fn hog(resources: &str) -> String {
    format!(
        r#"
jobs:
  hog:
    {resources}
    steps:
      - shell: python3
        run: |
          import os, time
          with open("hog.pid", "w") as f:
              f.write(f"{{os.getpid()}}\n")
          with open("allocating", "w") as f:
              f.write(repr(time.time()))
          b = b"x" * (300 << 20)
          print("allocated", flush=True)
          time.sleep(30)
"#
    )
}

/// A job that allocates 300 MB and exits 0 at once.
fn allocates_and_exits(resources: &str) -> String {
    format!(
        r#"
jobs:
  fits:
    {resources}
    steps:
      - shell: python3
        run: |
          b = b"x" * (300 << 20)
          print("allocated", len(b), flush=True)
"#
    )
}

/// The job's duration in milliseconds.
fn duration_ms(job: &Value) -> u64 {
    job["duration_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no duration in {job:#}"))
}

/// Checks what a job stopped for its memory looks like in `show --json` and its log, and
/// prints how long after the step started allocating it ended.
#[track_caller]
fn assert_stopped_for_memory(ws: &Workspace, run: &str, what: &str) {
    let show = ws.show(run);
    let hog = job(&show, "hog");
    assert_eq!(hog["status"], "failed", "{what}: {show:#}");
    assert_eq!(hog["reason"], "memory_limit", "{what}: {show:#}");
    assert_eq!(hog["exit_code"], Value::Null, "{what}: {hog:#}");
    let steps = &hog["history"][0]["steps"];
    assert_eq!(steps[0]["status"], "failed", "{what}: {hog:#}");
    // Stopped, not slept out: far below the step's 30 s sleep, whatever the machine's load.
    assert!(duration_ms(hog) < 20_000, "{what}: {hog:#}");
    assert_gone(ws.wait_for_pid("hog.pid"), "the step");

    let logs = ws.coreflow().args(["logs", run]).succeeds();
    let line = logs
        .stdout()
        .lines()
        .find(|line| line.contains("coreflow: memory_limit: "))
        .unwrap_or_else(|| panic!("{what}: no memory_limit line in the log\n{logs}"));
    // "… used, 64 MiB allowed", and " (stopped by the kernel)" when a cgroup's limit hit.
    assert!(line.contains(" used, 64 MiB allowed"), "{what}: {line}");

    let allocating: f64 = ws
        .read("allocating")
        .parse()
        .expect("the step wrote a time");
    let finished = chrono::DateTime::parse_from_rfc3339(
        hog["finished_at"]
            .as_str()
            .expect("a finished job has an end"),
    )
    .expect("an RFC 3339 time");
    #[expect(clippy::cast_precision_loss, reason = "a printed figure")]
    let stop = finished.timestamp_millis() as f64 / 1000.0 - allocating;
    println!("{what}: stopped {stop:.3} s after the step started allocating");
}

#[test]
fn a_job_over_its_memory_is_stopped_and_fails_with_memory_limit() {
    let ws = Workspace::with_workflow(&hog("resources: { cpus: 1, memory: 64MiB }"));
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    assert_stopped_for_memory(&ws, "last", "default enforcement");
}

#[test]
fn sampling_alone_stops_a_job_over_its_memory() {
    // With cgroups turned off, the sampler is all that stands between the job and the
    // machine's memory: this holds on every host, cgroup v2 or not.
    let ws = Workspace::with_workflow(&hog("resources: { memory: 64MiB }"));
    ws.coreflow()
        .env("COREFLOW_CGROUPS", "off")
        .args(["run", "wf.yaml"])
        .fails(1);
    assert_stopped_for_memory(&ws, "last", "sampling");
}

#[test]
fn a_job_within_its_memory_succeeds() {
    let ws = Workspace::with_workflow(&allocates_and_exits("resources: { memory: 1GiB }"));
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let show = ws.show("last");
    let fits = job(&show, "fits");
    assert_eq!(fits["status"], "succeeded", "{show:#}");
    assert_eq!(fits["reason"], Value::Null, "{show:#}");
    assert!(
        fits["peak_rss_bytes"].as_u64().unwrap_or(0) >= 300 << 20,
        "{fits:#}"
    );
}

#[test]
fn a_job_without_resources_is_not_limited() {
    let ws = Workspace::with_workflow(&allocates_and_exits(""));
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(status(&ws.show("last"), "fits"), "succeeded");
}

#[test]
fn the_defaults_limit_jobs_that_ask_nothing_themselves() {
    let ws = Workspace::with_workflow(
        r#"
defaults:
  resources: { memory: 64MiB }
jobs:
  limited:
    steps:
      - shell: python3
        run: |
          b = b"x" * (300 << 20)
          import time; time.sleep(30)
  roomy:
    resources: { memory: 1GiB }
    steps:
      - shell: python3
        run: b = b"x" * (300 << 20)
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(status(&show, "limited"), "failed");
    assert_eq!(job(&show, "limited")["reason"], "memory_limit", "{show:#}");
    assert_eq!(status(&show, "roomy"), "succeeded");
}

#[test]
fn a_job_over_its_memory_is_retried_like_any_failure() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  hog:
    resources: { memory: 64MiB }
    retry: { max_attempts: 2, delay: 100ms }
    steps:
      - run: echo "$COREFLOW_ATTEMPT" >> attempts
      - shell: python3
        run: |
          b = b"x" * (300 << 20)
          import time; time.sleep(30)
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    assert_eq!(ws.lines("attempts"), ["1", "2"]);
    let show = ws.show("last");
    let hog = job(&show, "hog");
    assert_eq!(hog["attempts"], 2, "{hog:#}");
    assert_eq!(hog["reason"], "memory_limit", "{hog:#}");
    for attempt in hog["history"].as_array().expect("a history") {
        assert_eq!(attempt["status"], "failed", "{hog:#}");
        let steps: Vec<&Value> = attempt["steps"].as_array().expect("steps").iter().collect();
        assert_eq!(steps[0]["status"], "succeeded", "{hog:#}");
        assert_eq!(steps[1]["status"], "failed", "{hog:#}");
    }
}

#[test]
fn what_an_earlier_step_left_running_counts_against_the_limit() {
    // The first step ends at once, leaving a process that grows; the second only waits.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  hog:
    resources: { memory: 64MiB }
    steps:
      - run: |
          python3 -c 'import time; b = b"x" * (300 << 20); time.sleep(30)' &
          echo $! > grower.pid
      - run: sleep 30
      - run: touch never
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    let hog = job(&show, "hog");
    assert_eq!(hog["reason"], "memory_limit", "{show:#}");
    assert!(duration_ms(hog) < 20_000, "{hog:#}");
    assert!(!ws.exists("never"));
    assert_gone(ws.wait_for_pid("grower.pid"), "the leftover process");
}

#[test]
fn a_standalone_worker_stops_a_job_over_its_memory() {
    let ws = Workspace::with_workflow(&hog("resources: { memory: 64MiB }"));
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &run), "failed");
    assert_stopped_for_memory(&ws, &run, "standalone worker");
    worker.stop();
}

#[test]
fn a_standalone_worker_sampling_alone_stops_a_job_over_its_memory() {
    let ws = Workspace::with_workflow(&hog("resources: { memory: 64MiB }"));
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start_with_env(&ws, &[], &[("COREFLOW_CGROUPS", "off")]);
    assert_eq!(wait_for_run(&ws, &run), "failed");
    assert_stopped_for_memory(&ws, &run, "standalone worker, sampling");
    worker.stop();
}

/// A limited job that writes its `/proc/self/cgroup` to `cgroup`; `--verbose` says how
/// limits are enforced (`enforcement="cgroup"` or `"sampling"`).
fn cgroup_of_a_limited_step(vars: &[(&str, &str)]) -> (String, String) {
    let ws = Workspace::with_workflow(
        r"
jobs:
  limited:
    resources: { cpus: 1, memory: 1GiB }
    steps:
      - run: cat /proc/self/cgroup > cgroup
",
    );
    let mut coreflow = ws.coreflow().args(["--verbose", "run", "wf.yaml"]);
    for (key, value) in vars {
        coreflow = coreflow.env(key, value);
    }
    let output = coreflow.succeeds();
    let enforcement = if output.stderr().contains("enforcement=\"cgroup\"") {
        "cgroup"
    } else {
        assert!(
            output.stderr().contains("enforcement=\"sampling\""),
            "--verbose says how limits are enforced\n{output}"
        );
        "sampling"
    };
    let own = ws
        .read("cgroup")
        .lines()
        .find_map(|line| line.strip_prefix("0::").map(str::to_owned))
        .unwrap_or_default();
    (enforcement.to_owned(), own)
}

#[test]
fn a_limited_job_runs_in_a_cgroup_of_its_own_where_the_host_allows() {
    // What `--verbose` reports is where the step ran: in a cgroup of its own exactly when
    // the enforcement is `cgroup` (the kernel path's setup is unit-tested in `step::cgroup`
    // on a hierarchy of files, as no host here delegates a memory controller).
    let (enforcement, own) = cgroup_of_a_limited_step(&[]);
    assert_eq!(
        enforcement == "cgroup",
        own.contains("/coreflow-") && own.contains("/job-"),
        "enforcement {enforcement}, the step's cgroup {own:?}"
    );

    let (enforcement, own) = cgroup_of_a_limited_step(&[("COREFLOW_CGROUPS", "off")]);
    assert_eq!(enforcement, "sampling");
    assert!(!own.contains("/coreflow-"), "{own}");
}
