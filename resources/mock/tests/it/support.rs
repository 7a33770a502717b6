//! Runs the built binary through `testbed::resource_cli`, plus helpers only the mock resource
//! needs.

use serde_json::Value;
use testbed::resource_cli::ResourceCli;
use testbed::resource_cli::Run;

/// Runs `mock-resource <args>` with `request` on stdin and `env` added (and no
/// `MIRRORED_VERSION` from outside).
pub fn run_env(args: &[&str], request: &Value, env: &[(&str, &str)]) -> Run {
    ResourceCli::new(env!("CARGO_BIN_EXE_mock-resource"))
        .env_remove("MIRRORED_VERSION")
        .envs(env.iter().copied())
        .run(args, request)
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
