//! The parts of Go's `time` package whose exact behaviour the official resource exposes:
//! `time.Date` in a location (including which side of a DST gap or overlap it picks),
//! `AddDate` by days, RFC 3339 with nanoseconds as versions are written, and the
//! `2006-01-02 15:04:05.999999999 -0700 MST` layout of the `timestamp` file.
//!
//! Instants and zones come from `jiff`; only Go's choices are written here. Nothing here reads
//! the clock: callers pass "now" in, so every rule is testable with a fixed time.

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// An instant together with the UTC offset it is displayed in, like a Go `time.Time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTime {
    /// The instant.
    pub instant: Timestamp,
    /// The offset its wall clock is shown in.
    pub offset: Offset,
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`), which the official resource treats as "no
/// version".
pub fn go_zero_time() -> Timestamp {
    Offset::UTC
        .to_timestamp(jiff::civil::date(1, 1, 1).at(0, 0, 0, 0))
        .unwrap_or(Timestamp::MIN)
}

impl GoTime {
    /// `instant` shown in `zone` (Go's `t.In(loc)`).
    pub fn in_zone(instant: Timestamp, zone: &TimeZone) -> Self {
        Self {
            instant,
            offset: zone.to_offset(instant),
        }
    }

    /// `instant` shown in UTC.
    pub fn utc(instant: Timestamp) -> Self {
        Self {
            instant,
            offset: Offset::UTC,
        }
    }

    /// The wall clock.
    pub fn wall(&self) -> DateTime {
        self.offset.to_datetime(self.instant)
    }

    /// Whole seconds since the epoch, rounded down like Go's `Unix()`.
    pub fn unix_seconds(&self) -> i64 {
        let seconds = self.instant.as_second();
        if self.instant.subsec_nanosecond() < 0 {
            seconds - 1
        } else {
            seconds
        }
    }

    /// Go's `time.RFC3339Nano` (what `json.Marshal` writes): fraction without trailing zeros,
    /// `Z` for a zero offset, else `±hh:mm`.
    pub fn rfc3339_nano(&self) -> String {
        let mut out = wall_clock(self.wall(), 'T');
        let seconds = self.offset.seconds();
        if seconds == 0 {
            out.push('Z');
        } else {
            let (sign, minutes) = sign_and_minutes(seconds);
            out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
        }
        out
    }

    /// The `timestamp` file's layout, `2006-01-02 15:04:05.999999999 -0700 MST`, for a time
    /// parsed from a version: Go names a zero offset `UTC` and shows any other parsed offset
    /// numerically twice (`-0500 -0500`), because it has no zone name for it.
    pub fn timestamp_layout(&self) -> String {
        let seconds = self.offset.seconds();
        let (sign, minutes) = sign_and_minutes(seconds);
        let numeric = format!("{sign}{:02}{:02}", minutes / 60, minutes % 60);
        let name = if seconds == 0 { "UTC" } else { &numeric };
        format!("{} {numeric} {name}", wall_clock(self.wall(), ' '))
    }

    /// Parses RFC 3339 as Go's `time.Time` JSON decoding does: `2006-01-02T15:04:05`, an
    /// optional fraction, then `Z` or `±hh:mm`. The offset is kept for re-formatting.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not an RFC 3339 time (expected e.g. 2006-01-02T15:04:05.999999999Z or 2006-01-02T15:04:05-07:00)"
            )
        };
        let bytes = text.as_bytes();
        let digits = |from: usize, len: usize| -> Result<i64, String> {
            let part = text.get(from..from + len).ok_or_else(bad)?;
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<i64>().map_err(|_| bad())
        };
        if bytes.len() < 20
            || bytes[4] != b'-'
            || bytes[7] != b'-'
            || !matches!(bytes[10], b'T' | b't')
            || bytes[13] != b':'
            || bytes[16] != b':'
        {
            return Err(bad());
        }
        let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
        let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
        let mut rest = &text[19..];
        let mut nanos: i64 = 0;
        if let Some(after) = rest.strip_prefix(['.', ',']) {
            let len = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if len == 0 {
                return Err(bad());
            }
            let kept = &after[..len.min(9)];
            nanos = kept.parse::<i64>().map_err(|_| bad())? * 10_i64.pow(9 - kept.len() as u32);
            rest = &after[len..];
        }
        let offset_seconds = match rest {
            "Z" | "z" => 0,
            _ => {
                let b = rest.as_bytes();
                if b.len() != 6 || !matches!(b[0], b'+' | b'-') || b[3] != b':' {
                    return Err(bad());
                }
                let hh = rest[1..3].parse::<i32>().map_err(|_| bad())?;
                let mm = rest[4..6].parse::<i32>().map_err(|_| bad())?;
                if !rest[1..3]
                    .bytes()
                    .chain(rest[4..6].bytes())
                    .all(|c| c.is_ascii_digit())
                    || hh > 23
                    || mm > 59
                {
                    return Err(bad());
                }
                let magnitude = hh * 3600 + mm * 60;
                if b[0] == b'-' { -magnitude } else { magnitude }
            }
        };
        let wall =
            civil_datetime([year, month, day, hour, minute, second], nanos).ok_or_else(bad)?;
        let offset = Offset::from_seconds(offset_seconds).map_err(|_| bad())?;
        let instant = offset.to_timestamp(wall).map_err(|_| bad())?;
        Ok(Self { instant, offset })
    }
}

/// `[year, month, day, hour, minute, second]` and nanoseconds as parsed digits, as a civil
/// date-time; `None` when a field is out of range or the date does not exist.
pub fn civil_datetime(fields: [i64; 6], nanos: i64) -> Option<DateTime> {
    let [year, month, day, hour, minute, second] = fields;
    let narrow = |v: i64| i8::try_from(v).ok();
    DateTime::new(
        i16::try_from(year).ok()?,
        narrow(month)?,
        narrow(day)?,
        narrow(hour)?,
        narrow(minute)?,
        narrow(second)?,
        i32::try_from(nanos).ok()?,
    )
    .ok()
}

/// `2006-01-02{separator}15:04:05.999999999`: the wall clock with Go's trimmed fraction.
fn wall_clock(wall: DateTime, separator: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}{}",
        wall.year(),
        wall.month(),
        wall.day(),
        wall.hour(),
        wall.minute(),
        wall.second(),
        fraction(wall.subsec_nanosecond())
    )
}

/// `.123` for the non-zero nanoseconds, trailing zeros removed; empty for none.
fn fraction(nanos: i32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// Go prints offsets in whole minutes (seconds of old local mean times are dropped).
fn sign_and_minutes(seconds: i32) -> (char, i32) {
    let sign = if seconds < 0 { '-' } else { '+' };
    (sign, seconds.abs() / 60)
}

/// Go's `time.Date(…, loc)`: the instant whose wall clock in `zone` is `wall`. In a DST gap or
/// overlap Go guesses the offset from `wall` read as UTC and corrects it once; this does the
/// same, so the chosen side matches the official resource (jiff's own rule would differ).
pub fn go_date(wall: DateTime, zone: &TimeZone) -> Timestamp {
    let as_utc = match Offset::UTC.to_timestamp(wall) {
        Ok(t) => t,
        Err(_) => {
            return if wall.year() < 0 {
                Timestamp::MIN
            } else {
                Timestamp::MAX
            };
        }
    };
    let guess = zone.to_offset(as_utc);
    let corrected = zone.to_offset(shift(as_utc, -i64::from(guess.seconds())));
    shift(as_utc, -i64::from(corrected.seconds()))
}

/// Go's `t.AddDate(0, 0, days)` for `t` shown in `zone`: the same wall clock `days` later,
/// through [`go_date`].
pub fn add_days(instant: Timestamp, days: i64, zone: &TimeZone) -> Timestamp {
    let wall = zone.to_datetime(instant);
    match wall.date().checked_add(jiff::Span::new().days(days)) {
        Ok(date) => go_date(date.to_datetime(wall.time()), zone),
        Err(_) => instant,
    }
}

/// `date` at `hour:minute` in `zone`, through [`go_date`].
pub fn at_time_of_day(date: Date, hour: i8, minute: i8, zone: &TimeZone) -> Timestamp {
    go_date(date.at(hour, minute, 0, 0), zone)
}

fn shift(instant: Timestamp, seconds: i64) -> Timestamp {
    instant
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn rfc3339_round_trips_like_go() {
        // (input, what Go re-marshals it as, unix seconds)
        let cases = [
            (
                "2024-01-02T03:04:05Z",
                "2024-01-02T03:04:05Z",
                1_704_164_645,
            ),
            (
                "2024-01-02T03:04:05.120000000Z",
                "2024-01-02T03:04:05.12Z",
                1_704_164_645,
            ),
            (
                "2024-01-02T03:04:05.123456789-05:00",
                "2024-01-02T03:04:05.123456789-05:00",
                1_704_182_645,
            ),
            (
                "2024-01-02T03:04:05+00:00",
                "2024-01-02T03:04:05Z",
                1_704_164_645,
            ),
            (
                "2024-07-01T12:00:00+05:30",
                "2024-07-01T12:00:00+05:30",
                1_719_815_400,
            ),
            ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.5Z", -1),
            (
                "0001-01-01T00:00:00Z",
                "0001-01-01T00:00:00Z",
                -62_135_596_800,
            ),
        ];
        for (input, output, unix) in cases {
            let parsed = GoTime::parse_rfc3339(input).unwrap();
            assert_eq!(parsed.rfc3339_nano(), output, "{input}");
            assert_eq!(parsed.unix_seconds(), unix, "{input}");
        }
        assert_eq!(
            GoTime::parse_rfc3339("0001-01-01T00:00:00Z")
                .unwrap()
                .instant,
            go_zero_time()
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        for input in [
            "",
            "2024-01-02",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05+0500",
            "2024-01-02T3:04:05Z",
            "2024-02-30T03:04:05Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+24:00",
            "yesterday",
        ] {
            assert!(GoTime::parse_rfc3339(input).is_err(), "{input:?} accepted");
        }
    }

    #[test]
    fn timestamp_file_layout() {
        let cases = [
            ("2024-01-02T03:04:05Z", "2024-01-02 03:04:05 +0000 UTC"),
            (
                "2024-01-02T03:04:05.5-05:00",
                "2024-01-02 03:04:05.5 -0500 -0500",
            ),
            (
                "2024-07-01T12:00:00.000000001+05:30",
                "2024-07-01 12:00:00.000000001 +0530 +0530",
            ),
        ];
        for (input, expected) in cases {
            let parsed = GoTime::parse_rfc3339(input).unwrap();
            assert_eq!(parsed.timestamp_layout(), expected, "{input}");
        }
    }

    #[test]
    fn go_date_picks_the_side_go_picks() {
        // (zone, wall clock, the instant Go's time.Date returns)
        let cases = [
            ("UTC", "2024-03-10T02:30:00", "2024-03-10T02:30:00Z"),
            // New York springs forward at 02:00 EST: Go lands before the gap (01:30 EST).
            (
                "America/New_York",
                "2024-03-10T02:30:00",
                "2024-03-10T06:30:00Z",
            ),
            // …and falls back at 02:00 EDT: 01:30 is the first (EDT) one.
            (
                "America/New_York",
                "2024-11-03T01:30:00",
                "2024-11-03T05:30:00Z",
            ),
            // Berlin springs forward at 02:00 CET: Go lands after the gap (03:30 CEST).
            (
                "Europe/Berlin",
                "2024-03-31T02:30:00",
                "2024-03-31T01:30:00Z",
            ),
            // London falls back at 02:00 BST: Go picks the second (GMT) 01:30.
            (
                "Europe/London",
                "2024-10-27T01:30:00",
                "2024-10-27T01:30:00Z",
            ),
            (
                "Asia/Kolkata",
                "2024-06-01T09:00:00",
                "2024-06-01T03:30:00Z",
            ),
        ];
        for (name, wall, expected) in cases {
            let got = go_date(wall.parse().unwrap(), &zone(name));
            assert_eq!(got, expected.parse::<Timestamp>().unwrap(), "{name} {wall}");
        }
    }

    #[test]
    fn add_days_keeps_the_wall_clock() {
        let ny = zone("America/New_York");
        // 2024-03-09 12:00 EST + 1 day = 2024-03-10 12:00 EDT: 23 hours later.
        let before: Timestamp = "2024-03-09T17:00:00Z".parse().unwrap();
        assert_eq!(
            add_days(before, 1, &ny),
            "2024-03-10T16:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(add_days(add_days(before, 1, &ny), -1, &ny), before);
    }
}
