//! `coreflow graph FILE [--format text|dot|mermaid]`: the DAG, edges from a job to the jobs
//! that need it (SPEC §7).

use crate::support::Coreflow;

/// build → (test, lint) → package.
const DIAMOND: &str = "\
name: ci
jobs:
  build:
    steps: [{ run: make }]
  test:
    needs: [build]
    steps: [{ run: make test }]
  lint:
    needs: [build]
    steps: [{ run: make lint }]
  package:
    needs: [test, lint]
    steps: [{ run: make dist }]
";

fn graph(yaml: &str, format: Option<&str>) -> String {
    let mut test = Coreflow::new()
        .file("wf.yaml", yaml)
        .args(["graph", "wf.yaml"]);
    if let Some(format) = format {
        test = test.args(["--format", format]);
    }
    let output = test.succeeds();
    assert_eq!(output.stderr(), "");
    output.stdout().to_owned()
}

#[test]
fn a_diamond_as_text() {
    let text = graph(DIAMOND, Some("text"));
    assert_eq!(text, graph(DIAMOND, None), "text is the default format");
    insta::assert_snapshot!(text, @r"
    ci: 4 jobs in 3 stages

    stage 1
      build -> test, lint

    stage 2
      test -> package
      lint -> package

    stage 3
      package
    ");
}

#[test]
fn a_diamond_as_dot() {
    insta::assert_snapshot!(graph(DIAMOND, Some("dot")), @r#"
    digraph "ci" {
      rankdir=LR;
      node [shape=box];
      "build";
      "test";
      "lint";
      "package";
      "build" -> "test";
      "build" -> "lint";
      "test" -> "package";
      "lint" -> "package";
    }
    "#);
}

#[test]
fn a_diamond_as_mermaid() {
    insta::assert_snapshot!(graph(DIAMOND, Some("mermaid")), @r#"
    flowchart LR
      j0["build"]
      j1["test"]
      j2["lint"]
      j3["package"]
      j0 --> j1
      j0 --> j2
      j1 --> j3
      j2 --> j3
    "#);
}

#[test]
fn jobs_declared_before_their_needs_are_drawn_after_them() {
    let yaml = "\
jobs:
  deploy:
    needs: [build]
    steps: [{ run: x }]
  build:
    steps: [{ run: x }]
";
    insta::assert_snapshot!(graph(yaml, None), @r"
    wf: 2 jobs in 2 stages

    stage 1
      build -> deploy

    stage 2
      deploy
    ");
}

#[test]
fn a_matrix_job_fans_out_with_keys_in_the_order_written() {
    let yaml = "\
name: matrix
jobs:
  prepare:
    steps: [{ run: x }]
  test:
    needs: [prepare]
    matrix:
      python: [\"3.11\", \"3.12\"]
      os: [linux, mac]
    steps: [{ run: x }]
  report:
    needs: [test]
    steps: [{ run: x }]
";
    insta::assert_snapshot!(graph(yaml, None), @r"
    matrix: 6 jobs in 3 stages

    stage 1
      prepare -> test[python=3.11,os=linux], test[python=3.11,os=mac], test[python=3.12,os=linux], test[python=3.12,os=mac]

    stage 2
      test[python=3.11,os=linux] -> report
      test[python=3.11,os=mac] -> report
      test[python=3.12,os=linux] -> report
      test[python=3.12,os=mac] -> report

    stage 3
      report
    ");
    let dot = graph(yaml, Some("dot"));
    assert!(
        dot.contains("  \"test[python=3.11,os=linux]\" -> \"report\";\n"),
        "{dot}"
    );
    let mermaid = graph(yaml, Some("mermaid"));
    assert!(
        mermaid.contains("[\"test[python=3.12,os=mac]\"]"),
        "{mermaid}"
    );
}

#[test]
fn an_invalid_file_exits_2_with_its_diagnostics() {
    let yaml = "\
jobs:
  a:
    needs: [b]
    steps: [{ run: x }]
  b:
    needs: [a]
    steps: [{ run: x }]
";
    for format in ["text", "dot", "mermaid"] {
        let output = Coreflow::new()
            .file("wf.yaml", yaml)
            .args(["graph", "wf.yaml", "--format", format])
            .fails(2);
        assert_eq!(output.stdout(), "", "nothing drawn for {format}");
        assert!(
            output
                .stderr()
                .contains("wf.yaml:2:3: error: dependency cycle: a -> b -> a"),
            "{output}"
        );
    }
}

#[test]
fn a_missing_file_exits_2_with_a_message() {
    let output = Coreflow::new().args(["graph", "missing.yaml"]).fails(2);
    assert!(
        output.stderr().contains("cannot read missing.yaml"),
        "{output}"
    );
}

#[test]
fn an_unknown_format_is_a_usage_error() {
    let output = Coreflow::new()
        .file("wf.yaml", DIAMOND)
        .args(["graph", "wf.yaml", "--format", "png"])
        .fails(2);
    assert!(
        output
            .stderr()
            .contains("possible values: text, dot, mermaid"),
        "{output}"
    );
}
