//! Data-driven tables for ranges, tag parsing, the image filter and orderings.

use super::*;

/// `range` against each `version`: `+v` must match, `-v` must not.
fn check_range(range: &str, expect: &str) {
    let parsed = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
    for item in expect.split_whitespace() {
        let (want, version) = item.split_at(1);
        let v = Version::parse(version).unwrap();
        assert_eq!(
            parsed.matches(&v),
            want == "+",
            "range {range:?} vs {version}: expected {want}"
        );
    }
}

#[test]
fn ranges_match() {
    let table = [
        (
            ">= 2.7",
            "+2.7.0 +2.7.1 +3.0.0 +2.7.0-alpine +2.7.1-alpine -2.6.9 -2.6.9-alpine",
        ),
        (">=2.7", "+2.7.0 -2.6.0"),
        (
            ">= 3.0, < 4",
            "+3.0.0 +3.9.9 -4.0.0 -4.0.0-rc.1 -2.9.9 +3.1.0-alpine",
        ),
        (">=3.0 <4", "+3.5.0 -4.0.0"),
        (">= 3.0,<4", "+3.5.0 -4.0.0"),
        ("^1.2", "+1.2.0 +1.9.9 -2.0.0 -1.1.9 -2.0.0-rc.1"),
        ("^1.2.3", "+1.2.3 +1.8.0 -1.2.2 -2.0.0"),
        ("^0.2.3", "+0.2.3 +0.2.9 -0.3.0"),
        ("^0.0.3", "+0.0.3 -0.0.4"),
        ("^0.2", "+0.2.0 +0.2.5 -0.3.0"),
        ("^1", "+1.0.0 +1.9.0 -2.0.0"),
        ("^0", "+0.0.0 +0.9.9 -1.0.0"),
        ("~1.2", "+1.2.0 +1.2.9 -1.3.0 -1.1.0"),
        ("~1.2.3", "+1.2.3 +1.2.9 -1.3.0 -1.2.2"),
        ("~1", "+1.0.0 +1.9.9 -2.0.0"),
        ("~> 1.5", "+1.5.0 +1.9.0 -2.0.0 -1.4.0"),
        ("~>1.5.3", "+1.5.3 +1.5.9 -1.6.0"),
        ("= 1.2.3", "+1.2.3 +1.2.3-alpine -1.2.4"),
        ("=1.2", "+1.2.0 +1.2.7 -1.3.0"),
        ("1.2.3", "+1.2.3 -1.2.4"),
        ("1.x", "+1.0.0 +1.99.0 -2.0.0 -0.9.0"),
        ("1.2.x", "+1.2.0 +1.2.9 -1.3.0"),
        ("1.*", "+1.5.0 -2.0.0"),
        ("1.X", "+1.5.0 -2.0.0"),
        ("*", "+0.0.0 +99.0.0 +1.0.0-rc.1"),
        ("x", "+3.0.0"),
        ("1", "+1.0.0 +1.9.9 -2.0.0"),
        (">1.2", "+1.3.0 -1.2.9 -1.2.0"),
        (">1.2.3", "+1.2.4 -1.2.3"),
        ("<1.2", "+1.1.9 -1.2.0"),
        ("<=1.2", "+1.2.9 -1.3.0"),
        ("<=1.2.3", "+1.2.3 -1.2.4"),
        ("<1.2.3", "+1.2.2 -1.2.3 -1.2.3-rc.1"),
        ("!= 1.3", "+1.2.9 -1.3.0 -1.3.5 +1.4.0"),
        ("!=1.3.1", "+1.3.0 -1.3.1 +1.3.2"),
        ("1.2 - 1.4", "+1.2.0 +1.4.9 -1.5.0 -1.1.9"),
        ("1.2.3 - 1.4.5", "+1.2.3 +1.4.5 -1.4.6 -1.2.2"),
        ("^1.2 || ^3", "+1.5.0 +3.1.0 -2.0.0 -4.0.0"),
        ("1.x || 5.0.0 - 7.2.3", "+1.2.3 +6.0.0 -2.4.0 -7.2.4 -8.0.0"),
        (
            "1.x || >=2.5.0 || 5.0.0 - 7.2.3",
            "+1.2.3 +2.5.0 +6.0.0 +8.0.0 -2.4.0 -0.9.0",
        ),
        (">= 1.0 < 2 || = 3.1.4", "+1.5.0 +3.1.4 -3.1.5 -2.0.0"),
        ("v1.2.3", "+1.2.3"),
        (">= v2", "+2.0.0 -1.0.0"),
        // A comparator with a prerelease compares full versions.
        (
            ">= 1.2.3-rc.1",
            "+1.2.3-rc.1 +1.2.3-rc.2 +1.2.3 -1.2.3-beta.1 -1.2.2",
        ),
        ("= 1.2.3-rc.1", "+1.2.3-rc.1 -1.2.3 -1.2.3-rc.2"),
        ("< 2.0.0-rc.1", "+2.0.0-beta -2.0.0-rc.1 +1.9.0"),
        ("=1.2.3+build", "+1.2.3"),
        (
            "18446744073709551614",
            "+18446744073709551614.0.0 -18446744073709551615.0.0",
        ),
    ];
    for (range, expect) in table {
        check_range(range, expect);
    }
}

#[test]
fn ranges_reject_nonsense() {
    let table = [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (">=", "operator `>=` without a version"),
        ("foo", "`foo` is not a version"),
        (">= 1.2.3.4", "is not a version"),
        ("01.2", "leading zero"),
        ("1.x.3", "a number after a wildcard"),
        ("1.2-rc.1", "a prerelease needs major.minor.patch"),
        ("^1 ||", "empty alternative"),
        ("|| ^1", "empty alternative"),
        ("> *", "matches nothing"),
        ("1.2 -", "without an upper end"),
        ("=> 1.2", "is not a version"),
        ("1.2.3-", "1.2.3-"),
        ("18446744073709551616", "is not a version"),
        ("^18446744073709551615", "too large"),
        ("18446744073709551615", "too large"),
    ];
    for (range, expect) in table {
        let err = Range::parse(range).unwrap_err().to_string();
        assert!(
            err.contains(expect) && err.starts_with("invalid version range"),
            "{range:?}: {err}"
        );
    }
}

#[test]
fn strict_and_lenient_parsing() {
    // (tag, strict version, lenient version/precision)
    let table = [
        ("1.2.3", Some("1.2.3"), Some(("1.2.3", 3))),
        ("0.0.0", Some("0.0.0"), Some(("0.0.0", 3))),
        ("1.2.3-rc.1", Some("1.2.3-rc.1"), Some(("1.2.3-rc.1", 3))),
        (
            "1.2.3+build.5",
            Some("1.2.3+build.5"),
            Some(("1.2.3+build.5", 3)),
        ),
        (
            "3.4.1-alpine",
            Some("3.4.1-alpine"),
            Some(("3.4.1-alpine", 3)),
        ),
        (
            "1.2.3-alpine3.18",
            Some("1.2.3-alpine3.18"),
            Some(("1.2.3-alpine3.18", 3)),
        ),
        ("v1.2.3", None, Some(("1.2.3", 3))),
        ("1.2", None, Some(("1.2.0", 2))),
        ("1", None, Some(("1.0.0", 1))),
        ("v2", None, Some(("2.0.0", 1))),
        ("1.2-rc.1", None, Some(("1.2.0-rc.1", 2))),
        ("01.2.3", None, None),
        ("1.02.3", None, None),
        ("1.2.03", None, None),
        ("1.2.3.4", None, None),
        ("latest", None, None),
        ("", None, None),
        ("v", None, None),
        ("1..3", None, None),
        ("1.2.3-", None, None),
        ("1.2.3-01", None, None),
        ("1.2.3+", None, None),
        ("-1.2.3", None, None),
        ("1.2.3 ", None, None),
        ("V1.2.3", None, None),
        ("vv1", None, None),
        ("1.2.3-ä", None, None),
        ("99999999999999999999.0.0", None, None),
        ("20230101", None, Some(("20230101.0.0", 1))),
        ("sha256-abc", None, None),
    ];
    for (tag, strict, lenient) in table {
        let got_strict = parse_strict(tag).map(|v| v.to_string());
        assert_eq!(got_strict.as_deref(), strict, "strict {tag:?}");
        let got_lenient = parse_lenient(tag).map(|t| (t.version.to_string(), t.precision));
        assert_eq!(
            got_lenient,
            lenient.map(|(v, p)| (v.to_owned(), p)),
            "lenient {tag:?}"
        );
    }
}

/// Runs the image filter over `tags` and returns the kept ones.
fn image_filter(filter: &ImageSemverFilter, tags: &str) -> Vec<String> {
    tags.split_whitespace()
        .filter(|t| filter.version_of(t).is_some())
        .map(str::to_owned)
        .collect()
}

#[test]
fn image_filter_variants_and_prereleases() {
    let tags = "1.2.3 1.2.3-alpine 1.2.3-rc.1 1.2.3-rc.1-alpine 1.2.3-beta2 1.2.3-dev.1 1.2.3-rc-1 \
                1.2 1 v1.3.0 latest alpine 01.0.0 1.2.3-alpine-extra 2.0.0 2.0.0-alpine \
                1.2.3-preview.4";
    let range = |r: &str| Some(Range::parse(r).unwrap());
    let table: Vec<(ImageSemverFilter, &str)> = vec![
        (ImageSemverFilter::default(), "1.2.3 1.2 1 v1.3.0 2.0.0"),
        (
            ImageSemverFilter {
                pre_releases: true,
                ..Default::default()
            },
            "1.2.3 1.2.3-rc.1 1.2.3-beta2 1.2.3-rc-1 1.2 1 v1.3.0 2.0.0",
        ),
        (
            ImageSemverFilter {
                pre_releases: true,
                pre_release_prefixes: vec!["dev".into(), "preview".into()],
                ..Default::default()
            },
            "1.2.3 1.2.3-rc.1 1.2.3-beta2 1.2.3-dev.1 1.2.3-rc-1 1.2 1 v1.3.0 2.0.0 1.2.3-preview.4",
        ),
        (
            ImageSemverFilter {
                variant: Some("alpine".into()),
                ..Default::default()
            },
            "1.2.3-alpine 2.0.0-alpine",
        ),
        (
            ImageSemverFilter {
                variant: Some("alpine".into()),
                pre_releases: true,
                ..Default::default()
            },
            "1.2.3-alpine 1.2.3-rc.1-alpine 2.0.0-alpine",
        ),
        (
            ImageSemverFilter {
                constraint: range("< 2"),
                ..Default::default()
            },
            "1.2.3 1.2 1 v1.3.0",
        ),
        (
            ImageSemverFilter {
                constraint: range("~1.2"),
                ..Default::default()
            },
            "1.2.3 1.2",
        ),
        (
            ImageSemverFilter {
                constraint: range(">= 1.2.3"),
                variant: Some("alpine".into()),
                ..Default::default()
            },
            "1.2.3-alpine 2.0.0-alpine",
        ),
    ];
    for (filter, expect) in table {
        assert_eq!(image_filter(&filter, tags).join(" "), expect, "{filter:?}");
    }
    let plain = ImageSemverFilter::default();
    assert!(plain.is_latest("latest") && !plain.is_latest("alpine"));
    let alpine = ImageSemverFilter {
        variant: Some("alpine".into()),
        ..Default::default()
    };
    assert!(alpine.is_latest("alpine") && !alpine.is_latest("latest"));
    assert_eq!(
        alpine.version_of("1.2-alpine").map(|t| t.precision),
        Some(2)
    );
}

#[test]
fn sorts_and_patterns() {
    let sort = |method: &str, tags: &str| {
        let mut tags: Vec<&str> = tags.split_whitespace().collect();
        SortMethod::parse(method).unwrap().sort(&mut tags);
        tags.join(" ")
    };
    let table = [
        ("alphabetical", "b a c 10 9 B", "10 9 B a b c"),
        ("numerical", "v10 v9 v1.10 v1.9 x", "x v9 v10 v19 v110"),
        ("numerical", "1.2.3 1.10.0 1.9.0", "1.2.3 1.9.0 1.10.0"),
        ("numerical", "007 7 a7 70", "007 7 a7 70"),
        (
            "numerical",
            "99999999999999999999999 1",
            "1 99999999999999999999999",
        ),
    ];
    for (method, input, expect) in table {
        let expect = expect.replace("v19", "v1.9").replace("v110", "v1.10");
        assert_eq!(sort(method, input), expect, "{method} {input}");
    }
    let err = SortMethod::parse("semver").unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown sort method \"semver\": expected alphabetical or numerical"
    );

    let p = TagPattern::new("v[0-9]+").unwrap();
    assert!(p.is_match("xv1y") && !p.is_match("v"));
    assert_eq!(
        TagPattern::new("^v").unwrap().remove_first("vv1.2.3"),
        "v1.2.3"
    );
    let err = TagPattern::new("(").unwrap_err().to_string();
    assert!(
        err.starts_with("invalid regex \"(\": ") && !err.contains('\n'),
        "{err}"
    );

    let mut items: Vec<(&str, Version)> = ["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0"]
        .iter()
        .map(|t| (*t, Version::parse(t).unwrap()))
        .collect();
    sort_by_version(&mut items);
    let order: Vec<&str> = items.iter().map(|(t, _)| *t).collect();
    assert_eq!(order, ["0.9.0", "1.2.0-rc.1", "1.2.0", "1.10.0"]);
}

proptest::proptest! {
    /// No input makes any parser panic, and whatever parses can be evaluated.
    #[test]
    fn never_panics(text in "[-0-9a-zA-Z.*^~<>=!|, +]{0,24}") {
        let v = Version::new(1, 2, 3);
        if let Ok(range) = Range::parse(&text) {
            let _ = range.matches(&v);
        }
        let _ = parse_lenient(&text);
        let _ = parse_strict(&text);
        let _ = ImageSemverFilter::default().version_of(&text);
        let _ = compare_numerically(&text, "1");
    }
}
