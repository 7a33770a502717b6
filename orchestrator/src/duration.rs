//! Go-style durations (`1h30m`, `15m`, `10s`, `1.5h`, `250ms`), as Concourse writes them.

use std::time::Duration;

/// Parses a Go duration string (`time.ParseDuration`); negative durations are refused.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration `{text}` (expected e.g. 90s, 15m, 1h30m)");
    let body = text.strip_prefix('+').unwrap_or(text);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() || body.starts_with('-') {
        return Err(invalid());
    }
    let mut nanos: f64 = 0.0;
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Formats a duration as Go's `Duration.String` does (`1h30m0s`, `1.5s`, `250ms`).
pub fn format(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_string();
    }
    if total < 1_000_000_000 {
        let (unit, scale) = if total < 1_000 {
            ("ns", 1)
        } else if total < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(total, scale));
    }
    let hours = total / 3_600_000_000_000;
    let minutes = (total / 60_000_000_000) % 60;
    let secs = total % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", fraction(secs, 1_000_000_000)));
    out
}

fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_go_durations() {
        let cases = [
            ("1h30m", Some(5_400_000), "1h30m0s"),
            ("15m", Some(900_000), "15m0s"),
            ("10s", Some(10_000), "10s"),
            ("1.5h", Some(5_400_000), "1h30m0s"),
            ("250ms", Some(250), "250ms"),
            ("1m30.5s", Some(90_500), "1m30.5s"),
            ("0", Some(0), "0s"),
            ("", None, ""),
            ("10", None, ""),
            ("-5m", None, ""),
            ("5 m", None, ""),
            ("1d", None, ""),
        ];
        for (text, millis, formatted) in cases {
            let got = parse(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, millis, "{text}");
            if let Ok(d) = parse(text) {
                assert_eq!(format(d), formatted, "{text}");
                assert_eq!(parse(&format(d)).unwrap(), d, "{text}");
            }
        }
    }
}
