//! [`Fire`]: one instant at which a time-based trigger fires, and the [`DstNote`] that says
//! when a daylight-saving change shaped it.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

/// One fire of a time-based trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    /// The instant it fires.
    pub at: DateTime<Utc>,
    /// The same instant on the trigger's wall clock: in its time zone for a schedule, with
    /// the offset written for `at:`, in UTC for `every`.
    pub local: DateTime<FixedOffset>,
    /// Set when a daylight-saving change skipped or repeated the wall time that made it.
    pub note: Option<DstNote>,
}

/// How a daylight-saving change shaped a [`Fire`] (SPEC §7 "DST").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DstNote {
    /// The wall time the schedule names does not exist that day (clocks sprang forward over
    /// it), so the fire moved to the first instant after the gap. `wanted` is the earliest
    /// such wall time folded into this fire and `skipped` how many the gap held: with
    /// `*/15 1-3 * * *` and a 02:00→03:00 gap, 02:00, 02:15, 02:30 and 02:45 become one fire
    /// at 03:00 (which also stands for 03:00 itself).
    SkippedShifted {
        /// The first missing wall time this fire stands for.
        wanted: NaiveDateTime,
        /// How many missing wall times it stands for (at least 1).
        skipped: u32,
    },
    /// The wall time occurs twice that day (clocks fell back) and this is its first
    /// occurrence. A schedule that names its hours fires only this one.
    Repeated,
    /// The second occurrence of a repeated wall time. Only schedules whose hour field is `*`
    /// (real time) fire it.
    RepeatedSecondPass,
}

impl DstNote {
    /// A stable name for logs and JSON: `skipped_shifted`, `repeated` or
    /// `repeated_second_pass`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            DstNote::SkippedShifted { .. } => "skipped_shifted",
            DstNote::Repeated => "repeated",
            DstNote::RepeatedSecondPass => "repeated_second_pass",
        }
    }
}

impl Fire {
    /// A fire at `at`, shown on a wall clock with a fixed offset, without a note.
    #[must_use]
    pub fn plain(at: DateTime<Utc>, offset: FixedOffset) -> Self {
        Fire {
            at,
            local: at.with_timezone(&offset),
            note: None,
        }
    }
}
