//! [`RegistryClient`]: one repository on one registry, over the OCI distribution API.
//!
//! Every request goes through one send loop that (1) attaches credentials only when the URL
//! has the registry's own origin, (2) answers `401` challenges once (Basic, or a Bearer token
//! fetched for the operation's scopes and cached), (3) follows redirects by hand so that a
//! redirect to another host (blob storage) never carries the `Authorization` header, and
//! (4) retries `429`, `5xx` and connection failures with exponential backoff, never
//! `401`/`403`/`404`.
//!
//! Each URL goes through the client for its scheme (see [`Clients`]): `http` ones never load
//! root certificates, so a check against a plain-http registry never reads the system roots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use resource_protocol::Secret;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::auth::{Challenge, Credentials, TokenResponse, parse_challenge, pull_scope, push_scope};
use crate::digest::{DigestVerifier, sha256_digest, validate_digest};
use crate::error::{RegistryError, error_chain};
use crate::media::MANIFEST_ACCEPT;
use crate::reference::{DOCKER_HUB_API_HOST, is_docker_hub, validate_repository};

/// Manifests larger than this are refused (the distribution spec's limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Redirect hops followed per request.
const MAX_REDIRECTS: u32 = 10;
/// Environment variable overriding the base delay of [`RetryPolicy::from_env`], in
/// milliseconds (tests set it low so retry paths run in milliseconds).
pub const RETRY_BASE_DELAY_ENV: &str = "TRIBUTARY_RETRY_BASE_DELAY_MS";

/// How failed requests are retried: attempt `n` (from 1) waits `base_delay * 2^(n-1)`, at most
/// `max_delay`, before the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per request, including the first (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub base_delay: Duration,
    /// Upper bound of any single delay (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 500 ms doubling up to 8 s: about 7.5 s of waiting in the worst case.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The default policy, with the base delay taken from [`RETRY_BASE_DELAY_ENV`] when set.
    pub fn from_env() -> Self {
        let mut policy = Self::default();
        if let Some(ms) = std::env::var(RETRY_BASE_DELAY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            policy.base_delay = Duration::from_millis(ms);
            policy.max_delay = policy
                .max_delay
                .min(Duration::from_millis(ms.saturating_mul(16)));
        }
        policy
    }

    /// A policy for tests: 4 attempts, 5 ms doubling up to 40 ms.
    pub fn fast() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(40),
        }
    }

    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Everything needed to talk to one repository.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registry host and port (`127.0.0.1:5000`, `ghcr.io`; any Docker Hub spelling is mapped
    /// to `registry-1.docker.io`). An `http://` or `https://` prefix forces that scheme;
    /// without one the client uses https, falling back to http for `insecure`, loopback,
    /// `localhost` and private-range hosts when https does not connect.
    pub registry: String,
    /// Repository path, e.g. `library/ubuntu`.
    pub repository: String,
    /// User name for Basic auth or the token exchange.
    pub username: Option<String>,
    /// Password (or token) for Basic auth or the token exchange.
    pub password: Option<Secret>,
    /// Allow plain http and untrusted certificates for this registry.
    pub insecure: bool,
    /// PEM certificates (each entry may hold several) trusted besides the system roots.
    pub ca_certs: Vec<String>,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl ClientConfig {
    /// A config for `registry`/`repository` with no credentials, default retries and our
    /// user agent.
    pub fn new(registry: impl Into<String>, repository: impl Into<String>) -> Self {
        Self {
            registry: registry.into(),
            repository: repository.into(),
            username: None,
            password: None,
            insecure: false,
            ca_certs: Vec::new(),
            retry: RetryPolicy::from_env(),
            user_agent: format!("tributary/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What a manifest reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `sha256:…`.
    pub digest: String,
    /// The manifest's media type (`Content-Type`).
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A fetched manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes the registry served (hash these, never a re-serialisation).
    pub bytes: Bytes,
    /// Media type from `Content-Type` (or the manifest's `mediaType` field).
    pub media_type: String,
    /// Digest of `bytes` (verified against the reference when fetched by digest).
    pub digest: String,
}

/// A blob's content as a stream of chunks, verified against its digest: the stream ends with
/// an error instead of `None` when the bytes do not match.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// A client for one repository. Cheap to clone (shared state); safe to use concurrently.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.inner.registry)
            .field("repository", &self.inner.repository)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: Clients,
    registry: String,
    repository: String,
    scheme: SchemeChoice,
    credentials: Option<Credentials>,
    retry: RetryPolicy,
    base: tokio::sync::OnceCell<Url>,
    auth: Mutex<AuthState>,
    /// Held while a token is fetched, so concurrent requests share one token request.
    token_gate: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemeChoice {
    Https,
    Http,
    /// https, or http when https does not connect.
    HttpsThenHttp,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope set (the scopes joined by spaces).
    tokens: HashMap<String, CachedToken>,
    /// Counts tokens fetched, so a task that got a `401` can tell whether another task has
    /// fetched a newer token meanwhile.
    epoch: u64,
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    deadline: Instant,
    epoch: u64,
}

enum CallBody {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of the file from `offset`; with `verify`, hashed while streamed and cut
    /// short (the last chunk withheld) when they do not have that digest.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        verify: Option<String>,
    },
}

/// What an upload sends, so any part of it can be (re)sent.
enum BlobContent<'a> {
    /// `size` bytes of the file from `offset`; `verify`: check them against the blob's digest.
    File {
        path: &'a Path,
        offset: u64,
        size: u64,
        verify: bool,
    },
    Bytes(Bytes),
}

impl BlobContent<'_> {
    fn len(&self) -> u64 {
        match self {
            Self::File { size, .. } => *size,
            Self::Bytes(b) => b.len() as u64,
        }
    }

    /// Bytes `offset..offset + len` of the content; verified against `digest` when the part is
    /// the whole of a file asked to be verified.
    fn part(&self, offset: u64, len: u64, digest: &str) -> CallBody {
        match self {
            Self::File {
                path,
                offset: start,
                size,
                verify,
            } => CallBody::File {
                path: path.to_path_buf(),
                offset: start + offset,
                len,
                verify: (*verify && offset == 0 && len == *size).then(|| digest.to_owned()),
            },
            Self::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(offset.saturating_add(len))
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                CallBody::Bytes(b.slice(start..end))
            }
        }
    }
}

/// First chunk size when a registry refuses a monolithic upload as too large (`413`).
const FIRST_CHUNK_BYTES: u64 = 8 * 1024 * 1024;
/// Chunks are halved on `413` down to this.
const MIN_CHUNK_BYTES: u64 = 64 * 1024;

struct Call<'a> {
    method: Method,
    url: Url,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: CallBody,
    scopes: &'a [String],
}

impl<'a> Call<'a> {
    fn new(method: Method, url: Url, scopes: &'a [String]) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: CallBody::Empty,
            scopes,
        }
    }

    fn header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

impl RegistryClient {
    /// A client for `config.repository` on `config.registry`. Fails only on invalid
    /// configuration (bad repository name or CA certificate); nothing is sent yet.
    pub fn new(config: ClientConfig) -> Result<Self, RegistryError> {
        let (scheme, host) = match config.registry.trim().trim_end_matches('/') {
            r if r.starts_with("https://") => (Some(SchemeChoice::Https), &r["https://".len()..]),
            r if r.starts_with("http://") => (Some(SchemeChoice::Http), &r["http://".len()..]),
            r => (None, r),
        };
        if host.is_empty() || host.contains('/') {
            return Err(RegistryError::InvalidConfig(format!(
                "registry {:?}: expected host[:port]",
                config.registry
            )));
        }
        let host = if is_docker_hub(host) {
            DOCKER_HUB_API_HOST.to_owned()
        } else {
            host.to_ascii_lowercase()
        };
        validate_repository(&config.repository).map_err(RegistryError::InvalidReference)?;
        let scheme = scheme.unwrap_or(if config.insecure || is_local_or_private(&host) {
            SchemeChoice::HttpsThenHttp
        } else {
            SchemeChoice::Https
        });
        let http = Clients::new(&config.ca_certs, config.insecure, &config.user_agent)?;
        let credentials = match (config.username, config.password) {
            (Some(username), password) if !username.is_empty() => Some(Credentials {
                username,
                password: password.unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                registry: host,
                repository: config.repository,
                scheme,
                credentials,
                retry: config.retry,
                base: tokio::sync::OnceCell::new(),
                auth: Mutex::new(AuthState::default()),
                token_gate: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The registry host this client talks to.
    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    /// The repository this client talks to.
    pub fn repository(&self) -> &str {
        &self.inner.repository
    }

    /// A client for another repository on the same registry with the same settings (fresh
    /// token cache, shared connection pool).
    pub fn for_repository(&self, repository: &str) -> Result<Self, RegistryError> {
        validate_repository(repository).map_err(RegistryError::InvalidReference)?;
        let inner = &self.inner;
        Ok(Self {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                registry: inner.registry.clone(),
                repository: repository.to_owned(),
                scheme: inner.scheme,
                credentials: inner.credentials.clone(),
                retry: inner.retry,
                base: inner.base.clone(),
                auth: Mutex::new(AuthState::default()),
                token_gate: tokio::sync::Mutex::new(()),
            }),
        })
    }

    // ---- tags ----------------------------------------------------------------------------

    /// Lists tags, `page_size` per request (`n`), reading at most `max_pages` pages (following
    /// `Link: <…>; rel="next"`). Registries that ignore `n` answer everything in one page.
    pub async fn list_tags(
        &self,
        page_size: u32,
        max_pages: u32,
    ) -> Result<Vec<String>, RegistryError> {
        let mut pages = self.tag_pages(page_size).await?;
        let mut tags = Vec::new();
        for _ in 0..max_pages {
            match pages.next_page().await? {
                Some(page) => tags.extend(page),
                None => break,
            }
        }
        Ok(tags)
    }

    /// A page-by-page reader of the tag list, so callers can filter as pages arrive and keep
    /// memory flat.
    pub async fn tag_pages(&self, page_size: u32) -> Result<TagPages, RegistryError> {
        let mut url = self.url("tags/list").await?;
        if page_size > 0 {
            url.query_pairs_mut()
                .append_pair("n", &page_size.to_string());
        }
        Ok(TagPages {
            client: self.clone(),
            next: Some(url),
            scopes: vec![pull_scope(&self.inner.repository)],
        })
    }

    // ---- manifests -----------------------------------------------------------------------

    /// Resolves a tag or digest to a descriptor with one `HEAD` (a `GET` when the registry
    /// sends no `Docker-Content-Digest`; the digest is then computed from the bytes).
    /// `Ok(None)` when the manifest does not exist.
    pub async fn head_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let url = self.manifest_url(reference).await?;
        let scopes = [pull_scope(&self.inner.repository)];
        let call =
            Call::new(Method::HEAD, url.clone(), &scopes).header(header::ACCEPT, MANIFEST_ACCEPT);
        let response = self.send(call).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => {
                return Err(self
                    .status_error(response, "HEAD", NotFound::Manifest(reference))
                    .await);
            }
        }
        let headers = response.headers();
        let digest =
            header_str(headers, "docker-content-digest").filter(|d| validate_digest(d).is_ok());
        let media_type = header_str(headers, header::CONTENT_TYPE.as_str());
        let size = header_str(headers, header::CONTENT_LENGTH.as_str())
            .and_then(|s| s.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size)) => Ok(Some(Descriptor {
                digest,
                media_type,
                size,
            })),
            _ => {
                tracing::debug!("HEAD {url} gave no digest; fetching the manifest instead");
                match self.get_manifest(reference).await {
                    Ok(m) => Ok(Some(Descriptor {
                        digest: m.digest,
                        media_type: m.media_type,
                        size: m.bytes.len() as u64,
                    })),
                    Err(RegistryError::ManifestUnknown { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Fetches a manifest (any of the four media types) by tag or digest. Fetched by digest,
    /// the bytes are verified against it.
    pub async fn get_manifest(&self, reference: &str) -> Result<Manifest, RegistryError> {
        let url = self.manifest_url(reference).await?;
        let scopes = [pull_scope(&self.inner.repository)];
        let call =
            Call::new(Method::GET, url.clone(), &scopes).header(header::ACCEPT, MANIFEST_ACCEPT);
        let response = self.send(call).await?;
        if response.status() != StatusCode::OK {
            return Err(self
                .status_error(response, "GET", NotFound::Manifest(reference))
                .await);
        }
        let header_type = header_str(response.headers(), header::CONTENT_TYPE.as_str());
        let header_digest = header_str(response.headers(), "docker-content-digest");
        let bytes = read_limited(response, MAX_MANIFEST_BYTES, url.as_str()).await?;
        let digest = if reference.contains(':') {
            let mut verifier = DigestVerifier::new(reference)?;
            verifier.update(&bytes);
            verifier.verify()?;
            reference.to_owned()
        } else {
            sha256_digest(&bytes)
        };
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:") && *h != digest) {
            tracing::warn!("{url}: Docker-Content-Digest {h} differs from the content's {digest}");
        }
        let media_type = header_type
            .filter(|t| t.starts_with("application/vnd.") || t.contains("+json"))
            .or_else(|| media_type_field(&bytes))
            .unwrap_or_else(|| "application/vnd.docker.distribution.manifest.v2+json".into());
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Uploads a manifest under `reference` (a tag, or its digest) and returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String, RegistryError> {
        let url = self.manifest_url(reference).await?;
        let scopes = [push_scope(&self.inner.repository)];
        let content_type = HeaderValue::from_str(media_type)
            .map_err(|_| RegistryError::InvalidReference(format!("media type {media_type:?}")))?;
        let digest = sha256_digest(&bytes);
        let mut call = Call::new(Method::PUT, url, &scopes);
        call.headers.push((header::CONTENT_TYPE, content_type));
        call.body = CallBody::Bytes(bytes);
        let response = self.send(call).await?;
        if !response.status().is_success() {
            return Err(self
                .status_error(response, "PUT", NotFound::Repository)
                .await);
        }
        Ok(digest)
    }

    // ---- blobs ---------------------------------------------------------------------------

    /// Whether the repository has the blob (`HEAD`).
    pub async fn blob_exists(&self, digest: &str) -> Result<bool, RegistryError> {
        validate_digest(digest).map_err(RegistryError::InvalidReference)?;
        let url = self.url(&format!("blobs/{digest}")).await?;
        let scopes = [pull_scope(&self.inner.repository)];
        let response = self.send(Call::new(Method::HEAD, url, &scopes)).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .status_error(response, "HEAD", NotFound::Blob(digest))
                .await),
        }
    }

    /// Streams a blob, verifying its digest as the bytes pass. A connection that breaks
    /// mid-blob is resumed with a `Range` request (or restarted, skipping what was already
    /// delivered, when the registry ignores ranges), up to the retry policy's attempts.
    pub async fn get_blob(&self, digest: &str) -> Result<BlobStream, RegistryError> {
        let verifier = DigestVerifier::new(digest)?;
        let url = self.url(&format!("blobs/{digest}")).await?;
        let mut state = BlobState {
            client: self.clone(),
            digest: digest.to_owned(),
            url,
            verifier,
            offset: 0,
            skip: 0,
            body: None,
            failures: 0,
            done: false,
        };
        // Open eagerly so a missing blob is an error of this call, not of the first chunk.
        state.open().await?;
        Ok(Box::pin(futures::stream::unfold(
            state,
            BlobState::next_chunk,
        )))
    }

    /// Fetches a small blob (a config) whole, verified. Fails beyond `max_bytes`.
    pub async fn get_blob_bytes(
        &self,
        digest: &str,
        max_bytes: usize,
    ) -> Result<Bytes, RegistryError> {
        let mut stream = self.get_blob(digest).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = stream.try_next().await? {
            if buf.len() + chunk.len() > max_bytes {
                return Err(RegistryError::InvalidResponse {
                    url: digest.to_owned(),
                    message: format!("blob larger than {max_bytes} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    }

    /// Downloads a blob to `path`, verified while streaming. The bytes go to `path.partial`
    /// first and are renamed into place only once verified, so a failure never leaves a file
    /// at `path`. Returns the size.
    pub async fn download_blob_to(&self, digest: &str, path: &Path) -> Result<u64, RegistryError> {
        self.download_blob_with_progress(digest, path, |_| {}).await
    }

    /// [`download_blob_to`](Self::download_blob_to), calling `on_bytes` with the size of each
    /// chunk as it is written (for progress displays).
    pub async fn download_blob_with_progress(
        &self,
        digest: &str,
        path: &Path,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<u64, RegistryError> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let result = async {
            let mut stream = self.get_blob(digest).await?;
            let file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| RegistryError::io(&partial, e))?;
            let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
            let mut size = 0u64;
            while let Some(chunk) = stream.try_next().await? {
                size += chunk.len() as u64;
                on_bytes(chunk.len() as u64);
                writer
                    .write_all(&chunk)
                    .await
                    .map_err(|e| RegistryError::io(&partial, e))?;
            }
            writer
                .flush()
                .await
                .map_err(|e| RegistryError::io(&partial, e))?;
            tokio::fs::rename(&partial, path)
                .await
                .map_err(|e| RegistryError::io(path, e))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// Asks the registry to mount `digest` from `from_repository` (same registry) instead of
    /// uploading it. `Ok(true)` when mounted; `Ok(false)` when the registry declined (upload it
    /// then).
    pub async fn mount_blob(
        &self,
        digest: &str,
        from_repository: &str,
    ) -> Result<bool, RegistryError> {
        validate_digest(digest).map_err(RegistryError::InvalidReference)?;
        validate_repository(from_repository).map_err(RegistryError::InvalidReference)?;
        let mut url = self.url("blobs/uploads/").await?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from_repository);
        let scopes = [
            push_scope(&self.inner.repository),
            pull_scope(from_repository),
        ];
        let response = self
            .send(Call::new(Method::POST, url.clone(), &scopes))
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // An upload session was opened instead; close it (best effort).
                if let Some(location) = location(&response, &url) {
                    let _ = self
                        .send(Call::new(Method::DELETE, location, &scopes))
                        .await;
                }
                Ok(false)
            }
            _ => Err(self
                .status_error(response, "POST", NotFound::Repository)
                .await),
        }
    }

    /// Uploads the file at `path` (`size` bytes) as blob `digest`: `POST` a session, then one
    /// monolithic `PUT` streaming the file. The registry verifies the digest.
    pub async fn upload_blob(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let content = BlobContent::File {
            path,
            offset: 0,
            size,
            verify: false,
        };
        self.upload(digest, &content).await
    }

    /// Uploads `len` bytes of the file at `path` from `offset` (a member of an uncompressed
    /// tarball, say) as blob `digest`, hashing them while they stream: bytes that do not have
    /// that digest are never completed on the wire (the registry keeps nothing) and the upload
    /// fails with [`RegistryError::DigestMismatch`], which is not retried.
    pub async fn upload_blob_range(
        &self,
        digest: &str,
        path: &Path,
        offset: u64,
        len: u64,
    ) -> Result<(), RegistryError> {
        let content = BlobContent::File {
            path,
            offset,
            size: len,
            verify: true,
        };
        self.upload(digest, &content).await
    }

    /// Uploads in-memory bytes (a config, a small layer) as blob `digest`.
    pub async fn upload_blob_bytes(&self, digest: &str, bytes: Bytes) -> Result<(), RegistryError> {
        self.upload(digest, &BlobContent::Bytes(bytes)).await
    }

    async fn upload(&self, digest: &str, content: &BlobContent<'_>) -> Result<(), RegistryError> {
        validate_digest(digest).map_err(RegistryError::InvalidReference)?;
        let scopes = [push_scope(&self.inner.repository)];
        let session = self.start_upload(&scopes).await?;
        let mut put_url = session.clone();
        put_url.query_pairs_mut().append_pair("digest", digest);
        let mut call = Call::new(Method::PUT, put_url, &scopes)
            .header(header::CONTENT_TYPE, "application/octet-stream");
        call.body = content.part(0, content.len(), digest);
        let response = self.send(call).await?;
        match response.status() {
            StatusCode::CREATED => Ok(()),
            // A proxy in front of the registry limits request bodies: send it in chunks.
            StatusCode::PAYLOAD_TOO_LARGE => {
                drop(response);
                tracing::info!(
                    "{}: monolithic upload of {digest} refused as too large; uploading in chunks",
                    self.inner.registry
                );
                self.upload_chunked(digest, content, &scopes).await
            }
            _ => Err(self
                .status_error(response, "PUT", NotFound::Repository)
                .await),
        }
    }

    /// `POST`s an upload session and returns its URL.
    async fn start_upload(&self, scopes: &[String]) -> Result<Url, RegistryError> {
        let start = self.url("blobs/uploads/").await?;
        let response = self
            .send(Call::new(Method::POST, start.clone(), scopes))
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self
                .status_error(response, "POST", NotFound::Repository)
                .await);
        }
        location(&response, &start).ok_or_else(|| RegistryError::InvalidResponse {
            url: start.to_string(),
            message: "upload session without a Location header".into(),
        })
    }

    /// A fresh session, `PATCH`es of at most a chunk (halved on `413`), then `PUT ?digest=`.
    async fn upload_chunked(
        &self,
        digest: &str,
        content: &BlobContent<'_>,
        scopes: &[String],
    ) -> Result<(), RegistryError> {
        // Parts are not verified one by one: check the whole range before sending any.
        if let BlobContent::File {
            path,
            offset,
            size,
            verify: true,
        } = content
        {
            verify_file_range(path, *offset, *size, digest).await?;
        }
        let mut session = self.start_upload(scopes).await?;
        let total = content.len();
        let mut chunk = FIRST_CHUNK_BYTES;
        let mut offset = 0u64;
        while offset < total {
            let len = chunk.min(total - offset);
            let mut call = Call::new(Method::PATCH, session.clone(), scopes)
                .header(header::CONTENT_TYPE, "application/octet-stream");
            let range = format!("{offset}-{}", offset + len - 1);
            call.headers.push((
                header::CONTENT_RANGE,
                HeaderValue::from_str(&range)
                    .map_err(|_| RegistryError::InvalidReference(range.clone()))?,
            ));
            call.body = content.part(offset, len, digest);
            let response = self.send(call).await?;
            match response.status() {
                StatusCode::ACCEPTED | StatusCode::NO_CONTENT => {
                    session = location(&response, &session).unwrap_or(session);
                    offset += len;
                }
                StatusCode::PAYLOAD_TOO_LARGE if chunk / 2 >= MIN_CHUNK_BYTES => chunk /= 2,
                _ => {
                    return Err(self
                        .status_error(response, "PATCH", NotFound::Repository)
                        .await);
                }
            }
        }
        let mut put_url = session;
        put_url.query_pairs_mut().append_pair("digest", digest);
        let mut call = Call::new(Method::PUT, put_url, scopes)
            .header(header::CONTENT_TYPE, "application/octet-stream");
        call.body = CallBody::Bytes(Bytes::new());
        let response = self.send(call).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .status_error(response, "PUT", NotFound::Repository)
                .await);
        }
        Ok(())
    }

    // ---- plumbing ------------------------------------------------------------------------

    async fn base(&self) -> Result<&Url, RegistryError> {
        self.inner
            .base
            .get_or_try_init(|| async {
                let host = &self.inner.registry;
                let parse = |scheme: &str| {
                    Url::parse(&format!("{scheme}://{host}/")).map_err(|e| {
                        RegistryError::InvalidConfig(format!("registry {host:?}: {e}"))
                    })
                };
                match self.inner.scheme {
                    SchemeChoice::Https => parse("https"),
                    SchemeChoice::Http => parse("http"),
                    SchemeChoice::HttpsThenHttp => {
                        let https = parse("https")?;
                        let probe = https.join("v2/").map_err(|e| {
                            RegistryError::InvalidConfig(format!("registry {host:?}: {e}"))
                        })?;
                        match self.inner.http.probe().get(probe).send().await {
                            Ok(_) => Ok(https),
                            // An https server with a certificate we do not trust: say so
                            // rather than speaking http to it.
                            Err(e) if http_tls::is_certificate_error(&e) => Ok(https),
                            Err(e) => {
                                tracing::debug!(
                                    "https://{host} does not answer ({}); using http",
                                    error_chain(&e)
                                );
                                parse("http")
                            }
                        }
                    }
                }
            })
            .await
    }

    /// `{base}/v2/{repository}/{rest}`.
    async fn url(&self, rest: &str) -> Result<Url, RegistryError> {
        let base = self.base().await?;
        base.join(&format!("v2/{}/{rest}", self.inner.repository))
            .map_err(|e| RegistryError::InvalidReference(format!("{rest:?}: {e}")))
    }

    async fn manifest_url(&self, reference: &str) -> Result<Url, RegistryError> {
        if reference.contains(':') {
            validate_digest(reference).map_err(RegistryError::InvalidReference)?;
        } else {
            crate::reference::validate_tag(reference).map_err(RegistryError::InvalidReference)?;
        }
        self.url(&format!("manifests/{reference}")).await
    }

    /// Sends a call with auth, manual redirects and retries; returns the final response,
    /// whatever its status (callers map statuses), except that an auth failure is
    /// [`RegistryError::Unauthorized`].
    async fn send(&self, call: Call<'_>) -> Result<reqwest::Response, RegistryError> {
        let base = self.base().await?.clone();
        let retry = self.inner.retry;
        let mut url = call.url.clone();
        let mut method = call.method.clone();
        let mut attempt = 1u32;
        let mut redirects = 0u32;
        let mut answered_challenge = false;
        loop {
            let own = url.origin() == base.origin();
            let mut request = self
                .inner
                .http
                .for_url(&url)
                .await?
                .request(method.clone(), url.clone());
            for (name, value) in &call.headers {
                request = request.header(name, value);
            }
            let mut used_epoch = 0;
            if own {
                let (auth, epoch) = self.auth_header(call.scopes).await?;
                used_epoch = epoch;
                if let Some(auth) = auth {
                    request = request.header(header::AUTHORIZATION, auth);
                }
            }
            let mismatch: Arc<Mutex<Option<RegistryError>>> = Arc::default();
            request = match &call.body {
                CallBody::Empty => request,
                CallBody::Bytes(bytes) => request.body(bytes.clone()),
                CallBody::File {
                    path,
                    offset,
                    len,
                    verify,
                } => {
                    let verifier = match verify {
                        Some(digest) => Some((DigestVerifier::new(digest)?, Arc::clone(&mismatch))),
                        None => None,
                    };
                    request
                        .header(header::CONTENT_LENGTH, *len)
                        .body(file_body(path, *offset, *len, verifier).await?)
                }
            };
            let sent = request.send().await;
            // The body was cut short because its bytes are not the blob's: final.
            if let Some(err) = mismatch.lock().ok().and_then(|mut m| m.take()) {
                return Err(err);
            }
            let response = match sent {
                Ok(r) => r,
                // A certificate the client does not trust stays untrusted: never retried.
                Err(e) if attempt < retry.max_attempts && !http_tls::is_certificate_error(&e) => {
                    tracing::warn!(
                        "{method} {url}: {} (attempt {attempt} of {}, retrying)",
                        error_chain(&e),
                        retry.max_attempts
                    );
                    tokio::time::sleep(retry.delay(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(RegistryError::transport(method.as_str(), url.as_str(), &e)),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && own {
                if answered_challenge {
                    return Err(self.unauthorized());
                }
                answered_challenge = true;
                self.answer_challenge(response.headers(), call.scopes, used_epoch)
                    .await?;
                continue;
            }
            if status.is_redirection()
                && let Some(next) = location(&response, &url)
            {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(RegistryError::InvalidResponse {
                        url: url.to_string(),
                        message: format!("more than {MAX_REDIRECTS} redirects"),
                    });
                }
                if status == StatusCode::SEE_OTHER
                    || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                        && method == Method::POST)
                {
                    method = Method::GET;
                }
                tracing::debug!("{url} redirects to {}", next.origin().ascii_serialization());
                url = next;
                continue;
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
            if retryable && attempt < retry.max_attempts {
                let wait = retry_after(response.headers())
                    .map_or(retry.delay(attempt), |d| d.min(retry.max_delay));
                tracing::warn!(
                    "{method} {url}: {status} (attempt {attempt} of {}, retrying in {wait:?})",
                    retry.max_attempts
                );
                drop(response);
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    fn unauthorized(&self) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.inner.registry.clone(),
            repository: self.inner.repository.clone(),
            user: self.inner.credentials.as_ref().map(|c| c.username.clone()),
        }
    }

    /// The challenge seen so far and the fresh cached token for `key`, if any.
    fn cached(&self, key: &str) -> (Option<Challenge>, Option<CachedToken>) {
        let state = self.lock_auth();
        let token = state
            .tokens
            .get(key)
            .filter(|t| Instant::now() < t.deadline)
            .cloned();
        (state.challenge.clone(), token)
    }

    /// The `Authorization` value for `scopes` under the challenge seen so far (fetching a
    /// token when needed), and the epoch of the token used (0 for none).
    async fn auth_header(&self, scopes: &[String]) -> Result<(Option<String>, u64), RegistryError> {
        let key = scopes.join(" ");
        let (challenge, cached) = self.cached(&key);
        match challenge {
            None => Ok((None, 0)),
            Some(Challenge::Basic) => Ok((
                self.inner
                    .credentials
                    .as_ref()
                    .map(Credentials::basic_header),
                0,
            )),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = match cached {
                    Some(token) => token,
                    None => {
                        let _gate = self.inner.token_gate.lock().await;
                        match self.cached(&key).1 {
                            Some(token) => token,
                            None => {
                                self.fetch_token(&realm, service.as_deref(), scopes, &key)
                                    .await?
                            }
                        }
                    }
                };
                Ok((
                    Some(format!("Bearer {}", token.token.expose())),
                    token.epoch,
                ))
            }
        }
    }

    /// Records a `401`'s challenge and makes sure credentials for `scopes` are ready; a
    /// token newer than `used_epoch` (fetched by a concurrent request) is reused.
    async fn answer_challenge(
        &self,
        headers: &HeaderMap,
        scopes: &[String],
        used_epoch: u64,
    ) -> Result<(), RegistryError> {
        let challenge = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            .min_by_key(|c| matches!(c, Challenge::Basic));
        let Some(challenge) = challenge else {
            return Err(self.unauthorized());
        };
        let _gate = self.inner.token_gate.lock().await;
        let key = scopes.join(" ");
        let newer_token = {
            let mut state = self.lock_auth();
            state.challenge = Some(challenge.clone());
            state
                .tokens
                .get(&key)
                .is_some_and(|t| t.epoch > used_epoch && Instant::now() < t.deadline)
        };
        match challenge {
            Challenge::Basic if self.inner.credentials.is_none() => Err(self.unauthorized()),
            Challenge::Basic => Ok(()),
            Challenge::Bearer { .. } if newer_token => Ok(()),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut scopes = scopes.to_vec();
                if let Some(scope) = scope.filter(|s| !scopes.contains(s)) {
                    scopes.push(scope);
                }
                self.fetch_token(&realm, service.as_deref(), &scopes, &key)
                    .await?;
                Ok(())
            }
        }
    }

    /// Asks the token endpoint for `scopes` and caches the answer under `cache_key`.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cache_key: &str,
    ) -> Result<CachedToken, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| RegistryError::InvalidResponse {
            url: self.inner.registry.clone(),
            message: format!("token realm {realm:?}: {e}"),
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
            if let Some(c) = &self.inner.credentials {
                query.append_pair("account", &c.username);
            }
        }
        let retry = self.inner.retry;
        let mut attempt = 1;
        let response = loop {
            let mut request = self.inner.http.for_url(&url).await?.get(url.clone());
            if let Some(c) = &self.inner.credentials {
                request = request.header(header::AUTHORIZATION, c.basic_header());
            }
            let outcome = request.send().await;
            let retryable = match &outcome {
                Ok(r) => {
                    r.status() == StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error()
                }
                Err(e) => !http_tls::is_certificate_error(e),
            };
            if retryable && attempt < retry.max_attempts {
                tokio::time::sleep(retry.delay(attempt)).await;
                attempt += 1;
                continue;
            }
            break outcome.map_err(|e| RegistryError::transport("GET", url.as_str(), &e))?;
        };
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.unauthorized()),
            status => {
                return Err(RegistryError::UnexpectedStatus {
                    method: "GET".into(),
                    url: url.to_string(),
                    status,
                    detail: "token request failed".into(),
                });
            }
        }
        let bytes = read_limited(response, 1024 * 1024, url.as_str()).await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidResponse {
                url: url.to_string(),
                message: format!("token response: {e}"),
            })?;
        // Refresh a little before expiry; the spec's default lifetime is 60 s.
        let lifetime = parsed.expires_in.unwrap_or(60).max(10);
        let deadline = Instant::now() + Duration::from_secs(lifetime - lifetime / 6);
        let token = parsed
            .into_token()
            .ok_or_else(|| RegistryError::InvalidResponse {
                url: url.to_string(),
                message: "token response without a token".into(),
            })?;
        let mut state = self.lock_auth();
        state.epoch += 1;
        let cached = CachedToken {
            token,
            deadline,
            epoch: state.epoch,
        };
        state.tokens.insert(cache_key.to_owned(), cached.clone());
        Ok(cached)
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // The state is a cache: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Turns an unexpected response into the most specific error.
    async fn status_error(
        &self,
        response: reqwest::Response,
        method: &str,
        not_found: NotFound<'_>,
    ) -> RegistryError {
        let status = response.status();
        let url = response.url().to_string();
        let body = read_limited(response, 64 * 1024, &url)
            .await
            .unwrap_or_default();
        let errors = registry_errors(&body);
        let code = errors.first().map(|(code, _)| code.as_str()).unwrap_or("");
        let inner = &self.inner;
        match status {
            StatusCode::UNAUTHORIZED => self.unauthorized(),
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: inner.registry.clone(),
                repository: inner.repository.clone(),
            },
            StatusCode::NOT_FOUND => match (code, not_found) {
                ("NAME_UNKNOWN", _) | (_, NotFound::Repository) => {
                    RegistryError::RepositoryNotFound {
                        registry: inner.registry.clone(),
                        repository: inner.repository.clone(),
                    }
                }
                (_, NotFound::Manifest(reference)) => RegistryError::ManifestUnknown {
                    repository: inner.repository.clone(),
                    reference: reference.to_owned(),
                },
                (_, NotFound::Blob(digest)) => RegistryError::BlobUnknown {
                    repository: inner.repository.clone(),
                    digest: digest.to_owned(),
                },
            },
            _ => RegistryError::UnexpectedStatus {
                method: method.to_owned(),
                url,
                status,
                detail: errors
                    .iter()
                    .map(|(code, message)| format!("{code}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        }
    }
}

#[derive(Clone, Copy)]
enum NotFound<'a> {
    Repository,
    Manifest(&'a str),
    Blob(&'a str),
}

/// The reqwest clients behind every request, picked by the URL's scheme. An `http` URL goes
/// through a client built without root certificates; an `https` URL through one trusting the
/// system and webpki roots plus `ca_certs` (`insecure`: no certificate checks), built on the
/// first https request. Reading the system roots costs more than a whole `check` against a
/// plain-http registry, which never needs them. Clones share both clients.
#[derive(Clone)]
struct Clients(Arc<ClientsInner>);

struct ClientsInner {
    plain: reqwest::Client,
    tls: tokio::sync::OnceCell<reqwest::Client>,
    ca_certs: Vec<String>,
    insecure: bool,
    user_agent: String,
}

impl Clients {
    /// Checks `ca_certs` at once (a bad entry is a configuration error before anything is
    /// sent) and builds the plain client; the TLS client waits for its first https URL.
    fn new(ca_certs: &[String], insecure: bool, user_agent: &str) -> Result<Self, RegistryError> {
        // Parsed again when the TLS client is built: microseconds, and only with ca_certs.
        let _checked = http_tls::trust_ca_certs(reqwest::Client::builder(), ca_certs)
            .map_err(|e| RegistryError::InvalidConfig(e.to_string()))?;
        let plain = http_builder(insecure, user_agent)
            .tls_built_in_root_certs(false)
            .build()
            .map_err(|e| RegistryError::InvalidConfig(error_chain(&e)))?;
        Ok(Self(Arc::new(ClientsInner {
            plain,
            tls: tokio::sync::OnceCell::new(),
            ca_certs: ca_certs.to_vec(),
            insecure,
            user_agent: user_agent.to_owned(),
        })))
    }

    /// The client for `url`: anything but `https` (redirects may lead anywhere) goes through
    /// the plain client, which cannot verify a certificate, so https never does.
    async fn for_url(&self, url: &Url) -> Result<&reqwest::Client, RegistryError> {
        let inner = &*self.0;
        if url.scheme() != "https" {
            return Ok(&inner.plain);
        }
        inner
            .tls
            .get_or_try_init(|| async {
                let builder = http_builder(inner.insecure, &inner.user_agent);
                http_tls::trust_ca_certs(builder, &inner.ca_certs)
                    .map_err(|e| RegistryError::InvalidConfig(e.to_string()))?
                    .build()
                    .map_err(|e| RegistryError::InvalidConfig(error_chain(&e)))
            })
            .await
    }

    /// The client that asks whether a host speaks https at all. It needs no roots: a TLS
    /// server fails it with a certificate error (or accepts it, for `insecure`), which means
    /// https just as a trusted answer would, and anything else fails it before the
    /// certificate is looked at, as it would the TLS client.
    fn probe(&self) -> &reqwest::Client {
        &self.0.plain
    }
}

/// Settings both clients share: no automatic redirects, our timeouts and user agent.
fn http_builder(insecure: bool, user_agent: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .danger_accept_invalid_certs(insecure)
}

/// Anonymous `GET`s of JSON APIs that sit next to registries (Docker Hub's listing API), with
/// the same TLS settings and retries as [`RegistryClient`]. It never sends credentials, and
/// follows redirects only to the same origin.
#[derive(Clone)]
pub struct HttpTransport {
    http: Clients,
    retry: RetryPolicy,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport trusting `ca_certs` besides the system roots (`insecure`: no certificate
    /// checks).
    pub fn new(
        ca_certs: &[String],
        insecure: bool,
        retry: RetryPolicy,
        user_agent: &str,
    ) -> Result<Self, RegistryError> {
        Ok(Self {
            http: Clients::new(ca_certs, insecure, user_agent)?,
            retry,
        })
    }

    /// `GET url` with `Accept: application/json`, retrying `429`, `5xx` and connection
    /// failures. Returns the final response whatever its status.
    pub async fn get(&self, url: &Url) -> Result<reqwest::Response, RegistryError> {
        let mut url = url.clone();
        let mut attempt = 1;
        let mut redirects = 0;
        loop {
            let outcome = self
                .http
                .for_url(&url)
                .await?
                .get(url.clone())
                .header(header::ACCEPT, "application/json")
                .send()
                .await;
            let response = match outcome {
                Ok(r) => r,
                Err(e)
                    if attempt < self.retry.max_attempts && !http_tls::is_certificate_error(&e) =>
                {
                    tracing::warn!("GET {url}: {} (retrying)", error_chain(&e));
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(RegistryError::transport("GET", url.as_str(), &e)),
            };
            let status = response.status();
            if status.is_redirection()
                && redirects < MAX_REDIRECTS
                && let Some(next) = location(&response, &url).filter(|n| n.origin() == url.origin())
            {
                redirects += 1;
                url = next;
                continue;
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && attempt < self.retry.max_attempts {
                let wait = retry_after(response.headers())
                    .map_or(self.retry.delay(attempt), |d| d.min(self.retry.max_delay));
                tracing::warn!("GET {url}: {status} (retrying in {wait:?})");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }
}

/// Reads a response body up to `limit` bytes (an error beyond); `url` labels errors.
pub async fn read_body(
    response: reqwest::Response,
    limit: usize,
    url: &str,
) -> Result<Bytes, RegistryError> {
    read_limited(response, limit, url).await
}

/// Reads tag pages one at a time; see [`RegistryClient::tag_pages`].
#[derive(Debug)]
pub struct TagPages {
    client: RegistryClient,
    next: Option<Url>,
    scopes: Vec<String>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl TagPages {
    /// The next page of tags, or `None` after the last page.
    pub async fn next_page(&mut self) -> Result<Option<Vec<String>>, RegistryError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let client = &self.client;
        let response = client
            .send(Call::new(Method::GET, url.clone(), &self.scopes))
            .await?;
        if response.status() != StatusCode::OK {
            return Err(client
                .status_error(response, "GET", NotFound::Repository)
                .await);
        }
        let request_url = response.url().clone();
        let next = response
            .headers()
            .get_all(header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link)
            .and_then(|link| request_url.join(&link).ok())
            .filter(|next| *next != url);
        let bytes = read_limited(response, 64 * 1024 * 1024, url.as_str()).await?;
        let list: TagList =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidResponse {
                url: url.to_string(),
                message: format!("tags/list: {e}"),
            })?;
        self.next = next;
        Ok(Some(list.tags.unwrap_or_default()))
    }
}

/// The target of `rel="next"` in a `Link` header value, if any.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.to_owned())
    })
}

struct BlobState {
    client: RegistryClient,
    digest: String,
    url: Url,
    verifier: DigestVerifier,
    /// Bytes delivered (and hashed) so far.
    offset: u64,
    /// Bytes to drop from the current body (a restart the registry did not let us resume).
    skip: u64,
    body: Option<Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>>,
    failures: u32,
    done: bool,
}

impl BlobState {
    async fn open(&mut self) -> Result<(), RegistryError> {
        let scopes = [pull_scope(self.client.repository())];
        let mut call = Call::new(Method::GET, self.url.clone(), &scopes);
        if self.offset > 0 {
            call.headers.push((
                header::RANGE,
                HeaderValue::from_str(&format!("bytes={}-", self.offset))
                    .map_err(|_| RegistryError::InvalidReference("range".into()))?,
            ));
        }
        let response = self.client.send(call).await?;
        self.skip = match response.status() {
            StatusCode::OK => self.offset,
            StatusCode::PARTIAL_CONTENT if self.offset > 0 => 0,
            _ => {
                return Err(self
                    .client
                    .status_error(response, "GET", NotFound::Blob(&self.digest))
                    .await);
            }
        };
        self.body = Some(Box::pin(response.bytes_stream()));
        Ok(())
    }

    async fn next_chunk(mut self) -> Option<(Result<Bytes, RegistryError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if self.body.is_none()
                && let Err(e) = self.open().await
            {
                self.done = true;
                return Some((Err(e), self));
            }
            let next = match self.body.as_mut() {
                Some(body) => body.next().await,
                None => None,
            };
            match next {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let drop_len = self.skip.min(chunk.len() as u64);
                        self.skip -= drop_len;
                        chunk = chunk.slice(drop_len as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    self.verifier.update(&chunk);
                    self.offset += chunk.len() as u64;
                    return Some((Ok(chunk), self));
                }
                Some(Err(e)) => {
                    self.failures += 1;
                    self.body = None;
                    let retry = self.client.inner.retry;
                    if self.failures >= retry.max_attempts {
                        self.done = true;
                        let err = RegistryError::transport("GET", self.url.as_str(), &e);
                        return Some((Err(err), self));
                    }
                    tracing::warn!(
                        "blob {}: connection broke after {} bytes ({}); resuming",
                        self.digest,
                        self.offset,
                        error_chain(&e)
                    );
                    tokio::time::sleep(retry.delay(self.failures)).await;
                }
                None => {
                    self.done = true;
                    if self.skip > 0 {
                        let err = RegistryError::InvalidResponse {
                            url: self.url.to_string(),
                            message: "blob shorter on retry than before".into(),
                        };
                        return Some((Err(err), self));
                    }
                    return match self.verifier.verify() {
                        Ok(()) => None,
                        Err(e) => Some((Err(e), self)),
                    };
                }
            }
        }
    }
}

/// Where a verifying body reports that its bytes are not the blob's.
type MismatchSlot = Arc<Mutex<Option<RegistryError>>>;

/// A streaming body of `len` bytes of `path` from `offset`. With a verifier, the bytes are
/// hashed as they go and the last chunk is only yielded when the digest matches; otherwise
/// the stream fails there (so the request never completes) after putting the mismatch in
/// the slot. A file shorter than `len` fails the stream too.
async fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    verifier: Option<(DigestVerifier, MismatchSlot)>,
) -> Result<reqwest::Body, RegistryError> {
    use tokio::io::AsyncReadExt;
    let file = open_range(path, offset, len).await?;
    struct State {
        file: tokio::io::Take<tokio::fs::File>,
        left: u64,
        verifier: Option<(DigestVerifier, MismatchSlot)>,
        done: bool,
    }
    let state = State {
        file,
        left: len,
        verifier,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let mut buf = vec![0u8; 256 * 1024];
        let n = if state.left == 0 {
            0
        } else {
            match state.file.read(&mut buf).await {
                Ok(0) => {
                    state.done = true;
                    let err = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("file ends {} bytes short", state.left),
                    );
                    return Some((Err(err), state));
                }
                Ok(n) => n,
                Err(e) => {
                    state.done = true;
                    return Some((Err(e), state));
                }
            }
        };
        buf.truncate(n);
        state.left -= n as u64;
        if state.left == 0 {
            state.done = true;
            if let Some((verifier, slot)) = &mut state.verifier {
                verifier.update(&buf);
                if let Err(err) = verifier.verify() {
                    if let Ok(mut slot) = slot.lock() {
                        *slot = Some(err);
                    }
                    let err = std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "content does not match its digest",
                    );
                    return Some((Err(err), state));
                }
            }
            if n == 0 {
                return None;
            }
        } else if let Some((verifier, _)) = &mut state.verifier {
            verifier.update(&buf);
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(buf)), state))
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// `len` bytes of `path` from `offset`, as a reader.
async fn open_range(
    path: &Path,
    offset: u64,
    len: u64,
) -> Result<tokio::io::Take<tokio::fs::File>, RegistryError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| RegistryError::io(path, e))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| RegistryError::io(path, e))?;
    Ok(file.take(len))
}

/// Hashes `len` bytes of `path` from `offset` and checks them against `digest`.
async fn verify_file_range(
    path: &Path,
    offset: u64,
    len: u64,
    digest: &str,
) -> Result<(), RegistryError> {
    use tokio::io::AsyncReadExt;
    let mut verifier = DigestVerifier::new(digest)?;
    let mut file = open_range(path, offset, len).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| RegistryError::io(path, e))?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]);
    }
    verifier.verify()
}

async fn read_limited(
    response: reqwest::Response,
    limit: usize,
    url: &str,
) -> Result<Bytes, RegistryError> {
    let mut stream = response.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::transport("GET", url, &e))?;
        if buf.len() + chunk.len() > limit {
            return Err(RegistryError::InvalidResponse {
                url: url.to_owned(),
                message: format!("response larger than {limit} bytes"),
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn location(response: &reqwest::Response, base: &Url) -> Option<Url> {
    let value = response.headers().get(header::LOCATION)?.to_str().ok()?;
    base.join(value).ok()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = header_str(headers, header::RETRY_AFTER.as_str())?
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

fn media_type_field(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes).ok()?.media_type
}

/// `(code, message)` pairs of a distribution error body `{"errors":[{"code","message"}]}`.
fn registry_errors(body: &[u8]) -> Vec<(String, String)> {
    #[derive(Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.errors.into_iter().map(|e| (e.code, e.message)).collect())
        .unwrap_or_default()
}

/// Whether `host` (with optional port) is loopback, `localhost` or in a private range, where
/// registries commonly run without TLS.
pub fn is_local_or_private(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    if bare.eq_ignore_ascii_case("localhost") || bare.ends_with(".localhost") {
        return true;
    }
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_next_links() {
        let cases = [
            (
                r#"</v2/app/tags/list?last=b&n=2>; rel="next""#,
                Some("/v2/app/tags/list?last=b&n=2"),
            ),
            (
                r#"<https://h/v2/x?n=1>;rel=next"#,
                Some("https://h/v2/x?n=1"),
            ),
            (r#"<a>; rel="prev", <b>; rel="next""#, Some("b")),
            (r#"<a>; rel="prev""#, None),
            ("", None),
            ("garbage", None),
        ];
        for (header, expect) in cases {
            assert_eq!(next_link(header).as_deref(), expect, "{header}");
        }
    }

    #[test]
    fn classifies_hosts() {
        let cases = [
            ("127.0.0.1:5000", true),
            ("localhost", true),
            ("localhost:5000", true),
            ("10.1.2.3", true),
            ("172.16.0.1:443", true),
            ("192.168.1.1", true),
            ("[::1]:5000", true),
            ("[fd00::1]", true),
            ("ghcr.io", false),
            ("8.8.8.8:5000", false),
            ("registry-1.docker.io", false),
        ];
        for (host, expect) in cases {
            assert_eq!(is_local_or_private(host), expect, "{host}");
        }
    }

    #[test]
    fn backs_off_exponentially() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        let delays: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn parses_registry_errors() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            registry_errors(body),
            [("MANIFEST_UNKNOWN".to_owned(), "manifest unknown".to_owned())]
        );
        assert!(registry_errors(b"<html>").is_empty());
    }

    #[test]
    fn rejects_bad_config() {
        let mut config = ClientConfig::new("127.0.0.1:5000", "app");
        config.ca_certs = vec!["not a pem".into()];
        let err = RegistryClient::new(config).unwrap_err().to_string();
        assert!(err.contains("ca_certs[0]"), "{err}");
        let err = RegistryClient::new(ClientConfig::new("h.io", "Bad"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid repository name"), "{err}");
        let client =
            RegistryClient::new(ClientConfig::new("index.docker.io", "library/x")).unwrap();
        assert_eq!(client.registry(), "registry-1.docker.io");
    }

    /// A plain-http registry (named with or without the scheme, so with and without the https
    /// probe) never builds the TLS client, so the system roots are never read; the first https
    /// URL builds it once for the client and every clone.
    #[tokio::test]
    async fn builds_the_tls_client_only_for_https() {
        let fx = testbed::fixtures::distribution::DistributionFixture::start();
        fx.add_tags("app", &["1.0"]);
        for registry in [fx.host(), format!("http://{}", fx.host())] {
            let mut config = ClientConfig::new(&registry, "app");
            config.retry = RetryPolicy::fast();
            let client = RegistryClient::new(config).unwrap();
            assert_eq!(client.list_tags(10, 1).await.unwrap(), ["1.0"]);
            assert!(client.head_manifest("1.0").await.unwrap().is_some());
            let tls = &client.inner.http.0.tls;
            assert!(!tls.initialized(), "{registry}: TLS client built for http");
            let other = client.for_repository("other").unwrap();
            let http = Url::parse(&fx.base_url()).unwrap();
            other.inner.http.for_url(&http).await.unwrap();
            assert!(!tls.initialized(), "{registry}");
            let https = Url::parse("https://127.0.0.1:1/").unwrap();
            other.inner.http.for_url(&https).await.unwrap();
            assert!(tls.initialized(), "{registry}: shared with for_repository");
        }
    }
}
