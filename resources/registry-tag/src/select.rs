//! Which tags `check` emits, in which order: filtering (regexp, then semver), de-duplication,
//! ordering and the cursor rules. Pure: fed tag names page by page, it keeps only the tags that
//! pass, so memory follows the answer, not the listing.

use std::collections::HashSet;

use version_filter::{SortMethod, Version, parse_strict, sort_by_version};

use crate::config::Settings;

/// How the API orders its listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingOrder {
    /// Docker Hub: newest first.
    NewestFirst,
    /// A registry: its own order, taken as oldest → newest.
    Registry,
}

/// The tags kept so far.
#[derive(Debug)]
pub struct Selection<'a> {
    settings: &'a Settings,
    kept: Vec<(String, Option<Version>)>,
    seen: HashSet<String>,
}

/// What `check` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Tags, oldest first.
    pub tags: Vec<String>,
    /// A warning for the build log, if the cursor was lost.
    pub warning: Option<String>,
}

impl<'a> Selection<'a> {
    /// An empty selection under `settings`' filters.
    pub fn new(settings: &'a Settings) -> Self {
        Self {
            settings,
            kept: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Offers one listed tag.
    pub fn offer(&mut self, tag: &str) {
        let s = self.settings;
        if let Some(regexp) = &s.regexp
            && !regexp.is_match(tag)
        {
            return;
        }
        let version = match &s.semver {
            Some(range) => {
                let stripped = match &s.semver_prefix {
                    Some(prefix) => prefix.remove_first(tag),
                    None => tag.into(),
                };
                match parse_strict(&stripped) {
                    Some(v) if range.matches(&v) => Some(v),
                    _ => return,
                }
            }
            None => None,
        };
        // A tag can appear twice when it was pushed while we paginated.
        if self.seen.insert(tag.to_owned()) {
            self.kept.push((tag.to_owned(), version));
        }
    }

    /// Orders the kept tags and applies the cursor (`given`: the version's tag).
    pub fn finish(self, listing: ListingOrder, given: Option<&str>) -> Outcome {
        let s = self.settings;
        let mut tags: Vec<String> = if s.semver.is_some() {
            let mut items: Vec<(String, Version)> = self
                .kept
                .into_iter()
                .filter_map(|(tag, v)| v.map(|v| (tag, v)))
                .collect();
            sort_by_version(&mut items);
            items.into_iter().map(|(tag, _)| tag).collect()
        } else {
            let mut tags: Vec<String> = self.kept.into_iter().map(|(tag, _)| tag).collect();
            match (s.sort, listing) {
                (Some(method), _) => sort_tags(method, &mut tags),
                (None, ListingOrder::NewestFirst) => tags.reverse(),
                (None, ListingOrder::Registry) => {}
            }
            tags
        };
        if s.reverse {
            tags.reverse();
        }
        let Some(given) = given else {
            return Outcome {
                tags,
                warning: None,
            };
        };
        match tags.iter().position(|t| t == given) {
            Some(at) => Outcome {
                tags: tags.split_off(at),
                warning: None,
            },
            None => {
                let warning = tags.last().map(|newest| {
                    format!(
                        "tag {given:?} of the current version is no longer listed (deleted, filtered out, or beyond source.pages); emitting the newest tag {newest:?} so the pipeline keeps moving"
                    )
                });
                let newest = tags.pop().into_iter().collect();
                Outcome {
                    tags: newest,
                    warning,
                }
            }
        }
    }
}

fn sort_tags(method: SortMethod, tags: &mut [String]) {
    method.sort(tags);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    /// Runs a selection: `source` is the JSON of the filter fields, `listed` the tags in
    /// listing order, `given` the cursor; compares with `expect` (space-separated) and whether
    /// a warning was given.
    fn check(
        source: serde_json::Value,
        order: ListingOrder,
        listed: &str,
        given: Option<&str>,
        expect: &str,
        warns: bool,
    ) {
        let mut json = source.clone();
        json["uri"] = "http://127.0.0.1:1/v2/app".into();
        let parsed: Source = serde_json::from_value(json).unwrap();
        let settings = parsed.validate().unwrap();
        let mut selection = Selection::new(&settings);
        for tag in listed.split_whitespace() {
            selection.offer(tag);
        }
        let outcome = selection.finish(order, given);
        assert_eq!(
            outcome.tags.join(" "),
            expect,
            "{source} {order:?} given {given:?} listed {listed}"
        );
        assert_eq!(outcome.warning.is_some(), warns, "{source}: {outcome:?}");
    }

    use ListingOrder::{NewestFirst, Registry};
    use serde_json::json;

    const RUBY: &str = "3.3.0-alpine 3.3.0 3.2.2-alpine 3.2.2 latest alpine 2.7.8-alpine 2.7.8 \
                        2.7.0 2.6.10 3.0.0-rc1 01.2.3 1.2 v3.1.0 3.1.0-slim-bookworm";

    #[test]
    fn filters_and_orders() {
        let table: Vec<(serde_json::Value, ListingOrder, &str, &str)> = vec![
            // No filters: Hub order reversed, registry order kept.
            (json!({}), NewestFirst, "c b a", "a b c"),
            (json!({}), Registry, "c b a", "c b a"),
            // Duplicates from a push while paginating.
            (json!({}), NewestFirst, "c b b a a", "a b c"),
            // regexp, unanchored and anchored.
            (
                json!({"regexp": "alpine"}),
                NewestFirst,
                RUBY,
                "2.7.8-alpine alpine 3.2.2-alpine 3.3.0-alpine",
            ),
            (
                json!({"regexp": "^[0-9]+[.][0-9]+[.][0-9]+-alpine$"}),
                NewestFirst,
                RUBY,
                "2.7.8-alpine 3.2.2-alpine 3.3.0-alpine",
            ),
            // semver: strict parse, junk dropped, ascending.
            (
                json!({"semver": {"matcher": ">= 2.7"}}),
                NewestFirst,
                RUBY,
                "2.7.0 2.7.8-alpine 2.7.8 3.0.0-rc1 3.1.0-slim-bookworm 3.2.2-alpine 3.2.2 3.3.0-alpine 3.3.0",
            ),
            (
                json!({"semver": {"matcher": ">= 2.7"}, "regexp": "^[0-9]+[.][0-9]+[.][0-9]+-alpine$"}),
                NewestFirst,
                RUBY,
                "2.7.8-alpine 3.2.2-alpine 3.3.0-alpine",
            ),
            (
                json!({"semver": {"matcher": ">= 3.0, < 3.3"}, "regexp": "^[0-9.]+$"}),
                Registry,
                RUBY,
                "3.2.2",
            ),
            (
                json!({"semver": {"matcher": "~2.7"}}),
                Registry,
                RUBY,
                "2.7.0 2.7.8-alpine 2.7.8",
            ),
            (
                json!({"semver": {"matcher": "^2 || = 3.2.2"}, "regexp": "^[0-9.]+$"}),
                Registry,
                RUBY,
                "2.6.10 2.7.0 2.7.8 3.2.2",
            ),
            (
                json!({"semver": {"matcher": "2.x"}, "regexp": "^[0-9.]+$"}),
                Registry,
                RUBY,
                "2.6.10 2.7.0 2.7.8",
            ),
            (
                json!({"semver": {"matcher": "= 1.2.3"}}),
                Registry,
                RUBY,
                "",
            ),
            (
                json!({"semver": {"matcher": "*"}, "regexp": "^v"}),
                Registry,
                RUBY,
                "",
            ),
            (
                json!({"semver": {"matcher": "*", "prefix": "^v"}, "regexp": "^v"}),
                Registry,
                RUBY,
                "v3.1.0",
            ),
            (
                json!({"semver": {"matcher": ">= 1", "prefix": "^release-"}}),
                Registry,
                "release-1.10.0 release-1.9.0 release-x v1.0.0 release-01.0.0",
                "release-1.9.0 release-1.10.0",
            ),
            // A prefix without a matcher does nothing.
            (json!({"semver": {"prefix": "v"}}), Registry, "b a", "b a"),
            // sort.method and sort.reverse.
            (
                json!({"sort": {"method": "alphabetical"}}),
                NewestFirst,
                "b c a",
                "a b c",
            ),
            (
                json!({"sort": {"method": "numerical"}}),
                Registry,
                "v10 v9 v100",
                "v9 v10 v100",
            ),
            (
                json!({"sort": {"method": "numerical", "reverse": true}}),
                Registry,
                "v10 v9 v100",
                "v100 v10 v9",
            ),
            (
                json!({"sort": {"reverse": "true"}}),
                NewestFirst,
                "c b a",
                "c b a",
            ),
            (
                json!({"semver": {"matcher": ">0"}, "sort": {"reverse": true}}),
                Registry,
                "1.0.0 3.0.0 2.0.0",
                "3.0.0 2.0.0 1.0.0",
            ),
            // Nothing left.
            (json!({"regexp": "^nothing$"}), Registry, RUBY, ""),
            (json!({}), Registry, "", ""),
        ];
        for (source, order, listed, expect) in table {
            check(source, order, listed, None, expect, false);
        }
    }

    #[test]
    fn applies_the_cursor() {
        let semver = json!({"semver": {"matcher": ">= 1"}});
        let table: Vec<(serde_json::Value, &str, Option<&str>, &str, bool)> = vec![
            (json!({}), "a b c d", Some("b"), "b c d", false),
            (json!({}), "a b c d", Some("d"), "d", false),
            (json!({}), "a b c d", Some("a"), "a b c d", false),
            // Gone: newest only, with a warning (the peer stalls with []).
            (json!({}), "a b c d", Some("gone"), "d", true),
            (json!({}), "", Some("gone"), "", false),
            (
                semver.clone(),
                "1.0.0 3.0.0 2.0.0",
                Some("2.0.0"),
                "2.0.0 3.0.0",
                false,
            ),
            (
                semver.clone(),
                "1.0.0 3.0.0 2.0.0",
                Some("0.9.0"),
                "3.0.0",
                true,
            ),
            (
                json!({"sort": {"reverse": true}}),
                "a b c",
                Some("b"),
                "b a",
                false,
            ),
        ];
        for (source, listed, given, expect, warns) in table {
            check(source, Registry, listed, given, expect, warns);
        }
    }

    proptest::proptest! {
        /// Whatever is listed: the answer holds listed tags only, each once; a listed cursor
        /// comes first; a lost cursor yields at most one tag.
        #[test]
        fn answers_are_consistent(
            listed in proptest::collection::vec("(v?[0-9]{1,2}[.][0-9][.][0-9](-rc)?|latest|[a-c]{1,3})", 0..40),
            cursor in proptest::option::of("[0-9][.][0-9][.][0-9]|[a-c]{1,2}"),
            use_semver in proptest::bool::ANY,
            hub in proptest::bool::ANY,
        ) {
            let mut json = if use_semver {
                json!({"semver": {"matcher": ">= 1, < 50 || 0.x", "prefix": "^v"}})
            } else {
                json!({"sort": {"method": "numerical"}})
            };
            json["uri"] = "http://127.0.0.1:1/v2/app".into();
            let settings = serde_json::from_value::<Source>(json).unwrap().validate().unwrap();
            let mut selection = Selection::new(&settings);
            for tag in &listed {
                selection.offer(tag);
            }
            let order = if hub { NewestFirst } else { Registry };
            let outcome = selection.finish(order, cursor.as_deref());
            let unique: HashSet<&String> = outcome.tags.iter().collect();
            proptest::prop_assert_eq!(unique.len(), outcome.tags.len());
            proptest::prop_assert!(outcome.tags.iter().all(|t| listed.contains(t)));
            if let Some(cursor) = &cursor {
                if outcome.warning.is_none() && !outcome.tags.is_empty() {
                    proptest::prop_assert_eq!(&outcome.tags[0], cursor);
                }
                if outcome.warning.is_some() {
                    proptest::prop_assert_eq!(outcome.tags.len(), 1);
                }
            }
        }
    }
}
