//! `coreflow daemon --launcher` and `coreflow worker --once`, black-box: a real daemon whose
//! launcher runs the real binary as a one-job worker, launchers that fail or start nothing,
//! and a one-job worker on its own. See `daemon_support` for the harness.
//!
//! Steps record when they ran in a file; the tests read those records and the inspecting
//! commands (`show`, `workers`), and wait for states with the one polling helper.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::daemon_support::{Site, wait_for};
use crate::queue_support::{Worker, detach, jobs, run_status};

/// A run of `legs` matrix legs, each asking for `gpu` and appending `START END LEG` (in
/// nanoseconds) to `spans` in the site's folder.
fn gpu_legs(site: &Site, legs: usize) -> String {
    let spans = site.path().join("spans");
    let values: Vec<String> = (0..legs).map(|i| i.to_string()).collect();
    format!(
        "jobs:\n  train:\n    runs_on: [gpu]\n    matrix: {{ leg: [{}] }}\n    steps:\n      - run: 's=$(date +%s%N); sleep 0.05; echo \"$s $(date +%s%N) ${{{{ matrix.leg }}}}\" >> {}'\n",
        values.join(", "),
        spans.display()
    )
}

/// The most intervals of `spans` (`START END …` lines) open at one instant.
fn most_at_once(lines: &[String]) -> usize {
    let mut events: Vec<(u128, i32)> = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let start: u128 = fields[0].parse().expect("a start time");
        let end: u128 = fields[1].parse().expect("an end time");
        events.push((start, 1));
        events.push((end, -1));
    }
    // At one instant, an end comes before a start: touching intervals do not overlap.
    events.sort_unstable();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, change) in events {
        open += change;
        most = most.max(open);
    }
    usize::try_from(most).expect("never negative")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The binary under test, as one shell word.
fn coreflow_word() -> String {
    format!("'{}'", env!("CARGO_BIN_EXE_coreflow"))
}

#[test]
fn a_launcher_of_once_workers_serves_50_gpu_jobs_with_at_most_3_alive() {
    let site = Site::new();
    site.write("gpu.yaml", gpu_legs(&site, 50));
    let launcher = format!(
        "gpu={} worker --once --env {{env}} --labels {{labels}} --lease 5s",
        coreflow_word()
    );
    let started = std::time::Instant::now();
    let daemon = site.daemon(&["--max-workers", "3", "--launcher", &launcher]);
    let run: i64 = site
        .coreflow()
        .args(["run", "gpu.yaml", "--detach"])
        .succeeds()
        .stdout()
        .trim()
        .parse()
        .expect("`run --detach` prints the run id");
    // Half the legs, then the rest: each wait has the helper's deadline.
    wait_for("25 legs to run", || {
        (lines(&site.path().join("spans")).len() >= 25).then_some(())
    });
    let show = site.wait_run_ended(run);
    let took = started.elapsed();
    // Every launched worker stops after its job: none is left behind.
    wait_for("the launched workers to stop", || {
        site.workers().is_empty().then_some(())
    });
    let output = daemon.stop();
    eprintln!("50 gpu legs through a launcher of --once workers took {took:?}");

    assert_eq!(show["status"], "succeeded", "{show:#}");
    let legs = show["jobs"].as_array().expect("jobs");
    assert_eq!(legs.len(), 50, "{show:#}");
    for leg in legs {
        assert_eq!(leg["status"], "succeeded", "{leg:#}");
        assert_eq!(leg["attempts"], 1, "{leg:#}");
    }
    // Each leg ran exactly once, and never more than three at once.
    let spans = lines(&site.path().join("spans"));
    assert_eq!(spans.len(), 50, "{spans:?}");
    let ran: BTreeSet<&str> = spans
        .iter()
        .map(|line| line.split(' ').nth(2).expect("a leg"))
        .collect();
    assert_eq!(ran.len(), 50, "{spans:?}");
    let most = most_at_once(&spans);
    eprintln!("at most {most} legs ran at once");
    assert!((1..=3).contains(&most), "{most} legs ran at once");
    // Each worker took one job, and carried the launcher's label.
    let workers = site
        .coreflow()
        .args(["workers", "--json", "--all"])
        .succeeds()
        .stdout_json();
    let workers = workers
        .as_array()
        .expect("`workers --json` prints an array");
    let gpu_workers: Vec<&Value> = workers
        .iter()
        .filter(|w| {
            w["labels"]
                .as_array()
                .is_some_and(|l| l.contains(&"gpu".into()))
        })
        .collect();
    assert!(gpu_workers.len() >= 50, "{workers:#?}");
    assert!(
        gpu_workers
            .iter()
            .all(|w| w["jobs_done"].as_u64() <= Some(1)),
        "{workers:#?}"
    );
    assert!(
        output.stderr().contains("launching a worker for gpu"),
        "{output}"
    );
}

#[test]
fn a_failing_launcher_and_one_whose_worker_never_registers_are_reported_and_back_off() {
    let site = Site::new();
    let failing = site.path().join("failing-attempts");
    let silent = site.path().join("silent-attempts");
    site.write(
        "two.yaml",
        "jobs:\n  a: { runs_on: [gpu], steps: [{ run: 'true' }] }\n  b: { runs_on: [tpu], steps: [{ run: 'true' }] }\n",
    );
    let run = detach_site(&site, "two.yaml");
    let daemon = site.daemon_with_env(
        &[
            "--workers",
            "0",
            "--launcher",
            &format!(
                "gpu=echo x >> '{}'; echo no gpu here >&2; false",
                failing.display()
            ),
            "--launcher",
            &format!("tpu:2=echo x >> '{}'", silent.display()),
        ],
        &[("COREFLOW_LAUNCH_TIMEOUT", "1s")],
    );
    let start = std::time::Instant::now();
    let failed = |label: &str| {
        site.workers()
            .into_iter()
            .find(|w| w["state"] == "launch_failed" && w["launcher"] == label)
    };
    let gpu = wait_for("the failing launch to be reported", || failed("gpu"));
    let tpu = wait_for("the silent launch to be reported", || failed("tpu"));
    assert!(
        gpu["error"]
            .as_str()
            .is_some_and(|e| e.contains("exited with exit status: 1: no gpu here")),
        "{gpu:#}"
    );
    assert!(
        tpu["error"]
            .as_str()
            .is_some_and(|e| e.contains("no worker carrying `tpu` registered within")),
        "{tpu:#}"
    );
    let text = site.coreflow().arg("workers").succeeds();
    assert!(text.stdout().contains("launch_failed"), "{text}");
    assert!(
        text.stdout()
            .contains("launcher gpu: the command exited with exit status: 1: no gpu here"),
        "{text}"
    );
    // Tried again after a backoff that doubles: a handful of attempts over seconds, where
    // a launch every look (four a second) would make dozens.
    wait_for("the silent launcher to try a third time", || {
        (lines(&silent).len() >= 3).then_some(())
    });
    let elapsed = start.elapsed();
    let attempts = lines(&failing).len();
    let output = daemon.stop();
    eprintln!("{attempts} failing launches in {elapsed:?}");
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} failing launches in {elapsed:?}\n{output}"
    );
    // The job needing each label was never taken, and waits.
    assert_eq!(site.show(run)["status"], "queued");
    let log = output.stderr();
    assert!(log.contains("launcher gpu: launch failed"), "{output}");
    assert!(log.contains("launcher tpu: launch failed"), "{output}");
    assert!(log.contains("next try in"), "{output}");
}

#[test]
fn malformed_launchers_exit_2_before_anything_starts() {
    let site = Site::new();
    let cases: [(&[&str], &str); 4] = [
        (&["--launcher", "gpu"], "expected LABEL=COMMAND"),
        (
            &["--launcher", "gpu:many=cmd"],
            "not a whole number above 0",
        ),
        (&["--launcher", "=cmd"], "the label is empty"),
        (
            &["--launcher", "gpu=a", "--launcher", "gpu:2=b"],
            "another --launcher starts workers for `gpu`",
        ),
    ];
    for (args, message) in cases {
        let output = site.daemon_command(args).fails(2);
        assert!(output.stderr().contains("invalid --launcher"), "{output}");
        assert!(output.stderr().contains(message), "{output}");
    }
}

#[test]
fn worker_once_takes_exactly_one_of_two_queued_jobs_and_exits_0_even_when_it_fails() {
    let ws = crate::engine_support::Workspace::new();
    let mut yaml = String::from("jobs:\n");
    for name in ["one", "two"] {
        writeln!(
            yaml,
            "  {name}: {{ steps: [{{ run: 'echo $COREFLOW_JOB >> ran; exit 1' }}] }}"
        )
        .expect("writing to a String works");
    }
    ws.file("wf.yaml", yaml);
    let run = detach(&ws, "wf.yaml", &[]);
    ws.coreflow().args(["worker", "--once"]).succeeds();

    assert_eq!(ws.lines("ran").len(), 1, "{:?}", ws.lines("ran"));
    assert_eq!(jobs(&ws, &["--status", "failed"]).len(), 1);
    assert_eq!(jobs(&ws, &["--status", "queued"]).len(), 1);
    assert_ne!(run_status(&ws, &run), "failed");
}

#[test]
fn worker_once_waiting_for_a_job_exits_0_at_once_on_sigterm() {
    let ws = crate::engine_support::Workspace::new();
    let worker = Worker::start(&ws, &["--once"]);
    crate::queue_support::wait_for_worker(&ws, &[], worker.pid(), "idle", |w| w["state"] == "idle");
    worker.signal(Signal::SIGTERM);
    let output = worker.wait();
    assert_eq!(output.code(), Some(0), "{output}");
}

/// `coreflow run FILE --detach` in the site's folder: the run's id.
fn detach_site(site: &Site, file: &str) -> i64 {
    site.coreflow()
        .args(["run", file, "--detach"])
        .succeeds()
        .stdout()
        .trim()
        .parse()
        .expect("`run --detach` prints the run id")
}
