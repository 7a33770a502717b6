//! `in`: fetch an image by digest into DEST as a rootfs, a docker-save tarball or an OCI
//! layout (or just its `tag`, `digest` and `repository` files with `skip_download`).
//!
//! Manifests are fetched by digest, never by tag, and every blob is verified while it streams
//! (`registry-client` guarantees it). Layers download concurrently; for a rootfs each layer is
//! applied, in order, as soon as it and all below it have arrived, through the safe unpacker
//! of `resource-protocol`. Progress goes to stderr one line at a time.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use registry_client::{RegistryClient, RegistryError};
use resource_protocol::unpack::{UnpackOptions, unpack_archive};
use resource_protocol::{InRequest, InvalidRequest, MetadataField, Response};

use crate::config::{GetParams, Platform, Source};
use crate::formats::{self, BlobStore, RawDocument};
use crate::oci::{self, Descriptor, Document, ImageConfig, Manifest, WantedPlatform};
use crate::progress::{Progress, download_with_progress, megabytes};
use crate::registry;

/// Layers downloaded at once.
pub const LAYER_CONCURRENCY: usize = 6;
/// Largest image config accepted.
const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// The output `params.format` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `rootfs/`, `metadata.json`, `labels.json`.
    Rootfs,
    /// `image.tar` (docker-save), `labels.json`.
    Tarball,
    /// `oci/` image layout.
    Layout,
}

impl Format {
    fn parse(format: Option<&str>) -> Result<Self, InvalidRequest> {
        match format.unwrap_or("rootfs") {
            "rootfs" => Ok(Self::Rootfs),
            "oci" => Ok(Self::Tarball),
            "oci-layout" => Ok(Self::Layout),
            other => Err(InvalidRequest::new(format!(
                "params.format: unknown format {other:?}: expected rootfs, oci or oci-layout"
            ))),
        }
    }
}

/// The platform to pick from an index: `params.platform` over `source.platform` over
/// linux/amd64, field by field.
pub fn wanted_platform(source: Option<&Platform>, params: Option<&Platform>) -> WantedPlatform {
    let mut wanted = WantedPlatform::default();
    for platform in [source, params].into_iter().flatten() {
        if let Some(os) = platform.os.clone().filter(|s| !s.is_empty()) {
            wanted.os = os;
        }
        if let Some(arch) = platform.architecture.clone().filter(|s| !s.is_empty()) {
            wanted.architecture = arch;
        }
        if let Some(variant) = platform.variant.clone().filter(|s| !s.is_empty()) {
            wanted.variant = Some(variant);
        }
    }
    wanted
}

/// The image (and, for an index, the platform's image) a digest names.
struct Resolved {
    /// What the digest names, as fetched.
    top: RawDocument,
    /// The image manifest for our platform (equal to `top` when it is not an index).
    manifest: RawDocument,
    parsed: Manifest,
    /// The parsed index when `top` is one.
    index: Option<oci::Index>,
}

async fn resolve(
    client: &RegistryClient,
    digest: &str,
    platform: &WantedPlatform,
) -> anyhow::Result<Resolved> {
    let top = fetch_document(client, digest).await?;
    match oci::parse_document(&top.bytes, Some(&top.media_type))
        .map_err(|err| anyhow::anyhow!("{digest}: {err}"))?
    {
        Document::Manifest(parsed) => Ok(Resolved {
            manifest: top.clone(),
            top,
            parsed,
            index: None,
        }),
        Document::Index(index) => {
            let entry = oci::select_platform(&index, platform).ok_or_else(|| {
                let available: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    .map(|p| format!("{}/{}", p.os, p.architecture))
                    .collect();
                anyhow::anyhow!(
                    "no image for platform {platform} in index {digest} (it has {})",
                    available.join(", ")
                )
            })?;
            let manifest = fetch_document(client, &entry.digest).await?;
            let parsed = match oci::parse_document(&manifest.bytes, Some(&manifest.media_type))
                .map_err(|err| anyhow::anyhow!("{}: {err}", entry.digest))?
            {
                Document::Manifest(parsed) => parsed,
                Document::Index(_) => {
                    anyhow::bail!("{}: nested image indexes are not supported", entry.digest)
                }
            };
            Ok(Resolved {
                top,
                manifest,
                parsed,
                index: Some(index),
            })
        }
    }
}

async fn fetch_document(client: &RegistryClient, digest: &str) -> anyhow::Result<RawDocument> {
    let manifest = client.get_manifest(digest).await?;
    Ok(RawDocument {
        bytes: manifest.bytes.to_vec(),
        media_type: manifest.media_type,
        digest: manifest.digest,
    })
}

async fn fetch_config(
    client: &RegistryClient,
    manifest: &Manifest,
) -> anyhow::Result<(Vec<u8>, ImageConfig)> {
    let bytes = client
        .get_blob_bytes(&manifest.config.digest, MAX_CONFIG_BYTES)
        .await?
        .to_vec();
    let config = serde_json::from_slice(&bytes)
        .with_context(|| format!("image config {} is not valid JSON", manifest.config.digest))?;
    Ok((bytes, config))
}

/// The `created` time of the image `digest` names (the platform's image for an index).
pub async fn created_time(
    client: &RegistryClient,
    digest: &str,
    platform: &WantedPlatform,
) -> Result<Option<String>, RegistryError> {
    let resolved =
        resolve(client, digest, platform)
            .await
            .map_err(|err| RegistryError::InvalidResponse {
                url: digest.to_owned(),
                message: format!("{err:#}"),
            })?;
    let config = fetch_config(client, &resolved.parsed)
        .await
        .map_err(|err| RegistryError::InvalidResponse {
            url: digest.to_owned(),
            message: format!("{err:#}"),
        })?;
    Ok(config.1.created)
}

/// Runs `in`.
pub fn get(request: &InRequest<Source, GetParams>, dest: &Path) -> anyhow::Result<Response> {
    let source = &request.source;
    let params = &request.params;
    let target = registry::target(source)?;
    let format = Format::parse(params.format.as_deref())?;
    let digest = request
        .version
        .get("digest")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| InvalidRequest::new("version.digest: required"))?
        .clone();
    registry_client::digest::validate_digest(&digest)
        .map_err(|err| InvalidRequest::new(format!("version.digest: {err}")))?;
    let tag = request
        .version
        .get("tag")
        .cloned()
        .or_else(|| crate::check::source_tag(source))
        .unwrap_or_else(|| "latest".to_owned());
    let label_regex = compile(source.label_regex.as_deref(), "source.label_regex")?;
    let annotation_regex = compile(
        source.annotation_regex.as_deref(),
        "source.annotation_regex",
    )?;
    let platform = wanted_platform(source.platform.as_ref(), params.platform.as_ref());

    let mut metadata = vec![
        MetadataField::new("repository", &target.repository),
        MetadataField::new("tag", &tag),
    ];
    if !params.skip_download.unwrap_or(false) {
        let clients = registry::pull_clients(source, &target)?;
        let runtime = registry::runtime()?;
        let fetched = runtime
            .block_on(registry::first_success(&clients, async |client| {
                fetch_image(client, &digest, &tag, &target, &platform, format, dest).await
            }))
            .map_err(|err| crate::check::describe(err, &target))?;
        if let Some(regex) = &label_regex {
            let labels = fetched
                .config
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            for (name, value) in labels.into_iter().filter(|(name, _)| regex.is_match(name)) {
                metadata.push(MetadataField::new(name, value));
            }
        }
        if let Some(regex) = &annotation_regex {
            for (name, value) in fetched
                .annotations
                .into_iter()
                .filter(|(name, _)| regex.is_match(name))
            {
                metadata.push(MetadataField::new(name, value));
            }
        }
    }
    std::fs::write(dest.join("tag"), &tag).context("cannot write DEST/tag")?;
    std::fs::write(dest.join("digest"), &digest).context("cannot write DEST/digest")?;
    std::fs::write(dest.join("repository"), &target.repository)
        .context("cannot write DEST/repository")?;
    Ok(Response {
        version: crate::check::version(&tag, &digest),
        metadata,
    })
}

fn compile(pattern: Option<&str>, field: &str) -> Result<Option<regex::Regex>, InvalidRequest> {
    pattern
        .map(|p| regex::Regex::new(p).map_err(|err| InvalidRequest::new(format!("{field}: {err}"))))
        .transpose()
}

/// What `in` learned while fetching, for metadata.
struct Fetched {
    config: ImageConfig,
    /// Annotations of the index (if any) and of the image manifest.
    annotations: BTreeMap<String, String>,
}

async fn fetch_image(
    client: &RegistryClient,
    digest: &str,
    tag: &str,
    target: &registry::Target,
    platform: &WantedPlatform,
    format: Format,
    dest: &Path,
) -> anyhow::Result<Fetched> {
    let started = Instant::now();
    let resolved = resolve(client, digest, platform).await?;
    if resolved.index.is_some() {
        eprintln!(
            "{digest} is an index: using {} for {platform}",
            resolved.manifest.digest
        );
    }
    let (config_bytes, config) = fetch_config(client, &resolved.parsed).await?;
    let mut annotations = BTreeMap::new();
    if let Some(index) = &resolved.index {
        annotations.extend(index.annotations.clone().unwrap_or_default());
    }
    annotations.extend(resolved.parsed.annotations.clone().unwrap_or_default());

    match format {
        Format::Rootfs => {
            let rootfs = dest.join("rootfs");
            std::fs::create_dir_all(&rootfs).context("cannot create DEST/rootfs")?;
            let scratch = tempfile::tempdir_in(dest).context("cannot create a temp dir in DEST")?;
            apply_layers(client, &resolved.parsed.layers, scratch.path(), &rootfs).await?;
            formats::write_metadata_json(dest, &config).context("cannot write metadata.json")?;
            formats::write_labels_json(dest, &config).context("cannot write labels.json")?;
        }
        Format::Tarball => {
            let scratch = tempfile::tempdir_in(dest).context("cannot create a temp dir in DEST")?;
            let store = BlobStore::new(scratch.path());
            store.write(&resolved.parsed.config.digest, &config_bytes)?;
            download_blobs(client, &resolved.parsed.layers, &store).await?;
            let repo_tag = format!("{}:{tag}", target.repository);
            let (manifest, parsed, image_tar) = (
                resolved.manifest.clone(),
                resolved.parsed.clone(),
                dest.join("image.tar"),
            );
            tokio::task::spawn_blocking(move || {
                formats::write_docker_archive(&image_tar, &store, &manifest, &parsed, &repo_tag)
            })
            .await?
            .context("cannot write image.tar")?;
            formats::write_labels_json(dest, &config).context("cannot write labels.json")?;
        }
        Format::Layout => {
            let layout = dest.join("oci");
            let store = BlobStore::new(layout.join("blobs"));
            store.write(&resolved.top.digest, &resolved.top.bytes)?;
            let mut blobs = Vec::new();
            match &resolved.index {
                None => {
                    blobs.push(resolved.parsed.config.clone());
                    blobs.extend(resolved.parsed.layers.iter().cloned());
                }
                Some(index) => {
                    // The layout holds the whole index, every platform, so index.json can be
                    // the index byte for byte.
                    for entry in &index.manifests {
                        let child = fetch_document(client, &entry.digest).await?;
                        store.write(&child.digest, &child.bytes)?;
                        match oci::parse_document(&child.bytes, Some(&child.media_type)) {
                            Ok(Document::Manifest(m)) => {
                                blobs.push(m.config.clone());
                                blobs.extend(m.layers.iter().cloned());
                            }
                            Ok(Document::Index(_)) => {
                                tracing::warn!(
                                    "{}: nested index copied without its images",
                                    entry.digest
                                );
                            }
                            Err(err) => anyhow::bail!("{}: {err}", entry.digest),
                        }
                    }
                }
            }
            download_blobs(client, &blobs, &store).await?;
            formats::write_oci_layout(&layout, &resolved.top, tag)
                .context("cannot write the OCI layout")?;
        }
    }
    eprintln!(
        "fetched {}@{digest} in {:.1}s",
        target.repository,
        started.elapsed().as_secs_f64()
    );
    Ok(Fetched {
        config,
        annotations,
    })
}

/// Downloads `blobs` (deduplicated, skipping present ones) into `store`, concurrently.
async fn download_blobs(
    client: &RegistryClient,
    blobs: &[Descriptor],
    store: &BlobStore,
) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    let wanted: Vec<&Descriptor> = blobs
        .iter()
        .filter(|b| seen.insert(b.digest.clone()) && !store.contains(&b.digest))
        .collect();
    let total = wanted.len();
    let bytes: u64 = wanted.iter().map(|b| b.size).sum();
    eprintln!("fetching {total} blobs ({})", megabytes(bytes));
    let progress = Progress::new(total);
    let progress = &progress;
    futures::stream::iter(wanted.into_iter().enumerate())
        .map(|(i, blob)| async move {
            let path = store.path(&blob.digest)?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let bar = progress.blob(i, &blob.digest, blob.size);
            let size = download_with_progress(client, &blob.digest, &path, &bar).await?;
            bar.finish(&format!("{} downloaded", megabytes(size)));
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(LAYER_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Downloads layers concurrently into `scratch` and applies them in order to `rootfs` as soon
/// as each one and all below it are there.
async fn apply_layers(
    client: &RegistryClient,
    layers: &[Descriptor],
    scratch: &Path,
    rootfs: &Path,
) -> anyhow::Result<()> {
    let total = layers.len();
    let bytes: u64 = layers.iter().map(|l| l.size).sum();
    eprintln!("fetching {total} layers ({})", megabytes(bytes));
    let permits = Arc::new(tokio::sync::Semaphore::new(LAYER_CONCURRENCY));
    let progress = Progress::new(total);
    let bars: Vec<_> = layers
        .iter()
        .enumerate()
        .map(|(i, layer)| progress.blob(i, &layer.digest, layer.size))
        .collect();
    let downloads: Vec<tokio::task::JoinHandle<anyhow::Result<PathBuf>>> = layers
        .iter()
        .zip(&bars)
        .enumerate()
        .map(|(i, (layer, bar))| {
            let client = client.clone();
            let digest = layer.digest.clone();
            let path = scratch.join(format!("layer-{i}"));
            let permits = Arc::clone(&permits);
            let bar = bar.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await?;
                download_with_progress(&client, &digest, &path, &bar).await?;
                Ok(path)
            })
        })
        .collect();
    let options = UnpackOptions::for_layers();
    for ((download, layer), bar) in downloads.into_iter().zip(layers).zip(&bars) {
        let path = download.await??;
        let rootfs = rootfs.to_owned();
        let stats = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path)?;
            let stats = unpack_archive(file, &rootfs, &options);
            let _ = std::fs::remove_file(&path);
            Ok::<_, anyhow::Error>(stats?)
        })
        .await?
        .with_context(|| format!("layer {}", layer.digest))?;
        let skipped = if stats.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", stats.skipped.len())
        };
        bar.finish(&format!(
            "{} applied ({} entries, {} whiteouts{skipped})",
            megabytes(layer.size),
            stats.written,
            stats.whiteouts
        ));
    }
    Ok(())
}
