//! The registry-tag resource's `source` and `params`, as in `shared/spec/registry-tag.md`.
//!
//! Validation turns the raw fields into a [`Settings`]: which API to use, compiled filters and
//! the ordering, so that every mistake is reported before the first request, naming its field.

use resource_protocol::{InvalidRequest, Secret, lenient};
use schemars::JsonSchema;
use serde::Deserialize;
use url::Url;
use version_filter::{Range, SortMethod, TagPattern};

/// `platform` (shared with registry-image; its JSON schema comes from the `schemars` feature).
pub use registry_client::Platform;

/// Default `pages`.
pub const DEFAULT_PAGES: u64 = 1;
/// Default `tags_per_page`.
pub const DEFAULT_TAGS_PER_PAGE: u64 = 25;
/// Docker Hub answers 400 above this page size.
pub const HUB_MAX_PAGE_SIZE: u64 = 100;

/// `source` of a registry-tag resource.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Docker Hub repository API URL (`https://hub.docker.com/v2/repositories/library/ruby`)
    /// or registry repository URL (`https://quay.io/v2/coreos/etcd`).
    pub uri: String,
    /// Registry user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Registry password.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub password: Option<Secret>,
    /// Pages to read at most (default 1).
    #[serde(default, deserialize_with = "lenient::option_u64")]
    #[schemars(with = "Option<LenientInteger>")]
    pub pages: Option<u64>,
    /// Page size (default 25; at most 100 on Docker Hub).
    #[serde(default, deserialize_with = "lenient::option_u64")]
    #[schemars(with = "Option<LenientInteger>")]
    pub tags_per_page: Option<u64>,
    /// Keep tags matching this regex (unanchored).
    #[serde(default)]
    pub regexp: Option<String>,
    /// Semver filtering.
    #[serde(default)]
    pub semver: Option<SemverFilter>,
    /// Ordering.
    #[serde(default)]
    pub sort: Option<Sort>,
    /// Extra trusted CA certificates (PEM).
    #[serde(default)]
    pub ca_certs: Vec<String>,
    /// Allow plain http and unverified certificates.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    #[schemars(with = "Option<LenientBool>")]
    pub insecure: Option<bool>,
    /// Platform whose image digest `in` reports for Docker Hub tags (default linux/amd64).
    #[serde(default)]
    pub platform: Option<Platform>,
    /// The peer's spelling of `platform.architecture`.
    #[serde(default)]
    pub arch: Option<String>,
    /// The peer's spelling of `platform.os`.
    #[serde(default)]
    pub os: Option<String>,
}

/// A non-negative integer, as a JSON number or a string of digits (pipelines write both).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LenientInteger {
    /// `3`.
    Number(u64),
    /// `"3"`.
    Text(String),
}

/// A boolean, as JSON `true`/`false` or the strings `"true"`/`"false"`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LenientBool {
    /// `true`.
    Bool(bool),
    /// `"true"`.
    Text(String),
}

/// `semver`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SemverFilter {
    /// Version range, e.g. `>= 2.7`.
    #[serde(default)]
    pub matcher: Option<String>,
    /// Regex removed from each tag before parsing.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `sort`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sort {
    /// `alphabetical` or `numerical`.
    #[serde(default)]
    pub method: Option<String>,
    /// Reverse the final order.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    #[schemars(with = "Option<LenientBool>")]
    pub reverse: Option<bool>,
}

/// `params` of a get step: none.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetParams {}

/// `params` of a put step: anything (the resource is read-only and says so).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct PutParams {}

/// Which listing API a `uri` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// Docker Hub's repository API; `tags_url` is `{uri}/tags`.
    Hub {
        /// The repository API URL (`uri` without a trailing slash).
        repository_url: Url,
    },
    /// The OCI distribution API of a registry.
    Registry {
        /// `http://host:port` or `https://host:port` (scheme kept as given).
        registry: String,
        /// Repository path (`coreos/etcd`).
        repository: String,
    },
}

/// The chosen platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformChoice {
    /// OS.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant, if required.
    pub variant: Option<String>,
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API to list with.
    pub api: Api,
    /// Pages to read.
    pub pages: u32,
    /// Page size.
    pub tags_per_page: u32,
    /// `regexp`.
    pub regexp: Option<TagPattern>,
    /// `semver.matcher`.
    pub semver: Option<Range>,
    /// `semver.prefix`.
    pub semver_prefix: Option<TagPattern>,
    /// `sort.method`.
    pub sort: Option<SortMethod>,
    /// `sort.reverse`.
    pub reverse: bool,
    /// Platform for Hub digests.
    pub platform: PlatformChoice,
}

impl Source {
    /// Checks every field and rule that spans fields; each error names the field.
    pub fn validate(&self) -> Result<Settings, InvalidRequest> {
        let api = parse_uri(&self.uri)?;
        let pages = self.pages.unwrap_or(DEFAULT_PAGES);
        if pages == 0 {
            return Err(InvalidRequest::new(
                "source.pages: must be a positive integer",
            ));
        }
        let tags_per_page = self.tags_per_page.unwrap_or(DEFAULT_TAGS_PER_PAGE);
        if tags_per_page == 0 {
            return Err(InvalidRequest::new(
                "source.tags_per_page: must be a positive integer",
            ));
        }
        if matches!(api, Api::Hub { .. }) && tags_per_page > HUB_MAX_PAGE_SIZE {
            return Err(InvalidRequest::new(format!(
                "source.tags_per_page: Docker Hub allows at most {HUB_MAX_PAGE_SIZE} tags per page, got {tags_per_page} (raise source.pages instead)"
            )));
        }
        let regexp = self
            .regexp
            .as_deref()
            .map(TagPattern::new)
            .transpose()
            .map_err(|e| InvalidRequest::new(format!("source.regexp: {e}")))?;
        let semver_source = self.semver.clone().unwrap_or_default();
        let semver = semver_source
            .matcher
            .as_deref()
            .map(Range::parse)
            .transpose()
            .map_err(|e| InvalidRequest::new(format!("source.semver.matcher: {e}")))?;
        let semver_prefix = semver_source
            .prefix
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(TagPattern::new)
            .transpose()
            .map_err(|e| InvalidRequest::new(format!("source.semver.prefix: {e}")))?;
        let sort_source = self.sort.clone().unwrap_or_default();
        let sort = sort_source
            .method
            .as_deref()
            .map(SortMethod::parse)
            .transpose()
            .map_err(|e| InvalidRequest::new(format!("source.sort.method: {e}")))?;
        if semver.is_some() && sort.is_some() {
            return Err(InvalidRequest::new(
                "source.sort.method and source.semver.matcher: set at most one (semver sorts by version)",
            ));
        }
        if matches!(api, Api::Hub { .. }) && (self.username.is_some() || self.password.is_some()) {
            return Err(InvalidRequest::new(
                "source.username/source.password: credentials are not supported for the Docker Hub listing API (public repositories only); use the registry URL https://registry-1.docker.io/v2/<namespace>/<name> instead",
            ));
        }
        let platform = self.platform_choice()?;
        Ok(Settings {
            api,
            pages: u32::try_from(pages).unwrap_or(u32::MAX),
            tags_per_page: u32::try_from(tags_per_page).unwrap_or(u32::MAX),
            regexp,
            semver,
            semver_prefix,
            sort,
            reverse: sort_source.reverse.unwrap_or(false),
            platform,
        })
    }

    fn platform_choice(&self) -> Result<PlatformChoice, InvalidRequest> {
        let platform = self.platform.clone().unwrap_or_default();
        if platform.os.is_some() && self.os.is_some() {
            return Err(InvalidRequest::new(
                "source.os and source.platform.os: set at most one",
            ));
        }
        if platform.architecture.is_some() && self.arch.is_some() {
            return Err(InvalidRequest::new(
                "source.arch and source.platform.architecture: set at most one",
            ));
        }
        Ok(PlatformChoice {
            os: platform
                .os
                .or_else(|| self.os.clone())
                .unwrap_or_else(|| "linux".into()),
            architecture: platform
                .architecture
                .or_else(|| self.arch.clone())
                .unwrap_or_else(|| "amd64".into()),
            variant: platform.variant,
        })
    }
}

/// Decides the API from `uri`: Hub when the host is `hub.docker.com` or the path mentions it
/// (so tests can point at a fixture), else a registry whose repository follows `/v2/`.
pub fn parse_uri(uri: &str) -> Result<Api, InvalidRequest> {
    let bad = |why: &str| InvalidRequest::new(format!("source.uri: {why}"));
    let trimmed = uri.trim();
    if trimmed.is_empty() {
        return Err(bad("must not be empty"));
    }
    let url = Url::parse(trimmed.trim_end_matches('/')).map_err(|e| {
        bad(&format!(
            "{trimmed:?} is not a URL ({e}); expected e.g. https://hub.docker.com/v2/repositories/library/ruby or https://quay.io/v2/coreos/etcd"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&format!(
            "{trimmed:?}: only http and https URLs are supported"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(&format!(
            "{trimmed:?}: must not have a query or fragment"
        )));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if host == "hub.docker.com" || url.path().contains("hub.docker.com") {
        return Ok(Api::Hub {
            repository_url: url,
        });
    }
    let Some(repository) = url.path().split_once("/v2/").map(|(_, r)| r.to_owned()) else {
        return Err(bad(&format!(
            "{trimmed:?}: a registry URL names the repository after /v2/, e.g. https://quay.io/v2/coreos/etcd"
        )));
    };
    registry_client::reference::validate_repository(&repository)
        .map_err(|e| bad(&format!("{trimmed:?}: {e}")))?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => host,
    };
    Ok(Api::Registry {
        registry: format!("{}://{host}{port}", url.scheme()),
        repository,
    })
}

/// The JSON schema of `source`, `params` of get and put (kept in `schema/*.json`).
pub fn schemas() -> [(&'static str, schemars::schema::RootSchema); 3] {
    [
        ("source", schemars::schema_for!(Source)),
        ("get-params", schemars::schema_for!(GetParams)),
        ("put-params", schemars::schema_for!(PutParams)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schemas match the types; `UPDATE_SCHEMAS=1` rewrites them.
    #[test]
    fn schemas_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
        for (name, schema) in schemas() {
            let path = dir.join(format!("{name}.json"));
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if std::env::var_os("UPDATE_SCHEMAS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{} is out of date: run UPDATE_SCHEMAS=1 cargo nextest run -p registry-tag-resource schemas",
                path.display()
            );
        }
    }

    fn check(uri: &str, expect: &str) {
        let got = match parse_uri(uri) {
            Ok(Api::Hub { repository_url }) => format!("hub {repository_url}"),
            Ok(Api::Registry {
                registry,
                repository,
            }) => format!("registry {registry} {repository}"),
            Err(e) => format!("error {e}"),
        };
        assert!(
            got == expect || (expect.starts_with("error ") && got.contains(&expect[6..])),
            "{uri}: got {got:?}, expected {expect:?}"
        );
    }

    #[test]
    fn picks_the_api() {
        check(
            "https://hub.docker.com/v2/repositories/library/ruby",
            "hub https://hub.docker.com/v2/repositories/library/ruby",
        );
        check(
            "https://hub.docker.com/v2/repositories/library/ruby/",
            "hub https://hub.docker.com/v2/repositories/library/ruby",
        );
        check(
            "http://127.0.0.1:9/hub.docker.com/v2/repositories/a/b",
            "hub http://127.0.0.1:9/hub.docker.com/v2/repositories/a/b",
        );
        check(
            "https://quay.io/v2/coreos/etcd",
            "registry https://quay.io coreos/etcd",
        );
        check(
            "http://127.0.0.1:5000/v2/team/app",
            "registry http://127.0.0.1:5000 team/app",
        );
        check("http://[::1]:5000/v2/app", "registry http://[::1]:5000 app");
        check(
            "https://registry-1.docker.io/v2/library/ruby",
            "registry https://registry-1.docker.io library/ruby",
        );
        check("", "error source.uri: must not be empty");
        check("quay.io/coreos/etcd", "error is not a URL");
        check("ftp://quay.io/v2/a", "error only http and https");
        check(
            "https://quay.io/coreos/etcd",
            "error names the repository after /v2/",
        );
        check(
            "https://quay.io/v2/",
            "error names the repository after /v2/",
        );
        check("https://quay.io/v2/Upper", "error invalid repository name");
        check("https://quay.io/v2/a?x=1", "error must not have a query");
    }
}
