//! Cron expressions as the workflow format writes them (SPEC §7), read as cron(8) and
//! croniter read them, and matched by the `croner` crate.
//!
//! # Grammar
//!
//! Five fields, `minute hour day-of-month month day-of-week`, or six with seconds first.
//! Each field is `*` or a list (`a,b`) of values (`5`, `MON`, `JAN`), ranges (`1-5`,
//! `MON-FRI`, wrapping `FRI-MON`), and steps (`*/15`, `1-30/5`, `10/20` = `10-59/20`).
//! Day-of-month also takes `L` (the last day of the month), `nW` (the weekday nearest day
//! n, within its month; alone in its field) and `?` (= `*`); day-of-week takes `d#n` (the
//! nth weekday d of the month: `1#2` is the second Monday; not mixed with plain weekdays)
//! and `?`. Weekdays are 0–7 with 0 and 7 both Sunday. Names are case-insensitive. The
//! macros are `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and
//! `@hourly`. Anything else (`@reboot`, `@every 5m`, a seventh field) is an error that says
//! what is supported.
//!
//! # Days: either field matches
//!
//! When both day fields are restricted, a day matches if *either* matches, as cron(8),
//! Vixie cron, croniter and GitHub Actions do: `0 0 1-7 * MON` fires on days 1–7 and on
//! every Monday. A field is unrestricted when it is `*` or `?`; as croniter reads it, a
//! field that lists every value (`1-31`, `0-6`) also counts as `*` when the other day field
//! contains a `*` (`*/2`), and as restricted otherwise.
//!
//! # How
//!
//! This module checks each field itself, to say which field is wrong and what it takes,
//! and hands `croner` a canonical pattern: six fields, plain values as explicit lists, each
//! day field either `*` or restricted by the rule above (croner's own test is whether the
//! field is the text `*`), in croner's default either-matches mode. Only `croner`'s wall-time
//! matching is used, on naive times; mapping wall times to instants (and daylight saving)
//! is [`crate::triggers::cron`]'s.

use chrono::{NaiveDate, NaiveDateTime};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression: which wall-clock times it names.
#[derive(Debug, Clone)]
pub struct CronExpr {
    cron: Cron,
    every_hour: bool,
    days_either: bool,
}

impl CronExpr {
    /// The first wall time strictly after `wall` that the expression names, or `None`
    /// past croner's calendar (which ends with year 5000).
    #[must_use]
    pub fn next_after(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_next_occurrence(&wall, false).ok()
    }

    /// Whether the expression names this wall time (to the second).
    #[must_use]
    pub fn matches(&self, wall: NaiveDateTime) -> bool {
        self.cron.is_time_matching(&wall).unwrap_or(false)
    }

    /// Whether the hour field covers every hour (`*`, `*/1`, `0-23`, `@hourly`).
    #[must_use]
    pub fn every_hour(&self) -> bool {
        self.every_hour
    }

    /// Whether both day fields are restricted, so that a day matches if either matches.
    #[must_use]
    pub fn days_either(&self) -> bool {
        self.days_either
    }
}

/// What the macros are, for messages.
const MACROS: &str = "@yearly (or @annually), @monthly, @weekly, @daily (or @midnight) and @hourly";

/// What an expression is, for messages.
const SHAPE: &str = "5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first)";

/// A cron expression that does not parse, with what is wrong and what is supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression `{expression}`: {why}")]
pub struct CronError {
    pub expression: String,
    pub why: String,
}

/// Parses a 5- or 6-field cron expression, or a macro such as `@daily`.
///
/// # Errors
/// What is wrong and what is supported, for a diagnostic.
pub fn parse_schedule(expression: &str) -> Result<CronExpr, CronError> {
    let invalid = |why: &str| CronError {
        expression: expression.to_owned(),
        why: why.to_owned(),
    };
    let trimmed = expression.trim();
    let expanded;
    let text = if let Some(name) = trimmed.strip_prefix('@') {
        expanded = expand_macro(name).map_err(|why| invalid(&why))?;
        expanded
    } else {
        trimmed
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (seconds, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        n => {
            return Err(invalid(&format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {n}"
            )));
        }
    };
    let parse = |kind: Kind, text: &str| parse_field(kind, text).map_err(|why| invalid(&why));
    let second = parse(Kind::Second, seconds)?;
    let minute = parse(Kind::Minute, rest[0])?;
    let hour = parse(Kind::Hour, rest[1])?;
    let dom = parse(Kind::DayOfMonth, rest[2])?;
    let month = parse(Kind::Month, rest[3])?;
    let dow = parse(Kind::DayOfWeek, rest[4])?;

    // croniter's reading of "unrestricted" (see the module docs).
    let dom_star = dom.star || (dom.covers_all(Kind::DayOfMonth) && dow.has_star);
    let dow_star = dow.star || (dow.covers_all(Kind::DayOfWeek) && dom.has_star);
    let pattern = [
        second.canonical(false),
        minute.canonical(false),
        hour.canonical(false),
        dom.canonical(dom_star),
        month.canonical(false),
        dow.canonical(dow_star),
    ]
    .join(" ");
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(&pattern)
        .map_err(|e| invalid(&e.to_string()))?;
    let parsed = CronExpr {
        cron,
        every_hour: hour.covers_all(Kind::Hour),
        days_either: !dom_star && !dow_star,
    };
    // A day that no month has (`0 0 30 2 *`) would leave the trigger silent for ever. The
    // calendar repeats every 400 years, so a search from 2000 that finds nothing is final.
    let from = NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date");
    if parsed.next_after(from).is_none() {
        return Err(invalid(
            "it never fires: no month it names has the day of the month it names",
        ));
    }
    Ok(parsed)
}

/// The fields of a macro, or why the name is not one.
fn expand_macro(name: &str) -> Result<&'static str, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        "reboot" => {
            return Err(format!(
                "`@reboot` is not supported: a schedule names times of day, and the daemon has no boot event; the macros are {MACROS}, or write {SHAPE}"
            ));
        }
        other => {
            let word = other.split_whitespace().next().unwrap_or_default();
            let mut why = format!("`@{word}` is not a supported macro");
            if word == "every"
                && let Some(interval) = name.split_whitespace().nth(1)
            {
                why = format!(
                    "`@every` is not cron: use a trigger `every: {interval}` instead of `schedule:`"
                );
            }
            return Err(format!("{why}; the macros are {MACROS}, or write {SHAPE}"));
        }
    })
}

/// A field's place in the expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Second => "second",
            Kind::Minute => "minute",
            Kind::Hour => "hour",
            Kind::DayOfMonth => "day-of-month",
            Kind::Month => "month",
            Kind::DayOfWeek => "day-of-week",
        }
    }

    /// The values `*` stands for.
    fn all(self) -> (u32, u32) {
        match self {
            Kind::Second | Kind::Minute => (0, 59),
            Kind::Hour => (0, 23),
            Kind::DayOfMonth => (1, 31),
            Kind::Month => (1, 12),
            Kind::DayOfWeek => (0, 6),
        }
    }

    /// The values that may be written (7 is Sunday again).
    fn written(self) -> (u32, u32) {
        match self {
            Kind::DayOfWeek => (0, 7),
            other => other.all(),
        }
    }

    /// Names for values, each standing for its index plus the offset.
    fn names(self) -> (&'static [&'static str], u32) {
        match self {
            Kind::Month => (
                &[
                    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                    "DEC",
                ],
                1,
            ),
            Kind::DayOfWeek => (&["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 0),
            _ => (&[], 0),
        }
    }

    /// What the field takes, for messages.
    fn takes(self) -> String {
        let values = match self {
            Kind::Second | Kind::Minute => "0-59",
            Kind::Hour => "0-23",
            Kind::DayOfMonth => "1-31, L (the last day) or nW (the weekday nearest day n)",
            Kind::Month => "1-12 or JAN-DEC",
            Kind::DayOfWeek => {
                "0-7 (0 and 7 are Sunday) or SUN-SAT, and d#n (1#2: the second Monday)"
            }
        };
        let (range, step, list) = match self {
            Kind::Month => ("JAN-MAR", "*/3", "JAN,JUL"),
            Kind::DayOfWeek => ("MON-FRI", "1-5/2", "SAT,SUN"),
            Kind::Hour => ("9-17", "*/6", "8,20"),
            _ => ("1-15", "*/5", "1,15"),
        };
        format!(
            "{} takes {values}, with `*`, ranges ({range}), steps ({step}) and lists ({list})",
            self.name()
        )
    }
}

/// One field, checked.
struct Field {
    /// The text has a `*` (`*`, `*/2`): croniter's test for a full list meaning `*`.
    has_star: bool,
    /// Written `*` or `?`.
    star: bool,
    /// Plain values, as a bit set (day-of-week 7 folded onto 0).
    values: u64,
    /// Day-of-month `L`.
    last: bool,
    /// Day-of-month `nW`.
    nearest: Option<u32>,
    /// Day-of-week `d#n`, as (d, n).
    nth: Vec<(u32, u32)>,
}

impl Field {
    fn covers_all(&self, kind: Kind) -> bool {
        let (low, high) = kind.all();
        (low..=high).all(|v| self.values & (1 << v) != 0)
    }

    /// The field as `croner` reads it; `star` makes a day field `*`.
    fn canonical(&self, star: bool) -> String {
        if star {
            return "*".to_owned();
        }
        let mut parts: Vec<String> = (0..64)
            .filter(|v| self.values & (1u64 << v) != 0)
            .map(|v| v.to_string())
            .collect();
        if self.last {
            parts.push("L".to_owned());
        }
        if let Some(day) = self.nearest {
            parts.push(format!("{day}W"));
        }
        parts.extend(self.nth.iter().map(|(d, n)| format!("{d}#{n}")));
        parts.join(",")
    }
}

/// Checks one field and collects what it names.
fn parse_field(kind: Kind, text: &str) -> Result<Field, String> {
    let mut field = Field {
        has_star: text.contains('*'),
        star: false,
        values: 0,
        last: false,
        nearest: None,
        nth: Vec::new(),
    };
    let problem =
        |item: &str, why: &str| format!("{} `{item}` {why}; {}", kind.name(), kind.takes());
    let days = matches!(kind, Kind::DayOfMonth | Kind::DayOfWeek);
    if text == "*" || (days && text == "?") {
        field.star = true;
        let (low, high) = kind.all();
        field.values = span(low, high);
        return Ok(field);
    }
    let items: Vec<&str> = text.split(',').collect();
    for written in &items {
        // Names are case-insensitive; messages quote the item as written.
        let upper = written.to_ascii_uppercase();
        let item = upper.as_str();
        let bad = |why: &str| problem(written, why);
        if item.is_empty() {
            return Err(problem(text, "has an empty list item"));
        }
        if item == "?" {
            return Err(bad("is `?`, which stands alone in a day field"));
        }
        if kind == Kind::DayOfMonth && item == "L" {
            field.last = true;
            continue;
        }
        if kind == Kind::DayOfMonth
            && let Some(day) = item.strip_suffix('W')
        {
            let n = number(day)
                .filter(|n| (1..=31).contains(n))
                .ok_or_else(|| bad("is not a day of the month followed by W"))?;
            if items.len() > 1 {
                return Err(bad("is in a list, but nW stands alone"));
            }
            field.nearest = Some(n);
            continue;
        }
        if kind == Kind::DayOfWeek
            && let Some((day, nth)) = item.split_once('#')
        {
            let d = value(kind, day).ok_or_else(|| bad("is not a weekday before #"))?;
            let n = number(nth)
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| bad("needs a week 1-5 after #"))?;
            field.nth.push((d % 7, n));
            continue;
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = number(step)
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad("needs a step of 1 or more after /"))?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let (all_low, all_high) = kind.all();
        let (low, high) = if range == "*" {
            (all_low, all_high)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = value(kind, a).ok_or_else(|| bad(out_of_range(kind, a)))?;
            let b = value(kind, b).ok_or_else(|| bad(out_of_range(kind, b)))?;
            (a, b)
        } else {
            let a = value(kind, range).ok_or_else(|| bad(out_of_range(kind, range)))?;
            // `10/20` runs from 10 to the field's end.
            (a, if step.is_some() { all_high.max(a) } else { a })
        };
        let step = step.unwrap_or(1);
        if low <= high {
            let mut v = low;
            while v <= high {
                field.values |= 1 << fold(kind, v);
                v = v.saturating_add(step);
            }
        } else if step == 1 {
            // A range that wraps round the field's end: `FRI-MON`, `22-2`.
            let (_, written_high) = kind.written();
            field.values |= span(low, written_high) | span(kind.written().0, high);
            if kind == Kind::DayOfWeek && field.values & (1 << 7) != 0 {
                field.values = (field.values & !(1 << 7)) | 1;
            }
        } else {
            return Err(bad(
                "wraps round the end of the field with a step; split it into two ranges",
            ));
        }
    }
    if !field.nth.is_empty() && field.values != 0 {
        return Err(problem(
            text,
            "mixes d#n with plain weekdays; write only d#n items, as croniter requires",
        ));
    }
    Ok(field)
}

/// Why a value is not one, for messages.
fn out_of_range(kind: Kind, text: &str) -> &'static str {
    if number(text).is_some() {
        "is out of range"
    } else if kind.names().0.is_empty() {
        "is not a number"
    } else {
        "is not a number or a name"
    }
}

/// Bits `low..=high`.
fn span(low: u32, high: u32) -> u64 {
    (low..=high).fold(0, |bits, v| bits | (1 << v))
}

/// Day-of-week 7 is 0, Sunday.
fn fold(kind: Kind, v: u32) -> u32 {
    if kind == Kind::DayOfWeek && v == 7 {
        0
    } else {
        v
    }
}

fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A value of the field as written (a number in range, or a name), upper case.
fn value(kind: Kind, text: &str) -> Option<u32> {
    let (low, high) = kind.written();
    if let Some(n) = number(text) {
        return (low..=high).contains(&n).then_some(n);
    }
    let (names, offset) = kind.names();
    names
        .iter()
        .position(|name| *name == text)
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| i + offset)
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Weekday};

    use super::*;

    fn wall(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, s)
            .unwrap()
    }

    fn next(expr: &str, from: NaiveDateTime, n: usize) -> Vec<NaiveDateTime> {
        let parsed = parse_schedule(expr).unwrap();
        let mut out = Vec::new();
        let mut cursor = from;
        for _ in 0..n {
            cursor = parsed.next_after(cursor).unwrap();
            out.push(cursor);
        }
        out
    }

    fn next_weekdays(expr: &str) -> Vec<Weekday> {
        next(expr, wall(2026, 11, 22, 0, 0, 0), 7) // a Sunday
            .iter()
            .map(Datelike::weekday)
            .collect()
    }

    fn days(expr: &str, from: NaiveDateTime, n: usize) -> Vec<String> {
        next(expr, from, n)
            .iter()
            .map(|t| t.format("%m-%d %a").to_string())
            .collect()
    }

    #[test]
    fn weekdays_follow_classic_cron() {
        use Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};
        assert_eq!(
            next_weekdays("0 2 * * 1-5"),
            [Mon, Tue, Wed, Thu, Fri, Mon, Tue]
        );
        assert_eq!(
            next_weekdays("0 2 * * 0"),
            [Sun, Sun, Sun, Sun, Sun, Sun, Sun]
        );
        assert_eq!(next_weekdays("0 2 * * 7")[0], Sun);
        assert_eq!(
            next_weekdays("0 2 * * 5-7"),
            [Sun, Fri, Sat, Sun, Fri, Sat, Sun]
        );
        assert_eq!(next_weekdays("0 2 * * SAT,SUN")[..2], [Sun, Sat]);
        assert_eq!(next_weekdays("0 2 * * fri-mon")[..4], [Sun, Mon, Fri, Sat]);
        assert_eq!(next_weekdays("0 2 * * 7-1")[..3], [Sun, Mon, Sun]);
    }

    #[test]
    fn five_and_six_fields() {
        assert!(parse_schedule("*/15 1-3 * * *").is_ok());
        assert!(parse_schedule("30 */15 1-3 * * *").is_ok());
        assert!(parse_schedule("@daily").is_ok());
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* * * * * * * *",
            "0 2 * * 8",
            "0 25 * * *",
            "0 0 0 1 1 * 2030",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
        assert_eq!(
            next("15 30 2 * * *", wall(2026, 1, 1, 0, 0, 0), 1),
            [wall(2026, 1, 1, 2, 30, 15)]
        );
    }

    #[test]
    fn day_fields_either_match_when_both_are_restricted() {
        let jan = wall(2025, 12, 31, 12, 0, 0);
        // Days 1–7 and every Monday (the 12th, 19th, 26th).
        assert_eq!(
            days("0 0 1-7 * MON", jan, 10),
            [
                "01-01 Thu",
                "01-02 Fri",
                "01-03 Sat",
                "01-04 Sun",
                "01-05 Mon",
                "01-06 Tue",
                "01-07 Wed",
                "01-12 Mon",
                "01-19 Mon",
                "01-26 Mon"
            ]
        );
        assert!(parse_schedule("0 0 1-7 * MON").unwrap().days_either());
        assert_eq!(
            days("0 12 1,15 * FRI", jan, 7),
            [
                "01-01 Thu",
                "01-02 Fri",
                "01-09 Fri",
                "01-15 Thu",
                "01-16 Fri",
                "01-23 Fri",
                "01-30 Fri"
            ]
        );
        // `L` and `#` take part in the same rule.
        assert_eq!(
            days("0 8 L * SUN", jan, 6),
            [
                "01-04 Sun",
                "01-11 Sun",
                "01-18 Sun",
                "01-25 Sun",
                "01-31 Sat",
                "02-01 Sun"
            ]
        );
        assert_eq!(
            days("0 0 1 * 1#2", jan, 4),
            ["01-01 Thu", "01-12 Mon", "02-01 Sun", "02-09 Mon"]
        );
        // One `*` field: only the other counts.
        for (expr, either) in [
            ("0 0 * * MON", false),
            ("0 0 1 * *", false),
            ("0 0 ? * MON", false),
            ("0 0 */2 * MON", true),
            ("0 0 1 * 0-6", true),
            ("0 0 1-31 * MON", true),
            // croniter: a full list counts as `*` when the other field has a `*`.
            ("0 0 1-31 * */2", false),
            ("0 0 * * 0-7", false),
        ] {
            assert_eq!(
                parse_schedule(expr).unwrap().days_either(),
                either,
                "{expr}"
            );
        }
        assert_eq!(
            days("0 0 1-31 * */2", jan, 3),
            ["01-01 Thu", "01-03 Sat", "01-04 Sun"]
        );
        assert_eq!(days("0 0 1 * 0-6", jan, 2), ["01-01 Thu", "01-02 Fri"]);
    }

    #[test]
    fn last_nearest_weekday_and_nth() {
        let from = wall(2026, 1, 1, 0, 0, 0);
        assert_eq!(
            days("0 0 L * *", from, 4),
            ["01-31 Sat", "02-28 Sat", "03-31 Tue", "04-30 Thu"]
        );
        assert_eq!(
            days("0 0 L 2 *", wall(2027, 6, 1, 0, 0, 0), 2),
            ["02-29 Tue", "02-28 Wed"]
        );
        // 15th: Thu, Sun → Mon 16th, Sun → Mon 16th, Wed, Fri, Mon, Wed, Sat → Fri 14th.
        assert_eq!(
            days("0 0 15W * *", from, 8),
            [
                "01-15 Thu",
                "02-16 Mon",
                "03-16 Mon",
                "04-15 Wed",
                "05-15 Fri",
                "06-15 Mon",
                "07-15 Wed",
                "08-14 Fri"
            ]
        );
        // 31W skips the months without a 31st (croniter would use their last day).
        assert_eq!(
            days("0 0 31W * *", from, 3),
            ["01-30 Fri", "03-31 Tue", "05-29 Fri"]
        );
        // 1W never leaves the month: Saturday the 1st moves on to Monday the 3rd.
        assert_eq!(days("0 0 1W 8 *", from, 1), ["08-03 Mon"]);
        assert_eq!(
            days("0 0 * * 1#2", from, 3),
            ["01-12 Mon", "02-09 Mon", "03-09 Mon"]
        );
        assert_eq!(
            days("0 0 * * FRI#5", from, 3),
            ["01-30 Fri", "05-29 Fri", "07-31 Fri"]
        );
    }

    #[test]
    fn macros_steps_and_names() {
        let from = wall(2026, 5, 17, 10, 30, 0); // a Sunday
        let at = |expr| next(expr, from, 2);
        assert_eq!(
            at("@yearly"),
            [wall(2027, 1, 1, 0, 0, 0), wall(2028, 1, 1, 0, 0, 0)]
        );
        assert_eq!(at("@annually"), at("@YEARLY"));
        assert_eq!(
            at("@monthly"),
            [wall(2026, 6, 1, 0, 0, 0), wall(2026, 7, 1, 0, 0, 0)]
        );
        assert_eq!(
            at("@weekly"),
            [wall(2026, 5, 24, 0, 0, 0), wall(2026, 5, 31, 0, 0, 0)]
        );
        assert_eq!(
            at("@daily"),
            [wall(2026, 5, 18, 0, 0, 0), wall(2026, 5, 19, 0, 0, 0)]
        );
        assert_eq!(at("@midnight"), at("@daily"));
        assert_eq!(
            at("@hourly"),
            [wall(2026, 5, 17, 11, 0, 0), wall(2026, 5, 17, 12, 0, 0)]
        );
        assert_eq!(
            at("10/20 * * * *"),
            [wall(2026, 5, 17, 10, 50, 0), wall(2026, 5, 17, 11, 10, 0)]
        );
        assert_eq!(
            at("0 22-2 * * *"),
            [wall(2026, 5, 17, 22, 0, 0), wall(2026, 5, 17, 23, 0, 0)]
        );
        assert_eq!(
            at("0 0 1 nov-feb *"),
            [wall(2026, 11, 1, 0, 0, 0), wall(2026, 12, 1, 0, 0, 0)]
        );
        // An equal range is its one value, as in cron(8) (croniter reads the whole field).
        assert_eq!(
            at("0 0 5-5 * *"),
            [wall(2026, 6, 5, 0, 0, 0), wall(2026, 7, 5, 0, 0, 0)]
        );
        assert!(parse_schedule("@hourly").unwrap().every_hour());
        assert!(parse_schedule("0 */1 * * *").unwrap().every_hour());
        assert!(parse_schedule("0 0-23 * * *").unwrap().every_hour());
        assert!(!parse_schedule("0 0-22 * * *").unwrap().every_hour());
    }

    #[test]
    fn errors_say_what_is_wrong_and_what_is_supported() {
        let error = |expr| parse_schedule(expr).unwrap_err().to_string();
        let reboot = error("@reboot");
        assert!(
            reboot.starts_with("invalid cron expression `@reboot`: `@reboot` is not supported")
        );
        for expected in [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
            "5 fields",
            "6 (seconds first)",
        ] {
            assert!(reboot.contains(expected), "{reboot}");
        }
        let every = error("@every 5m");
        assert!(every.contains("use a trigger `every: 5m`"), "{every}");
        assert!(every.contains("the macros are @yearly"), "{every}");
        assert!(error("@often").contains("`@often` is not a supported macro"));
        let weekday = error("0 0 * * 8");
        assert_eq!(
            weekday,
            "invalid cron expression `0 0 * * 8`: day-of-week `8` is out of range; day-of-week \
             takes 0-7 (0 and 7 are Sunday) or SUN-SAT, and d#n (1#2: the second Monday), with \
             `*`, ranges (MON-FRI), steps (1-5/2) and lists (SAT,SUN)"
        );
        for (expr, expected) in [
            (
                "61 * * * *",
                "minute `61` is out of range; minute takes 0-59",
            ),
            ("0 25 * * *", "hour `25` is out of range; hour takes 0-23"),
            ("61 0 2 * * *", "second `61` is out of range"),
            (
                "0 0 0 * *",
                "day-of-month `0` is out of range; day-of-month takes 1-31, L",
            ),
            (
                "0 0 * 13 *",
                "month `13` is out of range; month takes 1-12 or JAN-DEC",
            ),
            ("0 0 * JUNE *", "month `JUNE` is not a number or a name"),
            ("x * * * *", "minute `x` is not a number;"),
            ("0 0 * june *", "month `june` is not a number or a name"),
            (
                "*/0 * * * *",
                "minute `*/0` needs a step of 1 or more after /",
            ),
            ("0 0 1W,15 * *", "`1W` is in a list, but nW stands alone"),
            (
                "0 0 32W * *",
                "`32W` is not a day of the month followed by W",
            ),
            ("0 0 * * 1#6", "`1#6` needs a week 1-5 after #"),
            ("0 0 * * 1#2,3", "mixes d#n with plain weekdays"),
            ("0 0 * * 5L", "day-of-week `5L` is not a number or a name"),
            ("0 0 1,,2 * *", "`1,,2` has an empty list item"),
            ("0 0 1,? * *", "`?` is `?`, which stands alone"),
            (
                "0 22-2/2 * * *",
                "wraps round the end of the field with a step",
            ),
            ("0 0 * * * * *", "found 7"),
            ("0 0 30 2 *", "it never fires"),
            ("0 0 31 4,6,9,11 *", "it never fires"),
        ] {
            let message = error(expr);
            assert!(
                message.starts_with(&format!("invalid cron expression `{expr}`: ")),
                "{message}"
            );
            assert!(message.contains(expected), "{expr}: {message}");
        }
        // What never fires in some years still fires: leap days, fifth Mondays in February.
        assert!(parse_schedule("0 0 29 2 *").is_ok());
        assert!(parse_schedule("0 0 * 2 1#5").is_ok());
    }
}
