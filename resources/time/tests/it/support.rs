//! Runs the built binary through `testbed::resource_cli`, plus checks only the time resource needs.

use serde_json::Value;
use testbed::resource_cli::Run;

/// Runs `time-resource <args>` with `request` on stdin.
pub fn run(args: &[&str], request: &Value) -> Run {
    testbed::resource_cli::run(env!("CARGO_BIN_EXE_time-resource"), args, request)
}

/// The `time` strings of a successful `check`.
pub fn check_times(request: &Value) -> Vec<String> {
    let got = run(&["check"], request);
    assert_eq!(got.code, 0, "{request}: {got:?}");
    got.versions_of("time")
}

/// Parses an RFC 3339 time into a jiff timestamp.
pub fn instant(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}
