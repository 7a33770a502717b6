//! The HTTP side of a binary cache: one `reqwest` client with the source's TLS settings,
//! credentials sent only to the cache's own origin, and retries with backoff for idempotent
//! requests (connection errors, 429, 5xx).

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use resource_protocol::{InvalidRequest, Secret};

use crate::config::Source;

/// How many times an idempotent request is tried.
const ATTEMPTS: u32 = 4;

/// Credentials for the cache's origin.
#[derive(Clone, Debug)]
enum Auth {
    None,
    Basic(String, Option<Secret>),
    Bearer(Secret),
}

/// A client bound to one cache base URL.
#[derive(Clone, Debug)]
pub struct CacheClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
}

impl CacheClient {
    /// A client for `source.url` with its credentials and TLS settings.
    pub fn new(source: &Source) -> anyhow::Result<Self> {
        let mut base_text = source.url.trim().to_owned();
        if !base_text.ends_with('/') {
            base_text.push('/');
        }
        let base =
            Url::parse(&base_text).map_err(|e| InvalidRequest::new(format!("source.url: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(InvalidRequest::new("source.url: must be http:// or https://").into());
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("tributary-nix-cache/", env!("CARGO_PKG_VERSION")))
            // Loading the system's roots costs tens of milliseconds; plain http needs none.
            .tls_built_in_root_certs(base.scheme() == "https");
        let mut builder = http_tls::trust_ca_certs(builder, &source.ca_certs)
            .map_err(|e| InvalidRequest::new(format!("source.{e}")))?;
        if source.insecure == Some(true) {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let auth = match (&source.token, &source.username) {
            (Some(token), _) if !token.is_empty() => Auth::Bearer(token.clone()),
            (_, Some(user)) if !user.is_empty() => {
                Auth::Basic(user.clone(), source.password.clone())
            }
            _ => Auth::None,
        };
        Ok(Self {
            http: builder.build().context("cannot build the http client")?,
            base,
            auth,
        })
    }

    /// The cache base URL (ending in `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Resolves `rel` against the base URL; refuses to leave it when `rel` is relative.
    pub fn url(&self, rel: &str) -> anyhow::Result<Url> {
        self.base
            .join(rel)
            .with_context(|| format!("cannot resolve {rel:?} against the cache url"))
    }

    /// A request with credentials when `url` is on the cache's origin.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let same_origin = url.origin() == self.base.origin();
        let builder = self.http.request(method, url);
        match (&self.auth, same_origin) {
            (Auth::Basic(user, pass), true) => {
                builder.basic_auth(user, pass.as_ref().map(Secret::expose))
            }
            (Auth::Bearer(token), true) => builder.bearer_auth(token.expose()),
            _ => builder,
        }
    }

    /// Sends a request built by `make` (called once per attempt), retrying on transient
    /// failures. The final response may still be an error status: callers decide.
    pub async fn send_retrying(
        &self,
        what: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> anyhow::Result<Response> {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let outcome = make().send().await;
            let retry = match &outcome {
                Ok(r) => {
                    r.status() == StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error()
                }
                Err(e) => {
                    (e.is_connect() || e.is_timeout() || e.is_request())
                        && !http_tls::is_certificate_error(e)
                }
            };
            if !retry || attempt == ATTEMPTS {
                return outcome.with_context(|| format!("{what}: request failed"));
            }
            tracing::debug!("{what}: retrying after a transient failure");
            tokio::time::sleep(delay).await;
            delay *= 3;
        }
        bail!("{what}: no attempt made")
    }

    /// GETs `rel` as text; `None` on 404/403 (S3 answers 403 for missing keys).
    pub async fn get_text(&self, rel: &str) -> anyhow::Result<Option<String>> {
        let url = self.url(rel)?;
        let response = self
            .send_retrying(&format!("GET {rel}"), || {
                self.request(Method::GET, url.clone())
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE => Ok(None),
            s if s.is_success() => Ok(Some(
                response
                    .text()
                    .await
                    .with_context(|| format!("GET {rel}: reading the body"))?,
            )),
            s => Err(status_error("GET", rel, s)),
        }
    }

    /// Whether `rel` exists (HEAD).
    pub async fn exists(&self, rel: &str) -> anyhow::Result<bool> {
        let url = self.url(rel)?;
        let response = self
            .send_retrying(&format!("HEAD {rel}"), || {
                self.request(Method::HEAD, url.clone())
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(status_error("HEAD", rel, s)),
        }
    }

    /// PUTs a small in-memory body (retried).
    pub async fn put_bytes(
        &self,
        rel: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<()> {
        let url = self.url(rel)?;
        let response = self
            .send_retrying(&format!("PUT {rel}"), || {
                self.request(Method::PUT, url.clone())
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body.clone())
            })
            .await?;
        check_success("PUT", rel, response).await
    }

    /// PUTs a streamed body (not retried: a stream cannot be replayed).
    pub async fn put_stream(
        &self,
        rel: &str,
        body: reqwest::Body,
        content_type: &str,
    ) -> anyhow::Result<()> {
        let url = self.url(rel)?;
        let response = self
            .request(Method::PUT, url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("PUT {rel}: upload failed"))?;
        check_success("PUT", rel, response).await
    }
}

/// A non-2xx answer: the status is kept so callers can tell transient failures apart.
#[derive(Debug, thiserror::Error)]
#[error("{method} {rel}: server answered {status}{detail}")]
pub struct StatusError {
    method: String,
    rel: String,
    /// The HTTP status.
    pub status: StatusCode,
    detail: String,
}

/// Turns a non-2xx response into an error carrying a little of its body.
pub async fn check_success(method: &str, rel: &str, response: Response) -> anyhow::Result<()> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.trim().chars().take(300).collect();
    Err(StatusError {
        method: method.to_owned(),
        rel: rel.to_owned(),
        status,
        detail: if body.is_empty() {
            String::new()
        } else {
            format!(": {}", body.replace(['\n', '\r'], " "))
        },
    }
    .into())
}

/// The error for an unexpected status (no body read).
pub fn status_error(method: &str, rel: &str, status: StatusCode) -> anyhow::Error {
    StatusError {
        method: method.to_owned(),
        rel: rel.to_owned(),
        status,
        detail: if status == StatusCode::UNAUTHORIZED {
            ": check source.username/password or source.token".to_owned()
        } else {
            String::new()
        },
    }
    .into()
}

/// Whether `err` is worth retrying: a connection failure, a timeout, 429 or 5xx.
pub fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<StatusError>() {
            e.status == StatusCode::TOO_MANY_REQUESTS || e.status.is_server_error()
        } else if let Some(e) = cause.downcast_ref::<reqwest::Error>() {
            transient_reqwest(e)
        } else if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            // A download cut short reaches the decoder as an io::Error wrapping reqwest's.
            e.get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                .is_some_and(transient_reqwest)
        } else {
            false
        }
    })
}

fn transient_reqwest(e: &reqwest::Error) -> bool {
    (e.is_connect() || e.is_timeout() || e.is_body() || e.is_request() || e.is_decode())
        && !http_tls::is_certificate_error(e)
}

/// Runs `attempt` until it succeeds, fails for good, or [`ATTEMPTS`] tries are used up; for
/// whole streamed transfers, which `send_retrying` cannot replay.
pub async fn retry_transient<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(300);
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS && is_transient(&e) => {
                tracing::warn!("{what}: retrying after {e:#}");
                tokio::time::sleep(delay).await;
                delay *= 3;
                tries += 1;
            }
            other => return other,
        }
    }
}
