//! `nix-cache-resource`: push and fetch Nix closures to plain and attic binary caches.
//!
//! Contract: `shared/spec/nix-cache.md`. The formats live in their own modules ([`nar`],
//! [`narinfo`], [`nix32`], [`hash`], [`signing`], [`store_path`]); the operations in [`check`],
//! [`fetch`] (`in`) and [`push`] (`out`, with [`attic`] for attic's API). This module wires them
//! into the protocol harness; the accepted `source` and `params` are declared in [`config`].

#![deny(missing_docs)]

pub mod attic;
pub mod check;
pub mod client;
pub mod closure;
pub mod config;
pub mod fetch;
pub mod hash;
pub mod nar;
pub mod narinfo;
pub mod nix32;
pub mod pin;
pub mod progress;
pub mod push;
pub mod signing;
pub mod store_path;
pub mod stream;

use std::path::Path;

use anyhow::Context;
use resource_protocol::{CheckRequest, InRequest, OutRequest, Resource, Response, Version};

pub use config::{GetParams, PutParams, Source};

/// The nix-cache resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct NixCacheResource;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

impl Resource for NixCacheResource {
    const NAME: &'static str = "nix-cache";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        request.source.validate()?;
        runtime()?.block_on(check::check(&request.source, request.version.as_ref()))
    }

    fn get(&self, request: InRequest<Source, GetParams>, dest: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        runtime()?.block_on(fetch::get(
            &request.source,
            &request.version,
            &request.params,
            dest,
        ))
    }

    fn put(&self, request: OutRequest<Source, PutParams>, src: &Path) -> anyhow::Result<Response> {
        request.source.validate()?;
        runtime()?.block_on(push::put(&request.source, &request.params, src))
    }
}
