//! Tests of [`CronSchedule`](super::CronSchedule) across the 2026 daylight-saving changes of
//! `Europe/Berlin` and `America/New_York` (issue 5), on a manual clock.
//!
//! Each case is checked three ways: the fires around the change against a list written by
//! hand; the fires of the three local days around it against a brute-force oracle that walks
//! every instant and applies SPEC §7's rule as written; and a daemon-like loop on a
//! [`ManualClock`] (jumping to each fire, and polling in uneven steps) that must see exactly
//! the same fires — none lost, none doubled.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::CronSchedule;
use crate::clock::{Clock, ManualClock};
use crate::spec::cron::CronExpr;
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
fn matches(schedule: &CronExpr, wall: NaiveDateTime) -> bool {
    schedule.matches(wall)
}

/// Every fire in `[start, end)` by walking instants one `step` at a time (a minute for
/// 5-field expressions, a second with seconds): a real-time schedule fires at every instant
/// whose wall time matches; one that names hours fires at the first instant of each matching
/// wall time, and once at the end of a gap holding any matching wall time.
fn oracle(expr: &str, zone: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let schedule = crate::spec::cron::parse_schedule(expr).unwrap();
    let real_time = schedule.every_hour();
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
fn croner_alone_departs_from_the_rule() {
    // Why cron.rs maps wall times itself: croner's own search in a chrono-tz zone (as the
    // `cron` crate's before it) has another daylight-saving rule.
    use croner::parser::{CronParser, Seconds};
    let berlin = zone(BERLIN);
    let parse = |expr: &str| {
        CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(expr)
            .unwrap()
    };
    let fires = |expr: &str, start: DateTime<Tz>, n: usize| -> Vec<String> {
        let cron = parse(expr);
        let mut cursor = start;
        (0..n)
            .map(|_| {
                cursor = cron.find_next_occurrence(&cursor, false).unwrap();
                cursor.to_rfc3339()
            })
            .collect()
    };
    // Spring: a range of named hours loses the missing ones without a fire after the gap.
    assert_eq!(
        fires(
            "0 */30 1-2 * * *",
            berlin.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap(),
            3
        ),
        [
            "2026-03-29T01:00:00+01:00",
            "2026-03-29T01:30:00+01:00",
            "2026-03-30T01:00:00+02:00"
        ]
    );
    assert_eq!(
        around("*/30 1-2 * * *", BERLIN, date(2026, 3, 29), 0, 24),
        [
            "03-29 01:00:00+01:00 (00:00Z)",
            "03-29 01:30:00+01:00 (00:30Z)",
            "03-29 03:00:00+02:00 (01:00Z) skipped 02:00:00 x2",
        ]
    );
    // Fall: a range of named hours fires in both passes.
    assert_eq!(
        fires(
            "0 */30 2 * * *",
            berlin.with_ymd_and_hms(2026, 10, 25, 0, 0, 0).unwrap(),
            4
        ),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00"
        ]
    );
    assert_eq!(
        around("*/30 2 * * *", BERLIN, date(2026, 10, 25), 0, 24),
        [
            "10-25 02:00:00+02:00 (00:00Z) repeated",
            "10-25 02:30:00+02:00 (00:30Z) repeated",
        ]
    );
}

#[test]
fn runs_on_past_the_cron_crate_s_years() {
    // The `cron` crate stopped at 2100; croner's calendar ends with year 5000.
    let schedule = CronSchedule::from_spec("0 0 1 1 *", None).unwrap();
    let late = Utc.with_ymd_and_hms(2100, 6, 1, 0, 0, 0).unwrap();
    assert_eq!(
        schedule.next_fire(late).map(|f| f.at),
        Some(Utc.with_ymd_and_hms(2101, 1, 1, 0, 0, 0).unwrap())
    );
    let last = Utc.with_ymd_and_hms(5000, 6, 1, 0, 0, 0).unwrap();
    assert_eq!(schedule.next_fire(last), None);
    assert!(CronSchedule::from_spec("0 0 * * *", Some("Mars/Olympus")).is_err());
    assert!(CronSchedule::from_spec("0 25 * * *", None).is_err());
}

#[test]
fn many_successive_calls_agree_with_one_span() {
    // A daemon calls `next_fire` from each fire it ran, thousands of times a year: every
    // answer must be later than the last, and the chain must be exactly the fires of the
    // span, across every daylight-saving change on the way.
    for (expr, zone_name, calls) in [
        ("30 2 * * *", BERLIN, 800),
        ("*/15 1-3 * * *", NEW_YORK, 5_000),
        ("0 * * * *", BERLIN, 20_000),
        ("*/30 * * * *", "Australia/Sydney", 20_000),
        ("0 0 1-7 * MON", NEW_YORK, 800),
        ("0 0 29 2 *", BERLIN, 30),
    ] {
        let schedule = CronSchedule::from_spec(expr, Some(zone_name)).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let chain: Vec<Fire> = schedule.fires_after(start).take(calls).collect();
        assert_eq!(chain.len(), calls, "`{expr}` has {calls} fires");
        assert!(
            chain.windows(2).all(|w| w[0].at < w[1].at),
            "`{expr}` in order"
        );
        let last = chain.last().unwrap().at;
        assert_eq!(
            schedule.fires_between(start, last),
            chain,
            "`{expr}` in {zone_name}"
        );
        let z = zone(zone_name);
        for fire in &chain {
            let wall = fire.at.with_timezone(&z).naive_local();
            match fire.note {
                None | Some(DstNote::Repeated | DstNote::RepeatedSecondPass) => {
                    assert!(schedule.schedule.matches(wall), "`{expr}` at {wall}");
                }
                Some(DstNote::SkippedShifted { wanted, .. }) => {
                    assert!(schedule.schedule.matches(wanted), "`{expr}` at {wanted}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// An independent implementation: croniter's answers (tests/fixtures/croniter.json, written
// by scripts/croniter_table.py).

/// Whether `at` is the second pass of a wall time that occurs twice in `zone`.
fn is_second_pass(zone: Tz, at: DateTime<Utc>) -> bool {
    let wall = at.with_timezone(&zone).naive_local();
    matches!(
        zone.from_local_datetime(&wall),
        chrono::LocalResult::Ambiguous(_, second) if second.with_timezone(&Utc) == at
    )
}

#[test]
fn agrees_with_croniter() {
    let table: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/fixtures/croniter.json")).unwrap();
    let instant = |v: &serde_json::Value| -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    let (mut compared, mut second_passes, mut shifted_with_seconds) = (0, 0, 0);
    let mut expressions = std::collections::BTreeSet::new();
    for case in table["cases"].as_array().unwrap() {
        let expr = case["expr"].as_str().unwrap();
        let zone_name = case["zone"].as_str().unwrap();
        let start = instant(&case["start"]);
        let mut expected: Vec<DateTime<Utc>> = case["fires"]
            .as_array()
            .unwrap()
            .iter()
            .map(instant)
            .collect();
        assert!(
            !expected.is_empty(),
            "`{expr}` from {start}: croniter found fires"
        );
        let last = *expected.last().unwrap();
        let schedule = CronSchedule::from_spec(expr, Some(zone_name)).unwrap();
        // The one documented difference (SPEC §7): when the hour field names hours, a wall
        // time that occurs twice fires once, at its first occurrence; croniter fires both.
        // (Both fire once at the end of a spring-forward gap for the wall times inside it,
        // and both fire both passes when the hour field covers every hour.)
        if !schedule.follows_real_time() {
            let z = zone(zone_name);
            let before = expected.len();
            expected.retain(|at| !is_second_pass(z, *at));
            second_passes += before - expected.len();
        }
        // And one difference of croniter's reading of a gap: it walks a missing wall time
        // forward a minute at a time, so a missing 02:30:15 fires at 03:00:15 where SPEC
        // §7 fires at the gap's end, 03:00:00. (Without seconds the two agree.)
        let croniter_reading = |fire: &Fire| match fire.note {
            Some(DstNote::SkippedShifted { wanted, .. }) if wanted.second() != 0 => {
                shifted_with_seconds += 1;
                fire.at + TimeDelta::seconds(i64::from(wanted.second()))
            }
            _ => fire.at,
        };
        let actual: Vec<DateTime<Utc>> = schedule
            .fires_between(start, last)
            .iter()
            .map(croniter_reading)
            .collect();
        assert_eq!(actual, expected, "`{expr}` in {zone_name} from {start}");
        compared += expected.len();
        expressions.insert(expr);
    }
    // The table is what it claims: some 40 expressions, thousands of fires, and the
    // difference above exercised.
    assert!(expressions.len() >= 40, "{}", expressions.len());
    assert!(compared > 7_000, "{compared}");
    assert!(second_passes > 0 && shifted_with_seconds > 0);
}
