//! check, in and out through the real binary.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{privileged, run, run_env, version};

fn check(request: serde_json::Value) -> serde_json::Value {
    let got = run(&["check"], &request);
    assert_eq!(got.code, 0, "{request}: {got:?}");
    got.stdout
}

#[test]
fn check_echoes_forces_or_starts() {
    assert_eq!(check(json!({"source": {}})), json!([version("mock")]));
    assert_eq!(
        check(json!({"source": {}, "version": null})),
        json!([version("mock")])
    );
    assert_eq!(
        check(json!({"source": {"initial_version": "v0"}})),
        json!([version("v0")])
    );
    assert_eq!(
        check(json!({"source": {}, "version": {"version": "from-fly"}})),
        json!([version("from-fly")])
    );
    assert_eq!(
        check(json!({"source": {"force_version": "pinned"}, "version": {"version": "v9"}})),
        json!([version("pinned")])
    );
    assert_eq!(
        check(json!({"source": {"no_initial_version": true}})),
        json!([])
    );
    // A mirrored image tells its own checks which version it came from.
    let mirrored = run_env(
        &["check"],
        &json!({"source": {}}),
        &[("MIRRORED_VERSION", "m1")],
    );
    assert_eq!(mirrored.stdout, json!([version("m1")]), "{mirrored:?}");
}

#[test]
fn check_logs_and_waits() {
    let started = Instant::now();
    let got = run(
        &["check"],
        &json!({"source": {"check_delay": "300ms", "log": "checking the mock"}}),
    );
    assert_eq!(got.code, 0, "{got:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(got.stderr.contains("checking the mock"), "{got:?}");
}

#[test]
fn in_writes_version_privileged_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("get");
    let request = json!({
        "source": {
            "create_files": {
                "ci/pipeline.yml": "jobs: []\nsecret: START_VARsecretEND_VAR\n",
                "config.json": {"b": 2, "a": [1, "<x>"]},
                "replaced.txt": "from source"
            },
            "metadata": [{"name": "built-by", "value": "mock"}, {"name": "n", "value": "1"}],
            "log": "getting"
        },
        "version": {"version": "v1.2.3"},
        "params": {"create_files_via_params": {"replaced.txt": "from params", "extra/x": 7}}
    });
    let got = run(&["in", dest.to_str().unwrap()], &request);
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(
        got.stdout,
        json!({
            "version": {"version": "v1.2.3"},
            "metadata": [{"name": "built-by", "value": "mock"}, {"name": "n", "value": "1"}]
        })
    );
    let read = |name: &str| std::fs::read_to_string(dest.join(name)).unwrap();
    assert_eq!(read("version"), "v1.2.3\n");
    assert_eq!(read("privileged"), format!("{}\n", privileged()));
    assert_eq!(read("ci/pipeline.yml"), "jobs: []\nsecret: ((secret))\n");
    assert_eq!(read("config.json"), r#"{"a":[1,"\u003cx\u003e"],"b":2}"#);
    assert_eq!(read("replaced.txt"), "from params");
    assert_eq!(read("extra/x"), "7");
    let mode = std::fs::metadata(dest.join("ci/pipeline.yml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o022, 0, "files are 0644 (less the umask)");
    assert!(got.stderr.contains("getting"), "{got:?}");
    assert!(got.stderr.contains("fetching version: v1.2.3"), "{got:?}");
}

#[test]
fn in_echoes_the_privileged_marker() {
    let dir = tempfile::tempdir().unwrap();
    let got = run(
        &["in", dir.path().to_str().unwrap()],
        &json!({"source": {}, "version": {"version": "v", "privileged": "true"}}),
    );
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(
        got.stdout,
        json!({"version": {"version": "v", "privileged": "true"}, "metadata": []})
    );
}

#[test]
fn out_creates_the_named_version() {
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().to_str().unwrap();
    std::fs::create_dir(src.path().join("build")).unwrap();
    std::fs::write(src.path().join("build/version"), "2.0.0\n").unwrap();

    let named = run(
        &["out", dir],
        &json!({"source": {"metadata": [{"name": "m", "value": "v"}]}, "params": {"version": "1.0.0"}}),
    );
    assert_eq!(named.code, 0, "{named:?}");
    assert_eq!(
        named.stdout,
        json!({"version": version("1.0.0"), "metadata": [{"name": "m", "value": "v"}]})
    );
    assert!(named.stderr.contains("pushing version: 1.0.0"), "{named:?}");

    // The file's whole contents, newline included, as upstream reads it.
    let from_file = run(
        &["out", dir],
        &json!({"source": {}, "params": {"file": "build/version"}}),
    );
    assert_eq!(from_file.code, 0, "{from_file:?}");
    assert_eq!(from_file.stdout["version"], version("2.0.0\n"));

    // `version` wins over `file`.
    let both = run(
        &["out", dir],
        &json!({"source": {}, "params": {"version": "3", "file": "build/version"}}),
    );
    assert_eq!(both.stdout["version"], version("3"), "{both:?}");
}

#[test]
fn out_prints_the_environment_when_asked() {
    let src = tempfile::tempdir().unwrap();
    let request =
        json!({"source": {"log": "putting"}, "params": {"version": "1", "print_env": true}});
    let got = run_env(
        &["out", src.path().to_str().unwrap()],
        &request,
        &[("BUILD_PIPELINE_NAME", "demo")],
    );
    assert_eq!(got.code, 0, "{got:?}");
    assert!(
        got.stderr.contains("env: BUILD_PIPELINE_NAME=demo"),
        "{got:?}"
    );
    assert!(got.stderr.contains("putting"), "{got:?}");
    let quiet = run_env(
        &["out", src.path().to_str().unwrap()],
        &json!({"source": {}, "params": {"version": "1"}}),
        &[("BUILD_PIPELINE_NAME", "demo")],
    );
    assert!(!quiet.stderr.contains("BUILD_PIPELINE_NAME"), "{quiet:?}");
}
