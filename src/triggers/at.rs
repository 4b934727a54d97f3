//! [`At`]: a trigger that fires once, at the instant written (`at: "2026-12-24T18:00:00+01:00"`).
//!
//! Whether a fire missed while the daemon was down still runs is the catchup policy's call;
//! [`At::fires_between`] reports it as owed like any other.

use chrono::{DateTime, FixedOffset, Utc};

use crate::triggers::TriggerError;
use crate::triggers::fire::Fire;

/// A one-off trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    instant: DateTime<FixedOffset>,
}

impl At {
    /// A trigger at `instant`, shown with the offset it was written with.
    #[must_use]
    pub fn new(instant: DateTime<FixedOffset>) -> Self {
        At { instant }
    }

    /// Parses an RFC 3339 instant as the workflow format writes it.
    ///
    /// # Errors
    /// Not an RFC 3339 instant.
    pub fn parse(text: &str) -> Result<Self, TriggerError> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(At::new)
            .map_err(|_| TriggerError::NotAnInstant(text.to_owned()))
    }

    /// The instant, with its written offset.
    #[must_use]
    pub fn instant(&self) -> DateTime<FixedOffset> {
        self.instant
    }

    /// The fire, when it is strictly after `after`.
    #[must_use]
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<Fire> {
        let at = self.instant.with_timezone(&Utc);
        (at > after).then(|| Fire::plain(at, *self.instant.offset()))
    }

    /// The fire, when it is in `(from, to]`.
    #[must_use]
    pub fn fires_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Fire> {
        self.next_fire(from)
            .filter(|f| f.at <= to)
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn fires_once_at_its_instant() {
        let at = At::parse("2026-12-24T18:00:00+01:00").unwrap();
        let due = Utc.with_ymd_and_hms(2026, 12, 24, 17, 0, 0).unwrap();
        let clock = ManualClock::new(due - TimeDelta::days(1));
        let fire = at.next_fire(clock.now()).unwrap();
        assert_eq!(fire.at, due);
        assert_eq!(fire.local.to_rfc3339(), "2026-12-24T18:00:00+01:00");
        assert_eq!(fire.note, None);
        clock.set(due);
        assert_eq!(at.next_fire(clock.now()), None);
        assert_eq!(at.fires_between(due - TimeDelta::seconds(1), due), [fire]);
        assert!(at.fires_between(due, due + TimeDelta::days(1)).is_empty());
        assert!(At::parse("tomorrow").is_err());
    }
}
