//! OCI test images without Docker: built with `umoci` in an OCI layout (busybox-static as
//! content), pushed and inspected with `skopeo`.
//!
//! Layers are made with `umoci unpack` + `umoci repack` (not `umoci insert`, whose 0.4.7 can
//! cut the final tar block short). Image digests differ between runs (umoci records times);
//! compare with what [`push`] or [`inspect_digest`] report, never with constants.
//!
//! ```no_run
//! use testbed::oci::{ImageSpec, LayerSpec, OciLayout, push};
//! use testbed::registry::{Registry, RegistryAuth};
//! let registry = Registry::start(RegistryAuth::None);
//! let layout = OciLayout::new();
//! layout.build("t", &ImageSpec {
//!     layers: &[LayerSpec { files: &[("etc/motd", "hi\n")], ..LayerSpec::default() }],
//!     ..ImageSpec::default()
//! });
//! let digest = push(&layout.reference("t"), &registry, "library/test:1");
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::registry::Registry;
use crate::tools::{require, run, temp_dir};

/// The OCI image index media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The annotation an OCI layout uses to name a tag.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One layer: files written and paths deleted (deletions become whiteouts) on top of the
/// layers below.
#[derive(Debug, Clone, Default)]
pub struct LayerSpec<'a> {
    /// `(path in the image, content)`; content starting with `#!` is made executable.
    pub files: &'a [(&'a str, &'a str)],
    /// Paths to delete (files or directories).
    pub deletes: &'a [&'a str],
    /// Symlinks `(path, target)`.
    pub symlinks: &'a [(&'a str, &'a str)],
}

/// What an image holds.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    /// Start with a layer holding `/bin/busybox` and a symlink per applet (`/bin/sh`, `ls`, …).
    pub busybox: bool,
    /// Further layers, bottom to top.
    pub layers: &'a [LayerSpec<'a>],
    /// The config's `architecture` (`amd64`, `arm64`, …).
    pub architecture: &'a str,
    /// The config's `os`.
    pub os: &'a str,
    /// `KEY=value` entries of the config's `Env`.
    pub env: &'a [&'a str],
    /// The config's `Entrypoint`.
    pub entrypoint: &'a [&'a str],
    /// The config's `Cmd`.
    pub cmd: &'a [&'a str],
    /// The config's `Labels`.
    pub labels: &'a [(&'a str, &'a str)],
}

impl Default for ImageSpec<'_> {
    fn default() -> Self {
        ImageSpec {
            busybox: true,
            layers: &[],
            architecture: "amd64",
            os: "linux",
            env: &["PATH=/bin"],
            entrypoint: &[],
            cmd: &["/bin/sh"],
            labels: &[],
        }
    }
}

/// An OCI image layout directory (`oci:` transport) in a temp dir; deleted when dropped.
pub struct OciLayout {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Default for OciLayout {
    fn default() -> Self {
        Self::new()
    }
}

impl OciLayout {
    /// An empty layout.
    pub fn new() -> OciLayout {
        let dir = temp_dir("oci-layout");
        let path = dir.path().join("layout");
        let umoci = require("umoci", "umoci");
        run(
            &umoci,
            ["init", "--layout", path.to_str().expect("utf-8 path")],
            dir.path(),
        );
        OciLayout { path, _dir: dir }
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `oci:/path/to/layout:TAG`, for skopeo.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.path.display())
    }

    /// Builds the image `spec` and tags it `tag` in this layout.
    pub fn build(&self, tag: &str, spec: &ImageSpec<'_>) {
        let umoci = require("umoci", "umoci");
        let image = format!("{}:{tag}", self.path.display());
        let work = temp_dir("oci-bundle");
        let bundle = work.path().join("bundle");
        let bundle_arg = bundle.to_str().expect("utf-8 path");
        run(&umoci, ["new", "--image", &image], work.path());
        run(
            &umoci,
            ["unpack", "--image", &image, bundle_arg],
            work.path(),
        );
        let rootfs = bundle.join("rootfs");
        // `None` is the busybox base layer.
        let layers = spec
            .busybox
            .then_some(None)
            .into_iter()
            .chain(spec.layers.iter().map(Some));
        for layer in layers {
            match layer {
                None => write_busybox(&rootfs),
                Some(layer) => apply_layer(&rootfs, layer),
            }
            run(
                &umoci,
                [
                    "repack",
                    "--refresh-bundle",
                    "--no-history",
                    "--image",
                    &image,
                    bundle_arg,
                ],
                work.path(),
            );
        }
        let mut config = vec![
            "config".to_owned(),
            "--no-history".to_owned(),
            "--image".to_owned(),
            image.clone(),
            format!("--architecture={}", spec.architecture),
            format!("--os={}", spec.os),
        ];
        config.extend(spec.env.iter().map(|env| format!("--config.env={env}")));
        config.extend(
            spec.entrypoint
                .iter()
                .map(|arg| format!("--config.entrypoint={arg}")),
        );
        config.extend(spec.cmd.iter().map(|arg| format!("--config.cmd={arg}")));
        config.extend(
            spec.labels
                .iter()
                .map(|(key, value)| format!("--config.label={key}={value}")),
        );
        run(&umoci, &config, work.path());
        run(
            &umoci,
            ["gc", "--layout", self.path.to_str().expect("utf-8 path")],
            work.path(),
        );
    }

    /// Builds one image per spec (tagged `TAG-ARCH`) and an image index over them tagged `tag`
    /// (platforms from each spec's `os`/`architecture`). Push it with [`push`], which copies
    /// every image of an index.
    pub fn build_multi_arch(&self, tag: &str, specs: &[ImageSpec<'_>]) {
        let mut manifests = Vec::new();
        for spec in specs {
            let arch_tag = format!("{tag}-{}", spec.architecture);
            self.build(&arch_tag, spec);
            let mut descriptor = self.descriptor(&arch_tag);
            if let Some(object) = descriptor.as_object_mut() {
                object.remove("annotations");
                object.insert(
                    "platform".into(),
                    serde_json::json!({"architecture": spec.architecture, "os": spec.os}),
                );
            }
            manifests.push(descriptor);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).expect("serialize image index");
        let digest = self.write_blob(&bytes);
        self.set_tag(
            tag,
            serde_json::json!({
                "mediaType": INDEX_MEDIA_TYPE,
                "digest": digest,
                "size": bytes.len(),
                "annotations": {REF_NAME: tag},
            }),
        );
    }

    /// The digest `tag` points at in the layout (`sha256:…`).
    pub fn digest(&self, tag: &str) -> String {
        self.descriptor(tag)["digest"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The descriptor `index.json` holds for `tag`.
    pub fn descriptor(&self, tag: &str) -> serde_json::Value {
        let index = self.read_index();
        index["manifests"]
            .as_array()
            .and_then(|manifests| {
                manifests
                    .iter()
                    .find(|m| m["annotations"][REF_NAME].as_str() == Some(tag))
            })
            .cloned()
            .unwrap_or_else(|| panic!("tag {tag} not in {}", self.path.display()))
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> String {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        let dir = self.path.join("blobs/sha256");
        std::fs::create_dir_all(&dir).expect("create blob dir");
        std::fs::write(dir.join(&hex), bytes).expect("write blob");
        format!("sha256:{hex}")
    }

    fn read_index(&self) -> serde_json::Value {
        let text = std::fs::read(self.path.join("index.json")).expect("read index.json");
        serde_json::from_slice(&text).expect("parse index.json")
    }

    /// Points `tag` at `descriptor` in `index.json`, replacing an existing entry.
    fn set_tag(&self, tag: &str, descriptor: serde_json::Value) {
        let mut index = self.read_index();
        let manifests = index["manifests"]
            .as_array_mut()
            .expect("index.json manifests");
        manifests.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag));
        manifests.push(descriptor);
        std::fs::write(
            self.path.join("index.json"),
            serde_json::to_vec(&index).expect("serialize index.json"),
        )
        .expect("write index.json");
    }
}

/// Copies `source` (e.g. [`OciLayout::reference`], with every image if it is an index) to
/// `repo_tag` (`repo:tag`) on `registry` with `skopeo copy --all`, and returns the pushed
/// manifest digest.
pub fn push(source: &str, registry: &Registry, repo_tag: &str) -> String {
    push_as(source, registry, repo_tag, ManifestFormat::Keep)
}

/// The manifest format [`push_as`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// Whatever the source has (OCI for layouts built here).
    Keep,
    /// Docker image manifest v2 schema 2 (`application/vnd.docker.distribution.manifest.v2+json`),
    /// converted by skopeo; single images only.
    DockerV2S2,
}

/// [`push`], converting the manifest to `format`.
pub fn push_as(
    source: &str,
    registry: &Registry,
    repo_tag: &str,
    format: ManifestFormat,
) -> String {
    let skopeo = require("skopeo", "skopeo");
    let dir = temp_dir("skopeo-push");
    let digest_file = dir.path().join("digest");
    let mut args = vec![
        "copy".to_owned(),
        "--quiet".to_owned(),
        "--all".to_owned(),
        "--retry-times=0".to_owned(),
        format!("--digestfile={}", digest_file.display()),
    ];
    if format == ManifestFormat::DockerV2S2 {
        args.push("--format=v2s2".to_owned());
    }
    args.extend(registry.skopeo_args("dest"));
    args.push(source.to_owned());
    args.push(format!("docker://{}/{repo_tag}", registry.host()));
    let mut command = resource_protocol::process::command(&skopeo, dir.path());
    command.args(&args);
    if let Err(e) = resource_protocol::process::output_checked(&mut command) {
        panic!("{e}\nregistry log:\n{}", registry.log_tail());
    }
    std::fs::read_to_string(&digest_file)
        .expect("read skopeo digest file")
        .trim()
        .to_owned()
}

/// Builds `spec` in a throw-away layout and pushes it to `repo_tag` on `registry`; returns the
/// manifest digest.
pub fn push_image(registry: &Registry, repo_tag: &str, spec: &ImageSpec<'_>) -> String {
    let layout = OciLayout::new();
    layout.build("image", spec);
    push(&layout.reference("image"), registry, repo_tag)
}

/// The raw manifest (or index) `repo_ref` (`repo:tag` or `repo@digest`) has on `registry`.
pub fn inspect_raw(registry: &Registry, repo_ref: &str) -> Vec<u8> {
    let skopeo = require("skopeo", "skopeo");
    let dir = temp_dir("skopeo-inspect");
    let mut args = vec![
        "inspect".to_owned(),
        "--raw".to_owned(),
        "--retry-times=0".to_owned(),
    ];
    args.extend(registry.skopeo_args(""));
    args.push(format!("docker://{}/{repo_ref}", registry.host()));
    run(&skopeo, &args, dir.path())
}

/// The digest of the manifest (or index) `repo_ref` has on `registry`: the sha256 of what
/// `skopeo inspect --raw` returns.
pub fn inspect_digest(registry: &Registry, repo_ref: &str) -> String {
    let raw = inspect_raw(registry, repo_ref);
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(raw)))
}

/// Writes `/bin/busybox` and a symlink per applet into `rootfs`.
fn write_busybox(rootfs: &Path) {
    let busybox = require("busybox", "busybox-static");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).expect("create /bin");
    std::fs::copy(&busybox, bin.join("busybox")).expect("copy busybox");
    let applets = run(&busybox, ["--list"], rootfs);
    for applet in String::from_utf8_lossy(&applets).lines() {
        let link = bin.join(applet.trim());
        if applet.trim().is_empty() || link.exists() {
            continue;
        }
        std::os::unix::fs::symlink("busybox", &link).expect("link busybox applet");
    }
}

/// Applies one layer's changes to `rootfs`.
fn apply_layer(rootfs: &Path, layer: &LayerSpec<'_>) {
    let inside = |path: &str| rootfs.join(path.trim_start_matches('/'));
    for path in layer.deletes {
        let target = inside(path);
        let removed = if target.is_dir() {
            std::fs::remove_dir_all(&target)
        } else {
            std::fs::remove_file(&target)
        };
        removed.unwrap_or_else(|e| panic!("delete {path} from image: {e}"));
    }
    for (path, content) in layer.files {
        let target = inside(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&target, content).expect("write image file");
        let mode = if content.starts_with("#!") {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            .expect("chmod image file");
    }
    for (path, link_target) in layer.symlinks {
        let link = inside(path);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::os::unix::fs::symlink(link_target, &link).expect("create image symlink");
    }
}
