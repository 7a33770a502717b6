//! `in` against the real registry: every format, platform selection, metadata, and failures;
//! outputs cross-checked with skopeo.

use std::path::Path;

use serde_json::json;
use testbed::registry::{Registry, RegistryAuth};

use crate::images::{ImageSpec, push, push_file, remote_raw, run, run_ok, sha256, skopeo, source};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn two_arch() -> Vec<ImageSpec<'static>> {
    vec![
        ImageSpec::new(
            "amd64",
            vec![
                vec![("etc/arch", "amd64"), ("etc/gone", "x")],
                vec![("etc/.wh.gone", "")],
            ],
        ),
        ImageSpec::new("arm64", vec![vec![("etc/arch", "arm64")]]),
    ]
}

#[test]
fn rootfs_in_every_auth_mode() {
    for auth in [
        RegistryAuth::None,
        RegistryAuth::tls_basic("user", "pw"),
        RegistryAuth::bearer("user", "pw"),
    ] {
        let registry = Registry::start(auth.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut spec = ImageSpec::new(
            "amd64",
            vec![
                vec![("bin/tool", "v1"), ("etc/x", "x")],
                vec![("bin/tool", "v2"), ("etc/.wh.x", "")],
            ],
        );
        spec.labels = vec![("org.example.team", "ci"), ("other", "o")];
        let digest = push(&registry, dir.path(), "app", "v1", &[spec]);
        let mut src = source(&registry, "app");
        src["label_regex"] = json!("^org\\.example\\.");
        src["annotation_regex"] = json!("built-by");
        let dest = dir.path().join("dest");
        let response = run_ok(
            "in",
            Some(&dest),
            &json!({"source": src, "version": {"tag": "v1", "digest": digest}}),
        );
        assert_eq!(
            response["version"],
            json!({"tag": "v1", "digest": digest}),
            "{auth:?}"
        );
        let metadata = response["metadata"].as_array().unwrap();
        let names: Vec<&str> = metadata
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "repository",
                "tag",
                "org.example.team",
                "org.example.built-by"
            ]
        );
        assert_eq!(read(&dest.join("rootfs/bin/tool")), "v2");
        assert!(!dest.join("rootfs/etc/x").exists());
        assert_eq!(read(&dest.join("digest")), digest);
        assert_eq!(read(&dest.join("tag")), "v1");
        assert_eq!(
            read(&dest.join("repository")),
            format!("{}/app", registry.host())
        );
        let metadata: serde_json::Value =
            serde_json::from_str(&read(&dest.join("metadata.json"))).unwrap();
        assert_eq!(
            metadata,
            json!({"env": ["PATH=/bin", "ARCH=amd64"], "user": "1000", "cmd": ["sh"], "entrypoint": []})
        );
        let labels: serde_json::Value =
            serde_json::from_str(&read(&dest.join("labels.json"))).unwrap();
        assert_eq!(labels, json!({"org.example.team": "ci", "other": "o"}));
        // Nothing but the outputs is left in DEST.
        let mut entries: Vec<String> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            [
                "digest",
                "labels.json",
                "metadata.json",
                "repository",
                "rootfs",
                "tag"
            ]
        );
    }
}

#[test]
fn picks_the_platform_from_an_index() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let index = push(&registry, dir.path(), "multi", "latest", &two_arch());
    let src = source(&registry, "multi");
    let version = json!({"tag": "latest", "digest": index});
    let cases = [
        (json!(null), "amd64"),
        (json!({"platform": {"architecture": "arm64"}}), "arm64"),
    ];
    for (params, arch) in cases {
        let dest = dir.path().join(format!("dest-{arch}"));
        run_ok(
            "in",
            Some(&dest),
            &json!({"source": src, "version": version, "params": params}),
        );
        assert_eq!(read(&dest.join("rootfs/etc/arch")), arch);
        assert_eq!(read(&dest.join("digest")), index);
    }
    let mut src = src.clone();
    src["platform"] = json!({"architecture": "s390x"});
    let outcome = run(
        "in",
        Some(&dir.path().join("none")),
        &json!({"source": src, "version": version}),
    );
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("no image for platform linux/s390x"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn oci_layout_of_an_index_is_byte_for_byte_and_loads_in_skopeo() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let index = push(&registry, dir.path(), "multi", "latest", &two_arch());
    let dest = dir.path().join("dest");
    run_ok(
        "in",
        Some(&dest),
        &json!({"source": source(&registry, "multi"), "version": {"tag": "latest", "digest": index},
                "params": {"format": "oci-layout"}}),
    );
    let index_json = std::fs::read(dest.join("oci/index.json")).unwrap();
    assert_eq!(index_json, remote_raw(&registry, "multi", "latest"));
    assert_eq!(sha256(&index_json), index);
    assert!(!dest.join("oci/single-image-digest").exists());
    // Every manifest, config and layer the index names is in blobs/, under its digest.
    // (skopeo 1.9 cannot pick from an index.json without ref names, so we walk it here.)
    let blob = |digest: &str| {
        let bytes = std::fs::read(dest.join("oci/blobs/sha256").join(&digest[7..])).unwrap();
        assert_eq!(sha256(&bytes), digest);
        serde_json::from_slice::<serde_json::Value>(&bytes).ok()
    };
    let index: serde_json::Value = serde_json::from_slice(&index_json).unwrap();
    let mut layers = 0;
    for entry in index["manifests"].as_array().unwrap() {
        let manifest = blob(entry["digest"].as_str().unwrap()).unwrap();
        blob(manifest["config"]["digest"].as_str().unwrap());
        for layer in manifest["layers"].as_array().unwrap() {
            blob(layer["digest"].as_str().unwrap());
            layers += 1;
        }
    }
    assert_eq!(layers, 3);
}

#[test]
fn oci_layout_and_tarball_of_a_single_image() {
    let registry = Registry::start(RegistryAuth::None);
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
    let version = json!({"tag": "v1", "digest": digest});
    let src = source(&registry, "app");

    let layout_dest = dir.path().join("layout");
    run_ok(
        "in",
        Some(&layout_dest),
        &json!({"source": src, "version": version, "params": {"format": "oci-layout"}}),
    );
    assert_eq!(read(&layout_dest.join("oci/single-image-digest")), digest);
    let raw = skopeo(&[
        "inspect".into(),
        "--raw".into(),
        format!("oci:{}:v1", layout_dest.join("oci").display()),
    ]);
    assert_eq!(sha256(&raw), digest);

    let tar_dest = dir.path().join("tarball");
    run_ok(
        "in",
        Some(&tar_dest),
        &json!({"source": src, "version": version, "params": {"format": "oci"}}),
    );
    assert!(tar_dest.join("labels.json").is_file());
    assert!(!tar_dest.join("rootfs").exists());
    for transport in ["docker-archive", "oci-archive"] {
        let raw_config = skopeo(&[
            "inspect".into(),
            "--config".into(),
            "--raw".into(),
            format!("{transport}:{}", tar_dest.join("image.tar").display()),
        ]);
        let config: serde_json::Value = serde_json::from_slice(&raw_config).unwrap();
        assert_eq!(config["architecture"], "amd64", "{transport}");
    }
    // skopeo copies the tarball back into the registry with the same layers.
    skopeo(&[
        "copy".into(),
        "--dest-tls-verify=false".into(),
        format!("oci-archive:{}", tar_dest.join("image.tar").display()),
        format!("docker://{}/app:copy", registry.host()),
    ]);
    assert_eq!(
        crate::images::remote_digest(&registry, "app", "copy"),
        digest
    );
}

#[test]
fn skip_download_and_failures() {
    let registry = Registry::start(RegistryAuth::basic("user", "pw"));
    let dir = tempfile::tempdir().unwrap();
    let digest = push_file(&registry, dir.path(), "app", "v1", ("a", "1"));
    let src = source(&registry, "app");
    let dest = dir.path().join("skip");
    run_ok(
        "in",
        Some(&dest),
        &json!({"source": src, "version": {"tag": "v1", "digest": digest}, "params": {"skip_download": true}}),
    );
    let mut entries: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["digest", "repository", "tag"]);

    let missing = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let outcome = run(
        "in",
        Some(&dir.path().join("m")),
        &json!({"source": src, "version": {"tag": "v1", "digest": missing}}),
    );
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("manifest unknown"),
        "{}",
        outcome.stderr
    );

    let mut wrong = src.clone();
    wrong["password"] = json!("not-the-pw-QQQ");
    let outcome = run(
        "in",
        Some(&dir.path().join("w")),
        &json!({"source": wrong, "version": {"tag": "v1", "digest": digest}}),
    );
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("unauthorized"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("not-the-pw-QQQ"));

    let outcome = run(
        "in",
        Some(&dir.path().join("f")),
        &json!({"source": src, "version": {"tag": "v1", "digest": digest}, "params": {"format": "zip"}}),
    );
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.stderr.contains("params.format"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn malicious_layers_never_write_outside_dest() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "untouched").unwrap();
    let abs = outside.join("abs").display().to_string();
    let outside_str = outside.display().to_string();
    let link_to_secret = format!("->{}", outside.join("secret").display());
    let hard_to_secret = format!("=>{}", outside.join("secret").display());
    let link_to_outside = format!("->{outside_str}");
    let through_up = format!("up{outside_str}/through-up");
    let spec = ImageSpec::new(
        "amd64",
        vec![
            vec![
                ("../../outside/dotdot", "pwned"),
                (abs.as_str(), "pwned"),
                ("escape", link_to_outside.as_str()),
                ("up", "->../../../../../../.."),
                ("s", link_to_secret.as_str()),
                ("h1", "=>../../outside/secret"),
                ("h2", hard_to_secret.as_str()),
                ("ok", "fine"),
            ],
            vec![
                ("escape/through-symlink", "pwned"),
                (through_up.as_str(), "pwned"),
                ("s", "replaced"),
                ("escape/.wh.secret", ""),
            ],
        ],
    );
    let digest = push(&registry, dir.path(), "evil", "v1", &[spec]);
    let dest = dir.path().join("dest");
    run_ok(
        "in",
        Some(&dest),
        &json!({"source": source(&registry, "evil"), "version": {"tag": "v1", "digest": digest}}),
    );
    let mut outside_now: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside_now.sort();
    assert_eq!(outside_now, ["secret"]);
    assert_eq!(read(&outside.join("secret")), "untouched");
    assert_eq!(read(&dest.join("rootfs/ok")), "fine");
    assert_eq!(read(&dest.join("rootfs/s")), "replaced");
    // Writes through the symlinks landed inside the rootfs, where the container would see them.
    let inside = dest.join("rootfs").join(outside.strip_prefix("/").unwrap());
    assert_eq!(read(&inside.join("through-symlink")), "pwned");
    assert_eq!(read(&inside.join("through-up")), "pwned");
    assert!(!dest.join("rootfs/h1").exists() && !dest.join("rootfs/h2").exists());
}

#[test]
fn reads_umoci_layers_cut_short() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("umoci");
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("d")).unwrap();
    std::fs::write(files.join("d/f"), "hello\n").unwrap();
    let umoci = |args: &[&str]| {
        resource_protocol::process::output_checked(
            resource_protocol::process::command("umoci", dir.path()).args(args),
        )
        .unwrap()
    };
    let image = format!("{}:t", layout.display());
    umoci(&["init", "--layout", &layout.display().to_string()]);
    umoci(&["new", "--image", &image]);
    umoci(&[
        "insert",
        "--image",
        &image,
        &files.join("d").display().to_string(),
        "/d",
    ]);
    skopeo(&[
        "copy".into(),
        "--dest-tls-verify=false".into(),
        format!("oci:{image}"),
        format!("docker://{}/umoci:t", registry.host()),
    ]);
    let digest = crate::images::remote_digest(&registry, "umoci", "t");
    let dest = dir.path().join("dest");
    run_ok(
        "in",
        Some(&dest),
        &json!({"source": source(&registry, "umoci"), "version": {"tag": "t", "digest": digest}}),
    );
    assert_eq!(read(&dest.join("rootfs/d/f")), "hello\n");
}

#[test]
fn a_corrupted_blob_in_the_registry_is_a_digest_mismatch() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let spec = ImageSpec::new("amd64", vec![vec![("a", "original content")]]);
    let digest = push(&registry, dir.path(), "app", "v1", &[spec]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&remote_raw(&registry, "app", "v1")).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap()[7..].to_owned();
    let data = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer[..2])
        .join(&layer)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let outcome = run(
        "in",
        Some(&dir.path().join("dest")),
        &json!({"source": source(&registry, "app"), "version": {"tag": "v1", "digest": digest}}),
    );
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("digest mismatch"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn docker_media_types_work_like_oci_ones() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    push(&registry, dir.path(), "multi", "oci", &two_arch());
    // skopeo converts the OCI index into a Docker manifest list of Docker v2 manifests.
    skopeo(&[
        "copy".into(),
        "--all".into(),
        "--format=v2s2".into(),
        "--src-tls-verify=false".into(),
        "--dest-tls-verify=false".into(),
        format!("docker://{}/multi:oci", registry.host()),
        format!("docker://{}/multi:docker", registry.host()),
    ]);
    let raw = remote_raw(&registry, "multi", "docker");
    assert!(String::from_utf8_lossy(&raw).contains("manifest.list.v2+json"));
    let mut src = source(&registry, "multi");
    src["tag"] = json!("docker");
    let versions = run_ok("check", None, &json!({"source": src}));
    assert_eq!(versions, json!([{"tag": "docker", "digest": sha256(&raw)}]));
    let dest = dir.path().join("dest");
    run_ok(
        "in",
        Some(&dest),
        &json!({"source": src, "version": versions[0], "params": {"platform": {"architecture": "arm64"}}}),
    );
    assert_eq!(read(&dest.join("rootfs/etc/arch")), "arm64");
}
