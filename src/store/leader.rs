//! [`LeaderStore`]: which daemon leads an environment.
//!
//! Several daemons may serve one environment (on PostgreSQL, from several hosts); one of
//! them leads: it fires triggers, serves the line of waiting requests, expires leases and
//! scales the worker pool, while the others serve the API and stand by. Leadership is a
//! lease in the environment (one row, a holder and an expiry), as River, Oban and Hatchet
//! keep it: the leader renews it well within its time to live, and when the leader dies any
//! other daemon takes it once it expired, within twice the lease.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::Error;

/// Who leads, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The leading daemon (`host:pid:start`, see [`daemon_identity`]).
    pub holder: String,
    /// When the lease ends unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// The environment's leadership lease.
pub trait LeaderStore {
    /// Takes the leadership for `holder` when nobody holds it or its lease ended, or renews
    /// it when `holder` has it: the lease then lasts `ttl` from now. Returns whether
    /// `holder` leads.
    fn lead(&self, holder: &str, ttl: Duration) -> Result<bool, Error>;

    /// Gives the leadership up, when `holder` has it (a daemon stopping), so that another
    /// takes over at once instead of after the lease.
    fn resign(&self, holder: &str) -> Result<(), Error>;

    /// The current leadership, expired or not; `None` when no daemon ever led.
    fn leadership(&self) -> Result<Option<Leadership>, Error>;
}

/// How a daemon names itself as a leader: host, pid and process start time, so that a
/// restarted daemon reusing a pid is not taken for the old one.
#[must_use]
pub fn daemon_identity() -> String {
    let owner = super::owner::Owner::current();
    format!("{}:{}:{}", owner.host, owner.pid, owner.start_time)
}

/// The daemon a leadership holder names, when it names one of this host whose process is
/// gone: its lease need not be waited out (the daemon was killed; nothing of it runs).
#[must_use]
pub fn holder_is_dead_here(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(start_time), Ok(pid)) = (start.parse::<u64>(), pid.parse::<u32>()) else {
        return false;
    };
    let owner = super::owner::Owner {
        pid,
        start_time,
        host: host.to_owned(),
    };
    super::owner::is_this_host(&owner.host) && !super::owner::owner_is_alive(&owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_daemon_of_this_host_is_recognised_from_its_name() {
        assert!(
            !holder_is_dead_here(&daemon_identity()),
            "this process lives"
        );
        let host = super::super::owner::host_identity();
        // No process has pid 0 in the tests' sense: it is not alive.
        assert!(holder_is_dead_here(&format!("{host}:999999999:1")));
        assert!(
            !holder_is_dead_here("elsewhere.example:1:1"),
            "another host's is not ours to judge"
        );
        assert!(!holder_is_dead_here("garbage"));
    }
}
