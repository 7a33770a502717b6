//! Tag patterns and orderings: unanchored regexes, `alphabetical`, `numerical` and semver
//! sorting. Sorts are stable, so equal keys keep the registry's order.

use std::cmp::Ordering;

use regex::Regex;
use semver::Version;

use crate::FilterError;

/// An unanchored regex over tags (`v[0-9]+` matches `xv1y`); anchor with `^…$` for whole tags.
#[derive(Debug, Clone)]
pub struct TagPattern {
    regex: Regex,
}

impl TagPattern {
    /// Compiles `pattern`; the error names it and says what is wrong.
    pub fn new(pattern: &str) -> Result<Self, FilterError> {
        let regex = Regex::new(pattern).map_err(|e| FilterError::InvalidRegex {
            pattern: pattern.to_owned(),
            message: e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        })?;
        Ok(Self { regex })
    }

    /// Whether the pattern occurs in `tag`.
    pub fn is_match(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }

    /// `tag` with the first match removed (`semver.prefix`).
    pub fn remove_first<'a>(&self, tag: &'a str) -> std::borrow::Cow<'a, str> {
        self.regex.replace(tag, "")
    }
}

/// `sort.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortMethod {
    /// Byte-wise string order.
    Alphabetical,
    /// By the number made of the tag's digits (`v1.10` is 110); tags without digits are 0.
    Numerical,
}

impl SortMethod {
    /// Parses `alphabetical` or `numerical`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        match text {
            "alphabetical" => Ok(Self::Alphabetical),
            "numerical" => Ok(Self::Numerical),
            other => Err(FilterError::InvalidSortMethod(other.to_owned())),
        }
    }

    /// Sorts `tags` in place, ascending and stable.
    pub fn sort<T: AsRef<str>>(self, tags: &mut [T]) {
        match self {
            Self::Alphabetical => tags.sort_by(|a, b| a.as_ref().cmp(b.as_ref())),
            Self::Numerical => tags.sort_by(|a, b| compare_numerically(a.as_ref(), b.as_ref())),
        }
    }
}

/// Compares the numbers made of each tag's digits, without overflow (any number of digits).
pub fn compare_numerically(a: &str, b: &str) -> Ordering {
    let digits = |s: &str| -> String {
        let all: String = s.chars().filter(char::is_ascii_digit).collect();
        all.trim_start_matches('0').to_owned()
    };
    let (a, b) = (digits(a), digits(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

/// Sorts `(tag, version)` pairs ascending by semver precedence (ties keep their order).
pub fn sort_by_version<T>(items: &mut [(T, Version)]) {
    items.sort_by(|a, b| a.1.cmp_precedence(&b.1));
}
