//! `coreflow schedule preview FILE [--next N] [--from TIME]`: when the time-based triggers of
//! a workflow (schedule, every, at) fire next, in their zone and in UTC, with the
//! daylight-saving changes on the way and the fires they skip, move or repeat — so an
//! operator can see what the daemon will do before trusting it.
//!
//! The fires come from [`crate::triggers`], the same code the daemon uses; this module only
//! chooses the starting instant and renders them.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, SecondsFormat, SubsecRound, TimeDelta, Utc};
use chrono_tz::{OffsetName, Tz};
use serde::Serialize;

use crate::cli::args::{GlobalArgs, PreviewArgs, ScheduleArgs, ScheduleCommand};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::spec::load;
use crate::spec::model::Workflow;
use crate::triggers::{DstNote, Fire, TimeTrigger, Transition, transitions_between};

pub(super) fn run(global: &GlobalArgs, args: &ScheduleArgs) -> Result<(), Error> {
    match &args.command {
        ScheduleCommand::Preview(preview) => run_preview(global, preview, &SystemClock),
    }
}

fn run_preview(global: &GlobalArgs, args: &PreviewArgs, clock: &dyn Clock) -> Result<(), Error> {
    let loaded = load(&args.file).map_err(|e| Error::Invalid(Box::new(e)))?;
    // Whole seconds: an `every` grid anchored at `now` should not show nanoseconds.
    let from = args.from.unwrap_or_else(|| clock.now().trunc_subsecs(0));
    let count = usize::try_from(args.next).expect("--next fits in memory's index type");
    let previews = preview(&loaded.workflow, from, count)?;
    if global.json {
        let json = serde_json::to_string_pretty(&to_json(&previews))
            .expect("the preview serialises to JSON");
        super::output::print(&format!("{json}\n"))
    } else {
        super::output::print(&render(&loaded.file, from, count, &previews))
    }
}

/// One time-based trigger and what it does from the starting instant on.
#[derive(Debug)]
struct Preview {
    /// Its position in `triggers`, from 0.
    index: usize,
    trigger: TimeTrigger,
    /// `schedule`, `every` or `at`.
    kind: &'static str,
    /// As written.
    expression: String,
    fires: Vec<Fire>,
    /// Offset changes of the schedule's zone from the start to the last fire.
    transitions: Vec<Transition>,
}

/// Computes the first `count` fires at or after `from` of every time-based trigger.
fn preview(wf: &Workflow, from: DateTime<Utc>, count: usize) -> Result<Vec<Preview>, Error> {
    // "From" includes its own instant; the triggers answer "strictly after".
    let after = from - TimeDelta::nanoseconds(1);
    let mut previews = Vec::new();
    for (index, spec) in wf.triggers.iter().enumerate() {
        // An `every` grid starts where the daemon first sees the trigger: here, `from`.
        let trigger = TimeTrigger::from_spec(spec, from)
            .map_err(|why| Error::Usage(format!("trigger {index}: {why}")))?;
        let Some(trigger) = trigger else { continue };
        let (kind, expression) = match &trigger {
            TimeTrigger::Cron(cron) => ("schedule", cron.expression().to_owned()),
            TimeTrigger::Every(_) => (
                "every",
                spec.every.as_ref().map_or_else(String::new, written),
            ),
            TimeTrigger::At(_) => ("at", spec.at.clone().unwrap_or_default()),
        };
        let fires = trigger.next_fires(after, count);
        let transitions = match (&trigger, fires.last()) {
            (TimeTrigger::Cron(cron), Some(last)) => {
                transitions_between(cron.zone(), after, last.at)
            }
            _ => Vec::new(),
        };
        previews.push(Preview {
            index,
            trigger,
            kind,
            expression,
            fires,
            transitions,
        });
    }
    Ok(previews)
}

/// A duration as the file writes it (`90m` stays `90m`). The model keeps that text only in
/// its serialised form.
fn written(duration: &crate::spec::model::DurationSpec) -> String {
    serde_json::to_value(duration)
        .ok()
        .and_then(|value| value.get("text")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| duration_text(TimeDelta::from_std(duration.get()).unwrap_or_default()))
}

// ---------------------------------------------------------------------------------------
// Text

/// The text preview: a block per trigger, a line per fire, and a line for each change of
/// the zone's offset where it happens between two fires.
fn render(file: &str, from: DateTime<Utc>, count: usize, previews: &[Preview]) -> String {
    let mut out = String::new();
    if previews.is_empty() {
        let _ = writeln!(out, "{file}: no time-based triggers (schedule, every, at)");
        return out;
    }
    let _ = writeln!(
        out,
        "{file}: the next {count} fire{} of each time-based trigger, from {}",
        if count == 1 { "" } else { "s" },
        utc_text(from)
    );
    for preview in previews {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "triggers[{}]: {} {} ({})",
            preview.index,
            preview.kind,
            quote(&preview.expression),
            describe(&preview.trigger, from)
        );
        if let TimeTrigger::Cron(cron) = &preview.trigger
            && cron.days_either()
        {
            let _ = writeln!(out, "  note: {DAYS_EITHER}");
        }
        if preview.fires.is_empty() {
            let _ = writeln!(out, "  no fires from {}", utc_text(from));
            continue;
        }
        let zone = match &preview.trigger {
            TimeTrigger::Cron(cron) => Some(cron.zone()),
            _ => None,
        };
        let rows: Vec<[String; 3]> = preview
            .fires
            .iter()
            .map(|fire| {
                [
                    local_text(fire, zone),
                    utc_text(fire.at),
                    note_text(fire, &preview.trigger).unwrap_or_default(),
                ]
            })
            .collect();
        let local_width = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
        let utc_width = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
        let mut transitions = preview.transitions.iter().peekable();
        for (fire, [local, utc, note]) in preview.fires.iter().zip(rows) {
            while let Some(change) = transitions.next_if(|t| t.at <= fire.at) {
                let _ = writeln!(out, "  -- {}", transition_text(change, zone));
            }
            let line = format!("  {local:<local_width$}  {utc:<utc_width$}  {note}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

/// Said under a schedule whose two day fields are restricted (`0 0 1-7 * MON`).
const DAYS_EITHER: &str = "day-of-month and day-of-week are both restricted: a day matches \
                           if either matches, as in cron(8)";

/// What kind of time the trigger follows, for its header.
fn describe(trigger: &TimeTrigger, from: DateTime<Utc>) -> String {
    match trigger {
        TimeTrigger::Cron(cron) if cron.follows_real_time() => {
            format!("{}, real time: the hour field is `*`", cron.zone().name())
        }
        TimeTrigger::Cron(cron) => format!(
            "{}, wall-clock times: the hour field names hours",
            cron.zone().name()
        ),
        TimeTrigger::Every(_) => format!(
            "real time from {}; the daemon counts from its first sighting of the trigger",
            utc_text(from)
        ),
        TimeTrigger::At(_) => "once".to_owned(),
    }
}

fn quote(expression: &str) -> String {
    format!("\"{expression}\"")
}

/// `2026-03-29 03:00:00 +02:00 CEST` in the trigger's zone (or with `at`'s written offset).
fn local_text(fire: &Fire, zone: Option<Tz>) -> String {
    let local = fire.local.format("%Y-%m-%d %H:%M:%S%.f %:z").to_string();
    match zone.and_then(|zone| abbreviation(zone, fire.at)) {
        Some(name) => format!("{local} {name}"),
        None => local,
    }
}

/// The zone's abbreviation at an instant (`CEST`), unless it only repeats the offset (`+03`).
fn abbreviation(zone: Tz, at: DateTime<Utc>) -> Option<String> {
    let local = at.with_timezone(&zone);
    let name = local.offset().abbreviation()?;
    let numeric = name.starts_with(['+', '-']);
    (!numeric).then(|| name.to_owned())
}

fn utc_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `02:30` or `02:30:15`.
fn wall_text(wall: chrono::NaiveDateTime) -> String {
    if chrono::Timelike::second(&wall) == 0 {
        wall.format("%H:%M").to_string()
    } else {
        wall.format("%H:%M:%S").to_string()
    }
}

fn note_text(fire: &Fire, trigger: &TimeTrigger) -> Option<String> {
    let real_time = matches!(trigger, TimeTrigger::Cron(cron) if cron.follows_real_time());
    let wall = fire.local.naive_local();
    Some(match fire.note? {
        DstNote::SkippedShifted { wanted, skipped: 1 } => format!(
            "{} does not exist (clocks go forward): fires at {} instead",
            wall_text(wanted),
            wall_text(wall)
        ),
        DstNote::SkippedShifted { wanted, skipped } => format!(
            "{} and {} more wall times do not exist (clocks go forward): one fire at {} instead",
            wall_text(wanted),
            skipped - 1,
            wall_text(wall)
        ),
        DstNote::Repeated if real_time => format!(
            "{} occurs twice (clocks go back): first pass",
            wall_text(wall)
        ),
        DstNote::Repeated => format!(
            "{} occurs twice (clocks go back): fires at the first only",
            wall_text(wall)
        ),
        DstNote::RepeatedSecondPass => format!(
            "{} occurs twice (clocks go back): second pass",
            wall_text(wall)
        ),
    })
}

fn transition_text(change: &Transition, zone: Option<Tz>) -> String {
    let name = |offset: FixedOffset, at: DateTime<Utc>| -> String {
        zone.and_then(|zone| abbreviation(zone, at))
            .unwrap_or_else(|| offset.to_string())
    };
    let before = name(change.before, change.at - TimeDelta::seconds(1));
    let after = name(change.after, change.at);
    let (from, to) = (change.wall_before(), change.wall_after());
    // Wall times on both sides of the change; with their dates when it crosses midnight.
    let (from_text, to_text) = if from.date() == to.date() {
        (wall_text(from), wall_text(to))
    } else {
        (
            format!("{} {}", from.date(), wall_text(from)),
            format!("{} {}", to.date(), wall_text(to)),
        )
    };
    let (direction, range, fate) = if change.is_forward() {
        (
            "forward",
            format!("{from_text}-{to_text}"),
            "does not exist",
        )
    } else {
        ("back", format!("{to_text}-{from_text}"), "happens twice")
    };
    format!(
        "{}: clocks go {direction} {}, {from_text} {before} -> {to_text} {after}; {range} {fate}",
        utc_text(change.at),
        duration_text(change.shift().abs()),
    )
}

/// `1h`, `30m`, `1h30m`, `24h`, `3m4s`.
fn duration_text(delta: TimeDelta) -> String {
    let (hours, minutes, seconds) = (
        delta.num_hours(),
        delta.num_minutes() % 60,
        delta.num_seconds() % 60,
    );
    let mut text = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if value != 0 {
            let _ = write!(text, "{value}{unit}");
        }
    }
    if text.is_empty() {
        text.push_str("0s");
    }
    text
}

// ---------------------------------------------------------------------------------------
// JSON

#[derive(Serialize)]
struct JsonPreview {
    trigger: usize,
    kind: &'static str,
    expression: String,
    /// The schedule's IANA zone; `null` for `every` and `at`, which have none.
    timezone: Option<String>,
    fires: Vec<JsonFire>,
    transitions: Vec<JsonTransition>,
}

#[derive(Serialize)]
struct JsonFire {
    at_utc: String,
    at_local: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<JsonNote>,
}

#[derive(Serialize)]
struct JsonNote {
    /// `skipped_shifted`, `repeated` or `repeated_second_pass`.
    kind: &'static str,
    /// For `skipped_shifted`: the first wall time that did not exist, and how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    wanted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u32>,
    message: String,
}

#[derive(Serialize)]
struct JsonTransition {
    at_utc: String,
    offset_before: String,
    offset_after: String,
    /// Wall clock just before the change, read with the old offset, and just after.
    wall_before: String,
    wall_after: String,
}

fn to_json(previews: &[Preview]) -> Vec<JsonPreview> {
    let local = |fire: &Fire| fire.local.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    let wall = |wall: chrono::NaiveDateTime| wall.format("%Y-%m-%dT%H:%M:%S").to_string();
    previews
        .iter()
        .map(|p| JsonPreview {
            trigger: p.index,
            kind: p.kind,
            expression: p.expression.clone(),
            timezone: match &p.trigger {
                TimeTrigger::Cron(cron) => Some(cron.zone().name().to_owned()),
                _ => None,
            },
            fires: p
                .fires
                .iter()
                .map(|fire| JsonFire {
                    at_utc: utc_text(fire.at),
                    at_local: local(fire),
                    note: fire.note.map(|note| {
                        let (wanted, skipped) = match note {
                            DstNote::SkippedShifted { wanted, skipped } => {
                                (Some(wall(wanted)), Some(skipped))
                            }
                            DstNote::Repeated | DstNote::RepeatedSecondPass => (None, None),
                        };
                        JsonNote {
                            kind: note.kind(),
                            wanted,
                            skipped,
                            message: note_text(fire, &p.trigger).unwrap_or_default(),
                        }
                    }),
                })
                .collect(),
            transitions: p
                .transitions
                .iter()
                .map(|t| JsonTransition {
                    at_utc: utc_text(t.at),
                    offset_before: t.before.to_string(),
                    offset_after: t.after.to_string(),
                    wall_before: wall(t.wall_before()),
                    wall_after: wall(t.wall_after()),
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::clock::ManualClock;
    use crate::spec::parse_str;

    const YAML: &str = "triggers:
  - schedule: '30 2 * * *'
    timezone: Europe/Berlin
  - file: { path: 'in/*.csv' }
  - schedule: '0 * * * *'
    timezone: Europe/Berlin
  - every: 1h30m
  - at: '2026-03-29T03:30:00+02:00'
jobs:
  a:
    steps: [{ run: x }]
";

    #[test]
    fn from_accepts_rfc3339_and_dates() {
        let midnight = Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap();
        assert_eq!(crate::cli::args::parse_from("2026-03-28"), Ok(midnight));
        assert_eq!(
            crate::cli::args::parse_from("2026-03-28T00:00:00Z"),
            Ok(midnight)
        );
        assert_eq!(
            crate::cli::args::parse_from("2026-03-28T01:00:00+01:00"),
            Ok(midnight)
        );
        assert!(crate::cli::args::parse_from("28.03.2026").is_err());
        assert!(crate::cli::args::parse_from("2026-03-28 00:00").is_err());
    }

    #[test]
    fn a_change_across_midnight_shows_dates() {
        // Samoa skipped 2011-12-30 entirely.
        let zone: Tz = "Pacific/Apia".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2011, 12, 29, 0, 0, 0).unwrap();
        let change = transitions_between(zone, from, from + TimeDelta::days(3))[0];
        assert_eq!(
            transition_text(&change, Some(zone)),
            "2011-12-30T10:00:00Z: clocks go forward 24h, 2011-12-30 00:00 -10:00 -> \
             2011-12-31 00:00 +14:00; 2011-12-30 00:00-2011-12-31 00:00 does not exist"
        );
        assert_eq!(duration_text(TimeDelta::seconds(184)), "3m4s");
    }

    #[test]
    fn previews_on_a_manual_clock() {
        let wf = parse_str("wf.yaml", YAML).unwrap().workflow;
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap());
        let previews = preview(&wf, clock.now(), 3).unwrap();
        let indexes: Vec<_> = previews.iter().map(|p| p.index).collect();
        assert_eq!(indexes, [0, 2, 3, 4], "the file trigger is not time-based");
        let text = render("wf.yaml", clock.now(), 3, &previews);
        insta::assert_snapshot!(text, @r#"
        wf.yaml: the next 3 fires of each time-based trigger, from 2026-03-29T00:30:00Z

        triggers[0]: schedule "30 2 * * *" (Europe/Berlin, wall-clock times: the hour field names hours)
          -- 2026-03-29T01:00:00Z: clocks go forward 1h, 02:00 CET -> 03:00 CEST; 02:00-03:00 does not exist
          2026-03-29 03:00:00 +02:00 CEST  2026-03-29T01:00:00Z  02:30 does not exist (clocks go forward): fires at 03:00 instead
          2026-03-30 02:30:00 +02:00 CEST  2026-03-30T00:30:00Z
          2026-03-31 02:30:00 +02:00 CEST  2026-03-31T00:30:00Z

        triggers[2]: schedule "0 * * * *" (Europe/Berlin, real time: the hour field is `*`)
          -- 2026-03-29T01:00:00Z: clocks go forward 1h, 02:00 CET -> 03:00 CEST; 02:00-03:00 does not exist
          2026-03-29 03:00:00 +02:00 CEST  2026-03-29T01:00:00Z
          2026-03-29 04:00:00 +02:00 CEST  2026-03-29T02:00:00Z
          2026-03-29 05:00:00 +02:00 CEST  2026-03-29T03:00:00Z

        triggers[3]: every "1h30m" (real time from 2026-03-29T00:30:00Z; the daemon counts from its first sighting of the trigger)
          2026-03-29 02:00:00 +00:00  2026-03-29T02:00:00Z
          2026-03-29 03:30:00 +00:00  2026-03-29T03:30:00Z
          2026-03-29 05:00:00 +00:00  2026-03-29T05:00:00Z

        triggers[4]: at "2026-03-29T03:30:00+02:00" (once)
          2026-03-29 03:30:00 +02:00  2026-03-29T01:30:00Z
        "#);
        // Once the `at` instant has passed, it has nothing left to show.
        clock.advance(TimeDelta::hours(2));
        let later = preview(&wf, clock.now(), 1).unwrap();
        assert!(later[3].fires.is_empty());
        assert!(
            render("wf.yaml", clock.now(), 1, &later)
                .contains("no fires from 2026-03-29T02:30:00Z")
        );
    }
}
