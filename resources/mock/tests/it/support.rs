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

/// Runs `mock-resource <args>` with `request` on stdin and `env` added.
pub fn run_env(args: &[&str], request: &Value, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mock-resource"));
    command
        .args(args)
        .env_remove("TRIBUTARY_LOG")
        .env_remove("MIRRORED_VERSION");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
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

/// Runs `mock-resource <args>` with `request` on stdin.
pub fn run(args: &[&str], request: &Value) -> Run {
    run_env(args, request, &[])
}

/// Whether the binary will see itself as privileged: it runs in this test's namespaces, so the
/// same test on the same `uid_map` decides.
pub fn privileged() -> bool {
    mock_resource::privileged::is_privileged(std::path::Path::new("/proc/self/uid_map")).unwrap()
}

/// `{"version": v}` plus `"privileged": "true"` when this machine runs privileged.
pub fn version(v: &str) -> Value {
    let mut version = serde_json::json!({ "version": v });
    if privileged() {
        version["privileged"] = "true".into();
    }
    version
}
