//! The leadership lease ([`LeaderStore`]) in PostgreSQL.

use std::time::Duration;

use crate::store::error::Error;
use crate::store::leader::{LeaderStore, Leadership};

use super::{PgStore, to_ms};

impl LeaderStore for PgStore {
    fn lead(&self, holder: &str, ttl: Duration) -> Result<bool, Error> {
        let now = to_ms(self.now());
        let expires = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.write(|tx| {
            let taken = tx.execute(
                "INSERT INTO leader (id, holder, expires_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET holder = $1, expires_at = $2
                 WHERE leader.holder = $1 OR leader.expires_at < $3",
                &[&holder, &expires, &now],
            )?;
            Ok(taken > 0)
        })
    }

    fn resign(&self, holder: &str) -> Result<(), Error> {
        self.write(|tx| {
            tx.execute("DELETE FROM leader WHERE holder = $1", &[&holder])?;
            Ok(())
        })
    }

    fn leadership(&self) -> Result<Option<Leadership>, Error> {
        self.read(|tx| {
            Ok(tx
                .query_opt("SELECT holder, expires_at FROM leader WHERE id = 1", &[])?
                .map(|row| Leadership {
                    holder: row.get(0),
                    expires_at: chrono::DateTime::from_timestamp_millis(row.get(1))
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
    use crate::clock::ManualClock;
    use crate::store::leader::LeaderStore;

    #[test]
    fn one_daemon_leads_until_its_lease_ends_or_it_resigns() {
        let clock = ManualClock::new(chrono::Utc::now());
        let store = store().with_clock(Arc::new(clock.clone()));
        let ttl = std::time::Duration::from_secs(10);
        assert!(store.leadership().expect("read").is_none());
        assert!(store.lead("a", ttl).expect("lead"));
        assert!(!store.lead("b", ttl).expect("lead"));
        clock.advance(TimeDelta::seconds(6));
        assert!(store.lead("a", ttl).expect("renew"));
        clock.advance(TimeDelta::seconds(6));
        assert!(!store.lead("b", ttl).expect("lead"));
        clock.advance(TimeDelta::seconds(5));
        assert!(store.lead("b", ttl).expect("take over"));
        assert!(!store.lead("a", ttl).expect("lead"));
        assert_eq!(
            store.leadership().expect("read").expect("a leader").holder,
            "b"
        );
        store.resign("b").expect("resign");
        assert!(store.lead("a", ttl).expect("lead"));
    }
}
