//! Malformed requests give a non-zero exit, an empty stdout and one line on stderr.

use serde_json::json;

use crate::support::run;

#[test]
fn rejects_bad_input() {
    testbed::bad_input::assert_rejects_bad_input(
        std::path::Path::new(env!("CARGO_BIN_EXE_registry-tag-resource")),
        serde_json::json!({"uri": "http://127.0.0.1:5000/v2/app"}),
        "regexp",
    );
}

#[test]
fn rejects_bad_sources_with_one_clear_line() {
    let hub = "https://hub.docker.com/v2/repositories/library/ruby";
    let reg = "http://127.0.0.1:9/v2/app";
    // (source, exit code, expected stderr fragment)
    let table = [
        (
            json!({"uri": reg, "pages": 0}),
            2,
            "source.pages: must be a positive integer",
        ),
        (
            json!({"uri": reg, "pages": "0"}),
            2,
            "source.pages: must be a positive integer",
        ),
        (json!({"uri": reg, "pages": "many"}), 2, "source.pages"),
        (
            json!({"uri": reg, "tags_per_page": 0}),
            2,
            "source.tags_per_page: must be a positive integer",
        ),
        (
            json!({"uri": hub, "tags_per_page": 101}),
            2,
            "source.tags_per_page: Docker Hub allows at most 100 tags per page, got 101",
        ),
        (
            json!({"uri": reg, "regexp": "(unclosed"}),
            2,
            "source.regexp: invalid regex \"(unclosed\"",
        ),
        (
            json!({"uri": reg, "semver": {"matcher": ">= banana"}}),
            2,
            "source.semver.matcher: invalid version range \">= banana\"",
        ),
        (
            json!({"uri": reg, "semver": {"matcher": ">= 1", "prefix": "["}}),
            2,
            "source.semver.prefix: invalid regex",
        ),
        (
            json!({"uri": reg, "semver": {"matcher": ">= 1"}, "sort": {"method": "numerical"}}),
            2,
            "source.sort.method and source.semver.matcher: set at most one",
        ),
        (
            json!({"uri": reg, "sort": {"method": "random"}}),
            2,
            "source.sort.method: unknown sort method \"random\"",
        ),
        (
            json!({"uri": reg, "semver": {"matcher": "1", "extra": 1}}),
            2,
            "unknown field `extra`",
        ),
        (
            json!({"uri": reg, "sort": {"reverse": "sometimes"}}),
            2,
            "source.sort.reverse",
        ),
        (
            json!({"uri": "quay.io/coreos/etcd"}),
            2,
            "source.uri: \"quay.io/coreos/etcd\" is not a URL",
        ),
        (
            json!({"uri": "https://quay.io/coreos/etcd"}),
            2,
            "source.uri: \"https://quay.io/coreos/etcd\": a registry URL names the repository after /v2/",
        ),
        (
            json!({"uri": hub, "username": "u", "password": "p"}),
            2,
            "credentials are not supported for the Docker Hub listing API",
        ),
        (
            json!({"uri": reg, "arch": "arm64", "platform": {"architecture": "amd64"}}),
            2,
            "source.arch and source.platform.architecture",
        ),
        (
            json!({"uri": reg, "ca_certs": ["not a certificate"]}),
            1,
            "ca_certs[0]",
        ),
        (json!({"uri": reg}), 1, "Connection refused"),
    ];
    for (source, code, expect) in table {
        let got = run(&["check"], &json!({"source": source}));
        assert_eq!(got.code, code, "{source}: {got:?}");
        assert_eq!(got.stdout, serde_json::Value::Null, "{source}");
        // Validation errors are the only line; network failures may follow retry warnings.
        let lines: Vec<&str> = got.stderr.lines().collect();
        if code == 2 {
            assert_eq!(lines.len(), 1, "{source}: {got:?}");
        }
        let last = lines.last().copied().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(expect),
            "{source}: {}",
            got.stderr
        );
    }
    let no_tag = run(
        &["in", "/tmp/unused-dest"],
        &json!({"source": {"uri": reg}, "version": {"digest": "x"}}),
    );
    assert_eq!(no_tag.code, 2, "{no_tag:?}");
    assert!(no_tag.stderr.contains("version.tag: missing"), "{no_tag:?}");
}

#[test]
fn out_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let got = run(
        &["out", dir.path().to_str().unwrap()],
        &json!({"source": {"uri": "http://127.0.0.1:9/v2/app"}, "params": {"anything": 1}}),
    );
    assert_eq!(got.code, 1, "{got:?}");
    assert_eq!(got.stdout, serde_json::Value::Null);
    assert!(
        got.stderr
            .contains("registry-tag is read-only; use registry-image to push"),
        "{got:?}"
    );
}
