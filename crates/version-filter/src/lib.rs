//! `version-filter`: Tag filtering and ordering shared by the registry resources: regex, semver ranges, variants.
//!
//! Being written (issues 4 and 5).
