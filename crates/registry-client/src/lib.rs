//! `registry-client`: the OCI distribution client shared by registry-image and registry-tag.
//!
//! One [`RegistryClient`] talks to one repository: anonymous, Basic or Bearer-token auth
//! (following the `WWW-Authenticate` challenge, tokens cached per scope), extra CA
//! certificates, http for insecure and local registries, retries with exponential backoff on
//! `429`/`5xx`/connection failures, manual redirects that never carry credentials to another
//! host, `Link`-paginated tag lists, manifests with the full `Accept` set, and blobs verified
//! against their digest while they stream.
//!
//! [`Platform`] is the `platform` object both resources accept in `source` and `params`, parsed
//! strictly; with the `schemars` feature it also describes itself as a JSON schema.
//!
//! ```no_run
//! # async fn demo() -> Result<(), registry_client::RegistryError> {
//! use registry_client::{ClientConfig, ImageReference, RegistryClient};
//! let image = ImageReference::parse("busybox:1.36")?;
//! let client = RegistryClient::new(ClientConfig::new(&image.registry, &image.repository))?;
//! if let Some(descriptor) = client.head_manifest(image.manifest_reference()).await? {
//!     let manifest = client.get_manifest(&descriptor.digest).await?;
//!     assert_eq!(manifest.digest, descriptor.digest);
//! }
//! # Ok(()) }
//! ```
//!
//! This crate never prints to stdout and never puts a credential in a URL, a log line or an
//! error message.

#![deny(missing_docs)]

pub mod auth;
mod client;
pub mod digest;
mod error;
pub mod media;
mod platform;
pub mod reference;

pub use client::{
    BlobStream, ClientConfig, Descriptor, HttpTransport, MAX_MANIFEST_BYTES, Manifest,
    RETRY_BASE_DELAY_ENV, RegistryClient, RetryPolicy, TagPages, is_local_or_private, next_link,
    read_body,
};
pub use error::RegistryError;
pub use platform::Platform;
pub use reference::ImageReference;
pub use reqwest::{StatusCode, Url};
pub use resource_protocol::Secret;
