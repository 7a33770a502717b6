//! When a new version is due: the official resource's rules (its `TimeLord.Check` and check
//! command), as pure functions of the settings, the previous version and "now".
//!
//! The daily window is recomputed around "now" in `location` each time: it starts at `start` on
//! the latest day whose `start` is not after now, and ends at the next `stop` after that (so
//! `start: 8 PM, stop: 8 AM` wraps midnight, and `start == stop` spans the whole day). With no
//! window the day itself is the window. Never reads the clock.

use jiff::Timestamp;

use crate::config::{Settings, TimeOfDay};
use crate::go_time::{GoTime, add_days, at_time_of_day, go_zero_time};

/// `check`: the versions to emit, oldest first, given the previous version and now.
///
/// The previous version is always echoed; the first check with `initial_version` emits now
/// unconditionally; otherwise now is emitted when [`is_due`] says so.
pub fn check(settings: &Settings, previous: Option<GoTime>, now: Timestamp) -> Vec<GoTime> {
    let previous = previous.filter(|p| p.instant != go_zero_time());
    let now = GoTime::in_zone(now, &settings.zone);
    let mut versions = Vec::new();
    match previous {
        Some(previous) => versions.push(previous),
        None if settings.initial_version => return vec![now],
        None => {}
    }
    if is_due(settings, previous.map(|p| p.instant), now.instant) {
        versions.push(now);
    }
    versions
}

/// Whether a version at `now` is due: today is one of `days`, `start_after` has passed, now is
/// inside the window, and either there is no previous version, `interval` has elapsed since
/// it, or (without `interval`) it is older than the current window's start.
pub fn is_due(settings: &Settings, previous: Option<Timestamp>, now: Timestamp) -> bool {
    let zone = &settings.zone;
    let (start, stop) = window_around(settings, now);
    if let Some(days) = &settings.days
        && !days.is_empty()
        && !days.contains(&zone.to_datetime(now).weekday())
    {
        return false;
    }
    if let Some(start_after) = settings.start_after
        && crate::go_time::go_date(start_after, zone) >= now
    {
        return false;
    }
    if now < start || now >= stop {
        return false;
    }
    let Some(previous) = previous else {
        return true;
    };
    match settings.interval {
        Some(interval) => now.as_nanosecond() - previous.as_nanosecond() >= i128::from(interval),
        None => previous < start,
    }
}

/// The window `[start, stop)` that contains, or most recently started before, `reference`
/// (the official `LatestRangeBefore`); `00:00`–`00:00` without `start`/`stop`.
pub fn window_around(settings: &Settings, reference: Timestamp) -> (Timestamp, Timestamp) {
    let zone = &settings.zone;
    let midnight = TimeOfDay { hour: 0, minute: 0 };
    let (from, to) = settings.window.unwrap_or((midnight, midnight));
    let today = zone.to_datetime(reference).date();
    let mut start = at_time_of_day(today, from.hour, from.minute, zone);
    if start > reference {
        start = add_days(start, -1, zone);
    }
    let start_day = zone.to_datetime(start).date();
    let mut stop = at_time_of_day(start_day, to.hour, to.minute, zone);
    if stop <= start {
        stop = add_days(stop, 1, zone);
    }
    (start, stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn settings(source: serde_json::Value) -> Settings {
        serde_json::from_value::<Source>(source)
            .unwrap()
            .validate()
            .unwrap()
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// (case, source, previous version, now (UTC), due?)
    fn check_due(cases: &[(&str, serde_json::Value, Option<&str>, &str, bool)]) {
        for (name, source, previous, now, expected) in cases {
            let got = is_due(&settings(source.clone()), previous.map(ts), ts(now));
            assert_eq!(
                got, *expected,
                "{name}: {source} prev={previous:?} now={now}"
            );
        }
    }

    #[test]
    fn intervals() {
        let every_2m = serde_json::json!({"interval": "2m"});
        check_due(&[
            (
                "no previous",
                every_2m.clone(),
                None,
                "2018-01-01T12:00:00Z",
                true,
            ),
            (
                "not elapsed",
                every_2m.clone(),
                Some("2018-01-01T12:00:00Z"),
                "2018-01-01T12:01:00Z",
                false,
            ),
            (
                "one nanosecond short",
                every_2m.clone(),
                Some("2018-01-01T12:00:00Z"),
                "2018-01-01T12:01:59.999999999Z",
                false,
            ),
            (
                "exactly elapsed",
                every_2m.clone(),
                Some("2018-01-01T12:00:00Z"),
                "2018-01-01T12:02:00Z",
                true,
            ),
            (
                "elapsed many times",
                every_2m.clone(),
                Some("2018-01-01T12:00:00Z"),
                "2018-01-03T00:00:00Z",
                true,
            ),
            (
                "previous in the future",
                every_2m,
                Some("2018-01-01T13:00:00Z"),
                "2018-01-01T12:00:00Z",
                false,
            ),
        ]);
    }

    #[test]
    fn one_version_per_day_without_interval() {
        let daily = serde_json::json!({});
        check_due(&[
            ("first", daily.clone(), None, "2018-01-01T12:00:00Z", true),
            (
                "same day",
                daily.clone(),
                Some("2018-01-01T00:00:00Z"),
                "2018-01-01T23:59:59Z",
                false,
            ),
            (
                "next day",
                daily.clone(),
                Some("2018-01-01T23:59:59Z"),
                "2018-01-02T00:00:00Z",
                true,
            ),
            (
                "a day is a day in location",
                serde_json::json!({"location": "Asia/Tokyo"}),
                Some("2018-01-01T14:00:00Z"),
                "2018-01-01T15:00:00Z",
                true,
            ),
        ]);
    }

    #[test]
    fn windows() {
        let two_to_four = serde_json::json!({"start": "2:00 AM", "stop": "4:00 AM"});
        let wraps = serde_json::json!({"start": "8:00 PM", "stop": "8:00 AM"});
        let whole_day = serde_json::json!({"start": "6:00 AM", "stop": "6:00 AM"});
        let with_interval =
            serde_json::json!({"start": "1:00 PM", "stop": "3:00 PM", "interval": "2m"});
        check_due(&[
            (
                "inside",
                two_to_four.clone(),
                None,
                "2018-01-01T03:00:00Z",
                true,
            ),
            (
                "at start",
                two_to_four.clone(),
                None,
                "2018-01-01T02:00:00Z",
                true,
            ),
            (
                "just before stop",
                two_to_four.clone(),
                None,
                "2018-01-01T03:59:59.999999999Z",
                true,
            ),
            (
                "at stop",
                two_to_four.clone(),
                None,
                "2018-01-01T04:00:00Z",
                false,
            ),
            (
                "after",
                two_to_four.clone(),
                None,
                "2018-01-01T05:00:00Z",
                false,
            ),
            (
                "just before start",
                two_to_four.clone(),
                None,
                "2018-01-01T01:59:59.999999999Z",
                false,
            ),
            (
                "previous before today's start",
                two_to_four.clone(),
                Some("2018-01-01T01:00:00Z"),
                "2018-01-01T03:00:00Z",
                true,
            ),
            (
                "previous inside today's window",
                two_to_four.clone(),
                Some("2018-01-01T02:30:00Z"),
                "2018-01-01T03:00:00Z",
                false,
            ),
            (
                "previous yesterday",
                two_to_four.clone(),
                Some("2017-12-31T03:00:00Z"),
                "2018-01-01T03:00:00Z",
                true,
            ),
            (
                "wraps: evening",
                wraps.clone(),
                None,
                "2018-01-01T21:00:00Z",
                true,
            ),
            (
                "wraps: after midnight",
                wraps.clone(),
                None,
                "2018-01-02T01:00:00Z",
                true,
            ),
            (
                "wraps: morning",
                wraps.clone(),
                None,
                "2018-01-02T07:59:00Z",
                true,
            ),
            (
                "wraps: midday",
                wraps.clone(),
                None,
                "2018-01-02T12:00:00Z",
                false,
            ),
            (
                "wraps: prev in yesterday evening's window, now after midnight",
                wraps.clone(),
                Some("2018-01-01T22:00:00Z"),
                "2018-01-02T04:00:00Z",
                false,
            ),
            (
                "wraps: prev before the window, now after midnight",
                serde_json::json!({"start": "10:00 AM", "stop": "5:00 AM"}),
                Some("2018-01-01T09:00:00Z"),
                "2018-01-02T04:00:00Z",
                true,
            ),
            (
                "start == stop: whole day",
                whole_day.clone(),
                None,
                "2018-01-01T05:59:00Z",
                true,
            ),
            (
                "start == stop: once per day",
                whole_day,
                Some("2018-01-01T06:00:00Z"),
                "2018-01-02T05:59:00Z",
                false,
            ),
            (
                "interval inside, elapsed",
                with_interval.clone(),
                Some("2018-01-01T13:02:00Z"),
                "2018-01-01T13:04:00Z",
                true,
            ),
            (
                "interval inside, not elapsed",
                with_interval.clone(),
                Some("2018-01-01T13:02:00Z"),
                "2018-01-01T13:03:00Z",
                false,
            ),
            (
                "interval elapsed but outside",
                with_interval.clone(),
                Some("2018-01-01T14:58:00Z"),
                "2018-01-01T15:02:00Z",
                false,
            ),
            (
                "interval, next day's window",
                with_interval,
                Some("2018-01-01T14:58:00Z"),
                "2018-01-02T13:00:00Z",
                true,
            ),
            (
                "offsets are converted to UTC",
                serde_json::json!({"start": "2:00 AM -0600", "stop": "6:00 AM -0600"}),
                None,
                "2018-01-01T08:00:00Z",
                true,
            ),
            (
                "almost a full day",
                serde_json::json!({"start": "12:01 AM -0700", "stop": "11:59 PM -0700"}),
                None,
                "2018-01-01T01:10:00Z",
                true,
            ),
        ]);
    }

    #[test]
    fn days() {
        // 2018-01-03 is a Wednesday.
        let wednesdays = serde_json::json!({"days": ["Wednesday"]});
        check_due(&[
            (
                "on the day",
                wednesdays.clone(),
                None,
                "2018-01-03T12:00:00Z",
                true,
            ),
            (
                "not on the day",
                wednesdays.clone(),
                None,
                "2018-01-04T12:00:00Z",
                false,
            ),
            (
                "two days",
                serde_json::json!({"days": ["mon", "thu"]}),
                None,
                "2018-01-04T12:00:00Z",
                true,
            ),
            (
                "an empty list is every day",
                serde_json::json!({"days": []}),
                None,
                "2018-01-04T12:00:00Z",
                true,
            ),
            (
                "the day is the day in location",
                serde_json::json!({"days": ["Wednesday"], "location": "America/Indiana/Indianapolis",
                    "start": "9:00 PM", "stop": "11:00 PM"}),
                None,
                "2018-01-04T02:00:00Z",
                true,
            ),
            (
                "not the day in location",
                serde_json::json!({"days": ["Thursday"], "location": "America/Indiana/Indianapolis"}),
                None,
                "2018-01-04T02:00:00Z",
                false,
            ),
        ]);
    }

    #[test]
    fn locations_and_dst() {
        let ny = serde_json::json!({"location": "America/New_York", "start": "9:00 AM", "stop": "10:00 AM"});
        let indy = serde_json::json!({"location": "America/Indiana/Indianapolis",
            "start": "1:00 PM", "stop": "3:00 PM"});
        check_due(&[
            (
                "EST: 9:30 is 14:30 UTC",
                ny.clone(),
                None,
                "2024-03-08T14:30:00Z",
                true,
            ),
            (
                "EST: 13:30 UTC is 8:30",
                ny.clone(),
                None,
                "2024-03-08T13:30:00Z",
                false,
            ),
            (
                "EDT: 9:30 is 13:30 UTC",
                ny.clone(),
                None,
                "2024-03-11T13:30:00Z",
                true,
            ),
            (
                "EDT: 14:30 UTC is 10:30",
                ny.clone(),
                None,
                "2024-03-11T14:30:00Z",
                false,
            ),
            (
                "across the DST change, once per day",
                ny.clone(),
                Some("2024-03-09T14:30:00Z"),
                "2024-03-10T13:30:00Z",
                true,
            ),
            (
                "indy: inside",
                indy.clone(),
                None,
                "2018-01-03T18:00:00Z",
                true,
            ),
            (
                "indy: after",
                indy.clone(),
                None,
                "2018-01-03T20:00:00Z",
                false,
            ),
            (
                "indy: prev yesterday",
                indy.clone(),
                Some("2018-01-03T18:00:00Z"),
                "2018-01-04T18:00:00Z",
                true,
            ),
            (
                "indy: prev today",
                indy,
                Some("2018-01-03T18:00:00Z"),
                "2018-01-03T18:01:00Z",
                false,
            ),
            (
                "a window inside the spring-forward gap (New York 2:00-3:00)",
                serde_json::json!({"location": "America/New_York", "start": "2:00 AM", "stop": "2:30 AM"}),
                None,
                // Go's time.Date puts 2:00 and 2:30 before the gap: 1:00-1:30 EST.
                "2024-03-10T06:15:00Z",
                true,
            ),
        ]);
    }

    #[test]
    fn start_after() {
        let range = serde_json::json!({"interval": "2m", "start": "1:00 PM", "stop": "3:00 PM"});
        let with = |after: &str| {
            let mut s = range.clone();
            s["start_after"] = serde_json::json!(after);
            s
        };
        check_due(&[
            (
                "future",
                with("2025-01-01T00:00:00"),
                None,
                "2018-01-01T13:30:00Z",
                false,
            ),
            (
                "past, inside",
                with("2017-12-31T00:00:00"),
                None,
                "2018-01-01T13:30:00Z",
                true,
            ),
            (
                "past, outside",
                with("2017-12-31T00:00:00"),
                None,
                "2018-01-01T16:00:00Z",
                false,
            ),
            (
                "exactly now",
                with("2018-01-01T13:30:00"),
                None,
                "2018-01-01T13:30:00Z",
                false,
            ),
            (
                "read in location",
                serde_json::json!({"location": "America/New_York", "start_after": "2018-01-01T08:00"}),
                None,
                "2018-01-01T12:30:00Z",
                false,
            ),
            (
                "read in location, passed",
                serde_json::json!({"location": "America/New_York", "start_after": "2018-01-01T08:00"}),
                None,
                "2018-01-01T13:30:00Z",
                true,
            ),
        ]);
    }

    fn run_check(source: serde_json::Value, previous: Option<&str>, now: &str) -> Vec<String> {
        let previous = previous.map(|p| GoTime::parse_rfc3339(p).unwrap());
        check(&settings(source), previous, ts(now))
            .iter()
            .map(GoTime::rfc3339_nano)
            .collect()
    }

    #[test]
    fn check_emits_previous_then_now() {
        let now = "2024-01-15T12:00:00.123456789Z";
        let cases: &[(serde_json::Value, Option<&str>, &[&str])] = &[
            (serde_json::json!({}), None, &[now]),
            (
                serde_json::json!({"interval": "1h"}),
                Some("2024-01-15T11:30:00Z"),
                &["2024-01-15T11:30:00Z"],
            ),
            (
                serde_json::json!({"interval": "1h"}),
                Some("2024-01-15T10:30:00Z"),
                &["2024-01-15T10:30:00Z", now],
            ),
            // Outside the window: nothing on the first check…
            (
                serde_json::json!({"start": "1:00 AM", "stop": "2:00 AM"}),
                None,
                &[],
            ),
            // …unless initial_version, which emits now regardless of the window.
            (
                serde_json::json!({"start": "1:00 AM", "stop": "2:00 AM", "initial_version": true}),
                None,
                &[now],
            ),
            // initial_version only matters without a previous version.
            (
                serde_json::json!({"start": "1:00 AM", "stop": "2:00 AM", "initial_version": true}),
                Some("2024-01-14T01:30:00Z"),
                &["2024-01-14T01:30:00Z"],
            ),
            (
                serde_json::json!({"start_after": "2030-01-01", "initial_version": true}),
                None,
                &[now],
            ),
            // Versions are written in location, and the previous one in its own offset.
            (
                serde_json::json!({"location": "America/New_York"}),
                Some("2024-01-14T09:00:00-05:00"),
                &[
                    "2024-01-14T09:00:00-05:00",
                    "2024-01-15T07:00:00.123456789-05:00",
                ],
            ),
            (
                serde_json::json!({"location": "Asia/Kolkata"}),
                None,
                &["2024-01-15T17:30:00.123456789+05:30"],
            ),
            // Go's zero time counts as no version.
            (serde_json::json!({}), Some("0001-01-01T00:00:00Z"), &[now]),
        ];
        for (source, previous, expected) in cases {
            assert_eq!(
                run_check(source.clone(), *previous, now),
                *expected,
                "{source} {previous:?}"
            );
        }
    }
}
