//! [`CronSchedule`]: a cron expression in an IANA time zone, and the instants it fires at,
//! with the daylight-saving rule of SPEC §7.
//!
//! # The rule
//!
//! A schedule whose hour field names hours (`30 2 * * *`, `*/15 1-3 * * *`) names wall-clock
//! times:
//! - a wall time that does not exist that day (clocks spring forward over it) fires once, at
//!   the first instant after the gap; several missing wall times of one gap make one fire,
//!   which also stands for a regular fire at that instant;
//! - a wall time that occurs twice (clocks fall back) fires once, at its first occurrence.
//!
//! A schedule whose hour field covers every hour (`*`, also `*/1` or `0-23`) follows real
//! time, as cron does: it fires at every instant whose wall time matches, so both passes
//! through a repeated hour fire and a skipped hour fires nothing. An hourly job thus never
//! waits two hours, nor runs twice within one.
//!
//! # How
//!
//! Which wall times an expression names is [`crate::spec::cron`]'s business (the grammar,
//! and the rule that a day matches if either day field matches when both are restricted);
//! the `croner` crate behind it is asked only for matching *naive* wall times, where no
//! time is missing or repeated. Each wall time is then mapped to instants here with
//! chrono's `LocalResult` (`None` in a gap, `Ambiguous` in a fold) and the rule above. (A
//! cron library's own search in a zone has its own daylight-saving rule: the `cron` crate
//! used before dropped missing wall times and fired both passes of every repeated one;
//! croner drops the missing times of a range of named hours and fires both passes of one,
//! as the tests below pin down; croniter too fires both passes.)
//!
//! Wall times come in wall-clock order, which is instant order except inside a fold, where
//! the first passes of all its wall times precede all second passes. [`CronSchedule::next_fire`]
//! therefore starts early enough to see a fold it is about to enter and, having found a
//! second pass, keeps reading to the fold's end in case a first pass comes sooner.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::spec::cron::CronExpr;
use crate::triggers::TriggerError;
use crate::triggers::fire::{DstNote, Fire};
use crate::triggers::transition::{gap_end, offset_at};

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    schedule: CronExpr,
    zone: Tz,
    real_time: bool,
}

/// A fire being considered by [`CronSchedule::next_fire`], with the last wall time that
/// could still produce an earlier one.
struct Best {
    fire: Fire,
    read_until: NaiveDateTime,
}

impl CronSchedule {
    /// A schedule from a workflow's `schedule:` (5 or 6 fields, see
    /// [`parse_schedule`](crate::spec::cron::parse_schedule)) in `zone`.
    ///
    /// # Errors
    /// The expression's problem.
    pub fn new(expression: &str, zone: Tz) -> Result<Self, TriggerError> {
        let schedule = crate::spec::cron::parse_schedule(expression)?;
        let real_time = schedule.every_hour();
        Ok(CronSchedule {
            expression: expression.to_owned(),
            schedule,
            zone,
            real_time,
        })
    }

    /// A schedule from a trigger's `schedule:` and `timezone:` (an IANA name; UTC when
    /// absent).
    ///
    /// # Errors
    /// The expression's or the zone's problem.
    pub fn from_spec(expression: &str, timezone: Option<&str>) -> Result<Self, TriggerError> {
        let zone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| TriggerError::UnknownZone(name.to_owned()))?,
        };
        Self::new(expression, zone)
    }

    /// The expression as written.
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone whose wall clock the expression reads.
    #[must_use]
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether the hour field covers every hour, so the schedule follows real time across
    /// daylight-saving changes rather than naming wall-clock times (see the module docs).
    #[must_use]
    pub fn follows_real_time(&self) -> bool {
        self.real_time
    }

    /// Whether both day fields are restricted, so that a day matches if either matches (as
    /// cron(8) reads `0 0 1-7 * MON`: days 1–7 and every Monday).
    #[must_use]
    pub fn days_either(&self) -> bool {
        self.schedule.days_either()
    }

    /// The first fire strictly after `after`, or `None` when the schedule has no more
    /// (croner's calendar ends with year 5000).
    #[must_use]
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<Fire> {
        let start = self.first_wall_to_read(after);
        // Matches come strictly after the wall time asked about.
        let mut wall = start - TimeDelta::seconds(1);
        let mut best: Option<Best> = None;
        while let Some(next) = self.schedule.next_after(wall) {
            wall = next;
            if best.as_ref().is_some_and(|b| wall > b.read_until) {
                break;
            }
            for (fire, read_until) in self.fires_at_wall(wall) {
                if fire.at <= after {
                    continue;
                }
                match &mut best {
                    Some(b) if fire.at > b.fire.at => {}
                    Some(b) if fire.at == b.fire.at => merge_into(&mut b.fire, fire),
                    _ => best = Some(Best { fire, read_until }),
                }
            }
            // Later wall times come after this one: none can be read once it is the last
            // that could make an earlier fire (the usual case, which saves a search).
            if best.as_ref().is_some_and(|b| wall >= b.read_until) {
                break;
            }
        }
        best.map(|b| b.fire)
    }

    /// The fires strictly after `after`, in order.
    pub fn fires_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = Fire> + '_ {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let fire = self.next_fire(cursor)?;
            cursor = fire.at;
            Some(fire)
        })
    }

    /// The fires in `(from, to]`, in order: what a daemon that last looked at `from` owes at
    /// `to` (its catchup policy decides which of them to run).
    #[must_use]
    pub fn fires_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Fire> {
        self.fires_after(from).take_while(|f| f.at <= to).collect()
    }

    /// The earliest wall time that can belong to an instant after `after`: its own wall
    /// time, or earlier when clocks fall back soon after it (a repeated hour's second pass
    /// reads earlier than `after` did).
    fn first_wall_to_read(&self, after: DateTime<Utc>) -> NaiveDateTime {
        let now = offset_at(self.zone, after).local_minus_utc();
        // Folds in tzdb are at most a day long; a day and a bit ahead sees the offset after
        // any fold that could matter.
        let soon = after
            .checked_add_signed(TimeDelta::hours(26))
            .map_or(now, |t| offset_at(self.zone, t).local_minus_utc());
        after.naive_utc() + TimeDelta::seconds(i64::from(now.min(soon)))
    }

    /// The fires one matching wall time makes under the rule, each with the last wall time
    /// that could still make an earlier fire once this one is the earliest seen.
    fn fires_at_wall(&self, wall: NaiveDateTime) -> Vec<(Fire, NaiveDateTime)> {
        let fire = |at: DateTime<Tz>, note| Fire {
            at: at.with_timezone(&Utc),
            local: at.fixed_offset(),
            note,
        };
        match self.zone.from_local_datetime(&wall) {
            // Later wall times are later instants.
            LocalResult::Single(at) => vec![(fire(at, None), wall)],
            LocalResult::None if self.real_time => Vec::new(),
            LocalResult::None => {
                let at = gap_end(self.zone, wall).with_timezone(&self.zone);
                let note = DstNote::SkippedShifted {
                    wanted: wall,
                    skipped: 1,
                };
                // The rest of the gap, and the wall time right after it, map to the same
                // instant and are merged into this fire.
                vec![(fire(at, Some(note)), at.naive_local())]
            }
            LocalResult::Ambiguous(first, second) => {
                let first_fire = (fire(first, Some(DstNote::Repeated)), wall);
                if !self.real_time {
                    return vec![first_fire];
                }
                // A later wall time of the same fold has its first pass before this second
                // pass: read on to the fold's end.
                let fold = TimeDelta::seconds(i64::from(
                    first.offset().fix().local_minus_utc()
                        - second.offset().fix().local_minus_utc(),
                ));
                vec![
                    first_fire,
                    (fire(second, Some(DstNote::RepeatedSecondPass)), wall + fold),
                ]
            }
        }
    }
}

/// Folds `other` into `fire`, both at the same instant: missing wall times of one gap add up.
fn merge_into(fire: &mut Fire, other: Fire) {
    match (&mut fire.note, other.note) {
        (
            Some(DstNote::SkippedShifted { skipped, .. }),
            Some(DstNote::SkippedShifted { skipped: more, .. }),
        ) => *skipped += more,
        (None, note @ Some(_)) => fire.note = note,
        _ => {}
    }
}

// The daylight-saving cases of issue 5 outgrow the foot of this file (STYLE: split before
// ~800 lines), so they live beside it.
#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
