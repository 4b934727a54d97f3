//! Looking at runs afterwards: `runs`, `show`, `logs` (plain and `--json`) and `retry`
//! (SPEC §4 "Machine-readable output", §7 "Not found").

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};

use crate::engine_support::{Workspace, job, status};

/// Parses an RFC 3339 time that must be in UTC.
#[track_caller]
fn utc_time(value: &Value) -> DateTime<FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a time is text, not {value}"));
    let time = DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|err| panic!("{text:?} is not RFC 3339: {err}"));
    assert_eq!(time.offset().local_minus_utc(), 0, "{text} is not UTC");
    time
}

/// Asserts that `object` has every key of `keys`.
#[track_caller]
fn assert_keys(object: &Value, keys: &[&str]) {
    for key in keys {
        assert!(object.get(key).is_some(), "no `{key}` in {object:#}");
    }
}

const RUN_KEYS: &[&str] = &[
    "id",
    "workflow",
    "status",
    "trigger",
    "params",
    "created_at",
    "started_at",
    "finished_at",
];

#[test]
fn runs_json_lists_run_objects_newest_first_and_filters() {
    let ws = Workspace::new();
    ws.file(
        "first.yaml",
        "params:\n  fail: { type: bool, default: false }\njobs:\n  j:\n    steps:\n      - run: test \"$COREFLOW_PARAM_FAIL\" = false\n",
    );
    ws.file(
        "second.yaml",
        "jobs:\n  j:\n    steps:\n      - run: \"true\"\n",
    );
    ws.coreflow().args(["run", "first.yaml"]).succeeds();
    ws.coreflow()
        .args(["run", "first.yaml", "-p", "fail=true"])
        .fails(1);
    ws.coreflow().args(["run", "second.yaml"]).succeeds();

    let runs = ws.runs();
    let summary: Vec<(u64, &str, &str)> = runs
        .iter()
        .map(|run| {
            assert_keys(run, RUN_KEYS);
            assert!(run.get("jobs").is_none(), "`runs` has no jobs: {run:#}");
            let created = utc_time(&run["created_at"]);
            let started = utc_time(&run["started_at"]);
            let finished = utc_time(&run["finished_at"]);
            assert!(created <= started && started <= finished, "{run:#}");
            (
                run["id"].as_u64().expect("an id is a number"),
                run["workflow"].as_str().expect("a workflow is text"),
                run["status"].as_str().expect("a status is text"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, "second", "succeeded"),
            (2, "first", "failed"),
            (1, "first", "succeeded"),
        ]
    );
    assert_eq!(runs[1]["params"], json!({"fail": true}));

    let ids = |args: &[&str]| -> Vec<u64> {
        let output = ws.coreflow().args(["runs", "--json"]).args(args).succeeds();
        output
            .stdout_json()
            .as_array()
            .expect("an array")
            .iter()
            .map(|run| run["id"].as_u64().expect("an id is a number"))
            .collect()
    };
    assert_eq!(ids(&["--limit", "1"]), [3]);
    assert_eq!(ids(&["--status", "failed"]), [2]);
    assert_eq!(ids(&["--workflow", "first"]), [2, 1]);
}

#[test]
fn show_json_has_the_run_and_job_fields_of_the_contract() {
    let ws = Workspace::with_workflow(
        r#"
name: shape
params:
  size: { type: int, default: 3 }
jobs:
  measured:
    queue: fast
    priority: 7
    metadata: { size: "${{ params.size }}", team: data }
    steps:
      - run: |
          python3 -c "x = b'x' * 100_000_000"
          sleep 0.3
          echo "answer=42" >> "$COREFLOW_OUTPUT"
  broken:
    steps:
      - run: exit 3
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "-p", "size=5"])
        .fails(1);
    let show = ws.show("1");
    assert_keys(&show, RUN_KEYS);
    assert_eq!(show["id"], 1);
    assert_eq!(show["workflow"], "shape");
    assert_eq!(show["status"], "failed");
    assert!(show["trigger"].is_object(), "{show:#}");
    assert_eq!(show["params"], json!({"size": 5}));
    let started = utc_time(&show["started_at"]);
    let finished = utc_time(&show["finished_at"]);
    assert!(utc_time(&show["created_at"]) <= started && started <= finished);

    for name in ["measured", "broken"] {
        let job = job(&show, name);
        assert_keys(
            job,
            &[
                "name",
                "status",
                "queue",
                "priority",
                "metadata",
                "attempts",
                "exit_code",
                "started_at",
                "finished_at",
                "duration_ms",
                "peak_rss_bytes",
                "cpu_ms",
                "outputs",
                "reason",
            ],
        );
        let job_started = utc_time(&job["started_at"]);
        let job_finished = utc_time(&job["finished_at"]);
        assert!(started <= job_started && job_started <= job_finished);
        assert!(job_finished <= finished);
        for key in ["duration_ms", "peak_rss_bytes", "cpu_ms"] {
            assert!(job[key].is_u64(), "`{key}` is a count: {job:#}");
        }
        assert_eq!(job["attempts"], 1);
    }

    let measured = job(&show, "measured");
    assert_eq!(measured["status"], "succeeded");
    assert_eq!(measured["queue"], "fast");
    assert_eq!(measured["priority"], 7);
    assert_eq!(measured["metadata"], json!({"size": "5", "team": "data"}));
    assert_eq!(measured["exit_code"], 0);
    assert_eq!(measured["outputs"], json!({"answer": "42"}));
    assert!(
        measured["duration_ms"].as_u64() >= Some(300),
        "{measured:#}"
    );
    // The step's python held 100 MB, and its memset took CPU time.
    assert!(
        measured["peak_rss_bytes"].as_u64() >= Some(100_000_000),
        "{measured:#}"
    );
    assert!(measured["cpu_ms"].as_u64() > Some(0), "{measured:#}");

    let broken = job(&show, "broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["exit_code"], 3);
    assert_eq!(broken["queue"], "default");
    assert_eq!(broken["outputs"], json!({}));
}

#[test]
fn show_json_prints_params_in_declared_order() {
    let ws = Workspace::with_workflow(
        "params:\n  zeta: { type: string, default: z }\n  alpha: { type: int, default: 1 }\n  mid: { type: bool, default: true }\njobs:\n  a:\n    steps:\n      - run: \"true\"\n",
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    // `Value` (with serde_json's preserve_order) keeps the printed order of keys.
    let show = ws.show("1");
    let names: Vec<&str> = show["params"]
        .as_object()
        .expect("params are an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn show_of_a_missing_run_is_exit_2_with_a_message() {
    let ws = Workspace::with_workflow("jobs:\n  j:\n    steps:\n      - run: \"true\"\n");
    let output = ws.coreflow().args(["show", "last"]).fails(2);
    assert!(!output.stderr().trim().is_empty(), "{output}");
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let output = ws.coreflow().args(["show", "999"]).fails(2);
    assert!(output.stderr().contains("999"), "{output}");
    let output = ws.coreflow().args(["show", "999", "--json"]).fails(2);
    assert!(output.stderr().contains("999"), "{output}");
}

const TALKATIVE: &str = r#"
jobs:
  first:
    steps:
      - name: count
        run: seq 1 5
      - name: more
        run: echo six; echo seven
  second:
    needs: first
    steps:
      - run: echo "to stderr" >&2
  grid:
    needs: second
    matrix: { n: [1] }
    steps:
      - run: echo "cell $COREFLOW_MATRIX_N"
"#;

#[test]
fn logs_print_every_line_in_order_with_job_and_step() {
    let ws = Workspace::with_workflow(TALKATIVE);
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    assert_eq!(
        logs.stdout(),
        "\
first/count | 1
first/count | 2
first/count | 3
first/count | 4
first/count | 5
first/more | six
first/more | seven
second/step-1 | to stderr
grid[n=1]/step-1 | cell 1
"
    );
    let logs = ws.coreflow().args(["logs", "1", "first"]).succeeds();
    assert_eq!(logs.stdout().lines().count(), 7, "{logs}");
    assert!(
        logs.stdout().lines().all(|l| l.starts_with("first/")),
        "{logs}"
    );
    let logs = ws.coreflow().args(["logs", "1", "grid[n=1]"]).succeeds();
    assert_eq!(logs.stdout(), "grid[n=1]/step-1 | cell 1\n");
    let output = ws.coreflow().args(["logs", "1", "nope"]).fails(2);
    assert!(output.stderr().contains("nope"), "{output}");
    ws.coreflow().args(["logs", "999"]).fails(2);
}

#[test]
fn logs_follow_prints_lines_as_they_come_and_ends_with_the_run() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  first:
    steps:
      - run: |
          echo before
          touch started
          i=0
          while [ ! -e go ] && [ "$i" -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
          echo after
  second:
    needs: first
    steps:
      - run: echo last
"#,
    );
    let run = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    ws.wait_for_file("started");
    let follow = ws.coreflow().args(["logs", "last", "--follow"]).spawn();
    ws.file("go", "");
    let output = run.wait();
    assert_eq!(output.code(), Some(0), "{output}");
    let follow = follow.wait();
    assert_eq!(follow.code(), Some(0), "{follow}");
    assert_eq!(
        follow.stdout(),
        "first/step-1 | before\nfirst/step-1 | after\nsecond/step-1 | last\n"
    );
}

/// A step that prints and then goes quiet: its line reaches `logs` from another process
/// while the step still runs (the log is flushed on the step's ticks, not only with its next
/// line or its end), which is what `logs --follow` on another host relies on.
#[test]
fn a_quiet_steps_last_line_is_readable_while_it_runs() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  quiet:
    steps:
      - run: |
          echo only line
          i=0
          while [ ! -e go ] && [ "$i" -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
"#,
    );
    let run = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .spawn();
    crate::engine_support::wait_until("the quiet step's line in `logs`", || {
        let output = ws.coreflow().args(["logs", "last"]).run();
        output.stdout().contains("quiet/step-1 | only line")
    });
    ws.file("go", "");
    let output = run.wait();
    assert_eq!(output.code(), Some(0), "{output}");
}

#[test]
fn logs_json_prints_one_object_per_line() {
    let ws = Workspace::with_workflow(TALKATIVE);
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let logs = ws.coreflow().args(["logs", "last", "--json"]).succeeds();
    let lines: Vec<Value> = logs
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?}: {err}")))
        .collect();
    assert_eq!(lines.len(), 9, "{logs}");
    for line in &lines {
        assert_keys(line, &["ts", "job", "step", "stream", "line"]);
        utc_time(&line["ts"]);
    }
    let triples: Vec<(&str, &str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["job"].as_str().unwrap(),
                l["step"].as_str().unwrap(),
                l["stream"].as_str().unwrap(),
                l["line"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(triples[0], ("first", "count", "stdout", "1"));
    assert_eq!(triples[6], ("first", "more", "stdout", "seven"));
    assert_eq!(triples[7], ("second", "step-1", "stderr", "to stderr"));
    assert_eq!(triples[8], ("grid[n=1]", "step-1", "stdout", "cell 1"));
    let times: Vec<_> = lines.iter().map(|l| utc_time(&l["ts"])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{logs}");
}

#[test]
fn retry_reruns_only_what_failed_and_its_downstream_keeping_the_run_id() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  upstream:
    steps:
      - run: |
          echo ran >> upstream.count
          echo "token=from-upstream" >> "$COREFLOW_OUTPUT"
  side:
    steps:
      - run: echo ran >> side.count
  flaky:
    needs: upstream
    steps:
      - run: |
          echo ran >> flaky.count
          test -e fixed
          echo "${{ needs.upstream.outputs.token }}" > flaky.got
  downstream:
    needs: flaky
    steps:
      - run: echo ran >> downstream.count
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2"])
        .fails(1);
    let show = ws.show("last");
    assert_eq!(status(&show, "flaky"), "failed");
    assert_eq!(status(&show, "downstream"), "skipped");
    assert!(!ws.exists("downstream.count"));

    // Still broken: retry fails again, and still runs nothing that succeeded.
    ws.coreflow().args(["retry", "last"]).fails(1);

    ws.file("fixed", "");
    ws.coreflow()
        .args(["retry", "last", "--workers", "2"])
        .succeeds();
    assert_eq!(ws.lines("upstream.count"), ["ran"]);
    assert_eq!(ws.lines("side.count"), ["ran"]);
    assert_eq!(ws.lines("flaky.count"), ["ran", "ran", "ran"]);
    assert_eq!(ws.lines("downstream.count"), ["ran"]);
    // The outputs of the job that had succeeded are reused.
    assert_eq!(ws.read("flaky.got"), "from-upstream\n");

    let runs = ws.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let show = ws.show("last");
    assert_eq!(show["id"], 1);
    assert_eq!(show["status"], "succeeded", "{show:#}");
    for name in ["upstream", "side", "flaky", "downstream"] {
        assert_eq!(status(&show, name), "succeeded", "{show:#}");
    }
    assert_eq!(job(&show, "upstream")["attempts"], 1);
}
