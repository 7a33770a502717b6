//! `out` against the real registry: docker-save (old and new style), oci-archive and OCI
//! layout inputs, multi-arch indexes, tags, blob skipping, and bad input.

// Test helpers: a failed step is a failed test, with the panic naming it.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::json;
use testbed::registry::{Registry, RegistryAuth};

use crate::images::{
    ImageSpec, push, push_arch_index, push_file, remote_digest, remote_raw, run, run_ok, skopeo,
    source,
};

fn list_tags(registry: &Registry, repo: &str) -> Vec<String> {
    let mut args = vec!["list-tags".to_owned()];
    args.extend(registry.skopeo_args(""));
    args.push(format!("docker://{}/{repo}", registry.host()));
    let listing: serde_json::Value = serde_json::from_slice(&skopeo(&args)).unwrap();
    let mut tags: Vec<String> = listing["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

fn get(registry: &Registry, repo: &str, digest: &str, dest: &Path, format: &str) {
    run_ok(
        "in",
        Some(dest),
        &json!({"source": source(registry, repo), "version": {"tag": "x", "digest": digest},
                "params": {"format": format}}),
    );
}

#[test]
fn round_trips_what_in_wrote_in_every_auth_mode() {
    for auth in [
        RegistryAuth::None,
        RegistryAuth::basic("user", "pw"),
        RegistryAuth::bearer("user", "pw"),
        RegistryAuth::tls_basic("user", "pw"),
    ] {
        let registry = Registry::start(auth.clone());
        let dir = tempfile::tempdir().unwrap();
        let digest = push(
            &registry,
            dir.path(),
            "app",
            "v1",
            &[ImageSpec::new(
                "amd64",
                vec![vec![("a", "1")], vec![("b", "2")]],
            )],
        );
        let src = dir.path().join("src");
        get(&registry, "app", &digest, &src.join("image"), "oci");
        let mut source = source(&registry, "copy");
        source["tag"] = json!("latest");
        let first = run(
            "out",
            Some(&src),
            &json!({"source": source, "params": {"image": "image/image.tar"}}),
        );
        assert_eq!(first.code, 0, "{}", first.stderr);
        // The blobs came from `app` on the same registry (named by image/repository): mounted.
        assert!(
            first
                .stderr
                .contains("0 uploaded, 3 mounted, 0 already there"),
            "{auth:?}: {}",
            first.stderr
        );
        let out = first.stdout;
        assert_eq!(
            out["version"],
            json!({"tag": "latest", "digest": digest}),
            "{auth:?}"
        );
        assert_eq!(remote_digest(&registry, "copy", "latest"), digest);
        // A second push finds every blob already there.
        let outcome = run(
            "out",
            Some(&src),
            &json!({"source": source, "params": {"image": "image/*.tar"}}),
        );
        assert_eq!(outcome.code, 0, "{}", outcome.stderr);
        assert!(
            outcome
                .stderr
                .contains("0 uploaded, 0 mounted, 3 already there"),
            "{}",
            outcome.stderr
        );
    }
}

#[test]
fn pushes_a_multi_arch_layout_as_an_index() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let index = push_arch_index(&registry, dir.path(), "multi", "latest");
    let src = dir.path().join("src");
    get(&registry, "multi", &index, &src.join("image"), "oci-layout");
    let mut source = source(&registry, "pushed");
    source["tag"] = json!("all");
    let out = run_ok(
        "out",
        Some(&src),
        &json!({"source": source, "params": {"image": "image/oci"}}),
    );
    assert_eq!(out["version"]["digest"], json!(index));
    assert_eq!(
        remote_raw(&registry, "pushed", "all"),
        remote_raw(&registry, "multi", "latest")
    );
    // And arm64 is pullable from it.
    let dest = dir.path().join("arm");
    run_ok(
        "in",
        Some(&dest),
        &json!({"source": crate::images::source(&registry, "pushed"), "version": {"tag": "all", "digest": index},
                "params": {"platform": {"architecture": "arm64"}}}),
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("rootfs/arch")).unwrap(),
        "arm64"
    );
}

#[test]
fn pushes_skopeo_archives_old_docker_save_and_oci_archive() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let digest = push_file(&registry, dir.path(), "app", "v1", ("etc/hello", "world"));
    for (transport, file) in [("docker-archive", "old.tar"), ("oci-archive", "oci.tar")] {
        let src = dir.path().join(format!("src-{transport}"));
        std::fs::create_dir_all(&src).unwrap();
        skopeo(&[
            "copy".into(),
            "--src-tls-verify=false".into(),
            format!("docker://{}/app:v1", registry.host()),
            format!("{transport}:{}", src.join(file).display()),
        ]);
        let mut source = source(&registry, transport);
        source["tag"] = json!("t");
        let out = run_ok(
            "out",
            Some(&src),
            &json!({"source": source, "params": {"image": "*.tar"}}),
        );
        let pushed = out["version"]["digest"].as_str().unwrap().to_owned();
        assert_eq!(remote_digest(&registry, transport, "t"), pushed);
        if transport == "oci-archive" {
            assert_eq!(pushed, digest);
        }
        let dest = dir.path().join(format!("dest-{transport}"));
        get(&registry, transport, &pushed, &dest, "rootfs");
        assert_eq!(
            std::fs::read_to_string(dest.join("rootfs/etc/hello")).unwrap(),
            "world"
        );
        let metadata: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dest.join("metadata.json")).unwrap())
                .unwrap();
        assert_eq!(metadata["user"], "1000", "{transport}");
    }
}

#[test]
fn pushes_every_requested_tag() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let digest = push_file(&registry, dir.path(), "app", "2.0.0", ("a", "1"));
    let src = dir.path().join("src");
    get(&registry, "app", &digest, &src.join("image"), "oci");
    std::fs::write(src.join("tags"), "alpha\n beta  ").unwrap();
    let mut source = source(&registry, "app");
    source["tag"] = json!("edge");
    let out = run_ok(
        "out",
        Some(&src),
        &json!({"source": source, "params": {"image": "image/image.tar", "version": "v1.2",
                "bump_aliases": true, "additional_tags": "tags", "tag_prefix": "pre-"}}),
    );
    assert_eq!(out["version"], json!({"tag": "edge", "digest": digest}));
    assert_eq!(
        out["metadata"],
        json!([{"name": "repository", "value": format!("{}/app", registry.host())},
               {"name": "tags", "value": "edge 1.2.0 1 1.2 pre-alpha pre-beta"}])
    );
    // 2.0.0 exists, so 1.2.0 is not `latest`.
    assert_eq!(
        list_tags(&registry, "app"),
        [
            "1",
            "1.2",
            "1.2.0",
            "2.0.0",
            "edge",
            "pre-alpha",
            "pre-beta"
        ]
    );
}

#[test]
fn bad_input_is_named() {
    let registry = Registry::start(RegistryAuth::basic("user", "pw"));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("a/image.tar"), "x").unwrap();
    std::fs::write(src.join("b/image.tar"), "x").unwrap();
    let mut good = source(&registry, "app");
    good["tag"] = json!("t");
    let cases = [
        (
            json!({"source": good, "params": {}}),
            2,
            "params.image: required",
        ),
        (
            json!({"source": good, "params": {"image": "none/*.tar"}}),
            2,
            "matched no files",
        ),
        (
            json!({"source": good, "params": {"image": "*/image.tar"}}),
            2,
            "matched 2 files, expected one: a/image.tar, b/image.tar",
        ),
        (
            json!({"source": source(&registry, "app"), "params": {"image": "a/image.tar"}}),
            2,
            "no tag to push",
        ),
        (
            json!({"source": good, "params": {"image": "a/image.tar", "version": "banana"}}),
            2,
            "params.version",
        ),
        (
            json!({"source": good, "params": {"image": "a/image.tar"}}),
            1,
            "not a readable image tarball",
        ),
    ];
    for (request, code, message) in cases {
        let outcome = run("out", Some(&src), &request);
        assert_eq!(outcome.code, code, "{request}: {}", outcome.stderr);
        assert!(
            outcome.stderr.contains(message),
            "{request}: {}",
            outcome.stderr
        );
    }

    // A wrong password fails the push without showing the password.
    let digest = push_file(&registry, dir.path(), "app", "v1", ("a", "1"));
    get(&registry, "app", &digest, &src.join("image"), "oci-layout");
    let mut wrong = good.clone();
    wrong["password"] = json!("WRONG-pw-777");
    let outcome = run(
        "out",
        Some(&src),
        &json!({"source": wrong, "params": {"image": "image/oci"}}),
    );
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("unauthorized"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("WRONG-pw-777"));
}
