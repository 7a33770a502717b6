//! Go-style durations (`1h30m`, `15m`, `10s`, `1.5h`, `250ms`), as Concourse writes them in
//! pipelines (`check_every`, `timeout`, …): the syntax is `resource_protocol::duration`'s; this
//! layer refuses negative durations and speaks `std::time::Duration`.

use std::time::Duration;

use resource_protocol::duration as go;

/// Parses a Go duration string (`time.ParseDuration`); negative durations are refused.
pub fn parse(text: &str) -> Result<Duration, String> {
    match go::parse(text) {
        Ok(nanos) => u64::try_from(nanos)
            .map(Duration::from_nanos)
            .map_err(|_| format!("invalid duration `{text}` (must not be negative)")),
        Err(_) => Err(format!(
            "invalid duration `{text}` (expected e.g. 90s, 15m, 1h30m)"
        )),
    }
}

/// Formats a duration as Go's `Duration.String` does (`1h30m0s`, `1.5s`, `250ms`).
pub fn format(d: Duration) -> String {
    go::format_std(d)
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
            ("+0", Some(0), "0s"),
            ("-0", Some(0), "0s"),
            ("+5s", Some(5_000), "5s"),
            ("", None, ""),
            ("10", None, ""),
            ("-5m", None, ""),
            ("-1ns", None, ""),
            ("5 m", None, ""),
            ("1d", None, ""),
            ("9223372036854775808ns", None, ""),
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

    #[test]
    fn errors_name_the_text_and_the_reason() {
        let cases = [
            (
                "5 minutes",
                "invalid duration `5 minutes` (expected e.g. 90s, 15m, 1h30m)",
            ),
            ("-5m", "invalid duration `-5m` (must not be negative)"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Err(expected.to_owned()), "{text}");
        }
    }
}
