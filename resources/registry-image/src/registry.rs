//! From a `source` to a [`RegistryClient`]: reference parsing (Docker Hub normalisation),
//! credentials, CA certificates and the tokio runtime the synchronous protocol calls run on.
//!
//! Everything network-related this resource does goes through `registry-client`; this module
//! only adapts our configuration to it.

use registry_client::{ClientConfig, ImageReference, RegistryClient};
use resource_protocol::InvalidRequest;

use crate::config::Source;

/// The image a source names: where it lives, and how it was written.
#[derive(Debug, Clone)]
pub struct Target {
    /// Parsed, normalised reference (registry host, repository path).
    pub reference: ImageReference,
    /// `source.repository` as the user wrote it (what `DEST/repository` holds).
    pub repository: String,
}

/// Parses `source.repository`; a tag or digest in it is a configuration error.
pub fn target(source: &Source) -> Result<Target, InvalidRequest> {
    let reference = ImageReference::parse(&source.repository)
        .map_err(|err| InvalidRequest::new(format!("source.repository: {err}")))?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(InvalidRequest::new(format!(
            "source.repository: {:?} must not hold a tag or digest: use source.tag",
            source.repository
        )));
    }
    Ok(Target {
        reference,
        repository: source.repository.clone(),
    })
}

/// A client for the source's repository with its credentials and CA certificates.
pub fn client(source: &Source, target: &Target) -> anyhow::Result<RegistryClient> {
    let mut config = ClientConfig::new(&target.reference.registry, &target.reference.repository);
    config.username = source.username.clone().filter(|u| !u.is_empty());
    config.password = source.password.clone().filter(|p| !p.is_empty());
    config.insecure = source.insecure.unwrap_or(false);
    config.ca_certs = source.ca_certs.clone();
    RegistryClient::new(config).map_err(|err| InvalidRequest::new(format!("source: {err}")).into())
}

/// The clients `check` and `in` try in order: the `registry_mirror` first for Docker Hub
/// images, then the origin.
pub fn pull_clients(source: &Source, target: &Target) -> anyhow::Result<Vec<RegistryClient>> {
    let origin = client(source, target)?;
    let Some(mirror) = source
        .registry_mirror
        .as_ref()
        .filter(|_| target.reference.is_docker_hub())
    else {
        return Ok(vec![origin]);
    };
    let mut config = ClientConfig::new(&mirror.host, &target.reference.repository);
    config.username = mirror.username.clone().filter(|u| !u.is_empty());
    config.password = mirror.password.clone().filter(|p| !p.is_empty());
    config.insecure = source.insecure.unwrap_or(false);
    config.ca_certs = source.ca_certs.clone();
    let mirror = RegistryClient::new(config)
        .map_err(|err| InvalidRequest::new(format!("source.registry_mirror: {err}")))?;
    Ok(vec![mirror, origin])
}

/// A multi-threaded runtime for `in` and `out` (hashing and unpacking run beside the
/// transfers).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?)
}

/// A single-threaded runtime for `check`: its work is waiting on the network, and it starts
/// faster (check runs every minute for every resource).
pub fn check_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs `operation` against each client in turn (mirror first) until one succeeds; a
/// configuration error stops at once. The last failure is the error.
pub async fn first_success<T>(
    clients: &[RegistryClient],
    operation: impl AsyncFn(&RegistryClient) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut last_error = None;
    for client in clients {
        match operation(client).await {
            Ok(value) => return Ok(value),
            Err(err) if err.downcast_ref::<InvalidRequest>().is_some() => return Err(err),
            Err(err) => {
                if clients.len() > 1 {
                    tracing::warn!("{}: {err:#}; trying the next registry", client.registry());
                }
                last_error = Some(err);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no registry to ask")))
}
