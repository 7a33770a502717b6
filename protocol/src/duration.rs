//! Go's `time.ParseDuration` and `Duration.String`, exactly, written once.
//!
//! Concourse configuration is full of Go durations: the time resource's `interval` (echoed back
//! in Go's form, `1h30m0s`), the mock resource's `check_delay`, a pipeline's `check_every` and
//! `timeout`. A duration is a signed count of nanoseconds in an `i64`, as in Go; callers that
//! need more (no negatives, `std::time::Duration`) wrap [`parse`]. Error messages follow Go's
//! wording without its `time: ` prefix, so callers prepend the field name.

use std::time::Duration;

/// The largest magnitude Go accepts: `1 << 63` nanoseconds (only for negative durations).
const LIMIT: u64 = 1 << 63;

/// Why a duration did not parse; the message follows Go's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or out of range.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit (`90`).
    #[error("missing unit in duration {0:?} (valid units: ns, us, µs, ms, s, m, h)")]
    MissingUnit(String),
    /// A unit Go does not know (`1d`).
    #[error("unknown unit {unit:?} in duration {text:?} (valid units: ns, us, µs, ms, s, m, h)")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole duration.
        text: String,
    },
}

/// Parses a Go duration (`90s`, `1h30m`, `1.5h`, `-1m`, `0`) into signed nanoseconds.
pub fn parse(text: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    let (negative, mut s) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    // Go's special case: a bare zero needs no unit.
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, digits, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let (mut fraction, mut scale, mut fraction_digits) = (0, 1.0, 0);
        if let Some(rest) = s.strip_prefix('.') {
            (fraction, scale, fraction_digits, s) = leading_fraction(rest);
        }
        if digits == 0 && fraction_digits == 0 {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let nanos_per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            text: text.to_owned(),
        })?;
        if whole > LIMIT / nanos_per_unit {
            return Err(invalid());
        }
        let mut value = whole * nanos_per_unit;
        if fraction > 0 {
            // Go does this in float64 too; the result is truncated.
            value += (fraction as f64 * (nanos_per_unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if negative {
        // `1 << 63` wraps to `i64::MIN`, which is exactly its negation.
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// The leading decimal digits of `s`: their value, how many there were and the rest of `s`;
/// `None` when the value exceeds `1 << 63`.
fn leading_int(s: &str) -> Option<(u64, usize, &str)> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let mut value: u64 = 0;
    for digit in s[..digits].bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .filter(|v| *v <= LIMIT)?;
    }
    Some((value, digits, &s[digits..]))
}

/// The digits after a decimal point: their value, the power of ten to divide it by, how many
/// digits there were and the rest of `s`. Like Go, digits that no longer fit are ignored.
fn leading_fraction(s: &str) -> (u64, f64, usize, &str) {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (mut value, mut scale) = (0_u64, 1.0_f64);
    for digit in s[..digits].bytes() {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .filter(|v| *v <= LIMIT)
        {
            Some(v) => {
                value = v;
                scale *= 10.0;
            }
            None => break,
        }
    }
    (value, scale, digits, &s[digits..])
}

/// Nanoseconds per unit, for the units Go knows (both micro signs included).
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Formats signed nanoseconds as Go's `Duration.String`: `1h30m0s`, `1.5s`, `250ms`, `0s`.
pub fn format(nanos: i64) -> String {
    format_magnitude(nanos < 0, u128::from(nanos.unsigned_abs()))
}

/// Formats a `std::time::Duration` as Go's `Duration.String` would, also beyond Go's range.
pub fn format_std(duration: Duration) -> String {
    format_magnitude(false, duration.as_nanos())
}

/// Go's `Duration.String` for a sign and a magnitude in nanoseconds.
fn format_magnitude(negative: bool, magnitude: u128) -> String {
    if magnitude == 0 {
        return "0s".to_owned();
    }
    let sign = if negative { "-" } else { "" };
    if magnitude < 1_000_000_000 {
        let (scale, unit) = match magnitude {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", decimal(magnitude, scale));
    }
    let hours = magnitude / 3_600_000_000_000;
    let minutes = magnitude / 60_000_000_000 % 60;
    let seconds = decimal(magnitude % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, _) => format!("{sign}{minutes}m{seconds}s"),
        _ => format!("{sign}{hours}h{minutes}m{seconds}s"),
    }
}

/// `value / scale` with the fraction's trailing zeros removed (`1.5`, `2`); `scale` is a power
/// of ten.
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    /// `expected`: the nanoseconds, or a fragment of the error message.
    fn check_parse(input: &str, expected: Result<i64, &str>) {
        let got = parse(input).map_err(|e| e.to_string());
        match expected {
            Ok(nanos) => assert_eq!(got, Ok(nanos), "{input:?}"),
            Err(fragment) => assert!(
                got.as_ref().is_err_and(|e| e.contains(fragment)),
                "{input:?}: {got:?} lacks {fragment:?}"
            ),
        }
    }

    #[test]
    fn parses_like_go() {
        // Go's own table (time/time_test.go) plus the cases our callers met.
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("+0", Ok(0)),
            ("5s", Ok(5 * S)),
            ("10s", Ok(10 * S)),
            ("30s", Ok(30 * S)),
            ("1478s", Ok(1478 * S)),
            ("-5s", Ok(-5 * S)),
            ("+5s", Ok(5 * S)),
            ("-0s", Ok(0)),
            ("+0s", Ok(0)),
            ("5.0s", Ok(5 * S)),
            ("5.6s", Ok(5 * S + 600_000_000)),
            ("5.s", Ok(5 * S)),
            (".5s", Ok(S / 2)),
            ("1.0s", Ok(S)),
            ("1.00s", Ok(S)),
            ("1.004s", Ok(S + 4_000_000)),
            ("1.0040s", Ok(S + 4_000_000)),
            ("100.00100s", Ok(100 * S + 1_000_000)),
            ("10ns", Ok(10)),
            ("11us", Ok(11_000)),
            ("12µs", Ok(12_000)),
            ("12μs", Ok(12_000)),
            ("13ms", Ok(13_000_000)),
            ("250ms", Ok(250_000_000)),
            ("14s", Ok(14 * S)),
            ("15m", Ok(15 * 60 * S)),
            ("-5m", Ok(-5 * 60 * S)),
            ("16h", Ok(16 * 3600 * S)),
            ("1.5h", Ok(90 * 60 * S)),
            ("1h30m", Ok(90 * 60 * S)),
            ("3h30m", Ok(3 * 3600 * S + 30 * 60 * S)),
            ("1m30.5s", Ok(90 * S + S / 2)),
            ("10.5s4m", Ok(4 * 60 * S + 10 * S + S / 2)),
            ("-2m3.4s", Ok(-(2 * 60 * S + 3 * S + 400_000_000))),
            ("1h2m3s4ms5us6ns", Ok(3723 * S + 4_005_006)),
            ("39h9m14.425s", Ok(140_954_425_000_000)),
            ("52763797000ns", Ok(52_763_797_000)),
            ("0.3333333333333333333h", Ok(20 * 60 * S)),
            ("9007199254740993ns", Ok(9_007_199_254_740_993)),
            ("9223372036854775807ns", Ok(i64::MAX)),
            ("9223372036854775.807us", Ok(i64::MAX)),
            ("9223372036s854ms775us807ns", Ok(i64::MAX)),
            ("-9223372036854775808ns", Ok(i64::MIN)),
            ("-9223372036854775.808us", Ok(i64::MIN)),
            ("-9223372036s854ms775us808ns", Ok(i64::MIN)),
            ("-2562047h47m16.854775808s", Ok(i64::MIN)),
            ("0.100000000000000000000h", Ok(6 * 60 * S)),
            (
                "0.830103483285477580700h",
                Ok(49 * 60 * S + 48 * S + 372_539_827),
            ),
            ("", Err("invalid duration \"\"")),
            ("3", Err("missing unit in duration \"3\"")),
            ("10", Err("missing unit in duration \"10\"")),
            ("1.2.3s", Err("missing unit in duration \"1.2.3s\"")),
            ("-", Err("invalid duration \"-\"")),
            ("+", Err("invalid duration \"+\"")),
            ("s", Err("invalid duration \"s\"")),
            (".", Err("invalid duration \".\"")),
            ("-.", Err("invalid duration \"-.\"")),
            (".s", Err("invalid duration \".s\"")),
            ("+.s", Err("invalid duration \"+.s\"")),
            ("--5s", Err("invalid duration \"--5s\"")),
            ("soon", Err("invalid duration \"soon\"")),
            ("1d", Err("unknown unit \"d\" in duration \"1d\"")),
            ("1 h", Err("unknown unit \" h\"")),
            ("5 m", Err("unknown unit \" m\" in duration \"5 m\"")),
            ("5 minutes", Err("unknown unit \" minutes\"")),
            ("9223372036854775808ns", Err("invalid duration")),
            ("9223372036854775.808us", Err("invalid duration")),
            ("9223372036854ms775us808ns", Err("invalid duration")),
            ("-9223372036854775809ns", Err("invalid duration")),
            ("2562048h", Err("invalid duration")),
            ("99999999999999999999ns", Err("invalid duration")),
        ];
        for &(input, expected) in cases {
            check_parse(input, expected);
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (250_000_000, "250ms"),
            (3_300_000_000, "3.3s"),
            (10 * S, "10s"),
            (4 * 60 * S + 5 * S, "4m5s"),
            (4 * 60 * S + 5 * S + 1_000_000, "4m5.001s"),
            (90 * S + S / 2, "1m30.5s"),
            (5 * 3600 * S + 6 * 60 * S + 7 * S + 1_000_000, "5h6m7.001s"),
            (8 * 60 * S + 1, "8m0.000000001s"),
            (60 * S, "1m0s"),
            (15 * 60 * S, "15m0s"),
            (90 * 60 * S, "1h30m0s"),
            (-S, "-1s"),
            (-1, "-1ns"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(format(nanos), expected, "{nanos}");
            assert_eq!(parse(expected), Ok(nanos), "{expected}");
            if let Ok(unsigned) = u64::try_from(nanos) {
                assert_eq!(format_std(Duration::from_nanos(unsigned)), expected);
            }
        }
    }

    #[test]
    fn formats_std_durations_beyond_go_range() {
        assert_eq!(
            format_std(Duration::from_secs(u64::MAX)),
            "5124095576030431h0m15s"
        );
        assert_eq!(
            format_std(Duration::MAX),
            "5124095576030431h0m15.999999999s"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn format_then_parse_is_identity(nanos in any::<i64>()) {
            prop_assert_eq!(parse(&format(nanos)), Ok(nanos));
        }
    }
}
