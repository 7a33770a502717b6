//! Go's `time.ParseDuration`, exactly: `check_delay` is written in Go's syntax (`500ms`, `1m`,
//! `1.5s`). Durations are signed nanoseconds in an `i64`, as in Go. (The time resource has the
//! same parser; resources do not depend on each other.)

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

/// Parses a Go duration into nanoseconds.
pub fn parse(text: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    let mut s = text;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
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
        let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let mut whole: u64 = 0;
        for digit in s[..digits].bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(digit - b'0')))
                .filter(|w| *w <= LIMIT)
                .ok_or_else(invalid)?;
        }
        s = &s[digits..];
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut fraction_digits = 0;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            fraction_digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let mut overflow = false;
            for digit in s[..fraction_digits].bytes() {
                if overflow {
                    continue;
                }
                // Go keeps the digits that fit and ignores the rest.
                match fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                    .filter(|f| *f <= LIMIT)
                {
                    Some(f) => {
                        fraction = f;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &s[fraction_digits..];
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
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let nanos_per_unit: u64 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                    text: text.to_owned(),
                });
            }
        };
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
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn parses_like_go() {
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("5s", Ok(5 * S)),
            ("30s", Ok(30 * S)),
            ("1478s", Ok(1478 * S)),
            ("-5s", Ok(-5 * S)),
            ("+5s", Ok(5 * S)),
            ("5.0s", Ok(5 * S)),
            ("5.6s", Ok(5 * S + 600_000_000)),
            ("5.s", Ok(5 * S)),
            (".5s", Ok(S / 2)),
            ("1.004s", Ok(S + 4_000_000)),
            ("100.00100s", Ok(100 * S + 1_000_000)),
            ("10ns", Ok(10)),
            ("11us", Ok(11_000)),
            ("12µs", Ok(12_000)),
            ("12μs", Ok(12_000)),
            ("13ms", Ok(13_000_000)),
            ("14s", Ok(14 * S)),
            ("15m", Ok(15 * 60 * S)),
            ("16h", Ok(16 * 3600 * S)),
            ("3h30m", Ok(3 * 3600 * S + 30 * 60 * S)),
            ("10.5s4m", Ok(4 * 60 * S + 10 * S + S / 2)),
            ("-2m3.4s", Ok(-(2 * 60 * S + 3 * S + 400_000_000))),
            ("1h2m3s4ms5us6ns", Ok(3723 * S + 4_005_006)),
            ("39h9m14.425s", Ok(140_954_425_000_000)),
            ("52763797000ns", Ok(52_763_797_000)),
            ("0.3333333333333333333h", Ok(20 * 60 * S)),
            ("9007199254740993ns", Ok(9_007_199_254_740_993)),
            ("9223372036854775807ns", Ok(i64::MAX)),
            ("-9223372036854775808ns", Ok(i64::MIN)),
            ("0.100000000000000000000h", Ok(6 * 60 * S)),
            (
                "0.830103483285477580700h",
                Ok(49 * 60 * S + 48 * S + 372_539_827),
            ),
            ("-2562047h47m16.854775808s", Ok(i64::MIN)),
            ("", Err("invalid duration \"\"")),
            ("3", Err("missing unit in duration \"3\"")),
            ("-", Err("invalid duration \"-\"")),
            ("s", Err("invalid duration \"s\"")),
            (".", Err("invalid duration \".\"")),
            ("-.", Err("invalid duration \"-.\"")),
            (".s", Err("invalid duration \".s\"")),
            ("+.s", Err("invalid duration \"+.s\"")),
            ("1d", Err("unknown unit \"d\" in duration \"1d\"")),
            ("1 h", Err("unknown unit \" h\"")),
            ("9223372036854775808ns", Err("invalid duration")),
            ("9223372036854775.808us", Err("invalid duration")),
            ("9223372036854ms775us808ns", Err("invalid duration")),
        ];
        for (input, expected) in cases {
            let got = parse(input).map_err(|e| e.to_string());
            match expected {
                Ok(nanos) => assert_eq!(got, Ok(*nanos), "{input:?}"),
                Err(fragment) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(fragment)),
                    "{input:?}: {got:?} lacks {fragment:?}"
                ),
            }
        }
    }
}
