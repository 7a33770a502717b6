//! The time resource's `source` and `params`, field for field as concourse/time-resource
//! accepts them.
//!
//! [`Source::validate`] turns the raw strings into [`Settings`] (a duration, a time zone, times
//! of day, weekdays), so every mistake is reported before anything runs, naming its field.

use jiff::civil::{DateTime, Weekday};
use jiff::tz::TimeZone;
use resource_protocol::{InvalidRequest, duration, lenient};
use serde::Deserialize;

/// `source` of a time resource. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Go duration between versions (`60s`, `90m`, `1h30m`); none: one version per day.
    #[serde(default)]
    pub interval: Option<String>,
    /// IANA time zone in which `start`, `stop`, `days` and `start_after` are read (default UTC).
    #[serde(default)]
    pub location: Option<String>,
    /// Start of the daily window (`3:04 PM`, `3PM`, `3 PM`, `15:04`, `1504`, optionally
    /// followed by a deprecated offset such as ` -0700`).
    #[serde(default)]
    pub start: Option<String>,
    /// End of the daily window (same formats); required with `start`.
    #[serde(default)]
    pub stop: Option<String>,
    /// Weekdays on which versions may appear (`Monday` or `mon`, any case).
    #[serde(default)]
    pub days: Option<Vec<String>>,
    /// Emit the current time on the first check even outside the window.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub initial_version: Option<bool>,
    /// No version before this wall-clock time in `location` (`2006-01-02T15:04:05`,
    /// `2006-01-02T15:04`, `2006-01-02T15`, `2006-01-02`, `2006-01-02 15:04:05`).
    #[serde(default)]
    pub start_after: Option<String>,
}

/// `params` of a get step: none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {}

/// `params` of a put step: none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {}

/// A time of day in minutes, as the official resource keeps it: converted to UTC when an
/// offset was written, then read in `location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0–23.
    pub hour: i8,
    /// 0–59.
    pub minute: i8,
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `interval` in nanoseconds.
    pub interval: Option<i64>,
    /// The zone of `location`.
    pub zone: TimeZone,
    /// The zone's name as Go prints it (`UTC` when unset or empty).
    pub location_name: Option<String>,
    /// `start` and `stop` (both or neither).
    pub window: Option<(TimeOfDay, TimeOfDay)>,
    /// `days`; `None` when unset (every day), as given otherwise.
    pub days: Option<Vec<Weekday>>,
    /// `initial_version`.
    pub initial_version: bool,
    /// `start_after`, a wall-clock time in `zone`.
    pub start_after: Option<DateTime>,
}

impl Source {
    /// Checks every field; each error names it.
    pub fn validate(&self) -> Result<Settings, InvalidRequest> {
        let interval = self
            .interval
            .as_deref()
            .map(duration::parse)
            .transpose()
            .map_err(|e| InvalidRequest::new(format!("source.interval: {e}")))?;
        let (zone, location_name) = match self.location.as_deref() {
            None => (TimeZone::UTC, None),
            Some(name) => (load_location(name)?, Some(location_display(name))),
        };
        let start = self
            .start
            .as_deref()
            .map(|s| parse_time_of_day(s).map_err(|e| field_error("start", &e)))
            .transpose()?;
        let stop = self
            .stop
            .as_deref()
            .map(|s| parse_time_of_day(s).map_err(|e| field_error("stop", &e)))
            .transpose()?;
        let window = match (start, stop) {
            (Some(start), Some(stop)) => Some((start, stop)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(InvalidRequest::new(
                    "source.stop: must be set when source.start is set",
                ));
            }
            (None, Some(_)) => {
                return Err(InvalidRequest::new(
                    "source.start: must be set when source.stop is set",
                ));
            }
        };
        let days = self
            .days
            .as_ref()
            .map(|days| {
                days.iter()
                    .enumerate()
                    .map(|(i, day)| {
                        parse_weekday(day).ok_or_else(|| {
                            InvalidRequest::new(format!(
                                "source.days[{i}]: unknown weekday {day:?} (expected Sunday … Saturday, or sun … sat)"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let start_after = self
            .start_after
            .as_deref()
            .map(|s| parse_start_after(s).map_err(|e| field_error("start_after", &e)))
            .transpose()?;
        Ok(Settings {
            interval,
            zone,
            location_name,
            window,
            days,
            initial_version: self.initial_version.unwrap_or(false),
            start_after,
        })
    }
}

fn field_error(field: &str, message: &str) -> InvalidRequest {
    InvalidRequest::new(format!("source.{field}: {message}"))
}

/// Go's `time.LoadLocation`: empty and `UTC` are UTC, `Local` is the system zone, anything
/// else an IANA name.
fn load_location(name: &str) -> Result<TimeZone, InvalidRequest> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| {
            InvalidRequest::new(format!(
                "source.location: unknown time zone {name:?} (expected an IANA name such as America/New_York or Europe/Berlin)"
            ))
        }),
    }
}

fn location_display(name: &str) -> String {
    if name.is_empty() {
        "UTC".to_owned()
    } else {
        name.to_owned()
    }
}

/// The formats Go tries, in its order, for error messages.
const TIME_FORMATS: &str =
    "3:04 PM, 3PM, 3 PM, 15:04, 1504, each optionally followed by an offset like -0700";

/// Parses `start`/`stop` as the official resource does: the first of `3:04 PM`, `3PM`,
/// `3 PM`, `15:04`, `1504` that matches (each optionally with ` -0700`), converted to UTC.
pub fn parse_time_of_day(text: &str) -> Result<TimeOfDay, String> {
    let bad = || format!("invalid time format {text:?}, must be one of: {TIME_FORMATS}");
    let (clock, offset_minutes) = split_offset(text).ok_or_else(bad)?;
    let (hour, minute) = parse_clock(clock).ok_or_else(bad)?;
    let minutes = (i32::from(hour) * 60 + i32::from(minute) - offset_minutes).rem_euclid(24 * 60);
    Ok(TimeOfDay {
        hour: (minutes / 60) as i8,
        minute: (minutes % 60) as i8,
    })
}

/// `"8:00 PM -0700"` → `("8:00 PM", -420)`; no offset → `(text, 0)`.
fn split_offset(text: &str) -> Option<(&str, i32)> {
    let Some((clock, zone)) = text.rsplit_once(' ') else {
        return Some((text, 0));
    };
    let bytes = zone.as_bytes();
    if !matches!(bytes.first(), Some(b'+' | b'-')) {
        return Some((text, 0));
    }
    if bytes.len() != 5 || !bytes[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hours: i32 = zone[1..3].parse().ok()?;
    let minutes: i32 = zone[3..5].parse().ok()?;
    if hours > 24 || minutes > 60 {
        return None;
    }
    let total = hours * 60 + minutes;
    Some((clock, if bytes[0] == b'-' { -total } else { total }))
}

/// The clock part: `3:04 PM`, `3PM`, `3 PM`, `15:04` or `1504`.
fn parse_clock(text: &str) -> Option<(i8, i8)> {
    // Go matches `PM`/`AM` in upper case only; lower case is accepted here as well.
    let upper = text.to_ascii_uppercase();
    let meridiem = upper
        .strip_suffix("PM")
        .map(|rest| (rest, true))
        .or_else(|| upper.strip_suffix("AM").map(|rest| (rest, false)));
    if let Some((rest, pm)) = meridiem {
        let (hour, minute) = match rest.strip_suffix(' ') {
            Some(with_space) => match with_space.split_once(':') {
                Some((h, m)) => (hour_digits(h)?, minute_digits(m)?),
                None => (hour_digits(with_space)?, 0),
            },
            // `3PM` only: Go's `3:04PM` is not among the formats.
            None => (hour_digits(rest)?, 0),
        };
        if hour > 12 || minute > 59 {
            return None;
        }
        let hour = match (pm, hour) {
            (true, h) if h < 12 => h + 12,
            (false, 12) => 0,
            (_, h) => h,
        };
        return Some((hour, minute));
    }
    let (hour, minute) = match text.split_once(':') {
        Some((h, m)) => (hour_digits(h)?, minute_digits(m)?),
        None if text.len() == 4 => (hour_digits(&text[..2])?, minute_digits(&text[2..])?),
        None => return None,
    };
    (hour < 24 && minute < 60).then_some((hour, minute))
}

/// One or two digits.
fn hour_digits(text: &str) -> Option<i8> {
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Exactly two digits.
fn minute_digits(text: &str) -> Option<i8> {
    if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Go's weekday names: full or three letters, any case.
pub fn parse_weekday(text: &str) -> Option<Weekday> {
    Some(match text.to_ascii_lowercase().as_str() {
        "sun" | "sunday" => Weekday::Sunday,
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        _ => return None,
    })
}

/// Go's `Weekday.String`.
pub fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Sunday => "Sunday",
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
    }
}

/// `start_after`: `2006-01-02T15:04:05`, `2006-01-02T15:04`, `2006-01-02T15`, `2006-01-02`
/// or `2006-01-02 15:04:05`.
pub fn parse_start_after(text: &str) -> Result<DateTime, String> {
    let bad = || {
        format!(
            "invalid date format {text:?}, must be one of: 2006-01-02T15:04:05, 2006-01-02T15:04, 2006-01-02T15, 2006-01-02, 2006-01-02 15:04:05"
        )
    };
    let fixed = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, time, separator) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t), text.as_bytes()[d.len()]),
        None => (text, None, b'T'),
    };
    let mut date_parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return Err(bad());
    };
    let (year, month, day) = (
        fixed(y, 4).ok_or_else(bad)?,
        fixed(m, 2).ok_or_else(bad)?,
        fixed(d, 2).ok_or_else(bad)?,
    );
    let (hour, minute, second) = match time {
        None => (0, 0, 0),
        Some(time) => {
            let parts: Vec<&str> = time.split(':').collect();
            let hour = parts.first().and_then(|h| hour_digits(h)).ok_or_else(bad)?;
            match (separator, parts.len()) {
                (b'T', 1) => (i64::from(hour), 0, 0),
                (b'T', 2) => (i64::from(hour), fixed(parts[1], 2).ok_or_else(bad)?, 0),
                (_, 3) => (
                    i64::from(hour),
                    fixed(parts[1], 2).ok_or_else(bad)?,
                    fixed(parts[2], 2).ok_or_else(bad)?,
                ),
                _ => return Err(bad()),
            }
        }
    };
    crate::go_time::civil_datetime([year, month, day, hour, minute, second], 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_tod(input: &str, expected: Option<(i8, i8)>) {
        let got = parse_time_of_day(input).ok().map(|t| (t.hour, t.minute));
        assert_eq!(got, expected, "{input:?}");
    }

    #[test]
    fn times_of_day_in_go_formats() {
        check_tod("3:04 PM", Some((15, 4)));
        check_tod("8:00 PM", Some((20, 0)));
        check_tod("12:00 AM", Some((0, 0)));
        check_tod("12:30 PM", Some((12, 30)));
        check_tod("3PM", Some((15, 0)));
        check_tod("3 PM", Some((15, 0)));
        check_tod("11 am", Some((11, 0)));
        check_tod("20:00", Some((20, 0)));
        check_tod("9:05", Some((9, 5)));
        check_tod("1504", Some((15, 4)));
        check_tod("0000", Some((0, 0)));
        // An offset is converted to UTC, then (like upstream) read in `location`.
        check_tod("3:04 PM -0700", Some((22, 4)));
        check_tod("3:04 -0100", Some((4, 4)));
        check_tod("9:04 -0700", Some((16, 4)));
        check_tod("1:00 AM +0200", Some((23, 0)));
        check_tod("2PM +0530", Some((8, 30)));
        for bad in [
            "",
            "25:00",
            "13 PM",
            "3:4 PM",
            "3:04PM",
            "904",
            "12345",
            "3:04 PM PST",
            "3:04 -07",
            "noon",
            "19:00:00",
        ] {
            check_tod(bad, None);
        }
    }

    #[test]
    fn weekdays() {
        assert_eq!(parse_weekday("Monday"), Some(Weekday::Monday));
        assert_eq!(parse_weekday("tue"), Some(Weekday::Tuesday));
        assert_eq!(parse_weekday("SATURDAY"), Some(Weekday::Saturday));
        assert_eq!(parse_weekday("Mondays"), None);
        assert_eq!(weekday_name(Weekday::Sunday), "Sunday");
    }

    #[test]
    fn start_after_formats() {
        let cases = [
            ("2023-10-01T00:00:00", Some("2023-10-01T00:00:00")),
            ("2023-10-01T09:30", Some("2023-10-01T09:30:00")),
            ("2023-10-01T09", Some("2023-10-01T09:00:00")),
            ("2023-10-01", Some("2023-10-01T00:00:00")),
            ("2023-10-01 09:30:15", Some("2023-10-01T09:30:15")),
            ("2023-10-01 09:30", None),
            ("2023-10-01T25:00", None),
            ("2023-02-30", None),
            ("2023/10/01", None),
            ("01-10-2023", None),
        ];
        for (input, expected) in cases {
            let got = parse_start_after(input).ok().map(|d| d.to_string());
            assert_eq!(got.as_deref(), expected, "{input}");
        }
    }

    fn validate(source: serde_json::Value) -> Result<Settings, String> {
        serde_json::from_value::<Source>(source)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                serde_json::json!({"interval": "1d"}),
                "source.interval: unknown unit \"d\" in duration \"1d\"",
            ),
            (
                serde_json::json!({"location": "Mars/Olympus"}),
                "source.location: unknown time zone \"Mars/Olympus\"",
            ),
            (
                serde_json::json!({"start": "8 PM"}),
                "source.stop: must be set when source.start is set",
            ),
            (
                serde_json::json!({"stop": "8 PM"}),
                "source.start: must be set when source.stop is set",
            ),
            (
                serde_json::json!({"start": "25:00", "stop": "1:00"}),
                "source.start: invalid time format \"25:00\"",
            ),
            (
                serde_json::json!({"days": ["Monday", "Funday"]}),
                "source.days[1]: unknown weekday \"Funday\"",
            ),
            (
                serde_json::json!({"start_after": "tomorrow"}),
                "source.start_after: invalid date format \"tomorrow\"",
            ),
        ];
        for (source, expected) in cases {
            let err = validate(source.clone()).unwrap_err();
            assert!(err.contains(expected), "{source}: {err}");
        }
        let ok = validate(serde_json::json!({
            "interval": "1h30m", "location": "America/New_York", "start": "8:00 PM",
            "stop": "20:30", "days": ["mon", "Friday"], "initial_version": "true",
            "start_after": "2023-10-01"
        }))
        .unwrap();
        assert_eq!(ok.interval, Some(5_400_000_000_000));
        assert_eq!(ok.location_name.as_deref(), Some("America/New_York"));
        assert!(ok.initial_version);
        assert_eq!(ok.days, Some(vec![Weekday::Monday, Weekday::Friday]));
        let empty = validate(serde_json::json!({"location": ""})).unwrap();
        assert_eq!(empty.location_name.as_deref(), Some("UTC"));
    }
}
