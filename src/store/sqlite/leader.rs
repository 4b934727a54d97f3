//! The leadership lease ([`LeaderStore`]) in SQLite.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use crate::store::error::Error;
use crate::store::leader::{LeaderStore, Leadership};

use super::{SqliteStore, to_ms};

impl LeaderStore for SqliteStore {
    fn lead(&self, holder: &str, ttl: Duration) -> Result<bool, Error> {
        let now = to_ms(self.now());
        let expires = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.write(|tx| {
            let taken = tx
                .prepare_cached(
                    "INSERT INTO leader (id, holder, expires_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET holder = ?1, expires_at = ?2
                     WHERE leader.holder = ?1 OR leader.expires_at < ?3",
                )?
                .execute(params![holder, expires, now])?;
            Ok(taken > 0)
        })
    }

    fn resign(&self, holder: &str) -> Result<(), Error> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM leader WHERE holder = ?1")?
                .execute([holder])?;
            Ok(())
        })
    }

    fn leadership(&self) -> Result<Option<Leadership>, Error> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT holder, expires_at FROM leader WHERE id = 1")?
                .query_row([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .optional()?
                .map(|(holder, expires)| Leadership {
                    holder,
                    expires_at: chrono::DateTime::from_timestamp_millis(expires)
                        .unwrap_or_default(),
                }))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeDelta;

    use super::super::test_support::store;
    use crate::clock::{Clock, ManualClock};
    use crate::store::leader::LeaderStore;

    #[test]
    fn one_daemon_leads_until_its_lease_ends_or_it_resigns() {
        let (_dir, store) = store();
        let clock = ManualClock::new(chrono::Utc::now());
        let store = store.with_clock(Arc::new(clock.clone()));
        let ttl = std::time::Duration::from_secs(10);
        assert!(store.leadership().expect("read").is_none());
        assert!(
            store.lead("a", ttl).expect("lead"),
            "the first asks and leads"
        );
        assert!(!store.lead("b", ttl).expect("lead"), "a leads");
        clock.advance(TimeDelta::seconds(6));
        assert!(store.lead("a", ttl).expect("renew"), "a renews");
        clock.advance(TimeDelta::seconds(6));
        assert!(
            !store.lead("b", ttl).expect("lead"),
            "a's renewed lease still runs"
        );
        clock.advance(TimeDelta::seconds(5));
        assert!(
            store.lead("b", ttl).expect("take over"),
            "a went silent: b takes over"
        );
        assert!(!store.lead("a", ttl).expect("lead"), "a lost it");
        let now = clock.now();
        let held = store.leadership().expect("read").expect("a leader");
        assert_eq!(held.holder, "b");
        assert_eq!(
            held.expires_at.timestamp_millis(),
            (now + TimeDelta::seconds(10)).timestamp_millis()
        );
        store.resign("a").expect("a resigning changes nothing");
        assert_eq!(
            store.leadership().expect("read").expect("a leader").holder,
            "b"
        );
        store.resign("b").expect("resign");
        assert!(
            store.lead("a", ttl).expect("lead"),
            "after b resigned, a leads at once"
        );
    }
}
