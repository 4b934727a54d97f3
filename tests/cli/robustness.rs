//! No input makes `coreflow validate` panic: hostile and broken files end in exit 0 or 2
//! with a message, never exit 101 or a signal (the harness fails on either, and on any
//! "panicked at" text). The library has its own property test over the parser; this one
//! drives the real binary, CLI and rendering included.

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
    validate_bytes("jobs: { a: { steps: [{ run: x }] }\n");
    validate_bytes("jobs: ]]]\n");
    validate_bytes("{{{{\n");
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
    refused_at(&dashes, "1:", "nesting");
}

#[test]
fn deep_block_indentation_is_refused() {
    let yaml: String = (0..1000)
        .map(|depth| format!("{}k:\n", "  ".repeat(depth)))
        .collect();
    refused_at(&yaml, "129:", "nesting");
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
    validate_bytes(&yaml);
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
    validate_bytes("jobs: { a: { steps: [{ run: x }], timeout: 99999999999999999999h } }\n");
    validate_bytes("jobs: { a: { steps: [{ run: x }], timeout: 18446744073709551615s } }\n");
    validate_bytes("jobs: { a: { steps: [{ run: x }], matrix: { n: [.nan, .inf, -.inf] } } }\n");
}

#[test]
fn hostile_templates_are_refused_or_accepted_without_panicking() {
    for template in [
        "${{",
        "${{ }}",
        "}} ${{",
        "${{ ${{ params.x }} }}",
        "${{ params. }}",
        "${{ params.x.y.z }}",
        "${{ needs..outputs }}",
        "${{ (((((((((((((((((((((((((((((((( }}",
        "${{ 'unterminated }}",
        "${{ params['x'] }}",
        "${{ params.x | upper | lower | default('y') }}",
        "{% for x in range(999999999) %}{{ x }}{% endfor %}",
        "${{ range(999999999999) }}",
        "${{ needs.a.outputs[0] }}",
        "${{ 1 / 0 }}",
    ] {
        // Block scalars, so that the text reaches the template checks as written.
        let yaml = format!(
            "params:\n  x: {{ default: a }}\njobs:\n  a:\n    if: |\n      {template}\n    \
             env:\n      E: |\n        {template}\n    steps:\n      - run: |\n          \
             {template}\n"
        );
        validate_bytes(yaml);
    }
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
        validate_bytes(bytes);
    }

    #[test]
    fn arbitrary_text_never_makes_validate_panic(text in "\\PC{0,600}") {
        validate_bytes(text);
    }

    #[test]
    fn mutations_of_a_valid_workflow_never_make_validate_panic(
        edits in proptest::collection::vec(edit_strategy(), 1..8),
    ) {
        let bytes = edits.iter().fold(SEED.as_bytes().to_vec(), apply);
        validate_bytes(bytes);
    }
}
