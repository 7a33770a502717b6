//! OCI image layouts on disk (what `images build` writes for our base types) unpacked into the
//! rootfs cache: `index.json` → manifest → config → layers applied in order with OCI whiteouts
//! (through `resource_protocol::unpack`), plus a `metadata.json` (env, user) in the format
//! registry-image's `in` writes, so the result looks exactly like a fetched custom type.
//!
//! The cache is keyed by the manifest digest, so a layout is unpacked once and reused by later
//! runs. Every blob is verified against its digest; a layout that is there but broken is an
//! error naming the path, never a silent fallback.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::rootfs::RootfsCache;

/// A layout that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct LayoutError {
    /// The file or directory at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

fn fail(path: &Path, reason: impl Into<String>) -> LayoutError {
    LayoutError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// What [`unpack_layout`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackedImage {
    /// The cached image directory (`rootfs/`, `metadata.json`).
    pub dir: PathBuf,
    /// The manifest digest (the cache key).
    pub digest: String,
    /// Unpacked now (`false`: it was in the cache already).
    pub unpacked: bool,
}

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The path of a blob in `layout`; the digest must be `sha256:<64 hex>` (no path tricks).
fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, LayoutError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| fail(layout, format!("unsupported digest {digest:?}")))?;
    Ok(layout.join("blobs").join("sha256").join(hex))
}

/// Reads a small blob (manifest, config, index) and checks its digest.
fn read_blob(layout: &Path, digest: &str) -> Result<Vec<u8>, LayoutError> {
    let path = blob_path(layout, digest)?;
    let bytes = std::fs::read(&path).map_err(|e| fail(&path, e.to_string()))?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if actual != digest {
        return Err(fail(&path, format!("content has digest {actual}")));
    }
    Ok(bytes)
}

fn parse_json(path: &Path, bytes: &[u8]) -> Result<Json, LayoutError> {
    serde_json::from_slice(bytes).map_err(|e| fail(path, format!("not JSON: {e}")))
}

fn str_field<'a>(value: &'a Json, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Json::as_str)
}

/// Picks the image manifest of `index`: the only one, else the one for linux/amd64 (the
/// architecture this runs on); nested indexes are followed.
fn pick_manifest(layout: &Path, index: &Json, depth: usize) -> Result<String, LayoutError> {
    let index_path = layout.join("index.json");
    let manifests = index
        .get("manifests")
        .and_then(Json::as_array)
        .ok_or_else(|| fail(&index_path, "no manifests"))?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let fits = |m: &&Json| {
        m.get("platform").is_none_or(|p| {
            str_field(p, "os").is_none_or(|os| os == "linux")
                && str_field(p, "architecture").is_none_or(|a| a == arch)
        })
    };
    let chosen = manifests
        .iter()
        .find(fits)
        .ok_or_else(|| fail(&index_path, format!("no manifest for linux/{arch}")))?;
    let digest = str_field(chosen, "digest")
        .ok_or_else(|| fail(&index_path, "a manifest has no digest"))?
        .to_owned();
    let media_type = str_field(chosen, "mediaType").unwrap_or(MANIFEST_TYPES[0]);
    if INDEX_TYPES.contains(&media_type) {
        if depth > 4 {
            return Err(fail(&index_path, "indexes nested too deep"));
        }
        let bytes = read_blob(layout, &digest)?;
        let nested = parse_json(&blob_path(layout, &digest)?, &bytes)?;
        return pick_manifest(layout, &nested, depth + 1);
    }
    if !MANIFEST_TYPES.contains(&media_type) {
        return Err(fail(
            &index_path,
            format!("unsupported manifest type {media_type}"),
        ));
    }
    Ok(digest)
}

/// The manifest digest of the image in `layout` (a directory with `oci-layout` and
/// `index.json`).
pub fn manifest_digest(layout: &Path) -> Result<String, LayoutError> {
    let marker = layout.join("oci-layout");
    let marker_json = parse_json(
        &marker,
        &std::fs::read(&marker).map_err(|e| fail(&marker, e.to_string()))?,
    )?;
    if str_field(&marker_json, "imageLayoutVersion").is_none() {
        return Err(fail(&marker, "no imageLayoutVersion"));
    }
    let index_path = layout.join("index.json");
    let index = parse_json(
        &index_path,
        &std::fs::read(&index_path).map_err(|e| fail(&index_path, e.to_string()))?,
    )?;
    pick_manifest(layout, &index, 0)
}

/// A reader hashing what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the image in `layout` into `cache` (a no-op when its manifest digest is cached),
/// working in `scratch` (on the cache's file system, so the result is renamed into place).
pub fn unpack_layout(
    layout: &Path,
    cache: &RootfsCache,
    scratch: &Path,
) -> Result<UnpackedImage, LayoutError> {
    let digest = manifest_digest(layout)?;
    if let Some(dir) = cache.get(&digest) {
        return Ok(UnpackedImage {
            dir,
            digest,
            unpacked: false,
        });
    }
    let manifest_path = blob_path(layout, &digest)?;
    let manifest = parse_json(&manifest_path, &read_blob(layout, &digest)?)?;
    let config_digest = manifest
        .get("config")
        .and_then(|c| str_field(c, "digest"))
        .ok_or_else(|| fail(&manifest_path, "no config"))?;
    let config_path = blob_path(layout, config_digest)?;
    let config = parse_json(&config_path, &read_blob(layout, config_digest)?)?;
    let layers = manifest
        .get("layers")
        .and_then(Json::as_array)
        .ok_or_else(|| fail(&manifest_path, "no layers"))?;

    let image = scratch.join("image");
    let rootfs = image.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| fail(&rootfs, e.to_string()))?;
    let options = resource_protocol::unpack::UnpackOptions::for_layers();
    for layer in layers {
        let layer_digest = str_field(layer, "digest")
            .ok_or_else(|| fail(&manifest_path, "a layer has no digest"))?;
        let path = blob_path(layout, layer_digest)?;
        let file = std::fs::File::open(&path).map_err(|e| fail(&path, e.to_string()))?;
        let mut reader = Hashing {
            inner: io::BufReader::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
        };
        resource_protocol::unpack::unpack_archive(&mut reader, &rootfs, &options)
            .map_err(|e| fail(&path, e.to_string()))?;
        // The tar end may come before the blob's: hash the rest too.
        io::copy(&mut reader, &mut io::sink()).map_err(|e| fail(&path, e.to_string()))?;
        let actual = format!("sha256:{}", hex::encode(reader.hasher.finalize()));
        if actual != layer_digest {
            return Err(fail(&path, format!("content has digest {actual}")));
        }
    }
    let runtime = config.get("config").cloned().unwrap_or(Json::Null);
    let metadata = serde_json::json!({
        "env": runtime.get("Env").cloned().unwrap_or_else(|| serde_json::json!([])),
        "user": str_field(&runtime, "User").unwrap_or(""),
        "cmd": runtime.get("Cmd").cloned().unwrap_or_else(|| serde_json::json!([])),
        "entrypoint": runtime.get("Entrypoint").cloned().unwrap_or_else(|| serde_json::json!([])),
    });
    let metadata_path = image.join("metadata.json");
    std::fs::write(&metadata_path, metadata.to_string())
        .map_err(|e| fail(&metadata_path, e.to_string()))?;
    let dir = cache
        .insert(&digest, &image)
        .map_err(|e| fail(layout, format!("caching the image: {e}")))?;
    Ok(UnpackedImage {
        dir,
        digest,
        unpacked: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a one-layer layout with `files` (path, content) and returns the layout dir.
    fn layout_with(dir: &Path, layers: &[&[(&str, &str)]]) -> PathBuf {
        let layout = dir.join("layout");
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let hex = hex::encode(Sha256::digest(bytes));
            std::fs::write(blobs.join(&hex), bytes).unwrap();
            (format!("sha256:{hex}"), bytes.len())
        };
        let mut descriptors = Vec::new();
        for files in layers {
            let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            ));
            for (path, content) in *files {
                let mut header = tar::Header::new_ustar();
                header.set_size(content.len() as u64);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut header, path, content.as_bytes())
                    .unwrap();
            }
            let bytes = tar.into_inner().unwrap().finish().unwrap();
            let (digest, size) = put(&bytes);
            descriptors.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest, "size": size,
            }));
        }
        let config =
            serde_json::json!({"config": {"Env": ["PATH=/opt/resource", "A=b"], "User": "root"}});
        let (config_digest, config_size) = put(config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": descriptors,
        });
        let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
        }]});
        std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        layout
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts_and_the_cache_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout_with(
            dir.path(),
            &[
                &[("etc/a", "one"), ("etc/gone", "x"), ("keep", "k")],
                &[("etc/a", "two"), ("etc/.wh.gone", "")],
            ],
        );
        let cache = RootfsCache::new(&dir.path().join("cache"));
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        let first = unpack_layout(&layout, &cache, scratch.path()).unwrap();
        assert!(first.unpacked);
        let rootfs = first.dir.join("rootfs");
        assert_eq!(
            std::fs::read_to_string(rootfs.join("etc/a")).unwrap(),
            "two"
        );
        assert!(!rootfs.join("etc/gone").exists());
        assert!(rootfs.join("keep").exists());
        let meta = super::super::rootfs::ImageMetadata::read(&first.dir);
        assert_eq!(meta.user.as_deref(), Some("root"));
        assert!(meta.env.contains(&("A".into(), "b".into())), "{meta:?}");
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        let second = unpack_layout(&layout, &cache, scratch.path()).unwrap();
        assert!(!second.unpacked);
        assert_eq!(second.dir, first.dir);
    }

    #[test]
    fn broken_layouts_are_errors_naming_the_path() {
        type Breaker = fn(&Path);
        let cases: &[(&str, Breaker, &str)] = &[
            (
                "no index",
                |l| std::fs::remove_file(l.join("index.json")).unwrap(),
                "index.json",
            ),
            (
                "bad index",
                |l| std::fs::write(l.join("index.json"), "{").unwrap(),
                "index.json: not JSON",
            ),
            (
                "no marker",
                |l| std::fs::remove_file(l.join("oci-layout")).unwrap(),
                "oci-layout",
            ),
            (
                "corrupt blob",
                |l| {
                    for e in std::fs::read_dir(l.join("blobs/sha256")).unwrap() {
                        let p = e.unwrap().path();
                        let mut bytes = std::fs::read(&p).unwrap();
                        if bytes.starts_with(&[0x1f, 0x8b]) {
                            let n = bytes.len();
                            bytes[n - 9] ^= 0xff;
                            std::fs::write(&p, bytes).unwrap();
                        }
                    }
                },
                "blobs/sha256/",
            ),
            (
                "missing blobs",
                |l| std::fs::remove_dir_all(l.join("blobs")).unwrap(),
                "blobs/sha256/",
            ),
        ];
        for (name, breaker, expect) in cases {
            let dir = tempfile::tempdir().unwrap();
            let layout = layout_with(dir.path(), &[&[("a", "1")]]);
            breaker(&layout);
            let cache = RootfsCache::new(&dir.path().join("cache"));
            let scratch = tempfile::tempdir_in(dir.path()).unwrap();
            let err = unpack_layout(&layout, &cache, scratch.path())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&layout.display().to_string()) && err.contains(expect),
                "{name}: {err}"
            );
        }
    }
}
