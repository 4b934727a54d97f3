//! GitHub Actions habits that carry over (SPEC §2): matrix `include`/`exclude` and template
//! axes, `fail_fast`, outputs of legs as JSON arrays, job-level `continue_on_error`, step
//! `id`/`workdir`, `steps.<id>.*`, `$COREFLOW_EXPORT`, status functions in `if:`, outputs of
//! needs that did not succeed, and `||` as a fallback. Each behaviour is checked in a
//! foreground run and, where a worker decides differently, through the store.

use serde_json::{Value, json};

use crate::engine_support::{Workspace, job, job_names, status};
use crate::queue_support::{Worker, detach, wait_for_run};

/// A lint + test matrix + report port, as a GitHub Actions user writes it.
const PORTED: &str = r#"
params:
  systems: { default: '["linux", "mac"]' }
jobs:
  lint:
    steps:
      - run: echo lint
  test:
    needs: [lint]
    matrix:
      python: ["3.11", "3.12"]
      os: ${{ params.systems }}
      include: [ { python: "3.13", experimental: "yes" } ]
      exclude: [ { python: "3.11", os: mac } ]
    continue_on_error: true
    steps:
      - id: unit
        workdir: py
        run: |
          echo "passed=${{ matrix.python }}-${{ matrix.os }}" >> "$COREFLOW_OUTPUT"
          printf 'VENV<<EOF\n%s\nsecond line\nEOF\n' "$PWD/.venv" >> "$COREFLOW_EXPORT"
          echo "DEPTH=1" >> "$COREFLOW_EXPORT"
          test "${{ matrix.experimental }}" != yes
      - run: |
          printf '%s|%s|%s|%s\n' ${{ steps.unit.outputs.passed | quote }} ${{ steps.unit.outcome }} "$VENV" "$DEPTH" >> legs.txt
  report:
    needs: [test]
    if: ${{ always() }}
    steps:
      - run: |
          echo ${{ needs.test.outputs.passed | quote }} > passed.json
          echo "${{ needs.test.outputs.nosuch || 'none' }}|${{ needs.test.outputs.nosuch }}|${{ needs.test.result }}" > fallback.txt
  on_failure:
    needs: [test]
    if: ${{ failure() }}
    steps:
      - run: touch on-failure-ran
  on_success:
    needs: [test]
    steps:
      - run: touch on-success-ran
"#;

fn check_ported(ws: &Workspace, show: &Value) {
    assert_eq!(show["status"], "succeeded", "{show:#}");
    let legs: Vec<String> = job_names(show)
        .into_iter()
        .filter(|n| n.starts_with("test"))
        .collect();
    assert_eq!(
        legs,
        [
            "test[python=3.11,os=linux]",
            "test[python=3.12,os=linux]",
            "test[python=3.12,os=mac]",
            "test[python=3.13,experimental=yes]",
        ]
    );
    assert_eq!(
        status(show, "test[python=3.13,experimental=yes]"),
        "failed",
        "continue_on_error records the failure; the run still succeeds"
    );
    let mut lines = ws.lines("legs.txt");
    lines.sort();
    let py = ws
        .path()
        .join("py")
        .canonicalize()
        .expect("the step's workdir is created");
    // `VENV` holds two lines (`NAME<<DELIM`): its second line starts a line of the file.
    let mut expected: Vec<String> = ["3.11-linux", "3.12-linux", "3.12-mac"]
        .iter()
        .flat_map(|p| {
            [
                format!("{p}|success|{}/.venv", py.display()),
                "second line|1".to_owned(),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(lines, expected, "{show:#}");
    assert_eq!(
        serde_json::from_str::<Value>(&ws.read("passed.json")).unwrap(),
        json!(["3.11-linux", "3.12-linux", "3.12-mac", "3.13-"]),
        "outputs of the legs, in leg order"
    );
    assert_eq!(ws.read("fallback.txt"), "none||failure\n");
    assert!(
        ws.exists("on-success-ran"),
        "a tolerated failure counts as success"
    );
    assert!(!ws.exists("on-failure-ran"));
    assert_eq!(status(show, "on_failure"), "skipped");
}

#[test]
fn a_ported_github_actions_workflow_runs_in_the_foreground() {
    let ws = Workspace::with_workflow(PORTED);
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    check_ported(&ws, &ws.show("last"));
}

#[test]
fn a_ported_github_actions_workflow_runs_through_a_worker() {
    let ws = Workspace::with_workflow(PORTED);
    let run = detach(&ws, "wf.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    drop(worker);
    check_ported(&ws, &ws.show(&run));
}

#[test]
fn a_template_axis_comes_from_the_parameters_and_must_render_a_json_array() {
    let ws = Workspace::with_workflow(
        r#"
params:
  systems: { default: '["a", "b"]' }
jobs:
  t:
    matrix: { os: "${{ params.systems }}" }
    steps:
      - run: echo "$COREFLOW_MATRIX_OS" >> os.txt
"#,
    );
    ws.coreflow()
        .args([
            "run",
            "wf.yaml",
            "-p",
            r#"systems=["x", 3]"#,
            "--workers",
            "1",
        ])
        .succeeds();
    assert_eq!(ws.lines("os.txt"), ["x", "3"]);
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "-p", "systems=linux"])
        .fails(1);
    let show = ws.show("last");
    assert_eq!(job_names(&show), ["t"], "{output}");
    assert_eq!(
        job(&show, "t")["reason"],
        "matrix axis `os` rendered `linux`, which is not a JSON array",
        "{show:#}"
    );
    // `graph` draws the legs of the parameters' defaults.
    let graph = ws.coreflow().args(["graph", "wf.yaml"]).succeeds();
    assert!(graph.stdout().contains("t[os=a]"), "{graph}");
}

#[test]
fn validate_knows_the_new_keys_and_where_they_may_be_read() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  a:
    steps: [{ run: "true" }]
  t:
    matrix:
      os: "${{ needs.a.outputs.list }}"
      exclude: [ { arch: x } ]
    fail_fast: true
    steps:
      - id: first
        run: echo ${{ steps.later.outputs.x }} ${{ steps.first.outcome }}
      - id: later
        run: echo ${{ steps.first.result }}
      - id: later
        run: "true"
  u:
    fail_fast: true
    if: ${{ always() && success() }}
    steps:
      - run: echo ${{ steps.x.outcome }}
"#,
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    let stderr = output.stderr();
    for expected in [
        "`needs.a.outputs.list`: a matrix axis is rendered when the run is created, and can read only `params`",
        "`exclude` names `arch`, which is not an axis of the matrix",
        "`steps.later.outputs.x` reads step `later`, which runs after this one",
        "`steps.first.outcome` reads step `first`, and no earlier step of job `t` has that id",
        "`steps.first.result`: a step has `outputs` and `outcome`, not `result`",
        "job `t` has two steps with id `later`",
        "job `u` has `fail_fast` but no `matrix`",
        "`steps.x.outcome` reads step `x`, and no earlier step of job `u` has that id",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("always"),
        "status functions are known in `if:`\n{stderr}"
    );
}

/// A failing leg with `fail_fast` cancels the running leg (stopping its process) and the
/// queued one; the run fails, it is not cancelled.
fn fail_fast(ws: &Workspace, show: &Value, reason: &str) {
    assert_eq!(show["status"], "failed", "{show:#}");
    assert_eq!(status(show, "t[x=bad]"), "failed", "{show:#}");
    for leg in ["t[x=slow]", "t[x=later]"] {
        assert_eq!(status(show, leg), "cancelled", "{show:#}");
    }
    assert_eq!(job(show, "t[x=later]")["reason"], reason, "{show:#}");
    assert!(!ws.exists("slow.finished"));
    assert!(!ws.exists("later.ran"));
    assert_eq!(status(show, "after"), "cancelled", "{show:#}");
}

const FAIL_FAST: &str = r#"
jobs:
  t:
    matrix: { x: [bad, slow, later] }
    fail_fast: true
    max_parallel: 2
    steps:
      - run: |
          case ${{ matrix.x }} in
            bad) while [ ! -f slow.started ]; do sleep 0.01; done; exit 1 ;;
            slow) touch slow.started; sleep 30; touch slow.finished ;;
            later) touch later.ran ;;
          esac
  after:
    needs: [t]
    steps: [{ run: "true" }]
"#;

#[test]
fn fail_fast_cancels_the_siblings_of_a_failed_leg() {
    let ws = Workspace::with_workflow(FAIL_FAST);
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2"])
        .fails(1);
    fail_fast(&ws, &ws.show("last"), "fail_fast: t[x=bad] failed");
    assert_eq!(
        job(&ws.show("last"), "t[x=slow]")["reason"],
        "fail_fast: t[x=bad] failed"
    );
}

#[test]
fn fail_fast_cancels_the_siblings_of_a_failed_leg_through_workers() {
    let ws = Workspace::with_workflow(FAIL_FAST);
    let run = detach(&ws, "wf.yaml", &[]);
    let workers = [Worker::start(&ws, &[]), Worker::start(&ws, &[])];
    assert_eq!(wait_for_run(&ws, &run), "failed");
    drop(workers);
    fail_fast(&ws, &ws.show(&run), "fail_fast: t[x=bad] failed");
}

#[test]
fn without_fail_fast_the_other_legs_run_on() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  t:
    matrix: { x: [bad, good] }
    steps:
      - run: |
          test ${{ matrix.x }} = good
          touch good.ran
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "1"])
        .fails(1);
    assert!(ws.exists("good.ran"));
    assert_eq!(ws.show("last")["status"], "failed");
}

#[test]
fn an_output_a_succeeded_need_never_set_is_an_error_unless_it_has_a_fallback() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  a:
    steps: [{ run: echo "x=1" >> "$COREFLOW_OUTPUT" }]
  b:
    needs: [a]
    steps:
      - run: echo "${{ needs.a.outputs.y || 'fallback' }} ${{ needs.a.outputs.x || 'unused' }}" > b.txt
  c:
    needs: [a]
    steps:
      - run: echo ${{ needs.a.outputs.y }}
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    assert_eq!(ws.read("b.txt"), "fallback 1\n");
    let show = ws.show("last");
    let reason = job(&show, "c")["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("`needs.a.outputs.y`: job `a` set no output `y` (it set: x)"),
        "{show:#}"
    );
}

/// The ```yaml blocks of `docs/src/github-actions.md`.
fn guide_examples() -> Vec<String> {
    let path = crate::support::repo_root().join("docs/src/github-actions.md");
    let guide = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in guide.lines() {
        match &mut current {
            None if line.trim_end() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_example_of_the_guide_validates_and_runs() {
    let examples = guide_examples();
    assert!(examples.len() >= 3, "{examples:?}");
    for example in &examples {
        let ws = Workspace::with_workflow(example);
        ws.coreflow()
            .args(["validate", "--deny-warnings", "wf.yaml"])
            .succeeds();
        let output = ws.coreflow().args(["run", "wf.yaml"]).succeeds();
        assert_eq!(
            ws.show("last")["status"],
            "succeeded",
            "{example}\n{output}"
        );
    }
    // The legs the guide says its matrix runs, in its order.
    let ws = Workspace::with_workflow(&examples[0]);
    let graph = ws.coreflow().args(["graph", "wf.yaml"]).succeeds();
    let legs = [
        "test[python=3.11,os=linux]",
        "test[python=3.12,os=linux,coverage=true]",
        "test[python=3.12,os=mac]",
        "test[python=3.13,experimental=true]",
    ];
    for leg in legs {
        assert!(graph.stdout().contains(leg), "{leg} missing in\n{graph}");
    }
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(job_names(&ws.show("last")), legs);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("list a folder") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// `examples/python-ci.yaml`, the port of GitHub's "Python package" starter workflow, runs:
/// the stable legs pass their unit tests, the experimental one fails without failing the
/// run, and the report gathers the legs' outputs.
#[test]
fn the_ported_python_ci_example_runs() {
    let ws = Workspace::new();
    let examples = crate::support::repo_root().join("examples");
    std::fs::copy(
        examples.join("python-ci.yaml"),
        ws.path().join("python-ci.yaml"),
    )
    .expect("copy the example");
    copy_dir(
        &examples.join("python-package"),
        &ws.path().join("python-package"),
    );
    let output = ws.coreflow().args(["run", "python-ci.yaml"]).succeeds();
    let show = ws.show("last");
    assert_eq!(
        job_names(&show),
        [
            "lint",
            "test[python=3.11]",
            "test[python=3.12]",
            "test[python=3.14,experimental=true]",
            "report"
        ],
        "{output}"
    );
    for leg in ["test[python=3.11]", "test[python=3.12]"] {
        assert_eq!(job(&show, leg)["outputs"]["ran"], "3", "{show:#}");
    }
    assert_eq!(
        status(&show, "test[python=3.14,experimental=true]"),
        "failed"
    );
    assert_eq!(status(&show, "report"), "succeeded");
    let summary = ws.read("out/python-ci/summary.md");
    assert_eq!(
        summary.lines().filter(|l| l.ends_with("| 3 |")).count(),
        2,
        "{summary}"
    );
    assert!(summary.contains("| failed |"), "{summary}");
}
