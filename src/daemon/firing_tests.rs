//! The daemon's firing driven by a [`ManualClock`]: a real [`Daemon`] on a temporary folder
//! and environment, whose loop is played by [`play`] (jump to each due instant, as the real
//! loop sleeps until it, and also wake at odd steps in between). The 2026 daylight-saving
//! changes of Europe/Berlin and America/New_York must neither lose nor double a fire
//! (SPEC §7 "DST"), also across a restart, and `catchup` decides what a stopped or stalled
//! daemon owes.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use tempfile::TempDir;

use crate::clock::{Clock, ManualClock};
use crate::daemon::firing::Daemon;
use crate::store::Env;
use crate::store::RunFilter;

const JOB: &str = "jobs:\n  j:\n    steps: [{ run: 'true' }]\n";

struct Site {
    _dir: TempDir,
    flows: PathBuf,
    store: Env,
    clock: ManualClock,
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A folder holding `wf.yaml` (the triggers given, then one job) and an environment, with
/// the clock at `start`.
fn site(head: &str, start: DateTime<Utc>) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("wf.yaml"), format!("{head}{JOB}")).unwrap();
    let store = crate::store::open(&dir.path().join("env")).unwrap();
    Site {
        _dir: dir,
        flows,
        store,
        clock: ManualClock::new(start),
    }
}

impl Site {
    /// A daemon that has loaded the folder at the clock's instant (a start or restart).
    fn daemon(&self) -> Daemon {
        let mut daemon = Daemon::new(Arc::clone(&self.store), &self.flows);
        daemon.reload(self.clock.now());
        daemon
    }

    /// The loop, until `end`: wake at each due instant and at least every `step`, fire.
    fn play(&self, daemon: &mut Daemon, end: DateTime<Utc>, step: TimeDelta) {
        loop {
            let now = self.clock.now();
            daemon.fire_due(now);
            let mut next = now + step;
            if let Some(due) = daemon.next_due() {
                assert!(due > now, "a due trigger was left unfired at {now}");
                next = next.min(due);
            }
            if next > end {
                self.clock.set(end);
                daemon.fire_due(end);
                return;
            }
            self.clock.set(next);
        }
    }

    /// The instants the runs of `wf` were made for, in order.
    fn fired(&self) -> Vec<DateTime<Utc>> {
        let runs = self
            .store
            .runs(&RunFilter {
                workflow: Some("wf".into()),
                status: None,
                limit: None,
                before: None,
            })
            .unwrap();
        let mut at: Vec<DateTime<Utc>> = runs
            .iter()
            .map(|r| {
                let text = r.trigger["scheduled_for"].as_str().unwrap();
                DateTime::parse_from_rfc3339(text).unwrap().to_utc()
            })
            .collect();
        at.sort();
        at
    }

    /// The trigger records of the runs, oldest first.
    fn records(&self) -> Vec<serde_json::Value> {
        let mut runs = self
            .store
            .runs(&RunFilter {
                workflow: Some("wf".into()),
                status: None,
                limit: None,
                before: None,
            })
            .unwrap();
        runs.sort_by_key(|r| r.id);
        runs.into_iter().map(|r| r.trigger).collect()
    }
}

const STEP: TimeDelta = TimeDelta::minutes(7);

#[test]
fn berlin_spring_forward_fires_a_nonexistent_wall_time_once_after_the_gap() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    let site = site(
        "triggers:\n  - schedule: '30 2 * * *'\n    timezone: Europe/Berlin\n",
        utc(2026, 3, 27, 12, 0),
    );
    let mut daemon = site.daemon();
    site.play(&mut daemon, utc(2026, 3, 31, 12, 0), STEP);
    assert_eq!(
        site.fired(),
        [
            utc(2026, 3, 28, 1, 30), // 02:30 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST, the first instant after the gap
            utc(2026, 3, 30, 0, 30), // 02:30 CEST
            utc(2026, 3, 31, 0, 30),
        ]
    );
    let records = site.records();
    assert!(
        records[1]["dst"]
            .as_str()
            .unwrap()
            .starts_with("SkippedShifted"),
        "{records:#?}"
    );
    assert_eq!(records[1]["type"], "schedule");
    assert_eq!(records[1]["spec"], "30 2 * * * (Europe/Berlin)");
}

#[test]
fn berlin_fall_back_fires_a_repeated_wall_time_once_at_its_first_occurrence() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    let site = site(
        "triggers:\n  - schedule: '30 2 * * *'\n    timezone: Europe/Berlin\n",
        utc(2026, 10, 23, 12, 0),
    );
    let mut daemon = site.daemon();
    site.play(&mut daemon, utc(2026, 10, 27, 12, 0), STEP);
    assert_eq!(
        site.fired(),
        [
            utc(2026, 10, 24, 0, 30), // 02:30 CEST
            utc(2026, 10, 25, 0, 30), // 02:30 CEST, the first of the two
            utc(2026, 10, 26, 1, 30), // 02:30 CET
            utc(2026, 10, 27, 1, 30),
        ]
    );
}

#[test]
fn an_hourly_berlin_schedule_follows_real_time_through_both_changes() {
    // Hour field `*`: every real hour, both passes through the repeated hour, nothing for
    // the skipped one: exactly one fire per UTC hour.
    for (from, to) in [
        (utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 4, 0)),
        (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 4, 0)),
    ] {
        let site = site(
            "triggers:\n  - schedule: '0 * * * *'\n    timezone: Europe/Berlin\n",
            from,
        );
        let mut daemon = site.daemon();
        site.play(&mut daemon, to, STEP);
        let expected: Vec<DateTime<Utc>> = (1..=6).map(|h| from + TimeDelta::hours(h)).collect();
        assert_eq!(site.fired(), expected, "from {from}");
    }
}

#[test]
fn new_york_spring_forward_and_fall_back() {
    // 2026-03-08: 02:00 EST becomes 03:00 EDT. 2026-11-01: 02:00 EDT becomes 01:00 EST.
    let spring = site(
        "triggers:\n  - schedule: '30 2 * * *'\n    timezone: America/New_York\n",
        utc(2026, 3, 6, 12, 0),
    );
    let mut daemon = spring.daemon();
    spring.play(&mut daemon, utc(2026, 3, 9, 12, 0), STEP);
    assert_eq!(
        spring.fired(),
        [
            utc(2026, 3, 7, 7, 30), // 02:30 EST
            utc(2026, 3, 8, 7, 0),  // 03:00 EDT, after the gap
            utc(2026, 3, 9, 6, 30), // 02:30 EDT
        ]
    );

    let fall = site(
        "triggers:\n  - schedule: '30 1 * * *'\n    timezone: America/New_York\n",
        utc(2026, 10, 30, 12, 0),
    );
    let mut daemon = fall.daemon();
    fall.play(&mut daemon, utc(2026, 11, 2, 12, 0), STEP);
    assert_eq!(
        fall.fired(),
        [
            utc(2026, 10, 31, 5, 30), // 01:30 EDT
            utc(2026, 11, 1, 5, 30),  // 01:30 EDT, the first of the two
            utc(2026, 11, 2, 6, 30),  // 01:30 EST
        ]
    );
}

#[test]
fn a_restart_across_a_dst_change_owes_each_missed_instant_once() {
    let site = site(
        "catchup: all\ntriggers:\n  - schedule: '30 2 * * *'\n    timezone: Europe/Berlin\n",
        utc(2026, 3, 27, 12, 0),
    );
    let mut first = site.daemon();
    site.play(&mut first, utc(2026, 3, 28, 12, 0), STEP);
    // Killed: nothing runs until Monday noon, across the spring-forward night.
    drop(first);
    site.clock.set(utc(2026, 3, 30, 12, 0));
    let mut second = site.daemon();
    site.play(&mut second, utc(2026, 3, 31, 12, 0), STEP);
    // Another restart, at once: nothing more is owed.
    drop(second);
    let mut third = site.daemon();
    third.fire_due(site.clock.now());
    assert_eq!(
        site.fired(),
        [
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 30, 0, 30),
            utc(2026, 3, 31, 0, 30),
        ]
    );
    let records = site.records();
    assert_eq!(records[1]["catchup"], true, "{records:#?}");
    assert_eq!(records[2]["catchup"], true, "{records:#?}");
    assert!(records[3].get("catchup").is_none(), "{records:#?}");
}

#[test]
fn catchup_decides_what_a_stopped_daemon_owes() {
    for (catchup, expected) in [
        ("none", vec![]),
        ("latest", vec![utc(2026, 1, 1, 5, 0)]),
        (
            "all",
            (2..=5).map(|h| utc(2026, 1, 1, h, 0)).collect::<Vec<_>>(),
        ),
    ] {
        let site = site(
            &format!("catchup: {catchup}\ntriggers:\n  - schedule: '0 * * * *'\n"),
            utc(2026, 1, 1, 0, 0),
        );
        let mut first = site.daemon();
        site.play(&mut first, utc(2026, 1, 1, 1, 10), STEP);
        assert_eq!(site.fired(), [utc(2026, 1, 1, 1, 0)]);
        // Down from 01:10 to 05:30.
        drop(first);
        site.clock.set(utc(2026, 1, 1, 5, 30));
        let mut second = site.daemon();
        let mut owed = site.fired();
        owed.remove(0);
        assert_eq!(owed, expected, "catchup {catchup}");
        // Then on as usual.
        site.play(&mut second, utc(2026, 1, 1, 6, 10), STEP);
        assert_eq!(site.fired().last(), Some(&utc(2026, 1, 1, 6, 0)));
        assert_eq!(site.fired().len(), expected.len() + 2);
    }
}

#[test]
fn a_daemon_that_fell_behind_fires_the_newest_instant_and_catchup_decides_the_rest() {
    for (catchup, count) in [("latest", 1), ("none", 1), ("all", 10)] {
        let site = site(
            &format!("catchup: {catchup}\ntriggers:\n  - every: 1m\n"),
            utc(2026, 1, 1, 0, 0),
        );
        let mut daemon = site.daemon();
        // The machine slept through ten instants.
        site.clock.set(utc(2026, 1, 1, 0, 10));
        daemon.fire_due(site.clock.now());
        let fired = site.fired();
        assert_eq!(fired.len(), count, "catchup {catchup}: {fired:?}");
        assert_eq!(fired.last(), Some(&utc(2026, 1, 1, 0, 10)));
        assert_eq!(daemon.next_due(), Some(utc(2026, 1, 1, 0, 11)));
    }
}

#[test]
fn an_at_trigger_fires_once_and_never_again_after_a_restart() {
    let site = site(
        "triggers:\n  - at: '2026-12-24T18:00:00+01:00'\n",
        utc(2026, 12, 24, 12, 0),
    );
    let mut daemon = site.daemon();
    site.play(&mut daemon, utc(2026, 12, 25, 0, 0), STEP);
    assert_eq!(site.fired(), [utc(2026, 12, 24, 17, 0)]);
    assert_eq!(daemon.next_due(), None);
    let mut again = site.daemon();
    site.play(&mut again, utc(2026, 12, 26, 0, 0), STEP);
    assert_eq!(site.fired().len(), 1);

    // An instant already past when the trigger is first seen never fires.
    let late = self::site(
        "triggers:\n  - at: '2026-12-24T18:00:00+01:00'\n",
        utc(2026, 12, 25, 12, 0),
    );
    let mut daemon = late.daemon();
    late.play(&mut daemon, utc(2026, 12, 26, 0, 0), STEP);
    assert!(late.fired().is_empty());
}

#[test]
fn an_edit_elsewhere_in_the_file_keeps_the_trigger_state() {
    let site = site("triggers:\n  - every: 1h\n", utc(2026, 1, 1, 0, 0));
    let mut daemon = site.daemon();
    site.play(&mut daemon, utc(2026, 1, 1, 2, 30), STEP);
    assert_eq!(site.fired().len(), 2);
    // A new description: same trigger, same state; no instant fires twice.
    std::fs::write(
        site.flows.join("wf.yaml"),
        format!("description: edited\ntriggers:\n  - every: 1h\n{JOB}"),
    )
    .unwrap();
    daemon.reload(site.clock.now());
    site.play(&mut daemon, utc(2026, 1, 1, 4, 30), STEP);
    assert_eq!(
        site.fired(),
        (1..=4).map(|h| utc(2026, 1, 1, h, 0)).collect::<Vec<_>>()
    );
}

#[test]
fn two_daemons_that_both_believe_they_lead_fire_each_instant_once() {
    // A leader that stalled past its lease does not know yet that another took over: both
    // fire. Each instant is claimed with its run, so the slower one's fires are refused.
    let site = site(
        "catchup: all\ntriggers:\n  - every: 1m\n",
        utc(2026, 1, 1, 0, 0),
    );
    let mut fast = site.daemon();
    let mut stalled = site.daemon();
    for minute in 1..=5 {
        site.clock.set(utc(2026, 1, 1, 0, minute));
        fast.fire_due(site.clock.now());
    }
    // The stalled one wakes with five instants due, catches up on all of them, and also
    // races the other for the sixth.
    site.clock.set(utc(2026, 1, 1, 0, 6));
    stalled.fire_due(site.clock.now());
    fast.fire_due(site.clock.now());
    let expected: Vec<_> = (1..=6).map(|m| utc(2026, 1, 1, 0, m)).collect();
    assert_eq!(site.fired(), expected);
    // Both go on from the instant after, without owing anything.
    assert_eq!(stalled.next_due(), Some(utc(2026, 1, 1, 0, 7)));
    assert_eq!(fast.next_due(), Some(utc(2026, 1, 1, 0, 7)));
}
