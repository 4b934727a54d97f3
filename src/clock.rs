//! Where "now" comes from.
//!
//! Code that needs the current instant takes a [`Clock`] instead of calling
//! [`Utc::now`] itself, so that tests can drive time by hand: a [`ManualClock`] is set or
//! advanced by the test and never moves on its own, so nothing has to sleep. The daemon
//! gives its components a [`SystemClock`].
//!
//! This module only answers "what time is it"; waiting until an instant (timers) is left to
//! the daemon's runtime, whose paused time plays the same role in its tests.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current instant, in UTC.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to, for tests.
///
/// Clones share one instant: a test keeps a clone and advances it while the code under test
/// holds another.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `instant` (backwards too, to test a clock that was set back).
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.lock() = instant;
    }

    /// Moves the clock forward by `delta` (backwards when it is negative).
    ///
    /// # Panics
    /// When the result is outside chrono's range of instants, a bug in the test.
    pub fn advance(&self, delta: TimeDelta) {
        let mut now = self.lock();
        *now = now
            .checked_add_signed(delta)
            .expect("a test advances the clock within chrono's range");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // The guarded value is a plain instant, valid whatever a panicking holder did.
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let held: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(held.now(), start);
        clock.advance(TimeDelta::minutes(90));
        assert_eq!(held.now(), start + TimeDelta::minutes(90));
        clock.set(start);
        assert_eq!(held.now(), start);
    }

    #[test]
    fn system_clock_is_near_chrono_now() {
        let before = Utc::now();
        let now = SystemClock.now();
        assert!(now >= before && now <= Utc::now());
    }
}
