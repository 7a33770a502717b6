//! Malformed requests give a non-zero exit, an empty stdout and one line on stderr.

use serde_json::json;

use crate::support::run;

#[test]
fn rejects_bad_input() {
    testbed::bad_input::assert_rejects_bad_input(
        std::path::Path::new(env!("CARGO_BIN_EXE_mock-resource")),
        json!({"log": "hello"}),
        "log",
    );
}

#[test]
fn rejects_bad_requests_with_one_clear_line() {
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap();
    // (args, request, exit code, expected stderr fragment)
    let table = [
        (
            vec!["check"],
            json!({"source": {"check_delay": "a while"}}),
            2,
            "source.check_delay: invalid duration \"a while\"",
        ),
        (
            vec!["check"],
            json!({"source": {"metadata": {"name": "a"}}}),
            2,
            "source.metadata: invalid type: map, expected a sequence",
        ),
        (
            vec!["check"],
            json!({"source": {"no_initial_version": "perhaps"}}),
            2,
            "source.no_initial_version",
        ),
        (
            vec!["check"],
            json!({"source": {}, "version": {"ref": "abc"}}),
            2,
            "version.ref: unknown field",
        ),
        (
            vec!["check"],
            json!({"source": {"check_failure": "boom"}}),
            1,
            "error: intentionally failing to check: boom",
        ),
        (
            vec!["in", dir],
            json!({"source": {"create_files": {"../outside": "x"}}, "version": {"version": "1"}}),
            2,
            "create_files: path \"../outside\" must stay inside the destination directory",
        ),
        (
            vec!["in", dir],
            json!({"source": {}, "version": {"version": "1"}, "params": {"create_files": {}}}),
            2,
            "params.create_files: unknown field `create_files`, expected `mirror_self_via_params` or `create_files_via_params`",
        ),
        (
            vec!["in", dir],
            json!({"source": {"mirror_self": true}, "version": {"version": "1"}}),
            2,
            "source.mirror_self: works only inside the mock resource's image",
        ),
        (
            vec!["in", dir],
            json!({"source": {}, "version": {"version": "1"}, "params": {"mirror_self_via_params": true}}),
            2,
            "params.mirror_self_via_params: works only inside the mock resource's image",
        ),
        (
            vec!["out", dir],
            json!({"source": {}, "params": {}}),
            2,
            "params.version or params.file: no version specified",
        ),
        (
            vec!["out", dir],
            json!({"source": {}, "params": {"file": "missing.txt"}}),
            1,
            "params.file: error reading version from \"missing.txt\"",
        ),
    ];
    for (args, request, code, expected) in table {
        let got = run(&args, &request);
        assert_eq!(got.code, code, "{request}: {got:?}");
        assert_eq!(got.stdout, serde_json::Value::Null, "{request}");
        let last = got.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(expected),
            "{request}: {}",
            got.stderr
        );
        if code == 2 {
            assert_eq!(got.stderr.lines().count(), 1, "{request}: {got:?}");
        }
    }
}
