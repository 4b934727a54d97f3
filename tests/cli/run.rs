//! `coreflow run`: the order `needs` imposes, real parallelism, `--only`, what a step sees
//! (SPEC §2 "What a step sees"), shells and argv, outputs, `env` layers, templates and
//! parameters (SPEC §7).

use serde_json::{Value, json};

use crate::engine_support::{Workspace, assert_gone, job, job_names, status};

#[test]
fn a_job_starts_only_after_the_job_it_needs_has_finished() {
    // `first` takes a moment before it records its end; a `second` started alongside it
    // would find no end recorded and fail. `second` is written first, so file order is no
    // excuse either.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  second:
    needs: first
    steps:
      - run: grep -qx "first end" order; echo "second start" >> order
  first:
    steps:
      - run: echo "first start" >> order; sleep 0.3; echo "first end" >> order
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2"])
        .succeeds();
    assert_eq!(
        ws.lines("order"),
        ["first start", "first end", "second start"]
    );
}

#[test]
fn a_diamond_runs_its_top_first_its_sides_next_and_its_bottom_last() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  bottom:
    needs: [left, right]
    steps:
      - run: grep -qx left order; grep -qx right order; echo bottom >> order
  left:
    needs: top
    steps:
      - run: grep -qx top order; sleep 0.2; echo left >> order
  right:
    needs: top
    steps:
      - run: grep -qx top order; sleep 0.2; echo right >> order
  top:
    steps:
      - run: echo top >> order
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2"])
        .succeeds();
    let order = ws.lines("order");
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(order[0], "top");
    assert_eq!(order[3], "bottom");
    let mut sides = [order[1].as_str(), order[2].as_str()];
    sides.sort_unstable();
    assert_eq!(sides, ["left", "right"]);
    let show = ws.show("last");
    for name in ["top", "left", "right", "bottom"] {
        assert_eq!(status(&show, name), "succeeded", "{show:#}");
    }
}

const CHAIN: &str = r#"
jobs:
  a: { steps: [{ run: echo a >> ran }] }
  b: { needs: a, steps: [{ run: echo b >> ran }] }
  c: { needs: b, steps: [{ run: echo c >> ran }] }
  downstream: { needs: c, steps: [{ run: echo downstream >> ran }] }
  unrelated: { steps: [{ run: echo unrelated >> ran }] }
"#;

#[test]
fn only_runs_the_named_job_and_what_it_needs_transitively() {
    let ws = Workspace::with_workflow(CHAIN);
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2", "--only", "c"])
        .succeeds();
    assert_eq!(ws.lines("ran"), ["a", "b", "c"]);
    let show = ws.show("last");
    for name in ["a", "b", "c"] {
        assert_eq!(status(&show, name), "succeeded", "{show:#}");
    }
    for name in job_names(&show) {
        assert!(
            ["a", "b", "c"].contains(&name.as_str()) || status(&show, &name) != "succeeded",
            "{name} was not asked for: {show:#}"
        );
    }
}

#[test]
fn only_with_an_unknown_job_is_a_usage_error_before_anything_runs() {
    let ws = Workspace::with_workflow(CHAIN);
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--only", "nope"])
        .fails(2);
    assert!(output.stderr().contains("nope"), "{output}");
    assert!(!ws.exists("ran"));
    assert_eq!(ws.runs(), Vec::<Value>::new());
}

/// Two jobs that each announce themselves and wait, for `patience` × 50 ms at most, for
/// the other to be there too; each writes `met` or `alone`.
const RENDEZVOUS: &str = r#"
params:
  patience: { type: int, default: 400 }
jobs:
  left:
    env: { OTHER: right }
    steps:
      - run: &meet |
          touch "$COREFLOW_JOB.here"
          i=0
          while [ ! -e "$OTHER.here" ] && [ "$i" -lt "${{ params.patience }}" ]; do
            sleep 0.05
            i=$((i + 1))
          done
          if [ -e "$OTHER.here" ]; then echo met; else echo alone; fi > "$COREFLOW_JOB.result"
  right:
    env: { OTHER: left }
    steps:
      - run: *meet
"#;

#[test]
fn two_workers_run_two_independent_jobs_at_the_same_time() {
    let ws = Workspace::with_workflow(RENDEZVOUS);
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2"])
        .succeeds();
    assert_eq!(ws.read("left.result"), "met\n");
    assert_eq!(ws.read("right.result"), "met\n");
}

#[test]
fn one_worker_runs_one_job_at_a_time() {
    let ws = Workspace::with_workflow(RENDEZVOUS);
    // The first job waits in vain for a short while; the second finds the first's marker.
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "1", "-p", "patience=6"])
        .succeeds();
    let mut results = [ws.read("left.result"), ws.read("right.result")];
    results.sort();
    assert_eq!(results, ["alone\n", "met\n"]);
}

#[test]
fn a_step_sees_its_identity_params_matrix_and_workspace_in_its_environment() {
    let ws = Workspace::with_workflow(
        r#"
name: identity
params:
  greeting: { type: string, default: hi }
  count: { type: int, default: 3 }
  loud: { type: bool, default: false }
  ratio: { type: float, default: 0.5 }
jobs:
  check:
    workdir: sub
    matrix: { x: [1], y: [b] }
    steps:
      - name: dump
        run: |
          {
            echo "run_id=$COREFLOW_RUN_ID"
            echo "workflow=$COREFLOW_WORKFLOW"
            echo "job=$COREFLOW_JOB"
            echo "step=$COREFLOW_STEP"
            echo "attempt=$COREFLOW_ATTEMPT"
            echo "greeting=$COREFLOW_PARAM_GREETING"
            echo "count=$COREFLOW_PARAM_COUNT"
            echo "loud=$COREFLOW_PARAM_LOUD"
            echo "ratio=$COREFLOW_PARAM_RATIO"
            echo "matrix_x=$COREFLOW_MATRIX_X"
            echo "matrix_y=$COREFLOW_MATRIX_Y"
            echo "workspace=$COREFLOW_WORKSPACE"
            echo "pwd=$(pwd -P)"
          } > env.txt
      - run: echo "step=$COREFLOW_STEP" >> env.txt
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "-p", "count=7", "-p", "loud=true"])
        .succeeds();
    let run_id = ws.show("last")["id"].clone();
    let sub = ws.path().join("sub").display().to_string();
    let expected = [
        format!("run_id={run_id}"),
        "workflow=identity".to_owned(),
        "job=check[x=1,y=b]".to_owned(),
        "step=dump".to_owned(),
        "attempt=1".to_owned(),
        "greeting=hi".to_owned(),
        "count=7".to_owned(),
        "loud=true".to_owned(),
        "ratio=0.5".to_owned(),
        "matrix_x=1".to_owned(),
        "matrix_y=b".to_owned(),
        format!("workspace={sub}"),
        format!("pwd={sub}"),
        "step=step-2".to_owned(),
    ];
    assert_eq!(ws.lines("sub/env.txt"), expected);
}

#[test]
fn a_step_gets_no_stdin_from_coreflow() {
    // CoreFlow's own stdin has data; a step that inherited it would read it.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  read:
    steps:
      - run: cat > got.txt || true
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml"])
        .stdin("LEAKED FROM COREFLOW\n")
        .succeeds();
    assert_eq!(ws.read("got.txt"), "");
}

#[test]
fn a_step_runs_in_its_own_process_group() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  group:
    steps:
      - run: |
          echo $$ > pid.txt
          ps -o pgid= -p $$ | tr -d ' ' > pgid.txt
          ps -o pgid= -p $PPID | tr -d ' ' > parent_pgid.txt
"#,
    );
    let running = ws.coreflow().args(["run", "wf.yaml"]).spawn();
    // The harness starts CoreFlow as the leader of its own group.
    let coreflow_group = running.pid().to_string();
    let output = running.wait();
    assert_eq!(output.code(), Some(0), "{output}");
    let pgid = ws.read("pgid.txt").trim().to_owned();
    assert_eq!(pgid, ws.read("pid.txt").trim(), "the step leads its group");
    assert_ne!(pgid, coreflow_group);
    assert_ne!(pgid, ws.read("parent_pgid.txt").trim());
}

#[test]
fn a_command_step_passes_its_arguments_literally_without_a_shell() {
    let ws = Workspace::with_workflow(
        r#"
params:
  word: { type: string, default: templated }
jobs:
  argv:
    steps:
      - command:
          - python3
          - -c
          - "import json, sys; print(json.dumps(sys.argv[1:]))"
          - "two words"
          - "$HOME"
          - "*"
          - "a;b > c"
          - "${{ params.word }}"
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    let line = logs
        .stdout()
        .lines()
        .find_map(|line| line.strip_prefix("argv/step-1 | "))
        .unwrap_or_else(|| panic!("no output line\n{logs}"));
    let argv: Value = serde_json::from_str(line).expect("python printed JSON");
    assert_eq!(
        argv,
        json!(["two words", "$HOME", "*", "a;b > c", "templated"])
    );
}

#[test]
fn a_one_command_script_runs_as_the_shell_would_run_it() {
    // Plain one-command scripts start without the shell (as make does): the step must not
    // notice, neither in its environment, its folder and arguments, nor in how failures
    // and missing programs are reported.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  direct:
    steps:
      - run: python3 whoami.py
      - run: python3 report.py one two,three
      - run: python3 exits.py 3
        continue_on_error: true
      - run: definitely-not-a-program-here --flag
"#,
    );
    ws.file(
        "whoami.py",
        "import os\nprint(os.environ['COREFLOW_JOB'], os.getcwd() == os.environ['COREFLOW_WORKSPACE'])\n",
    );
    ws.file("report.py", "import sys\nprint(sys.argv[1:])\n");
    ws.file("exits.py", "import sys\nsys.exit(int(sys.argv[1]))\n");
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(status(&show, "direct"), "failed");
    assert_eq!(job(&show, "direct")["exit_code"], 127, "{show:#}");
    let steps = &job(&show, "direct")["history"][0]["steps"];
    assert_eq!(steps[2]["exit_code"], 3, "{show:#}");
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    let lines: Vec<&str> = logs.stdout().lines().collect();
    assert_eq!(lines[0], "direct/step-1 | direct True");
    assert_eq!(lines[1], "direct/step-2 | ['one', 'two,three']");
    assert!(
        lines[2]
            .starts_with("direct/step-4 | coreflow: cannot start `definitely-not-a-program-here`"),
        "{logs}"
    );
}

#[test]
fn the_default_shell_stops_at_the_first_failing_line() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  strict:
    steps:
      - run: |
          echo one
          false
          echo two
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(status(&show, "strict"), "failed");
    assert_eq!(job(&show, "strict")["exit_code"], 1);
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    assert_eq!(logs.stdout(), "strict/step-1 | one\n");
}

#[test]
fn the_bash_shell_fails_a_pipeline_whose_first_command_fails() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  piped:
    steps:
      - shell: bash
        run: |
          items=(a b c)
          echo "items ${#items[@]}"
          false | true
          echo after
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    assert_eq!(status(&ws.show("last"), "piped"), "failed");
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    assert_eq!(logs.stdout(), "piped/step-1 | items 3\n");
}

#[test]
fn python3_and_custom_shells_run_the_script_and_report_its_exit_code() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  py:
    steps:
      - shell: python3
        run: |
          import sys
          print("python", sys.version_info[0])
      - shell: "python3 {0}"
        run: |
          import os, sys
          print("custom", os.path.isfile(sys.argv[0]))
      - name: exit-four
        shell: python3
        run: |
          import sys
          sys.exit(4)
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).fails(1);
    let show = ws.show("last");
    assert_eq!(status(&show, "py"), "failed");
    assert_eq!(job(&show, "py")["exit_code"], 4);
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    assert_eq!(
        logs.stdout(),
        "py/step-1 | python 3\npy/step-2 | custom True\n"
    );
}

#[test]
fn outputs_accumulate_across_steps_and_reach_a_dependent_job() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  producer:
    steps:
      - run: |
          echo "greeting=hello" >> "$COREFLOW_OUTPUT"
          echo "k=first" >> "$COREFLOW_OUTPUT"
      - run: |
          echo "k=second" >> "$COREFLOW_OUTPUT"
          {
            echo "notes<<EOF"
            echo "line one"
            echo "line two = still text"
            echo "EOF"
          } >> "$COREFLOW_OUTPUT"
  consumer:
    needs: producer
    env:
      NOTES: ${{ needs.producer.outputs.notes }}
    steps:
      - run: |
          echo "${{ needs.producer.outputs.greeting }} ${{ needs.producer.outputs.k }}" > got.txt
          printf '%s\n' "$NOTES" > notes.txt
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.read("got.txt"), "hello second\n");
    assert_eq!(ws.read("notes.txt"), "line one\nline two = still text\n");
    assert_eq!(
        job(&ws.show("last"), "producer")["outputs"],
        json!({"greeting": "hello", "k": "second", "notes": "line one\nline two = still text"})
    );
}

#[test]
fn step_env_beats_job_env_which_beats_workflow_env() {
    let ws = Workspace::with_workflow(
        r#"
env: { A: workflow, B: workflow, C: workflow }
jobs:
  layered:
    env: { B: job, C: job }
    steps:
      - env: { C: step }
        run: echo "$A $B $C" >> seen
      - run: echo "$A $B $C" >> seen
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.lines("seen"), ["workflow job step", "workflow job job"]);
}

#[test]
fn templates_render_params_matrix_run_and_job() {
    let ws = Workspace::with_workflow(
        r#"
name: templating
params:
  who: { type: string, default: world }
jobs:
  render:
    steps:
      - run: echo "${{ params.who }} ${{ run.id }} ${{ run.workflow }} ${{ job.name }}" > render.txt
  fan:
    matrix: { size: [small] }
    steps:
      - run: echo "${{ matrix.size }} $COREFLOW_JOB" > fan.txt
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "-p", "who=you"])
        .succeeds();
    let id = ws.show("last")["id"].clone();
    assert_eq!(
        ws.read("render.txt"),
        format!("you {id} templating render\n")
    );
    assert_eq!(ws.read("fan.txt"), "small fan[size=small]\n");
}

const LEVELS: &str = r#"
params:
  level: { type: string, default: workflow-default }
jobs:
  plain:
    steps:
      - run: echo "$COREFLOW_PARAM_LEVEL ${{ params.level }}" > plain.txt
  own:
    params: { level: job-params }
    steps:
      - run: echo "$COREFLOW_PARAM_LEVEL ${{ params.level }}" > own.txt
  pinned:
    params: { level: job-params }
    steps:
      - run: echo "$COREFLOW_PARAM_LEVEL ${{ params.level }}" > pinned.txt
"#;

#[test]
fn parameters_without_overrides_come_from_defaults_and_job_params() {
    let ws = Workspace::with_workflow(LEVELS);
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.read("plain.txt"), "workflow-default workflow-default\n");
    assert_eq!(ws.read("own.txt"), "job-params job-params\n");
    assert_eq!(ws.read("pinned.txt"), "job-params job-params\n");
}

#[test]
fn parameter_precedence_is_default_then_p_then_job_params_then_p_job() {
    let ws = Workspace::with_workflow(LEVELS);
    ws.coreflow()
        .args([
            "run",
            "wf.yaml",
            "-p",
            "level=cli",
            "-p",
            "pinned.level=cli-job",
        ])
        .succeeds();
    assert_eq!(ws.read("plain.txt"), "cli cli\n");
    assert_eq!(ws.read("own.txt"), "job-params job-params\n");
    assert_eq!(ws.read("pinned.txt"), "cli-job cli-job\n");
}

#[test]
fn bad_parameters_stop_the_run_before_anything_is_created() {
    let yaml = r#"
params:
  region: { type: string, choices: [eu, us], default: eu }
  rows: { type: int, default: 10 }
  date: { type: string, required: true }
jobs:
  touch:
    steps:
      - run: touch ran
"#;
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["-p", "date=d", "-p", "regoin=us"],
            &["regoin", "did you mean `region`"],
        ),
        (&["-p", "date=d", "-p", "rows=many"], &["rows", "many"]),
        (&["-p", "date=d", "-p", "region=asia"], &["region", "asia"]),
        (
            &["-p", "date=d", "-p", "touch.rows=many"],
            &["rows", "many"],
        ),
        (&[], &["date"]),
    ];
    for (params, fragments) in cases {
        let ws = Workspace::with_workflow(yaml);
        let output = ws
            .coreflow()
            .args(["run", "wf.yaml"])
            .args(*params)
            .fails(2);
        for fragment in *fragments {
            assert!(
                output.stderr().contains(fragment),
                "{params:?}: stderr lacks {fragment:?}\n{output}"
            );
        }
        assert!(!ws.exists("ran"), "{params:?}: the step ran");
        assert_eq!(
            ws.runs(),
            Vec::<Value>::new(),
            "{params:?}: a run was created"
        );
    }
}

#[test]
fn a_background_process_a_step_leaves_behind_is_stopped_when_its_job_ends() {
    // The workflow format (docs/src/workflow.md): processes left in the step's process group are stopped at the end of the job.
    let ws = Workspace::with_workflow(
        r#"
jobs:
  leaky:
    steps:
      - run: |
          sleep 30 &
          echo $! > background.pid
"#,
    );
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_gone(ws.wait_for_pid("background.pid"), "the background sleep");
}

#[test]
fn one_worker_takes_the_highest_priority_job_first() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  low:
    priority: 1
    steps:
      - run: echo low >> order
  high:
    priority: 10
    steps:
      - run: echo high >> order
  middle:
    priority: 5
    steps:
      - run: echo middle >> order
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "1"])
        .succeeds();
    assert_eq!(ws.lines("order"), ["high", "middle", "low"]);
}

#[test]
fn a_job_no_local_worker_can_run_is_an_error_before_anything_starts() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  anywhere:
    runs_on: [linux]
    steps:
      - run: touch anywhere-ran
  gpu:
    runs_on: [gpu]
    steps:
      - run: touch gpu-ran
"#,
    );
    let output = ws.coreflow().args(["run", "wf.yaml"]).fails(2);
    assert!(output.stderr().contains("gpu"), "{output}");
    assert!(!ws.exists("anywhere-ran"));
    assert_eq!(ws.runs(), Vec::<Value>::new());
}

#[test]
fn verbose_logs_what_the_run_opened_started_and_wrote_on_stderr() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  hello:
    steps:
      - name: greet
        run: echo hi
"#,
    );
    let quiet = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .succeeds();
    assert_eq!(quiet.stderr(), "", "{quiet}");
    let verbose = ws
        .coreflow()
        .args(["--verbose", "run", "wf.yaml", "--progress", "plain"])
        .succeeds();
    let log = verbose.stderr();
    for expected in [
        "DEBUG coreflow::cli::env: environment opened",
        "run created run=2",
        "step{job=hello step=greet}: coreflow::step::process: step started",
        "program=sh",
        "step ended",
        "state written",
    ] {
        assert!(log.contains(expected), "no {expected:?} in\n{verbose}");
    }
    // The step's own output still goes to stdout only.
    assert!(!log.contains("| hi"), "{verbose}");
}

#[test]
fn a_hostile_parameter_stays_text_through_quote_and_through_the_environment() {
    // The two forms `validate` suggests instead of `echo "${{ params.name }}"`.
    let ws = Workspace::with_workflow(
        r#"
params:
  name: { type: string }
jobs:
  greet:
    steps:
      - run: echo ${{ params.name | quote }}
      - run: echo "$COREFLOW_PARAM_NAME"
"#,
    );
    let hostile = r#"x"; touch pwned; ""#;
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "-p"])
        .arg(format!("name={hostile}"))
        .succeeds();
    assert!(!output.stderr().contains("warning"), "{output}");
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    for step in ["step-1", "step-2"] {
        let line = format!("greet/{step} | {hostile}");
        assert!(logs.stdout().lines().any(|l| l == line), "{line:?}\n{logs}");
    }
    assert!(!ws.exists("pwned"), "the value ran as a command");
}

#[test]
fn run_prints_the_warnings_once_and_still_runs() {
    let ws = Workspace::with_workflow(
        r#"
params:
  name: { type: string, default: world }
jobs:
  greet:
    steps:
      - run: echo "Hello, ${{ params.name }}"
"#,
    );
    let output = ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    let warning = "wf.yaml:7:27: warning: script injection: `params.name`";
    assert_eq!(output.stderr().matches(warning).count(), 1, "{output}");
    assert!(
        output.stderr().contains("wf.yaml: 1 warning found\n"),
        "{output}"
    );
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    assert!(
        logs.stdout().contains("greet/step-1 | Hello, world"),
        "{logs}"
    );
}
