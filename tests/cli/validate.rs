//! `coreflow validate FILE…`: exit 0 when every file is valid, 2 otherwise, with each problem
//! reported as `file:line:col: error: message`, a source excerpt and an optional help line.

use crate::support::{Coreflow, Output, diagnostics};

/// A small valid workflow.
const HELLO: &str = "\
name: hello
jobs:
  greet:
    steps:
      - run: echo hello
";

/// Runs `coreflow validate wf.yaml` on `yaml`, expecting exit 2.
#[track_caller]
fn invalid(yaml: &str) -> Output {
    Coreflow::new()
        .file("wf.yaml", yaml)
        .args(["validate", "wf.yaml"])
        .fails(2)
}

/// Asserts that a diagnostic at `location` says something containing `fragment`, with
/// exactly `help` as its help line.
#[track_caller]
fn assert_diag(output: &Output, location: &str, fragment: &str, help: Option<&str>) {
    let all = diagnostics(output.stderr());
    let Some(diag) = all
        .iter()
        .find(|d| d.location == location && d.message.contains(fragment))
    else {
        panic!("no diagnostic at {location} containing {fragment:?}; found {all:#?}\n{output}");
    };
    assert_eq!(diag.help.as_deref(), help, "help of {diag:?}\n{output}");
}

/// Asserts the number of diagnostics and the closing count line.
#[track_caller]
fn assert_count(output: &Output, file: &str, count: usize) {
    let all = diagnostics(output.stderr());
    assert_eq!(all.len(), count, "{all:#?}\n{output}");
    let plural = if count == 1 { "" } else { "s" };
    let summary = format!("{file}: {count} error{plural} found\n");
    assert!(
        output.stderr().ends_with(&summary),
        "missing {summary:?}\n{output}"
    );
}

#[test]
fn a_valid_file_exits_0_and_is_reported_ok() {
    let output = Coreflow::new()
        .file("wf.yaml", HELLO)
        .args(["validate", "wf.yaml"])
        .succeeds();
    assert_eq!(output.stdout(), "wf.yaml: ok (hello, 1 job)\n");
    assert_eq!(output.stderr(), "");
}

#[test]
fn the_workflow_name_defaults_to_the_file_stem() {
    let output = Coreflow::new()
        .file(
            "nightly-etl.yaml",
            "jobs:\n  a: { steps: [{ run: x }] }\n  b: { steps: [{ run: y }] }\n",
        )
        .args(["validate", "nightly-etl.yaml"])
        .succeeds();
    assert_eq!(
        output.stdout(),
        "nightly-etl.yaml: ok (nightly-etl, 2 jobs)\n"
    );
}

#[test]
fn plain_scalars_where_text_is_expected_are_taken_as_text() {
    // SPEC §7: `run: true`, `env: { PORT: 8080 }`, `choices: [1, 2]` for a string parameter.
    let yaml = "\
params:
  level: { type: string, choices: [1, 2], default: 1 }
env: { PORT: 8080, DEBUG: true }
jobs:
  a:
    steps:
      - run: true
";
    Coreflow::new()
        .file("wf.yaml", yaml)
        .args(["validate", "wf.yaml"])
        .succeeds();
}

#[test]
fn an_unknown_key_points_at_the_key_and_suggests_the_close_name() {
    let output = invalid(
        "\
jobs:
  extract:
    steps: [{ run: x }]
  transform:
    neeeds: [extract]
    steps: [{ run: x }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:5:5",
        "unknown key `neeeds` in job `transform`",
        Some("did you mean `needs`?"),
    );
    assert!(output.stderr().contains("expected one of"), "{output}");
    assert_count(&output, "wf.yaml", 1);
}

#[test]
fn an_unknown_key_far_from_every_known_key_gets_no_suggestion() {
    let output = invalid("jobs:\n  a:\n    steps: [{ run: x }]\n    zzzzzzzz: 1\n");
    assert_diag(&output, "wf.yaml:4:5", "unknown key `zzzzzzzz`", None);
}

#[test]
fn an_unknown_top_level_key_is_reported_in_the_workflow() {
    let output = invalid("nmae: x\njobs:\n  a:\n    steps: [{ run: x }]\n");
    assert_diag(
        &output,
        "wf.yaml:1:1",
        "unknown key `nmae`",
        Some("did you mean `name`?"),
    );
}

#[test]
fn needs_naming_a_missing_job_points_at_it_and_suggests_a_close_job() {
    let output = invalid(
        "\
jobs:
  build:
    steps: [{ run: x }]
  test:
    needs: [build, bulid]
    steps: [{ run: x }]
  lint:
    needs: linter
    steps: [{ run: x }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:5:20",
        "job `test` needs `bulid`, which is not a job of this workflow",
        Some("did you mean `build`?"),
    );
    // `needs` written as one name rather than a list points at that name.
    assert_diag(&output, "wf.yaml:8:12", "job `lint` needs `linter`", None);
    assert_count(&output, "wf.yaml", 2);
}

#[test]
fn a_cycle_is_named_in_needs_order_closing_with_the_first_job() {
    // Declared a, b, c; a needs b, b needs c, c needs a.
    let output = invalid(
        "\
jobs:
  a:
    needs: [b]
    steps: [{ run: x }]
  b:
    needs: [c]
    steps: [{ run: x }]
  c:
    needs: [a]
    steps: [{ run: x }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:2:3",
        "dependency cycle: a -> b -> c -> a",
        None,
    );
    assert_count(&output, "wf.yaml", 1);
}

#[test]
fn a_cycle_follows_needs_rather_than_declaration_order() {
    // a needs c, c needs b, b needs a: the path is a -> c -> b -> a, not a -> b -> c -> a.
    let output = invalid(
        "\
jobs:
  a:
    needs: [c]
    steps: [{ run: x }]
  b:
    needs: [a]
    steps: [{ run: x }]
  c:
    needs: [b]
    steps: [{ run: x }]
  d:
    needs: [e]
    steps: [{ run: x }]
  e:
    needs: [d]
    steps: [{ run: x }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:2:3",
        "dependency cycle: a -> c -> b -> a",
        None,
    );
    assert_diag(
        &output,
        "wf.yaml:11:3",
        "dependency cycle: d -> e -> d",
        None,
    );
    assert_count(&output, "wf.yaml", 2);
}

#[test]
fn a_job_needing_itself_is_an_error() {
    let output = invalid("jobs:\n  a:\n    needs: [a]\n    steps: [{ run: x }]\n");
    assert_diag(&output, "wf.yaml:3:13", "job `a` needs itself", None);
}

#[test]
fn a_bad_duration_points_at_the_value() {
    let output = invalid(
        "\
defaults:
  timeout: soon
jobs:
  a:
    timeout: 5x
    steps:
      - run: x
        timeout: 1h30m
      - run: y
        timeout: 10
triggers:
  - every: fortnight
",
    );
    assert_diag(&output, "wf.yaml:2:12", "`soon` is not a duration", None);
    assert_diag(&output, "wf.yaml:5:14", "`5x` is not a duration", None);
    // A bare number has no unit.
    assert_diag(
        &output,
        "wf.yaml:10:18",
        "expects a duration, found `10`",
        None,
    );
    assert_diag(
        &output,
        "wf.yaml:12:12",
        "`fortnight` is not a duration",
        None,
    );
}

#[test]
fn durations_in_every_documented_form_are_accepted() {
    let yaml = "\
defaults:
  timeout: 1h30m
  retry: { max_attempts: 3, delay: 500ms, max_delay: 5m }
triggers:
  - every: 15m
jobs:
  a:
    timeout: 10s
    cancel_grace: 2s
    steps: [{ run: x, timeout: 5m }]
";
    Coreflow::new()
        .file("wf.yaml", yaml)
        .args(["validate", "wf.yaml"])
        .succeeds();
}

#[test]
fn cron_expressions_with_5_and_6_fields_are_accepted() {
    let yaml = "\
triggers:
  - schedule: \"0 2 * * *\"
  - schedule: \"*/15 1-3 * * 1-5\"
  - schedule: \"59 23 31 12 0\"
  - schedule: \"30 0 2 * * *\"
  - schedule: \"59 59 23 * * 7\"
jobs:
  a:
    steps: [{ run: x }]
";
    Coreflow::new()
        .file("wf.yaml", yaml)
        .args(["validate", "wf.yaml"])
        .succeeds();
}

#[test]
fn a_bad_cron_expression_points_at_the_schedule() {
    let output = invalid(
        "\
triggers:
  - schedule: \"61 * * * *\"
  - schedule: \"61 0 2 * * *\"
  - schedule: \"0 2 * *\"
  - schedule: \"0 0 2 * * * *\"
  - schedule: \"0 25 * * *\"
jobs:
  a:
    steps: [{ run: x }]
",
    );
    // 5 fields, minute out of range.
    assert_diag(
        &output,
        "wf.yaml:2:15",
        "invalid cron expression `61 * * * *`",
        None,
    );
    // 6 fields, seconds out of range.
    assert_diag(
        &output,
        "wf.yaml:3:15",
        "invalid cron expression `61 0 2 * * *`",
        None,
    );
    // Too few and too many fields say how many there should be.
    assert_diag(&output, "wf.yaml:4:15", "expected 5 fields", None);
    assert_diag(&output, "wf.yaml:4:15", "found 4", None);
    assert_diag(&output, "wf.yaml:5:15", "found 7", None);
    assert_diag(
        &output,
        "wf.yaml:6:15",
        "invalid cron expression `0 25 * * *`",
        None,
    );
    assert_count(&output, "wf.yaml", 5);
}

#[test]
fn an_unknown_time_zone_is_an_error_with_a_suggestion() {
    let output = invalid(
        "\
triggers:
  - schedule: \"0 2 * * *\"
    timezone: Europe/Berln
  - schedule: \"0 2 * * *\"
    timezone: Mars/Olympus_Mons
  - schedule: \"0 2 * * *\"
    timezone: America/New_York
jobs:
  a:
    steps: [{ run: x }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:3:15",
        "unknown time zone `Europe/Berln`",
        Some("did you mean `Europe/Berlin`?"),
    );
    assert_diag(
        &output,
        "wf.yaml:5:15",
        "unknown time zone `Mars/Olympus_Mons`",
        None,
    );
    assert_count(&output, "wf.yaml", 2);
}

#[test]
fn a_template_reading_an_unknown_parameter_is_an_error() {
    let output = invalid(
        "\
params:
  date: { type: string, default: \"2026-01-01\" }
jobs:
  a:
    steps:
      - run: echo ${{ params.daet }}
",
    );
    assert_diag(
        &output,
        "wf.yaml:6:23",
        "`params.daet` reads an unknown parameter `daet`",
        Some("did you mean `date`?"),
    );
    assert_count(&output, "wf.yaml", 1);
}

#[test]
fn a_template_reading_a_job_not_in_needs_is_an_error() {
    let output = invalid(
        "\
jobs:
  build:
    steps: [{ run: echo \"v=1\" >> \"$COREFLOW_OUTPUT\" }]
  test:
    steps:
      - run: echo ${{ needs.build.outputs.v }}
",
    );
    assert_diag(
        &output,
        "wf.yaml:6:23",
        "`needs.build.outputs.v` reads job `build`, which `test` does not need",
        Some("add `build` to the `needs` of `test`"),
    );
    assert_count(&output, "wf.yaml", 1);
}

#[test]
fn a_template_reading_an_unknown_matrix_key_is_an_error() {
    let output = invalid(
        "\
jobs:
  test:
    matrix: { python: [\"3.11\", \"3.12\"], os: [linux] }
    env: { PY: \"${{ matrix.pyhton }}\" }
    steps:
      - run: echo ${{ matrix.os }}
  other:
    steps:
      - run: echo ${{ matrix.os }}
",
    );
    assert_diag(
        &output,
        "wf.yaml:4:21",
        "`matrix.pyhton` reads an unknown matrix key `pyhton`",
        Some("did you mean `python`?"),
    );
    assert_diag(&output, "wf.yaml:9:23", "job `other` has no `matrix`", None);
    assert_count(&output, "wf.yaml", 2);
}

#[test]
fn an_input_naming_a_datablock_the_job_does_not_produce_is_an_error() {
    let output = invalid(
        "\
jobs:
  extract:
    steps: [{ run: x }]
    datablocks: { orders: { path: orders.csv } }
  transform:
    needs: [extract]
    inputs: { orders: extract.ordrs }
    steps: [{ run: x }]
  load:
    needs: [transform]
    inputs: { data: transform.summary }
    steps: [{ run: x }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:7:23",
        "job `extract` does not produce a DataBlock `ordrs`; it produces `orders`",
        Some("did you mean `orders`?"),
    );
    assert_diag(
        &output,
        "wf.yaml:11:21",
        "job `transform` produces no DataBlocks",
        None,
    );
    assert_count(&output, "wf.yaml", 2);
}

#[test]
fn a_default_that_does_not_fit_its_type_or_choices_is_an_error() {
    let output = invalid(
        "\
params:
  rows: { type: int, default: many }
  ratio: { type: float, default: high }
  dry: { type: bool, default: maybe }
  region: { type: string, choices: [eu, us], default: asia }
  fine: { type: int, choices: [1, 2], default: 2 }
jobs:
  a:
    steps: [{ run: x }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:2:31",
        "parameter `rows` expects an integer",
        None,
    );
    assert_diag(
        &output,
        "wf.yaml:3:34",
        "parameter `ratio` expects a number",
        None,
    );
    assert_diag(
        &output,
        "wf.yaml:4:31",
        "parameter `dry` expects `true` or `false`",
        None,
    );
    assert_diag(
        &output,
        "wf.yaml:5:55",
        "parameter `region` must be one of `eu`, `us`",
        None,
    );
    assert_count(&output, "wf.yaml", 4);
}

#[test]
fn an_empty_file_is_invalid() {
    for (content, what) in [
        ("", "empty"),
        ("\n   \n", "blank"),
        ("# only a comment\n", "comment"),
    ] {
        let output = invalid(content);
        assert_eq!(diagnostics(output.stderr()).len(), 1, "{what}\n{output}");
        assert_diag(&output, "wf.yaml:1:1", "the file is empty", None);
    }
}

#[test]
fn a_workflow_without_jobs_is_invalid() {
    let output = invalid("name: nothing-to-do\n");
    assert_diag(&output, "wf.yaml:1:1", "missing key `jobs`", None);
    let output = invalid("name: nothing-to-do\njobs: {}\n");
    assert_diag(
        &output,
        "wf.yaml:2:1",
        "a workflow needs at least one job",
        None,
    );
    let output = invalid("jobs:\n");
    assert_diag(&output, "wf.yaml:1:5", "`jobs` expects a map", None);
}

#[test]
fn a_document_that_is_not_a_map_is_invalid() {
    let output = invalid("- a\n- b\n");
    assert_diag(
        &output,
        "wf.yaml:1:1",
        "a workflow is a map with `jobs`, found a list",
        None,
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once_in_position_order() {
    let output = invalid(
        "\
params:
  n: { type: int, default: many }
triggers:
  - schedule: \"61 * * * *\"
    timezone: Europe/Berln
jobs:
  a:
    neeeds: [b]
    timeout: 5x
    steps:
      - run: echo ${{ params.m }}
  b:
    needs: [a, c]
    steps: [{ run: x }]
",
    );
    let locations: Vec<String> = diagnostics(output.stderr())
        .into_iter()
        .map(|d| d.location)
        .collect();
    assert_eq!(
        locations,
        [
            "wf.yaml:2:28",
            "wf.yaml:4:15",
            "wf.yaml:5:15",
            "wf.yaml:8:5",
            "wf.yaml:9:14",
            "wf.yaml:11:23",
            "wf.yaml:13:16",
        ],
        "{output}"
    );
    assert_count(&output, "wf.yaml", 7);
}

#[test]
fn diagnostics_of_a_file_with_several_errors_render_with_excerpts_and_help() {
    let output = invalid(
        "\
name: nightly
params:
  region: { type: string, choices: [eu, us], default: asia }
triggers:
  - schedule: \"0 2 * * *\"
    timezone: Europe/Berln
jobs:
  extract:
    steps: [{ run: ./download.sh }]
  transform:
    neeeds: [extract]
    steps:
      - run: echo ${{ params.regoin }}
  report:
    needs: [transfrom]
    steps: [{ run: x }]
",
    );
    assert_eq!(output.stdout(), "");
    insta::assert_snapshot!(output.stderr(), @"
    wf.yaml:3:55: error: default value does not fit: parameter `region` must be one of `eu`, `us`, got `asia`
      |
    3 |   region: { type: string, choices: [eu, us], default: asia }
      |                                                       ^^^^
    wf.yaml:6:15: error: unknown time zone `Europe/Berln`
      |
    6 |     timezone: Europe/Berln
      |               ^^^^^^^^^^^^ expected an IANA name such as `Europe/Berlin` or `UTC`
      = help: did you mean `Europe/Berlin`?
    wf.yaml:11:5: error: unknown key `neeeds` in job `transform`
       |
    11 |     neeeds: [extract]
       |     ^^^^^^ expected one of `needs`, `queue`, `priority`, `runs_on`, `metadata`, `params`, `env`, `workdir`, `steps`, `workflow`, `with`, `datablocks`, `inputs`, `if`, `run_if`, `matrix`, `fail_fast`, `continue_on_error`, `resources`, `compute`, `for_each`, `max_parallel`, `timeout`, `retry`, `cancel_grace`
       = help: did you mean `needs`?
    wf.yaml:13:23: error: `params.regoin` reads an unknown parameter `regoin`
       |
    13 |       - run: echo ${{ params.regoin }}
       |                       ^^^^^^^^^^^^^
       = help: did you mean `region`?
    wf.yaml:15:13: error: job `report` needs `transfrom`, which is not a job of this workflow
       |
    15 |     needs: [transfrom]
       |             ^^^^^^^^^
       = help: did you mean `transform`?
    wf.yaml: 5 errors found
");
}

#[test]
fn one_bad_file_among_several_fails_but_the_good_ones_are_still_reported_ok() {
    let output = Coreflow::new()
        .file("good.yaml", HELLO)
        .file(
            "bad.yaml",
            "jobs:\n  a:\n    neeeds: []\n    steps: [{ run: x }]\n",
        )
        .file("also-good.yaml", "jobs:\n  b: { steps: [{ run: y }] }\n")
        .args(["validate", "good.yaml", "bad.yaml", "also-good.yaml"])
        .fails(2);
    assert_eq!(
        output.stdout(),
        "good.yaml: ok (hello, 1 job)\nalso-good.yaml: ok (also-good, 1 job)\n"
    );
    assert_diag(
        &output,
        "bad.yaml:3:5",
        "unknown key `neeeds`",
        Some("did you mean `needs`?"),
    );
    assert_count(&output, "bad.yaml", 1);
}

#[test]
fn a_missing_file_exits_2_with_a_message_and_the_other_files_are_still_checked() {
    let output = Coreflow::new()
        .file("good.yaml", HELLO)
        .args(["validate", "missing.yaml", "good.yaml"])
        .fails(2);
    assert!(
        output.stderr().contains("cannot read missing.yaml"),
        "{output}"
    );
    assert_eq!(output.stdout(), "good.yaml: ok (hello, 1 job)\n");
}

#[test]
fn a_folder_given_as_a_file_exits_2_with_a_message() {
    let output = Coreflow::new()
        .dir("workflows")
        .args(["validate", "workflows"])
        .fails(2);
    assert!(
        output.stderr().contains("cannot read workflows"),
        "{output}"
    );
}

#[test]
fn validate_without_files_is_a_usage_error() {
    let output = Coreflow::new().args(["validate"]).fails(2);
    assert!(output.stderr().contains("required"), "{output}");
}

#[test]
fn json_output_parses_and_has_the_positions() {
    let output = Coreflow::new()
        .file("good.yaml", HELLO)
        .file(
            "bad.yaml",
            "jobs:\n  a:\n    neeeds: [b]\n    steps:\n      - run: echo ${{ params.x }}\n",
        )
        .args([
            "validate",
            "--json",
            "good.yaml",
            "bad.yaml",
            "missing.yaml",
        ])
        .fails(2);
    assert_eq!(output.stderr(), "", "--json puts everything on stdout");
    let json = output.stdout_json();
    let verdicts = json.as_array().expect("an array, one entry per file");
    assert_eq!(verdicts.len(), 3);

    let good = &verdicts[0];
    assert_eq!(good["file"], "good.yaml");
    assert_eq!(good["valid"], true);
    assert_eq!(good["workflow"], "hello");
    assert_eq!(good["jobs"], 1);
    assert_eq!(good["errors"], serde_json::json!([]));

    let bad = &verdicts[1];
    assert_eq!(bad["file"], "bad.yaml");
    assert_eq!(bad["valid"], false);
    assert!(
        bad.get("workflow").is_none() && bad.get("jobs").is_none(),
        "{bad:#}"
    );
    let errors = bad["errors"].as_array().expect("errors is an array");
    assert_eq!(errors.len(), 2, "{bad:#}");
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["column"], 5);
    assert_eq!(errors[0]["message"], "unknown key `neeeds` in job `a`");
    assert_eq!(errors[0]["help"], "did you mean `needs`?");
    assert_eq!(errors[1]["line"], 5);
    assert_eq!(errors[1]["column"], 23);
    assert!(
        errors[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("params.x")),
        "{bad:#}"
    );
    assert!(
        errors[1].get("help").is_none(),
        "no help without a close name: {bad:#}"
    );

    let missing = &verdicts[2];
    assert_eq!(missing["file"], "missing.yaml");
    assert_eq!(missing["valid"], false);
    let message = missing["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot read"), "{missing:#}");
}

#[test]
fn global_options_are_accepted_before_or_after_the_command() {
    let before = Coreflow::new()
        .file("wf.yaml", HELLO)
        .args(["--json", "validate", "wf.yaml"])
        .succeeds();
    let after = Coreflow::new()
        .file("wf.yaml", HELLO)
        .args(["validate", "wf.yaml", "--json"])
        .succeeds();
    assert_eq!(before.stdout_json(), after.stdout_json());
    assert_eq!(before.stdout_json()[0]["valid"], true);

    for args in [
        ["--quiet", "validate", "wf.yaml"],
        ["validate", "wf.yaml", "-q"],
    ] {
        let output = Coreflow::new().file("wf.yaml", HELLO).args(args).succeeds();
        assert_eq!(
            output.stdout(),
            "",
            "--quiet prints nothing for a valid file"
        );
    }

    for args in [
        ["--color", "never", "validate", "wf.yaml"],
        ["validate", "wf.yaml", "--color", "never"],
    ] {
        Coreflow::new().file("wf.yaml", HELLO).args(args).succeeds();
    }

    let env = Coreflow::new()
        .file("wf.yaml", HELLO)
        .args(["validate", "wf.yaml", "--env", "elsewhere"])
        .succeeds();
    assert_eq!(env.stdout(), "wf.yaml: ok (hello, 1 job)\n");
}

#[test]
fn quiet_still_reports_invalid_files() {
    let output = Coreflow::new()
        .file(
            "wf.yaml",
            "jobs:\n  a:\n    neeeds: []\n    steps: [{ run: x }]\n",
        )
        .args(["validate", "--quiet", "wf.yaml"])
        .fails(2);
    assert_diag(
        &output,
        "wf.yaml:3:5",
        "unknown key `neeeds`",
        Some("did you mean `needs`?"),
    );
}

#[test]
fn validate_does_not_create_the_environment() {
    // Checking files is read-only: no state directory appears.
    let output = Coreflow::new()
        .file("wf.yaml", HELLO)
        .args(["validate", "wf.yaml"])
        .succeeds();
    assert!(!output.path().join(crate::support::ENV_DIR).exists());
    assert!(!output.path().join(".coreflow").exists());
}

/// A string parameter pasted into a shell script: the classic script injection.
const INJECTABLE: &str = "\
params:
  name: { type: string, default: world }
jobs:
  greet:
    steps:
      - run: echo \"Hello, ${{ params.name }}\"
";

#[test]
fn a_string_parameter_pasted_into_a_script_is_a_warning_with_its_position() {
    let output = Coreflow::new()
        .file("wf.yaml", INJECTABLE)
        .args(["validate", "wf.yaml"])
        .succeeds();
    assert_eq!(output.stdout(), "wf.yaml: ok (wf, 1 job)\n");
    insta::assert_snapshot!(output.stderr(), @r#"
    wf.yaml:6:27: warning: script injection: `params.name`, a string parameter, is pasted into the script
      |
    6 |       - run: echo "Hello, ${{ params.name }}"
      |                           ^^^^^^^^^^^^^^^^^^ whoever starts the run chooses this text
      = help: use "$COREFLOW_PARAM_NAME" instead, or the `quote` filter: `${{ params.name | quote }}`
    wf.yaml: 1 warning found
    "#);
}

#[test]
fn deny_warnings_turns_the_warnings_into_errors() {
    let output = Coreflow::new()
        .file("wf.yaml", INJECTABLE)
        .file("clean.yaml", HELLO)
        .args(["validate", "--deny-warnings", "wf.yaml", "clean.yaml"])
        .fails(2);
    assert_eq!(output.stdout(), "clean.yaml: ok (hello, 1 job)\n");
    assert_diag(
        &output,
        "wf.yaml:6:27",
        "script injection: `params.name`",
        Some(
            "use \"$COREFLOW_PARAM_NAME\" instead, or the `quote` filter: `${{ params.name | quote }}`",
        ),
    );
    assert_count(&output, "wf.yaml", 1);
}

#[test]
fn an_output_of_a_need_or_trigger_data_in_a_script_is_a_warning_suggesting_env() {
    let output = Coreflow::new()
        .file(
            "wf.yaml",
            "\
jobs:
  a:
    steps: [{ run: echo rows=3 >> \"$COREFLOW_OUTPUT\" }]
  b:
    needs: [a]
    steps:
      - run: |
          test ${{ needs.a.outputs.rows }} -gt 0
          echo ${{ trigger.file.path }}
",
        )
        .args(["validate", "--deny-warnings", "wf.yaml"])
        .fails(2);
    assert_diag(
        &output,
        "wf.yaml:8:16",
        "`needs.a.outputs.rows`, output of another job",
        Some(
            "set `env: { ROWS: \"${{ needs.a.outputs.rows }}\" }` on the step and use \"$ROWS\" instead, or the `quote` filter: `${{ needs.a.outputs.rows | quote }}`",
        ),
    );
    assert_diag(
        &output,
        "wf.yaml:9:16",
        "`trigger.file.path`, data of the trigger",
        Some(
            "set `env: { TRIGGER_FILE_PATH: \"${{ trigger.file.path }}\" }` on the step and use \"$TRIGGER_FILE_PATH\" instead, or the `quote` filter: `${{ trigger.file.path | quote }}`",
        ),
    );
    assert_count(&output, "wf.yaml", 2);
}

#[test]
fn a_python_script_is_warned_about_even_with_quote() {
    let output = Coreflow::new()
        .file(
            "wf.yaml",
            "\
params:
  name: {}
jobs:
  a:
    steps:
      - shell: python3
        run: print(${{ params.name | quote }})
",
        )
        .args(["validate", "--deny-warnings", "wf.yaml"])
        .fails(2);
    assert_diag(
        &output,
        "wf.yaml:7:20",
        "script injection: `params.name`",
        Some("read os.environ[\"COREFLOW_PARAM_NAME\"] instead"),
    );
}

#[test]
fn quoted_values_argv_items_typed_parameters_and_other_places_are_not_warned_about() {
    let output = Coreflow::new()
        .file(
            "wf.yaml",
            "\
params:
  name: { type: string, default: world }
  n: { type: int, default: 3 }
  ratio: { type: float, default: 0.5 }
  dry: { type: bool, default: false }
  src: { type: datablock, default: raw }
env: { WHO: '${{ params.name }}' }
jobs:
  a:
    steps: [{ run: echo rows=3 >> \"$COREFLOW_OUTPUT\" }]
  b:
    needs: [a]
    if: ${{ params.name != '' && needs.a.outputs.rows != '0' }}
    matrix: { os: [linux, mac] }
    metadata: { who: '${{ params.name }}' }
    steps:
      - run: echo ${{ params.name | quote }} ${{ needs.a.outputs.rows | quote }} ${{ (params.name ~ '!') | upper | quote }}
      - run: echo ${{ params.n }} ${{ params.ratio }} ${{ params.dry }} ${{ params.src }}
      - run: echo ${{ matrix.os }} ${{ run.id }} ${{ job.name }} ${{ env.WHO }} ${{ needs.a.result }}
      - command: [echo, '${{ params.name }}', '${{ needs.a.outputs.rows }}']
      - run: echo \"$ROWS\"
        env: { ROWS: '${{ needs.a.outputs.rows }}' }
",
        )
        .args(["validate", "--deny-warnings", "wf.yaml"])
        .succeeds();
    assert_eq!(output.stderr(), "");
    assert_eq!(output.stdout(), "wf.yaml: ok (wf, 2 jobs)\n");
}

#[test]
fn json_output_lists_warnings_like_errors() {
    let output = Coreflow::new()
        .file("wf.yaml", INJECTABLE)
        .args(["validate", "--json", "wf.yaml"])
        .succeeds();
    assert_eq!(output.stderr(), "", "--json puts everything on stdout");
    let verdict = &output.stdout_json()[0];
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["errors"], serde_json::json!([]));
    assert_eq!(
        verdict["warnings"],
        serde_json::json!([{
            "line": 6,
            "column": 27,
            "message": "script injection: `params.name`, a string parameter, is pasted into the script",
            "help": "use \"$COREFLOW_PARAM_NAME\" instead, or the `quote` filter: `${{ params.name | quote }}`",
        }])
    );
    let denied = Coreflow::new()
        .file("wf.yaml", INJECTABLE)
        .args(["validate", "--json", "--deny-warnings", "wf.yaml"])
        .fails(2);
    let verdict = &denied.stdout_json()[0];
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["errors"][0]["column"], 27);
    assert_eq!(verdict["warnings"], serde_json::json!([]));
}

#[test]
fn a_bad_datablock_name_is_an_error_with_its_position() {
    let output = invalid(
        "\
jobs:
  extract:
    steps: [{ run: touch orders.csv }]
    datablocks:
      raw/orders: { path: orders.csv }
  load:
    needs: [extract]
    inputs: { orders: 'extract.raw orders' }
    steps: [{ run: 'true' }]
",
    );
    assert_diag(
        &output,
        "wf.yaml:5:7",
        "invalid DataBlock name `raw/orders`: use letters, digits, `_`, `-` and `.`",
        None,
    );
    assert_diag(
        &output,
        "wf.yaml:8:32",
        "invalid DataBlock name `raw orders`",
        None,
    );
    assert_count(&output, "wf.yaml", 2);
}

#[test]
fn inputs_imply_needs_on_their_producer() {
    let ws = crate::engine_support::Workspace::with_workflow(
        "jobs:\n  make:\n    steps: [{ run: 'mkdir -p o && echo hi > o/x.txt' }]\n    datablocks: { raw: { path: o } }\n  use:\n    inputs: { data: make.raw }\n    steps: [{ run: 'cat \"$COREFLOW_INPUT_DATA/x.txt\" > got.txt' }]\n",
    );
    let graph = ws.coreflow().args(["graph", "wf.yaml"]).succeeds();
    assert!(graph.stdout().contains("make -> use"), "{graph}");
    ws.coreflow().args(["run", "wf.yaml"]).succeeds();
    assert_eq!(ws.read("got.txt"), "hi\n");
}
