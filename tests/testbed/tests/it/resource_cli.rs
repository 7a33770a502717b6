//! The resource runner: request on stdin, answer parsed, environment and exit code as set.

use serde_json::json;
use testbed::resource_cli::{ResourceCli, run};
use testbed::tools::require;

fn sh() -> std::path::PathBuf {
    require("sh", "dash")
}

#[test]
fn the_request_goes_to_stdin_and_the_answer_is_parsed() {
    let request = json!({"source": {"a": [1, 2]}, "version": {"v": "1"}});
    let got = run(sh(), &["-c", "cat; echo log >&2"], &request);
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(got.stdout, request);
    assert_eq!(got.stdout_text, request.to_string());
    assert_eq!(got.stderr, "log\n");
    assert_eq!(got.json(), request);
}

#[test]
fn exit_codes_and_an_empty_stdout() {
    let got = run(
        sh(),
        &["-c", "echo 'error: source.uri: bad' >&2; exit 2"],
        &json!({}),
    );
    assert_eq!(got.code, 2);
    assert_eq!(got.stdout, serde_json::Value::Null);
    assert_eq!(got.stdout_text, "");
    got.failed_with("source.uri: bad");
}

#[test]
fn environment_is_added_removed_or_cleared() {
    let script = r#"printf '{"x":"%s","log":"%s","home":"%s"}' "$X" "${TRIBUTARY_LOG-unset}" "${HOME-unset}""#;
    let cases = [
        (ResourceCli::new(sh()).env("X", "1"), ("1", "unset", false)),
        (
            ResourceCli::new(sh()).env("TRIBUTARY_LOG", "warn"),
            ("", "warn", false),
        ),
        (
            ResourceCli::new(sh()).env_clear().envs([("X", "2")]),
            ("2", "unset", true),
        ),
        (
            ResourceCli::new(sh()).env("X", "3").env_remove("HOME"),
            ("3", "unset", true),
        ),
    ];
    for (cli, (x, log, no_home)) in cases {
        let got = cli.run(&["-c", script], &json!({})).json();
        assert_eq!(got["x"], x, "{got}");
        assert_eq!(got["log"], log, "{got}");
        assert_eq!(got["home"] == "unset", no_home, "{got}");
    }
}

#[test]
#[should_panic(expected = "stdout is not JSON")]
fn stdout_that_is_not_json_fails_the_test() {
    run(sh(), &["-c", "echo hello"], &json!({}));
}

#[test]
fn a_run_past_its_timeout_is_killed() {
    let start = std::time::Instant::now();
    let got = ResourceCli::new(sh())
        .timeout(std::time::Duration::from_millis(200))
        .run(&["-c", "exec sleep 5"], &json!({}));
    assert_eq!(got.code, -1, "{got:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(4));
}

#[test]
fn versions_of_reads_single_key_versions() {
    let answer = json!([{"tag": "1"}, {"tag": "2"}]);
    let got = run(sh(), &["-c", "cat"], &answer);
    assert_eq!(got.versions_of("tag"), ["1", "2"]);
    let bad = [
        json!([{"tag": "1", "digest": "x"}]),
        json!([{"ref": "1"}]),
        json!([{"tag": 1}]),
        json!({"tag": "1"}),
    ];
    for answer in bad {
        let got = run(sh(), &["-c", "cat"], &answer);
        let result = std::panic::catch_unwind(|| got.versions_of("tag"));
        assert!(result.is_err(), "{answer}");
    }
}
