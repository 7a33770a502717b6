//! `registry-tag-resource`: tags of an image repository (Docker Hub or any registry), filtered by regex and semver.
//!
//! Contract: `shared/spec/registry-tag.md`. This module wires the resource into the protocol harness; the
//! accepted `source` and `params` are declared in [`config`].

pub mod config;

use std::path::Path;

use resource_protocol::{
    CheckRequest, InRequest, NotImplemented, OutRequest, Resource, Response, Version,
};

pub use config::{GetParams, PutParams, Source};

/// The registry-tag resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct RegistryTagResource;

impl Resource for RegistryTagResource {
    const NAME: &'static str = "registry-tag";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        request.source.validate()?;
        Err(NotImplemented::new("registry-tag check").into())
    }

    fn get(&self, request: InRequest<Source, GetParams>, _dest: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        Err(NotImplemented::new("registry-tag in").into())
    }

    fn put(&self, request: OutRequest<Source, PutParams>, _src: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        Err(NotImplemented::new("registry-tag out").into())
    }
}
