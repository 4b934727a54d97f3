//! Not a workflow: what `CronSchedule::next_fire` costs per call, the figure quoted in the
//! book's "Schedules and DST" chapter (docs/src/schedules.md). Run it from the repository root with
//!
//! ```text
//! cargo run --release --example cron_cost
//! ```
//!
//! Each schedule is chained as the daemon chains it (the next fire after the last one),
//! 20,000 calls from 2026-01-01 or until the schedule ends, three times; the median of the
//! three averages is printed.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use coreflow::triggers::CronSchedule;

fn main() {
    let cases = [
        ("30 2 * * *", "Europe/Berlin"),
        ("*/15 1-3 * * *", "America/New_York"),
        ("0 * * * *", "Europe/Berlin"),
        ("* * * * * *", "UTC"),
        ("0 0 1-7 * MON", "Australia/Sydney"),
        ("0 0 L * *", "Europe/Berlin"),
        ("0 0 15W * *", "UTC"),
        ("0 0 * * 1#2", "America/New_York"),
        ("0 0 29 2 *", "Europe/Berlin"),
    ];
    println!("next_fire, median of 3 runs, release build");
    for (expr, zone) in cases {
        let schedule = CronSchedule::from_spec(expr, Some(zone)).expect("a valid schedule");
        let mut runs: Vec<(Duration, u32)> = (0..3).map(|_| chain(&schedule, 20_000)).collect();
        runs.sort();
        let (each, calls) = runs[1];
        println!("  {expr:<16} {zone:<18} {each:>9.2?} per call ({calls} calls)");
    }
}

/// The average time of up to `calls` chained calls, and how many were made.
fn chain(schedule: &CronSchedule, calls: u32) -> (Duration, u32) {
    let mut cursor = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut made = 0;
    let started = Instant::now();
    while made < calls {
        match std::hint::black_box(schedule.next_fire(cursor)) {
            Some(fire) => cursor = fire.at,
            None => break,
        }
        made += 1;
    }
    (started.elapsed() / made.max(1), made)
}
