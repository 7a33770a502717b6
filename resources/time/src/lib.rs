//! `time-resource`: versions on an interval and/or inside a daily window, with the behaviour of
//! concourse/time-resource.
//!
//! [`config`] validates the `source` (Go durations, IANA zones, Go's time-of-day formats);
//! [`schedule`] decides when a version is due, as pure functions of settings, the previous
//! version and "now"; [`go_time`] reproduces the Go `time` behaviour the official resource
//! exposes (DST choices, RFC 3339 with nanoseconds, the `timestamp` file layout); Go's duration
//! syntax is [`resource_protocol::duration`]. This module wires them into the protocol harness
//! and is the only place that reads the clock. It never writes to stdout itself.
//!
//! Differences from the official resource are listed in README.md (`null` answers become `[]`,
//! lower-case `am`/`pm` are accepted, `params` are checked rather than ignored).

pub mod config;
pub mod go_time;
pub mod schedule;

use std::path::Path;

use anyhow::Context as _;
use jiff::Timestamp;
use resource_protocol::{
    CheckRequest, InRequest, InvalidRequest, OutRequest, Resource, Response, Version, duration,
};
use serde::Serialize;

pub use config::{GetParams, PutParams, Settings, Source};
use go_time::GoTime;

/// The time resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimeResource;

impl Resource for TimeResource {
    const NAME: &'static str = "time";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        let settings = request.source.validate()?;
        let previous = match &request.version {
            Some(version) => version_time(version)?,
            None => None,
        };
        Ok(schedule::check(&settings, previous, Timestamp::now())
            .iter()
            .map(to_version)
            .collect())
    }

    fn get(&self, request: InRequest<Source, GetParams>, dest: &Path) -> anyhow::Result<Response> {
        let settings = request.source.validate()?;
        let given = version_time(&request.version)?;
        let write = |name: &str, contents: &[u8]| -> anyhow::Result<()> {
            let path = dest.join(name);
            std::fs::write(&path, contents).with_context(|| format!("{}", path.display()))
        };
        write("input", &input_file(&settings, given.as_ref())?)?;
        let time = given.unwrap_or_else(|| GoTime::utc(Timestamp::now()));
        write("timestamp", time.timestamp_layout().as_bytes())?;
        write("epoch", time.unix_seconds().to_string().as_bytes())?;
        Ok(Response {
            version: to_version(&time),
            metadata: Vec::new(),
        })
    }

    fn put(&self, request: OutRequest<Source, PutParams>, _src: &Path) -> anyhow::Result<Response> {
        let settings = request.source.validate()?;
        let now = GoTime::in_zone(Timestamp::now(), &settings.zone);
        Ok(Response {
            version: to_version(&now),
            metadata: Vec::new(),
        })
    }
}

/// `{"time": "<RFC 3339 with nanoseconds>"}`.
pub fn to_version(time: &GoTime) -> Version {
    resource_protocol::wire::version([("time", time.rfc3339_nano())])
}

/// The `time` of a version; absent (or Go's zero time) means none. Other keys are ignored,
/// as the official resource ignores them.
pub fn version_time(version: &Version) -> Result<Option<GoTime>, InvalidRequest> {
    let Some(text) = version.get("time") else {
        return Ok(None);
    };
    let time = GoTime::parse_rfc3339(text)
        .map_err(|e| InvalidRequest::new(format!("version.time: {e}")))?;
    Ok((time.instant != go_time::go_zero_time()).then_some(time))
}

/// The request as the official resource re-encodes it into `input`: its `source` struct with
/// every field (unset ones `null`, values in Go's own spelling) and the version.
pub fn input_file(settings: &Settings, given: Option<&GoTime>) -> anyhow::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Input {
        source: InputSource,
        version: InputVersion,
    }
    #[derive(Serialize)]
    struct InputSource {
        initial_version: bool,
        interval: Option<String>,
        start: Option<String>,
        stop: Option<String>,
        days: Option<Vec<&'static str>>,
        location: Option<String>,
        start_after: Option<String>,
    }
    #[derive(Serialize)]
    struct InputVersion {
        time: String,
    }
    let time_of_day = |t: config::TimeOfDay| format!("{}:{:02}", t.hour, t.minute);
    let input = Input {
        source: InputSource {
            initial_version: settings.initial_version,
            interval: settings.interval.map(duration::format),
            start: settings.window.map(|(start, _)| time_of_day(start)),
            stop: settings.window.map(|(_, stop)| time_of_day(stop)),
            days: settings
                .days
                .as_ref()
                .map(|days| days.iter().map(|d| config::weekday_name(*d)).collect()),
            location: settings.location_name.clone(),
            start_after: settings
                .start_after
                .map(|dt| dt.strftime("%Y-%m-%dT%H:%M:%S").to_string()),
        },
        version: InputVersion {
            time: given
                .copied()
                .unwrap_or_else(|| GoTime::utc(go_time::go_zero_time()))
                .rfc3339_nano(),
        },
    };
    let mut bytes = serde_json::to_vec(&input)?;
    bytes.push(b'\n');
    Ok(bytes)
}
