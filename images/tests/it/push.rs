//! The full path: build, push to a real registry through our registry-image `out`, fetch back
//! with our registry-image `in` (rootfs format), and run `check` from that rootfs under bwrap
//! and runc.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use testbed::registry::{Registry, RegistryAuth};

use crate::support::{
    Bind, bare_repository, binaries_dir, build_env, bwrap, run_binary, run_tool, runc,
};

#[test]
fn pushed_images_come_back_through_registry_image_in_and_run() {
    let registry = Registry::start(RegistryAuth::basic("pusher", "s3cret-pass"));
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let prefix = format!("{}/tributary", registry.host());
    let image = build_env(
        out.path(),
        &[
            "--types",
            "git",
            "--push",
            &prefix,
            "--push-insecure",
            "--push-username",
            "pusher",
        ],
        &[("IMAGES_PUSH_PASSWORD", "s3cret-pass")],
    )
    .remove(0);

    // Both tags name the image we built, byte for byte.
    let repository = format!("{prefix}/git-resource");
    for tag in [image.tag.as_str(), "latest"] {
        let inspected: serde_json::Value = serde_json::from_slice(&run_tool(
            "skopeo",
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                "--creds",
                "pusher:s3cret-pass",
                &format!("docker://{repository}:{tag}"),
            ],
            Path::new("/"),
        ))
        .unwrap();
        assert_eq!(inspected["Digest"], image.manifest_digest.as_str(), "{tag}");
    }

    let dest = work.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let request = serde_json::json!({
        "source": {
            "repository": repository, "tag": image.tag, "insecure": true,
            "username": "pusher", "password": "s3cret-pass",
        },
        "version": {"tag": image.tag, "digest": image.manifest_digest},
    });
    let fetched = run_binary(
        &binaries_dir().join("registry-image-resource"),
        &["in", &dest.to_string_lossy()],
        &request.to_string(),
    );
    assert_eq!(fetched.code, Some(0), "{fetched:?}");
    let answer: serde_json::Value = serde_json::from_str(&fetched.stdout).unwrap();
    assert_eq!(answer["version"]["digest"], image.manifest_digest.as_str());

    let rootfs = dest.join("rootfs");
    let (repo, head) = bare_repository(&work.path().join("git"));
    let binds = [Bind {
        host: repo,
        container: "/repo.git".into(),
    }];
    let check = r#"{"source":{"uri":"/repo.git","branch":"main"}}"#;
    for (runner, answer) in [
        (
            "bwrap",
            bwrap(&rootfs, &binds, &["/opt/resource/check"], check),
        ),
        (
            "runc",
            runc(&rootfs, &binds, &["/opt/resource/check"], check),
        ),
    ] {
        assert_eq!(answer.code, Some(0), "{runner}: {answer:?}");
        let versions: serde_json::Value = serde_json::from_str(&answer.stdout).unwrap();
        assert_eq!(versions, serde_json::json!([{ "ref": head }]), "{runner}");
    }
}

#[test]
fn push_failures_name_the_repository_and_keep_the_password_out() {
    // Wrong password: registry-image out fails, and the builder says which push failed.
    let registry = Registry::start(RegistryAuth::basic("pusher", "right-pass"));
    let out = tempfile::tempdir().unwrap();
    let prefix = format!("{}/tributary", registry.host());
    let output = crate::support::images_cli_env(
        out.path(),
        &[
            "--types",
            "registry-tag",
            "--push",
            &prefix,
            "--push-insecure",
            "--push-username",
            "pusher",
        ],
        &[("IMAGES_PUSH_PASSWORD", "wrong-pass-123")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "error: push {prefix}/registry-tag-resource: registry-image out failed (exit status: 1): "
        )),
        "{last}"
    );
    assert!(!stderr.contains("wrong-pass-123"), "{stderr}");
}

#[test]
fn tls_pushes_trust_the_ca_given_with_push_ca_cert() {
    let registry = Registry::start(RegistryAuth::Tls);
    let out = tempfile::tempdir().unwrap();
    let ca = out.path().join("ca.pem");
    std::fs::write(&ca, registry.ca_cert_pem().unwrap()).unwrap();
    let prefix = format!("{}/tributary", registry.host());
    let push = ["--types", "registry-tag", "--push", &prefix];

    // The throw-away CA is in no system bundle: without --push-ca-cert the push is refused.
    let refused = crate::support::images_cli(out.path(), &push);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: push {prefix}/registry-tag-resource: registry-image out failed"
        )),
        "{stderr}"
    );

    let mut with_ca = push.to_vec();
    with_ca.extend(["--push-ca-cert", ca.to_str().unwrap()]);
    let image = crate::support::build(out.path(), &with_ca).remove(0);
    let inspected: serde_json::Value = serde_json::from_slice(&run_tool(
        "skopeo",
        "skopeo",
        &[
            "inspect",
            "--cert-dir",
            &registry.cert_dir().unwrap().to_string_lossy(),
            &format!("docker://{prefix}/registry-tag-resource:{}", image.tag),
        ],
        Path::new("/"),
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], image.manifest_digest.as_str());
}
