//! OCI images built with umoci, pushed with skopeo to a real registry and read back.

use testbed::oci::{ImageSpec, LayerSpec, OciLayout, inspect_digest, inspect_raw, push};
use testbed::registry::{Registry, RegistryAuth};
use testbed::tools::{require, run, temp_dir};

#[test]
fn single_image_has_busybox_and_layers() {
    let registry = Registry::start(RegistryAuth::basic("u", "p"));
    let layout = OciLayout::new();
    let layers = [
        LayerSpec {
            files: &[
                ("etc/motd", "hi\n"),
                ("usr/bin/hello", "#!/bin/sh\necho hello\n"),
            ],
            ..LayerSpec::default()
        },
        LayerSpec {
            deletes: &["etc/motd"],
            symlinks: &[("hello", "usr/bin/hello")],
            ..LayerSpec::default()
        },
    ];
    layout.build(
        "t",
        &ImageSpec {
            layers: &layers,
            labels: &[("org.example", "yes")],
            ..ImageSpec::default()
        },
    );
    let digest = push(&layout.reference("t"), &registry, "test/single:1");
    assert_eq!(digest, layout.digest("t"));
    assert_eq!(inspect_digest(&registry, "test/single:1"), digest);
    let manifest: serde_json::Value =
        serde_json::from_slice(&inspect_raw(&registry, "test/single:1")).unwrap();
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        3,
        "{manifest}"
    );

    // Pull it back and unpack it with umoci: the files and the whiteout are there.
    let skopeo = require("skopeo", "skopeo");
    let umoci = require("umoci", "umoci");
    let dir = temp_dir("pull");
    let pulled = dir.path().join("pulled");
    let mut args = vec!["copy".to_owned(), "--quiet".to_owned()];
    args.extend(registry.skopeo_args("src"));
    args.push(format!("docker://{}/test/single:1", registry.host()));
    args.push(format!("oci:{}:p", pulled.display()));
    run(&skopeo, &args, dir.path());
    let bundle = dir.path().join("bundle");
    run(
        &umoci,
        [
            "unpack",
            "--image",
            &format!("{}:p", pulled.display()),
            bundle.to_str().unwrap(),
        ],
        dir.path(),
    );
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert!(!rootfs.join("etc/motd").exists());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("usr/bin/hello")).unwrap(),
        "#!/bin/sh\necho hello\n"
    );
    let config = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(config.contains("/bin/sh"), "{config}");
}

#[test]
fn multi_arch_index_pushes_every_platform() {
    let registry = Registry::start(RegistryAuth::None);
    let layout = OciLayout::new();
    let layer = [LayerSpec {
        files: &[("etc/arch", "any\n")],
        ..LayerSpec::default()
    }];
    layout.build_multi_arch(
        "multi",
        &[
            ImageSpec {
                layers: &layer,
                ..ImageSpec::default()
            },
            ImageSpec {
                busybox: false,
                layers: &layer,
                architecture: "arm64",
                ..ImageSpec::default()
            },
        ],
    );
    let digest = push(&layout.reference("multi"), &registry, "test/multi:1");
    assert_eq!(digest, layout.digest("multi"));
    let index: serde_json::Value =
        serde_json::from_slice(&inspect_raw(&registry, "test/multi:1")).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<&str> = manifests
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    for manifest in manifests {
        let child = format!("test/multi@{}", manifest["digest"].as_str().unwrap());
        assert_eq!(inspect_digest(&registry, &child), manifest["digest"]);
    }
}

#[test]
fn thousands_of_tags_written_into_storage_are_served() {
    let registry = Registry::start(RegistryAuth::None);
    let digest = testbed::oci::push_image(
        &registry,
        "test/many:base",
        &ImageSpec {
            busybox: false,
            ..ImageSpec::default()
        },
    );
    let tags: Vec<String> = (0..10_000)
        .map(|i| format!("1.{}.{}", i / 100, i % 100))
        .collect();
    let started = std::time::Instant::now();
    registry.tag_in_storage("test/many", &digest, &tags);
    let took = started.elapsed();
    assert!(took.as_secs() < 10, "tagging took {took:?}");

    let skopeo = require("skopeo", "skopeo");
    let dir = temp_dir("list-tags");
    let mut args = vec!["list-tags".to_owned()];
    args.extend(registry.skopeo_args(""));
    args.push(format!("docker://{}/test/many", registry.host()));
    let listed: serde_json::Value =
        serde_json::from_slice(&run(&skopeo, &args, dir.path())).unwrap();
    assert_eq!(listed["Tags"].as_array().unwrap().len(), 10_001);
    assert_eq!(inspect_digest(&registry, "test/many:1.99.99"), digest);
}

#[test]
fn images_can_be_pushed_as_docker_v2_schema_2() {
    use testbed::oci::{ManifestFormat, push_as};
    let registry = Registry::start(RegistryAuth::None);
    let layout = OciLayout::new();
    layout.build(
        "t",
        &ImageSpec {
            busybox: false,
            ..ImageSpec::default()
        },
    );
    let digest = push_as(
        &layout.reference("t"),
        &registry,
        "test/docker:1",
        ManifestFormat::DockerV2S2,
    );
    assert_ne!(digest, layout.digest("t"));
    assert_eq!(inspect_digest(&registry, "test/docker:1"), digest);
    let manifest: serde_json::Value =
        serde_json::from_slice(&inspect_raw(&registry, "test/docker:1")).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

/// What distribution 2.8.2 does that clients must cope with (see TESTBED.md); if an upgrade
/// changes any of this, the tests that rely on it need a look.
#[test]
fn registry_quirks_are_as_documented() {
    use crate::support::http_exchange;
    let registry = Registry::start(RegistryAuth::None);
    let spec = ImageSpec {
        busybox: false,
        ..ImageSpec::default()
    };
    let digest = testbed::oci::push_image(&registry, "test/quirks:a", &spec);
    registry.tag_in_storage("test/quirks", &digest, &["b".to_owned(), "c".to_owned()]);
    let base = registry.base_url();

    // `n` is ignored and no `Link` header is sent.
    let (status, head, body) = http_exchange(
        "GET",
        &format!("{base}/v2/test/quirks/tags/list?n=1"),
        &[],
        "",
    );
    assert_eq!(status, 200);
    assert!(!head.to_ascii_lowercase().contains("\r\nlink:"), "{head}");
    let tags: serde_json::Value = serde_json::from_str(&body).unwrap();
    // All of them, in storage (directory listing) order: not sorted, not push order.
    let mut tags: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["a", "b", "c"]);

    // An OCI manifest without an OCI Accept header: 404.
    let manifest = format!("{base}/v2/test/quirks/manifests/a");
    let (status, _, body) = http_exchange("GET", &manifest, &[], "");
    assert_eq!(status, 404, "{body}");
    // With it: the manifest and its digest.
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
    let (status, head, _) = http_exchange("HEAD", &manifest, &[accept], "");
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("Docker-Content-Digest: {digest}")),
        "{head}"
    );
}
