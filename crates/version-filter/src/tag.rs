//! Reading versions out of tags: strict (`x.y.z[-pre][+build]`, for registry-tag) and lenient
//! (`1`, `1.2`, `v1.2.3`, for registry-image), and registry-image's variant and prerelease
//! rules.
//!
//! Numbers with a leading zero (`01.2.3`) are never versions: they are how dates and build
//! numbers are written, and semver forbids them.

use semver::{BuildMetadata, Prerelease, Version};

use crate::range::Range;

/// The tag as strict semver `x.y.z[-pre][+build]`, or `None`.
pub fn parse_strict(tag: &str) -> Option<Version> {
    Version::parse(tag).ok()
}

/// A version read leniently from a tag, with how many numbers the tag spelled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagVersion {
    /// The version (missing numbers are 0: `1.2` is `1.2.0`).
    pub version: Version,
    /// 1 for `1`, 2 for `1.2`, 3 for `1.2.3`: a more specific tag wins among tags of one image.
    pub precision: u8,
}

/// The tag as a lenient version: an optional `v`, one to three numbers, an optional
/// `-prerelease` (only after three numbers… or fewer: `1.2-rc.1` is accepted too) and an
/// optional `+build`. `None` when it is not one.
pub fn parse_lenient(tag: &str) -> Option<TagVersion> {
    let body = tag.strip_prefix('v').unwrap_or(tag);
    let (body, build) = match body.split_once('+') {
        Some((_, "")) => return None,
        Some((b, build)) => (b, BuildMetadata::new(build).ok()?),
        None => (body, BuildMetadata::EMPTY),
    };
    let (numbers, pre) = match body.split_once('-') {
        Some((_, "")) => return None,
        Some((n, p)) => (n, Prerelease::new(p).ok()?),
        None => (body, Prerelease::EMPTY),
    };
    let mut values = [0u64; 3];
    let mut precision = 0u8;
    for part in numbers.split('.') {
        let slot = values.get_mut(usize::from(precision))?;
        let valid = !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'));
        if !valid {
            return None;
        }
        *slot = part.parse().ok()?;
        precision += 1;
    }
    let mut version = Version::new(values[0], values[1], values[2]);
    version.pre = pre;
    version.build = build;
    Some(TagVersion { version, precision })
}

/// The prerelease kinds recognised without configuration.
pub const DEFAULT_PRERELEASE_PREFIXES: [&str; 3] = ["alpha", "beta", "rc"];

/// registry-image's semver mode: which tags count as versions, and which of those to keep.
#[derive(Debug, Clone, Default)]
pub struct ImageSemverFilter {
    /// Keep only versions in this range.
    pub constraint: Option<Range>,
    /// Only tags ending in `-<variant>` (stripped before parsing); the bare variant is that
    /// variant's `latest`.
    pub variant: Option<String>,
    /// Keep prereleases (those starting with `alpha`, `beta`, `rc` or one of
    /// `pre_release_prefixes`).
    pub pre_releases: bool,
    /// Extra prerelease prefixes.
    pub pre_release_prefixes: Vec<String>,
}

impl ImageSemverFilter {
    /// The version a tag stands for, or `None` when the filter drops it.
    ///
    /// Rules: with a variant, the tag must end in `-<variant>` and is parsed without it;
    /// without one, a tag whose `-suffix` is not a recognised prerelease is another variant
    /// and dropped (`1.2.3-alpine`). Recognised prereleases (`rc.1`, `beta2`, …) are kept only
    /// with `pre_releases`. Then the constraint applies.
    pub fn version_of(&self, tag: &str) -> Option<TagVersion> {
        let candidate = match &self.variant {
            Some(variant) => tag.strip_suffix(variant.as_str())?.strip_suffix('-')?,
            None => tag,
        };
        let parsed = parse_lenient(candidate)?;
        let pre = parsed.version.pre.as_str();
        if !pre.is_empty() {
            // `rc.1-alpine` is a prerelease of another variant, not of this image.
            let names_variant = |rest: &str| {
                rest.split('-')
                    .skip(1)
                    .any(|part| part.starts_with(|c: char| c.is_ascii_alphabetic()))
            };
            let recognised = DEFAULT_PRERELEASE_PREFIXES
                .iter()
                .copied()
                .chain(self.pre_release_prefixes.iter().map(String::as_str))
                .any(|prefix| {
                    pre.strip_prefix(prefix)
                        .is_some_and(|rest| !names_variant(rest))
                });
            if !recognised || !self.pre_releases {
                return None;
            }
        }
        if let Some(range) = &self.constraint
            && !range.matches(&parsed.version)
        {
            return None;
        }
        Some(parsed)
    }

    /// Whether `tag` plays the role of `latest`: `latest` itself, or the bare variant.
    pub fn is_latest(&self, tag: &str) -> bool {
        match &self.variant {
            Some(variant) => tag == variant,
            None => tag == "latest",
        }
    }
}
