//! Test images built in Rust (layers, config, manifest, index) as OCI layouts, pushed to the
//! testbed registry with `skopeo copy`, and helpers that run the resource binary.

// Test support: a failed step is a failed test, with the panic naming it.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use resource_protocol::process::{command, output_checked};
use sha2::{Digest as _, Sha256};
use testbed::registry::Registry;
use testbed::resource_cli::{ResourceCli, Run};

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One image: its architecture, its layers (each a list of path/content files), its labels.
pub struct ImageSpec<'a> {
    pub arch: &'a str,
    pub layers: Vec<Vec<(&'a str, &'a str)>>,
    pub labels: Vec<(&'a str, &'a str)>,
    pub created: &'a str,
}

impl<'a> ImageSpec<'a> {
    pub fn new(arch: &'a str, layers: Vec<Vec<(&'a str, &'a str)>>) -> Self {
        Self {
            arch,
            layers,
            labels: Vec::new(),
            created: "2024-01-01T00:00:00Z",
        }
    }
}

fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&digest[7..]), bytes).unwrap();
    digest
}

/// A layer tar. Names are written raw (so `../x` and `/abs` survive); content `->T` makes a
/// symlink to `T`, `=>T` a hard link to `T`.
fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        let data: &[u8] = if let Some(target) = content.strip_prefix("->") {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_link_name(target).unwrap();
            b""
        } else if let Some(target) = content.strip_prefix("=>") {
            header.set_entry_type(tar::EntryType::Link);
            let name = &mut header.as_old_mut().linkname;
            name[..target.len()].copy_from_slice(target.as_bytes());
            b""
        } else {
            content.as_bytes()
        };
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Writes an image's blobs into `layout`; returns its manifest descriptor (with platform).
pub fn write_image(layout: &Path, spec: &ImageSpec<'_>) -> serde_json::Value {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for files in &spec.layers {
        let tar = layer_tar(files);
        diff_ids.push(sha256(&tar));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let digest = write_blob(layout, &gz);
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": gz.len()
        }));
    }
    let labels: serde_json::Map<String, serde_json::Value> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "created": spec.created,
        "architecture": spec.arch, "os": "linux",
        "config": {"Env": ["PATH=/bin", format!("ARCH={}", spec.arch)], "User": "1000",
                   "Cmd": ["sh"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_digest = write_blob(layout, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": layers,
        "annotations": {"org.example.built-by": "test"}
    }))
    .unwrap();
    let digest = write_blob(layout, &manifest);
    serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest, "size": manifest.len(),
        "platform": {"architecture": spec.arch, "os": "linux"}
    })
}

/// Builds a layout holding `specs` (one image, or an index of several) under tag `t`.
pub fn build_layout(dir: &Path, specs: &[ImageSpec<'_>]) -> PathBuf {
    let layout = dir.join(format!("layout-{}", rand_suffix()));
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let descriptors: Vec<serde_json::Value> =
        specs.iter().map(|s| write_image(&layout, s)).collect();
    let mut top = if specs.len() == 1 {
        descriptors[0].clone()
    } else {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": descriptors
        }))
        .unwrap();
        let digest = write_blob(&layout, &index);
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": digest, "size": index.len()})
    };
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "t"});
    top.as_object_mut().unwrap().remove("platform");
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [top]})).unwrap(),
    )
    .unwrap();
    layout
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

pub fn skopeo(args: &[String]) -> Vec<u8> {
    output_checked(command("skopeo", Path::new("/")).args(args))
        .unwrap()
        .stdout
}

/// Pushes `specs` to `registry` as `repo:tag`; returns the pushed top-level digest as
/// `skopeo inspect --raw` sees it.
pub fn push(
    registry: &Registry,
    dir: &Path,
    repo: &str,
    tag: &str,
    specs: &[ImageSpec<'_>],
) -> String {
    let layout = build_layout(dir, specs);
    let mut args = vec![
        "copy".to_owned(),
        "--all".to_owned(),
        "--preserve-digests".to_owned(),
    ];
    args.extend(registry.skopeo_args("dest"));
    args.push(format!("oci:{}:t", layout.display()));
    args.push(format!("docker://{}/{repo}:{tag}", registry.host()));
    skopeo(&args);
    remote_digest(registry, repo, tag)
}

/// [`push`] of one amd64 image whose single layer holds `path` with `content`.
pub fn push_file(
    registry: &Registry,
    dir: &Path,
    repo: &str,
    tag: &str,
    (path, content): (&str, &str),
) -> String {
    push(
        registry,
        dir,
        repo,
        tag,
        &[ImageSpec::new("amd64", vec![vec![(path, content)]])],
    )
}

/// [`push`] of an index of an amd64 and an arm64 image, each with a file `arch` naming its
/// architecture.
pub fn push_arch_index(registry: &Registry, dir: &Path, repo: &str, tag: &str) -> String {
    push(
        registry,
        dir,
        repo,
        tag,
        &[
            ImageSpec::new("amd64", vec![vec![("arch", "amd64")]]),
            ImageSpec::new("arm64", vec![vec![("arch", "arm64")]]),
        ],
    )
}

/// The raw manifest at `repo:reference` and its digest, via skopeo.
pub fn remote_raw(registry: &Registry, repo: &str, reference: &str) -> Vec<u8> {
    let mut args = vec!["inspect".to_owned(), "--raw".to_owned()];
    args.extend(registry.skopeo_args(""));
    let sep = if reference.contains(':') { "@" } else { ":" };
    args.push(format!(
        "docker://{}/{repo}{sep}{reference}",
        registry.host()
    ));
    skopeo(&args)
}

pub fn remote_digest(registry: &Registry, repo: &str, tag: &str) -> String {
    sha256(&remote_raw(registry, repo, tag))
}

/// The `source` for `repo` on `registry`, with its credentials and CA.
pub fn source(registry: &Registry, repo: &str) -> serde_json::Value {
    let mut source = serde_json::json!({"repository": format!("{}/{repo}", registry.host())});
    if let Some((user, pass)) = registry.credentials() {
        source["username"] = user.into();
        source["password"] = pass.into();
    }
    if let Some(ca) = registry.ca_cert_pem() {
        source["ca_certs"] = serde_json::json!([ca]);
    }
    source
}

/// Runs `registry-image-resource OP [DIR]` with `request` on stdin (fast retries).
pub fn run(op: &str, dir: Option<&Path>, request: &serde_json::Value) -> Run {
    let dir = dir.map(|d| d.to_str().unwrap());
    let args: Vec<&str> = std::iter::once(op).chain(dir).collect();
    ResourceCli::new(env!("CARGO_BIN_EXE_registry-image-resource"))
        .env("TRIBUTARY_RETRY_BASE_DELAY_MS", "5")
        .timeout(std::time::Duration::from_secs(300))
        .run(&args, request)
}

/// Runs and insists on success.
pub fn run_ok(op: &str, dir: Option<&Path>, request: &serde_json::Value) -> serde_json::Value {
    let outcome = run(op, dir, request);
    assert_eq!(outcome.code, 0, "{op} failed: {}", outcome.stderr);
    outcome.stdout
}
