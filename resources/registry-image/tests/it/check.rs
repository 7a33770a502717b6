//! `check` against the real registry: tag mode (plain, Basic, TLS, Bearer), multi-arch index
//! digests, the `[given, current]` rule, `tag_regex`, and the failures users hit.

use serde_json::json;
use testbed::registry::{Registry, RegistryAuth};

use crate::images::{ImageSpec, push, push_arch_index, push_file, run, run_ok, source};

fn v(tag: &str, digest: &str) -> serde_json::Value {
    json!({"tag": tag, "digest": digest})
}

#[test]
fn tag_mode_in_every_auth_mode() {
    for auth in [
        RegistryAuth::None,
        RegistryAuth::basic("user", "s3cret-pass"),
        RegistryAuth::Tls,
        RegistryAuth::bearer("user", "s3cret-pass"),
    ] {
        let registry = Registry::start(auth.clone());
        let dir = tempfile::tempdir().unwrap();
        let digest = push_file(&registry, dir.path(), "app", "v1", ("a", "1"));
        let mut src = source(&registry, "app");
        src["tag"] = json!("v1");
        let versions = run_ok("check", None, &json!({"source": src}));
        assert_eq!(versions, json!([v("v1", &digest)]), "{auth:?}");
        // A tag that does not exist is no version, not an error.
        src["tag"] = json!("nope");
        assert_eq!(
            run_ok("check", None, &json!({"source": src})),
            json!([]),
            "{auth:?}"
        );
    }
}

#[test]
fn tag_mode_reports_given_and_current() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let old = push_file(&registry, dir.path(), "app", "1", ("a", "old"));
    let new = push_file(&registry, dir.path(), "app", "1", ("a", "new"));
    assert_ne!(old, new);
    let mut src = source(&registry, "app");
    src["tag"] = json!(1); // numbers are tags too
    let cases = [
        (json!(null), json!([v("1", &new)])),
        (v("1", &new), json!([v("1", &new)])),
        (v("1", &old), json!([v("1", &old), v("1", &new)])),
        (
            v(
                "1",
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
            json!([v("1", &new)]),
        ),
    ];
    for (given, expect) in cases {
        let got = run_ok("check", None, &json!({"source": src, "version": given}));
        assert_eq!(got, expect, "given {given}");
    }
}

#[test]
fn multi_arch_tags_give_the_index_digest() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let index = push_arch_index(&registry, dir.path(), "multi", "latest");
    let raw = crate::images::remote_raw(&registry, "multi", "latest");
    assert!(String::from_utf8_lossy(&raw).contains("manifests"));
    let mut src = source(&registry, "multi");
    src["tag"] = json!("latest");
    assert_eq!(
        run_ok("check", None, &json!({"source": src})),
        json!([v("latest", &index)])
    );
}

#[test]
fn tag_regex_mode() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let mut digests = std::collections::BTreeMap::new();
    for tag in ["build-1", "build-2", "release-1", "build-10"] {
        let d = push_file(&registry, dir.path(), "app", tag, ("t", tag));
        digests.insert(tag, d);
    }
    let mut src = source(&registry, "app");
    src["tag_regex"] = json!("^build-");
    let got = run_ok("check", None, &json!({"source": src}));
    // Versions come in the registry's listing order.
    let mut args = vec!["list-tags".to_owned()];
    args.extend(registry.skopeo_args(""));
    args.push(format!("docker://{}/app", registry.host()));
    let listing: serde_json::Value = serde_json::from_slice(&crate::images::skopeo(&args)).unwrap();
    let expect: Vec<_> = listing["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .filter(|t| t.starts_with("build-"))
        .map(|t| v(t, &digests[t]))
        .collect();
    assert_eq!(got, json!(expect));
    src["created_at_sort"] = json!(true);
    let got = run_ok("check", None, &json!({"source": src}));
    assert_eq!(got.as_array().unwrap().len(), 3);
    src["tag_regex"] = json!("(");
    let outcome = run("check", None, &json!({"source": src}));
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("source.tag_regex"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn failures_are_clear_and_never_show_the_password() {
    let registry = Registry::start(RegistryAuth::basic("user", "right-pass"));
    let dir = tempfile::tempdir().unwrap();
    push_file(&registry, dir.path(), "app", "v1", ("a", "1"));
    let mut src = source(&registry, "app");
    src["tag"] = json!("v1");
    src["password"] = json!("wrong-pass-XYZ");
    let outcome = run("check", None, &json!({"source": src}));
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("unauthorized"),
        "{}",
        outcome.stderr
    );
    assert!(
        !outcome.stderr.contains("wrong-pass-XYZ"),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stdout, serde_json::Value::Null);

    // An unknown repository: no versions in tag mode (a HEAD cannot tell), an error naming it
    // in the listing modes.
    let mut unknown = source(&registry, "no-such-repo");
    unknown["tag"] = json!("v1");
    assert_eq!(
        run_ok("check", None, &json!({"source": unknown})),
        json!([])
    );
    unknown.as_object_mut().unwrap().remove("tag");
    let outcome = run("check", None, &json!({"source": unknown}));
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains(&format!(
            "repository not found: {}/no-such-repo",
            registry.host()
        )),
        "{}",
        outcome.stderr
    );

    let outcome = run("check", None, &json!({"source": {"tag": "x"}}));
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("repository"), "{}", outcome.stderr);
}

/// Copies `repo:from` to `repo:to` inside the registry.
fn retag(registry: &Registry, repo: &str, from: &str, to: &str) {
    let mut args = vec!["copy".to_owned()];
    args.extend(registry.skopeo_args("src"));
    args.extend(registry.skopeo_args("dest"));
    args.push(format!("docker://{}/{repo}:{from}", registry.host()));
    args.push(format!("docker://{}/{repo}:{to}", registry.host()));
    crate::images::skopeo(&args);
}

#[test]
fn semver_mode() {
    let registry = Registry::start(RegistryAuth::bearer("user", "pw"));
    let dir = tempfile::tempdir().unwrap();
    let mut digests = std::collections::BTreeMap::new();
    for tag in ["1.0.0", "1.1.0-rc.1", "1.1.0", "2.0.0-alpine", "latest"] {
        let d = push_file(&registry, dir.path(), "app", tag, ("t", tag));
        digests.insert(tag, d);
    }
    retag(&registry, "app", "1.0.0", "1");
    retag(&registry, "app", "1.0.0", "1.0");
    let d = |t: &str| digests[t].clone();
    let cases = [
        (
            json!({}),
            None,
            json!([
                v("1.0.0", &d("1.0.0")),
                v("1.1.0", &d("1.1.0")),
                v("latest", &d("latest"))
            ]),
        ),
        (
            json!({"pre_releases": true}),
            None,
            json!([
                v("1.0.0", &d("1.0.0")),
                v("1.1.0-rc.1", &d("1.1.0-rc.1")),
                v("1.1.0", &d("1.1.0")),
                v("latest", &d("latest"))
            ]),
        ),
        (
            json!({"semver_constraint": "< 1.1"}),
            None,
            json!([v("1.0.0", &d("1.0.0"))]),
        ),
        (
            json!({"variant": "alpine"}),
            None,
            json!([v("2.0.0-alpine", &d("2.0.0-alpine"))]),
        ),
        (
            json!({}),
            Some(v("1.1.0", &d("1.1.0"))),
            json!([v("1.1.0", &d("1.1.0")), v("latest", &d("latest"))]),
        ),
    ];
    for (extra, given, expect) in cases {
        let mut src = source(&registry, "app");
        for (k, value) in extra.as_object().unwrap() {
            src[k] = value.clone();
        }
        let got = run_ok("check", None, &json!({"source": src, "version": given}));
        assert_eq!(got, expect, "{extra}");
    }
    let mut src = source(&registry, "app");
    src["semver_constraint"] = json!(">= banana");
    let outcome = run("check", None, &json!({"source": src}));
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("source.semver_constraint"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn docker_hub_images_come_from_the_mirror() {
    let registry = Registry::start(RegistryAuth::basic("mirror-user", "mirror-pw"));
    let dir = tempfile::tempdir().unwrap();
    let digest = push_file(
        &registry,
        dir.path(),
        "library/busybox",
        "1.36",
        ("bin/sh", "x"),
    );
    let mirror =
        json!({"host": registry.host(), "username": "mirror-user", "password": "mirror-pw"});
    let src = json!({"repository": "busybox", "tag": "1.36", "registry_mirror": mirror});
    assert_eq!(
        run_ok("check", None, &json!({"source": src})),
        json!([v("1.36", &digest)])
    );
    let dest = dir.path().join("dest");
    run_ok(
        "in",
        Some(&dest),
        &json!({"source": src, "version": {"tag": "1.36", "digest": digest}}),
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("rootfs/bin/sh")).unwrap(),
        "x"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("repository")).unwrap(),
        "busybox"
    );
}

#[test]
fn cloud_logins_are_not_implemented_yet() {
    let cases = [
        (
            json!({"aws_access_key_id": "AKIA", "aws_secret_access_key": "k", "aws_region": "eu-west-1"}),
            3,
            "aws",
        ),
        (
            json!({"aws_secret_access_key": "k"}),
            2,
            "source.aws_secret_access_key",
        ),
        (json!({"azure_acr": true}), 3, "azure"),
        (
            json!({"content_trust": {"server": "x"}}),
            3,
            "content_trust",
        ),
    ];
    for (extra, code, message) in cases {
        let mut src = json!({"repository": "127.0.0.1:1/app", "tag": "x"});
        for (k, value) in extra.as_object().unwrap() {
            src[k] = value.clone();
        }
        let outcome = run("check", None, &json!({"source": src}));
        assert_eq!(outcome.code, code, "{extra}: {}", outcome.stderr);
        assert!(
            outcome.stderr.contains(message),
            "{extra}: {}",
            outcome.stderr
        );
        assert!(!outcome.stderr.contains("\"k\""));
    }
}

#[test]
fn tag_regex_orders_by_creation_time() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let mut digests = std::collections::BTreeMap::new();
    for (tag, created) in [
        ("a", "2023-05-01T00:00:00Z"),
        ("b", "2020-01-01T00:00:00Z"),
        ("c", "2021-07-01T12:00:00Z"),
    ] {
        let mut spec = ImageSpec::new("amd64", vec![vec![("t", tag)]]);
        spec.created = created;
        digests.insert(tag, push(&registry, dir.path(), "app", tag, &[spec]));
    }
    let mut src = source(&registry, "app");
    src["tag_regex"] = json!("^[abc]$");
    src["created_at_sort"] = json!("true");
    let got = run_ok("check", None, &json!({"source": src}));
    assert_eq!(
        got,
        json!([
            v("b", &digests["b"]),
            v("c", &digests["c"]),
            v("a", &digests["a"])
        ])
    );
}

#[test]
fn wrong_bearer_credentials_fail_without_showing_them() {
    let registry = Registry::start(RegistryAuth::bearer("user", "right-pw"));
    let dir = tempfile::tempdir().unwrap();
    push_file(&registry, dir.path(), "app", "v1", ("a", "1"));
    let mut src = source(&registry, "app");
    src["tag"] = json!("v1");
    src["password"] = json!("bad-Bearer-pw-123");
    let outcome = run("check", None, &json!({"source": src}));
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("unauthorized"),
        "{}",
        outcome.stderr
    );
    assert!(
        !outcome.stderr.contains("bad-Bearer-pw-123"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        outcome.stderr.trim().lines().count(),
        1,
        "{}",
        outcome.stderr
    );
}
