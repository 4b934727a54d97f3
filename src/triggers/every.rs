//! [`Every`]: a trigger that fires at a fixed interval of real elapsed time (`every: 15m`).
//!
//! # The anchor
//!
//! Fires fall on a grid: `anchor + k × interval` for k = 1, 2, …. The anchor is the instant
//! the daemon first saw the trigger (it keeps that instant in the environment), so the
//! first fire comes one interval after the trigger appears, and a restart keeps the grid
//! instead of starting a new one: fires missed while the daemon was down are the grid
//! points in between, for the catchup policy to decide. A daemon that prefers "one interval
//! after the last fire" passes the last fire as the anchor; both are the same while no fire
//! is missed or late.
//!
//! The interval is real time: time zones and daylight-saving changes play no part
//! (SPEC §7), so an `every: 1h` trigger fires 25 times on a fall-back day in any zone.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

use crate::triggers::TriggerError;
use crate::triggers::fire::Fire;

/// An interval trigger on a grid from its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    interval: TimeDelta,
    anchor: DateTime<Utc>,
}

impl Every {
    /// Fires every `interval` after `anchor` (see the module docs for which anchor).
    ///
    /// # Errors
    /// When the interval is zero or too long to add to an instant.
    pub fn new(interval: Duration, anchor: DateTime<Utc>) -> Result<Self, TriggerError> {
        let interval = TimeDelta::from_std(interval)
            .ok()
            .filter(|d| *d > TimeDelta::zero() && anchor.checked_add_signed(*d).is_some())
            .ok_or(TriggerError::Interval(interval))?;
        Ok(Every { interval, anchor })
    }

    /// The interval.
    #[must_use]
    pub fn interval(&self) -> TimeDelta {
        self.interval
    }

    /// The instant the grid starts from (not itself a fire).
    #[must_use]
    pub fn anchor(&self) -> DateTime<Utc> {
        self.anchor
    }

    /// The first fire strictly after `after` (the first grid point after the anchor when
    /// `after` is before it), or `None` past the end of chrono's time.
    #[must_use]
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<Fire> {
        let step = nanos(self.interval);
        let elapsed = nanos(after.signed_duration_since(self.anchor));
        // The smallest k ≥ 1 with anchor + k·step > after.
        let k = if elapsed < 0 { 1 } else { elapsed / step + 1 };
        let at = self
            .anchor
            .checked_add_signed(from_nanos(k.checked_mul(step)?)?)?;
        Some(Fire::plain(at, utc()))
    }

    /// The fires in `(from, to]`, in order.
    #[must_use]
    pub fn fires_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Fire> {
        let mut fires = Vec::new();
        let mut cursor = from;
        while let Some(fire) = self.next_fire(cursor).filter(|f| f.at <= to) {
            cursor = fire.at;
            fires.push(fire);
        }
        fires
    }
}

/// A duration in nanoseconds, without chrono's ±292-year limit on `num_nanoseconds`.
fn nanos(delta: TimeDelta) -> i128 {
    i128::from(delta.num_seconds()) * 1_000_000_000 + i128::from(delta.subsec_nanos())
}

fn from_nanos(nanos: i128) -> Option<TimeDelta> {
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let rest = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    TimeDelta::new(seconds, rest)
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("zero is a valid offset")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn utc_at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 25, h, m, s).unwrap()
    }

    #[test]
    fn fires_on_the_grid_from_the_anchor() {
        let every = Every::new(Duration::from_mins(15), utc_at(0, 7, 0)).unwrap();
        assert_eq!(
            every.next_fire(utc_at(0, 0, 0)).unwrap().at,
            utc_at(0, 22, 0)
        );
        assert_eq!(
            every.next_fire(utc_at(0, 7, 0)).unwrap().at,
            utc_at(0, 22, 0)
        );
        assert_eq!(
            every.next_fire(utc_at(0, 21, 59)).unwrap().at,
            utc_at(0, 22, 0)
        );
        assert_eq!(
            every.next_fire(utc_at(0, 22, 0)).unwrap().at,
            utc_at(0, 37, 0)
        );
        assert_eq!(
            every.next_fire(utc_at(5, 0, 0)).unwrap().at,
            utc_at(5, 7, 0)
        );
    }

    #[test]
    fn a_daemon_on_a_manual_clock_keeps_the_grid_across_downtime() {
        let clock = ManualClock::new(utc_at(0, 0, 0));
        let every = Every::new(Duration::from_mins(10), clock.now()).unwrap();
        let mut seen = Vec::new();
        let mut last = clock.now();
        for _ in 0..3 {
            let fire = every.next_fire(last).unwrap();
            clock.set(fire.at);
            seen.push(clock.now());
            last = fire.at;
        }
        assert_eq!(seen, [utc_at(0, 10, 0), utc_at(0, 20, 0), utc_at(0, 30, 0)]);
        // Down for 25 minutes: two fires are owed, and the grid is unchanged.
        clock.advance(TimeDelta::minutes(25));
        let owed: Vec<_> = every
            .fires_between(last, clock.now())
            .iter()
            .map(|f| f.at)
            .collect();
        assert_eq!(owed, [utc_at(0, 40, 0), utc_at(0, 50, 0)]);
        assert_eq!(every.next_fire(clock.now()).unwrap().at, utc_at(1, 0, 0));
    }

    #[test]
    fn real_time_across_a_fall_back() {
        // Berlin falls back at 01:00 UTC; `every` does not care: 25 fires in that local day.
        let start = Utc.with_ymd_and_hms(2026, 10, 24, 22, 0, 0).unwrap();
        let every = Every::new(Duration::from_hours(1), start).unwrap();
        let fires = every.fires_between(start, start + TimeDelta::hours(25));
        assert_eq!(fires.len(), 25);
        assert!(
            fires
                .windows(2)
                .all(|w| w[1].at - w[0].at == TimeDelta::hours(1))
        );
        assert!(
            fires
                .iter()
                .all(|f| f.note.is_none() && f.local.offset().local_minus_utc() == 0)
        );
    }

    #[test]
    fn sub_second_and_long_intervals() {
        let start = utc_at(0, 0, 0);
        let fast = Every::new(Duration::from_millis(500), start).unwrap();
        assert_eq!(
            fast.fires_between(start, start + TimeDelta::seconds(2))
                .len(),
            4
        );
        let slow = Every::new(Duration::from_hours(400 * 24), start).unwrap();
        assert_eq!(
            slow.next_fire(start).unwrap().at,
            start + TimeDelta::days(400)
        );
        assert!(Every::new(Duration::ZERO, start).is_err());
        assert!(Every::new(Duration::MAX, start).is_err());
    }
}
