//! Semver mode of `check`: tags that parse as semver, filtered by constraint, variant and
//! prerelease rules, ordered ascending, one per digest, digests resolved concurrently.

use registry_client::RegistryClient;
use resource_protocol::{NotImplemented, Version};

use crate::config::Source;

/// Runs a semver-mode check.
pub async fn check_semver(
    _client: &RegistryClient,
    _source: &Source,
    _given: Option<&Version>,
) -> anyhow::Result<Vec<Version>> {
    Err(NotImplemented::new("registry-image semver check").into())
}
