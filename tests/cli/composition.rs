//! Composition (SPEC §2): workflows calling workflows — what `validate` and `graph` check
//! across files (the called file, `with:` against its typed parameters, cycles of calls
//! named by their chain), and the child run a `workflow:` job starts: linked both ways,
//! its outputs the job's, repaired by a retry of the parent, stopped with it — and
//! `max_parallel` bounding a matrix, in a foreground run and through workers.

use crate::engine_support::{Workspace, assert_gone, job, status, wait_until};

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

/// A parent that plans a region, calls [`COUNTING_CHILD`] with it and reports the child's
/// output.
const PARENT: &str = r#"
jobs:
  plan:
    steps:
      - run: echo "region=eu" >> "$COREFLOW_OUTPUT"
  ingest:
    needs: [plan]
    workflow: child.yaml
    with: { region: "${{ needs.plan.outputs.region }}" }
  report:
    needs: [ingest]
    env: { ROWS: "${{ needs.ingest.outputs.rows }}" }
    steps:
      - run: echo "rows=$ROWS" > report.txt
"#;

/// A child whose jobs count their runs in files; `load` fails until the file `fixed` exists.
const COUNTING_CHILD: &str = r#"
params:
  region: { type: string, required: true }
outputs:
  rows: "${{ jobs.load.outputs.rows }}"
  state: "${{ jobs.load.result }}"
jobs:
  extract:
    steps:
      - run: echo "$COREFLOW_PARAM_REGION" >> extract.count
  load:
    needs: [extract]
    steps:
      - run: |
          echo ran >> load.count
          test -e fixed
          echo "rows=42" >> "$COREFLOW_OUTPUT"
"#;

fn parent_and_child() -> Workspace {
    let ws = Workspace::new();
    ws.file("parent.yaml", PARENT);
    ws.file("child.yaml", COUNTING_CHILD);
    ws
}

#[test]
fn a_workflow_job_runs_its_child_as_a_linked_run_on_one_worker() {
    let ws = parent_and_child();
    ws.file("fixed", "");
    let output = ws
        .coreflow()
        .args([
            "run",
            "parent.yaml",
            "--workers",
            "1",
            "--progress",
            "plain",
        ])
        .succeeds();
    // The child's jobs show under the calling job.
    for line in [
        "ingest: child run 2 started: child, 2 jobs",
        "ingest/extract: succeeded",
        "ingest/load/step-1: started",
    ] {
        assert!(
            output.stdout().contains(line),
            "missing {line:?} in\n{output}"
        );
    }
    assert_eq!(ws.read("report.txt"), "rows=42\n");
    assert_eq!(ws.lines("extract.count"), ["eu"]);

    let parent = ws.show("1");
    let ingest = job(&parent, "ingest");
    assert_eq!(ingest["status"], "succeeded", "{parent:#}");
    assert_eq!(ingest["child_runs"], serde_json::json!([2]), "{parent:#}");
    assert_eq!(ingest["outputs"]["rows"], "42", "{parent:#}");
    assert_eq!(ingest["outputs"]["state"], "success", "{parent:#}");
    let child = ws.show("2");
    assert_eq!(child["trigger"]["type"], "workflow", "{child:#}");
    assert_eq!(child["parent"]["run"], 1, "{child:#}");
    assert_eq!(child["parent"]["job"], ingest["id"], "{child:#}");
    assert_eq!(child["params"]["region"], "eu", "{child:#}");
    assert!(parent.get("parent").is_none(), "{parent:#}");
    let runs = ws.coreflow().args(["runs"]).succeeds();
    assert!(runs.stdout().contains("workflow (run 1)"), "{runs}");
}

#[test]
fn retry_of_the_parent_repairs_the_same_child_run() {
    let ws = parent_and_child();
    let failed = ws.coreflow().args(["run", "parent.yaml"]).fails(1);
    let parent = ws.show("1");
    assert_eq!(status(&parent, "ingest"), "failed", "{failed}");
    assert_eq!(
        job(&parent, "ingest")["reason"],
        "child run 2 failed",
        "{parent:#}"
    );
    assert_eq!(status(&parent, "report"), "skipped", "{parent:#}");
    assert_eq!(ws.show("2")["status"], "failed");

    ws.file("fixed", "");
    let output = ws
        .coreflow()
        .args(["retry", "1", "--progress", "plain"])
        .succeeds();
    assert_eq!(ws.read("report.txt"), "rows=42\n", "{output}");
    // The same child run, with only its failed job run again.
    assert_eq!(ws.runs().len(), 2, "{output}");
    let child = ws.show("2");
    assert_eq!(child["status"], "succeeded", "{child:#}");
    assert_eq!(ws.lines("extract.count"), ["eu"], "{output}");
    assert_eq!(ws.lines("load.count"), ["ran", "ran"], "{output}");
    assert_eq!(
        job(&ws.show("1"), "ingest")["child_runs"],
        serde_json::json!([2])
    );
}

#[test]
fn a_parent_timeout_stops_the_child_s_processes() {
    let ws = Workspace::new();
    ws.file(
        "parent.yaml",
        "jobs:\n  call:\n    timeout: 1s\n    workflow: sleepy.yaml\n",
    );
    ws.file(
        "sleepy.yaml",
        "jobs:\n  nap:\n    steps:\n      - run: sleep 60 & echo $! > sleep.pid; wait\n",
    );
    let output = ws.coreflow().args(["run", "parent.yaml"]).fails(1);
    let sleep = ws.wait_for_pid("sleep.pid");
    assert_gone(sleep, "the child's sleep");
    let parent = ws.show("1");
    assert_eq!(status(&parent, "call"), "timed_out", "{output}\n{parent:#}");
    assert_eq!(ws.show("2")["status"], "cancelled", "{output}");
}

#[test]
fn calls_nested_deeper_than_eight_fail_the_job() {
    let ws = Workspace::new();
    for level in 0..9 {
        ws.file(
            &format!("level{level}.yaml"),
            format!("jobs:\n  down:\n    workflow: level{}.yaml\n", level + 1),
        );
    }
    ws.file(
        "level9.yaml",
        "jobs:\n  bottom:\n    steps: [{ run: touch bottom }]\n",
    );
    let output = ws.coreflow().args(["run", "level0.yaml"]).fails(1);
    assert!(!ws.exists("bottom"), "{output}");
    // Runs 1 (level0) to 9 (level8): level8's call would be the ninth.
    let deepest = ws.show("9");
    assert_eq!(
        job(&deepest, "down")["reason"],
        "calls nest deeper than 8: `level9.yaml` would be call number 9",
        "{deepest:#}"
    );
    assert_eq!(ws.runs().len(), 9, "{output}");
}

#[test]
fn a_killed_parent_retried_loses_and_doubles_nothing_in_parent_or_child() {
    use nix::sys::signal::Signal;
    let ws = Workspace::new();
    ws.file(
        "parent.yaml",
        "jobs:\n  first:\n    steps: [{ run: echo ran >> first.count }]\n  call:\n    needs: [first]\n    workflow: child.yaml\n  last:\n    needs: [call]\n    steps: [{ run: echo ran >> last.count }]\n",
    );
    ws.file(
        "child.yaml",
        r#"
jobs:
  a:
    steps: [{ run: echo ran >> a.count }]
  b:
    needs: [a]
    steps:
      - run: |
          echo ran >> b.count
          if [ -e fixed ]; then exit 0; fi
          sleep 60 & echo $! > sleep.pid; wait
"#,
    );
    let running = ws
        .coreflow()
        .args(["run", "parent.yaml", "--progress", "plain"])
        .spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    wait_until("the child's `b` to show running", || {
        ws.runs().len() == 2 && status(&ws.show("2"), "b") == "running"
    });
    running.signal(Signal::SIGKILL);
    running.wait();
    ws.file("fixed", "");
    let output = ws
        .coreflow()
        .args(["retry", "1", "--progress", "plain"])
        .succeeds();
    assert_gone(sleep, "the lost child step's sleep");
    assert_eq!(ws.runs().len(), 2, "{output}");
    assert_eq!(ws.show("1")["status"], "succeeded", "{output}");
    assert_eq!(ws.show("2")["status"], "succeeded", "{output}");
    assert_eq!(ws.lines("first.count"), ["ran"]);
    assert_eq!(ws.lines("a.count"), ["ran"]);
    assert_eq!(ws.lines("b.count"), ["ran", "ran"]);
    assert_eq!(ws.lines("last.count"), ["ran"]);
}

#[test]
fn a_detached_parent_is_drained_by_one_worker_and_retried_through_the_store() {
    use crate::queue_support::{Worker, detach, wait_for_run};
    let ws = parent_and_child();
    let run = detach(&ws, "parent.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    assert_eq!(wait_for_run(&ws, &run), "failed");
    let parent = ws.show(&run);
    assert_eq!(
        job(&parent, "ingest")["reason"],
        "child run 2 failed",
        "{parent:#}"
    );
    assert_eq!(status(&parent, "report"), "skipped", "{parent:#}");
    let child = ws.show("2");
    assert_eq!(child["parent"]["run"], 1, "{child:#}");
    assert_eq!(child["status"], "failed", "{child:#}");

    ws.file("fixed", "");
    ws.coreflow().args(["retry", &run, "--detach"]).succeeds();
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    drop(worker);
    assert_eq!(ws.read("report.txt"), "rows=42\n");
    assert_eq!(ws.runs().len(), 2);
    assert_eq!(ws.lines("extract.count"), ["eu"]);
    assert_eq!(ws.lines("load.count"), ["ran", "ran"]);
    let ingest = job(&ws.show(&run), "ingest").clone();
    assert_eq!(ingest["outputs"]["rows"], "42", "{ingest:#}");
    // The calling job ran on no worker: one attempt, started and ended by the store's path.
    assert_eq!(ingest["attempts"], 2, "{ingest:#}");
}

#[test]
fn cancelling_a_detached_parent_cancels_its_child() {
    use crate::queue_support::{Worker, detach, wait_for_run};
    let ws = Workspace::new();
    ws.file("parent.yaml", "jobs:\n  call:\n    workflow: sleepy.yaml\n  after:\n    needs: [call]\n    steps: [{ run: touch after }]\n");
    ws.file(
        "sleepy.yaml",
        "jobs:\n  nap:\n    steps:\n      - run: sleep 60 & echo $! > sleep.pid; wait\n",
    );
    let run = detach(&ws, "parent.yaml", &[]);
    let worker = Worker::start(&ws, &[]);
    let sleep = ws.wait_for_pid("sleep.pid");
    ws.coreflow().args(["cancel", &run]).succeeds();
    assert_eq!(wait_for_run(&ws, &run), "cancelled");
    assert_eq!(wait_for_run(&ws, "2"), "cancelled");
    assert_gone(sleep, "the child's sleep");
    drop(worker);
    let parent = ws.show(&run);
    assert_eq!(status(&parent, "call"), "cancelled", "{parent:#}");
    assert!(!ws.exists("after"));
}

#[test]
fn a_detached_parent_s_timeout_cancels_its_child_and_times_the_job_out() {
    use crate::queue_support::{Worker, detach, wait_for_run};
    let ws = Workspace::new();
    ws.file(
        "parent.yaml",
        "jobs:\n  call:\n    timeout: 1s\n    workflow: sleepy.yaml\n",
    );
    ws.file(
        "sleepy.yaml",
        "jobs:\n  nap:\n    steps:\n      - run: sleep 60 & echo $! > sleep.pid; wait\n",
    );
    let run = detach(&ws, "parent.yaml", &[]);
    // One worker runs the child's job; the other, idle, keeps house and finds the timeout.
    let workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start(&ws, &["--lease", "3s"]))
        .collect();
    let sleep = ws.wait_for_pid("sleep.pid");
    assert_eq!(wait_for_run(&ws, &run), "failed");
    assert_gone(sleep, "the child's sleep");
    drop(workers);
    let parent = ws.show(&run);
    assert_eq!(status(&parent, "call"), "timed_out", "{parent:#}");
    assert_eq!(
        job(&parent, "call")["reason"],
        "timeout: child run 2 cancelled",
        "{parent:#}"
    );
    assert_eq!(ws.show("2")["status"], "cancelled");
}

/// A plan whose output lists three regions, a `for_each` over them at most two at once,
/// and a report reading the items' outputs as arrays.
const FAN_OUT: &str = r#"
jobs:
  plan:
    steps:
      - run: echo 'regions=["eu","us",{"name":"apac"}]' >> "$COREFLOW_OUTPUT"
  ingest:
    needs: [plan]
    for_each: "${{ needs.plan.outputs.regions }}"
    max_parallel: 2
    env: { ITEM: "${{ each.value }}", AT: "${{ each.index }}" }
    steps:
      - run: |
          echo "$AT $ITEM $COREFLOW_EACH_INDEX" >> items.txt
          test "$AT" != 1 || test -e fixed
          echo "n=$AT" >> "$COREFLOW_OUTPUT"
  report:
    needs: [ingest]
    env: { N: "${{ needs.ingest.outputs.n }}", R: "${{ needs.ingest.result }}" }
    steps:
      - run: echo "$N $R" > report.txt
  none:
    for_each: []
    steps: [{ run: touch none-ran }]
"#;

#[test]
fn for_each_fans_out_over_an_output_and_retry_reruns_only_the_failed_item() {
    let ws = Workspace::with_workflow(FAN_OUT);
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--workers", "4"])
        .fails(1);
    let show = ws.show("1");
    assert_eq!(status(&show, "ingest"), "failed", "{output}");
    assert_eq!(
        job(&show, "ingest")["reason"],
        "1 of 3 items did not succeed"
    );
    assert_eq!(status(&show, "ingest[1]"), "failed", "{show:#}");
    assert_eq!(
        job(&show, "ingest[2]")["item"]["value"]["name"],
        "apac",
        "{show:#}"
    );
    assert_eq!(status(&show, "none"), "skipped");
    assert_eq!(job(&show, "none")["reason"], "for_each: no items");
    assert!(!ws.exists("none-ran"));

    ws.file("fixed", "");
    ws.coreflow().args(["retry", "1"]).succeeds();
    let mut items = ws.lines("items.txt");
    items.sort();
    assert_eq!(
        items,
        ["0 eu 0", "1 us 1", "1 us 1", r#"2 {"name":"apac"} 2"#],
        "only the failed item ran again"
    );
    assert_eq!(ws.read("report.txt"), "[\"0\",\"1\",\"2\"] success\n");
}

#[test]
fn for_each_items_are_drained_by_workers_with_their_item() {
    use crate::queue_support::{Worker, detach, wait_for_run};
    let ws = Workspace::with_workflow(FAN_OUT);
    ws.file("fixed", "");
    let run = detach(&ws, "wf.yaml", &[]);
    let workers: Vec<Worker> = (0..2).map(|_| Worker::start(&ws, &[])).collect();
    assert_eq!(wait_for_run(&ws, &run), "succeeded");
    drop(workers);
    assert_eq!(ws.read("report.txt"), "[\"0\",\"1\",\"2\"] success\n");
    assert_eq!(ws.lines("items.txt").len(), 3);
}

#[test]
fn for_each_with_workflow_fans_out_child_runs() {
    let ws = Workspace::new();
    ws.file("child.yaml", COUNTING_CHILD);
    ws.file("fixed", "");
    ws.file(
        "parent.yaml",
        r#"
jobs:
  ingest:
    for_each: [eu, us, apac]
    workflow: child.yaml
    with: { region: "${{ each.value }}" }
  report:
    needs: [ingest]
    env: { ROWS: "${{ needs.ingest.outputs.rows }}" }
    steps:
      - run: echo "$ROWS" > report.txt
"#,
    );
    let graph = ws.coreflow().args(["graph", "parent.yaml"]).succeeds();
    assert!(
        graph
            .stdout()
            .contains("ingest (for each, calls child.yaml) -> report"),
        "{graph}"
    );
    ws.coreflow()
        .args(["run", "parent.yaml", "--workers", "1"])
        .succeeds();
    assert_eq!(ws.read("report.txt"), "[\"42\",\"42\",\"42\"]\n");
    let mut regions = ws.lines("extract.count");
    regions.sort();
    assert_eq!(regions, ["apac", "eu", "us"]);
    assert_eq!(ws.runs().len(), 4);
    assert_eq!(
        job(&ws.show("1"), "ingest[2]")["child_runs"],
        serde_json::json!([4])
    );
}

#[test]
fn for_each_that_is_not_a_json_array_fails_the_job_and_each_outside_is_refused() {
    let ws = Workspace::with_workflow(
        "jobs:\n  plan:\n    steps: [{ run: echo 'x=oops' >> \"$COREFLOW_OUTPUT\" }]\n  fan:\n    needs: [plan]\n    for_each: \"${{ needs.plan.outputs.x }}\"\n    steps: [{ run: echo }]\n",
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("1");
    assert_eq!(
        job(&show, "fan")["reason"],
        "`for_each` rendered `oops`, which is not a JSON array",
        "{show:#}"
    );
    ws.file(
        "bad.yaml",
        "jobs:\n  one:\n    env: { V: \"${{ each.value }}\" }\n    steps: [{ run: echo }]\n",
    );
    let output = ws.coreflow().args(["validate", "bad.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("`each.value`: `each` can only be read in a `for_each` job"),
        "{output}"
    );
}

#[test]
fn cancelling_the_calling_job_of_a_foreground_run_cancels_its_child() {
    let ws = Workspace::new();
    ws.file("parent.yaml", "jobs:\n  call:\n    workflow: sleepy.yaml\n");
    ws.file(
        "sleepy.yaml",
        "jobs:\n  nap:\n    steps:\n      - run: sleep 60 & echo $! > sleep.pid; wait\n",
    );
    let running = ws.coreflow().args(["run", "parent.yaml"]).spawn();
    let sleep = ws.wait_for_pid("sleep.pid");
    ws.coreflow().args(["cancel", "1/call"]).succeeds();
    let output = running.wait();
    assert_eq!(output.code(), Some(1), "{output}");
    assert_gone(sleep, "the child's sleep");
    assert_eq!(status(&ws.show("1"), "call"), "cancelled");
    assert_eq!(ws.show("2")["status"], "cancelled");
}

#[test]
fn for_each_over_more_than_ten_thousand_items_fails_the_job() {
    let ws = Workspace::with_workflow(
        "jobs:\n  plan:\n    steps:\n      - run: python3 -c 'import json; print(\"items=\" + json.dumps(list(range(10001))))' >> \"$COREFLOW_OUTPUT\"\n  fan:\n    needs: [plan]\n    for_each: \"${{ needs.plan.outputs.items }}\"\n    steps: [{ run: echo }]\n",
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("1");
    assert_eq!(
        job(&show, "fan")["reason"],
        "for_each: 10001 items; at most 10000 are allowed",
        "{show:#}"
    );
    assert_eq!(
        show["jobs"].as_array().map(Vec::len),
        Some(2),
        "no item job was made"
    );
    let items: Vec<String> = (0..10_001).map(|i| i.to_string()).collect();
    ws.file(
        "listed.yaml",
        format!(
            "jobs:\n  fan:\n    for_each: [{}]\n    steps: [{{ run: echo }}]\n",
            items.join(", ")
        ),
    );
    let output = ws.coreflow().args(["validate", "listed.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("`for_each` lists 10001 items; at most 10000 are allowed"),
        "{output}"
    );
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
fn max_parallel_needs_a_matrix_or_for_each() {
    let ws = Workspace::with_workflow(
        "jobs:\n  one:\n    max_parallel: 2\n    steps: [{ run: echo }]\n",
    );
    let output = ws.coreflow().args(["validate", "wf.yaml"]).fails(2);
    assert!(
        output
            .stderr()
            .contains("wf.yaml:3:5: error: job `one` has `max_parallel` but no `matrix` or `for_each` to bound"),
        "{output}"
    );
}
