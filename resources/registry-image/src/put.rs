//! `out`: push the image named by `params.image` under every tag the step asks for.
//!
//! Tags, in order: `source.tag`, `params.version` (+ `-variant`), its aliases with
//! `bump_aliases`, then `params.additional_tags` (each prefixed with `tag_prefix`). Blobs the
//! registry already has are skipped (`HEAD`), blobs another repository of the same registry
//! has are mounted, the rest are uploaded concurrently; manifests go last, children before
//! their index, so a tag never points at something incomplete.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use registry_client::RegistryClient;
use resource_protocol::{InvalidRequest, MetadataField, OutRequest, Response};

use crate::config::{PutParams, Source};
use crate::local_image::{self, BlobData, LocalImage};
use crate::oci::Descriptor;
use crate::registry;

/// Blobs uploaded at once.
pub const UPLOAD_CONCURRENCY: usize = 4;

/// Runs `out`.
pub fn put(request: &OutRequest<Source, PutParams>, src: &Path) -> anyhow::Result<Response> {
    let source = &request.source;
    let params = &request.params;
    let target = registry::target(source)?;
    let pattern = params
        .image
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            InvalidRequest::new(
                "params.image: required (a glob naming the image tarball or OCI layout)",
            )
        })?;
    let version = params
        .version
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse_version(v).map_err(|err| InvalidRequest::new(format!("params.version: {err}")))
        })
        .transpose()?;
    let additional = match &params.additional_tags {
        Some(file) => std::fs::read_to_string(src.join(file))
            .with_context(|| format!("params.additional_tags: cannot read {file}"))?
            .split_whitespace()
            .map(|tag| format!("{}{tag}", params.tag_prefix.as_deref().unwrap_or("")))
            .collect(),
        None => Vec::new(),
    };
    if crate::check::source_tag(source).is_none() && version.is_none() && additional.is_empty() {
        return Err(InvalidRequest::new(
            "no tag to push: set source.tag, params.version or params.additional_tags",
        )
        .into());
    }
    let image_path = local_image::find_image(src, pattern).map_err(|err| {
        if err.to_string().starts_with("params.image: ") {
            anyhow::Error::from(InvalidRequest::new(err.to_string()))
        } else {
            err
        }
    })?;
    let image = local_image::load(&image_path)?;
    if image_path.is_file() {
        let name = image_path
            .strip_prefix(src)
            .unwrap_or(&image_path)
            .display();
        if image.extracted() {
            eprintln!("{name}: compressed, extracted to a temp dir");
        } else {
            eprintln!("{name}: read in place, nothing extracted");
        }
    }
    let client = registry::client(source, &target)?;
    let runtime = registry::runtime()?;
    let tags = runtime.block_on(async {
        let existing = if params.bump_aliases.unwrap_or(false) && version.is_some() {
            client
                .list_tags(crate::check::TAG_PAGE_SIZE, crate::check::MAX_TAG_PAGES)
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok::<_, anyhow::Error>(tags_to_push(&TagRequest {
            source_tag: crate::check::source_tag(source),
            version: version.clone(),
            variant: source.variant.clone().filter(|v| !v.is_empty()),
            bump_aliases: params.bump_aliases.unwrap_or(false),
            existing_tags: existing,
            additional,
        }))
    })?;
    for tag in &tags {
        registry_client::reference::validate_tag(tag)
            .map_err(|err| InvalidRequest::new(format!("tag: {err}")))?;
    }
    let mount_from = mount_hint(&image_path, &target);
    let digest = runtime
        .block_on(push(&client, &image, &tags, mount_from.as_deref()))
        .map_err(|err| crate::check::describe(err, &target))?;
    Ok(Response {
        version: crate::check::version(&tags[0], &digest),
        metadata: vec![
            MetadataField::new("repository", &target.repository),
            MetadataField::new("tags", tags.join(" ")),
        ],
    })
}

/// `1`, `v1.2`, `1.2.3-rc.1` as a full semver version.
pub fn parse_version(input: &str) -> Result<semver::Version, String> {
    let trimmed = input.strip_prefix('v').unwrap_or(input);
    let (core, rest) = match trimmed.find(['-', '+']) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    let parts = core.split('.').count();
    let padded = match parts {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => trimmed.to_owned(),
    };
    semver::Version::parse(&padded)
        .map_err(|err| format!("{input:?} is not a semver version: {err}"))
}

/// Everything that decides the tags of a push.
#[derive(Debug, Clone, Default)]
pub struct TagRequest {
    /// `source.tag`.
    pub source_tag: Option<String>,
    /// `params.version`, parsed.
    pub version: Option<semver::Version>,
    /// `source.variant`.
    pub variant: Option<String>,
    /// `params.bump_aliases`.
    pub bump_aliases: bool,
    /// Tags already in the repository (for alias decisions).
    pub existing_tags: Vec<String>,
    /// `params.additional_tags`, prefixed.
    pub additional: Vec<String>,
}

/// The tags to push, in order, without duplicates.
pub fn tags_to_push(request: &TagRequest) -> Vec<String> {
    let suffix = |tag: String| match &request.variant {
        Some(variant) => format!("{tag}-{variant}"),
        None => tag,
    };
    let mut tags = Vec::new();
    tags.extend(request.source_tag.clone());
    if let Some(version) = &request.version {
        tags.push(suffix(version.to_string()));
        if request.bump_aliases && version.pre.is_empty() {
            let others: Vec<semver::Version> = request
                .existing_tags
                .iter()
                .filter_map(|tag| match &request.variant {
                    Some(variant) => tag.strip_suffix(&format!("-{variant}")),
                    None => Some(tag.as_str()),
                })
                .filter_map(|tag| parse_version(tag).ok())
                .filter(|v| v.pre.is_empty())
                .collect();
            let newest_where = |same: &dyn Fn(&semver::Version) -> bool| {
                others.iter().filter(|o| same(o)).all(|o| o <= version)
            };
            if newest_where(&|_| true) {
                tags.push(
                    request
                        .variant
                        .clone()
                        .unwrap_or_else(|| "latest".to_owned()),
                );
            }
            if newest_where(&|o| o.major == version.major) {
                tags.push(suffix(version.major.to_string()));
            }
            if newest_where(&|o| o.major == version.major && o.minor == version.minor) {
                tags.push(suffix(format!("{}.{}", version.major, version.minor)));
            }
        }
    }
    tags.extend(request.additional.iter().cloned());
    let mut seen = HashSet::new();
    tags.retain(|tag| seen.insert(tag.clone()));
    tags
}

/// When the image came from a `get` of another repository on the same registry (its
/// `repository` file sits next to it), blobs can be mounted from there.
fn mount_hint(image_path: &Path, target: &registry::Target) -> Option<String> {
    let file = image_path.parent()?.join("repository");
    let repository = std::fs::read_to_string(file).ok()?;
    let reference = registry_client::ImageReference::parse(repository.trim()).ok()?;
    (reference.registry == target.reference.registry
        && reference.repository != target.reference.repository)
        .then_some(reference.repository)
}

/// Pushes blobs, then manifests, then the tags; returns the digest the tags point at.
async fn push(
    client: &RegistryClient,
    image: &LocalImage,
    tags: &[String],
    mount_from: Option<&str>,
) -> anyhow::Result<String> {
    let mut seen = HashSet::new();
    let blobs: Vec<&Descriptor> = image
        .images
        .iter()
        .flat_map(|(_, m)| std::iter::once(&m.config).chain(&m.layers))
        .filter(|d| seen.insert(d.digest.clone()))
        .collect();
    let total = blobs.len();
    eprintln!(
        "pushing {total} blobs to {}/{}",
        client.registry(),
        client.repository()
    );
    let outcomes: Vec<&'static str> = futures::stream::iter(blobs)
        .map(|blob| async move {
            if client.blob_exists(&blob.digest).await? {
                return Ok::<_, anyhow::Error>("exists");
            }
            if let Some(from) = mount_from
                && client.mount_blob(&blob.digest, from).await?
            {
                return Ok("mounted");
            }
            let size = match image.blob(&blob.digest)? {
                // A file or a tarball member, hashed while it streams: bytes that do not
                // have their digest fail the push before any tag is written.
                BlobData::File { path, offset, len } => {
                    client
                        .upload_blob_range(&blob.digest, &path, offset, len)
                        .await
                        .with_context(|| format!("blob {} of {}", blob.digest, path.display()))?;
                    len
                }
                BlobData::Bytes(bytes) => {
                    let len = bytes.len() as u64;
                    client.upload_blob_bytes(&blob.digest, bytes.into()).await?;
                    len
                }
            };
            eprintln!("  uploaded {} ({size} bytes)", blob.digest);
            Ok("uploaded")
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .try_collect()
        .await?;
    let count = |what: &str| outcomes.iter().filter(|o| **o == what).count();
    eprintln!(
        "blobs: {} uploaded, {} mounted, {} already there",
        count("uploaded"),
        count("mounted"),
        count("exists")
    );
    if image.images.len() > 1 || image.images[0].0.digest != image.top.digest {
        for (raw, _) in &image.images {
            client
                .put_manifest(&raw.digest, &raw.media_type, raw.bytes.clone().into())
                .await?;
        }
    }
    for tag in tags {
        let digest = client
            .put_manifest(tag, &image.top.media_type, image.top.bytes.clone().into())
            .await?;
        anyhow::ensure!(
            digest == image.top.digest,
            "digest mismatch: pushed {digest}, expected {}",
            image.top.digest
        );
        eprintln!("tagged {tag} -> {digest}");
    }
    Ok(image.top.digest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: TagRequest, expect: &[&str]) {
        assert_eq!(tags_to_push(&request), expect, "{request:?}");
    }

    fn v(s: &str) -> Option<semver::Version> {
        Some(parse_version(s).unwrap())
    }

    fn existing(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn computes_tags() {
        check(TagRequest::default(), &[]);
        check(
            TagRequest {
                source_tag: Some("latest".into()),
                ..Default::default()
            },
            &["latest"],
        );
        check(
            TagRequest {
                version: v("v1.2"),
                ..Default::default()
            },
            &["1.2.0"],
        );
        check(
            TagRequest {
                version: v("1.2.3"),
                variant: Some("alpine".into()),
                ..Default::default()
            },
            &["1.2.3-alpine"],
        );
        check(
            TagRequest {
                version: v("1.2.3"),
                bump_aliases: true,
                ..Default::default()
            },
            &["1.2.3", "latest", "1", "1.2"],
        );
        check(
            TagRequest {
                version: v("1.2.3"),
                bump_aliases: true,
                existing_tags: existing(&["2.0.0", "1.3.0", "1.2.1", "3.0.0-rc.1"]),
                ..Default::default()
            },
            &["1.2.3", "1.2"],
        );
        check(
            TagRequest {
                version: v("1.2.3"),
                variant: Some("slim".into()),
                bump_aliases: true,
                existing_tags: existing(&["2.0.0", "1.1.0-slim"]),
                ..Default::default()
            },
            &["1.2.3-slim", "slim", "1-slim", "1.2-slim"],
        );
        // Prereleases never move aliases.
        check(
            TagRequest {
                version: v("2.0.0-rc.1"),
                bump_aliases: true,
                ..Default::default()
            },
            &["2.0.0-rc.1"],
        );
        check(
            TagRequest {
                source_tag: Some("x".into()),
                version: v("1.0.0"),
                additional: existing(&["pre-a", "x", "pre-b"]),
                ..Default::default()
            },
            &["x", "1.0.0", "pre-a", "pre-b"],
        );
    }

    #[test]
    fn parses_lenient_versions() {
        for (input, expect) in [
            ("1", Ok("1.0.0")),
            ("v1.2", Ok("1.2.0")),
            ("1.2.3-rc.1", Ok("1.2.3-rc.1")),
            ("1.2-beta", Ok("1.2.0-beta")),
            ("latest", Err(())),
        ] {
            let got = parse_version(input).map(|v| v.to_string()).map_err(|_| ());
            assert_eq!(got, expect.map(str::to_owned), "{input}");
        }
    }
}
