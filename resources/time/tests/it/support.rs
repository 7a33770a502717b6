//! Runs the built binary with a JSON request and collects what it answered.

use assert_cmd::Command;
use serde_json::Value;

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// stdout parsed as JSON (`Null` when empty or not JSON).
    pub stdout: Value,
    /// stderr.
    pub stderr: String,
}

/// Runs `time-resource <args>` with `request` on stdin.
pub fn run(args: &[&str], request: &Value) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_time-resource"))
        .args(args)
        .env_remove("TRIBUTARY_LOG")
        .write_stdin(request.to_string())
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The `time` strings of a successful `check`.
pub fn check_times(request: &Value) -> Vec<String> {
    let got = run(&["check"], request);
    assert_eq!(got.code, 0, "{request}: {got:?}");
    got.stdout
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let object = v.as_object().unwrap();
            assert_eq!(object.len(), 1, "versions hold only the time: {v}");
            object["time"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Parses an RFC 3339 time into a jiff timestamp.
pub fn instant(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}
