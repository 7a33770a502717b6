//! attic's push API: `POST /_api/v1/get-missing-paths` and `PUT /_api/v1/upload-path` with the
//! NAR info in the `X-Attic-Nar-Info` header, or as a body preamble when its JSON is 4 KiB or
//! more (as attic's own client decides). The NAR is sent uncompressed; attic compresses and
//! signs server-side. `source.url` is `<server>/<cache>`.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use reqwest::{Method, Url};
use resource_protocol::InvalidRequest;
use serde::{Deserialize, Serialize};

use crate::client::{CacheClient, check_success};
use crate::narinfo::Compression;
use crate::push::{PushItem, produce_nar};
use crate::store_path::StorePath;
use crate::stream::body_channel;

/// JSON at or above this size goes in the body preamble instead of a header.
pub const PREAMBLE_THRESHOLD: usize = 4 * 1024;

/// `GetMissingPathsRequest`.
#[derive(Debug, Serialize)]
struct GetMissingPathsRequest<'a> {
    cache: &'a str,
    store_path_hashes: Vec<&'a str>,
}

/// `GetMissingPathsResponse`.
#[derive(Debug, Deserialize)]
struct GetMissingPathsResponse {
    missing_paths: Vec<String>,
}

/// `UploadPathNarInfo`.
#[derive(Debug, Serialize)]
pub struct UploadPathNarInfo {
    /// Cache name.
    pub cache: String,
    /// Hash part of the store path.
    pub store_path_hash: String,
    /// Full store path.
    pub store_path: String,
    /// Full paths of the references, sorted.
    pub references: Vec<String>,
    /// System (unknown to us: null, as attic's client sends).
    pub system: Option<String>,
    /// Full deriver path.
    pub deriver: Option<String>,
    /// Existing signatures.
    pub sigs: Vec<String>,
    /// Content address.
    pub ca: Option<String>,
    /// `sha256:<hex>`.
    pub nar_hash: String,
    /// NAR size in bytes.
    pub nar_size: u64,
}

/// The part of attic's `CacheConfig` a pusher needs.
#[derive(Debug, Default, Deserialize)]
pub struct CacheConfig {
    /// Key names of upstream caches: paths they signed need not be pushed.
    #[serde(default)]
    pub upstream_cache_key_names: Vec<String>,
    /// The cache's public key.
    #[serde(default)]
    pub public_key: Option<String>,
}

/// A client for one attic cache.
#[derive(Debug, Clone)]
pub struct AtticApi {
    client: CacheClient,
    server: Url,
    cache: String,
}

impl AtticApi {
    /// Splits `source.url` into the server and the cache name.
    pub fn new(client: &CacheClient) -> anyhow::Result<Self> {
        let base = client.base().clone();
        let segments: Vec<&str> = base
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let Some((cache, prefix)) = segments.split_last() else {
            return Err(InvalidRequest::new(
                "source.url: an attic url must name the cache (https://server/<cache>)",
            )
            .into());
        };
        let mut server = base.clone();
        let path = if prefix.is_empty() {
            "/".to_owned()
        } else {
            format!("/{}/", prefix.join("/"))
        };
        server.set_path(&path);
        Ok(Self {
            client: client.clone(),
            server,
            cache: (*cache).to_owned(),
        })
    }

    fn endpoint(&self, rel: &str) -> anyhow::Result<Url> {
        self.server
            .join(rel)
            .with_context(|| format!("cannot build the attic url {rel}"))
    }

    /// `GET /_api/v1/cache-config/{cache}`: fails early, with attic's own message, when the
    /// cache does not exist or the token cannot see it.
    pub async fn cache_config(&self) -> anyhow::Result<CacheConfig> {
        let rel = format!("_api/v1/cache-config/{}", self.cache);
        let url = self.endpoint(&rel)?;
        let response = self
            .client
            .send_retrying("attic cache-config", || {
                self.client.request(Method::GET, url.clone())
            })
            .await?;
        if !response.status().is_success() {
            check_success("GET", &rel, response).await?;
            bail!("attic cache-config failed");
        }
        response
            .json()
            .await
            .context("attic cache-config: unexpected answer")
    }

    /// One `get-missing-paths` call for all of `paths`.
    pub async fn missing_paths(&self, paths: &[StorePath]) -> anyhow::Result<BTreeSet<StorePath>> {
        let url = self.endpoint("_api/v1/get-missing-paths")?;
        let request = GetMissingPathsRequest {
            cache: &self.cache,
            store_path_hashes: paths.iter().map(StorePath::hash_part).collect(),
        };
        let body = serde_json::to_vec(&request)?;
        let response = self
            .client
            .send_retrying("attic get-missing-paths", || {
                self.client
                    .request(Method::POST, url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        if !response.status().is_success() {
            check_success("POST", "_api/v1/get-missing-paths", response).await?;
            bail!("attic get-missing-paths failed");
        }
        let answer: GetMissingPathsResponse = response
            .json()
            .await
            .context("attic get-missing-paths: unexpected answer")?;
        let missing: BTreeSet<&str> = answer.missing_paths.iter().map(String::as_str).collect();
        Ok(paths
            .iter()
            .filter(|p| missing.contains(p.hash_part()))
            .cloned()
            .collect())
    }

    /// The upload-path metadata of `item`.
    pub fn nar_info(&self, item: &PushItem) -> UploadPathNarInfo {
        let info = &item.info;
        let mut references: Vec<String> = info
            .references
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        references.sort();
        UploadPathNarInfo {
            cache: self.cache.clone(),
            store_path_hash: info.store_path.hash_part().to_owned(),
            store_path: info.store_path.as_str().to_owned(),
            references,
            system: info.system.clone(),
            deriver: info.deriver.as_ref().map(|d| format!("/nix/store/{d}")),
            sigs: info.sigs.clone(),
            ca: info.ca.clone(),
            nar_hash: info.nar_hash.to_hex_string(),
            nar_size: info.nar_size,
        }
    }

    /// Uploads one path (uncompressed NAR); returns the bytes sent.
    pub async fn upload(&self, item: &PushItem) -> anyhow::Result<u64> {
        let url = self.endpoint("_api/v1/upload-path")?;
        let json = serde_json::to_string(&self.nar_info(item))?;
        let (mut writer, body) = body_channel();
        let failer = writer.failure_handle();
        let preamble = json.len() >= PREAMBLE_THRESHOLD;
        let mut request = self.client.request(Method::PUT, url);
        if preamble {
            request = request.header("X-Attic-Nar-Info-Preamble-Size", json.len());
        } else {
            request = request.header("X-Attic-Nar-Info", json.clone());
        }
        let request = request
            .header(reqwest::header::CONTENT_TYPE, "application/x-nix-nar")
            .body(body);
        let producer_item = item.clone();
        let preamble_bytes = if preamble {
            json.into_bytes()
        } else {
            Vec::new()
        };
        let producer = tokio::task::spawn_blocking(move || {
            let result = std::io::Write::write_all(&mut writer, &preamble_bytes)
                .context("upload stopped")
                .and_then(|()| produce_nar(&producer_item, writer, Compression::None, false));
            if let Err(e) = &result {
                failer.fail(format!("{e:#}"));
            }
            result
        });
        let (response, produced) = tokio::join!(request.send(), producer);
        let produced = produced.context("upload task failed")??;
        let response = response.with_context(|| {
            format!("attic upload-path {}: request failed", item.info.store_path)
        })?;
        check_success(
            "PUT",
            &format!("_api/v1/upload-path ({})", item.info.store_path),
            response,
        )
        .await?;
        Ok(produced.file.1)
    }
}
