//! `git-resource`: the Concourse git resource (check, in, out) on libgit2.
//!
//! Contract: `shared/spec/git.md`, a drop-in for concourse/git-resource. This module declares the
//! `source` and `params` the resource accepts; the operations live in their own modules.

pub mod config;

use std::path::Path;

use resource_protocol::{
    CheckRequest, InRequest, NotImplemented, OutRequest, Resource, Response, Version,
};

pub use config::{GetParams, PutParams, Source};

/// The git resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct GitResource;

impl Resource for GitResource {
    const NAME: &'static str = "git";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        request.source.validate()?;
        Err(NotImplemented::new("git check").into())
    }

    fn get(&self, request: InRequest<Source, GetParams>, _dest: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        Err(NotImplemented::new("git in").into())
    }

    fn put(&self, request: OutRequest<Source, PutParams>, _src: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        Err(NotImplemented::new("git out").into())
    }
}
