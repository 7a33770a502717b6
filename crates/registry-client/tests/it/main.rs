//! Integration tests of `registry-client` against real servers: the distribution-API fixture
//! (faults, pagination, redirects) and the packaged registry (Basic, Bearer, TLS).

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used)]

mod fixture;
mod real_registry;

use registry_client::{ClientConfig, RegistryClient, RetryPolicy, Secret};

/// A client for `repository` at `host` with fast retries.
pub fn client(host: &str, repository: &str) -> RegistryClient {
    RegistryClient::new(config(host, repository)).unwrap()
}

/// A config with fast retries.
pub fn config(host: &str, repository: &str) -> ClientConfig {
    let mut config = ClientConfig::new(host, repository);
    config.retry = RetryPolicy::fast();
    config
}

/// A client with credentials.
pub fn client_as(host: &str, repository: &str, user: &str, pass: &str) -> RegistryClient {
    let mut config = config(host, repository);
    config.username = Some(user.into());
    config.password = Some(Secret::new(pass));
    RegistryClient::new(config).unwrap()
}
