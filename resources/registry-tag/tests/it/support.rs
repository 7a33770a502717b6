//! Runs the built binary with a JSON request and collects what it answered.

use std::path::Path;

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

/// Runs `registry-tag-resource <args>` with `request` on stdin (fast retries).
pub fn run(args: &[&str], request: &Value) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_registry-tag-resource"))
        .args(args)
        .env("TRIBUTARY_RETRY_BASE_DELAY_MS", "2")
        .env_remove("TRIBUTARY_LOG")
        .write_stdin(request.to_string())
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `check` with `source` and an optional current tag; returns the emitted tags (asserting
/// success).
pub fn check_tags(source: &Value, current: Option<&str>) -> (Vec<String>, String) {
    let mut request = serde_json::json!({ "source": source });
    if let Some(tag) = current {
        request["version"] = serde_json::json!({ "tag": tag });
    }
    let run = run(&["check"], &request);
    assert_eq!(run.code, 0, "check failed: {run:?}");
    let tags = run
        .stdout
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let object = v.as_object().unwrap();
            assert_eq!(object.len(), 1, "versions hold only the tag: {v}");
            object["tag"].as_str().unwrap().to_owned()
        })
        .collect();
    (tags, run.stderr)
}

/// `in` of `tag` into `dest`.
pub fn get(source: &Value, tag: &str, dest: &Path) -> Run {
    let request = serde_json::json!({ "source": source, "version": { "tag": tag } });
    run(&["in", dest.to_str().unwrap()], &request)
}

/// `["1.0.0", …]`-style names: `count` tags `prefix{i}`.
pub fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}
