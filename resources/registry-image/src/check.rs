//! `check`: the three ways of finding versions (`{tag, digest}`) of an image.
//!
//! - tag mode: one `HEAD` of the tag (the digest of an index for multi-arch images);
//! - `tag_regex` mode: matching tags from the tag list, digests resolved concurrently;
//! - semver mode: tags that parse as semver, filtered, ordered and deduplicated per digest
//!   (see [`crate::semver_check`]).
//!
//! Versions are returned oldest first; nothing here writes to stdout.

use futures::{StreamExt, TryStreamExt};
use registry_client::{RegistryClient, RegistryError};
use resource_protocol::{InvalidRequest, Version};

use crate::config::Source;
use crate::registry::{self, Target};

/// How many manifests are resolved at once in the listing modes.
pub const DIGEST_LOOKUP_CONCURRENCY: usize = 16;
/// Environment variable overriding [`DIGEST_LOOKUP_CONCURRENCY`] (the benchmark sets `1` to
/// measure one-at-a-time lookups, as the peer resource does them).
pub const LOOKUP_CONCURRENCY_ENV: &str = "TRIBUTARY_LOOKUP_CONCURRENCY";

/// How many manifests to resolve at once: [`LOOKUP_CONCURRENCY_ENV`] or the default.
pub fn lookup_concurrency() -> usize {
    std::env::var(LOOKUP_CONCURRENCY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DIGEST_LOOKUP_CONCURRENCY)
}

/// Page size asked of `tags/list` (registries that ignore it answer everything at once).
pub const TAG_PAGE_SIZE: u32 = 1000;
/// Pages read at most (a million tags).
pub const MAX_TAG_PAGES: u32 = 1000;

/// A `{tag, digest}` version.
pub fn version(tag: &str, digest: &str) -> Version {
    Version::from([
        ("tag".to_owned(), tag.to_owned()),
        ("digest".to_owned(), digest.to_owned()),
    ])
}

/// The tag tracked in tag mode: `source.tag` as a string (numbers as written).
pub fn source_tag(source: &Source) -> Option<String> {
    source.tag.as_ref().map(|tag| match tag {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Runs `check` for `source`, given the newest known version.
pub fn check(source: &Source, given: Option<&Version>) -> anyhow::Result<Vec<Version>> {
    let target = registry::target(source)?;
    let clients = registry::pull_clients(source, &target)?;
    let runtime = registry::check_runtime()?;
    runtime
        .block_on(registry::first_success(&clients, async |client| {
            if let Some(tag) = source_tag(source) {
                check_tag(client, &tag, given).await
            } else if let Some(pattern) = &source.tag_regex {
                check_tag_regex(client, source, pattern).await
            } else {
                crate::semver_check::check_semver(client, source, given).await
            }
        }))
        .map_err(|err| describe(err, &target))
}

/// Adds the image name to errors that do not already name the repository.
pub fn describe(err: anyhow::Error, target: &Target) -> anyhow::Error {
    let named = format!("{err:#}").contains(&target.reference.repository);
    if err.downcast_ref::<InvalidRequest>().is_some() || named {
        err
    } else {
        err.context(target.repository.clone())
    }
}

/// Tag mode: `[given, current]` when the given digest still exists and differs, else
/// `[current]`; `[]` when the tag does not exist.
pub async fn check_tag(
    client: &RegistryClient,
    tag: &str,
    given: Option<&Version>,
) -> anyhow::Result<Vec<Version>> {
    let Some(current) = client.head_manifest(tag).await? else {
        return Ok(Vec::new());
    };
    let current_version = version(tag, &current.digest);
    let given_digest = given.and_then(|v| v.get("digest"));
    if let Some(given_digest) = given_digest
        && *given_digest != current.digest
        && client.head_manifest(given_digest).await?.is_some()
    {
        let given_tag = given.and_then(|v| v.get("tag")).map_or(tag, |t| t.as_str());
        return Ok(vec![version(given_tag, given_digest), current_version]);
    }
    Ok(vec![current_version])
}

/// `tag_regex` mode: every tag matching the (unanchored) regex, in listing order or by image
/// creation time.
async fn check_tag_regex(
    client: &RegistryClient,
    source: &Source,
    pattern: &str,
) -> anyhow::Result<Vec<Version>> {
    let regex = regex::Regex::new(pattern)
        .map_err(|err| InvalidRequest::new(format!("source.tag_regex: {err}")))?;
    let tags: Vec<String> = client
        .list_tags(TAG_PAGE_SIZE, MAX_TAG_PAGES)
        .await?
        .into_iter()
        .filter(|tag| regex.is_match(tag))
        .collect();
    let by_creation = source.created_at_sort.unwrap_or(false);
    let platform = crate::get::wanted_platform(source.platform.as_ref(), None);
    let resolved: Vec<Option<(Version, Option<String>)>> = futures::stream::iter(tags)
        .map(|tag| {
            let platform = platform.clone();
            async move {
                let Some(descriptor) = client.head_manifest(&tag).await? else {
                    return Ok::<_, RegistryError>(None);
                };
                let created = if by_creation {
                    crate::get::created_time(client, &descriptor.digest, &platform).await?
                } else {
                    None
                };
                Ok(Some((version(&tag, &descriptor.digest), created)))
            }
        })
        .buffered(lookup_concurrency())
        .try_collect()
        .await?;
    let mut versions: Vec<(Version, Option<String>)> = resolved.into_iter().flatten().collect();
    if by_creation {
        // RFC 3339 times in UTC compare as strings; a stable sort keeps listing order on ties.
        versions.sort_by(|a, b| a.1.cmp(&b.1));
    }
    Ok(versions.into_iter().map(|(v, _)| v).collect())
}
