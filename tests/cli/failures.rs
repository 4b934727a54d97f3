//! Failure handling in `coreflow run`: exit codes, `continue_on_error`, retries, step and
//! job timeouts (and what they leave running), `if:`, the `run_if` modes of SPEC §7 and
//! matrix fan-out.

use serde_json::{Value, json};

use crate::engine_support::{Workspace, assert_gone, job, job_names, status};

/// The `status` of each attempt in a job's `history`.
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

#[test]
fn a_failing_step_fails_its_job_and_the_run_exits_1() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  broken:
    steps:
      - run: exit 7
      - run: touch second-step-ran
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(show["status"], "failed");
    assert_eq!(status(&show, "broken"), "failed");
    assert_eq!(job(&show, "broken")["exit_code"], 7);
    assert!(!ws.exists("second-step-ran"));
}

#[test]
fn continue_on_error_lets_the_job_go_on_and_succeed() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  tolerant:
    steps:
      - run: exit 5
        continue_on_error: true
      - run: touch second-step-ran
  next:
    needs: tolerant
    steps:
      - run: touch next-ran
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert!(ws.exists("second-step-ran"));
    assert!(ws.exists("next-ran"));
    let show = ws.show("last");
    assert_eq!(status(&show, "tolerant"), "succeeded", "{show:#}");
    assert_eq!(show["status"], "succeeded");
}

#[test]
fn a_failing_job_is_retried_until_it_succeeds_and_every_attempt_is_recorded() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  flaky:
    retry: { max_attempts: 3, delay: 100ms }
    steps:
      - run: |
          echo "$COREFLOW_ATTEMPT" >> attempts
          [ "$COREFLOW_ATTEMPT" -ge 3 ]
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .succeeds();
    assert_eq!(ws.lines("attempts"), ["1", "2", "3"]);
    let show = ws.show("last");
    let flaky = job(&show, "flaky");
    assert_eq!(flaky["status"], "succeeded");
    assert_eq!(flaky["attempts"], 3);
    assert_eq!(
        attempt_statuses(flaky),
        ["failed", "failed", "succeeded"],
        "{flaky:#}"
    );
}

#[test]
fn retries_stop_after_max_attempts() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  doomed:
    retry: { max_attempts: 2, delay: 100ms }
    steps:
      - run: echo "$COREFLOW_ATTEMPT" >> attempts; exit 1
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    assert_eq!(ws.lines("attempts"), ["1", "2"]);
    let show = ws.show("last");
    assert_eq!(job(&show, "doomed")["attempts"], 2);
    assert_eq!(attempt_statuses(job(&show, "doomed")), ["failed", "failed"]);
}

#[test]
fn a_job_that_succeeds_is_not_retried() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  fine:
    retry: { max_attempts: 3, delay: 100ms }
    steps:
      - run: echo "$COREFLOW_ATTEMPT" >> attempts
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.lines("attempts"), ["1"]);
    let show = ws.show("last");
    assert_eq!(job(&show, "fine")["attempts"], 1);
    assert_eq!(attempt_statuses(job(&show, "fine")), ["succeeded"]);
}

#[test]
fn a_step_timeout_times_the_job_out_kills_the_step_and_is_retried() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  sleepy:
    cancel_grace: 1s
    retry: { max_attempts: 2, delay: 100ms }
    steps:
      - timeout: 1s
        run: |
          echo $$ > "shell.$COREFLOW_ATTEMPT.pid"
          sleep 30 &
          echo $! > "sleep.$COREFLOW_ATTEMPT.pid"
          wait
      - run: touch after-timeout
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    let sleepy = job(&show, "sleepy");
    assert_eq!(sleepy["status"], "timed_out", "{show:#}");
    assert_eq!(sleepy["attempts"], 2);
    // Both attempts are recorded; how the first one is labelled is checked in a test that
    // waits for a fix (see the report on `history` of a retried timeout).
    let history = attempt_statuses(sleepy);
    assert_eq!(history.len(), 2, "{sleepy:#}");
    assert_eq!(history[1], "timed_out", "{sleepy:#}");
    assert!(!ws.exists("after-timeout"));
    for name in ["shell.1.pid", "sleep.1.pid", "shell.2.pid", "sleep.2.pid"] {
        assert_gone(ws.wait_for_pid(name), name);
    }
}

#[test]
fn a_job_timeout_stops_the_job_in_whichever_step_it_is() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  bounded:
    timeout: 1s
    cancel_grace: 1s
    steps:
      - run: echo quick
      - run: |
          sleep 30 &
          echo $! > sleep.pid
          wait
      - run: touch never
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    assert_eq!(status(&ws.show("last"), "bounded"), "timed_out");
    assert!(!ws.exists("never"));
    assert_gone(ws.wait_for_pid("sleep.pid"), "the step's sleep");
}

#[test]
fn a_timeout_kills_a_process_that_left_the_process_group_with_setsid() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  escaper:
    cancel_grace: 1s
    steps:
      - timeout: 2s
        run: |
          setsid sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped.pid; exec sleep 30' &
          while [ ! -e escaped.pid ]; do sleep 0.01; done
          sleep 30
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    assert_eq!(status(&ws.show("last"), "escaper"), "timed_out");
    let escaped = ws.wait_for_pid("escaped.pid");
    assert_gone(escaped, "the process that called setsid");
}

#[test]
fn a_false_if_skips_the_job_and_what_needs_it_without_failing_the_run() {
    let yaml = r#"
params:
  target: { type: string, default: staging }
jobs:
  build:
    steps:
      - run: touch built
  deploy:
    needs: build
    if: "${{ params.target == 'prod' && needs.build.result == 'success' }}"
    steps:
      - run: touch deployed
  notify:
    needs: deploy
    steps:
      - run: touch notified
"#;
    let ws = Workspace::with_workflow(yaml);
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let show = ws.show("last");
    assert_eq!(status(&show, "build"), "succeeded");
    assert_eq!(status(&show, "deploy"), "skipped");
    assert_eq!(status(&show, "notify"), "skipped");
    assert_eq!(show["status"], "succeeded");
    assert!(ws.exists("built"));
    assert!(!ws.exists("deployed"));
    assert!(!ws.exists("notified"));

    let ws = Workspace::with_workflow(yaml);
    ws.coreflow()
        .args(["run", "wf.yaml", "-p", "target=prod"])
        .succeeds();
    assert!(ws.exists("deployed"));
    assert!(ws.exists("notified"));
}

#[test]
fn run_if_modes_decide_from_the_results_of_the_needs() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  ok: { steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  bad: { steps: [{ run: exit 1 }] }
  skip: { if: "${{ false }}", steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  late: { timeout: 300ms, cancel_grace: 1s, steps: [{ run: sleep 30 }] }
  success_after_bad: { needs: [ok, bad], steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  success_after_skip: { needs: [ok, skip], steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  done_after_bad:
    { needs: [ok, bad], run_if: all_done, steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  none_failed_after_skip:
    { needs: [ok, skip], run_if: none_failed, steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  none_failed_after_bad:
    { needs: [ok, bad], run_if: none_failed, steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  none_failed_after_timeout:
    { needs: [late], run_if: none_failed, steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  any_failed_after_bad:
    { needs: [ok, bad], run_if: any_failed, steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  any_failed_after_timeout:
    { needs: [late], run_if: any_failed, steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
  any_failed_after_skip:
    { needs: [ok, skip], run_if: any_failed, steps: [{ run: touch "$COREFLOW_JOB.ran" }] }
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2"])
        .fails(1);
    let show = ws.show("last");
    let expected = [
        ("ok", "succeeded"),
        ("bad", "failed"),
        ("skip", "skipped"),
        ("late", "timed_out"),
        ("success_after_bad", "skipped"),
        ("success_after_skip", "skipped"),
        ("done_after_bad", "succeeded"),
        ("none_failed_after_skip", "succeeded"),
        ("none_failed_after_bad", "skipped"),
        ("none_failed_after_timeout", "skipped"),
        ("any_failed_after_bad", "succeeded"),
        ("any_failed_after_timeout", "succeeded"),
        ("any_failed_after_skip", "skipped"),
    ];
    let actual: Vec<(String, String)> = expected
        .iter()
        .map(|(name, _)| ((*name).to_owned(), status(&show, name).to_owned()))
        .collect();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(name, state)| ((*name).to_owned(), (*state).to_owned()))
        .collect();
    assert_eq!(actual, expected);
    for (name, state) in &expected {
        assert_eq!(
            ws.exists(&format!("{name}.ran")),
            state == "succeeded" && name != "bad",
            "{name}"
        );
    }
}

#[test]
fn a_matrix_fans_out_into_one_job_per_combination_named_in_written_key_order() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  test:
    matrix: { py: ["3.11", "3.12"], os: [linux, mac] }
    steps:
      - run: echo "$COREFLOW_JOB $COREFLOW_MATRIX_PY $COREFLOW_MATRIX_OS" >> seen
  collect:
    needs: test
    steps:
      - run: wc -l < seen | tr -d ' ' > collected
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2"])
        .succeeds();
    let combinations = [
        ("3.11", "linux"),
        ("3.11", "mac"),
        ("3.12", "linux"),
        ("3.12", "mac"),
    ];
    let show = ws.show("last");
    let mut names = job_names(&show);
    names.sort();
    let mut expected_names: Vec<String> = combinations
        .iter()
        .map(|(py, os)| format!("test[py={py},os={os}]"))
        .collect();
    expected_names.push("collect".to_owned());
    expected_names.sort();
    assert_eq!(names, expected_names);
    for (py, os) in combinations {
        let name = format!("test[py={py},os={os}]");
        assert_eq!(status(&show, &name), "succeeded");
        assert_eq!(job(&show, &name)["matrix"], json!({"py": py, "os": os}));
    }
    let mut seen = ws.lines("seen");
    seen.sort();
    let expected_seen: Vec<String> = combinations
        .iter()
        .map(|(py, os)| format!("test[py={py},os={os}] {py} {os}"))
        .collect();
    assert_eq!(seen, expected_seen);
    // `collect` ran after all four.
    assert_eq!(ws.read("collected"), "4\n");
}

#[test]
fn a_reference_that_does_not_resolve_at_run_time_fails_its_job_naming_it_and_what_exists() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  a:
    steps:
      - run: |
          echo "rows=3" >> "$COREFLOW_OUTPUT"
          echo "path=out.csv" >> "$COREFLOW_OUTPUT"
  b:
    needs: [a]
    steps:
      - run: echo ${{ needs.a.outputs.rows }}
      - run: echo ${{ needs.a.outputs.nosuch | quote }}
  c:
    needs: [a]
    if: ${{ needs.a.outputs.count != '0' }}
    steps: [{ run: touch c-ran }]
  d:
    steps:
      - command: [echo, "${{ trigger.file }}"]
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(status(&show, "b"), "failed", "{show:#}");
    assert_eq!(
        job(&show, "b")["reason"],
        "cannot render `run` of step `step-2` in job `b`: `needs.a.outputs.nosuch`: job `a` set \
         no output `nosuch` (it set: path, rows)",
        "{show:#}"
    );
    assert_eq!(
        job(&show, "c")["reason"],
        "cannot evaluate `if`: `needs.a.outputs.count`: job `a` set no output `count` (it set: \
         path, rows)",
        "{show:#}"
    );
    assert!(!ws.exists("c-ran"));
    let reason = job(&show, "d")["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(
            "cannot render `command` of step `step-1` in job `d`: `trigger.file`: the trigger \
             has no `file` (it has: "
        ),
        "{show:#}"
    );
}
