//! Malformed requests give a non-zero exit, an empty stdout and one line on stderr.

use serde_json::json;

use crate::support::run;

#[test]
fn rejects_bad_input() {
    testbed::bad_input::assert_rejects_bad_input(
        std::path::Path::new(env!("CARGO_BIN_EXE_time-resource")),
        json!({"interval": "1m"}),
        "interval",
    );
}

#[test]
fn rejects_bad_sources_with_one_clear_line() {
    // (request, expected stderr fragment); all exit 2 before doing anything.
    let table = [
        (
            json!({"source": {"interval": "5 minutes"}}),
            "source.interval: unknown unit \" minutes\"",
        ),
        (
            json!({"source": {"interval": 60}}),
            "source.interval: invalid type: integer `60`, expected a string",
        ),
        (
            json!({"source": {"location": "Moon/Base"}}),
            "source.location: unknown time zone \"Moon/Base\"",
        ),
        (
            json!({"source": {"start": "9 AM"}}),
            "source.stop: must be set when source.start is set",
        ),
        (
            json!({"source": {"start": "9 AM", "stop": "25:00"}}),
            "source.stop: invalid time format \"25:00\"",
        ),
        (
            json!({"source": {"start": 1140, "stop": "20:00"}}),
            "source.start: invalid type: integer `1140`",
        ),
        (
            json!({"source": {"days": ["Moonday"]}}),
            "source.days[0]: unknown weekday \"Moonday\"",
        ),
        (
            json!({"source": {"days": "Monday"}}),
            "source.days: invalid type: string \"Monday\", expected a sequence",
        ),
        (
            json!({"source": {"start_after": "2023-13-01"}}),
            "source.start_after: invalid date format",
        ),
        (
            json!({"source": {"initial_version": "sometimes"}}),
            "source.initial_version",
        ),
        (
            json!({"source": {}, "version": {"time": "yesterday"}}),
            "version.time: \"yesterday\" is not an RFC 3339 time",
        ),
    ];
    for (request, expected) in table {
        let got = run(&["check"], &request);
        assert_eq!(got.code, 2, "{request}: {got:?}");
        assert_eq!(got.stdout, serde_json::Value::Null, "{request}");
        let lines: Vec<&str> = got.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{request}: {got:?}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(expected),
            "{request}: {}",
            got.stderr
        );
    }
    let dest = tempfile::tempdir().unwrap();
    let params = run(
        &["in", dest.path().to_str().unwrap()],
        &json!({"source": {}, "version": {}, "params": {"skip_download": true}}),
    );
    assert_eq!(params.code, 2, "{params:?}");
    assert!(
        params
            .stderr
            .contains("params.skip_download: unknown field"),
        "{params:?}"
    );
}
