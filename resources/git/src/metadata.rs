//! What `in` and `out` report about a commit: the metadata entries, the files `in` writes into
//! `.git/`, and git's date formats.
//!
//! Contents match the official resource byte for byte where its tests pin them (the `%ai` date
//! format, which files end in a newline, the web `url` of hosted remotes). This module reads the
//! repository; it never changes it.

use std::path::Path;

use anyhow::Context;
use git2::{Commit, Oid, Repository, Time};
use resource_protocol::{InvalidRequest, MetadataField};

/// Longest commit message reported in metadata, in bytes.
const MAX_MESSAGE_BYTES: usize = 10 * 1024;

/// The metadata entries of `commit` in `repo` (whose `origin` gives the web link).
pub fn commit_metadata(
    repo: &Repository,
    commit: &Commit<'_>,
    origin: Option<&str>,
) -> Vec<MetadataField> {
    let author = commit.author();
    let committer = commit.committer();
    let author_name = String::from_utf8_lossy(author.name_bytes()).into_owned();
    let author_date = format_date(&author.when(), DateFormat::Iso);
    let mut fields = vec![
        MetadataField::new("commit", commit.id().to_string()),
        MetadataField::new("author", author_name.clone()),
        MetadataField::typed("author_date", author_date.clone(), "time"),
    ];
    let committer_name = String::from_utf8_lossy(committer.name_bytes()).into_owned();
    let committer_date = format_date(&committer.when(), DateFormat::Iso);
    // The official resource adds the committer only when it equals the author (its test suite
    // and users' pipelines rely on the entries as they are).
    if committer_name == author_name && committer_date == author_date {
        fields.push(MetadataField::new("committer", committer_name));
        fields.push(MetadataField::typed(
            "committer_date",
            committer_date,
            "time",
        ));
    }
    let branches = branches_at(repo, commit.id());
    if !branches.is_empty() {
        fields.push(MetadataField::new("branch", branches.join(",")));
    }
    let tags = tags_at(repo, commit.id());
    if !tags.is_empty() {
        fields.push(MetadataField::new("tags", tags.join(",")));
    }
    let message = commit_message(commit);
    let mut end = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    fields.push(MetadataField::typed("message", &message[..end], "message"));
    if let Some(url) = origin.and_then(|o| web_url(o, &commit.id().to_string())) {
        fields.push(MetadataField::new("url", url));
    }
    fields
}

/// The commit message exactly as stored (`git log --format=%B`).
pub fn commit_message(commit: &Commit<'_>) -> String {
    String::from_utf8_lossy(commit.message_raw_bytes()).into_owned()
}

/// Local branches whose tip is `oid`, sorted.
fn branches_at(repo: &Repository, oid: Oid) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(branches) = repo.branches(Some(git2::BranchType::Local)) {
        for (branch, _) in branches.flatten() {
            if branch.get().target() == Some(oid)
                && let Ok(Some(name)) = branch.name()
            {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names
}

/// Tags pointing at `oid` (directly or through an annotated tag), sorted (`git tag --points-at`).
fn tags_at(repo: &Repository, oid: Oid) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(tag_names) = repo.tag_names(None) {
        for name in tag_names.iter().flatten() {
            let Ok(reference) = repo.find_reference(&format!("refs/tags/{name}")) else {
                continue;
            };
            let direct = reference.target() == Some(oid);
            let peeled = reference.peel_to_commit().map(|c| c.id()).ok() == Some(oid);
            if direct || peeled {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names
}

/// The web page of `commit` for GitHub, GitLab, Gitea/Gogs and Bitbucket remotes.
pub fn web_url(origin: &str, commit: &str) -> Option<String> {
    let (scheme, rest) = ["https://", "http://", "ssh://git@", "git@"]
        .into_iter()
        .find_map(|p| origin.strip_prefix(p).map(|rest| (p, rest)))?;
    let (host, path) = rest.split_once('/')?;
    let (mut host, mut path) = (
        host.to_owned(),
        path.strip_suffix(".git").unwrap_or(path).to_owned(),
    );
    if scheme == "git@"
        && let Some((h, first)) = host.clone().split_once(':')
    {
        path = format!("{first}/{path}");
        host = h.to_owned();
    }
    let suffix = if host.contains("github") || host.contains("gogs") || host.contains("gitea") {
        "commit"
    } else if host.contains("gitlab") {
        "-/commit"
    } else if host.contains("bitbucket") {
        "commits"
    } else {
        return None;
    };
    Some(format!("https://{host}/{path}/{suffix}/{commit}"))
}

/// Options of `in` that shape the `.git/` files.
#[derive(Debug, Clone)]
pub struct GitFiles<'a> {
    /// The version's `ref` as answered (a SHA or a tag).
    pub returned_ref: &'a str,
    /// `params.short_ref_format`.
    pub short_ref_format: &'a str,
    /// `params.timestamp_format`, parsed.
    pub timestamp_format: &'a DateFormat,
    /// `git describe` output for HEAD (empty when describe found nothing).
    pub describe_ref: &'a str,
}

/// Writes the `.git/` files of the official resource for `commit` into `git_dir`.
pub fn write_git_files(
    git_dir: &Path,
    commit: &Commit<'_>,
    metadata: &[MetadataField],
    files: &GitFiles<'_>,
) -> anyhow::Result<()> {
    let field = |name: &str| {
        metadata
            .iter()
            .find(|f| f.name == name)
            .map(|f| format!("{}\n", f.value))
    };
    let author = commit.author();
    let short: String = files.returned_ref.chars().take(7).collect();
    let entries: Vec<(&str, String)> = vec![
        (
            "committer",
            String::from_utf8_lossy(author.email_bytes()).into_owned(),
        ),
        (
            "committer_name",
            String::from_utf8_lossy(author.name_bytes()).into_owned(),
        ),
        ("ref", format!("{}\n", files.returned_ref)),
        (
            "metadata.json",
            format!("{}\n", serde_json::to_string_pretty(metadata)?),
        ),
        ("short_ref", printf_s(files.short_ref_format, &short)),
        ("commit", field("commit").unwrap_or_default()),
        ("author", field("author").unwrap_or_default()),
        ("author_date", field("author_date").unwrap_or_default()),
        ("branch", field("branch").unwrap_or_default()),
        ("tags", field("tags").unwrap_or_default()),
        ("url", field("url").unwrap_or_default()),
        (
            "committer_date",
            field("committer_date").unwrap_or_default(),
        ),
        ("commit_message", commit_message(commit)),
        (
            "commit_timestamp",
            format!(
                "{}\n",
                format_date(&commit.committer().when(), files.timestamp_format.clone())
            ),
        ),
        ("describe_ref", format!("{}\n", files.describe_ref)),
    ];
    for (name, content) in entries {
        let path = git_dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// awk's `printf format, value` for the `%s` and `%%` conversions `short_ref_format` uses.
fn printf_s(format: &str, value: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut used = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s') => {
                if !used {
                    out.push_str(value);
                    used = true;
                }
            }
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// A `git log --date=` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    /// `iso8601`/`iso`: `2006-01-02 15:04:05 -0700`.
    Iso,
    /// `iso-strict`/`iso8601-strict`: `2006-01-02T15:04:05-07:00`.
    IsoStrict,
    /// `rfc`/`rfc2822`: `Mon, 2 Jan 2006 15:04:05 -0700`.
    Rfc,
    /// `short`: `2006-01-02`.
    Short,
    /// `raw`: `1136239445 -0700`.
    Raw,
    /// `unix`: `1136239445`.
    Unix,
    /// `default`: `Mon Jan 2 15:04:05 2006 -0700`.
    Default,
    /// `format:…` with strftime conversions.
    Strftime(String),
}

impl DateFormat {
    /// Parses `params.timestamp_format`.
    pub fn parse(value: &str) -> Result<Self, InvalidRequest> {
        Ok(match value.trim() {
            "" | "iso8601" | "iso" => Self::Iso,
            "iso-strict" | "iso8601-strict" => Self::IsoStrict,
            "rfc" | "rfc2822" => Self::Rfc,
            "short" => Self::Short,
            "raw" => Self::Raw,
            "unix" => Self::Unix,
            "default" => Self::Default,
            other => match other.strip_prefix("format:") {
                Some(format) => Self::Strftime(format.to_owned()),
                None => {
                    return Err(InvalidRequest::new(format!(
                        "params.timestamp_format: {other:?} is not supported (use iso8601, iso-strict, rfc, short, raw, unix, default or format:…)"
                    )));
                }
            },
        })
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down local time of a git timestamp, in its own offset.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    weekday: usize,
    offset_minutes: i32,
}

fn civil(time: &Time) -> Civil {
    let offset = time.offset_minutes();
    let local = time.seconds() + i64::from(offset) * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (year, month, day) = resource_protocol::timestamp::civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs % 3600 / 60,
        second: secs % 60,
        weekday: days.rem_euclid(7) as usize,
        offset_minutes: offset,
    }
}

fn offset(minutes: i32, colon: bool) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let abs = minutes.abs();
    if colon {
        format!("{sign}{:02}:{:02}", abs / 60, abs % 60)
    } else {
        format!("{sign}{:02}{:02}", abs / 60, abs % 60)
    }
}

/// Formats a git timestamp like `git log --date=<format>`.
pub fn format_date(time: &Time, format: DateFormat) -> String {
    let c = civil(time);
    let month = MONTHS[(c.month - 1) as usize];
    let day = DAYS[c.weekday];
    match format {
        DateFormat::Iso => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            offset(c.offset_minutes, false)
        ),
        DateFormat::IsoStrict => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            if c.offset_minutes == 0 {
                "Z".to_owned()
            } else {
                offset(c.offset_minutes, true)
            }
        ),
        DateFormat::Rfc => format!(
            "{day}, {} {month} {:04} {:02}:{:02}:{:02} {}",
            c.day,
            c.year,
            c.hour,
            c.minute,
            c.second,
            offset(c.offset_minutes, false)
        ),
        DateFormat::Short => format!("{:04}-{:02}-{:02}", c.year, c.month, c.day),
        DateFormat::Raw => format!("{} {}", time.seconds(), offset(c.offset_minutes, false)),
        DateFormat::Unix => time.seconds().to_string(),
        DateFormat::Default => format!(
            "{day} {month} {} {:02}:{:02}:{:02} {} {}",
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.year,
            offset(c.offset_minutes, false)
        ),
        DateFormat::Strftime(pattern) => strftime(&pattern, &c, time.seconds()),
    }
}

fn strftime(pattern: &str, c: &Civil, epoch: i64) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", c.year)),
            Some('y') => out.push_str(&format!("{:02}", c.year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{:02}", c.month)),
            Some('d') => out.push_str(&format!("{:02}", c.day)),
            Some('e') => out.push_str(&format!("{:2}", c.day)),
            Some('H') => out.push_str(&format!("{:02}", c.hour)),
            Some('M') => out.push_str(&format!("{:02}", c.minute)),
            Some('S') => out.push_str(&format!("{:02}", c.second)),
            Some('z') => out.push_str(&offset(c.offset_minutes, false)),
            Some('s') => out.push_str(&epoch.to_string()),
            Some('a') => out.push_str(DAYS[c.weekday]),
            Some('b') => out.push_str(MONTHS[(c.month - 1) as usize]),
            Some('F') => out.push_str(&format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)),
            Some('T') => out.push_str(&format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_like_git() {
        // 2023-11-14 22:13:20 UTC, a Tuesday; shown at +0100 it is 23:13:20.
        let utc = Time::new(1_700_000_000, 0);
        let plus_one = Time::new(1_700_000_000, 60);
        let cases = [
            (&utc, DateFormat::Iso, "2023-11-14 22:13:20 +0000"),
            (&plus_one, DateFormat::Iso, "2023-11-14 23:13:20 +0100"),
            (
                &plus_one,
                DateFormat::IsoStrict,
                "2023-11-14T23:13:20+01:00",
            ),
            (&utc, DateFormat::Rfc, "Tue, 14 Nov 2023 22:13:20 +0000"),
            (&utc, DateFormat::Short, "2023-11-14"),
            (&plus_one, DateFormat::Raw, "1700000000 +0100"),
            (&utc, DateFormat::Unix, "1700000000"),
            (&utc, DateFormat::Default, "Tue Nov 14 22:13:20 2023 +0000"),
            (
                &utc,
                DateFormat::Strftime("%Y%m%d-%H%M".into()),
                "20231114-2213",
            ),
        ];
        for (time, format, expect) in cases {
            assert_eq!(format_date(time, format.clone()), expect, "{format:?}");
        }
        let before_epoch = Time::new(-86_400, -300);
        assert_eq!(
            format_date(&before_epoch, DateFormat::Iso),
            "1969-12-30 19:00:00 -0500"
        );
    }

    #[test]
    fn web_urls_for_hosted_remotes() {
        let sha = "abc";
        let cases = [
            (
                "https://github.com/concourse/git-resource.git",
                Some("https://github.com/concourse/git-resource/commit/abc"),
            ),
            (
                "git@github.com:concourse/git-resource.git",
                Some("https://github.com/concourse/git-resource/commit/abc"),
            ),
            (
                "ssh://git@gitlab.com/group/sub/proj.git",
                Some("https://gitlab.com/group/sub/proj/-/commit/abc"),
            ),
            (
                "https://bitbucket.org/team/repo",
                Some("https://bitbucket.org/team/repo/commits/abc"),
            ),
            (
                "https://gitea.example.com/o/r.git",
                Some("https://gitea.example.com/o/r/commit/abc"),
            ),
            ("https://example.com/o/r.git", None),
            ("/local/path", None),
        ];
        for (origin, expect) in cases {
            assert_eq!(web_url(origin, sha).as_deref(), expect, "{origin}");
        }
    }

    #[test]
    fn short_ref_format_is_printf() {
        assert_eq!(printf_s("%s", "abcdefg"), "abcdefg");
        assert_eq!(printf_s("test-%s", "abcdefg"), "test-abcdefg");
        assert_eq!(printf_s("100%% %s", "a"), "100% a");
    }
}
