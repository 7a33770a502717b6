//! `nix-cache-resource`: push and fetch Nix closures to plain and attic binary caches.
//!
//! Contract: `shared/spec/nix-cache.md`. This module wires the resource into the protocol harness; the
//! accepted `source` and `params` are declared in [`config`].

pub mod config;

use std::path::Path;

use resource_protocol::{
    CheckRequest, InRequest, NotImplemented, OutRequest, Resource, Response, Version,
};

pub use config::{GetParams, PutParams, Source};

/// The nix-cache resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct NixCacheResource;

impl Resource for NixCacheResource {
    const NAME: &'static str = "nix-cache";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        request.source.validate()?;
        Err(NotImplemented::new("nix-cache check").into())
    }

    fn get(&self, request: InRequest<Source, GetParams>, _dest: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        Err(NotImplemented::new("nix-cache in").into())
    }

    fn put(&self, request: OutRequest<Source, PutParams>, _src: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        Err(NotImplemented::new("nix-cache out").into())
    }
}
