//! `registry-image-resource`: the Concourse registry-image resource: images from and to OCI registries.
//!
//! Contract: `shared/spec/registry-image.md`. This module wires the resource into the protocol harness; the
//! accepted `source` and `params` are declared in [`config`].
//!
//! `out` reads an uncompressed image tarball (docker save, Docker 25+ save, oci-archive) in
//! place: [`tar_index`] maps members to byte ranges and blobs are uploaded from there, verified
//! while they stream, with no temp copy. A gzip- or zstd-compressed tarball cannot be read at
//! an offset, so it is still extracted to a temp dir first ([`local_image`]).

pub mod check;
pub mod config;
pub mod formats;
pub mod get;
pub mod local_image;
pub mod oci;
pub mod progress;
pub mod put;
pub mod registry;
pub mod semver_check;
pub mod tar_index;

use std::path::Path;

use resource_protocol::{CheckRequest, InRequest, OutRequest, Resource, Response, Version};

pub use config::{GetParams, PutParams, Source};

/// The registry-image resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct RegistryImageResource;

impl Resource for RegistryImageResource {
    const NAME: &'static str = "registry-image";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        request.source.validate()?;
        request.source.reject_unsupported()?;
        check::check(&request.source, request.version.as_ref())
    }

    fn get(&self, request: InRequest<Source, GetParams>, dest: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        request.source.reject_unsupported()?;
        get::get(&request, dest)
    }

    fn put(&self, request: OutRequest<Source, PutParams>, src: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        request.source.reject_unsupported()?;
        put::put(&request, src)
    }
}
