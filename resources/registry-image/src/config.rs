//! The registry-image resource's `source` and `params`, as in `shared/spec/registry-image.md`.

use std::collections::BTreeMap;

use resource_protocol::{InvalidRequest, NotImplemented, Secret, lenient};
use serde::Deserialize;

/// An image platform (`source.platform`, `params.platform`): unset fields default to
/// linux/amd64 when an index is resolved.
pub use registry_client::Platform;

/// `source` of a registry-image resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Image name; no host means Docker Hub.
    pub repository: String,
    /// Tag to track (string or number): tag mode.
    #[serde(default)]
    pub tag: Option<serde_json::Value>,
    /// Track every tag matching this regex.
    #[serde(default)]
    pub tag_regex: Option<String>,
    /// Order `tag_regex` versions by image creation time.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub created_at_sort: Option<bool>,
    /// Semver mode constraint.
    #[serde(default)]
    pub semver_constraint: Option<String>,
    /// Semver mode variant suffix.
    #[serde(default)]
    pub variant: Option<String>,
    /// Include prereleases.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub pre_releases: Option<bool>,
    /// Extra prerelease prefixes.
    #[serde(default)]
    pub pre_release_prefixes: Vec<String>,
    /// Registry user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Registry password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Allow plain http.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub insecure: Option<bool>,
    /// Extra trusted CA certificates (PEM).
    #[serde(default)]
    pub ca_certs: Vec<String>,
    /// Docker Hub mirror.
    #[serde(default)]
    pub registry_mirror: Option<RegistryMirror>,
    /// Platform picked from an index.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Config labels to add to `in` metadata.
    #[serde(default)]
    pub label_regex: Option<String>,
    /// Manifest annotations to add to `in` metadata.
    #[serde(default)]
    pub annotation_regex: Option<String>,
    /// Verbose logs.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub debug: Option<bool>,
    /// AWS ECR access key id.
    #[serde(default)]
    pub aws_access_key_id: Option<String>,
    /// AWS ECR secret access key.
    #[serde(default)]
    pub aws_secret_access_key: Option<Secret>,
    /// AWS session token.
    #[serde(default)]
    pub aws_session_token: Option<Secret>,
    /// AWS region.
    #[serde(default)]
    pub aws_region: Option<String>,
    /// AWS role to assume.
    #[serde(default)]
    pub aws_role_arn: Option<String>,
    /// AWS roles to assume in turn.
    #[serde(default)]
    pub aws_role_arns: Vec<String>,
    /// ECR account id.
    #[serde(default)]
    pub aws_account_id: Option<String>,
    /// Azure ACR: use the workload's managed identity.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub azure_acr: Option<bool>,
    /// Azure client id.
    #[serde(default)]
    pub azure_client_id: Option<String>,
    /// Azure tenant id.
    #[serde(default)]
    pub azure_tenant_id: Option<String>,
    /// Azure client secret.
    #[serde(default)]
    pub azure_client_secret: Option<Secret>,
    /// Notary content trust settings.
    #[serde(default)]
    pub content_trust: Option<BTreeMap<String, serde_json::Value>>,
}

impl Source {
    /// Checks rules that span fields; each error names the field.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if self.repository.trim().is_empty() {
            return Err(InvalidRequest::new("source.repository: must not be empty"));
        }
        if let Some(tag) = &self.tag
            && !(tag.is_string() || tag.is_number())
        {
            {
                return Err(InvalidRequest::new(
                    "source.tag: must be a string or a number",
                ));
            }
        }
        if self.tag.is_some() && self.tag_regex.is_some() {
            return Err(InvalidRequest::new(
                "source.tag and source.tag_regex: set at most one",
            ));
        }
        if self.aws_secret_access_key.is_some() && self.aws_access_key_id.is_none() {
            return Err(InvalidRequest::new(
                "source.aws_secret_access_key: needs source.aws_access_key_id",
            ));
        }
        if self.azure_client_secret.is_some() && self.azure_client_id.is_none() {
            return Err(InvalidRequest::new(
                "source.azure_client_secret: needs source.azure_client_id",
            ));
        }
        Ok(())
    }

    /// Cloud registry logins and content trust are accepted (pipelines keep parsing) but not
    /// implemented yet: using them is a clear "not implemented" error, never a silent anonymous
    /// request.
    pub fn reject_unsupported(&self) -> Result<(), NotImplemented> {
        let aws = self.aws_access_key_id.is_some()
            || self.aws_role_arn.is_some()
            || !self.aws_role_arns.is_empty()
            || self.aws_region.is_some();
        if aws {
            return Err(NotImplemented::new(
                "source.aws_*: AWS ECR authentication (use source.username/password with an ECR token)",
            ));
        }
        if self.azure_acr.unwrap_or(false) || self.azure_client_id.is_some() {
            return Err(NotImplemented::new(
                "source.azure_*: Azure ACR authentication (use source.username/password)",
            ));
        }
        if self.content_trust.is_some() {
            return Err(NotImplemented::new(
                "source.content_trust: Notary content trust",
            ));
        }
        Ok(())
    }
}

/// `registry_mirror`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryMirror {
    /// Mirror host.
    pub host: String,
    /// Mirror user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Mirror password.
    #[serde(default)]
    pub password: Option<Secret>,
}

/// `params` of a get step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// `rootfs` (default), `oci` or `oci-layout`.
    #[serde(default)]
    pub format: Option<String>,
    /// Write only `tag`, `digest` and `repository`.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub skip_download: Option<bool>,
    /// Overrides `source.platform`.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// `params` of a put step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// Glob naming the image tarball or layout (required).
    #[serde(default)]
    pub image: Option<String>,
    /// A semver version to tag with (`v1.2` is normalised to `1.2.0`).
    #[serde(default)]
    pub version: Option<String>,
    /// Also push `latest`/`MAJOR`/`MAJOR.MINOR` aliases.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub bump_aliases: Option<bool>,
    /// File of whitespace-separated extra tags.
    #[serde(default)]
    pub additional_tags: Option<String>,
    /// Prefix for `additional_tags`.
    #[serde(default)]
    pub tag_prefix: Option<String>,
}
