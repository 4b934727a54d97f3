//! Cron expressions as the workflow format writes them (5 fields, or 6 with seconds first),
//! turned into the `cron` crate's schedules.
//!
//! The `cron` crate numbers weekdays 1–7 from Sunday (Quartz style) while classic cron uses
//! 0–7 with 0 and 7 both Sunday; [`parse_schedule`] translates numeric weekdays so that
//! `0 2 * * 1-5` means Monday to Friday, as a crontab user expects.

use std::str::FromStr;

use cron::Schedule;

/// Parses a 5- or 6-field cron expression (or a shorthand such as `@daily`).
///
/// # Errors
/// A message saying what is wrong, for a diagnostic.
pub fn parse_schedule(expression: &str) -> Result<Schedule, String> {
    // The cron crate's messages quote the expression over several lines; keep the last one.
    let invalid = |why: &str| {
        let why = why.lines().last().unwrap_or(why).trim();
        // The crate says "less than 59" for a field whose largest value is 59.
        let why = why.replace("must be less than", "must be at most");
        format!("invalid cron expression `{expression}`: {why}")
    };
    let trimmed = expression.trim();
    if trimmed.starts_with('@') {
        return Schedule::from_str(trimmed).map_err(|e| invalid(&e.to_string()));
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let (seconds, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        n => {
            return Err(invalid(&format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {n}"
            )));
        }
    };
    let weekday = translate_weekdays(rest[4]).map_err(|why| invalid(&why))?;
    let full = format!(
        "{seconds} {} {} {} {} {weekday}",
        rest[0], rest[1], rest[2], rest[3]
    );
    Schedule::from_str(&full).map_err(|e| invalid(&e.to_string()))
}

/// Maps classic weekday numbers (0–7, Sunday = 0 or 7) onto the `cron` crate's 1–7.
fn translate_weekdays(field: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        let number = |text: &str| -> Result<Option<u32>, String> {
            if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
                let n: u32 = text
                    .parse()
                    .map_err(|_| format!("`{text}` is not a weekday"))?;
                if n > 7 {
                    return Err(format!("weekday `{n}` is out of range 0-7"));
                }
                Ok(Some(n))
            } else {
                Ok(None)
            }
        };
        let translated = match range.split_once('-') {
            Some((a, b)) => match (number(a)?, number(b)?) {
                (Some(a), Some(7)) if a > 0 && step.is_none() => format!("{}-7,1", a + 1),
                (Some(a), Some(b)) if b < 7 || a == 0 => {
                    if b == 7 {
                        "1-7".to_owned()
                    } else {
                        format!("{}-{}", a + 1, b + 1)
                    }
                }
                (Some(_), Some(_)) => {
                    return Err("write this weekday range with names (MON-SUN)".to_owned());
                }
                _ => range.to_owned(),
            },
            None => match number(range)? {
                Some(n) => (n % 7 + 1).to_string(),
                None => range.to_owned(),
            },
        };
        parts.push(match step {
            Some(step) => format!("{translated}/{step}"),
            None => translated,
        });
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    use super::*;

    fn next_weekdays(expr: &str) -> Vec<Weekday> {
        let schedule = parse_schedule(expr).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap(); // a Sunday
        schedule
            .after(&start)
            .take(7)
            .map(|t| t.weekday())
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
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }
}
