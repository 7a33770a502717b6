//! `out`: push a closure to a plain (HTTP PUT) or attic cache.
//!
//! Order of effects, so readers never see a half-pushed closure: NARs of missing paths first
//! (in parallel), then their narinfos level by level (a narinfo only after those of its
//! references), then the pin. A path already in the cache is never re-uploaded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use resource_protocol::{InvalidRequest, MetadataField, Response, Version};
use serde::Deserialize;

use crate::attic::AtticApi;
use crate::client::CacheClient;
use crate::closure::{dependencies_first, upload_levels};
use crate::config::{PutParams, Source};
use crate::hash::Sha256Hash;
use crate::narinfo::{Compression, NarInfo};
use crate::pin;
use crate::signing::SecretKey;
use crate::store_path::StorePath;
use crate::stream::{Digester, HashSink, HashingWriter, TeeReader, body_channel, decoder, encoder};

/// Existence checks in flight at once.
const HEAD_CONCURRENCY: usize = 32;
/// Uploads in flight at once (compression runs on blocking threads).
const UPLOAD_CONCURRENCY: usize = 6;

/// Where a path's NAR comes from.
#[derive(Debug, Clone)]
pub enum NarSource {
    /// Serialise the path from the local Nix store.
    Store,
    /// A NAR file from a local binary cache, compressed as its narinfo says.
    File(PathBuf),
}

/// One path to push: its metadata and where its NAR comes from.
#[derive(Debug, Clone)]
pub struct PushItem {
    /// Metadata (URL/compression/file fields are rewritten on upload).
    pub info: NarInfo,
    /// NAR source.
    pub nar: NarSource,
}

/// Shared counters for the metadata.
#[derive(Default)]
struct Stats {
    bytes_sent: AtomicU64,
}

/// `out`.
pub async fn put(source: &Source, params: &PutParams, src: &Path) -> anyhow::Result<Response> {
    let compression = match source.compression.as_deref().unwrap_or("zstd") {
        "zstd" => Compression::Zstd,
        "xz" => Compression::Xz,
        "none" => Compression::None,
        other => {
            return Err(InvalidRequest::new(format!(
                "source.compression: {other:?} is not one of zstd, xz, none"
            ))
            .into());
        }
    };
    let signing_key = match &source.signing_key {
        Some(k) if !k.is_empty() => Some(
            SecretKey::parse(k.expose())
                .map_err(|e| InvalidRequest::new(format!("source.signing_key: {e}")))?,
        ),
        _ => None,
    };
    let pin_name = params.pin.clone().or_else(|| source.pin.clone());
    if let Some(name) = &pin_name {
        pin::validate_name(
            if params.pin.is_some() {
                "params.pin"
            } else {
                "source.pin"
            },
            name,
        )?;
    }
    let client = CacheClient::new(source)?;
    let attic = match source.api.as_deref() {
        Some("attic") => Some(AtticApi::new(&client)?),
        _ => None,
    };
    if attic.is_some() && signing_key.is_some() {
        tracing::warn!("source.signing_key is not used with api attic: attic signs server-side");
    }

    let roots = read_roots(params, src)?;
    let (items, roots) = match &params.from {
        Some(from) => load_from_cache_dir(&src.join(from), roots)?,
        None => {
            if roots.is_empty() {
                return Err(InvalidRequest::new(
                    "params: set params.from, params.paths or params.paths_file",
                )
                .into());
            }
            (load_from_store(&roots).await?, roots)
        }
    };
    let Some(first_root) = roots.first().cloned() else {
        bail!("params.from: the cache directory has no narinfos");
    };
    let infos: BTreeMap<StorePath, NarInfo> = items
        .iter()
        .map(|(p, item)| (p.clone(), item.info.clone()))
        .collect();
    let order = dependencies_first(&infos, &roots);
    tracing::info!("closure of {} root(s): {} paths", roots.len(), order.len());

    let missing = find_missing(&client, attic.as_ref(), &infos, &order).await?;
    let to_upload: Vec<StorePath> = order
        .iter()
        .filter(|p| missing.contains(*p))
        .cloned()
        .collect();
    tracing::info!(
        "{} paths already in the cache, {} to upload",
        order.len() - to_upload.len(),
        to_upload.len()
    );

    let stats = Stats::default();
    let progress = crate::progress::Progress::new("uploaded", to_upload.len());
    let plan = UploadPlan {
        items: &items,
        infos: &infos,
        to_upload: &to_upload,
        stats: &stats,
        progress: &progress,
    };
    match &attic {
        Some(api) => upload_attic(api, &plan).await?,
        None => upload_http(&client, &plan, compression, signing_key.as_ref()).await?,
    }

    let mut version = Version::new();
    version.insert("store_path".into(), first_root.as_str().to_owned());
    if let Some(name) = &pin_name {
        let revision = pin::move_to(source, &client, name, &first_root).await?;
        version.insert("revision".into(), revision.to_string());
    }
    Ok(Response {
        version,
        metadata: vec![
            MetadataField::new("store_path", first_root.as_str()),
            MetadataField::new("paths_uploaded", to_upload.len().to_string()),
            MetadataField::new("paths_present", (order.len() - to_upload.len()).to_string()),
            MetadataField::new(
                "bytes_sent",
                stats.bytes_sent.load(Ordering::Relaxed).to_string(),
            ),
        ],
    })
}

/// Which paths of `order` the cache lacks (attic: one query, skipping paths an upstream cache
/// signed, as attic's own client does; plain: HEADs in parallel).
async fn find_missing(
    client: &CacheClient,
    attic: Option<&AtticApi>,
    infos: &BTreeMap<StorePath, NarInfo>,
    order: &[StorePath],
) -> anyhow::Result<BTreeSet<StorePath>> {
    match attic {
        Some(api) => {
            let config = api.cache_config().await?;
            let upstream = |p: &&StorePath| {
                infos[*p].sigs.iter().any(|sig| {
                    sig.split_once(':').is_some_and(|(name, _)| {
                        config.upstream_cache_key_names.iter().any(|u| u == name)
                    })
                })
            };
            let candidates: Vec<StorePath> =
                order.iter().filter(|p| !upstream(p)).cloned().collect();
            if candidates.len() < order.len() {
                tracing::info!(
                    "{} paths are signed by an upstream cache and are not pushed",
                    order.len() - candidates.len()
                );
            }
            api.missing_paths(&candidates).await
        }
        None => {
            // Nix reads nix-cache-info first; a cache that lacks it is made usable here, as
            // `nix copy --to` does.
            if !client.exists("nix-cache-info").await? {
                client
                    .put_bytes(
                        "nix-cache-info",
                        b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n".to_vec(),
                        "text/x-nix-cache-info",
                    )
                    .await?;
            }
            missing_paths_http(client, order).await
        }
    }
}

/// What to upload, shared by both APIs.
struct UploadPlan<'a> {
    items: &'a BTreeMap<StorePath, PushItem>,
    infos: &'a BTreeMap<StorePath, NarInfo>,
    to_upload: &'a [StorePath],
    stats: &'a Stats,
    progress: &'a crate::progress::Progress,
}

/// attic: one upload-path per path, level by level (attic publishes a path as it arrives).
async fn upload_attic(api: &AtticApi, plan: &UploadPlan<'_>) -> anyhow::Result<()> {
    for level in upload_levels(plan.infos, plan.to_upload) {
        let mut uploads = futures::stream::iter(level.iter().map(|p| async move {
            let item = &plan.items[p];
            let what = format!("upload of {}", item.info.store_path);
            let sent = crate::client::retry_transient(&what, || api.upload(item)).await?;
            plan.stats.bytes_sent.fetch_add(sent, Ordering::Relaxed);
            plan.progress.item_done(sent);
            anyhow::Ok(())
        }))
        .buffer_unordered(UPLOAD_CONCURRENCY);
        while let Some(r) = uploads.next().await {
            r?;
        }
    }
    Ok(())
}

/// Plain cache: every NAR in parallel, then the (signed) narinfos level by level.
async fn upload_http(
    client: &CacheClient,
    plan: &UploadPlan<'_>,
    compression: Compression,
    signing_key: Option<&SecretKey>,
) -> anyhow::Result<()> {
    let mut uploaded: BTreeMap<StorePath, NarInfo> = BTreeMap::new();
    let mut uploads = futures::stream::iter(plan.to_upload.iter().map(|p| async move {
        let item = &plan.items[p];
        let what = format!("upload of {}", item.info.store_path);
        let (info, sent) =
            crate::client::retry_transient(&what, || upload_nar_http(client, item, compression))
                .await?;
        plan.stats.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        plan.progress.item_done(sent);
        anyhow::Ok(info)
    }))
    .buffer_unordered(UPLOAD_CONCURRENCY);
    while let Some(r) = uploads.next().await {
        let mut info = r?;
        if let Some(key) = signing_key {
            key.sign_narinfo(&mut info);
        }
        uploaded.insert(info.store_path.clone(), info);
    }
    drop(uploads);
    for level in upload_levels(plan.infos, plan.to_upload) {
        let mut puts = futures::stream::iter(level.iter().map(|p| {
            let text = uploaded[p].to_text();
            async move {
                let len = text.len() as u64;
                let rel = format!("{}.narinfo", p.hash_part());
                client
                    .put_bytes(&rel, text.into_bytes(), "text/x-nix-narinfo")
                    .await?;
                plan.stats.bytes_sent.fetch_add(len, Ordering::Relaxed);
                anyhow::Ok(())
            }
        }))
        .buffer_unordered(HEAD_CONCURRENCY);
        while let Some(r) = puts.next().await {
            r?;
        }
    }
    Ok(())
}

/// Roots from `params.paths` and `params.paths_file`. Entries that are not store paths are
/// taken as files in SRC (e.g. a `result` symlink) and resolved.
fn read_roots(params: &PutParams, src: &Path) -> anyhow::Result<Vec<StorePath>> {
    let mut entries: Vec<(String, String)> = params
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("params.paths[{i}]"), p.trim().to_owned()))
        .collect();
    if let Some(file) = &params.paths_file {
        let text = std::fs::read_to_string(src.join(file)).map_err(|e| {
            InvalidRequest::new(format!("params.paths_file: cannot read {file:?}: {e}"))
        })?;
        entries.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| ("params.paths_file".to_owned(), l.to_owned())),
        );
    }
    let mut roots = Vec::new();
    for (field, entry) in entries {
        let text = if entry.starts_with("/nix/store/") {
            entry.clone()
        } else {
            // A `result` symlink names its store path directly; reading the link (rather than
            // resolving it fully) keeps a store path that is itself a symlink.
            let file = src.join(&entry);
            let resolved = match std::fs::read_link(&file) {
                Ok(target) if target.starts_with("/nix/store/") => Ok(target),
                _ => std::fs::canonicalize(&file),
            }
            .map_err(|e| {
                InvalidRequest::new(format!("{field}: {entry:?} is not a store path: {e}"))
            })?;
            resolved.to_string_lossy().into_owned()
        };
        // A path inside a store path (`/nix/store/x-y/bin/z`) means its store path.
        let store_path = text
            .strip_prefix("/nix/store/")
            .and_then(|rest| rest.split('/').next())
            .map(|base| format!("/nix/store/{base}"))
            .unwrap_or(text);
        let path = StorePath::parse(&store_path)
            .map_err(|e| InvalidRequest::new(format!("{field}: {e}")))?;
        if !roots.contains(&path) {
            roots.push(path);
        }
    }
    Ok(roots)
}

/// Reads every narinfo of a local binary cache directory and keeps the closure of `roots`
/// (all of them when `roots` is empty).
fn load_from_cache_dir(
    dir: &Path,
    roots: Vec<StorePath>,
) -> anyhow::Result<(BTreeMap<StorePath, PushItem>, Vec<StorePath>)> {
    let listing = std::fs::read_dir(dir).map_err(|e| {
        InvalidRequest::new(format!("params.from: cannot read {}: {e}", dir.display()))
    })?;
    let mut all = BTreeMap::new();
    for entry in listing {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".narinfo") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        let info = NarInfo::parse(&text).with_context(|| format!("params.from: {name}"))?;
        if !safe_relative(&info.url) {
            bail!(
                "params.from: {name}: URL {:?} is not a file inside the cache",
                info.url
            );
        }
        let file = dir.join(&info.url);
        all.insert(
            info.store_path.clone(),
            PushItem {
                info,
                nar: NarSource::File(file),
            },
        );
    }
    // Without explicit roots, the roots are the paths nothing else in the directory refers to.
    let roots = if roots.is_empty() {
        let referenced: BTreeSet<&StorePath> =
            all.values().flat_map(|i| i.info.dependencies()).collect();
        all.keys()
            .filter(|p| !referenced.contains(p))
            .cloned()
            .collect()
    } else {
        roots
    };
    let mut keep = BTreeMap::new();
    let mut stack: Vec<(StorePath, Option<StorePath>)> =
        roots.iter().map(|r| (r.clone(), None)).collect();
    while let Some((path, referrer)) = stack.pop() {
        if keep.contains_key(&path) {
            continue;
        }
        let Some(item) = all.get(&path) else {
            return Err(match referrer {
                Some(by) => anyhow!(
                    "params.from: {path} (referenced by {by}) is not in the cache directory"
                ),
                None => anyhow!("params.from: {path} is not in the cache directory"),
            });
        };
        for dep in item.info.dependencies() {
            stack.push((dep.clone(), Some(path.clone())));
        }
        keep.insert(path, item.clone());
    }
    Ok((keep, roots))
}

fn safe_relative(url: &str) -> bool {
    !url.is_empty()
        && !url.starts_with('/')
        && !url.contains("://")
        && !url.contains(['?', '#', '\\'])
        && url
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// One entry of `nix path-info --json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathInfoJson {
    path: String,
    nar_hash: String,
    nar_size: u64,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    deriver: Option<String>,
    #[serde(default)]
    signatures: Vec<String>,
    #[serde(default)]
    ca: Option<String>,
}

/// Metadata of the closure of `roots` from the local store (`nix path-info --json -r`).
async fn load_from_store(roots: &[StorePath]) -> anyhow::Result<BTreeMap<StorePath, PushItem>> {
    let mut command = resource_protocol::process::async_command("nix", Path::new("/"));
    command
        .args([
            "--extra-experimental-features",
            "nix-command",
            "path-info",
            "--json",
            "--recursive",
        ])
        .args(roots.iter().map(StorePath::as_str))
        .stdin(std::process::Stdio::null());
    let output = command.output().await.context("cannot run nix path-info")?;
    if !output.status.success() {
        bail!(
            "nix path-info failed ({}): {}",
            output.status,
            resource_protocol::process::stderr_tail(&output.stderr)
        );
    }
    let entries: Vec<PathInfoJson> =
        serde_json::from_slice(&output.stdout).context("cannot parse nix path-info --json")?;
    let mut items = BTreeMap::new();
    for entry in entries {
        let store_path = StorePath::parse(&entry.path)?;
        let mut references = entry
            .references
            .iter()
            .map(|r| StorePath::parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        references.sort();
        let info = NarInfo {
            store_path: store_path.clone(),
            url: String::new(),
            compression: Compression::None,
            file_hash: None,
            file_size: None,
            nar_hash: Sha256Hash::parse(&entry.nar_hash)
                .with_context(|| format!("nix path-info: {}", entry.path))?,
            nar_size: entry.nar_size,
            references,
            deriver: entry
                .deriver
                .as_deref()
                .and_then(|d| d.strip_prefix("/nix/store/"))
                .map(str::to_owned),
            system: None,
            sigs: entry.signatures,
            ca: entry.ca,
        };
        items.insert(
            store_path,
            PushItem {
                info,
                nar: NarSource::Store,
            },
        );
    }
    Ok(items)
}

/// Which of `paths` have no narinfo in a plain cache (HEADs in parallel).
async fn missing_paths_http(
    client: &CacheClient,
    paths: &[StorePath],
) -> anyhow::Result<BTreeSet<StorePath>> {
    let mut checks = futures::stream::iter(paths.iter().map(|p| async move {
        let present = client.exists(&format!("{}.narinfo", p.hash_part())).await?;
        anyhow::Ok((p.clone(), present))
    }))
    .buffer_unordered(HEAD_CONCURRENCY);
    let mut missing = BTreeSet::new();
    while let Some(r) = checks.next().await {
        let (path, present) = r?;
        if !present {
            missing.insert(path);
        }
    }
    Ok(missing)
}

/// What the NAR producer measured.
pub struct Produced {
    /// SHA-256 and size of the uncompressed NAR.
    pub nar: (Sha256Hash, u64),
    /// SHA-256 and size of the bytes sent.
    pub file: (Sha256Hash, u64),
}

/// Streams `item`'s NAR into `out` (re-encoded with `compression`, or, for a cache file whose
/// compression already matches `passthrough`, copied as is), hashing both forms. The NAR hash
/// and size are checked against the item's metadata.
pub fn produce_nar(
    item: &PushItem,
    out: impl Write + Send + 'static,
    compression: Compression,
    passthrough: bool,
) -> anyhow::Result<Produced> {
    let nar_digest = Digester::default();
    let file_digest = Digester::default();
    let path = &item.info.store_path;
    match &item.nar {
        NarSource::Store => {
            let mut enc = encoder(compression, HashingWriter::new(out, file_digest.clone()))?;
            crate::nar::dump_path(
                Path::new(path.as_str()),
                &mut HashingWriter::new(&mut enc, nar_digest.clone()),
            )
            .with_context(|| format!("cannot serialise {path}"))?;
            enc.finish_stream()
                .with_context(|| format!("{path}: upload stopped"))?;
        }
        NarSource::File(file) => {
            let input = std::fs::File::open(file)
                .with_context(|| format!("params.from: cannot open {}", file.display()))?;
            let input = io::BufReader::with_capacity(256 * 1024, input);
            if passthrough {
                let mut tee = TeeReader::new(input, out, file_digest.clone());
                let mut dec = decoder(item.info.compression, &mut tee)?;
                io::copy(&mut dec, &mut HashSink(nar_digest.clone()))
                    .with_context(|| format!("{}: cannot decompress {}", path, file.display()))?;
                drop(dec);
                tee.drain()
                    .with_context(|| format!("{path}: upload stopped"))?;
            } else {
                let mut enc = encoder(compression, HashingWriter::new(out, file_digest.clone()))?;
                let mut dec = decoder(item.info.compression, input)?;
                io::copy(
                    &mut dec,
                    &mut HashingWriter::new(&mut enc, nar_digest.clone()),
                )
                .with_context(|| format!("{}: cannot decompress {}", path, file.display()))?;
                enc.finish_stream()
                    .with_context(|| format!("{path}: upload stopped"))?;
            }
        }
    }
    let produced = Produced {
        nar: nar_digest.result(),
        file: file_digest.result(),
    };
    if produced.nar != (item.info.nar_hash, item.info.nar_size) {
        bail!(
            "{path}: its NAR does not match its metadata (NarHash {} size {}, got {} size {})",
            item.info.nar_hash,
            item.info.nar_size,
            produced.nar.0,
            produced.nar.1
        );
    }
    Ok(produced)
}

/// Uploads one NAR to a plain cache; returns the narinfo to publish and the bytes sent.
async fn upload_nar_http(
    client: &CacheClient,
    item: &PushItem,
    compression: Compression,
) -> anyhow::Result<(NarInfo, u64)> {
    // A cache file is uploaded as it is (its compression kept); store paths are compressed
    // with `source.compression`.
    let (compression, passthrough) = match &item.nar {
        NarSource::File(_) => (item.info.compression, true),
        NarSource::Store => (compression, false),
    };
    let rel = match &item.nar {
        NarSource::File(_) => item.info.url.clone(),
        NarSource::Store => format!(
            "nar/{}{}",
            item.info.nar_hash.nix32(),
            compression.extension()
        ),
    };
    let (writer, body) = body_channel();
    let failer = writer.failure_handle();
    let producer_item = item.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let result = produce_nar(&producer_item, writer, compression, passthrough);
        if let Err(e) = &result {
            failer.fail(format!("{e:#}"));
        }
        result
    });
    let upload = client.put_stream(&rel, body, "application/x-nix-nar");
    let (uploaded, produced) = tokio::join!(upload, producer);
    let produced = produced.context("upload task failed")?;
    // A producer error explains an aborted upload better than the upload's own error.
    let produced = produced?;
    uploaded?;
    let mut info = item.info.clone();
    info.url = rel;
    info.compression = compression;
    info.file_hash = Some(produced.file.0);
    info.file_size = Some(produced.file.1);
    Ok((info, produced.file.1))
}
