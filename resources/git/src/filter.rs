//! Which commits and tags count as versions: `paths`/`ignore_paths`, commit messages
//! (`commit_filter`, ci-skip) and tag names (`tag_filter`, `tag_regex`).
//!
//! The rules follow git's own (pathspecs, `--grep` basic regular expressions, `git tag --list`
//! globs) because pipelines were written against the official resource, which shells out to git.
//! This module only decides; it never fetches.

use std::cell::RefCell;
use std::path::Path;

use git2::{Commit, DiffOptions, Oid, Repository};
use globset::{Glob, GlobBuilder, GlobMatcher};
use regex::Regex;
use resource_protocol::InvalidRequest;

use crate::config::Source;

/// One git pathspec (no magic): a literal path or directory prefix, or a wildcard pattern whose
/// `*` also matches `/`.
#[derive(Debug, Clone)]
struct Pathspec {
    literal: String,
    glob: Option<GlobMatcher>,
}

impl Pathspec {
    fn new(pattern: &str, field: &str) -> Result<Self, InvalidRequest> {
        let literal = pattern
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let has_wildcard = literal.contains(['*', '?', '[']);
        let glob = if has_wildcard {
            let glob = GlobBuilder::new(&literal)
                .literal_separator(false)
                .build()
                .map_err(|err| InvalidRequest::new(format!("{field}: {err}")))?;
            Some(glob.compile_matcher())
        } else {
            None
        };
        Ok(Self { literal, glob })
    }

    fn matches(&self, path: &str) -> bool {
        if self.literal.is_empty() || self.literal == "." {
            return true;
        }
        if path == self.literal
            || (path.starts_with(&self.literal)
                && path.as_bytes().get(self.literal.len()) == Some(&b'/'))
        {
            return true;
        }
        self.glob.as_ref().is_some_and(|g| g.is_match(path))
    }
}

/// `paths` and `ignore_paths`: a commit counts when it changes (against its first parent) a file
/// matched by `paths` (everything when empty) and not by `ignore_paths`.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    include: Vec<Pathspec>,
    exclude: Vec<Pathspec>,
    memo: RefCell<Vec<(Oid, Vec<Option<Oid>>)>>,
}

impl PathFilter {
    /// The filter of `source`.
    pub fn from_source(source: &Source) -> Result<Self, InvalidRequest> {
        let compile = |patterns: &[String], name: &str| {
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| Pathspec::new(p, &format!("source.{name}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            include: compile(&source.paths, "paths")?,
            exclude: compile(&source.ignore_paths, "ignore_paths")?,
            memo: RefCell::new(Vec::new()),
        })
    }

    /// Whether the filter lets every commit through.
    pub fn is_noop(&self) -> bool {
        self.exclude.is_empty() && self.include.iter().all(|p| p.matches(""))
    }

    /// Whether a changed file at `path` counts.
    pub fn matches_path(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(path)))
            && !self.exclude.iter().any(|p| p.matches(path))
    }

    /// The ids of the literal `paths` in tree `tree_id`. A first-parent walk asks for each
    /// tree twice (as a commit's and as its child's parent's), so the last two are remembered.
    fn literal_ids(
        &self,
        repo: &Repository,
        tree_id: Oid,
    ) -> Result<Vec<Option<Oid>>, git2::Error> {
        let mut memo = self.memo.borrow_mut();
        if let Some((_, ids)) = memo.iter().find(|(id, _)| *id == tree_id) {
            return Ok(ids.clone());
        }
        let tree = repo.find_tree(tree_id)?;
        let ids: Vec<Option<Oid>> = self
            .include
            .iter()
            .map(|p| tree.get_path(Path::new(&p.literal)).ok().map(|e| e.id()))
            .collect();
        if memo.len() >= 2 {
            memo.remove(0);
        }
        memo.push((tree_id, ids.clone()));
        Ok(ids)
    }

    /// Whether `commit` changes a file that counts, compared with its first parent.
    pub fn commit_matches(
        &self,
        repo: &Repository,
        commit: &Commit<'_>,
    ) -> Result<bool, git2::Error> {
        if self.is_noop() {
            return Ok(true);
        }
        let parent = commit.parent(0).ok();
        if let Some(parent) = &parent {
            if parent.tree_id() == commit.tree_id() {
                return Ok(false);
            }
            // Only literal paths: compare the entries' ids instead of diffing whole trees.
            if self.exclude.is_empty() && self.include.iter().all(|p| p.glob.is_none()) {
                let ours = self.literal_ids(repo, commit.tree_id())?;
                let theirs = self.literal_ids(repo, parent.tree_id())?;
                return Ok(ours != theirs);
            }
        }
        let tree = commit.tree()?;
        let parent_tree = match &parent {
            Some(parent) => Some(parent.tree()?),
            None => None,
        };
        let mut options = DiffOptions::new();
        options.skip_binary_check(true).ignore_submodules(false);
        let diff = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut options))?;
        let found = diff.deltas().any(|delta| {
            [delta.new_file().path(), delta.old_file().path()]
                .into_iter()
                .flatten()
                .filter_map(|p| p.to_str())
                .any(|p| self.matches_path(p))
        });
        Ok(found)
    }
}

/// `commit_filter` and ci-skip, on commit messages.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    include: Vec<Regex>,
    include_all: bool,
    exclude: Vec<Regex>,
    exclude_all: bool,
    ci_skip: Option<Regex>,
}

impl MessageFilter {
    /// The filter of `source`.
    pub fn from_source(source: &Source) -> Result<Self, InvalidRequest> {
        let filter = source.commit_filter.clone().unwrap_or_default();
        let compile = |patterns: &[String], name: &str| {
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    grep_regex(p).map_err(|err| {
                        InvalidRequest::new(format!(
                            "source.commit_filter.{name}[{i}]: invalid regular expression: {}",
                            one_line(&err.to_string())
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let ci_skip = if source.disable_ci_skip.unwrap_or(false) {
            None
        } else {
            grep_regex(r"\[ci\sskip\]\|\[skip\sci\]").ok()
        };
        Ok(Self {
            include: compile(&filter.include, "include")?,
            include_all: filter.include_all_match.unwrap_or(false),
            exclude: compile(&filter.exclude, "exclude")?,
            exclude_all: filter.exclude_all_match.unwrap_or(false),
            ci_skip,
        })
    }

    /// Whether every message passes.
    pub fn is_noop(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.ci_skip.is_none()
    }

    /// Whether a commit with this message counts.
    pub fn matches(&self, message: &str) -> bool {
        let hits = |patterns: &[Regex], all: bool| {
            if all {
                patterns.iter().all(|r| r.is_match(message))
            } else {
                patterns.iter().any(|r| r.is_match(message))
            }
        };
        if !self.include.is_empty() && !hits(&self.include, self.include_all) {
            return false;
        }
        if !self.exclude.is_empty() && hits(&self.exclude, self.exclude_all) {
            return false;
        }
        !self.ci_skip.as_ref().is_some_and(|r| r.is_match(message))
    }
}

/// A `git log --grep` pattern (a POSIX basic regular expression with GNU extensions, matched
/// line by line) as a Rust regex.
pub fn grep_regex(pattern: &str) -> Result<Regex, regex::Error> {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push_str("(?m)");
    let mut chars = pattern.chars().peekable();
    let mut in_bracket = false;
    while let Some(c) = chars.next() {
        if in_bracket {
            match c {
                ']' => {
                    in_bracket = false;
                    out.push(']');
                }
                '\\' | '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            continue;
        }
        match c {
            '\\' => match chars.next() {
                Some(n @ ('(' | ')' | '{' | '}' | '|' | '+' | '?')) => out.push(n),
                Some('<' | '>') => out.push_str(r"\b"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str(r"\\"),
            },
            '(' | ')' | '{' | '}' | '|' | '+' | '?' => {
                out.push('\\');
                out.push(c);
            }
            '[' => {
                in_bracket = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str(r"\]");
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    Regex::new(&out)
}

/// `tag_filter` (a `git tag --list` glob) or `tag_regex` (an extended regex matching the whole
/// tag name).
#[derive(Debug, Clone)]
pub enum TagFilter {
    /// `tag_filter`.
    Glob(GlobMatcher),
    /// `tag_regex`.
    Regex(Regex),
}

impl TagFilter {
    /// The tag filter of `source`, if it is in tag mode.
    pub fn from_source(source: &Source) -> Result<Option<Self>, InvalidRequest> {
        let filter = source
            .tag_filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty());
        let regex = source
            .tag_regex
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty());
        match (filter, regex) {
            (Some(glob), None) => {
                let glob = Glob::new(glob).map_err(|err| {
                    InvalidRequest::new(format!(
                        "source.tag_filter: {}",
                        one_line(&err.to_string())
                    ))
                })?;
                Ok(Some(Self::Glob(glob.compile_matcher())))
            }
            (None, Some(regex)) => {
                let regex = Regex::new(&format!("^(?:{regex})$")).map_err(|err| {
                    InvalidRequest::new(format!(
                        "source.tag_regex: invalid regular expression: {}",
                        one_line(&err.to_string())
                    ))
                })?;
                Ok(Some(Self::Regex(regex)))
            }
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(InvalidRequest::new(
                "source.tag_filter and source.tag_regex: set at most one of them",
            )),
        }
    }

    /// Whether tag `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Glob(glob) => glob.is_match(name),
            Self::Regex(regex) => regex.is_match(name),
        }
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(include: &[&str], exclude: &[&str]) -> PathFilter {
        let source = Source {
            paths: include.iter().map(|s| s.to_string()).collect(),
            ignore_paths: exclude.iter().map(|s| s.to_string()).collect(),
            ..Source::default()
        };
        PathFilter::from_source(&source).unwrap()
    }

    #[test]
    fn pathspecs_follow_git() {
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "any/file", true),
            (&["file-c"], &[], "file-c", true),
            (&["file-c"], &[], "file-cc", false),
            (&["dir"], &[], "dir/sub/file", true),
            (&["dir/"], &[], "dir/file", true),
            (&["dummy/*"], &[], "dummy/file-b", true),
            (&["**/file"], &[], "a/b/file", true),
            (&["file-*"], &["file-b"], "file-b", false),
            (&["file-*"], &["file-b"], "file-a", true),
            (&["*-file"], &[], "deep/another-file", true),
            (&["."], &["file-*"], "some-file", true),
            (&["."], &["file-*"], "file-a", false),
            (&[], &["docs"], "docs/readme", false),
        ];
        for (include, exclude, path, expect) in cases {
            let filter = paths(include, exclude);
            assert_eq!(
                filter.matches_path(path),
                *expect,
                "{include:?} {exclude:?} {path}"
            );
        }
        assert!(paths(&[], &[]).is_noop());
        assert!(paths(&["."], &[]).is_noop());
        assert!(!paths(&["a"], &[]).is_noop());
    }

    #[test]
    fn grep_patterns_are_basic_regexes() {
        let cases = [
            ("chore(release):", "chore(release): auto-publish", true),
            ("chore(release):", "chorerelease: x", false),
            (r"\[ci\sskip\]", "fix [ci skip]", true),
            (r"\[ci\sskip\]\|\[skip\sci\]", "x\n[skip ci]", true),
            ("a+", "a+", true),
            ("a+", "aa", false),
            (r"a\+", "aa", true),
            ("^fix", "chore\nfix: it", true),
            ("not skipped", "not skipped commit", true),
            ("[0-9]x", "5x", true),
        ];
        for (pattern, message, expect) in cases {
            let regex = grep_regex(pattern).unwrap();
            assert_eq!(
                regex.is_match(message),
                expect,
                "{pattern:?} on {message:?}"
            );
        }
    }

    #[test]
    fn tag_filters() {
        let source = |filter: Option<&str>, regex: Option<&str>| Source {
            tag_filter: filter.map(String::from),
            tag_regex: regex.map(String::from),
            ..Source::default()
        };
        let glob = TagFilter::from_source(&source(Some("*-staging"), None))
            .unwrap()
            .unwrap();
        assert!(glob.matches("2.0-staging"));
        assert!(!glob.matches("2.0-production"));
        let regex = TagFilter::from_source(&source(None, Some("test.tag\\..*")))
            .unwrap()
            .unwrap();
        assert!(regex.matches("test.tag.2"));
        assert!(!regex.matches("xtest.tag.2"));
        assert!(
            TagFilter::from_source(&source(None, None))
                .unwrap()
                .is_none()
        );
        assert!(TagFilter::from_source(&source(Some("a"), Some("b"))).is_err());
    }
}
