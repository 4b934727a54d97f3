//! The environment under stress: a `coreflow run` killed with SIGKILL mid-step (SPEC §3 and
//! §7 "Lost work"), two runs at once on one environment, and a corrupt database (exit 3).

use nix::sys::signal::Signal;

use crate::engine_support::{Workspace, assert_gone, is_alive, job, status, wait_until};
use crate::support::ENV_DIR;

/// A job that finishes, then a step that records its pids and waits, unless the file `fixed`
/// exists.
const KILLABLE: &str = r#"
jobs:
  early:
    steps:
      - run: echo "k=kept" >> "$COREFLOW_OUTPUT"; echo early; echo ran >> early.count
  slow:
    needs: early
    steps:
      - run: |
          if [ -e fixed ]; then exit 0; fi
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

/// Waits until `show last` has `job` running.
#[track_caller]
fn wait_for_running(ws: &Workspace, job: &str) {
    wait_until(&format!("`show` to see {job} running"), || {
        status(&ws.show("last"), job) == "running"
    });
}

#[test]
fn a_killed_run_is_found_lost_by_the_next_command_which_kills_its_leftovers() {
    let ws = Workspace::with_workflow(KILLABLE);
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    let shell = ws.wait_for_pid("shell.pid");
    let escaped = ws.wait_for_pid("escaped.pid");
    // The run writes its changes in order, every 20 ms: once `slow` shows as running, the
    // end of `early` before it is written too.
    wait_for_running(&ws, "slow");
    running.signal(Signal::SIGKILL);
    let output = running.wait();
    assert_eq!(output.signal(), Some(Signal::SIGKILL as i32), "{output}");
    // Nothing has cleaned up yet: the orphaned step still runs.
    assert!(is_alive(sleep), "the step's sleep died with coreflow");
    assert!(
        is_alive(escaped),
        "the step's setsid sleep died with coreflow"
    );

    // The next command on the environment notices that the run's owner is gone.
    let runs = ws.runs();
    assert_eq!(runs.len(), 1);
    assert_ne!(runs[0]["status"], "running", "{runs:#?}");
    assert_gone(sleep, "the lost step's sleep");
    assert_gone(shell, "the lost step's shell");
    assert_gone(escaped, "the lost step's process that called setsid");

    let show = ws.show("last");
    assert_eq!(show["status"], "failed", "{show:#}");
    let slow = job(&show, "slow");
    assert_eq!(slow["status"], "failed", "{show:#}");
    assert_eq!(slow["reason"], "lost", "{show:#}");
    assert_ne!(status(&show, "after"), "succeeded");
    assert!(!ws.exists("after-ran"));
    // What had finished before the crash is kept.
    let early = job(&show, "early");
    assert_eq!(early["status"], "succeeded", "{show:#}");
    assert_eq!(early["outputs"]["k"], "kept", "{show:#}");
    let logs = ws.coreflow().args(["logs", "last", "early"]).succeeds();
    assert_eq!(logs.stdout(), "early/step-1 | early\n");
}

#[test]
fn retry_resumes_a_run_that_was_lost() {
    let ws = Workspace::with_workflow(KILLABLE);
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    wait_for_running(&ws, "slow");
    running.signal(Signal::SIGKILL);
    running.wait();

    ws.file("fixed", "");
    ws.coreflow()
        .args(["retry", "last", "--progress", "plain"])
        .succeeds();
    assert_gone(sleep, "the lost step's sleep");
    let show = ws.show("last");
    assert_eq!(show["id"], 1);
    assert_eq!(show["status"], "succeeded", "{show:#}");
    assert_eq!(status(&show, "slow"), "succeeded");
    assert_eq!(status(&show, "after"), "succeeded");
    assert!(ws.exists("after-ran"));
    assert_eq!(
        ws.lines("early.count"),
        ["ran"],
        "the finished job ran again"
    );
    assert_eq!(ws.runs().len(), 1);
}

#[test]
fn two_runs_at_once_on_one_environment_both_succeed() {
    // Each run's job waits for the other run's job to be there, so both really overlap,
    // and then writes a few thousand log lines and an output while the other does too.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  meet:
    steps:
      - run: |
          touch "run-$COREFLOW_RUN_ID.here"
          i=0
          while [ "$(ls run-*.here | wc -l)" -lt 2 ] && [ "$i" -lt 400 ]; do
            sleep 0.05
            i=$((i + 1))
          done
          ls run-*.here | wc -l | tr -d ' ' > "run-$COREFLOW_RUN_ID.met"
          seq 1 3000
          echo "k=$COREFLOW_RUN_ID" >> "$COREFLOW_OUTPUT"
  next:
    needs: meet
    steps:
      - run: echo "${{ needs.meet.outputs.k }}"
"#,
    );
    let first = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    let second = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    for output in [first.wait(), second.wait()] {
        assert_eq!(output.code(), Some(0), "{output}");
        assert!(
            !output.stderr().contains("locked"),
            "the database was locked\n{output}"
        );
    }
    let runs = ws.runs();
    let mut ids: Vec<u64> = runs
        .iter()
        .map(|run| run["id"].as_u64().expect("a run id is a number"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    for id in ["1", "2"] {
        assert_eq!(
            ws.read(&format!("run-{id}.met")),
            "2\n",
            "run {id} ran alone"
        );
        let show = ws.show(id);
        assert_eq!(show["status"], "succeeded", "{show:#}");
        assert_eq!(job(&show, "meet")["outputs"]["k"], id);
        let logs = ws.coreflow().args(["logs", id, "meet"]).succeeds();
        assert_eq!(logs.stdout().lines().count(), 3000, "run {id}");
    }
}

#[test]
fn sqlite_only_a_corrupt_database_is_reported_with_exit_3() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  touch:
    steps:
      - run: touch ran
"#,
    );
    let garbage: Vec<u8> = (0..16_384u32)
        .map(|i| u8::try_from((i * 7 + 13) % 251).expect("below 256"))
        .collect();
    ws.file(&format!("{ENV_DIR}/coreflow.db"), garbage);
    for args in [
        &["runs"][..],
        &["show", "last"][..],
        &["run", "wf.yaml"][..],
    ] {
        let output = ws.coreflow().args(args).fails(3);
        assert!(
            !output.stderr().trim().is_empty(),
            "{args:?}: no message\n{output}"
        );
    }
    assert!(!ws.exists("ran"));
}

#[test]
fn a_job_killed_before_its_start_was_written_still_loses_its_processes() {
    // The job's start waits, unwritten, for the run's next write; coreflow dies first. The
    // next command must still find its processes, through the run's kill-token prefix.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  first:
    steps:
      - run: "true"
  second:
    steps:
      - run: |
          sleep 30 &
          echo $! > sleep.pid
          wait
"#,
    );
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain", "--workers", "1"])
        .env("COREFLOW_TEST_WRITE_DELAY_MS", "600000")
        .spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    running.signal(Signal::SIGKILL);
    running.wait();

    let runs = ws.runs();
    assert_eq!(runs[0]["status"], "failed", "{runs:#?}");
    assert_gone(sleep, "the unrecorded step's sleep");
    // What the run had not written is not known: `first` ran, but only its start was
    // written, so it counts as lost (a retry runs it again); `second` never started as far
    // as the store knows.
    let show = ws.show("last");
    assert_eq!(job(&show, "first")["reason"], "lost", "{show:#}");
    assert_eq!(status(&show, "second"), "cancelled", "{show:#}");
}
