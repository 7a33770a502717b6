//! Runs the built binary through `testbed::resource_cli`, plus helpers only registry-tag needs.

use std::path::Path;

use serde_json::Value;
use testbed::resource_cli::{ResourceCli, Run};

/// Runs `registry-tag-resource <args>` with `request` on stdin (fast retries).
pub fn run(args: &[&str], request: &Value) -> Run {
    ResourceCli::new(env!("CARGO_BIN_EXE_registry-tag-resource"))
        .env("TRIBUTARY_RETRY_BASE_DELAY_MS", "2")
        .timeout(std::time::Duration::from_secs(60))
        .run(args, request)
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
    let tags = run.versions_of("tag");
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
