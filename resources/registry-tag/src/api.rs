//! The two listing APIs behind one interface: Docker Hub's repository API (`next` links in
//! the JSON, newest first) and the OCI distribution API (`Link` headers, through the shared
//! `registry-client`). Both hand tags over page by page; both resolve a tag to a digest.

use std::time::Duration;

use registry_client::{
    ClientConfig, HttpTransport, RegistryClient, RegistryError, RetryPolicy, StatusCode, Url,
    read_body,
};
use serde::Deserialize;

use crate::config::{Api, PlatformChoice, Settings, Source};
use crate::select::ListingOrder;

/// A Hub page is about 1 KB per tag; 100 tags per page fit far below this.
const MAX_HUB_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Where tags come from.
pub enum TagApi {
    /// Docker Hub's listing API.
    Hub {
        /// The repository API URL.
        repository_url: Url,
        /// HTTP with our TLS settings and retries.
        transport: HttpTransport,
    },
    /// A registry.
    Registry(RegistryClient),
}

/// A failure talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the registry client.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Docker Hub said no.
    #[error("docker hub: GET {url}: {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Hub {
        /// The URL asked.
        url: String,
        /// Its status.
        status: StatusCode,
        /// Hub's `message`, if any.
        message: Option<String>,
    },
    /// An answer that does not have the documented shape.
    #[error("docker hub: GET {url}: unexpected answer: {message}")]
    HubShape {
        /// The URL asked.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The tag is not (or no longer) there.
    #[error("tag {tag:?} not found in {repository}")]
    TagNotFound {
        /// The tag.
        tag: String,
        /// Where we looked.
        repository: String,
    },
    /// The tag has no image for the platform.
    #[error("tag {tag:?} has no {platform} image (it has: {available})")]
    NoPlatform {
        /// The tag.
        tag: String,
        /// The platform asked for.
        platform: String,
        /// The platforms it has.
        available: String,
    },
}

#[derive(Deserialize)]
struct HubPage {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    results: Vec<HubTagName>,
}

#[derive(Deserialize)]
struct HubTagName {
    name: String,
}

#[derive(Deserialize)]
struct HubTag {
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    images: Vec<HubImage>,
}

#[derive(Deserialize)]
struct HubImage {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct HubMessage {
    #[serde(default)]
    message: Option<String>,
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy::from_env()
}

fn user_agent() -> String {
    format!("tributary-registry-tag/{}", env!("CARGO_PKG_VERSION"))
}

impl TagApi {
    /// The API `settings` name, with `source`'s credentials and TLS settings.
    pub fn new(source: &Source, settings: &Settings) -> Result<Self, ApiError> {
        let insecure = source.insecure.unwrap_or(false);
        match &settings.api {
            Api::Hub { repository_url } => Ok(Self::Hub {
                repository_url: repository_url.clone(),
                transport: HttpTransport::new(
                    &source.ca_certs,
                    insecure,
                    retry_policy(),
                    &user_agent(),
                )?,
            }),
            Api::Registry {
                registry,
                repository,
            } => {
                let mut config = ClientConfig::new(registry.clone(), repository.clone());
                config.username = source.username.clone().filter(|u| !u.is_empty());
                config.password = source.password.clone();
                config.insecure = insecure;
                config.ca_certs = source.ca_certs.clone();
                config.retry = retry_policy();
                config.user_agent = user_agent();
                Ok(Self::Registry(RegistryClient::new(config)?))
            }
        }
    }

    /// How this API orders its listing.
    pub fn order(&self) -> ListingOrder {
        match self {
            Self::Hub { .. } => ListingOrder::NewestFirst,
            Self::Registry(_) => ListingOrder::Registry,
        }
    }

    /// Reads up to `pages` pages of `per_page` tags, handing each page to `on_page`.
    pub async fn list(
        &self,
        pages: u32,
        per_page: u32,
        mut on_page: impl FnMut(Vec<String>),
    ) -> Result<(), ApiError> {
        match self {
            Self::Registry(client) => {
                let mut reader = client.tag_pages(per_page).await?;
                for _ in 0..pages {
                    match reader.next_page().await? {
                        Some(page) => on_page(page),
                        None => break,
                    }
                }
                Ok(())
            }
            Self::Hub {
                repository_url,
                transport,
            } => {
                let mut url = join(repository_url, "tags");
                url.query_pairs_mut()
                    .append_pair("page_size", &per_page.to_string());
                let mut next = Some(url);
                for page_number in 0..pages {
                    let Some(url) = next.take() else { break };
                    let response = transport.get(&url).await?;
                    let status = response.status();
                    // Hub answers 404 for a page past the end (tags deleted meanwhile).
                    if status == StatusCode::NOT_FOUND && page_number > 0 {
                        break;
                    }
                    let body = read_body(response, MAX_HUB_PAGE_BYTES, url.as_str()).await?;
                    if status != StatusCode::OK {
                        return Err(hub_error(&url, status, &body));
                    }
                    let page: HubPage =
                        serde_json::from_slice(&body).map_err(|e| ApiError::HubShape {
                            url: url.to_string(),
                            message: e.to_string(),
                        })?;
                    next = match page.next.as_deref().filter(|n| !n.is_empty()) {
                        Some(n) => Some(url.join(n).map_err(|e| ApiError::HubShape {
                            url: url.to_string(),
                            message: format!("next {n:?}: {e}"),
                        })?),
                        None => None,
                    };
                    on_page(page.results.into_iter().map(|t| t.name).collect());
                }
                Ok(())
            }
        }
    }

    /// The digest `in` reports for `tag`: the registry's manifest digest (the index for
    /// multi-arch images), or on Hub the digest of the tag's image for `platform`.
    pub async fn digest(&self, tag: &str, platform: &PlatformChoice) -> Result<String, ApiError> {
        match self {
            Self::Registry(client) => match client.head_manifest(tag).await? {
                Some(descriptor) => Ok(descriptor.digest),
                None => Err(ApiError::TagNotFound {
                    tag: tag.to_owned(),
                    repository: format!("{}/{}", client.registry(), client.repository()),
                }),
            },
            Self::Hub {
                repository_url,
                transport,
            } => {
                let url = join(repository_url, &format!("tags/{tag}"));
                let response = transport.get(&url).await?;
                let status = response.status();
                let body = read_body(response, MAX_HUB_PAGE_BYTES, url.as_str()).await?;
                if status == StatusCode::NOT_FOUND {
                    return Err(ApiError::TagNotFound {
                        tag: tag.to_owned(),
                        repository: repository_url.to_string(),
                    });
                }
                if status != StatusCode::OK {
                    return Err(hub_error(&url, status, &body));
                }
                let parsed: HubTag =
                    serde_json::from_slice(&body).map_err(|e| ApiError::HubShape {
                        url: url.to_string(),
                        message: e.to_string(),
                    })?;
                pick_platform(tag, &parsed, platform)
            }
        }
    }
}

fn pick_platform(
    tag: &str,
    parsed: &HubTag,
    platform: &PlatformChoice,
) -> Result<String, ApiError> {
    if parsed.images.is_empty() {
        return parsed.digest.clone().ok_or_else(|| ApiError::NoPlatform {
            tag: tag.to_owned(),
            platform: describe(platform),
            available: "no images".into(),
        });
    }
    let found = parsed.images.iter().find(|i| {
        i.os.as_deref() == Some(platform.os.as_str())
            && i.architecture.as_deref() == Some(platform.architecture.as_str())
            && (platform.variant.is_none() || i.variant == platform.variant)
    });
    match found.and_then(|i| i.digest.clone()) {
        Some(digest) => Ok(digest),
        None => Err(ApiError::NoPlatform {
            tag: tag.to_owned(),
            platform: describe(platform),
            available: parsed
                .images
                .iter()
                .map(|i| {
                    let mut name = format!(
                        "{}/{}",
                        i.os.as_deref().unwrap_or("?"),
                        i.architecture.as_deref().unwrap_or("?")
                    );
                    if let Some(v) = i.variant.as_deref().filter(|v| !v.is_empty()) {
                        name.push('/');
                        name.push_str(v);
                    }
                    name
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn describe(platform: &PlatformChoice) -> String {
    match &platform.variant {
        Some(v) => format!("{}/{}/{v}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}

/// `base` + `/` + `rest` (the repository URL has no trailing slash).
fn join(base: &Url, rest: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}/{rest}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

fn hub_error(url: &Url, status: StatusCode, body: &[u8]) -> ApiError {
    let message = serde_json::from_slice::<HubMessage>(body)
        .ok()
        .and_then(|m| m.message)
        .map(|m| m.lines().next().unwrap_or_default().to_owned());
    ApiError::Hub {
        url: url.to_string(),
        status,
        message,
    }
}

/// The single-threaded runtime each operation runs on (one process, a few sequential
/// requests: no need for worker threads).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(1))
        .build()?)
}
