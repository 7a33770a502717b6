//! `in` and the read side of `check`: walk a closure's narinfos, verify signatures, download
//! NARs in parallel while decompressing and hashing them, and lay out `DEST`.
//!
//! Nothing unverified is ever published: NARs land under a temporary name and are renamed once
//! their hashes match; `store-path` is written last, after everything else succeeded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use resource_protocol::{InvalidRequest, MetadataField, Response, Version};

use crate::client::CacheClient;
use crate::closure::dependencies_first;
use crate::config::{GetParams, Source};
use crate::narinfo::NarInfo;
use crate::signing::{PublicKey, is_signed_by_any};
use crate::store_path::{StorePath, content_address_matches};
use crate::stream::{Digester, TeeReader, decoder, read_channel};

/// Narinfo requests in flight at once.
const NARINFO_CONCURRENCY: usize = 32;
/// NAR downloads in flight at once.
const NAR_CONCURRENCY: usize = 8;

/// Checks narinfo signatures against `source.trusted_public_keys`.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<PublicKey>,
}

impl Verifier {
    /// Parses the trusted keys; an empty list disables signature checks.
    pub fn from_source(source: &Source) -> Result<Self, InvalidRequest> {
        let keys = source
            .trusted_public_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                PublicKey::parse(k).map_err(|e| {
                    InvalidRequest::new(format!("source.trusted_public_keys[{i}]: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// Whether signatures are checked at all.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Accepts `info` if one trusted key signed it, or if it is content-addressed and its `CA`
    /// really yields its store path (as Nix does).
    pub fn verify(&self, info: &NarInfo) -> anyhow::Result<()> {
        if !self.enabled() || is_signed_by_any(info, &self.keys) {
            return Ok(());
        }
        if let Some(ca) = &info.ca
            && content_address_matches(&info.store_path, ca, &info.nar_hash, &info.references)
        {
            return Ok(());
        }
        let names: Vec<&str> = info
            .sigs
            .iter()
            .filter_map(|s| s.split_once(':').map(|(n, _)| n))
            .collect();
        if names.is_empty() {
            bail!("{}: narinfo is not signed (no Sig line)", info.store_path)
        }
        bail!(
            "{}: no valid signature from a trusted key (signed by: {})",
            info.store_path,
            names.join(", ")
        )
    }
}

/// Fetches and parses `<hash>.narinfo`; `None` when the cache does not have it.
pub async fn fetch_narinfo(
    client: &CacheClient,
    path: &StorePath,
) -> anyhow::Result<Option<NarInfo>> {
    let rel = format!("{}.narinfo", path.hash_part());
    let Some(text) = client.get_text(&rel).await? else {
        return Ok(None);
    };
    let info = NarInfo::parse(&text).with_context(|| format!("{rel} (for {path})"))?;
    if info.store_path != *path {
        bail!(
            "{rel}: narinfo is for {} instead of {path}",
            info.store_path
        );
    }
    Ok(Some(info))
}

/// What walking a closure found.
pub enum ClosureOutcome {
    /// Every narinfo exists and verifies.
    Complete(BTreeMap<StorePath, NarInfo>),
    /// This path's narinfo is not in the cache.
    Missing(StorePath),
}

/// Fetches the narinfos of `root` and (when `follow`) everything it references, verifying each.
pub async fn fetch_closure(
    client: &CacheClient,
    verifier: &Verifier,
    root: &StorePath,
    follow: bool,
) -> anyhow::Result<ClosureOutcome> {
    let mut infos = BTreeMap::new();
    let mut seen: BTreeSet<StorePath> = BTreeSet::from([root.clone()]);
    let mut queue: VecDeque<StorePath> = VecDeque::from([root.clone()]);
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < NARINFO_CONCURRENCY
            && let Some(path) = queue.pop_front()
        {
            in_flight.push(async move {
                let info = fetch_narinfo(client, &path).await;
                (path, info)
            });
        }
        let Some((path, info)) = in_flight.next().await else {
            break;
        };
        let Some(info) = info? else {
            return Ok(ClosureOutcome::Missing(path));
        };
        verifier.verify(&info)?;
        if follow {
            for dep in info.dependencies() {
                if seen.insert(dep.clone()) {
                    queue.push_back(dep.clone());
                }
            }
        }
        infos.insert(path, info);
    }
    Ok(ClosureOutcome::Complete(infos))
}

/// Downloads `info`'s NAR to `dest_file`, verifying FileSize (when given), the NAR's
/// structure and NarHash/NarSize while streaming. The file appears only when everything matched.
async fn download_nar(
    client: &CacheClient,
    info: &NarInfo,
    dest_file: PathBuf,
) -> anyhow::Result<u64> {
    let path = info.store_path.clone();
    let url = client.url(&info.url)?;
    let response = client
        .send_retrying(&format!("GET {}", info.url), || {
            client.request(reqwest::Method::GET, url.clone())
        })
        .await?;
    if !response.status().is_success() {
        return Err(
            crate::client::status_error("GET", &info.url, response.status())
                .context(format!("{path}: cannot download its NAR")),
        );
    }
    let (tx, reader) = read_channel();
    let expected = info.clone();
    let verify = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let partial = dest_file.with_extension("partial");
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        // FileHash is not checked: the signed NarHash of the decompressed stream already
        // covers every byte, and a second SHA-256 pass costs more than the download.
        let file_digest = Digester::counting();
        let nar_digest = Digester::default();
        let mut tee = TeeReader::new(
            reader,
            BufWriter::with_capacity(256 * 1024, file),
            file_digest.clone(),
        );
        // The NAR is parsed (not only hashed) so a malformed archive fails here, for every
        // path of the closure, not only for the one unpacked into result/.
        let decoded = decoder(expected.compression, &mut tee)
            .map_err(anyhow::Error::from)
            .and_then(|d| {
                let hashed = TeeReader::new(d, io::sink(), nar_digest.clone());
                crate::nar::validate(hashed).map_err(anyhow::Error::from)
            });
        let drained = decoded.and_then(|()| tee.drain().map_err(anyhow::Error::from));
        let outcome = drained
            .with_context(|| {
                format!(
                    "{}: its NAR ({}) is invalid or could not be read",
                    expected.store_path,
                    expected.compression.as_str()
                )
            })
            .and_then(|writer| {
                writer
                    .into_inner()
                    .map_err(|e| anyhow!("cannot write {}: {}", partial.display(), e.error()))?;
                check_hashes(&expected, &file_digest, &nar_digest)
            });
        match outcome {
            Ok(size) => {
                std::fs::rename(&partial, &dest_file)
                    .with_context(|| format!("cannot rename {}", partial.display()))?;
                Ok(size)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    });
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let failed = chunk.is_err();
        if tx.send(chunk.map_err(io::Error::other)).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    verify.await.context("verification task failed")?
}

fn check_hashes(info: &NarInfo, file: &Digester, nar: &Digester) -> anyhow::Result<u64> {
    let path = &info.store_path;
    let (_, file_size) = file.result();
    let (nar_hash, nar_size) = nar.result();
    if nar_size != info.nar_size {
        bail!(
            "{path}: NAR size mismatch: narinfo says {}, got {nar_size}",
            info.nar_size
        );
    }
    if nar_hash != info.nar_hash {
        bail!(
            "{path}: NAR hash mismatch: narinfo says {}, got {nar_hash}",
            info.nar_hash
        );
    }
    if let Some(expected) = info.file_size
        && expected != file_size
    {
        bail!("{path}: file size mismatch: narinfo says {expected}, got {file_size}");
    }
    Ok(file_size)
}

/// Parses the version's store path.
pub fn version_store_path(version: &Version) -> anyhow::Result<StorePath> {
    let text = version
        .get("store_path")
        .ok_or_else(|| InvalidRequest::new("version.store_path: missing"))?;
    Ok(StorePath::parse(text)
        .map_err(|e| InvalidRequest::new(format!("version.store_path: {e}")))?)
}

/// `in`: fetch the version's closure into `dest`.
pub async fn get(
    source: &Source,
    version: &Version,
    params: &GetParams,
    dest: &Path,
) -> anyhow::Result<Response> {
    let root = version_store_path(version)?;
    let verifier = Verifier::from_source(source)?;
    let client = CacheClient::new(source)?;
    if !verifier.enabled() {
        tracing::warn!("source.trusted_public_keys is empty: signatures are not checked");
    }
    let store_path_file = dest.join("store-path");
    if store_path_file.exists() {
        std::fs::remove_file(&store_path_file).context("cannot remove an old store-path file")?;
    }
    let follow = params.closure.unwrap_or(true);
    let infos = match fetch_closure(&client, &verifier, &root, follow).await? {
        ClosureOutcome::Complete(infos) => infos,
        ClosureOutcome::Missing(path) if path == root => {
            bail!("{root} is not in the cache")
        }
        ClosureOutcome::Missing(path) => {
            bail!("{path} (in the closure of {root}) is not in the cache")
        }
    };
    tracing::info!("fetching {} paths", infos.len());
    let cache_dir = dest.join("cache");
    let nar_dir = cache_dir.join("nar");
    std::fs::create_dir_all(&nar_dir)
        .with_context(|| format!("cannot create {}", nar_dir.display()))?;

    let mut local_infos = BTreeMap::new();
    let mut downloads = futures::stream::iter(infos.values().map(|info| {
        let file_name = format!(
            "{}{}",
            info.store_path.hash_part(),
            info.compression.extension()
        );
        let dest_file = nar_dir.join(&file_name);
        let client = &client;
        async move {
            let what = format!("download of {}", info.store_path);
            let size = crate::client::retry_transient(&what, || {
                download_nar(client, info, dest_file.clone())
            })
            .await?;
            let mut local = info.clone();
            local.url = format!("nar/{file_name}");
            anyhow::Ok((local, size))
        }
    }))
    .buffer_unordered(NAR_CONCURRENCY);
    let mut bytes = 0u64;
    let progress = crate::progress::Progress::new("fetched", infos.len());
    while let Some(result) = downloads.next().await {
        let (local, size) = result?;
        bytes += size;
        progress.item_done(size);
        local_infos.insert(local.store_path.clone(), local);
    }
    drop(downloads);

    std::fs::write(
        cache_dir.join("nix-cache-info"),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 50\n",
    )
    .context("cannot write nix-cache-info")?;
    for info in local_infos.values() {
        let file = cache_dir.join(format!("{}.narinfo", info.store_path.hash_part()));
        std::fs::write(&file, info.to_text())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let order = dependencies_first(&local_infos, std::slice::from_ref(&root));
    let closure_text: String = order.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(dest.join("closure"), closure_text).context("cannot write closure")?;

    if params.unpack.unwrap_or(true) {
        let info = &local_infos[&root];
        let nar_file = cache_dir.join(&info.url);
        let result = dest.join("result");
        let compression = info.compression;
        tokio::task::spawn_blocking(move || unpack_result(&nar_file, compression, &result))
            .await
            .context("unpack task failed")??;
    }

    std::fs::write(&store_path_file, format!("{root}\n")).context("cannot write store-path")?;
    let total_nar: u64 = local_infos.values().map(|i| i.nar_size).sum();
    Ok(Response {
        version: version.clone(),
        metadata: vec![
            MetadataField::new("store_path", root.as_str()),
            MetadataField::new("paths", local_infos.len().to_string()),
            MetadataField::new("nar_bytes", total_nar.to_string()),
            MetadataField::new("downloaded_bytes", bytes.to_string()),
        ],
    })
}

fn unpack_result(
    nar_file: &Path,
    compression: crate::narinfo::Compression,
    result: &Path,
) -> anyhow::Result<()> {
    let partial = result.with_extension("partial");
    remove_any(&partial)?;
    let file = std::fs::File::open(nar_file)
        .with_context(|| format!("cannot open {}", nar_file.display()))?;
    let reader: Box<dyn Read + Send> = decoder(compression, io::BufReader::new(file))?;
    crate::nar::unpack(reader, &partial).context("cannot unpack the store path into result/")?;
    remove_any(result)?;
    std::fs::rename(&partial, result).context("cannot move result into place")?;
    Ok(())
}

fn remove_any(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)
            .with_context(|| format!("cannot remove {}", path.display())),
        Ok(_) => {
            std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
        }
        Err(_) => Ok(()),
    }
}
