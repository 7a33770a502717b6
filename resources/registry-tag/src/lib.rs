//! `registry-tag-resource`: tags of an image repository (Docker Hub or any registry), filtered
//! by regex and semver.
//!
//! Contract: `shared/spec/registry-tag.md`. [`config`] validates the `source`; [`api`] lists
//! tags (Docker Hub's repository API or the OCI `tags/list` API through `registry-client`)
//! and resolves digests; [`select`] filters, orders and applies the cursor. This module wires
//! them into the protocol harness. It never writes to stdout itself.

pub mod api;
pub mod config;
pub mod select;

use std::path::Path;

use anyhow::Context as _;
use resource_protocol::{
    CheckRequest, InRequest, InvalidRequest, MetadataField, OutRequest, Resource, Response, Version,
};

pub use config::{GetParams, PutParams, Source};

use crate::api::{TagApi, runtime};
use crate::select::Selection;

/// The registry-tag resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct RegistryTagResource;

/// `out` is not supported: the resource only reads tags.
#[derive(Debug, thiserror::Error)]
#[error("registry-tag is read-only; use registry-image to push")]
pub struct ReadOnly;

impl Resource for RegistryTagResource {
    const NAME: &'static str = "registry-tag";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        let settings = request.source.validate()?;
        let given = match &request.version {
            Some(version) => Some(version_tag(version)?),
            None => None,
        };
        let api = TagApi::new(&request.source, &settings)?;
        let mut selection = Selection::new(&settings);
        runtime()?.block_on(api.list(settings.pages, settings.tags_per_page, |page| {
            for tag in &page {
                selection.offer(tag);
            }
        }))?;
        let outcome = selection.finish(api.order(), given.as_deref());
        if let Some(warning) = &outcome.warning {
            tracing::warn!("{warning}");
        }
        Ok(outcome
            .tags
            .into_iter()
            .map(|tag| resource_protocol::wire::version([("tag", tag)]))
            .collect())
    }

    fn get(&self, request: InRequest<Source, GetParams>, dest: &Path) -> anyhow::Result<Response> {
        let settings = request.source.validate()?;
        let tag = version_tag(&request.version)?;
        let api = TagApi::new(&request.source, &settings)?;
        let digest = runtime()?.block_on(api.digest(&tag, &settings.platform))?;
        std::fs::create_dir_all(dest).with_context(|| format!("{}", dest.display()))?;
        for (name, value) in [("tag", &tag), ("digest", &digest)] {
            let path = dest.join(name);
            std::fs::write(&path, value).with_context(|| format!("{}", path.display()))?;
        }
        Ok(Response {
            version: request.version.clone(),
            metadata: vec![
                MetadataField::new("tag", tag),
                MetadataField::new("digest", digest),
            ],
        })
    }

    fn put(
        &self,
        _request: OutRequest<Source, PutParams>,
        _src: &Path,
    ) -> anyhow::Result<Response> {
        Err(ReadOnly.into())
    }
}

/// The `tag` of a version; other keys (`digest` from old metadata) are ignored.
fn version_tag(version: &Version) -> Result<String, InvalidRequest> {
    match version.get("tag") {
        Some(tag) if !tag.is_empty() => Ok(tag.clone()),
        _ => Err(InvalidRequest::new(
            "version.tag: missing (versions of this resource are {\"tag\": \"...\"})",
        )),
    }
}
