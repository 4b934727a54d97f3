//! Regression tests for bugs found after the engine landed, each named after what it proves.

use std::time::Duration;

use crate::engine_support::{Workspace, job, status, wait_until};

/// A cancel (Ctrl-C or `coreflow cancel`) while a job waits out a retry delay ends the run at
/// once instead of after the delay.
#[test]
fn cancelling_a_run_while_a_job_waits_out_its_retry_delay_ends_it_at_once() {
    const FLAKY: &str = "jobs:\n  flaky:\n    retry: { max_attempts: 3, delay: 1h, max_delay: 1h }\n    steps:\n      - run: echo \"$COREFLOW_ATTEMPT\" >> attempts; exit 1\n";
    for cancel in ["ctrl-c", "coreflow cancel"] {
        let ws = Workspace::with_workflow(FLAKY);
        let running = ws
            .coreflow()
            .args(["run", "wf.yaml", "--progress", "plain"])
            .timeout(Duration::from_secs(20))
            .spawn();
        wait_until("the job to wait for its retry", || {
            let output = ws.coreflow().args(["show", "last", "--json"]).run();
            output.code() == Some(0) && {
                let show = output.stdout_json();
                let flaky = job(&show, "flaky");
                flaky["status"] == "queued" && flaky["attempts"] == 1
            }
        });
        let expected = if cancel == "ctrl-c" {
            running.signal(nix::sys::signal::Signal::SIGINT);
            130
        } else {
            ws.coreflow().args(["cancel", "last"]).succeeds();
            1
        };
        let output = running.wait();
        assert_eq!(output.code(), Some(expected), "{cancel}\n{output}");
        assert_eq!(ws.lines("attempts"), ["1"]);
        assert_eq!(status(&ws.show("last"), "flaky"), "cancelled");
    }
}

/// A timed-out attempt that is retried keeps `timed_out` in the job's history.
#[test]
fn a_timed_out_attempt_that_is_retried_is_recorded_as_timed_out() {
    let ws = Workspace::with_workflow(
        "jobs:\n  sleepy:\n    cancel_grace: 1s\n    retry: { max_attempts: 2, delay: 100ms }\n    steps:\n      - timeout: 1s\n        run: sleep 30\n",
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    let history: Vec<String> = job(&show, "sleepy")["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|a| a["status"].as_str().expect("a status").to_owned())
        .collect();
    assert_eq!(history, ["timed_out", "timed_out"]);
}

/// Templates print bools and floats as the step sees them in `COREFLOW_PARAM_*`.
#[test]
fn a_bool_param_renders_in_templates_as_in_its_env_var() {
    let ws = Workspace::with_workflow(
        "params:\n  dry_run: { type: bool, default: false }\n  ratio: { type: float, default: 2 }\njobs:\n  j:\n    steps:\n      - run: echo \"${{ params.dry_run }} $COREFLOW_PARAM_DRY_RUN ${{ params.ratio }} $COREFLOW_PARAM_RATIO\" > seen.txt\n",
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.read("seen.txt"), "false false 2 2\n");
}

/// Issue 4: a running job's memory and CPU are sampled and stored while it runs, not only at
/// its end.
#[test]
fn a_running_jobs_usage_is_stored_while_it_runs() {
    let ws = Workspace::with_workflow(
        "jobs:\n  hog:\n    steps:\n      - shell: python3\n        run: |\n          import os, time\n          b = bytearray(40 * 1024 * 1024)\n          for i in range(0, len(b), 4096):\n              b[i] = 1\n          open('started', 'w').close()\n          while not os.path.exists('gate'):\n              time.sleep(0.02)\n",
    );
    let running = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .timeout(Duration::from_secs(30))
        .spawn();
    ws.wait_for_file("started");
    wait_until("the running job's usage to be stored", || {
        let output = ws.coreflow().args(["show", "last", "--json"]).run();
        output.code() == Some(0) && {
            let show = output.stdout_json();
            let hog = job(&show, "hog");
            hog["status"] == "running"
                && hog["peak_rss_bytes"].as_u64().is_some_and(|b| b > 30 << 20)
        }
    });
    ws.file("gate", "");
    assert_eq!(running.wait().code(), Some(0));
}

/// `--junit` into a folder that does not exist yet creates it, as pytest and nextest do.
#[test]
fn junit_creates_the_reports_folder() {
    let ws = Workspace::with_workflow("jobs:\n  a:\n    steps: [{ run: echo hi }]\n");
    ws.coreflow()
        .args(["run", "wf.yaml", "--junit", "out/ci/report.xml"])
        .succeeds();
    assert!(ws.read("out/ci/report.xml").contains("<testcase"));
}

/// `logs RUN/JOB` names the run and the job in one argument, as `cancel` takes them.
#[test]
fn logs_take_run_and_job_in_one_argument() {
    let ws = Workspace::with_workflow(
        "jobs:\n  a:\n    steps: [{ run: echo from-a }]\n  b:\n    steps: [{ run: echo from-b }]\n",
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let output = ws.coreflow().args(["logs", "1/b"]).succeeds();
    assert_eq!(output.stdout(), "b/step-1 | from-b\n");
    let output = ws.coreflow().args(["logs", "last/a"]).succeeds();
    assert_eq!(output.stdout(), "a/step-1 | from-a\n");
}

/// `coreflow retry` keeps a job-level `-p JOB.NAME=V` of the run it repairs.
#[test]
fn retry_keeps_job_level_parameters() {
    let ws = Workspace::with_workflow(
        "params:\n  n: { type: int, default: 1 }\njobs:\n  a:\n    steps:\n      - run: echo ${{ params.n }} >> seen; test -f fixed\n",
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "-p", "a.n=5"])
        .fails(1);
    ws.file("fixed", "");
    ws.coreflow().args(["retry", "last"]).succeeds();
    assert_eq!(ws.lines("seen"), ["5", "5"]);
}

/// An optional `datablock` parameter left unset is recorded empty; a worker reading the run
/// back took the empty value for a bad block name and failed the run's first job.
#[test]
fn an_optional_datablock_left_unset_runs_through_workers() {
    let ws = Workspace::with_workflow(
        "params:\n  src: { type: datablock }\njobs:\n  a:\n    steps:\n      - run: |\n          echo \"src=[$COREFLOW_PARAM_SRC]\"\n  b:\n    needs: [a]\n    steps: [{ run: 'true' }]\n",
    );
    let run = crate::queue_support::detach(&ws, "wf.yaml", &[]);
    let worker = crate::queue_support::Worker::start(&ws, &[]);
    assert_eq!(crate::queue_support::wait_for_run(&ws, &run), "succeeded");
    worker.stop();
    let logs = ws.coreflow().args(["logs", &run]).succeeds();
    assert!(logs.stdout().contains("src=[]"), "{logs}");
}

/// A worker that cannot read a run's definition failed the job it took and left the run
/// `running`, its other jobs `pending` forever; the rest is now cancelled and the run ends.
#[test]
fn a_run_whose_definition_cannot_be_read_ends_instead_of_waiting_forever_sqlite_only() {
    let ws = Workspace::with_workflow(
        "jobs:\n  a:\n    steps: [{ run: 'true' }]\n  b:\n    needs: [a]\n    steps: [{ run: 'true' }]\n",
    );
    let run = crate::queue_support::detach(&ws, "wf.yaml", &[]);
    // The recorded definition goes (as if the environment had been tampered with).
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA foreign_keys = OFF'); db.execute('DELETE FROM definitions'); db.commit()")
        .arg(ws.env_dir().join("coreflow.db"))
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let worker = crate::queue_support::Worker::start(&ws, &[]);
    assert_eq!(crate::queue_support::wait_for_run(&ws, &run), "failed");
    worker.stop();
    let show = ws.show(&run);
    assert_eq!(status_of(&show, "a"), "failed");
    assert_eq!(status_of(&show, "b"), "cancelled");
    assert!(
        job(&show, "b")["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("its run cannot be read")),
        "{show:#}"
    );
}

fn status_of(show: &serde_json::Value, name: &str) -> String {
    status(show, name).to_owned()
}
