//! Reading the image `out` pushes from the build's artifacts: an OCI layout directory, an
//! `oci-archive` tarball, or a `docker save` tarball (old style, or Docker 25+ which is both).
//!
//! Tarballs are extracted with the safe unpacker into a temp dir first, so a malicious
//! tarball cannot write outside it, and every blob becomes a file the client can stream.
//! Manifests found in a layout are pushed byte for byte; a docker-save manifest is converted
//! to an OCI manifest (its config and layers kept as they are).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use registry_client::digest::sha256_digest;
use sha2::{Digest as _, Sha256};

use crate::formats::{BlobStore, RawDocument};
use crate::oci::{self, Descriptor, Document, Index, Manifest};

/// An image ready to push.
#[derive(Debug)]
pub struct LocalImage {
    /// Where every blob is, by digest.
    pub store: BlobStore,
    /// What the tags will point at: an image manifest or an index.
    pub top: RawDocument,
    /// The image manifests (for a single image, the top one itself).
    pub images: Vec<(RawDocument, Manifest)>,
    /// Holds extracted tarballs until the push is done.
    _scratch: Option<tempfile::TempDir>,
}

/// Finds the one path under `src` matching `pattern` (a glob relative to `src`).
pub fn find_image(src: &Path, pattern: &str) -> anyhow::Result<PathBuf> {
    let glob = globset::GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(true)
        .build()
        .map_err(|err| resource_protocol::InvalidRequest::new(format!("params.image: {err}")))?
        .compile_matcher();
    let mut matches = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = src.join(&relative);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let child = relative.join(entry.file_name());
            if glob.is_match(&child) {
                matches.push(child);
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(child);
            }
        }
    }
    matches.sort();
    match matches.as_slice() {
        [one] => Ok(src.join(one)),
        [] => anyhow::bail!(
            "params.image: {pattern:?} matched no files in {}",
            src.display()
        ),
        many => anyhow::bail!(
            "params.image: {pattern:?} matched {} files, expected one: {}",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads the image at `path` (a layout directory or a tarball).
pub fn load(path: &Path) -> anyhow::Result<LocalImage> {
    if path.is_dir() {
        return load_layout(path, None);
    }
    let scratch = tempfile::tempdir().context("cannot create a temp dir")?;
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    resource_protocol::unpack::unpack_archive(
        file,
        scratch.path(),
        &resource_protocol::unpack::UnpackOptions {
            preserve_ownership: false,
            create_devices: false,
            whiteouts: false,
        },
    )
    .with_context(|| format!("{} is not a readable image tarball", path.display()))?;
    let root = scratch.path().to_owned();
    if root.join("index.json").is_file() {
        load_layout(&root, Some(scratch))
    } else if root.join("manifest.json").is_file() {
        load_docker_save(&root, scratch)
    } else {
        anyhow::bail!(
            "{} holds neither an OCI layout (index.json) nor a docker save manifest.json",
            path.display()
        )
    }
}

fn read_blob(store: &BlobStore, descriptor: &Descriptor) -> anyhow::Result<Vec<u8>> {
    let path = store.path(&descriptor.digest)?;
    let bytes =
        fs::read(&path).with_context(|| format!("blob {} is missing", descriptor.digest))?;
    let actual = sha256_digest(&bytes);
    anyhow::ensure!(
        actual == descriptor.digest,
        "digest mismatch: blob {} hashes to {actual}",
        descriptor.digest
    );
    Ok(bytes)
}

fn manifest_of(
    store: &BlobStore,
    descriptor: &Descriptor,
) -> anyhow::Result<(RawDocument, Manifest)> {
    let bytes = read_blob(store, descriptor)?;
    match oci::parse_document(&bytes, Some(&descriptor.media_type)).map_err(anyhow::Error::msg)? {
        Document::Manifest(manifest) => Ok((
            RawDocument {
                media_type: media_type_of(
                    &descriptor.media_type,
                    manifest.media_type.as_deref(),
                    oci::OCI_MANIFEST,
                ),
                digest: descriptor.digest.clone(),
                bytes,
            },
            manifest,
        )),
        Document::Index(_) => anyhow::bail!(
            "{}: nested image indexes are not supported",
            descriptor.digest
        ),
    }
}

fn media_type_of(descriptor: &str, field: Option<&str>, fallback: &str) -> String {
    [Some(descriptor), field]
        .into_iter()
        .flatten()
        .find(|m| !m.is_empty())
        .unwrap_or(fallback)
        .to_owned()
}

fn load_layout(root: &Path, scratch: Option<tempfile::TempDir>) -> anyhow::Result<LocalImage> {
    let store = BlobStore::new(root.join("blobs"));
    let index_bytes = fs::read(root.join("index.json")).context("cannot read index.json")?;
    let index: Index =
        serde_json::from_slice(&index_bytes).context("index.json is not an OCI index")?;
    let (top, images) = match index.manifests.as_slice() {
        [] => anyhow::bail!("index.json names no image"),
        [entry] if !oci::is_index_media_type(&entry.media_type) => {
            let (raw, manifest) = manifest_of(&store, entry)?;
            (raw.clone(), vec![(raw, manifest)])
        }
        [entry] => {
            let bytes = read_blob(&store, entry)?;
            let Ok(Document::Index(inner)) = oci::parse_document(&bytes, Some(&entry.media_type))
            else {
                anyhow::bail!("{}: not an image index", entry.digest);
            };
            let top = RawDocument {
                media_type: media_type_of(
                    &entry.media_type,
                    inner.media_type.as_deref(),
                    oci::OCI_INDEX,
                ),
                digest: entry.digest.clone(),
                bytes,
            };
            let images = inner
                .manifests
                .iter()
                .map(|m| manifest_of(&store, m))
                .collect::<anyhow::Result<_>>()?;
            (top, images)
        }
        many => {
            // Several images in index.json (e.g. an index fetched byte for byte): it is the index.
            let top = RawDocument {
                media_type: media_type_of("", index.media_type.as_deref(), oci::OCI_INDEX),
                digest: sha256_digest(&index_bytes),
                bytes: index_bytes.clone(),
            };
            let images = many
                .iter()
                .map(|m| manifest_of(&store, m))
                .collect::<anyhow::Result<_>>()?;
            (top, images)
        }
    };
    Ok(LocalImage {
        store,
        top,
        images,
        _scratch: scratch,
    })
}

/// One entry of a docker-save `manifest.json`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
}

fn load_docker_save(root: &Path, scratch: tempfile::TempDir) -> anyhow::Result<LocalImage> {
    let entries: Vec<DockerSaveEntry> = serde_json::from_slice(
        &fs::read(root.join("manifest.json")).context("cannot read manifest.json")?,
    )
    .context("manifest.json is not a docker save manifest")?;
    let [entry] = entries.as_slice() else {
        anyhow::bail!("manifest.json holds {} images, expected one", entries.len());
    };
    let store = BlobStore::new(root.join("blobs"));
    let inside = |name: &str| -> anyhow::Result<PathBuf> {
        let path = Path::new(name);
        anyhow::ensure!(
            path.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "manifest.json names {name:?}, outside the tarball"
        );
        Ok(root.join(path))
    };
    let config = fs::read(inside(&entry.config)?).context("cannot read the image config")?;
    let config_descriptor = Descriptor {
        media_type: oci::OCI_CONFIG.to_owned(),
        digest: sha256_digest(&config),
        size: config.len() as u64,
        platform: None,
        annotations: None,
    };
    store.write(&config_descriptor.digest, &config)?;
    let mut layers = Vec::new();
    for name in &entry.layers {
        let path = inside(name)?;
        let (digest, size, prefix) = hash_file(&path)?;
        let target = store.path(&digest)?;
        if !target.exists() {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&path, &target).or_else(|_| fs::copy(&path, &target).map(|_| ()))?;
        }
        layers.push(Descriptor {
            media_type: oci::layer_media_type(&prefix).to_owned(),
            digest,
            size,
            platform: None,
            annotations: None,
        });
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.to_owned()),
        config: config_descriptor,
        layers,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest)?;
    let raw = RawDocument {
        digest: sha256_digest(&bytes),
        media_type: oci::OCI_MANIFEST.to_owned(),
        bytes,
    };
    Ok(LocalImage {
        store,
        top: raw.clone(),
        images: vec![(raw, manifest)],
        _scratch: Some(scratch),
    })
}

/// sha256, size and first bytes of a file.
fn hash_file(path: &Path) -> anyhow::Result<(String, u64, Vec<u8>)> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let mut prefix = Vec::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if prefix.len() < 8 {
            prefix.extend_from_slice(&buf[..n.min(8 - prefix.len())]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((
        format!("sha256:{}", hex::encode(hasher.finalize())),
        size,
        prefix,
    ))
}
