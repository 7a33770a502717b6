//! check, in and out through the real binary. "Now" is the machine's clock here, so times are
//! asserted between a before and an after reading, and windows are placed hours away from now.

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde_json::json;

use crate::support::{check_times, instant, run};

/// `t` as the resource writes it (RFC 3339, nanoseconds, `Z`).
fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

fn assert_between(text: &str, before: Timestamp, after: Timestamp) {
    let t = instant(text);
    assert!(
        before <= t && t <= after,
        "{text} not within [{before}, {after}]"
    );
}

#[test]
fn check_emits_the_current_time_when_due() {
    let before = Timestamp::now();
    let first = check_times(&json!({"source": {}}));
    let after = Timestamp::now();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].ends_with('Z'), "UTC without location: {first:?}");
    assert_between(&first[0], before, after);

    let hour = SignedDuration::from_hours(1);
    let recent = rfc3339(before - SignedDuration::from_mins(30));
    let old = rfc3339(before - 2 * hour);
    let source = json!({"interval": "1h"});
    assert_eq!(
        check_times(&json!({"source": source, "version": {"time": recent}})),
        vec![recent.clone()]
    );
    let both = check_times(&json!({"source": source, "version": {"time": old}}));
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0], old);
    assert_between(&both[1], before, Timestamp::now());
    // `null` and a version without `time` are both "no version yet".
    assert_eq!(
        check_times(&json!({"source": source, "version": null})).len(),
        1
    );
    assert_eq!(
        check_times(&json!({"source": source, "version": {}})).len(),
        1
    );
}

#[test]
fn check_respects_the_window_and_initial_version() {
    let now = Timestamp::now();
    let utc = TimeZone::UTC;
    let clock = |offset_hours: i64| {
        let t = utc.to_datetime(now + SignedDuration::from_hours(offset_hours));
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    let outside = json!({"start": clock(6), "stop": clock(7)});
    let inside = json!({"start": clock(-1), "stop": clock(1)});
    assert_eq!(
        check_times(&json!({"source": outside})),
        Vec::<String>::new()
    );
    assert_eq!(check_times(&json!({"source": inside})).len(), 1);
    let mut initial = outside.clone();
    initial["initial_version"] = json!(true);
    assert_eq!(check_times(&json!({"source": initial})).len(), 1);
    // initial_version given as a string, as older pipelines write it.
    initial["initial_version"] = json!("true");
    assert_eq!(check_times(&json!({"source": initial})).len(), 1);
}

#[test]
fn versions_are_written_in_location() {
    let zone = "Asia/Kolkata";
    let times = check_times(&json!({"source": {"location": zone}}));
    assert!(times[0].ends_with("+05:30"), "{times:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &["out", dir.path().to_str().unwrap()],
        &json!({"source": {"location": zone}, "params": {}}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let time = out.stdout["version"]["time"].as_str().unwrap();
    assert!(time.ends_with("+05:30"), "{out:?}");
    assert_eq!(out.stdout["metadata"], json!([]));
}

#[test]
fn out_reports_the_current_time() {
    let dir = tempfile::tempdir().unwrap();
    let before = Timestamp::now();
    let out = run(
        &["out", dir.path().to_str().unwrap()],
        &json!({"source": {"interval": "1m"}}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let time = out.stdout["version"]["time"].as_str().unwrap();
    assert!(time.ends_with('Z'), "{out:?}");
    assert_between(time, before, Timestamp::now());
}

#[test]
fn in_writes_input_timestamp_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("get");
    let request = json!({
        "source": {"interval": "90m", "location": "America/New_York", "start": "8:00 PM -0100",
                   "stop": "2000", "days": ["mon", "Friday"], "start_after": "2023-10-01T09"},
        "version": {"time": "2024-03-10T01:02:03.450000000-05:00"},
        "params": {}
    });
    let got = run(&["in", dest.to_str().unwrap()], &request);
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(
        got.stdout,
        json!({"version": {"time": "2024-03-10T01:02:03.45-05:00"}, "metadata": []})
    );
    let read = |name: &str| std::fs::read_to_string(dest.join(name)).unwrap();
    assert_eq!(
        read("input"),
        concat!(
            r#"{"source":{"initial_version":false,"interval":"1h30m0s","start":"21:00","#,
            r#""stop":"20:00","days":["Monday","Friday"],"location":"America/New_York","#,
            r#""start_after":"2023-10-01T09:00:00"},"version":{"time":"2024-03-10T01:02:03.45-05:00"}}"#,
            "\n"
        )
    );
    assert_eq!(read("timestamp"), "2024-03-10 01:02:03.45 -0500 -0500");
    assert_eq!(read("epoch"), "1710050523");

    // Without a time, `in` reports the current time (and `input` holds Go's zero time).
    let empty = dir.path().join("empty");
    let before = Timestamp::now();
    let got = run(
        &["in", empty.to_str().unwrap()],
        &json!({"source": {}, "version": {}}),
    );
    assert_eq!(got.code, 0, "{got:?}");
    assert_between(
        got.stdout["version"]["time"].as_str().unwrap(),
        before,
        Timestamp::now(),
    );
    assert_eq!(
        std::fs::read_to_string(empty.join("input")).unwrap(),
        concat!(
            r#"{"source":{"initial_version":false,"interval":null,"start":null,"stop":null,"#,
            r#""days":null,"location":null,"start_after":null},"version":{"time":"0001-01-01T00:00:00Z"}}"#,
            "\n"
        )
    );
    let stamp = std::fs::read_to_string(empty.join("timestamp")).unwrap();
    assert!(stamp.ends_with(" +0000 UTC"), "{stamp}");
    let epoch: i64 = std::fs::read_to_string(empty.join("epoch"))
        .unwrap()
        .parse()
        .unwrap();
    assert!((before.as_second()..=Timestamp::now().as_second()).contains(&epoch));
}

#[test]
fn dispatches_on_the_name_it_is_invoked_as() {
    let dir = tempfile::tempdir().unwrap();
    let check = dir.path().join("check");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_time-resource"), &check).unwrap();
    let output = assert_cmd::Command::new(&check)
        .write_stdin(json!({"source": {"interval": "1m"}}).to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let versions: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
}
