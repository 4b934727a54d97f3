//! Composition (SPEC §2): workflows calling workflows — what `validate` and `graph` check
//! across files today (the called file, `with:` against its typed parameters, cycles of
//! calls named by their chain) and `run` refusing such a job clearly until it executes
//! them — and `max_parallel` bounding a matrix, in a foreground run and through workers.

use crate::engine_support::Workspace;

const CHILD: &str = r#"
params:
  shard: { type: string, required: true }
  rows: { type: int, default: 10 }
outputs:
  count: "${{ jobs.load.outputs.count }}"
jobs:
  load:
    steps:
      - run: echo "count=1" >> "$COREFLOW_OUTPUT"
"#;

/// A workspace holding `child.yaml` ([`CHILD`]).
fn with_child() -> Workspace {
    let ws = Workspace::new();
    ws.file("child.yaml", CHILD);
    ws
}

#[test]
fn a_call_with_the_child_s_parameters_validates_and_is_drawn_with_its_name() {
    let ws = with_child();
    ws.file(
        "parent.yaml",
        r#"
jobs:
  plan:
    steps:
      - run: echo planned
  ingest:
    needs: [plan]
    workflow: child.yaml
    with: { shard: eu, rows: "${{ params.rows }}" }
params:
  rows: { type: int, default: 5 }
"#,
    );
    let output = ws.coreflow().args(["validate", "parent.yaml"]).succeeds();
    let graph = ws.coreflow().args(["graph", "parent.yaml"]).succeeds();
    assert!(
        graph.stdout().contains("ingest (calls child.yaml)"),
        "{graph}\n{output}"
    );
    let dot = ws
        .coreflow()
        .args(["graph", "parent.yaml", "--format", "dot"])
        .succeeds();
    assert!(
        dot.stdout()
            .contains(r#""ingest" [label="ingest (calls child.yaml)"];"#),
        "{dot}"
    );
}

#[test]
fn with_is_checked_against_the_child_s_typed_parameters() {
    let ws = with_child();
    ws.file(
        "parent.yaml",
        r#"
jobs:
  ingest:
    workflow: child.yaml
    with:
      shardd: eu
      rows: many
"#,
    );
    let output = ws.coreflow().args(["validate", "parent.yaml"]).fails(2);
    let text = output.stderr();
    for expected in [
        "parent.yaml:6:7: error: `",
        "child.yaml` declares no parameter `shardd`",
        "did you mean `shard`?",
        "parent.yaml:7:13: error: `with`: ",
        "many",
        "requires `shard` not given in `with`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{output}");
    }
}

#[test]
fn a_cycle_of_calls_is_refused_naming_the_chain() {
    let ws = Workspace::new();
    ws.file(
        "a.yaml",
        "jobs:\n  first:\n    steps: [{ run: echo a }]\n  call:\n    workflow: b.yaml\n",
    );
    ws.file("b.yaml", "jobs:\n  back:\n    workflow: a.yaml\n");
    let output = ws.coreflow().args(["validate", "a.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("a cycle of workflow calls: a.yaml -> b.yaml -> a.yaml"),
        "{output}"
    );
    assert!(output.stderr().contains("a.yaml:5:15: error:"), "{output}");
    // A missing or broken child is named too.
    ws.file("c.yaml", "jobs:\n  call:\n    workflow: missing.yaml\n");
    let output = ws.coreflow().args(["validate", "c.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("the called workflow `missing.yaml` cannot be used"),
        "{output}"
    );
}

#[test]
fn steps_and_workflow_exclude_each_other_and_with_needs_a_workflow() {
    let ws = with_child();
    ws.file(
        "wf.yaml",
        r#"
jobs:
  both:
    workflow: child.yaml
    with: { shard: eu }
    steps: [{ run: echo hi }]
  stray:
    with: { shard: eu }
    steps: [{ run: echo hi }]
  empty: {}
"#,
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    for expected in [
        "job `both` has both `steps` and `workflow`; give one",
        "job `stray` has `with` but calls no `workflow`",
        "job `empty` has no steps",
        "give `steps`, or `workflow` to run another workflow as this job",
    ] {
        assert!(
            output.stderr().contains(expected),
            "missing {expected:?} in\n{output}"
        );
    }
}

#[test]
fn run_refuses_a_workflow_job_before_anything_starts() {
    let ws = with_child();
    ws.file(
        "parent.yaml",
        "jobs:\n  first:\n    steps: [{ run: touch started }]\n  ingest:\n    needs: [first]\n    workflow: child.yaml\n    with: { shard: eu }\n",
    );
    let output = ws.coreflow().args(["run", "parent.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("job `ingest` calls the workflow `child.yaml`"),
        "{output}"
    );
    assert!(!ws.exists("started"), "{output}");
}

/// Six matrix legs, at most two at once: each leg notes how many legs run beside it.
const BOUNDED: &str = r#"
jobs:
  leg:
    matrix: { n: [1, 2, 3, 4, 5, 6] }
    max_parallel: 2
    steps:
      - run: |
          touch "running-$COREFLOW_MATRIX_N"
          ls running-* | wc -l >> counts
          sleep 0.3
          ls running-* | wc -l >> counts
          rm "running-$COREFLOW_MATRIX_N"
"#;

/// The most legs seen running at once.
fn most_at_once(ws: &Workspace) -> usize {
    ws.lines("counts")
        .iter()
        .map(|line| line.trim().parse::<usize>().expect("a count"))
        .max()
        .expect("some counts")
}

#[test]
fn max_parallel_bounds_a_matrix_in_a_foreground_run() {
    let ws = Workspace::with_workflow(BOUNDED);
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--workers", "6"])
        .succeeds();
    assert_eq!(ws.lines("counts").len(), 12, "{output}");
    assert_eq!(most_at_once(&ws), 2, "{output}");
}

#[test]
fn max_parallel_bounds_a_matrix_drained_by_standalone_workers() {
    use crate::queue_support::{Worker, detach, wait_for_run};
    let ws = Workspace::with_workflow(BOUNDED);
    let run = detach(&ws, "wf.yaml", &[]);
    let workers: Vec<Worker> = (0..4).map(|_| Worker::start(&ws, &[])).collect();
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    drop(workers);
    assert_eq!(ws.lines("counts").len(), 12);
    assert!(most_at_once(&ws) <= 2, "{:?}", ws.lines("counts"));
}

#[test]
fn max_parallel_needs_a_matrix() {
    let ws = Workspace::with_workflow(
        "jobs:\n  one:\n    max_parallel: 2\n    steps: [{ run: echo }]\n",
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("wf.yaml:3:5: error: job `one` has `max_parallel` but no `matrix` to bound"),
        "{output}"
    );
}
