//! Cancelling: Ctrl-C (SIGINT) to a running `coreflow run`, a second Ctrl-C, and
//! `coreflow cancel RUN|RUN/JOB` from another process (SPEC §3 "Cancel").

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::engine_support::{Workspace, assert_gone, status, wait_until};

/// A job whose step records the pids of its shell, of a `sleep` and of a `sleep` that left
/// the process group with `setsid`, then waits; and a job that needs it.
const SLOW: &str = r#"
jobs:
  slow:
    steps:
      - run: |
          echo $$ > shell.pid
          setsid sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped.pid; exec sleep 30' &
          sleep 30 &
          echo $! > sleep.pid
          wait
  after:
    needs: slow
    steps:
      - run: touch after-ran
"#;

#[test]
fn ctrl_c_cancels_the_run_stops_its_processes_and_exits_130() {
    interrupt_cancels_the_run(Signal::SIGINT);
}

#[test]
fn sigterm_cancels_the_run_like_ctrl_c() {
    interrupt_cancels_the_run(Signal::SIGTERM);
}

/// Sends `signal` to a `coreflow run` whose step is running, and checks that the run ended
/// `cancelled` with exit 130, its processes gone and its downstream job cancelled.
#[track_caller]
fn interrupt_cancels_the_run(signal: Signal) {
    let ws = Workspace::with_workflow(SLOW);
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--workers", "2", "--progress", "json"])
        .spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    let shell = ws.wait_for_pid("shell.pid");
    let escaped = ws.wait_for_pid("escaped.pid");
    running.signal(signal);
    let output = running.wait();
    assert_eq!(output.code(), Some(130), "{output}");

    let events: Vec<Value> = output
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each progress line is JSON"))
        .collect();
    let last = events.last().expect("some events");
    assert_eq!(last["event"], "run_finished", "{output}");
    assert_eq!(last["state"], "cancelled", "{output}");

    assert_gone(sleep, "the step's sleep");
    assert_gone(shell, "the step's shell");
    assert_gone(escaped, "the step's process that called setsid");
    let show = ws.show("last");
    assert_eq!(show["status"], "cancelled");
    assert_eq!(status(&show, "slow"), "cancelled");
    assert_eq!(status(&show, "after"), "cancelled");
    assert!(!ws.exists("after-ran"));
}

#[test]
fn a_second_ctrl_c_kills_at_once_without_waiting_for_the_grace() {
    // The step ignores SIGTERM and the grace is a minute: only the second Ctrl-C can end
    // the run within the harness deadline.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  stubborn:
    cancel_grace: 60s
    steps:
      - shell: python3
        run: |
          import os, signal, time
          def note(signum, frame):
              open("term-received", "w").close()
          signal.signal(signal.SIGTERM, note)
          with open("python.tmp", "w") as f:
              f.write(f"{os.getpid()}\n")
          os.rename("python.tmp", "python.pid")
          while True:
              time.sleep(0.05)
"#,
    );
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .timeout(std::time::Duration::from_secs(30))
        .spawn();
    let python = ws.wait_for_pid("python.pid");
    running.signal(Signal::SIGINT);
    ws.wait_for_file("term-received");
    running.signal(Signal::SIGINT);
    let output = running.wait();
    assert_eq!(output.code(), Some(130), "{output}");
    assert_gone(python, "the step that ignored SIGTERM");
    assert_eq!(status(&ws.show("last"), "stubborn"), "cancelled");
}

#[test]
fn coreflow_cancel_from_another_process_cancels_the_run_which_exits_1() {
    let ws = Workspace::with_workflow(SLOW);
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    // While it runs, `show` says so: at once, or after the run's next write (a root job's
    // start is written with what follows it within 20 ms).
    let mut show = ws.show("last");
    wait_until("`show` to see the job running", || {
        show = ws.show("last");
        status(&show, "slow") == "running"
    });
    assert_eq!(show["status"], "running", "{show:#}");
    assert_eq!(show["finished_at"], Value::Null, "{show:#}");
    assert_eq!(status(&show, "slow"), "running", "{show:#}");
    assert_eq!(status(&show, "after"), "pending", "{show:#}");
    ws.coreflow().args(["cancel", "last"]).succeeds();
    let output = running.wait();
    assert_eq!(output.code(), Some(1), "{output}");
    assert_gone(sleep, "the step's sleep");
    let show = ws.show("last");
    assert_eq!(show["status"], "cancelled");
    assert_eq!(status(&show, "slow"), "cancelled");
    assert_eq!(status(&show, "after"), "cancelled");
    assert!(!ws.exists("after-ran"));
}

#[test]
fn cancelling_one_job_cancels_it_and_its_dependents_while_the_rest_goes_on() {
    // `other` waits for the test's go-ahead, so it is still running when `slow` is cancelled.
    let ws = Workspace::with_workflow(&format!(
        "{SLOW}{}",
        r#"
  other:
    steps:
      - run: |
          touch other-waiting
          i=0
          while [ ! -e go ] && [ "$i" -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
          test -e go
"#
    ));
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--workers", "2", "--progress", "plain"])
        .spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    ws.wait_for_file("other-waiting");
    let escaped = ws.wait_for_pid("escaped.pid");
    ws.coreflow().args(["cancel", "1/slow"]).succeeds();
    assert_gone(sleep, "the cancelled job's sleep");
    assert_gone(escaped, "the cancelled job's process that called setsid");
    ws.file("go", "");
    let output = running.wait();
    assert_eq!(output.code(), Some(1), "{output}");
    let show = ws.show("1");
    assert_eq!(status(&show, "slow"), "cancelled", "{show:#}");
    assert_eq!(status(&show, "after"), "cancelled", "{show:#}");
    assert_eq!(status(&show, "other"), "succeeded", "{show:#}");
}
