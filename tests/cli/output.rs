//! What `coreflow run` prints and writes: plain progress without control characters, JSON
//! events, JUnit reports, GitHub Actions folding, a step that prints 20 MB, and a snapshot
//! of plain progress (SPEC §4 "Progress").

use std::process::Command;

use serde_json::Value;

use crate::engine_support::Workspace;
use crate::support::repo_root;

/// The bytes of `text` that plain output must not hold: controls other than newline and tab.
fn control_characters(text: &str) -> Vec<u8> {
    text.bytes()
        .filter(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
        .collect()
}

const COLORFUL: &str = r#"
jobs:
  paint:
    steps:
      - run: |
          printf '\033[1;31mred\033[0m and \033[32mgreen\033[0m\n'
          printf 'carriage\rreturn and bell\a\n'
          printf '\033[31merror in color\033[0m\n' >&2
  broken:
    needs: paint
    steps:
      - run: printf '\033[31mfailing\033[0m\n'; exit 1
"#;

#[test]
fn plain_progress_has_no_control_characters_even_when_steps_print_colors() {
    let ws = Workspace::with_workflow(COLORFUL);
    // Asked for explicitly, and chosen by itself without a TTY and with `CI` set.
    for extra in [&["--progress", "plain"][..], &[][..]] {
        let output = ws
            .coreflow()
            .args(["run", "wf.yaml"])
            .args(extra)
            .env("CI", "1")
            .fails(1);
        assert_eq!(control_characters(output.stdout()), b"", "{output}");
        assert_eq!(control_characters(output.stderr()), b"", "{output}");
        assert!(output.stdout().contains("paint/step-1 | "), "{output}");
        assert!(output.stdout().contains("red and "), "{output}");
        assert!(output.stdout().contains("error in color"), "{output}");
    }
}

#[test]
fn json_progress_prints_one_parseable_event_per_line() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  hello:
    steps:
      - run: echo "hi there"
"#,
    );
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "json"])
        .succeeds();
    let events: Vec<Value> = output
        .stdout()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?}: {err}\n{output}"))
        })
        .collect();
    for event in &events {
        assert!(event["event"].is_string(), "{event}");
        assert!(event["ts"].is_string(), "{event}");
    }
    let kind = |event: &Value| event["event"].as_str().unwrap_or_default().to_owned();
    assert_eq!(kind(&events[0]), "run_started", "{output}");
    assert_eq!(events[0]["run_id"], 1);
    let last = events.last().expect("some events");
    assert_eq!(kind(last), "run_finished");
    assert_eq!(last["state"], "succeeded");
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "job_state" && e["job"] == "hello")
        .map(|e| e["state"].as_str().expect("a state is text"))
        .collect();
    assert_eq!(states, ["queued", "running", "succeeded"], "{output}");
    assert!(
        events.iter().any(|e| e["event"] == "output"
            && e["job"] == "hello"
            && e["step"] == "step-1"
            && e["line"] == "hi there"),
        "{output}"
    );
}

#[test]
fn junit_has_one_testcase_per_job_and_a_failure_with_the_output() {
    let ws = Workspace::with_workflow(
        r#"
name: report
jobs:
  fine:
    steps:
      - run: echo ok
  broken:
    steps:
      - name: explode
        run: echo "bad thing <&> happened"; exit 2
  grid:
    matrix: { n: [1, 2] }
    steps:
      - run: echo "cell $COREFLOW_MATRIX_N"
  never:
    needs: broken
    steps:
      - run: echo never
"#,
    );
    ws.coreflow()
        .args(["run", "wf.yaml", "--workers", "2", "--junit", "report.xml"])
        .fails(1);
    let xml = ws.read("report.xml");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 5, "{xml}");
    for name in ["fine", "broken", "grid[n=1]", "grid[n=2]", "never"] {
        assert!(
            xml.contains(&format!("<testcase name=\"{name}\"")),
            "no testcase {name}\n{xml}"
        );
    }
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    let broken = &xml[xml
        .find("<testcase name=\"broken\"")
        .expect("broken's testcase")..];
    let broken = &broken[..broken.find("</testcase>").expect("broken's testcase ends")];
    assert!(broken.contains("<failure"), "{broken}");
    assert!(
        broken.contains("bad thing &lt;&amp;&gt; happened"),
        "{broken}"
    );
    assert!(broken.contains("explode"), "{broken}");

    let schema = repo_root().join("tests/fixtures/junit.xsd");
    let result = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(ws.path().join("report.xml"))
        .output()
        .unwrap_or_else(|err| {
            panic!("xmllint must be installed (scripts/test-deps.sh installs it): {err}")
        });
    assert!(
        result.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn junit_naming_a_folder_is_refused_before_anything_runs() {
    let ws = Workspace::with_workflow("jobs:\n  a:\n    steps:\n      - run: touch ran\n");
    std::fs::create_dir(ws.path().join("reports")).expect("a folder");
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--junit", "reports"])
        .fails(2);
    assert!(output.stderr().contains("folder"), "{output}");
    assert!(!ws.exists("ran"), "the run started");
    assert!(ws.runs().is_empty(), "a run was created");
}

#[test]
fn github_actions_output_folds_jobs_and_annotates_the_failure() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  fine:
    steps:
      - run: echo ok
  broken:
    needs: fine
    steps:
      - name: explode
        run: echo boom; exit 2
"#,
    );
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml"])
        .env("GITHUB_ACTIONS", "true")
        .fails(1);
    let stdout = output.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"::group::fine"), "{output}");
    assert!(lines.contains(&"::group::broken"), "{output}");
    assert_eq!(
        lines.iter().filter(|l| **l == "::endgroup::").count(),
        2,
        "{output}"
    );
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(errors.len(), 1, "{output}");
    assert!(
        errors[0].contains("broken") && errors[0].contains("explode"),
        "{output}"
    );
    assert_eq!(control_characters(stdout), b"", "{output}");
}

#[test]
fn a_step_printing_20_mb_completes_and_every_line_is_kept() {
    let ws = Workspace::with_workflow(
        r#"
jobs:
  big:
    steps:
      - run: head -c 20000000 /dev/zero | tr '\0' x | fold -w 100
"#,
    );
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--progress", "plain"])
        .succeeds();
    let line = format!("big/step-1 | {}", "x".repeat(100));
    let shown = output
        .stdout()
        .lines()
        .filter(|l| l.ends_with(&line))
        .count();
    assert_eq!(shown, 200_000);
    let logs = ws.coreflow().args(["logs", "last"]).succeeds();
    assert_eq!(logs.stdout().lines().count(), 200_000);
    assert!(logs.stdout().lines().all(|l| l == line));
}

/// Replaces what changes from run to run in plain progress: clock times and durations.
fn redact_plain(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.split_once(' ') {
            Some((time, rest)) if is_clock_time(time) => format!("[TIME] {rest}"),
            _ => line.to_owned(),
        };
        out.push_str(&redact_durations(&line));
        out.push('\n');
    }
    out
}

/// `12:34:56.789`.
fn is_clock_time(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.len() == 12
        && bytes.iter().enumerate().all(|(i, b)| match i {
            2 | 5 => *b == b':',
            8 => *b == b'.',
            _ => b.is_ascii_digit(),
        })
}

/// Every `1.2s`-style duration becomes `[DUR]`, keeping the column after it where it was.
fn redact_durations(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some((start, end)) = find_duration(rest) {
        out.push_str(&rest[..start]);
        out.push_str("[DUR]");
        let spaces = rest[end..].len() - rest[end..].trim_start_matches(' ').len();
        if spaces > 0 {
            out.push_str(&" ".repeat((end - start + spaces).saturating_sub(5).max(1)));
        }
        rest = &rest[end + spaces..];
    }
    out.push_str(rest);
    out
}

/// The byte range of the first `DIGITS.DIGITSs` word in `text`: after a start, a space or
/// `(`, and before an end, a space or one of `),:`.
fn find_duration(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|start| {
        if start > 0 && !matches!(bytes[start - 1], b' ' | b'(') {
            return None;
        }
        let whole = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let dot = start + whole;
        if whole == 0 || bytes.get(dot) != Some(&b'.') {
            return None;
        }
        let fraction = bytes[dot + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let unit = dot + 1 + fraction;
        let end = unit + 1;
        let ends_well = bytes
            .get(end)
            .is_none_or(|b| matches!(b, b' ' | b')' | b',' | b':'));
        (fraction > 0 && bytes.get(unit) == Some(&b's') && ends_well).then_some((start, end))
    })
}

#[test]
fn plain_progress_snapshot() {
    let ws = Workspace::with_workflow(
        r#"
name: snapshot
jobs:
  build:
    steps:
      - name: compile
        run: echo compiling; echo "2 warnings"
  test:
    needs: build
    steps:
      - name: unit
        run: echo "3 passed, 1 failed"; exit 2
  deploy:
    needs: test
    steps:
      - run: echo deploying
"#,
    );
    let output = ws
        .coreflow()
        .args(["run", "wf.yaml", "--workers", "1", "--progress", "plain"])
        .fails(1);
    insta::assert_snapshot!(redact_plain(output.stdout()));
}

#[test]
fn the_redaction_keeps_numbers_that_are_not_durations() {
    assert_eq!(
        redact_plain("12:00:01.250 run 42 failed in 1.3s: 2 failed\n"),
        "[TIME] run 42 failed in [DUR]: 2 failed\n"
    );
    assert_eq!(
        redact_plain("b    failed  1         12.5s     3     step \"x1.5s\"\n"),
        "b    failed  1         [DUR]     3     step \"x1.5s\"\n"
    );
    assert_eq!(
        redact_plain("a    ok      1         0.0s      0\n"),
        "a    ok      1         [DUR]     0\n"
    );
}
