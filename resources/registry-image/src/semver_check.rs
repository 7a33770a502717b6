//! Semver mode of `check`: tags that parse as semver (leniently: `1`, `1.2`, `v1.2.3`),
//! filtered by constraint, variant and prerelease rules (`version-filter`), ordered ascending,
//! one tag per digest, digests resolved with bounded concurrency.
//!
//! Tags below the given version are never requested: on a pipeline's steady state a check
//! costs one tag listing plus a HEAD per tag at or above the current version.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use registry_client::RegistryClient;
use resource_protocol::{InvalidRequest, Version};
use version_filter::{ImageSemverFilter, Range, TagVersion};

use crate::check::{MAX_TAG_PAGES, TAG_PAGE_SIZE, version};
use crate::config::Source;

/// The semver filter `source` describes.
pub fn filter(source: &Source) -> Result<ImageSemverFilter, InvalidRequest> {
    let constraint = source
        .semver_constraint
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(Range::parse)
        .transpose()
        .map_err(|err| InvalidRequest::new(format!("source.semver_constraint: {err}")))?;
    Ok(ImageSemverFilter {
        constraint,
        variant: source.variant.clone().filter(|v| !v.is_empty()),
        pre_releases: source.pre_releases.unwrap_or(false),
        pre_release_prefixes: source.pre_release_prefixes.clone(),
    })
}

/// Runs a semver-mode check.
pub async fn check_semver(
    client: &RegistryClient,
    source: &Source,
    given: Option<&Version>,
) -> anyhow::Result<Vec<Version>> {
    let filter = filter(source)?;
    let tags = client.list_tags(TAG_PAGE_SIZE, MAX_TAG_PAGES).await?;
    let given_version = given
        .and_then(|v| v.get("tag"))
        .and_then(|tag| filter.version_of(tag))
        .map(|t| t.version);
    let candidates = select_candidates(&filter, &tags, given_version.as_ref());
    let latest = tags.iter().find(|t| filter.is_latest(t)).cloned();
    let lookups = candidates
        .iter()
        .map(|(tag, _)| tag.clone())
        .chain(latest.clone().filter(|_| filter.constraint.is_none()));
    let digests: HashMap<String, String> = futures::stream::iter(lookups)
        .map(|tag| async move {
            let descriptor = client.head_manifest(&tag).await?;
            Ok::<_, registry_client::RegistryError>(descriptor.map(|d| (tag, d.digest)))
        })
        .buffer_unordered(crate::check::lookup_concurrency())
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await?;
    Ok(order_versions(candidates, &digests, latest.as_deref()))
}

/// The tags that are versions, at or above `given`, ascending.
pub fn select_candidates(
    filter: &ImageSemverFilter,
    tags: &[String],
    given: Option<&semver::Version>,
) -> Vec<(String, TagVersion)> {
    let mut candidates: Vec<(String, TagVersion)> = tags
        .iter()
        .filter_map(|tag| filter.version_of(tag).map(|v| (tag.clone(), v)))
        .filter(|(_, v)| given.is_none_or(|g| v.version.cmp_precedence(g).is_ge()))
        .collect();
    candidates.sort_by(|a, b| {
        a.1.version
            .cmp_precedence(&b.1.version)
            .then(a.1.precision.cmp(&b.1.precision))
    });
    candidates
}

/// One version per digest (final over prerelease, then the most specific tag), ascending,
/// then `latest` when it points at a digest no version has.
pub fn order_versions(
    candidates: Vec<(String, TagVersion)>,
    digests: &HashMap<String, String>,
    latest: Option<&str>,
) -> Vec<Version> {
    let rank = |v: &TagVersion| (v.version.pre.is_empty(), v.precision);
    let mut best: HashMap<&str, &(String, TagVersion)> = HashMap::new();
    for candidate in &candidates {
        let Some(digest) = digests.get(&candidate.0) else {
            continue;
        };
        let entry = best.entry(digest.as_str()).or_insert(candidate);
        if rank(&candidate.1) > rank(&entry.1) {
            *entry = candidate;
        }
    }
    let mut kept: Vec<&(String, TagVersion)> = best.values().copied().collect();
    kept.sort_by(|a, b| {
        a.1.version
            .cmp_precedence(&b.1.version)
            .then(a.1.precision.cmp(&b.1.precision))
            .then(a.0.cmp(&b.0))
    });
    let mut versions: Vec<Version> = kept
        .iter()
        .map(|(tag, _)| version(tag, &digests[tag]))
        .collect();
    if let Some(latest) = latest
        && let Some(digest) = digests.get(latest)
        && !best.contains_key(digest.as_str())
    {
        versions.push(version(latest, digest));
    }
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(source: serde_json::Value) -> ImageSemverFilter {
        let mut source = source;
        source["repository"] = "r".into();
        filter(&serde_json::from_value(source).unwrap()).unwrap()
    }

    /// `tags` as `tag=digest` pairs; returns the versions as `tag=digest`.
    fn check(source: serde_json::Value, tags: &[&str], given: Option<&str>, expect: &[&str]) {
        let filter = filter_of(source.clone());
        let pairs: Vec<(String, String)> = tags
            .iter()
            .map(|t| {
                let (tag, digest) = t.split_once('=').unwrap();
                (tag.to_owned(), digest.to_owned())
            })
            .collect();
        let names: Vec<String> = pairs.iter().map(|(t, _)| t.clone()).collect();
        let given = given.and_then(|g| filter.version_of(g)).map(|t| t.version);
        let candidates = select_candidates(&filter, &names, given.as_ref());
        let latest = names.iter().find(|t| filter.is_latest(t)).cloned();
        let digests: HashMap<String, String> = pairs.into_iter().collect();
        let latest = latest.filter(|_| filter.constraint.is_none());
        let got: Vec<String> = order_versions(candidates, &digests, latest.as_deref())
            .into_iter()
            .map(|v| format!("{}={}", v["tag"], v["digest"]))
            .collect();
        assert_eq!(got, expect, "{source} {tags:?} given {given:?}");
    }

    #[test]
    fn semver_mode_rules() {
        use serde_json::json;
        let tags = [
            "1=a",
            "1.0=a",
            "1.0.0=a",
            "1.1.0-rc.1=b",
            "1.1.0=b",
            "v1.2.0=c",
            "2.0.0-beta.1=d",
            "latest=e",
            "1.0.0-alpine=f",
            "alpine=g",
            "1.1.0-alpine=h",
            "foo=i",
        ];
        check(
            json!({}),
            &tags,
            None,
            &["1.0.0=a", "1.1.0=b", "v1.2.0=c", "latest=e"],
        );
        // latest pointing at a version's digest is not repeated.
        check(json!({}), &["1.0.0=a", "latest=a"], None, &["1.0.0=a"]);
        check(
            json!({"pre_releases": true}),
            &tags,
            None,
            &[
                "1.0.0=a",
                "1.1.0=b",
                "v1.2.0=c",
                "2.0.0-beta.1=d",
                "latest=e",
            ],
        );
        // A constraint drops latest.
        check(
            json!({"semver_constraint": ">= 1.1, < 2"}),
            &tags,
            None,
            &["1.1.0=b", "v1.2.0=c"],
        );
        check(
            json!({"semver_constraint": "~1.1"}),
            &tags,
            None,
            &["1.1.0=b"],
        );
        check(
            json!({"variant": "alpine"}),
            &tags,
            None,
            &["1.0.0-alpine=f", "1.1.0-alpine=h", "alpine=g"],
        );
        // Given a version, older tags are not considered; the given one stays.
        check(
            json!({}),
            &tags,
            Some("1.1.0"),
            &["1.1.0=b", "v1.2.0=c", "latest=e"],
        );
        check(json!({}), &[], None, &[]);
    }
}
