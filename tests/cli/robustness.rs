//! No input makes `coreflow validate` panic, overflow the stack or take long: hostile and
//! broken files end in exit 0, or in exit 2 with positioned errors, never exit 101 or a
//! signal (the harness fails on either, and on any "panicked at" text). The library has its
//! own property test over the parser, and `fuzz/` a fuzz target; this one drives the real
//! binary, CLI and rendering included. Each input the fuzzer found slow or fatal has a
//! test here.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use crate::support::{Coreflow, Output};

/// Validates `bytes` as `wf.yaml` and asserts the verdict is 0 or 2.
#[track_caller]
fn validate_bytes(bytes: impl AsRef<[u8]>) -> Output {
    let output = Coreflow::new()
        .file("wf.yaml", bytes)
        .args(["validate", "wf.yaml"])
        .run();
    assert!(
        matches!(output.code(), Some(0 | 2)),
        "exit code is neither 0 nor 2\n{output}"
    );
    output
}

/// Validates `bytes` and asserts what every input must come to: accepted (exit 0), or
/// refused (exit 2) with at least one error, each at a line and column counted from 1.
#[track_caller]
fn accepted_or_positioned(bytes: impl AsRef<[u8]>) -> Output {
    let output = validate_bytes(bytes);
    if output.code() == Some(2) {
        let places: Vec<(u32, u32)> = output
            .stderr()
            .lines()
            .filter_map(|line| line.split_once(": error: "))
            .filter_map(|(at, _)| {
                let mut parts = at.strip_prefix("wf.yaml:")?.split(':');
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
            })
            .collect();
        assert!(
            !places.is_empty(),
            "refused without a positioned error\n{output}"
        );
        assert!(
            places.iter().all(|&(line, col)| line >= 1 && col >= 1),
            "{places:?}\n{output}"
        );
    }
    output
}

/// Validates `bytes` as [`refused_at`] does, and asserts it took less than `limit` (a debug
/// build; what was quadratic took minutes).
#[track_caller]
fn refused_within(
    bytes: impl AsRef<[u8]>,
    limit: Duration,
    location: &str,
    fragment: &str,
) -> Output {
    let started = Instant::now();
    let output = refused_at(bytes, location, fragment);
    let took = started.elapsed();
    assert!(took < limit, "took {took:?}, more than {limit:?}");
    output
}

/// Validates and expects exit 2 with a diagnostic for `wf.yaml` whose message contains
/// `fragment`, at `location`: `line:col` exactly, or a prefix ending in `:` (`"1:"` for any
/// column of line 1, `""` for anywhere).
#[track_caller]
fn refused_at(bytes: impl AsRef<[u8]>, location: &str, fragment: &str) -> Output {
    let output = validate_bytes(bytes);
    assert_eq!(output.code(), Some(2), "{output}");
    let want = format!("wf.yaml:{location}");
    let is_prefix = location.is_empty() || location.ends_with(':');
    let found = output
        .stderr()
        .lines()
        .filter_map(|l| l.split_once(": error: "))
        .any(|(at, message)| {
            (at == want || is_prefix && at.starts_with(&want)) && message.contains(fragment)
        });
    assert!(
        found,
        "expected an error at `{want}` saying `{fragment}`\n{output}"
    );
    output
}

#[test]
fn binary_garbage_is_refused_as_not_utf8() {
    // A fixed pseudo-random sequence (xorshift), so the test is the same on every run.
    let mut state: u32 = 0x9E37_79B9;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0] | 0x80
        })
        .collect();
    refused_at(&garbage, "1:", "not UTF-8");
    refused_at(b"jobs:\n  a\xff: 1\n", "2:4", "not UTF-8");
    refused_at(b"\x00\x01\x02\x03", "1:1", "");
}

#[test]
fn tabs_in_indentation_are_refused_with_a_position() {
    refused_at("jobs:\n\ta:\n\t\tsteps: [{ run: x }]\n", "2:2", "tab");
}

#[test]
fn an_unclosed_quote_is_refused_with_a_position() {
    refused_at(
        "jobs:\n  a:\n    steps: [{ run: \"echo hi }]\n",
        "3:20",
        "quoted scalar",
    );
    refused_at(
        "jobs:\n  a:\n    steps:\n      - run: 'echo\n",
        "4:14",
        "quoted scalar",
    );
}

#[test]
fn unbalanced_brackets_are_refused() {
    refused_at(
        "jobs: { a: { steps: [{ run: x }] }\n",
        "2:1",
        "did not find expected ',' or '}'",
    );
    refused_at("jobs: ]]]\n", "1:7", "misplaced bracket");
    refused_at("{{{{\n", "2:1", "invalid YAML");
}

#[test]
fn a_5_mb_file_is_checked() {
    // One job per 100 lines of a long script, plus a long block scalar: about 5 MB that
    // validate reads, parses and checks in full. A long `run` keeps the run time low while
    // still pushing megabytes through every stage.
    let mut yaml = String::with_capacity(5_300_000);
    yaml.push_str("name: big\njobs:\n");
    for job in 0..200 {
        yaml.push_str(&format!(
            "  job{job}:\n    needs: [{}]\n    steps:\n      - run: |\n",
            if job == 0 {
                String::new()
            } else {
                format!("job{}", job - 1)
            }
        ));
        for line in 0..250 {
            yaml.push_str(&format!("          echo {job} {line} {}\n", "x".repeat(80)));
        }
    }
    assert!(yaml.len() > 5_000_000, "{} bytes", yaml.len());
    let output = validate_bytes(&yaml);
    assert_eq!(output.code(), Some(0), "{output}");
    assert_eq!(output.stdout(), "wf.yaml: ok (big, 200 jobs)\n");

    // The same size with a mistake at the very end still points at it.
    yaml.push_str("  last:\n    neeeds: [job0]\n    steps: [{ run: x }]\n");
    let lines = yaml.lines().count();
    refused_at(&yaml, &format!("{}:5", lines - 1), "unknown key `neeeds`");
}

#[test]
fn ten_thousand_nested_brackets_are_refused_without_overflowing_the_stack() {
    let deep = "[".repeat(10_000);
    refused_at(&deep, "1:", "");
    let balanced = format!("jobs: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    refused_at(&balanced, "1:", "");
    let maps = format!("{}{}", "{a: ".repeat(10_000), "}".repeat(10_000));
    refused_at(&maps, "1:", "");
    let dashes = format!("{}x\n", "- ".repeat(10_000));
    refused_at(&dashes, "1:129", "nesting deeper than 64 levels");
}

#[test]
fn a_deep_collection_inside_a_value_is_refused_at_its_line() {
    let list = format!(
        "jobs:\n  a:\n    steps: [{{ run: x }}]\n    env: {{ A: {}{} }}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    refused_at(&list, "4:", "");
    let maps = format!(
        "jobs:\n  a:\n    steps: [{{ run: x }}]\n    env: {}1{}\n",
        "{a: ".repeat(100_000),
        "}".repeat(100_000)
    );
    refused_at(&maps, "4:", "");
}

#[test]
fn template_expressions_nested_100000_deep_are_refused_at_their_line() {
    let n = 100_000;
    for inner in [
        format!("{}true", "!".repeat(n)),
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}{}", "[".repeat(n), "]".repeat(n)),
        format!("{}1{}", "{'a': ".repeat(n), "}".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("1{}", " + 1".repeat(n)),
        format!("params.x{}", " | upper".repeat(n)),
        format!("params{}", ".x".repeat(n)),
    ] {
        let yaml = format!(
            "params:\n  x: {{ default: a }}\njobs:\n  a:\n    steps:\n      - run: |\n          \
             echo ${{{{ {inner} }}}}\n  b:\n    if: |\n      ${{{{ {inner} }}}}\n    steps: [{{ run: x }}]\n"
        );
        let output = refused_at(&yaml, "7:16", "the template nests deeper than 64 levels");
        assert!(
            output
                .stderr()
                .contains("wf.yaml:10:7: error: invalid template: the template nests"),
            "{output}"
        );
    }
    // 60 levels are fine.
    let yaml = format!(
        "jobs:\n  a:\n    steps: [{{ run: 'echo ${{{{ {}1{} }}}}' }}]\n",
        "(".repeat(60),
        ")".repeat(60)
    );
    assert_eq!(validate_bytes(yaml).code(), Some(0));
}

#[test]
fn deep_block_indentation_is_refused() {
    let yaml: String = (0..1000)
        .map(|depth| format!("{}k:\n", "  ".repeat(depth)))
        .collect();
    refused_at(&yaml, "65:129", "nesting deeper than 64 levels");
}

#[test]
fn duplicate_keys_are_refused_at_the_second_one() {
    refused_at(
        "jobs:\n  a:\n    steps: [{ run: x }]\n  a:\n    steps: [{ run: y }]\n",
        "4:3",
        "duplicate key `a` (first given at line 2)",
    );
    refused_at(
        "name: x\nname: y\njobs:\n  a: { steps: [{ run: x }] }\n",
        "2:1",
        "duplicate",
    );
}

#[test]
fn anchors_and_merge_keys_are_valid() {
    let yaml = "\
defaults: &defaults
  timeout: 5m
  retry: &retry { max_attempts: 2, delay: 1s }
jobs:
  build: &job
    runs_on: [linux]
    steps: &steps
      - run: echo build
  test:
    <<: *job
    needs: [build]
  lint:
    <<: *defaults
    retry: *retry
    needs: [build]
    steps: *steps
  package:
    <<: [*defaults, *job]
    needs: [test, lint]
";
    let output = validate_bytes(yaml);
    assert_eq!(output.code(), Some(0), "{output}");
    assert_eq!(output.stdout(), "wf.yaml: ok (wf, 4 jobs)\n");
}

#[test]
fn a_merge_key_does_not_override_keys_written_in_the_map() {
    // `test` keeps its own `needs` over the merged one; were it taken from `*job`, `test`
    // would need itself.
    let yaml = "\
jobs:
  build: &job
    steps: [{ run: x }]
  test:
    <<: *job
    needs: [build]
  deploy:
    needs: [test]
    <<: { needs: [deploy], steps: [{ run: y }] }
";
    let output = validate_bytes(yaml);
    assert_eq!(output.code(), Some(0), "{output}");
}

#[test]
fn an_alias_to_an_unknown_anchor_is_refused() {
    refused_at("jobs:\n  a: *nope\n", "2:6", "anchor");
}

#[test]
fn a_billion_laughs_alias_bomb_is_refused_quickly() {
    let mut yaml = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let refs = vec![format!("*a{}", level - 1); 9].join(", ");
        yaml.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    yaml.push_str("jobs:\n  x:\n    steps: [{ run: x }]\n");
    let output = refused_at(&yaml, "", "aliases expand");
    assert!(
        output.stderr().lines().count() < 20,
        "one short message\n{output}"
    );

    // A ten-way bomb used as an environment value.
    let mut yaml = String::from("x-lol: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..9 {
        let refs = vec![format!("*l{}", level - 1); 10].join(", ");
        yaml.push_str(&format!("x{level}: &l{level} [{refs}]\n"));
    }
    yaml.push_str("jobs:\n  x:\n    steps: [{ run: x }]\n    env: { A: *l8 }\n");
    refused_at(&yaml, "", "aliases expand");
}

#[test]
fn several_documents_in_one_file_are_refused() {
    refused_at(
        "jobs: { a: { steps: [{ run: x }] } }\n---\nfoo: 1\n",
        "2:1",
        "second",
    );
}

#[test]
fn odd_but_valid_encodings_are_accepted() {
    let bom = "\u{feff}jobs: { a: { steps: [{ run: x }] } }\n";
    assert_eq!(validate_bytes(bom).code(), Some(0));
    let crlf = "jobs:\r\n  a:\r\n    steps: [{ run: x }]\r\n";
    assert_eq!(validate_bytes(crlf).code(), Some(0));
    let no_final_newline = "jobs: { a: { steps: [{ run: x }] } }";
    assert_eq!(validate_bytes(no_final_newline).code(), Some(0));
}

#[test]
fn out_of_range_numbers_are_refused_without_overflow() {
    refused_at(
        "jobs: { a: { steps: [{ run: x }], priority: 99999999999999999999999 } }\n",
        "1:45",
        "priority",
    );
    refused_at(
        "jobs: { a: { steps: [{ run: x }], retry: { max_attempts: 99999999999999999999 } } }\n",
        "1:",
        "max_attempts",
    );
    // Durations beyond 100 years would overflow a deadline's clock arithmetic at run time.
    refused_at(
        "jobs: { a: { steps: [{ run: x }], timeout: 99999999999999999999h } }\n",
        "1:44",
        "`99999999999999999999h` is too long: a duration is at most 100 years",
    );
    refused_at(
        "jobs: { a: { steps: [{ run: x }], timeout: 18446744073709551615s } }\n",
        "1:44",
        "is too long",
    );
    refused_at(
        "triggers: [{ every: 36501d }]\njobs: { a: { steps: [{ run: x }] } }\n",
        "1:21",
        "is too long",
    );
    let longest = "jobs: { a: { steps: [{ run: x }], timeout: 36500d } }\n";
    assert_eq!(validate_bytes(longest).code(), Some(0));
}

#[test]
fn non_finite_floats_in_a_matrix_are_text() {
    let yaml = "jobs: { a: { steps: [{ run: x }], matrix: { n: [.nan, .inf, -.inf] } } }\n";
    assert_eq!(validate_bytes(yaml).code(), Some(0));
}

#[test]
fn hostile_templates_are_refused_or_accepted_without_panicking() {
    // (template, the error each place gets, or `None` when the file is valid)
    for (template, error) in [
        ("${{", Some("unexpected end of input")),
        ("${{ }}", Some("syntax error")),
        ("}} ${{", Some("unexpected end of input")),
        ("${{ ${{ params.x }} }}", Some("unexpected character")),
        ("${{ params. }}", Some("expected identifier or integer")),
        ("${{ params.x.y.z }}", None),
        ("${{ needs..outputs }}", Some("unexpected `.`")),
        (
            "${{ (((((((((((((((((((((((((((((((( }}",
            Some("syntax error"),
        ),
        ("${{ 'unterminated }}", Some("unexpected end of string")),
        ("${{ params['x'] }}", None),
        ("${{ params.x | upper | lower | default('y') }}", None),
        ("${{ range(999999999999) }}", None),
        ("${{ needs.a.outputs[0] }}", Some("which `a` does not need")),
        ("${{ 1 / 0 }}", None),
    ] {
        // Block scalars, so that the text reaches the template checks as written.
        let yaml = format!(
            "params:\n  x: {{ default: a }}\njobs:\n  a:\n    if: |\n      {template}\n    \
             env:\n      E: |\n        {template}\n    steps:\n      - run: |\n          \
             {template}\n"
        );
        match error {
            None => assert_eq!(validate_bytes(&yaml).code(), Some(0), "{template}"),
            Some(fragment) => {
                for line in ["6:", "9:", "12:"] {
                    refused_at(&yaml, line, fragment);
                }
            }
        }
    }
    // Only `${{ }}` is active: Jinja's own block syntax is a syntax error in an `if:`.
    let yaml = "jobs:\n  a:\n    if: '{% for x in range(999999999) %}{{ x }}{% endfor %}'\n    \
                steps: [{ run: x }]\n";
    refused_at(yaml, "3:9", "unexpected `%`");
}

/// A file of about 5 MB with 80,000 unknown keys: what was quadratic (a search from the
/// file's start for each quoted line, a scan of the map for each pruned key) took minutes.
#[test]
fn eighty_thousand_unknown_keys_are_reported_fifty_at_a_time_in_linear_time() {
    let mut yaml = String::from("jobs:\n  a:\n    steps: [{ run: x }]\n");
    let mut keys = 0;
    while yaml.len() < 5 * 1024 * 1024 {
        yaml.push_str(&format!(
            "    unknown_key_{keys:06}: value_{keys:06}_{}\n",
            "x".repeat(28)
        ));
        keys += 1;
    }
    let output = refused_within(
        &yaml,
        Duration::from_secs(20),
        "4:5",
        "unknown key `unknown_key_000000` in job `a`",
    );
    let stderr = output.stderr();
    assert_eq!(stderr.matches(": error: ").count(), 50, "{output}");
    assert!(stderr.contains("wf.yaml:53:5: error: unknown key `unknown_key_000049`"));
    assert!(
        stderr.ends_with(&format!(
            "… and {} more\nwf.yaml: {keys} errors found\n",
            keys - 50
        )),
        "{}",
        &stderr[stderr.len() - 200..]
    );
}

#[test]
fn fifty_thousand_missing_needs_on_one_line_take_linear_time() {
    let names: Vec<String> = (0..50_000).map(|i| format!("missing{i}")).collect();
    let yaml = format!(
        "jobs:\n  a:\n    steps: [{{ run: x }}]\n    needs: [{}]\n",
        names.join(", ")
    );
    let output = refused_within(
        &yaml,
        Duration::from_secs(20),
        "4:13",
        "job `a` needs `missing0`, which is not a job of this workflow",
    );
    let stderr = output.stderr();
    assert!(
        stderr.contains("\nwf.yaml:4:23: error: job `a` needs `missing1`"),
        "{output}"
    );
    assert!(
        stderr.ends_with("… and 49950 more\nwf.yaml: 50000 errors found\n"),
        "{output}"
    );
    // The 600 KB line is quoted as a window around each caret.
    let long = stderr
        .lines()
        .find(|l| l.starts_with("4 | "))
        .unwrap_or_default();
    assert!(long.chars().count() < 120, "{long}");
}

/// A job named by 1,000,000 characters (an explicit `?` key) with 50,000 bad `needs`: each
/// message quotes the name cut short, and finding each position does not compare it again.
#[test]
fn a_long_job_name_in_many_messages_is_cut_short_and_costs_nothing_more() {
    let name = "j".repeat(1_000_000);
    let needs: Vec<String> = (0..50_000).map(|i| format!("m{i}")).collect();
    let yaml = format!(
        "jobs:\n  ? {name}\n  : steps: [{{ run: x }}]\n    needs: [{}]\n",
        needs.join(", ")
    );
    let shown = format!("job `{}…` needs `m0`", "j".repeat(64));
    let output = refused_within(&yaml, Duration::from_secs(20), "4:13", &shown);
    assert!(
        output.stderr().len() < 100_000,
        "{} bytes",
        output.stderr().len()
    );
}

/// 20,000 jobs in a chain, each reading a DataBlock of the first job, or of the job two
/// before it: whether the producer is upstream was a search per input (40 s).
#[test]
fn a_long_chain_of_jobs_reading_datablocks_validates_in_linear_time() {
    for far in [false, true] {
        let mut yaml = String::from(
            "jobs:\n  j0:\n    steps: [{ run: x }]\n    datablocks: { o: { path: o.csv } }\n",
        );
        for i in 1..20_000_usize {
            let producer = if far { 0 } else { i.saturating_sub(2) };
            yaml.push_str(&format!(
                "  j{i}: {{ needs: j{}, inputs: {{ o: j{producer}.o }}, steps: [{{ run: x }}], \
                 datablocks: {{ o: {{ path: o.csv }} }} }}\n",
                i - 1
            ));
        }
        let started = Instant::now();
        let output = validate_bytes(&yaml);
        assert_eq!(output.code(), Some(0), "{output}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
    // A producer that is not upstream is made a need (`inputs` implies `needs`).
    let yaml = "jobs:\n  p: { steps: [{ run: x }], datablocks: { o: { path: o } } }\n  \
                q: { steps: [{ run: x }] }\n  r: { needs: q, inputs: { o: p.o }, steps: [{ run: x }] }\n";
    let output = validate_bytes(yaml);
    assert_eq!(output.code(), Some(0), "{output}");
}

/// Many problems in one large scalar or map: each is placed by one pass over its text.
#[test]
fn many_problems_in_one_script_or_map_take_linear_time() {
    let refs: String = (0..40_000)
        .map(|i| format!("echo ${{{{ params.nosuch{i} }}}}; "))
        .collect();
    let yaml = format!("params: {{ p: {{}} }}\njobs:\n  a:\n    steps:\n      - run: \"{refs}\"\n");
    let output = refused_within(
        &yaml,
        Duration::from_secs(20),
        "5:24",
        "`params.nosuch0` reads an unknown parameter `nosuch0`",
    );
    assert!(
        output.stderr().contains("wf.yaml: 40000 errors found"),
        "{output}"
    );
    let env: String = (0..40_000)
        .map(|i| format!("      E{i}: '${{{{ params.q{i} }}}}'\n"))
        .collect();
    let yaml =
        format!("params: {{ p: {{}} }}\njobs:\n  a:\n    steps: [{{ run: x }}]\n    env:\n{env}");
    refused_within(
        &yaml,
        Duration::from_secs(20),
        "6:16",
        "`params.q0` reads an unknown parameter",
    );
}

/// A valid workflow touching most of the format, for the mutation property.
const SEED: &str = "\
name: nightly-etl
params:
  date: { type: string, required: true }
  region: { type: string, choices: [eu, us], default: eu }
  rows: { type: int, default: 1000 }
env: { TZ: UTC }
triggers:
  - schedule: \"0 2 * * *\"
    timezone: Europe/Berlin
    params: { region: eu }
  - every: 15m
defaults: &defaults
  timeout: 30m
  retry: { max_attempts: 3, delay: 2s, backoff: exponential }
jobs:
  extract:
    <<: *defaults
    metadata: { partition: \"${{ params.date }}\" }
    steps:
      - run: ./download.sh \"${{ params.date }}\" > orders.csv
    datablocks:
      orders: { path: orders.csv }
  transform:
    needs: [extract]
    inputs: { orders: extract.orders }
    if: \"${{ needs.extract.outputs.rows != '0' }}\"
    matrix: { format: [csv, html] }
    steps:
      - command: [\"python3\", \"t.py\", \"${{ matrix.format }}\"]
        timeout: 5m
";

/// Fragments that YAML and the template language give meaning to.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    " ",
    "  ",
    "\n",
    "\t",
    "\r",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: ",
    "!!str ",
    "? ",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "${{ ",
    " }}",
    "needs",
    "jobs",
    "steps",
    "params.",
    "matrix.",
    "~",
    "null",
    "é",
    "\u{feff}",
    "\u{0}",
    "0x",
    "1e999",
    "@",
    "`",
];

/// One edit of a document: where (as a fraction of its length) and what.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    FlipByte(usize, u8),
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Edit::Insert(at, token)),
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Edit::Delete(at, len)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::FlipByte(at, byte)),
    ]
}

fn apply(mut bytes: Vec<u8>, edit: &Edit) -> Vec<u8> {
    let len = bytes.len();
    match *edit {
        Edit::Insert(at, token) => {
            let at = at % (len + 1);
            bytes.splice(at..at, TOKENS[token].bytes());
        }
        Edit::Delete(at, count) => {
            if len > 0 {
                let at = at % len;
                bytes.drain(at..(at + count).min(len));
            }
        }
        Edit::DuplicateLine(n) => {
            bytes = with_lines(&bytes, |lines| {
                let i = n % lines.len();
                lines.insert(i, lines[i].clone());
            });
        }
        Edit::SwapLines(a, b) => {
            bytes = with_lines(&bytes, |lines| {
                let count = lines.len();
                lines.swap(a % count, b % count);
            });
        }
        Edit::FlipByte(at, byte) => {
            if len > 0 {
                bytes[at % len] = byte;
            }
        }
    }
    bytes
}

/// Edits the lines of `bytes` (never fewer than one) and joins them again.
fn with_lines(bytes: &[u8], edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    edit(&mut lines);
    lines.join(&b'\n')
}

/// 64 cases per property by default, from a fixed seed so that every run tries the same
/// inputs; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` widen or vary the search.
fn config() -> Config {
    let from_env = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            from_env.cases
        } else {
            64
        },
        rng_seed: match from_env.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0xC0DE_F10E),
            fixed @ RngSeed::Fixed(_) => fixed,
        },
        max_shrink_iters: 256,
        ..from_env
    }
}

#[test]
fn the_seed_of_the_mutation_property_is_valid() {
    assert_eq!(validate_bytes(SEED).code(), Some(0));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_make_validate_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        accepted_or_positioned(bytes);
    }

    #[test]
    fn arbitrary_text_never_makes_validate_panic(text in "\\PC{0,600}") {
        accepted_or_positioned(text);
    }

    #[test]
    fn mutations_of_a_valid_workflow_never_make_validate_panic(
        edits in proptest::collection::vec(edit_strategy(), 1..8),
    ) {
        let bytes = edits.iter().fold(SEED.as_bytes().to_vec(), apply);
        accepted_or_positioned(bytes);
    }
}
