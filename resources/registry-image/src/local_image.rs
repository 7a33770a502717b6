//! Reading the image `out` pushes from the build's artifacts: an OCI layout directory, an
//! `oci-archive` tarball, or a `docker save` tarball (old style, or Docker 25+ which is both).
//!
//! An uncompressed tarball is read in place: [`crate::tar_index`] maps each member to its
//! (offset, length) in the tarball, small documents (`index.json`, `manifest.json`, manifests,
//! configs) are read into memory from there, and every other blob is uploaded straight from
//! its range of the tarball, hashed while it streams. Nothing is extracted, so a multi-GB image
//! costs no temp disk and each blob is read once. (The exception: a compressed layer of an
//! old-style docker save, whose digest the tarball states nowhere, is hashed before the
//! manifest can name it.) A compressed tarball (gzip or zstd, sniffed) cannot be read at an
//! offset: it is extracted with the safe unpacker into a temp dir first, as before, and pushed
//! from there.
//!
//! Manifests found in a layout are pushed byte for byte; a docker-save manifest is converted
//! to an OCI manifest (its config and layers kept as they are: an uncompressed `layer.tar` is
//! pushed uncompressed, as `application/vnd.oci.image.layer.v1.tar`), the same document
//! whether the tarball was read in place or extracted. Where the tarball states a digest, the
//! bytes must have it: a blob under `blobs/<alg>/<hex>`, an old-style config named
//! `<hex>.json`, an uncompressed layer (its digest is the config's `rootfs.diff_ids` entry).
//! Documents are checked as they are read; blobs as they stream, so a mismatch fails the push
//! before any manifest or tag is written, naming the digest.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use registry_client::digest::sha256_digest;
use sha2::{Digest as _, Sha256};

use crate::formats::{BlobStore, RawDocument};
use crate::oci::{self, Descriptor, Document, ImageConfig, Index, Manifest};
use crate::tar_index::{Range, TarIndex, TarIndexError};

/// Small documents (index, manifests, configs) read into memory are at most this large.
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// An image ready to push.
#[derive(Debug)]
pub struct LocalImage {
    /// What the tags will point at: an image manifest or an index.
    pub top: RawDocument,
    /// The image manifests (for a single image, the top one itself).
    pub images: Vec<(RawDocument, Manifest)>,
    /// Where the blobs are.
    blobs: Blobs,
    /// Holds an extracted tarball until the push is done.
    _scratch: Option<tempfile::TempDir>,
}

/// Where one blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlobData {
    /// `len` bytes of the file at `path` from `offset`: a whole file, or a tarball member.
    File {
        /// The file.
        path: PathBuf,
        /// First byte.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// In memory (a docker-save config).
    Bytes(Vec<u8>),
}

/// Where a layout's or a docker-save tarball's files are.
#[derive(Debug)]
enum Files {
    /// A directory: a layout the build wrote (`confined: false`, its symlinks are the build's
    /// business), or an extracted tarball (`confined: true`, its symlinks must stay inside).
    Dir { root: PathBuf, confined: bool },
    /// The members of an uncompressed tarball.
    Tarball(TarIndex),
}

impl Files {
    /// Where file `name` (relative, `/`-separated) is; `Ok(None)` when there is none.
    fn locate(&self, name: &str) -> anyhow::Result<Option<BlobData>> {
        match self {
            Files::Dir { root, confined } => {
                let path = Path::new(name);
                anyhow::ensure!(
                    path.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "{name:?} is outside the image"
                );
                let path = root.join(path);
                let Ok(metadata) = fs::metadata(&path) else {
                    return Ok(None);
                };
                if !*confined {
                    anyhow::ensure!(metadata.is_file(), "{name:?} is not a file");
                    return Ok(Some(BlobData::File {
                        path,
                        offset: 0,
                        len: metadata.len(),
                    }));
                }
                let real = path
                    .canonicalize()
                    .with_context(|| format!("cannot resolve {}", path.display()))?;
                let real_root = root
                    .canonicalize()
                    .with_context(|| format!("cannot resolve {}", root.display()))?;
                anyhow::ensure!(
                    real.starts_with(&real_root),
                    "{name:?} links outside the image"
                );
                anyhow::ensure!(metadata.is_file(), "{name:?} is not a file");
                Ok(Some(BlobData::File {
                    path,
                    offset: 0,
                    len: metadata.len(),
                }))
            }
            Files::Tarball(index) => match index.find(name) {
                Ok(Range { offset, len }) => Ok(Some(BlobData::File {
                    path: index.path().to_owned(),
                    offset,
                    len,
                })),
                Err(TarIndexError::Missing { .. }) => Ok(None),
                Err(err) => Err(err.into()),
            },
        }
    }

    /// Where file `name` is; an error saying so when there is none.
    fn require(&self, name: &str) -> anyhow::Result<BlobData> {
        self.locate(name)?
            .ok_or_else(|| anyhow::anyhow!("{name} is missing from {}", self.describe()))
    }

    /// Reads file `name` (a document) into memory.
    fn read(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        read_data(&self.require(name)?, MAX_DOCUMENT_BYTES)
            .with_context(|| format!("cannot read {name}"))
    }

    /// The file name of blob `digest` in a layout: `blobs/<alg>/<hex>`.
    fn blob_name(digest: &str) -> anyhow::Result<String> {
        let path = BlobStore::new("blobs").path(digest)?;
        Ok(path.to_string_lossy().into_owned())
    }

    fn describe(&self) -> String {
        match self {
            Files::Dir { root, .. } => root.display().to_string(),
            Files::Tarball(index) => index.path().display().to_string(),
        }
    }
}

/// Where the blobs of an image are.
#[derive(Debug)]
enum Blobs {
    /// Under `blobs/<alg>/<hex>` of a layout (a directory or a tarball).
    Layout(Files),
    /// Listed one by one (a docker-save image).
    Listed(HashMap<String, BlobData>),
}

impl LocalImage {
    /// Where blob `digest` is; an error naming it when the image does not hold it.
    pub fn blob(&self, digest: &str) -> anyhow::Result<BlobData> {
        match &self.blobs {
            Blobs::Layout(files) => files.locate(&Files::blob_name(digest)?)?.ok_or_else(|| {
                anyhow::anyhow!("blob {digest} is missing from {}", files.describe())
            }),
            Blobs::Listed(blobs) => blobs
                .get(digest)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("blob {digest} is missing")),
        }
    }

    /// Whether the image was extracted to a temp dir (a compressed tarball) rather than read
    /// in place.
    pub fn extracted(&self) -> bool {
        self._scratch.is_some()
    }
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

/// The bytes of `data`, refusing more than `limit`.
fn read_data(data: &BlobData, limit: u64) -> anyhow::Result<Vec<u8>> {
    match data {
        BlobData::Bytes(bytes) => Ok(bytes.clone()),
        BlobData::File { path, offset, len } => {
            anyhow::ensure!(
                *len <= limit,
                "{len} bytes, more than the {limit} a document may have"
            );
            let file =
                fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut buf = vec![0u8; usize::try_from(*len)?];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, *offset)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(buf)
        }
    }
}

/// The first bytes of `data` (enough to sniff a compression).
fn prefix_of(data: &BlobData) -> anyhow::Result<Vec<u8>> {
    match data {
        BlobData::Bytes(bytes) => Ok(bytes.iter().take(8).copied().collect()),
        BlobData::File { path, offset, len } => {
            let file =
                fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut buf = vec![0u8; usize::try_from((*len).min(8))?];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, *offset)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(buf)
        }
    }
}

/// The sha256 digest of `data`.
fn hash_data(data: &BlobData) -> anyhow::Result<String> {
    match data {
        BlobData::Bytes(bytes) => Ok(sha256_digest(bytes)),
        BlobData::File { path, offset, len } => {
            let mut file =
                fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(*offset))?;
            let mut file = file.take(*len);
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut read = 0u64;
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                read += n as u64;
            }
            anyhow::ensure!(
                read == *len,
                "{} ends {} bytes early",
                path.display(),
                len - read
            );
            Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
        }
    }
}

/// Reads the image at `path` (a layout directory or a tarball).
pub fn load(path: &Path) -> anyhow::Result<LocalImage> {
    if path.is_dir() {
        let files = Files::Dir {
            root: path.to_owned(),
            confined: false,
        };
        return load_layout(files, None);
    }
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    let n = read_prefix(&mut file, &mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    drop(file);
    use resource_protocol::unpack::{Compression, sniff_compression};
    if sniff_compression(&magic[..n]) != Compression::None {
        return load_extracted(path);
    }
    let index = TarIndex::open(path)
        .with_context(|| format!("{} is not a readable image tarball", path.display()))?;
    let files = Files::Tarball(index);
    load_files(path, files, None)
}

/// Fills `buf` as far as the file goes; returns how much was read.
fn read_prefix(file: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A compressed tarball: extracted into a temp dir, then read from there.
fn load_extracted(path: &Path) -> anyhow::Result<LocalImage> {
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
    let files = Files::Dir {
        root: scratch.path().to_owned(),
        confined: true,
    };
    load_files(path, files, Some(scratch))
}

/// A tarball's files: an OCI layout if it has `index.json`, else a docker save.
fn load_files(
    path: &Path,
    files: Files,
    scratch: Option<tempfile::TempDir>,
) -> anyhow::Result<LocalImage> {
    if files.locate("index.json")?.is_some() {
        load_layout(files, scratch)
    } else if files.locate("manifest.json")?.is_some() {
        load_docker_save(files, scratch)
    } else {
        anyhow::bail!(
            "{} holds neither an OCI layout (index.json) nor a docker save manifest.json",
            path.display()
        )
    }
}

/// Reads a document blob and checks its digest.
fn read_blob(files: &Files, descriptor: &Descriptor) -> anyhow::Result<Vec<u8>> {
    let name = Files::blob_name(&descriptor.digest)?;
    let data = files
        .locate(&name)?
        .ok_or_else(|| anyhow::anyhow!("blob {} is missing", descriptor.digest))?;
    let bytes = read_data(&data, MAX_DOCUMENT_BYTES)
        .with_context(|| format!("blob {}", descriptor.digest))?;
    let actual = sha256_digest(&bytes);
    anyhow::ensure!(
        actual == descriptor.digest,
        "digest mismatch: blob {} hashes to {actual}",
        descriptor.digest
    );
    Ok(bytes)
}

fn manifest_of(files: &Files, descriptor: &Descriptor) -> anyhow::Result<(RawDocument, Manifest)> {
    let bytes = read_blob(files, descriptor)?;
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

fn load_layout(files: Files, scratch: Option<tempfile::TempDir>) -> anyhow::Result<LocalImage> {
    let index_bytes = files.read("index.json")?;
    let index: Index =
        serde_json::from_slice(&index_bytes).context("index.json is not an OCI index")?;
    let (top, images) = match index.manifests.as_slice() {
        [] => anyhow::bail!("index.json names no image"),
        [entry] if !oci::is_index_media_type(&entry.media_type) => {
            let (raw, manifest) = manifest_of(&files, entry)?;
            (raw.clone(), vec![(raw, manifest)])
        }
        [entry] => {
            let bytes = read_blob(&files, entry)?;
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
                .map(|m| manifest_of(&files, m))
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
                .map(|m| manifest_of(&files, m))
                .collect::<anyhow::Result<_>>()?;
            (top, images)
        }
    };
    Ok(LocalImage {
        top,
        images,
        blobs: Blobs::Layout(files),
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

/// The digest a docker-save file name states: `blobs/sha256/<hex>` (Docker 25+), or
/// `<hex>.json` for an old-style config (named by its digest, the image id).
fn stated_digest(name: &str, config: bool) -> Option<String> {
    let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return is_hex(hex).then(|| format!("sha256:{}", hex.to_ascii_lowercase()));
    }
    let hex = name.strip_suffix(".json").filter(|_| config)?;
    is_hex(hex).then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn load_docker_save(
    files: Files,
    scratch: Option<tempfile::TempDir>,
) -> anyhow::Result<LocalImage> {
    let entries: Vec<DockerSaveEntry> = serde_json::from_slice(&files.read("manifest.json")?)
        .context("manifest.json is not a docker save manifest")?;
    let [entry] = entries.as_slice() else {
        anyhow::bail!("manifest.json holds {} images, expected one", entries.len());
    };
    let inside = |name: &str| -> anyhow::Result<BlobData> {
        anyhow::ensure!(
            Path::new(name)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "manifest.json names {name:?}, outside the tarball"
        );
        files.require(name)
    };
    let config = read_data(&inside(&entry.config)?, MAX_DOCUMENT_BYTES)
        .context("cannot read the image config")?;
    let config_digest = sha256_digest(&config);
    if let Some(stated) = stated_digest(&entry.config, true) {
        anyhow::ensure!(
            stated == config_digest,
            "digest mismatch: config {} hashes to {config_digest}",
            entry.config
        );
    }
    let diff_ids = serde_json::from_slice::<ImageConfig>(&config)
        .ok()
        .and_then(|c| c.rootfs)
        .map(|r| r.diff_ids)
        .filter(|ids| ids.len() == entry.layers.len())
        .unwrap_or_default();
    let config_descriptor = Descriptor {
        media_type: oci::OCI_CONFIG.to_owned(),
        digest: config_digest.clone(),
        size: config.len() as u64,
        platform: None,
        annotations: None,
    };
    let mut blobs = HashMap::new();
    blobs.insert(config_digest, BlobData::Bytes(config));
    // A layer's digest is known without reading it when the tarball states it: an uncompressed
    // layer's is its diff_id, a Docker 25+ layer's is in its name. It is then verified while
    // the layer streams to the registry, so the layer is read once. Otherwise (a compressed
    // layer in an old-style save) it is hashed first; old docker-save tarballs link repeated
    // layers to one file, hashed once.
    let mut hashed: HashMap<BlobData, String> = HashMap::new();
    let mut layers = Vec::new();
    for (i, name) in entry.layers.iter().enumerate() {
        let data = inside(name)?;
        let prefix = prefix_of(&data).with_context(|| format!("cannot read layer {name}"))?;
        let media_type = oci::layer_media_type(&prefix);
        let stated = stated_digest(name, false);
        let diff_id = diff_ids
            .get(i)
            .filter(|_| media_type == oci::OCI_LAYER_TAR)
            .filter(|d| registry_client::digest::validate_digest(d).is_ok());
        let digest = match (stated, diff_id) {
            (Some(stated), Some(diff_id)) if stated != *diff_id => anyhow::bail!(
                "digest mismatch: layer {name} is named {stated}, the image config says {diff_id}"
            ),
            (Some(known), _) => known,
            (None, Some(known)) => known.clone(),
            (None, None) => match hashed.get(&data) {
                Some(known) => known.clone(),
                None => {
                    let known =
                        hash_data(&data).with_context(|| format!("cannot read layer {name}"))?;
                    hashed.insert(data.clone(), known.clone());
                    known
                }
            },
        };
        let size = match &data {
            BlobData::File { len, .. } => *len,
            BlobData::Bytes(bytes) => bytes.len() as u64,
        };
        blobs.insert(digest.clone(), data);
        layers.push(Descriptor {
            media_type: media_type.to_owned(),
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
        top: raw.clone(),
        images: vec![(raw, manifest)],
        blobs: Blobs::Listed(blobs),
        _scratch: scratch,
    })
}
