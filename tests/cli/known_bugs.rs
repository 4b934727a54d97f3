//! Tests that fail because of bugs in src/; to be moved into their modules once fixed.

use serde_json::Value;

use crate::engine_support::{Workspace, job};

fn attempt_statuses(job: &Value) -> Vec<&str> {
    job["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history in {job:#}"))
        .iter()
        .map(|attempt| {
            attempt["status"]
                .as_str()
                .expect("an attempt status is text")
        })
        .collect()
}

// failures.rs
#[test]
fn a_timed_out_attempt_that_is_retried_is_recorded_as_timed_out() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  sleepy:
    cancel_grace: 1s
    retry: { max_attempts: 2, delay: 100ms }
    steps:
      - timeout: 1s
        run: sleep 30
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    let sleepy = job(&show, "sleepy");
    assert_eq!(
        attempt_statuses(sleepy),
        ["timed_out", "timed_out"],
        "{sleepy:#}"
    );
}

// run.rs
#[test]
fn a_bool_param_renders_in_templates_as_in_its_env_var() {
    let ws = Workspace::with_workflow(
        r#"
params:
  dry_run: { type: bool, default: false }
jobs:
  j:
    steps:
      - run: echo "${{ params.dry_run }} $COREFLOW_PARAM_DRY_RUN" > seen.txt
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.read("seen.txt"), "false false\n");
}

// cancel.rs
#[test]
fn cancelling_a_run_while_a_job_waits_out_its_retry_delay_ends_it_at_once() {
    // With the bug, `coreflow run` waits out the whole hour-long delay after the cancel, and
    // the harness deadline fails the test.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  flaky:
    retry: { max_attempts: 3, delay: 1h, max_delay: 1h }
    steps:
      - run: echo "$COREFLOW_ATTEMPT" >> attempts; exit 1
"#,
    );
    for cancel in ["ctrl-c", "coreflow cancel"] {
        let ws = Workspace::with_workflow(&ws.read("wf.yaml"));
        let running = ws
            .coreflow()
            .args(["run", "wf.yaml", "--progress", "plain"])
            .timeout(std::time::Duration::from_secs(20))
            .spawn();
        // Attempt 1 has failed and the job is queued for attempt 2.
        crate::engine_support::wait_until("the job to wait for its retry", || {
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
        assert_eq!(
            ws.lines("attempts"),
            ["1"],
            "{cancel}: retried after the cancel"
        );
        assert_eq!(
            crate::engine_support::status(&ws.show("last"), "flaky"),
            "cancelled"
        );
    }
}
