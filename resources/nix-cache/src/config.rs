//! The nix-cache resource's `source` and `params`, as in `shared/spec/nix-cache.md`.

use resource_protocol::{InvalidRequest, Secret, lenient};
use serde::Deserialize;

/// `source` of a nix-cache resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Cache base URL.
    pub url: String,
    /// `http` (default) or `attic`.
    #[serde(default)]
    pub api: Option<String>,
    /// Bearer token (attic).
    #[serde(default)]
    pub token: Option<Secret>,
    /// HTTP Basic user name.
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP Basic password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Nix secret key used to sign narinfos (plain caches; attic signs server-side).
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// Public keys accepted for signatures; empty means signatures are not checked.
    #[serde(default)]
    pub trusted_public_keys: Vec<String>,
    /// Name of the pin followed by check and moved by put.
    #[serde(default)]
    pub pin: Option<String>,
    /// Wait-for mode: the store path to wait for.
    #[serde(default)]
    pub store_path: Option<String>,
    /// `zstd` (default), `xz` or `none`.
    #[serde(default)]
    pub compression: Option<String>,
    /// Where pins live (default `<url>/pins/`).
    #[serde(default)]
    pub pins_url: Option<String>,
    /// Extra trusted CA certificates (PEM).
    #[serde(default)]
    pub ca_certs: Vec<String>,
    /// Do not verify TLS.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub insecure: Option<bool>,
}

impl Source {
    /// Checks rules that span fields; each error names the field.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if self.url.trim().is_empty() {
            return Err(InvalidRequest::new("source.url: must not be empty"));
        }
        if let Some(api) = &self.api
            && !matches!(api.as_str(), "http" | "attic")
        {
            {
                return Err(InvalidRequest::new(format!(
                    "source.api: {api:?} is not one of http, attic"
                )));
            }
        }
        if let Some(compression) = &self.compression
            && !matches!(compression.as_str(), "zstd" | "xz" | "none")
        {
            {
                return Err(InvalidRequest::new(format!(
                    "source.compression: {compression:?} is not one of zstd, xz, none"
                )));
            }
        }
        if self.api.as_deref() == Some("attic") && self.pin.is_some() && self.pins_url.is_none() {
            return Err(InvalidRequest::new(
                "source.pins_url: required with api attic and a pin (attic cannot store pins)",
            ));
        }
        if self.pin.is_some() && self.store_path.is_some() {
            return Err(InvalidRequest::new(
                "source.pin and source.store_path: set at most one",
            ));
        }
        Ok(())
    }
}

/// `params` of a get step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Fetch the whole closure (default true).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub closure: Option<bool>,
    /// Unpack the top path into `result/` (default true).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub unpack: Option<bool>,
}

/// `params` of a put step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// A local binary cache directory in SRC to push from.
    #[serde(default)]
    pub from: Option<String>,
    /// Root store paths, or files in SRC (such as a `result` symlink) that lead to them.
    #[serde(default)]
    pub paths: Vec<String>,
    /// File in SRC listing root store paths, one a line (`#` comments allowed).
    #[serde(default)]
    pub paths_file: Option<String>,
    /// Pin to move (overrides `source.pin`).
    #[serde(default)]
    pub pin: Option<String>,
}
