//! The builder's outputs judged by real tools: reproducibility, `skopeo` and `umoci`
//! acceptance, labels, sizes, rootfs contents, and command-line errors.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{
    REVISION, Summary, build, images_cli, run_tool, umoci_unpack, workspace_root,
};

/// The size goal of the spec: every image under 15 MB compressed.
const MAX_COMPRESSED_BYTES: u64 = 15_000_000;

fn digests(images: &[Summary]) -> BTreeMap<String, String> {
    images
        .iter()
        .map(|i| (i.type_name.clone(), i.manifest_digest.clone()))
        .collect()
}

#[test]
fn two_builds_from_one_commit_give_identical_images() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let first = build(a.path(), &[]);
    let second = build(b.path(), &[]);
    let types: Vec<_> = first.iter().map(|i| i.type_name.as_str()).collect();
    assert_eq!(
        types,
        [
            "git",
            "registry-image",
            "registry-tag",
            "nix-cache",
            "time",
            "mock"
        ]
    );
    assert_eq!(digests(&first), digests(&second));
    for (one, two) in first.iter().zip(&second) {
        for (x, y) in [
            (&one.oci_archive, &two.oci_archive),
            (&one.docker_archive, &two.docker_archive),
        ] {
            assert!(
                std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
                "{} and {} differ",
                x.display(),
                y.display()
            );
        }
    }
    // Rebuilding in place replaces the old outputs and gives the same digests again.
    assert_eq!(digests(&build(a.path(), &[])), digests(&first));
    // SOURCE_DATE_EPOCH is an input: another epoch, another image.
    let later = build(
        c.path(),
        &["--types", "git", "--source-date-epoch", "1700000000"],
    );
    assert_ne!(later[0].manifest_digest, first[0].manifest_digest);
}

fn skopeo_inspect(reference: &str, config: bool) -> serde_json::Value {
    let mut args = vec!["inspect"];
    if config {
        args.push("--config");
    }
    args.push(reference);
    serde_json::from_slice(&run_tool("skopeo", "skopeo", &args, Path::new("/"))).unwrap()
}

fn expected_labels(image: &Summary, revision: &str) -> serde_json::Value {
    let description = images::types::by_name(&image.type_name)
        .unwrap()
        .description;
    serde_json::json!({
        "org.opencontainers.image.title": format!("{}-resource", image.type_name),
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.version": env!("CARGO_PKG_VERSION"),
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": "https://github.com/tributary-ci/tributary",
        "org.opencontainers.image.licenses": "Apache-2.0",
    })
}

/// What every rootfs must hold, as (path, expectation).
fn check_rootfs(rootfs: &Path, binary: &str) {
    let meta =
        |p: &str| std::fs::symlink_metadata(rootfs.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    for operation in ["check", "in", "out"] {
        let link = format!("opt/resource/{operation}");
        assert_eq!(
            std::fs::read_link(rootfs.join(&link)).unwrap(),
            Path::new(binary),
            "{link}"
        );
    }
    let binary_meta = meta(&format!("opt/resource/{binary}"));
    assert!(binary_meta.is_file());
    assert_eq!(binary_meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
        std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap()
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert!(passwd.contains("\nnobody:x:65534:65534:"), "{passwd}");
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert_eq!(group, "root:x:0:\nnobody:x:65534:\n");
    let hosts = std::fs::read_to_string(rootfs.join("etc/hosts")).unwrap();
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    let nsswitch = std::fs::read_to_string(rootfs.join("etc/nsswitch.conf")).unwrap();
    assert!(nsswitch.contains("hosts: files dns\n"), "{nsswitch}");
    assert_eq!(meta("tmp").permissions().mode() & 0o7777, 0o1777);
    // Nothing else: no shell, no package manager, no /usr.
    let mut top: Vec<_> = std::fs::read_dir(rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    top.retain(|name| !["lib", "lib64"].contains(&name.as_str())); // shared libraries of a dynamic binary
    assert_eq!(top, ["etc", "opt", "root", "tmp"]);
    assert!(!rootfs.join("bin/sh").exists());
}

#[test]
fn umoci_and_skopeo_accept_every_image() {
    let out = tempfile::tempdir().unwrap();
    let built = build(out.path(), &[]);
    let revision = REVISION;
    let mut sizes = Vec::new();
    for image in &built {
        let layout = format!("oci:{}:{}", image.layout.display(), image.tag);
        sizes.push(format!("{} {}", image.type_name, image.compressed_size));
        assert!(
            image.compressed_size < MAX_COMPRESSED_BYTES,
            "{} is {} bytes compressed",
            image.type_name,
            image.compressed_size
        );

        let inspected = skopeo_inspect(&layout, false);
        assert_eq!(
            inspected["Digest"],
            image.manifest_digest.as_str(),
            "{layout}"
        );
        assert_eq!(
            inspected["Labels"],
            expected_labels(image, revision),
            "{layout}"
        );
        assert_eq!(inspected["Architecture"], "amd64");
        assert_eq!(inspected["Os"], "linux");
        assert_eq!(inspected["Created"], "1970-01-01T00:00:00Z");
        let config = skopeo_inspect(&layout, true);
        assert_eq!(config["config"]["User"], "root");
        assert_eq!(
            config["config"]["Env"][0],
            "PATH=/opt/resource:/usr/local/bin:/usr/bin:/bin"
        );

        let archive = format!("oci-archive:{}", image.oci_archive.display());
        assert_eq!(
            skopeo_inspect(&archive, false)["Digest"],
            image.manifest_digest.as_str()
        );
        let docker = format!("docker-archive:{}", image.docker_archive.display());
        assert_eq!(
            skopeo_inspect(&docker, false)["Labels"],
            expected_labels(image, revision)
        );

        let copies = tempfile::tempdir().unwrap();
        for (from, to) in [(&layout, "from-layout"), (&docker, "from-docker")] {
            let dest = format!("oci:{}:t", copies.path().join(to).display());
            run_tool(
                "skopeo",
                "skopeo",
                &["copy", "-q", from, &dest],
                Path::new("/"),
            );
        }
        // The docker archive holds the same layer and config as the layout.
        assert_eq!(
            skopeo_inspect(
                &format!("oci:{}:t", copies.path().join("from-docker").display()),
                true
            ),
            config
        );

        let bundle = tempfile::tempdir().unwrap();
        let rootfs = umoci_unpack(image, &bundle.path().join("bundle"));
        check_rootfs(&rootfs, &format!("{}-resource", image.type_name));
    }
    eprintln!("compressed sizes (bytes): {}", sizes.join(", "));
}

fn head() -> String {
    let head = run_tool("git", "git", &["rev-parse", "HEAD"], &workspace_root());
    String::from_utf8(head).unwrap().trim().to_owned()
}

#[test]
fn the_revision_label_defaults_to_the_checked_out_commit() {
    let out = tempfile::tempdir().unwrap();
    // Other commits may land while this runs: the label must name HEAD before or after.
    let before = head();
    let image = build(
        out.path(),
        &["--types", "registry-tag", "--default-revision"],
    )
    .remove(0);
    let after = head();
    let layout = format!("oci:{}:{}", image.layout.display(), image.tag);
    let label = skopeo_inspect(&layout, false)["Labels"]["org.opencontainers.image.revision"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        label == before || label == after,
        "{label} is neither {before} nor {after}"
    );
}

#[test]
fn command_line_errors_name_the_problem() {
    let out = tempfile::tempdir().unwrap();
    let check = |args: &[&str], expect: &str| {
        let output = images_cli(out.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.trim_end().ends_with(expect), "{args:?}: {stderr}");
    };
    check(
        &["--types", "git,s3"],
        r#"error: --types: unknown type "s3" (known: git, registry-image, registry-tag, nix-cache, time, mock)"#,
    );
    check(
        &["--types", "git", "--ca-bundle", "/nonexistent/ca.crt"],
        "error: image git: CA bundle /nonexistent/ca.crt not found: install ca-certificates or pass --ca-bundle",
    );
}

fn tar_entries(reader: impl std::io::Read) -> Vec<(String, u32)> {
    tar::Archive::new(reader)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().mode().unwrap(),
            )
        })
        .collect()
}

#[test]
fn containerfiles_rebuild_the_same_contents() {
    let out = tempfile::tempdir().unwrap();
    for image in build(out.path(), &[]) {
        let name = &image.type_name;
        let containerfile = std::fs::read_to_string(
            workspace_root().join(format!("resources/{name}/Containerfile")),
        )
        .unwrap();
        let lines: Vec<&str> = containerfile
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(lines[0], "FROM scratch", "{name}");
        assert_eq!(
            lines[1],
            format!("ADD target/images/{name}.base.tar /"),
            "{name}"
        );
        assert_eq!(
            lines[2],
            format!(
                "COPY target/x86_64-unknown-linux-gnu/release/{name}-resource /opt/resource/{name}-resource"
            ),
            "{name}"
        );
        for label in expected_labels(&image, REVISION)
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(
                containerfile.contains(&format!("{label}=")),
                "{name}: {label}"
            );
        }
        let dockerignore = std::fs::read_to_string(
            workspace_root().join(format!("resources/{name}/Containerfile.dockerignore")),
        )
        .unwrap();
        assert!(dockerignore.contains(&format!("!target/images/{name}.base.tar\n")));

        // The base tar the Containerfile ADDs plus its COPY of the binary give the image's layer.
        let base =
            tar_entries(std::fs::File::open(out.path().join(format!("{name}.base.tar"))).unwrap());
        let layout = format!("oci:{}:{}", image.layout.display(), image.tag);
        let layer_digest = skopeo_inspect(&layout, false)["Layers"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let layer_path = image
            .layout
            .join("blobs/sha256")
            .join(layer_digest.trim_start_matches("sha256:"));
        let mut layer = tar_entries(flate2::read::GzDecoder::new(
            std::fs::File::open(layer_path).unwrap(),
        ));
        let binary = format!("opt/resource/{name}-resource");
        assert!(layer.contains(&(binary.clone(), 0o755)), "{name}");
        layer.retain(|(path, _)| *path != binary);
        assert_eq!(base, layer, "{name}");
    }
}
