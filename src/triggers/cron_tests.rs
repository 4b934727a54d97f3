//! Tests of [`CronSchedule`](super::CronSchedule) across the 2026 daylight-saving changes of
//! `Europe/Berlin` and `America/New_York` (issue 5), on a manual clock.
//!
//! Each case is checked three ways: the fires around the change against a list written by
//! hand; the fires of the three local days around it against a brute-force oracle that walks
//! every instant and applies SPEC §7's rule as written; and a daemon-like loop on a
//! [`ManualClock`] (jumping to each fire, and polling in uneven steps) that must see exactly
//! the same fires — none lost, none doubled.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::CronSchedule;
use crate::clock::{Clock, ManualClock};
use crate::triggers::fire::{DstNote, Fire};

const BERLIN: &str = "Europe/Berlin";
const NEW_YORK: &str = "America/New_York";

fn zone(name: &str) -> Tz {
    name.parse().unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The instant of local midnight starting `day` in `zone` (midnight exists in these zones).
fn local_midnight(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    zone.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

/// A fire as the hand-written lists show it: local time, offset, UTC time, note.
fn show(fire: &Fire) -> String {
    let note = match fire.note {
        None => String::new(),
        Some(DstNote::SkippedShifted { wanted, skipped }) => {
            format!(" skipped {} x{skipped}", wanted.format("%H:%M:%S"))
        }
        Some(DstNote::Repeated) => " repeated".to_owned(),
        Some(DstNote::RepeatedSecondPass) => " second-pass".to_owned(),
    };
    format!(
        "{} ({}){note}",
        fire.local.format("%m-%d %H:%M:%S%:z"),
        fire.at.format("%H:%MZ")
    )
}

/// The first instant whose wall time in `zone` is `hour` o'clock counted from `day`'s
/// midnight (hours past 24 run into the next days).
fn wall_hour(zone: Tz, day: NaiveDate, hour: u32) -> DateTime<Utc> {
    let wall = day.and_hms_opt(0, 0, 0).unwrap() + TimeDelta::hours(i64::from(hour));
    zone.from_local_datetime(&wall)
        .earliest()
        .expect("window edges avoid gaps")
        .with_timezone(&Utc)
}

/// The fires of `expr` in `zone` from wall time `from_hour` (included) to `to_hour`
/// (excluded) on `day`, shown.
fn around(
    expr: &str,
    zone_name: &str,
    day: NaiveDate,
    from_hour: u32,
    to_hour: u32,
) -> Vec<String> {
    let schedule = CronSchedule::from_spec(expr, Some(zone_name)).unwrap();
    let z = zone(zone_name);
    let start = wall_hour(z, day, from_hour);
    let end = wall_hour(z, day, to_hour);
    schedule
        .fires_between(start - TimeDelta::seconds(1), end - TimeDelta::seconds(1))
        .iter()
        .map(show)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The oracle: SPEC §7 applied to every instant, independent of the wall-time iteration.

/// Whether the naive wall time matches the expression's fields.
fn matches(schedule: &cron::Schedule, wall: NaiveDateTime) -> bool {
    schedule.includes(wall.and_utc())
}

/// Every fire in `[start, end)` by walking instants one `step` at a time (a minute for
/// 5-field expressions, a second with seconds): a real-time schedule fires at every instant
/// whose wall time matches; one that names hours fires at the first instant of each matching
/// wall time, and once at the end of a gap holding any matching wall time.
fn oracle(expr: &str, zone: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let schedule = crate::spec::cron::parse_schedule(expr).unwrap();
    let real_time = cron::TimeUnitSpec::is_all(schedule.hours());
    let step = if expr.split_whitespace().count() == 6 {
        TimeDelta::seconds(1)
    } else {
        TimeDelta::minutes(1)
    };
    let wall_at = |t: DateTime<Utc>| t.with_timezone(&zone).naive_local();
    let mut fires = Vec::new();
    let mut t = start;
    while t < end {
        let wall = wall_at(t);
        let mut fire = matches(&schedule, wall);
        if !real_time {
            // A wall time seen before (clocks fell back) was its first occurrence already.
            fire = fire && !(1..=120).any(|m| wall_at(t - TimeDelta::minutes(m)) == wall);
            // Clocks jumped forward just now: matching wall times in the gap fire here.
            let expected = wall_at(t - step) + step;
            let mut missing = expected;
            while missing < wall {
                fire |= matches(&schedule, missing);
                missing += step;
            }
        }
        if fire {
            fires.push(t);
        }
        t += step;
    }
    fires
}

/// The three local days around `day`, as `(after, until)` for `fires_between`.
fn three_days(zone: Tz, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = local_midnight(zone, day.pred_opt().unwrap());
    let end = local_midnight(zone, day.succ_opt().unwrap().succ_opt().unwrap());
    (start - TimeDelta::seconds(1), end - TimeDelta::seconds(1))
}

/// Checks the three days around `day` against the oracle and the manual-clock daemons, and
/// returns how many fires there were.
fn check_three_days(expr: &str, zone_name: &str, day: NaiveDate) -> usize {
    let z = zone(zone_name);
    let schedule = CronSchedule::from_spec(expr, Some(zone_name)).unwrap();
    let (after, until) = three_days(z, day);
    let fires = schedule.fires_between(after, until);
    let instants: Vec<_> = fires.iter().map(|f| f.at).collect();
    let expected = oracle(
        expr,
        z,
        after + TimeDelta::seconds(1),
        until + TimeDelta::seconds(1),
    );
    assert_eq!(instants, expected, "`{expr}` in {zone_name} around {day}");
    assert!(
        instants.windows(2).all(|w| w[0] < w[1]),
        "in order, no doubles"
    );
    for fire in &fires {
        assert_eq!(fire.local, fire.at.with_timezone(&z).fixed_offset());
    }
    assert_eq!(
        daemon_jumping(&schedule, after, until),
        fires,
        "`{expr}` jumping"
    );
    for step in [
        TimeDelta::seconds(59),
        TimeDelta::minutes(7),
        TimeDelta::minutes(61),
    ] {
        assert_eq!(
            daemon_polling(&schedule, after, until, step),
            fires,
            "`{expr}` polling {step}"
        );
    }
    fires.len()
}

/// A daemon that sets the clock to each next fire: what it fires.
fn daemon_jumping(schedule: &CronSchedule, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Fire> {
    let clock = ManualClock::new(start);
    let mut fired = Vec::new();
    while let Some(fire) = schedule.next_fire(clock.now()).filter(|f| f.at <= end) {
        clock.set(fire.at);
        fired.push(fire);
    }
    fired
}

/// A daemon that wakes every `step` and fires what fell due since its last look.
fn daemon_polling(
    schedule: &CronSchedule,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: TimeDelta,
) -> Vec<Fire> {
    let clock = ManualClock::new(start);
    let mut last_look = clock.now();
    let mut fired = Vec::new();
    while last_look < end {
        clock.advance(step);
        let now = clock.now().min(end);
        fired.extend(schedule.fires_between(last_look, now));
        last_look = now;
    }
    fired
}

// ---------------------------------------------------------------------------------------
// Europe/Berlin, spring forward: 2026-03-29 02:00 CET → 03:00 CEST (01:00 UTC).

#[test]
fn berlin_spring_named_hour_in_the_gap_fires_once_after_it() {
    let day = date(2026, 3, 29);
    assert_eq!(
        around("30 2 * * *", BERLIN, day.pred_opt().unwrap(), 0, 72),
        [
            "03-28 02:30:00+01:00 (01:30Z)",
            "03-29 03:00:00+02:00 (01:00Z) skipped 02:30:00 x1",
            "03-30 02:30:00+02:00 (00:30Z)",
        ]
    );
    assert_eq!(check_three_days("30 2 * * *", BERLIN, day), 3);
}

#[test]
fn berlin_spring_hour_range_folds_the_gap_into_one_fire() {
    let day = date(2026, 3, 29);
    assert_eq!(
        around("*/15 1-3 * * *", BERLIN, day, 0, 5),
        [
            "03-29 01:00:00+01:00 (00:00Z)",
            "03-29 01:15:00+01:00 (00:15Z)",
            "03-29 01:30:00+01:00 (00:30Z)",
            "03-29 01:45:00+01:00 (00:45Z)",
            "03-29 03:00:00+02:00 (01:00Z) skipped 02:00:00 x4",
            "03-29 03:15:00+02:00 (01:15Z)",
            "03-29 03:30:00+02:00 (01:30Z)",
            "03-29 03:45:00+02:00 (01:45Z)",
        ]
    );
    assert_eq!(check_three_days("*/15 1-3 * * *", BERLIN, day), 12 + 8 + 12);
}

#[test]
fn berlin_spring_every_hour_follows_real_time() {
    let day = date(2026, 3, 29);
    assert_eq!(
        around("0 * * * *", BERLIN, day, 0, 5),
        [
            "03-29 00:00:00+01:00 (23:00Z)",
            "03-29 01:00:00+01:00 (00:00Z)",
            "03-29 03:00:00+02:00 (01:00Z)",
            "03-29 04:00:00+02:00 (02:00Z)",
        ]
    );
    assert_eq!(check_three_days("0 * * * *", BERLIN, day), 24 + 23 + 24);
    assert_eq!(
        around("*/30 * * * *", BERLIN, day, 1, 4),
        [
            "03-29 01:00:00+01:00 (00:00Z)",
            "03-29 01:30:00+01:00 (00:30Z)",
            "03-29 03:00:00+02:00 (01:00Z)",
            "03-29 03:30:00+02:00 (01:30Z)",
        ]
    );
    assert_eq!(check_three_days("*/30 * * * *", BERLIN, day), 48 + 46 + 48);
}

#[test]
fn berlin_spring_with_seconds() {
    let day = date(2026, 3, 29);
    assert_eq!(
        around("15 30 2 * * *", BERLIN, day, 0, 24),
        ["03-29 03:00:00+02:00 (01:00Z) skipped 02:30:15 x1"]
    );
    assert_eq!(check_three_days("15 30 2 * * *", BERLIN, day), 3);
    assert_eq!(
        around("45 59 * * * *", BERLIN, day, 1, 4),
        [
            "03-29 01:59:45+01:00 (00:59Z)",
            "03-29 03:59:45+02:00 (01:59Z)",
        ]
    );
    assert_eq!(check_three_days("45 59 * * * *", BERLIN, day), 24 + 23 + 24);
}

// ---------------------------------------------------------------------------------------
// Europe/Berlin, fall back: 2026-10-25 03:00 CEST → 02:00 CET (01:00 UTC).

#[test]
fn berlin_fall_named_hour_fires_at_the_first_occurrence_only() {
    let day = date(2026, 10, 25);
    assert_eq!(
        around("30 2 * * *", BERLIN, day.pred_opt().unwrap(), 0, 72),
        [
            "10-24 02:30:00+02:00 (00:30Z)",
            "10-25 02:30:00+02:00 (00:30Z) repeated",
            "10-26 02:30:00+01:00 (01:30Z)",
        ]
    );
    assert_eq!(check_three_days("30 2 * * *", BERLIN, day), 3);
}

#[test]
fn berlin_fall_hour_range_does_not_repeat_the_hour() {
    let day = date(2026, 10, 25);
    assert_eq!(
        around("*/15 1-3 * * *", BERLIN, day, 0, 5),
        [
            "10-25 01:00:00+02:00 (23:00Z)",
            "10-25 01:15:00+02:00 (23:15Z)",
            "10-25 01:30:00+02:00 (23:30Z)",
            "10-25 01:45:00+02:00 (23:45Z)",
            "10-25 02:00:00+02:00 (00:00Z) repeated",
            "10-25 02:15:00+02:00 (00:15Z) repeated",
            "10-25 02:30:00+02:00 (00:30Z) repeated",
            "10-25 02:45:00+02:00 (00:45Z) repeated",
            "10-25 03:00:00+01:00 (02:00Z)",
            "10-25 03:15:00+01:00 (02:15Z)",
            "10-25 03:30:00+01:00 (02:30Z)",
            "10-25 03:45:00+01:00 (02:45Z)",
        ]
    );
    assert_eq!(check_three_days("*/15 1-3 * * *", BERLIN, day), 36);
}

#[test]
fn berlin_fall_every_hour_fires_in_both_passes_in_real_time_order() {
    let day = date(2026, 10, 25);
    assert_eq!(
        around("0 * * * *", BERLIN, day, 1, 4),
        [
            "10-25 01:00:00+02:00 (23:00Z)",
            "10-25 02:00:00+02:00 (00:00Z) repeated",
            "10-25 02:00:00+01:00 (01:00Z) second-pass",
            "10-25 03:00:00+01:00 (02:00Z)",
        ]
    );
    assert_eq!(check_three_days("0 * * * *", BERLIN, day), 24 + 25 + 24);
    assert_eq!(
        around("*/30 * * * *", BERLIN, day, 2, 4),
        [
            "10-25 02:00:00+02:00 (00:00Z) repeated",
            "10-25 02:30:00+02:00 (00:30Z) repeated",
            "10-25 02:00:00+01:00 (01:00Z) second-pass",
            "10-25 02:30:00+01:00 (01:30Z) second-pass",
            "10-25 03:00:00+01:00 (02:00Z)",
            "10-25 03:30:00+01:00 (02:30Z)",
        ]
    );
    assert_eq!(check_three_days("*/30 * * * *", BERLIN, day), 48 + 50 + 48);
}

#[test]
fn berlin_fall_with_seconds() {
    let day = date(2026, 10, 25);
    assert_eq!(
        around("15 30 2 * * *", BERLIN, day, 0, 24),
        ["10-25 02:30:15+02:00 (00:30Z) repeated"]
    );
    assert_eq!(check_three_days("15 30 2 * * *", BERLIN, day), 3);
    assert_eq!(
        around("45 59 * * * *", BERLIN, day, 2, 4),
        [
            "10-25 02:59:45+02:00 (00:59Z) repeated",
            "10-25 02:59:45+01:00 (01:59Z) second-pass",
            "10-25 03:59:45+01:00 (02:59Z)",
        ]
    );
    assert_eq!(check_three_days("45 59 * * * *", BERLIN, day), 24 + 25 + 24);
}

// ---------------------------------------------------------------------------------------
// America/New_York, spring forward: 2026-03-08 02:00 EST → 03:00 EDT (07:00 UTC).

#[test]
fn new_york_spring() {
    let day = date(2026, 3, 8);
    assert_eq!(
        around("30 2 * * *", NEW_YORK, day.pred_opt().unwrap(), 0, 72),
        [
            "03-07 02:30:00-05:00 (07:30Z)",
            "03-08 03:00:00-04:00 (07:00Z) skipped 02:30:00 x1",
            "03-09 02:30:00-04:00 (06:30Z)",
        ]
    );
    assert_eq!(check_three_days("30 2 * * *", NEW_YORK, day), 3);
    assert_eq!(
        around("*/15 1-3 * * *", NEW_YORK, day, 1, 4),
        [
            "03-08 01:00:00-05:00 (06:00Z)",
            "03-08 01:15:00-05:00 (06:15Z)",
            "03-08 01:30:00-05:00 (06:30Z)",
            "03-08 01:45:00-05:00 (06:45Z)",
            "03-08 03:00:00-04:00 (07:00Z) skipped 02:00:00 x4",
            "03-08 03:15:00-04:00 (07:15Z)",
            "03-08 03:30:00-04:00 (07:30Z)",
            "03-08 03:45:00-04:00 (07:45Z)",
        ]
    );
    assert_eq!(
        check_three_days("*/15 1-3 * * *", NEW_YORK, day),
        12 + 8 + 12
    );
    assert_eq!(
        around("0 * * * *", NEW_YORK, day, 1, 4),
        [
            "03-08 01:00:00-05:00 (06:00Z)",
            "03-08 03:00:00-04:00 (07:00Z)",
        ]
    );
    assert_eq!(check_three_days("0 * * * *", NEW_YORK, day), 24 + 23 + 24);
    assert_eq!(
        check_three_days("*/30 * * * *", NEW_YORK, day),
        48 + 46 + 48
    );
    assert_eq!(
        around("15 30 2 * * *", NEW_YORK, day, 0, 24),
        ["03-08 03:00:00-04:00 (07:00Z) skipped 02:30:15 x1"]
    );
    assert_eq!(check_three_days("15 30 2 * * *", NEW_YORK, day), 3);
    assert_eq!(
        check_three_days("45 59 * * * *", NEW_YORK, day),
        24 + 23 + 24
    );
}

// ---------------------------------------------------------------------------------------
// America/New_York, fall back: 2026-11-01 02:00 EDT → 01:00 EST (06:00 UTC).

#[test]
fn new_york_fall() {
    let day = date(2026, 11, 1);
    assert_eq!(
        around("30 1 * * *", NEW_YORK, day.pred_opt().unwrap(), 0, 72),
        [
            "10-31 01:30:00-04:00 (05:30Z)",
            "11-01 01:30:00-04:00 (05:30Z) repeated",
            "11-02 01:30:00-05:00 (06:30Z)",
        ]
    );
    assert_eq!(check_three_days("30 1 * * *", NEW_YORK, day), 3);
    // 02:30 is not repeated in New York: the repeated hour is 01:xx.
    assert_eq!(
        around("30 2 * * *", NEW_YORK, day, 0, 24),
        ["11-01 02:30:00-05:00 (07:30Z)"]
    );
    assert_eq!(
        around("*/15 1-3 * * *", NEW_YORK, day, 0, 4),
        [
            "11-01 01:00:00-04:00 (05:00Z) repeated",
            "11-01 01:15:00-04:00 (05:15Z) repeated",
            "11-01 01:30:00-04:00 (05:30Z) repeated",
            "11-01 01:45:00-04:00 (05:45Z) repeated",
            "11-01 02:00:00-05:00 (07:00Z)",
            "11-01 02:15:00-05:00 (07:15Z)",
            "11-01 02:30:00-05:00 (07:30Z)",
            "11-01 02:45:00-05:00 (07:45Z)",
            "11-01 03:00:00-05:00 (08:00Z)",
            "11-01 03:15:00-05:00 (08:15Z)",
            "11-01 03:30:00-05:00 (08:30Z)",
            "11-01 03:45:00-05:00 (08:45Z)",
        ]
    );
    assert_eq!(check_three_days("*/15 1-3 * * *", NEW_YORK, day), 36);
    assert_eq!(
        around("0 * * * *", NEW_YORK, day, 0, 3),
        [
            "11-01 00:00:00-04:00 (04:00Z)",
            "11-01 01:00:00-04:00 (05:00Z) repeated",
            "11-01 01:00:00-05:00 (06:00Z) second-pass",
            "11-01 02:00:00-05:00 (07:00Z)",
        ]
    );
    assert_eq!(check_three_days("0 * * * *", NEW_YORK, day), 24 + 25 + 24);
    assert_eq!(
        around("*/30 * * * *", NEW_YORK, day, 1, 2),
        [
            "11-01 01:00:00-04:00 (05:00Z) repeated",
            "11-01 01:30:00-04:00 (05:30Z) repeated",
            "11-01 01:00:00-05:00 (06:00Z) second-pass",
            "11-01 01:30:00-05:00 (06:30Z) second-pass",
        ]
    );
    assert_eq!(
        check_three_days("*/30 * * * *", NEW_YORK, day),
        48 + 50 + 48
    );
    assert_eq!(
        around("15 30 1 * * *", NEW_YORK, day, 0, 24),
        ["11-01 01:30:15-04:00 (05:30Z) repeated"]
    );
    assert_eq!(check_three_days("15 30 1 * * *", NEW_YORK, day), 3);
    assert_eq!(
        check_three_days("45 59 * * * *", NEW_YORK, day),
        24 + 25 + 24
    );
}

// ---------------------------------------------------------------------------------------
// Starting points inside the transitions, and other shapes.

#[test]
fn starting_inside_a_repeated_hour() {
    let schedule = CronSchedule::from_spec("*/30 * * * *", Some(BERLIN)).unwrap();
    let named = CronSchedule::from_spec("30 2 * * *", Some(BERLIN)).unwrap();
    let at = |h, m| Utc.with_ymd_and_hms(2026, 10, 25, h, m, 0).unwrap();
    // 02:40 CEST, first pass: next is 02:00 CET, the second pass, 20 minutes later.
    assert_eq!(
        show(&schedule.next_fire(at(0, 40)).unwrap()),
        "10-25 02:00:00+01:00 (01:00Z) second-pass"
    );
    // 02:10 CET, second pass: next is 02:30 CET, not the 02:30 CEST already past.
    assert_eq!(
        show(&schedule.next_fire(at(1, 10)).unwrap()),
        "10-25 02:30:00+01:00 (01:30Z) second-pass"
    );
    // The named 02:30 fired in the first pass: from inside either pass, next is tomorrow.
    for start in [at(0, 40), at(1, 10), at(1, 30)] {
        assert_eq!(
            show(&named.next_fire(start).unwrap()),
            "10-26 02:30:00+01:00 (01:30Z)"
        );
    }
    // Just before the first pass, it is today's.
    assert_eq!(named.next_fire(at(0, 29)).unwrap().at, at(0, 30));
}

#[test]
fn starting_at_the_gap() {
    let named = CronSchedule::from_spec("*/15 1-3 * * *", Some(BERLIN)).unwrap();
    let at = |h, m, s| Utc.with_ymd_and_hms(2026, 3, 29, h, m, s).unwrap();
    assert_eq!(named.next_fire(at(0, 59, 59)).unwrap().at, at(1, 0, 0));
    // The folded fire is behind once the clock reads 03:00 CEST.
    assert_eq!(named.next_fire(at(1, 0, 0)).unwrap().at, at(1, 15, 0));
}

#[test]
fn hours_other_than_the_changed_ones_are_untouched() {
    let day = date(2026, 3, 29);
    assert_eq!(check_three_days("0 4 * * *", BERLIN, day), 3);
    assert_eq!(check_three_days("0 2 * * 0", BERLIN, day), 1); // Sundays only: the 29th
    assert_eq!(check_three_days("* 2 * * *", BERLIN, day), 60 + 1 + 60);
    assert_eq!(
        around("* 2 * * *", BERLIN, day, 0, 24),
        ["03-29 03:00:00+02:00 (01:00Z) skipped 02:00:00 x60"]
    );
    assert_eq!(
        check_three_days("*/20 */2 * * *", BERLIN, date(2026, 10, 25)),
        108
    );
    assert_eq!(
        check_three_days("0 0-23 * * *", BERLIN, date(2026, 10, 25)),
        73
    );
    assert_eq!(check_three_days("@hourly", NEW_YORK, date(2026, 11, 1)), 73);
    assert_eq!(check_three_days("@daily", NEW_YORK, date(2026, 11, 1)), 3);
}

#[test]
fn other_zones_and_years_agree_with_the_oracle() {
    // Half-hour changes (Lord Howe), southern hemisphere (Santiago, Sydney), a change at
    // midnight (Havana), and 2027 to show nothing is tied to 2026's dates.
    for (zone_name, day) in [
        ("Australia/Lord_Howe", date(2026, 4, 5)),
        ("Australia/Lord_Howe", date(2026, 10, 4)),
        ("America/Santiago", date(2026, 4, 5)),
        ("America/Santiago", date(2026, 9, 6)),
        ("Australia/Sydney", date(2026, 10, 4)),
        ("America/Havana", date(2026, 3, 8)),
        ("America/Havana", date(2026, 11, 1)),
        (BERLIN, date(2027, 3, 28)),
        (NEW_YORK, date(2027, 11, 7)),
        ("UTC", date(2026, 3, 29)),
    ] {
        for expr in [
            "30 2 * * *",
            "*/15 0-3 * * *",
            "0 * * * *",
            "*/30 * * * *",
            "10 0 * * *",
        ] {
            check_three_days(expr, zone_name, day);
        }
    }
}

#[test]
fn the_cron_crate_alone_departs_from_the_rule() {
    // Why cron.rs maps wall times itself: the crate's iterator in a chrono-tz zone.
    let berlin = zone(BERLIN);
    let schedule = cron::Schedule::from_str("0 30 2 * * *").unwrap();
    let days = |start: DateTime<Tz>| -> Vec<String> {
        schedule
            .after(&start)
            .take(3)
            .map(|t| t.to_rfc3339())
            .collect()
    };
    // Spring: the 29th has no fire at all.
    assert_eq!(
        days(berlin.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap()),
        [
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00",
            "2026-04-01T02:30:00+02:00"
        ]
    );
    // Fall: two fires, although the expression names the hour.
    assert_eq!(
        days(berlin.with_ymd_and_hms(2026, 10, 25, 0, 0, 0).unwrap())[..2],
        ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"]
    );
    // Started in the second pass (02:10 CET = 01:10 UTC), its first answer is in the past.
    let second_pass = Utc
        .with_ymd_and_hms(2026, 10, 25, 1, 10, 0)
        .unwrap()
        .with_timezone(&berlin);
    let first = schedule.after(&second_pass).next().unwrap();
    assert!(first < second_pass, "{first} before {second_pass}");
    // And for real-time schedules it yields instants out of order.
    let half_hourly = cron::Schedule::from_str("0 */30 * * * *").unwrap();
    let fall: Vec<_> = half_hourly
        .after(&berlin.with_ymd_and_hms(2026, 10, 25, 1, 45, 0).unwrap())
        .take(4)
        .collect();
    assert!(fall.windows(2).any(|w| w[1] < w[0]), "{fall:?}");
}

#[test]
fn ends_with_the_cron_crate_s_years() {
    let schedule = CronSchedule::from_spec("0 0 1 1 *", None).unwrap();
    let late = Utc.with_ymd_and_hms(2100, 6, 1, 0, 0, 0).unwrap();
    assert_eq!(schedule.next_fire(late), None);
    assert!(CronSchedule::from_spec("0 0 * * *", Some("Mars/Olympus")).is_err());
    assert!(CronSchedule::from_spec("0 25 * * *", None).is_err());
}

/// The cost of `next_fire` (issue 5 asks for a note, not an assertion): prints the average
/// per call. `cargo test --release --lib next_fire_cost -- --nocapture` shows it.
#[test]
fn next_fire_cost() {
    let cases = [
        ("30 2 * * *", BERLIN),
        ("*/15 1-3 * * *", NEW_YORK),
        ("0 * * * *", BERLIN),
        ("* * * * * *", "UTC"),
        ("0 0 29 2 *", BERLIN),
    ];
    for (expr, zone_name) in cases {
        let schedule = CronSchedule::from_spec(expr, Some(zone_name)).unwrap();
        let mut cursor = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let calls = 2_000;
        let started = std::time::Instant::now();
        for _ in 0..calls {
            match schedule.next_fire(cursor) {
                Some(fire) => cursor = fire.at,
                None => break,
            }
        }
        let each = started.elapsed() / calls;
        eprintln!("next_fire `{expr}` in {zone_name}: {each:?} per call (reached {cursor})");
    }
}
