//! `compute: dedicated` (SPEC §2), black-box: the job's attempt runs in a fresh `coreflow`
//! process started for it alone and ended after it, in a foreground run and through a
//! standalone worker; its output reaches the progress, its outputs its dependents, and a
//! timeout or cancel stops it and its steps.
//!
//! Each step records its parent process (`$PPID`, the process that ran the step), that
//! process's command line and its own parent, read from `/proc` while the step runs.

use nix::sys::signal::Signal;

use crate::engine_support::{Workspace, assert_gone, is_alive, job};
use crate::queue_support::{Worker, detach, wait_for_run};

/// A step recording `NAME PARENT PARENT'S-PARENT PARENT'S-COMMAND` in `parents`.
fn record_parent(name: &str) -> String {
    format!(
        "      - run: |\n          gp=$(awk '/^PPid:/ {{print $2}}' /proc/$PPID/status)\n          cmd=$(tr '\\0' ' ' < /proc/$PPID/cmdline)\n          echo \"{name} $PPID $gp $cmd\" >> parents\n"
    )
}

/// `name → (parent, grandparent, parent's command line)` from `parents`.
fn parents(ws: &Workspace) -> std::collections::HashMap<String, (i32, i32, String)> {
    ws.lines("parents")
        .iter()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let name = parts.next().expect("a name").to_owned();
            let parent = parts.next().expect("a pid").parse().expect("a pid");
            let grandparent = parts.next().expect("a pid").parse().expect("a pid");
            let command = parts.next().unwrap_or_default().to_owned();
            (name, (parent, grandparent, command))
        })
        .collect()
}

const WORKFLOW: &str = "jobs:\n  alone1:\n    compute: dedicated\n    steps:\n{alone1}      - run: |\n          echo \"token=from-alone1\" >> \"$COREFLOW_OUTPUT\"\n          echo printed by alone1\n  alone2:\n    compute: dedicated\n    steps:\n{alone2}  shared:\n    steps:\n{shared}  after:\n    needs: [alone1]\n    env: { TOKEN: \"${{ needs.alone1.outputs.token }}\" }\n    steps:\n      - run: echo \"$TOKEN\" > token\n";

fn workflow() -> String {
    WORKFLOW
        .replace("{alone1}", &record_parent("alone1"))
        .replace("{alone2}", &record_parent("alone2"))
        .replace("{shared}", &record_parent("shared"))
}

#[test]
fn a_dedicated_job_runs_in_a_fresh_process_of_its_own_in_a_foreground_run() {
    let ws = Workspace::with_workflow(&workflow());
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .succeeds();
    let parents = parents(&ws);
    let (alone1, alone2, shared) = (&parents["alone1"], &parents["alone2"], &parents["shared"]);
    // The shared job's steps are children of `coreflow run`; each dedicated job's are
    // children of a `coreflow attempt` of its own, itself a child of `coreflow run`.
    assert!(!shared.2.contains("attempt"), "{parents:?}");
    for alone in [alone1, alone2] {
        assert!(alone.2.contains("coreflow attempt"), "{parents:?}");
        assert_eq!(alone.1, shared.0, "{parents:?}");
        assert_ne!(alone.0, shared.0, "{parents:?}");
        assert!(
            !is_alive(alone.0),
            "the dedicated process ended with its job"
        );
    }
    assert_ne!(alone1.0, alone2.0, "{parents:?}");
    // Its output reached the progress, its outputs its dependents.
    assert!(
        output
            .stdout()
            .contains("alone1/step-2 | printed by alone1"),
        "{output}"
    );
    assert_eq!(ws.read("token").trim(), "from-alone1");
    let show = ws.show("last");
    assert_eq!(job(&show, "alone1")["outputs"]["token"], "from-alone1");
    assert_eq!(job(&show, "alone1")["status"], "succeeded");
    let logs = ws.coreflow().args(["logs", "last", "alone1"]).succeeds();
    assert!(logs.stdout().contains("printed by alone1"), "{logs}");
}

#[test]
fn a_worker_runs_a_dedicated_job_in_a_fresh_process() {
    let ws = Workspace::with_workflow(&workflow());
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    let worker_pid = i32::try_from(worker.pid()).expect("a pid");
    worker.stop();
    let parents = parents(&ws);
    assert_eq!(parents["shared"].0, worker_pid, "{parents:?}");
    for name in ["alone1", "alone2"] {
        let alone = &parents[name];
        assert!(alone.2.contains("coreflow attempt"), "{parents:?}");
        assert_eq!(alone.1, worker_pid, "{parents:?}");
        assert!(!is_alive(alone.0));
    }
    assert_eq!(ws.read("token").trim(), "from-alone1");
}

#[test]
fn a_dedicated_job_times_out_and_is_cancelled_like_any_other() {
    let ws = Workspace::with_workflow(
        "jobs:\n  slow:\n    compute: dedicated\n    timeout: 1s\n    steps:\n      - run: |\n          echo $$ > slow-pid\n          exec sleep 30\n",
    );
    let output = ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(job(&show, "slow")["status"], "timed_out", "{output}");
    assert_gone(ws.wait_for_pid("slow-pid"), "the timed-out step");

    // A cancel through the store reaches the dedicated process of a worker's job.
    let ws = Workspace::with_workflow(
        "jobs:\n  slow:\n    compute: dedicated\n    steps:\n      - run: |\n          echo $$ > slow-pid\n          exec sleep 30\n",
    );
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    let pid = ws.wait_for_pid("slow-pid");
    ws.coreflow().args(["cancel", &run]).succeeds();
    assert_eq!(wait_for_run(&ws, &run), "cancelled");
    assert_gone(pid, "the cancelled step");
    worker.stop();

    // Ctrl-C at a foreground run stops it too.
    let ws = Workspace::with_workflow(
        "jobs:\n  slow:\n    compute: dedicated\n    steps:\n      - run: |\n          echo $$ > slow-pid\n          exec sleep 30\n",
    );
    let running = ws.coreflow().args(["run", "wf.yaml"]).spawn();
    let pid = ws.wait_for_pid("slow-pid");
    running.signal(Signal::SIGINT);
    let output = running.wait();
    assert_eq!(output.code(), Some(130), "{output}");
    assert_gone(pid, "the interrupted step");
    assert_eq!(job(&ws.show("last"), "slow")["status"], "cancelled");
}
