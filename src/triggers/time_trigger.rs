//! [`TimeTrigger`]: the time-based kinds of a workflow's triggers (`schedule`, `every`,
//! `at`) behind one interface, built from the model's [`Trigger`].

use chrono::{DateTime, Utc};

use crate::spec::model::Trigger;
use crate::triggers::TriggerError;
use crate::triggers::at::At;
use crate::triggers::cron::CronSchedule;
use crate::triggers::every::Every;
use crate::triggers::fire::Fire;

/// A trigger that fires at instants computed from the clock alone.
#[derive(Debug, Clone)]
pub enum TimeTrigger {
    /// `schedule:` (with `timezone:`), boxed: a parsed cron expression is large.
    Cron(Box<CronSchedule>),
    /// `every:`.
    Every(Every),
    /// `at:`.
    At(At),
}

impl TimeTrigger {
    /// The time-based trigger `trigger` describes, or `None` for the other kinds (file,
    /// datablock, after). `anchor` is where an `every` grid starts (see
    /// [`every`](crate::triggers::every)); the other kinds ignore it.
    ///
    /// # Errors
    /// A malformed trigger (the loader's validation reports these with positions first, so
    /// a loaded workflow does not produce them).
    pub fn from_spec(
        trigger: &Trigger,
        anchor: DateTime<Utc>,
    ) -> Result<Option<Self>, TriggerError> {
        if let Some(expression) = &trigger.schedule {
            return CronSchedule::from_spec(expression, trigger.timezone.as_deref())
                .map(|s| Some(TimeTrigger::Cron(Box::new(s))));
        }
        if let Some(every) = &trigger.every {
            return Every::new(every.get(), anchor).map(|e| Some(TimeTrigger::Every(e)));
        }
        if let Some(at) = &trigger.at {
            return At::parse(at).map(|a| Some(TimeTrigger::At(a)));
        }
        Ok(None)
    }

    /// The first fire strictly after `after`.
    #[must_use]
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<Fire> {
        match self {
            TimeTrigger::Cron(cron) => cron.next_fire(after),
            TimeTrigger::Every(every) => every.next_fire(after),
            TimeTrigger::At(at) => at.next_fire(after),
        }
    }

    /// The fires in `(from, to]`, in order: what is owed to a daemon that last looked at
    /// `from` and now sees `to`. Catchup (none, latest, all) is the caller's choice.
    #[must_use]
    pub fn fires_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Fire> {
        match self {
            TimeTrigger::Cron(cron) => cron.fires_between(from, to),
            TimeTrigger::Every(every) => every.fires_between(from, to),
            TimeTrigger::At(at) => at.fires_between(from, to),
        }
    }

    /// The first `count` fires strictly after `after`.
    #[must_use]
    pub fn next_fires(&self, after: DateTime<Utc>, count: usize) -> Vec<Fire> {
        let mut fires = Vec::with_capacity(count.min(1024));
        let mut cursor = after;
        while fires.len() < count {
            let Some(fire) = self.next_fire(cursor) else {
                break;
            };
            cursor = fire.at;
            fires.push(fire);
        }
        fires
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::spec::parse_str;

    #[test]
    fn builds_the_time_based_kinds_only() {
        let yaml = "triggers:\n  - schedule: '30 2 * * *'\n    timezone: Europe/Berlin\n  - every: 15m\n  - at: '2026-12-24T18:00:00+01:00'\n  - datablock: raw\njobs:\n  a:\n    steps: [{ run: x }]\n";
        let loaded = parse_str("wf.yaml", yaml).unwrap();
        let anchor = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let built: Vec<_> = loaded
            .workflow
            .triggers
            .iter()
            .map(|t| TimeTrigger::from_spec(t, anchor).unwrap())
            .collect();
        assert!(
            matches!(&built[0], Some(TimeTrigger::Cron(c)) if c.zone().name() == "Europe/Berlin")
        );
        assert!(matches!(&built[1], Some(TimeTrigger::Every(e)) if e.anchor() == anchor));
        assert!(matches!(&built[2], Some(TimeTrigger::At(_))));
        assert!(built[3].is_none());
        let every = built[1].as_ref().unwrap();
        let fires = every.next_fires(anchor, 2);
        assert_eq!(fires[1].at, anchor + chrono::TimeDelta::minutes(30));
    }
}
