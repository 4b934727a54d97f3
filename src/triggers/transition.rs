//! [`Transition`]: an instant at which a time zone's UTC offset changes (a daylight-saving
//! change, or a change of the zone's standard time), found by probing the zone.
//!
//! chrono-tz answers "what is the offset at this instant" but does not list its
//! transitions, so [`transitions_between`] samples the offset and bisects where it changes,
//! to the second (tzdb transitions fall on whole seconds).

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// Sampling step of [`transitions_between`]. Two transitions of one zone are always further
/// apart than this (the closest in tzdb are weeks apart), so none is missed.
const PROBE_STEP: TimeDelta = TimeDelta::hours(12);

/// A change of a zone's UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The first instant with the new offset.
    pub at: DateTime<Utc>,
    /// The offset until then.
    pub before: FixedOffset,
    /// The offset from then on.
    pub after: FixedOffset,
}

impl Transition {
    /// Whether clocks jump forward (spring): wall times in
    /// [`wall_before`](Self::wall_before)..[`wall_after`](Self::wall_after) do not exist.
    /// Otherwise they fall back and wall times in `wall_after..wall_before` occur twice.
    #[must_use]
    pub fn is_forward(&self) -> bool {
        self.after.local_minus_utc() > self.before.local_minus_utc()
    }

    /// How far clocks move: positive forward, negative back.
    #[must_use]
    pub fn shift(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(
            self.after.local_minus_utc() - self.before.local_minus_utc(),
        ))
    }

    /// What the wall clock would read at [`at`](Self::at) under the old offset
    /// (02:00 for Berlin's spring change, 03:00 for its autumn one).
    #[must_use]
    pub fn wall_before(&self) -> NaiveDateTime {
        self.at.with_timezone(&self.before).naive_local()
    }

    /// What the wall clock reads at [`at`](Self::at) (03:00 for Berlin's spring change,
    /// 02:00 for its autumn one).
    #[must_use]
    pub fn wall_after(&self) -> NaiveDateTime {
        self.at.with_timezone(&self.after).naive_local()
    }
}

/// The zone's offset at an instant.
pub(crate) fn offset_at(zone: Tz, at: DateTime<Utc>) -> FixedOffset {
    zone.offset_from_utc_datetime(&at.naive_utc()).fix()
}

/// Every transition of `zone` in `(from, to]`, oldest first.
#[must_use]
pub fn transitions_between(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Transition> {
    let mut found = Vec::new();
    let mut lo = from;
    let mut lo_offset = offset_at(zone, lo);
    while lo < to {
        let hi = lo
            .checked_add_signed(PROBE_STEP)
            .map_or(to, |hi| hi.min(to));
        let hi_offset = offset_at(zone, hi);
        if hi_offset != lo_offset {
            let at = first_instant_where(lo, hi, |t| offset_at(zone, t) != lo_offset);
            found.push(Transition {
                at,
                before: lo_offset,
                after: offset_at(zone, at),
            });
        }
        lo = hi;
        lo_offset = hi_offset;
    }
    found
}

/// The first instant after the daylight-saving gap that holds the missing wall time `wall`:
/// where SPEC §7 moves a fire whose wall time does not exist.
pub(crate) fn gap_end(zone: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    // UTC offsets stay within ±16 h (even local mean times of old), so the wall clock reads
    // before `wall` 26 h earlier and after it 26 h later, and in between it crosses `wall`
    // only by jumping over it, at the transition sought.
    let reads_at_least_wall = |t: DateTime<Utc>| t.with_timezone(&zone).naive_local() >= wall;
    let lo = wall.and_utc() - TimeDelta::hours(26);
    let hi = wall.and_utc() + TimeDelta::hours(26);
    first_instant_where(lo, hi, reads_at_least_wall)
}

/// The first whole second in `(lo, hi]` where `pred` holds, given that it fails at `lo`,
/// holds at `hi`, and changes once in between.
fn first_instant_where(
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    pred: impl Fn(DateTime<Utc>) -> bool,
) -> DateTime<Utc> {
    let mut lo = lo.timestamp();
    let mut hi = hi.timestamp();
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let at = DateTime::from_timestamp(mid, 0).expect("between two valid instants");
        if pred(at) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).expect("a valid instant")
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn wall(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn berlin_2026() {
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        let found = transitions_between(zone, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0));
        assert_eq!(found.len(), 2, "{found:?}");
        let spring = found[0];
        assert_eq!(spring.at, utc(2026, 3, 29, 1, 0));
        assert!(spring.is_forward());
        assert_eq!(spring.shift(), TimeDelta::hours(1));
        assert_eq!(spring.wall_before(), wall(2026, 3, 29, 2, 0));
        assert_eq!(spring.wall_after(), wall(2026, 3, 29, 3, 0));
        let autumn = found[1];
        assert_eq!(autumn.at, utc(2026, 10, 25, 1, 0));
        assert!(!autumn.is_forward());
        assert_eq!(autumn.wall_before(), wall(2026, 10, 25, 3, 0));
        assert_eq!(autumn.wall_after(), wall(2026, 10, 25, 2, 0));
    }

    #[test]
    fn new_york_2026() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let found = transitions_between(zone, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0));
        let ats: Vec<_> = found.iter().map(|t| t.at).collect();
        assert_eq!(ats, [utc(2026, 3, 8, 7, 0), utc(2026, 11, 1, 6, 0)]);
    }

    #[test]
    fn range_is_open_at_the_start_and_closed_at_the_end() {
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        let at = utc(2026, 3, 29, 1, 0);
        assert_eq!(
            transitions_between(zone, at - TimeDelta::seconds(1), at).len(),
            1
        );
        assert!(transitions_between(zone, at, at + TimeDelta::hours(1)).is_empty());
        assert!(
            transitions_between(Tz::UTC, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0)).is_empty()
        );
    }

    #[test]
    fn gap_end_is_the_transition() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        for minute in [0, 1, 30, 59] {
            assert_eq!(
                gap_end(berlin, wall(2026, 3, 29, 2, minute)),
                utc(2026, 3, 29, 1, 0)
            );
        }
        let new_york: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            gap_end(new_york, wall(2026, 3, 8, 2, 30)),
            utc(2026, 3, 8, 7, 0)
        );
        // Lord Howe Island moves by half an hour.
        let lord_howe: Tz = "Australia/Lord_Howe".parse().unwrap();
        let spring = transitions_between(lord_howe, utc(2026, 7, 1, 0, 0), utc(2027, 1, 1, 0, 0));
        assert_eq!(spring[0].shift(), TimeDelta::minutes(30));
        assert_eq!(
            gap_end(lord_howe, spring[0].wall_before() + TimeDelta::minutes(10)),
            spring[0].at
        );
    }
}
