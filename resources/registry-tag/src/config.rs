//! The registry-tag resource's `source` and `params`, as in `shared/spec/registry-tag.md`.

use resource_protocol::{InvalidRequest, Secret, lenient};
use serde::Deserialize;

/// `source` of a registry-tag resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Docker Hub repository API URL or registry repository URL.
    pub uri: String,
    /// Registry user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Registry password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Pages to read at most (default 1).
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub pages: Option<u64>,
    /// Page size (default 25).
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub tags_per_page: Option<u64>,
    /// Keep tags matching this regex.
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
    /// Allow plain http.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub insecure: Option<bool>,
}

impl Source {
    /// Checks rules that span fields; each error names the field.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if self.uri.trim().is_empty() {
            return Err(InvalidRequest::new("source.uri: must not be empty"));
        }
        if self.pages == Some(0) {
            return Err(InvalidRequest::new(
                "source.pages: must be a positive integer",
            ));
        }
        if self.tags_per_page == Some(0) {
            return Err(InvalidRequest::new(
                "source.tags_per_page: must be a positive integer",
            ));
        }
        let has_matcher = self.semver.as_ref().is_some_and(|s| s.matcher.is_some());
        let has_sort_method = self.sort.as_ref().is_some_and(|s| s.method.is_some());
        if has_matcher && has_sort_method {
            return Err(InvalidRequest::new(
                "source.sort.method and source.semver.matcher: set at most one (semver sorts by version)",
            ));
        }
        Ok(())
    }
}

/// `semver`.
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sort {
    /// `alphabetical` or `numerical`.
    #[serde(default)]
    pub method: Option<String>,
    /// Reverse the final order.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub reverse: Option<bool>,
}

/// `params` of a get step: none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {}

/// `params` of a put step: none (the resource is read-only).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PutParams {}
