//! Bad requests every resource binary must reject cleanly.
//!
//! Each resource's integration tests call [`assert_rejects_bad_input`] with its binary: every
//! case must exit non-zero, print nothing on stdout, and print exactly one line on stderr
//! (no panic, no backtrace).

use std::path::Path;

use assert_cmd::Command;

/// A malformed invocation and what its stderr line must contain.
struct Case {
    name: &'static str,
    args: Vec<String>,
    stdin: Vec<u8>,
    expect_in_stderr: String,
}

/// Runs the bad-input table against `binary`. `valid_source` is a `source` object the resource
/// accepts (so the cases isolate one fault each); `typed_field` is a field of it that must be a
/// string, used for the wrong-type case.
pub fn assert_rejects_bad_input(binary: &Path, valid_source: serde_json::Value, typed_field: &str) {
    let dest = tempfile::tempdir().expect("temp dir");
    let dest_arg = dest.path().join("dest").display().to_string();
    let mut unknown = valid_source.clone();
    unknown["no_such_field"] = serde_json::json!(true);
    let mut wrong_type = valid_source.clone();
    wrong_type[typed_field] = serde_json::json!({"nested": [1, 2, 3]});
    let request = |source: &serde_json::Value| {
        serde_json::json!({"source": source})
            .to_string()
            .into_bytes()
    };
    let garbage: Vec<u8> = (0..1_000_000u32)
        .map(|i| b"{[\"x:,}]"[(i % 8) as usize] ^ (i % 3) as u8)
        .collect();
    let cases = [
        Case {
            name: "empty stdin",
            args: vec!["check".into()],
            stdin: vec![],
            expect_in_stderr: "stdin is empty".into(),
        },
        Case {
            name: "not json",
            args: vec!["check".into()],
            stdin: b"not json".to_vec(),
            expect_in_stderr: "not valid JSON".into(),
        },
        Case {
            name: "empty object",
            args: vec!["check".into()],
            stdin: b"{}".to_vec(),
            expect_in_stderr: "missing field `source`".into(),
        },
        Case {
            name: "unknown field",
            args: vec!["check".into()],
            stdin: request(&unknown),
            expect_in_stderr: "unknown field `no_such_field`, expected".into(),
        },
        Case {
            name: "wrong type",
            args: vec!["check".into()],
            stdin: request(&wrong_type),
            expect_in_stderr: format!("source.{typed_field}: invalid type"),
        },
        Case {
            name: "1 MB of garbage",
            args: vec!["check".into()],
            stdin: garbage,
            expect_in_stderr: "error:".into(),
        },
        Case {
            name: "deep nesting",
            args: vec!["check".into()],
            stdin: "[".repeat(100_000).into_bytes(),
            expect_in_stderr: "not valid JSON".into(),
        },
        Case {
            name: "invalid utf-8",
            args: vec!["check".into()],
            stdin: b"{\"source\": \"\xff\xfe\"}".to_vec(),
            expect_in_stderr: "not valid UTF-8".into(),
        },
        Case {
            name: "in without destination",
            args: vec!["in".into()],
            stdin: request(&valid_source),
            expect_in_stderr: "missing destination directory argument".into(),
        },
        Case {
            name: "out without source",
            args: vec!["out".into()],
            stdin: request(&valid_source),
            expect_in_stderr: "missing source directory argument".into(),
        },
        Case {
            name: "in without version",
            args: vec!["in".into(), dest_arg],
            stdin: request(&valid_source),
            expect_in_stderr: "missing field `version`".into(),
        },
        Case {
            name: "no command",
            args: vec![],
            stdin: vec![],
            expect_in_stderr: "usage:".into(),
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let output = Command::new(binary)
            .args(&case.args)
            .write_stdin(case.stdin)
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .expect("run resource binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let problems = [
            (output.status.success(), "exited 0"),
            (output.status.code().is_none(), "killed by a signal"),
            (!output.stdout.is_empty(), "wrote to stdout"),
            (lines.len() != 1, "did not write exactly one stderr line"),
            (stderr.contains("panicked"), "panicked"),
            (
                !stderr.contains(&case.expect_in_stderr),
                "stderr lacks the expected message",
            ),
        ];
        for (bad, what) in problems {
            if bad {
                failures.push(format!(
                    "{}: {what} (expected {:?}); exit {:?}, stdout {:?}, stderr {:?}",
                    case.name,
                    case.expect_in_stderr,
                    output.status.code(),
                    String::from_utf8_lossy(&output.stdout),
                    stderr
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} bad-input failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
