//! `version-filter`: tag filtering and ordering shared by the registry resources.
//!
//! - [`Range`]: version ranges with the syntax people write in pipelines (`>= 3.0, < 4`,
//!   `^1.2`, `~1.2`, `= 1.2.3`, `1.x`, `||`, hyphen ranges), evaluated by semver precedence.
//! - [`parse_strict`] (registry-tag: `x.y.z[-pre][+build]`) and [`parse_lenient`]
//!   (registry-image: `1`, `1.2`, `v1.2.3`); `01.2.3` is never a version.
//! - [`ImageSemverFilter`]: registry-image's variant and prerelease rules.
//! - [`TagPattern`] (unanchored regexes) and [`SortMethod`] (alphabetical, numerical).
//!
//! Pure functions over strings: no I/O, no logging, nothing that can panic on any input.

#![deny(missing_docs)]

mod order;
mod range;
mod tag;

pub use order::{SortMethod, TagPattern, compare_numerically, sort_by_version};
pub use range::Range;
pub use semver::Version;
pub use tag::{
    DEFAULT_PRERELEASE_PREFIXES, ImageSemverFilter, TagVersion, parse_lenient, parse_strict,
};

/// Configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A regex that does not compile.
    #[error("invalid regex {pattern:?}: {message}")]
    InvalidRegex {
        /// The pattern.
        pattern: String,
        /// What the regex compiler said.
        message: String,
    },
    /// A version range that does not parse.
    #[error("invalid version range {range:?}: {message}")]
    InvalidRange {
        /// The range.
        range: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `sort.method` that is neither `alphabetical` nor `numerical`.
    #[error("unknown sort method {0:?}: expected alphabetical or numerical")]
    InvalidSortMethod(String),
}

#[cfg(test)]
mod tests;
