//! `coreflow schedule preview FILE [--next N] [--from TIME]` (SPEC §4): the next fires of
//! each time-based trigger, in its zone and in UTC, with the daylight-saving changes on the
//! way (SPEC §7 "DST"; issue 5).

use serde_json::{Value, json};

use crate::support::Coreflow;

/// A workflow with `triggers` (YAML list items, indented by two) and one job.
fn workflow(triggers: &str) -> String {
    format!("name: nightly\ntriggers:\n{triggers}jobs:\n  a:\n    steps: [{{ run: 'true' }}]\n")
}

fn preview(triggers: &str, args: &[&str]) -> crate::support::Output {
    Coreflow::new()
        .file("wf.yaml", workflow(triggers))
        .args(["schedule", "preview", "wf.yaml"])
        .args(args)
        .succeeds()
}

/// The fires of the first previewed trigger in `--json`, as `local = utc [note kind]`.
fn fires(json: &Value) -> Vec<String> {
    json[0]["fires"]
        .as_array()
        .expect("fires is a list")
        .iter()
        .map(|fire| {
            let mut line = format!(
                "{} = {}",
                fire["at_local"].as_str().unwrap(),
                fire["at_utc"].as_str().unwrap()
            );
            if let Some(kind) = fire["note"]["kind"].as_str() {
                line = format!("{line} {kind}");
            }
            line
        })
        .collect()
}

#[test]
fn berlin_spring_forward_shows_the_shifted_fire() {
    let output = preview(
        "  - schedule: '30 2 * * *'\n    timezone: Europe/Berlin\n",
        &["--from", "2026-03-28T00:00:00Z", "--next", "3"],
    );
    assert_eq!(output.stderr(), "");
    insta::assert_snapshot!(output.stdout(), @r#"
    wf.yaml: the next 3 fires of each time-based trigger, from 2026-03-28T00:00:00Z

    triggers[0]: schedule "30 2 * * *" (Europe/Berlin, wall-clock times: the hour field names hours)
      2026-03-28 02:30:00 +01:00 CET   2026-03-28T01:30:00Z
      -- 2026-03-29T01:00:00Z: clocks go forward 1h, 02:00 CET -> 03:00 CEST; 02:00-03:00 does not exist
      2026-03-29 03:00:00 +02:00 CEST  2026-03-29T01:00:00Z  02:30 does not exist (clocks go forward): fires at 03:00 instead
      2026-03-30 02:30:00 +02:00 CEST  2026-03-30T00:30:00Z
    "#);
}

#[test]
fn berlin_fall_back_fires_a_named_hour_once_and_an_hourly_schedule_twice() {
    let output = preview(
        "  - schedule: '30 2 * * *'\n    timezone: Europe/Berlin\n  - schedule: '*/30 * * * *'\n    timezone: Europe/Berlin\n",
        &[
            "--from",
            "2026-10-25T00:00:00+02:00",
            "--next",
            "7",
            "--json",
        ],
    );
    let json = output.stdout_json();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(
        fires(&json)[..2],
        [
            "2026-10-25T02:30:00+02:00 = 2026-10-25T00:30:00Z repeated",
            "2026-10-26T02:30:00+01:00 = 2026-10-26T01:30:00Z",
        ]
    );
    let half_hourly = json!([json[1].clone()]);
    assert_eq!(
        fires(&half_hourly),
        [
            "2026-10-25T00:00:00+02:00 = 2026-10-24T22:00:00Z",
            "2026-10-25T00:30:00+02:00 = 2026-10-24T22:30:00Z",
            "2026-10-25T01:00:00+02:00 = 2026-10-24T23:00:00Z",
            "2026-10-25T01:30:00+02:00 = 2026-10-24T23:30:00Z",
            "2026-10-25T02:00:00+02:00 = 2026-10-25T00:00:00Z repeated",
            "2026-10-25T02:30:00+02:00 = 2026-10-25T00:30:00Z repeated",
            "2026-10-25T02:00:00+01:00 = 2026-10-25T01:00:00Z repeated_second_pass",
        ]
    );
    assert_eq!(
        json[1]["transitions"],
        json!([{
            "at_utc": "2026-10-25T01:00:00Z",
            "offset_before": "+02:00",
            "offset_after": "+01:00",
            "wall_before": "2026-10-25T03:00:00",
            "wall_after": "2026-10-25T02:00:00",
        }])
    );
}

#[test]
fn new_york_json_shape() {
    let output = preview(
        "  - schedule: '*/15 1-3 * * *'\n    timezone: America/New_York\n",
        &["--from", "2026-03-08T06:40:00Z", "--next", "2", "--json"],
    );
    assert_eq!(
        output.stdout_json(),
        json!([{
            "trigger": 0,
            "kind": "schedule",
            "expression": "*/15 1-3 * * *",
            "timezone": "America/New_York",
            "fires": [
                { "at_utc": "2026-03-08T06:45:00Z", "at_local": "2026-03-08T01:45:00-05:00" },
                {
                    "at_utc": "2026-03-08T07:00:00Z",
                    "at_local": "2026-03-08T03:00:00-04:00",
                    "note": {
                        "kind": "skipped_shifted",
                        "wanted": "2026-03-08T02:00:00",
                        "skipped": 4,
                        "message": "02:00 and 3 more wall times do not exist (clocks go forward): one fire at 03:00 instead",
                    },
                },
            ],
            "transitions": [{
                "at_utc": "2026-03-08T07:00:00Z",
                "offset_before": "-05:00",
                "offset_after": "-04:00",
                "wall_before": "2026-03-08T02:00:00",
                "wall_after": "2026-03-08T03:00:00",
            }],
        }])
    );
}

#[test]
fn new_york_fall_back_repeats_one_o_clock() {
    let output = preview(
        "  - schedule: '30 1 * * *'\n    timezone: America/New_York\n",
        &["--from", "2026-11-01", "--next", "2"],
    );
    let text = output.stdout();
    assert!(
        text.contains("2026-11-01 01:30:00 -04:00 EDT  2026-11-01T05:30:00Z  01:30 occurs twice (clocks go back): fires at the first only"),
        "{output}"
    );
    assert!(
        text.contains("-- 2026-11-01T06:00:00Z: clocks go back 1h, 02:00 EDT -> 01:00 EST; 01:00-02:00 happens twice"),
        "{output}"
    );
    assert!(
        text.contains("2026-11-02 01:30:00 -05:00 EST  2026-11-02T06:30:00Z\n"),
        "{output}"
    );
}

#[test]
fn every_and_at_and_other_kinds() {
    let output = preview(
        "  - file: { path: 'in/*.csv' }\n  - every: 90m\n  - at: '2026-12-24T18:00:00+01:00'\n  - datablock: raw\n",
        &["--from", "2026-12-24T15:00:00Z", "--next", "2", "--json"],
    );
    let json = output.stdout_json();
    let kinds: Vec<_> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["trigger"].as_u64().unwrap(), t["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [(1, "every"), (2, "at")],
        "file and datablock are not time-based"
    );
    assert_eq!(json[0]["expression"], "90m");
    assert_eq!(json[0]["timezone"], Value::Null);
    assert_eq!(
        fires(&json),
        [
            "2026-12-24T16:30:00+00:00 = 2026-12-24T16:30:00Z",
            "2026-12-24T18:00:00+00:00 = 2026-12-24T18:00:00Z",
        ]
    );
    assert_eq!(
        json[1]["fires"],
        json!([{ "at_utc": "2026-12-24T17:00:00Z", "at_local": "2026-12-24T18:00:00+01:00" }]),
        "an `at` fires once, shown with its written offset"
    );
}

#[test]
fn from_includes_its_own_instant_and_a_date_is_midnight_utc() {
    let triggers = "  - schedule: '0 0 * * *'\n";
    let by_date = preview(triggers, &["--from", "2026-05-01", "--next", "1", "--json"]);
    let by_instant = preview(
        triggers,
        &["--from", "2026-05-01T00:00:00Z", "--next", "1", "--json"],
    );
    assert_eq!(by_date.stdout(), by_instant.stdout());
    assert_eq!(
        fires(&by_date.stdout_json()),
        ["2026-05-01T00:00:00+00:00 = 2026-05-01T00:00:00Z"]
    );
    assert_eq!(by_date.stdout_json()[0]["timezone"], "UTC");
}

#[test]
fn defaults_to_five_fires_from_now() {
    let output = preview("  - schedule: '* * * * *'\n", &["--json"]);
    let json = output.stdout_json();
    let fires = json[0]["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 5);
    let text = preview("  - schedule: '* * * * *'\n", &[]);
    assert_eq!(
        text.stdout()
            .lines()
            .filter(|l| l.starts_with("  20"))
            .count(),
        5
    );
}

#[test]
fn no_time_based_triggers() {
    let output = preview("  - datablock: raw\n", &[]);
    assert_eq!(
        output.stdout(),
        "wf.yaml: no time-based triggers (schedule, every, at)\n"
    );
    let json = preview("  - datablock: raw\n", &["--json"]);
    assert_eq!(json.stdout_json(), json!([]));
}

#[test]
fn an_invalid_workflow_exits_2_with_its_diagnostics() {
    let output = Coreflow::new()
        .file(
            "wf.yaml",
            workflow("  - schedule: '30 2 * * *'\n    timezone: Europe/Berln\n"),
        )
        .args(["schedule", "preview", "wf.yaml"])
        .fails(2);
    assert_eq!(output.stdout(), "");
    assert!(
        output.stderr().contains("unknown time zone `Europe/Berln`"),
        "{output}"
    );
    assert!(output.stderr().contains("wf.yaml:4:15"), "{output}");
    assert!(
        output.stderr().contains("did you mean `Europe/Berlin`?"),
        "{output}"
    );
    Coreflow::new()
        .args(["schedule", "preview", "missing.yaml"])
        .fails(2);
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--from", "yesterday"][..],
        &["--from", "2026-13-01"],
        &["--next", "0"],
        &["--next", "many"],
    ] {
        let output = Coreflow::new()
            .file("wf.yaml", workflow("  - every: 1h\n"))
            .args(["schedule", "preview", "wf.yaml"])
            .args(args)
            .fails(2);
        assert!(output.stderr().contains("error:"), "{output}");
    }
    let output = Coreflow::new().args(["schedule"]).fails(2);
    assert!(output.stderr().contains("preview"), "{output}");
}

#[test]
fn preview_help() {
    let output = Coreflow::new()
        .args(["schedule", "preview", "--help"])
        .succeeds();
    insta::assert_snapshot!(output.stdout_redacted(), @"
    Show when a workflow's schedule, every and at triggers fire next, in their zone and UTC

    Usage: coreflow schedule preview [OPTIONS] <FILE>

    Arguments:
      <FILE>  The workflow file

    Options:
          --env <DIR_OR_URL>     The environment: a state directory (default ./.coreflow) or a postgres:// URL [env: COREFLOW_ENV]
      -n, --next <N>             How many fires to show for each trigger [default: 5]
          --blocks <DIR_OR_URL>  Where DataBlock content lives: a folder (default <env>/blocks; one every host reaches for a PostgreSQL environment) or an S3-compatible store, s3://BUCKET[/PREFIX] [env: COREFLOW_BLOCKS]
          --from <TIME>          Start here instead of now: an RFC 3339 instant, or a date YYYY-MM-DD (midnight UTC)
          --json                 Print machine-readable JSON
      -q, --quiet                Print less
      -v, --verbose              Print more
          --color <WHEN>         When to use colors: auto, always, never (`auto` honours NO_COLOR) [default: auto]
      -h, --help                 Print help
      -V, --version              Print version
    ");
}

/// The local dates (with weekdays) of the first trigger's fires, from `--json`.
fn fire_days(triggers: &str, from: &str, next: &str) -> Vec<String> {
    let json = preview(triggers, &["--from", from, "--next", next, "--json"]).stdout_json();
    json[0]["fires"]
        .as_array()
        .expect("fires is a list")
        .iter()
        .map(|fire| {
            let local =
                chrono::DateTime::parse_from_rfc3339(fire["at_local"].as_str().unwrap()).unwrap();
            local.format("%Y-%m-%d %a %H:%M").to_string()
        })
        .collect()
}

#[test]
fn both_day_fields_restricted_means_either_matches_with_a_note() {
    let output = preview(
        "  - schedule: '0 0 1-7 * MON'\n",
        &["--from", "2026-06-01", "--next", "10"],
    );
    // Days 1–7 of June 2026, and every Monday (the 1st and 8th…), as cron(8) reads it.
    insta::assert_snapshot!(output.stdout(), @r#"
    wf.yaml: the next 10 fires of each time-based trigger, from 2026-06-01T00:00:00Z

    triggers[0]: schedule "0 0 1-7 * MON" (UTC, wall-clock times: the hour field names hours)
      note: day-of-month and day-of-week are both restricted: a day matches if either matches, as in cron(8)
      2026-06-01 00:00:00 +00:00 UTC  2026-06-01T00:00:00Z
      2026-06-02 00:00:00 +00:00 UTC  2026-06-02T00:00:00Z
      2026-06-03 00:00:00 +00:00 UTC  2026-06-03T00:00:00Z
      2026-06-04 00:00:00 +00:00 UTC  2026-06-04T00:00:00Z
      2026-06-05 00:00:00 +00:00 UTC  2026-06-05T00:00:00Z
      2026-06-06 00:00:00 +00:00 UTC  2026-06-06T00:00:00Z
      2026-06-07 00:00:00 +00:00 UTC  2026-06-07T00:00:00Z
      2026-06-08 00:00:00 +00:00 UTC  2026-06-08T00:00:00Z
      2026-06-15 00:00:00 +00:00 UTC  2026-06-15T00:00:00Z
      2026-06-22 00:00:00 +00:00 UTC  2026-06-22T00:00:00Z
    "#);
    assert_eq!(
        fire_days("  - schedule: '0 12 1,15 * FRI'\n", "2026-05-01", "8"),
        [
            "2026-05-01 Fri 12:00",
            "2026-05-08 Fri 12:00",
            "2026-05-15 Fri 12:00",
            "2026-05-22 Fri 12:00",
            "2026-05-29 Fri 12:00",
            "2026-06-01 Mon 12:00",
            "2026-06-05 Fri 12:00",
            "2026-06-12 Fri 12:00",
        ]
    );
    // One `*` day field: no note, and only the other field counts.
    for triggers in [
        "  - schedule: '0 0 * * MON'\n",
        "  - schedule: '0 0 1-7 * *'\n",
    ] {
        let text = preview(triggers, &["--from", "2026-06-01", "--next", "2"]);
        assert!(!text.stdout().contains("note:"), "{text}");
    }
}

#[test]
fn last_day_nearest_weekday_and_nth_weekday() {
    assert_eq!(
        fire_days("  - schedule: '0 0 L * *'\n", "2026-01-01", "4"),
        [
            "2026-01-31 Sat 00:00",
            "2026-02-28 Sat 00:00",
            "2026-03-31 Tue 00:00",
            "2026-04-30 Thu 00:00",
        ]
    );
    // The 15th, or the weekday nearest it: Sunday 15 Feb moves to Monday the 16th, Saturday
    // 15 Aug to Friday the 14th.
    assert_eq!(
        fire_days("  - schedule: '0 0 15W * *'\n", "2026-01-01", "8"),
        [
            "2026-01-15 Thu 00:00",
            "2026-02-16 Mon 00:00",
            "2026-03-16 Mon 00:00",
            "2026-04-15 Wed 00:00",
            "2026-05-15 Fri 00:00",
            "2026-06-15 Mon 00:00",
            "2026-07-15 Wed 00:00",
            "2026-08-14 Fri 00:00",
        ]
    );
    assert_eq!(
        fire_days("  - schedule: '0 0 * * 1#2'\n", "2026-01-01", "3"),
        [
            "2026-01-12 Mon 00:00",
            "2026-02-09 Mon 00:00",
            "2026-03-09 Mon 00:00",
        ]
    );
}

#[test]
fn macros() {
    let from = "2026-05-17T10:30:00Z"; // a Sunday
    for (expr, expected) in [
        ("@yearly", ["2027-01-01 Fri 00:00", "2028-01-01 Sat 00:00"]),
        (
            "@annually",
            ["2027-01-01 Fri 00:00", "2028-01-01 Sat 00:00"],
        ),
        ("@monthly", ["2026-06-01 Mon 00:00", "2026-07-01 Wed 00:00"]),
        ("@weekly", ["2026-05-24 Sun 00:00", "2026-05-31 Sun 00:00"]),
        ("@daily", ["2026-05-18 Mon 00:00", "2026-05-19 Tue 00:00"]),
        (
            "@midnight",
            ["2026-05-18 Mon 00:00", "2026-05-19 Tue 00:00"],
        ),
        ("@hourly", ["2026-05-17 Sun 11:00", "2026-05-17 Sun 12:00"]),
    ] {
        assert_eq!(
            fire_days(&format!("  - schedule: '{expr}'\n"), from, "2"),
            expected,
            "{expr}"
        );
    }
}

#[test]
fn unsupported_schedules_are_validate_errors_that_say_what_is_supported() {
    let output = Coreflow::new()
        .file(
            "wf.yaml",
            workflow(
                "  - schedule: '@reboot'\n  - schedule: '@every 5m'\n  - schedule: '0 0 * * 8'\n",
            ),
        )
        .args(["validate", "wf.yaml"])
        .fails(2);
    let stderr = output.stderr();
    let macros = "the macros are @yearly (or @annually), @monthly, @weekly, @daily (or @midnight) \
                  and @hourly, or write 5 fields (minute hour day-of-month month day-of-week) or 6 \
                  (seconds first)";
    for expected in [
        format!(
            "wf.yaml:3:15: error: invalid cron expression `@reboot`: `@reboot` is not supported: \
             a schedule names times of day, and the daemon has no boot event; {macros}\n"
        ),
        format!(
            "wf.yaml:4:15: error: invalid cron expression `@every 5m`: `@every` is not cron: use \
             a trigger `every: 5m` instead of `schedule:`; {macros}\n"
        ),
        "wf.yaml:5:15: error: invalid cron expression `0 0 * * 8`: day-of-week `8` is out of \
         range; day-of-week takes 0-7 (0 and 7 are Sunday) or SUN-SAT, and d#n (1#2: the second \
         Monday), with `*`, ranges (MON-FRI), steps (1-5/2) and lists (SAT,SUN)\n"
            .to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{expected}\n{output}");
    }
    assert!(stderr.ends_with("wf.yaml: 3 errors found\n"), "{output}");
    // `schedule preview` refuses the file the same way.
    Coreflow::new()
        .file("wf.yaml", workflow("  - schedule: '@reboot'\n"))
        .args(["schedule", "preview", "wf.yaml"])
        .fails(2);
}
