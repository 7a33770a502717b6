//! `check` against local repositories, mirroring concourse/git-resource's `test/check.sh`:
//! first-parent order, cursors, paths, ci-skip, commit filters, tag modes, version_depth.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::support::{Env, Repo, refs};

/// Runs check with `extra` merged into `{"uri": repo}` and asserts the answer.
fn expect(env: &Env, repo: &Repo, extra: Value, cursor: Option<&str>, expected: Value) {
    let mut source = json!({ "uri": repo.uri() });
    for (k, v) in extra.as_object().unwrap() {
        source[k] = v.clone();
    }
    let version = cursor.map(|c| json!({ "ref": c }));
    let answer = env.check(&source, version).json();
    assert_eq!(answer, expected, "source {source} cursor {cursor:?}");
}

#[test]
fn from_head_and_from_a_ref() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("some-file", "one");
    let r2 = repo.commit("some-file", "two");
    let r3 = repo.commit("some-file", "three");
    expect(&env, &repo, json!({}), None, refs(&[&r3]));
    expect(&env, &repo, json!({}), Some(&r1), refs(&[&r1, &r2, &r3]));
    expect(&env, &repo, json!({}), Some(&r3), refs(&[&r3]));
    // Incremental: the cache already has r1..r3; one new commit arrives.
    let r4 = repo.commit("some-file", "four");
    expect(&env, &repo, json!({}), Some(&r3), refs(&[&r3, &r4]));
    // An unknown version is as if there were none.
    expect(&env, &repo, json!({}), Some("bogus-ref"), refs(&[&r4]));
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    expect(&env, &repo, json!({}), Some(unknown), refs(&[&r4]));
}

#[test]
fn first_parent_order_and_merges() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("some-master-file", "one");
    let r2 = repo.commit("file", "two");
    let _b1 = repo.commit_on("some-branch", "some-branch-file", "branch");
    let r3 = repo.commit("some-master-file", "three");
    expect(&env, &repo, json!({}), Some(&r1), refs(&[&r1, &r2, &r3]));
    let paths = json!({"paths": ["some-master-file", "some-branch-file"]});
    expect(&env, &repo, paths.clone(), Some(&r1), refs(&[&r1, &r3]));
    let r4 = repo.merge("some-branch");
    expect(
        &env,
        &repo,
        json!({}),
        Some(&r1),
        refs(&[&r1, &r2, &r3, &r4]),
    );
    // The merge changes some-branch-file against its first parent, so it counts.
    expect(&env, &repo, paths, Some(&r1), refs(&[&r1, &r3, &r4]));
}

#[test]
fn order_is_first_parent_not_date() {
    let (env, repo) = (Env::new(), Repo::new());
    // A commit dated far in the future, then an ordinary one.
    let date = "@4102444800 +0000";
    let mut command = testbed::git::git_command(&repo.path);
    std::fs::write(repo.path.join("f"), "future").unwrap();
    testbed::git::git(&repo.path, &["add", "f"]);
    command
        .args(["commit", "-q", "-m", "future"])
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date);
    assert!(command.output().unwrap().status.success());
    let r1 = repo.head();
    let r2 = repo.commit("f", "two");
    let r3 = repo.commit("f", "three");
    expect(&env, &repo, json!({}), None, refs(&[&r3]));
    expect(
        &env,
        &repo,
        json!({"version_depth": 2}),
        None,
        refs(&[&r2, &r3]),
    );
    expect(&env, &repo, json!({}), Some(&r1), refs(&[&r1, &r2, &r3]));
}

#[test]
fn root_commits() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("f", "root");
    let r2 = repo.commit("f", "two");
    repo.git(&["checkout", "-q", "--orphan", "temp"]);
    repo.git(&["commit", "-q", "--allow-empty", "-m", "second root"]);
    let second_root = repo.head();
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&[
        "merge",
        "-q",
        "temp",
        "--allow-unrelated-histories",
        "-m",
        "merge",
    ]);
    let r3 = repo.head();
    expect(&env, &repo, json!({}), Some(&r1), refs(&[&r1, &r2, &r3]));
    expect(
        &env,
        &repo,
        json!({}),
        Some(&second_root),
        refs(&[&r1, &r2, &r3]),
    );
}

#[test]
fn paths_and_ignore_paths() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("file-a", "a");
    let r2 = repo.commit("file-b", "b");
    let r3 = repo.commit("file-c", "c");
    expect(
        &env,
        &repo,
        json!({"ignore_paths": ["file-c"]}),
        None,
        refs(&[&r2]),
    );
    expect(
        &env,
        &repo,
        json!({"ignore_paths": ["file-a"]}),
        Some(&r1),
        refs(&[&r2, &r3]),
    );
    expect(
        &env,
        &repo,
        json!({"ignore_paths": ["file-c"]}),
        Some(&r1),
        refs(&[&r1, &r2]),
    );
    expect(
        &env,
        &repo,
        json!({"paths": ["file-c"]}),
        None,
        refs(&[&r3]),
    );
    expect(
        &env,
        &repo,
        json!({"paths": ["file-c"]}),
        Some(&r1),
        refs(&[&r3]),
    );
    let both = json!({"paths": ["file-*"], "ignore_paths": ["file-b"]});
    expect(&env, &repo, both.clone(), None, refs(&[&r3]));
    expect(&env, &repo, both, Some(&r1), refs(&[&r1, &r3]));
    let r4 = repo.commit("some-file", "d");
    expect(
        &env,
        &repo,
        json!({"paths": ["."], "ignore_paths": ["file-*"]}),
        None,
        refs(&[&r4]),
    );
    expect(
        &env,
        &repo,
        json!({"paths": ["*-file"]}),
        None,
        refs(&[&r4]),
    );
}

#[test]
fn glob_and_directory_paths() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("a/file", "a");
    let r1 = repo.commit("a/b/file", "b");
    let _r2 = repo.commit("other", "c");
    expect(
        &env,
        &repo,
        json!({"paths": ["**/file"]}),
        None,
        refs(&[&r1]),
    );
    expect(&env, &repo, json!({"paths": ["a/b"]}), None, refs(&[&r1]));
    expect(&env, &repo, json!({"paths": ["a/"]}), None, refs(&[&r1]));
    let b = repo.commit_on("newbranch", "dummy/file-b", "on branch");
    expect(
        &env,
        &repo,
        json!({"paths": ["dummy/*"], "branch": "newbranch"}),
        None,
        refs(&[&b]),
    );
}

#[test]
fn ci_skip_and_commit_filters() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("f", "one");
    let _r2 = repo.commit("f", "skip me [ci skip]");
    let r3 = repo.commit("f", "not ci skipped");
    let r4 = repo.commit("f", "also [skip ci] this");
    let r5 = repo.commit("f", "five");
    expect(&env, &repo, json!({}), Some(&r1), refs(&[&r1, &r3, &r5]));
    expect(
        &env,
        &repo,
        json!({"disable_ci_skip": true}),
        Some(&r3),
        refs(&[&r3, &r4, &r5]),
    );
    expect(
        &env,
        &repo,
        json!({"commit_filter": {"exclude": ["five"]}}),
        Some(&r1),
        refs(&[&r1, &r3]),
    );
    expect(
        &env,
        &repo,
        json!({"commit_filter": {"include": ["not", "five"]}}),
        Some(&r1),
        refs(&[&r3, &r5]),
    );
    expect(
        &env,
        &repo,
        json!({"commit_filter": {"include": ["not", "five"], "include_all_match": true}}),
        Some(&r1),
        refs(&[]),
    );
}

#[test]
fn skipped_commits_without_a_version() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("f", "one");
    repo.commit("f", "[ci skip]");
    repo.commit("f", "[skip ci]");
    expect(&env, &repo, json!({}), None, refs(&[&r1]));
}

#[test]
fn conventional_commit_excludes_are_basic_regexes() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("f", "one");
    let r2 = repo.commit("f", "chore: update a thing");
    let _r3 = repo.commit("f", "chore(release): auto-publish");
    let r4 = repo.commit("f", "fix: a bug");
    expect(
        &env,
        &repo,
        json!({"commit_filter": {"exclude": ["chore(release):"]}}),
        Some(&r1),
        refs(&[&r1, &r2, &r4]),
    );
}

#[test]
fn empty_commits_count() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("f", "one");
    let r2 = repo.empty_commit("empty");
    expect(&env, &repo, json!({}), Some(&r1), refs(&[&r1, &r2]));
    expect(&env, &repo, json!({}), None, refs(&[&r2]));
}

#[test]
fn branches_and_version_depth() {
    let (env, repo) = (Env::new(), Repo::new());
    let _m = repo.commit("f", "main");
    let b1 = repo.commit_on("feature", "g", "feature one");
    let b2 = repo.commit_on("feature", "g", "feature two");
    let m2 = repo.commit("f", "main two");
    expect(
        &env,
        &repo,
        json!({"branch": "feature"}),
        None,
        refs(&[&b2]),
    );
    expect(
        &env,
        &repo,
        json!({"branch": "feature", "version_depth": "2"}),
        None,
        refs(&[&b1, &b2]),
    );
    expect(&env, &repo, json!({}), None, refs(&[&m2]));
    let run = env.check(&json!({"uri": repo.uri(), "branch": "nope"}), None);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("source.branch: branch \"nope\" not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn empty_remote_has_no_versions() {
    let (env, repo) = (Env::new(), Repo::new());
    expect(&env, &repo, json!({}), None, refs(&[]));
}

fn tag_version(tag: &str, commit: &str) -> Value {
    json!({ "ref": tag, "commit": commit })
}

/// The history of the official suite's tag tests: tags moved, tags on several commits.
fn tagged_repo() -> (Repo, Vec<String>) {
    let repo = Repo::new();
    let r1 = repo.commit("file-a", "one");
    repo.annotated_tag("1.0-staging");
    let r3 = repo.commit("file-b", "three");
    repo.annotated_tag("1.0-production");
    repo.annotated_tag("2.0-staging");
    let r6 = repo.commit("file-c", "six");
    repo.annotated_tag("2.0-staging");
    let r8 = repo.commit("file-b", "eight");
    repo.annotated_tag("2.0-production");
    let r10 = repo.commit("file-c", "ten");
    (repo, vec![r1, r3, r6, r8, r10])
}

#[test]
fn tag_filter_and_regex() {
    let env = Env::new();
    let (repo, r) = tagged_repo();
    let staging = json!([tag_version("2.0-staging", &r[2])]);
    expect(
        &env,
        &repo,
        json!({"tag_filter": "*-staging"}),
        None,
        staging.clone(),
    );
    expect(
        &env,
        &repo,
        json!({"tag_regex": ".*-staging"}),
        None,
        staging,
    );
    let tagged = |filter: &str, paths: Value| json!({"tag_filter": filter, "tag_behaviour": "match_tagged", "paths": paths});
    expect(
        &env,
        &repo,
        tagged("2*", json!(["file-c"])),
        None,
        json!([tag_version("2.0-staging", &r[2])]),
    );
    expect(
        &env,
        &repo,
        tagged("*-staging", json!(["file-b"])),
        None,
        json!([]),
    );
    expect(
        &env,
        &repo,
        tagged("*", json!(["file-b", "file-c"])),
        None,
        json!([tag_version("2.0-production", &r[3])]),
    );
    expect(&env, &repo, tagged("*", json!(["file-f"])), None, json!([]));
    expect(
        &env,
        &repo,
        tagged("4.0-*", json!(["file-c"])),
        None,
        json!([]),
    );
}

#[test]
fn tag_ancestors() {
    let env = Env::new();
    let (repo, r) = tagged_repo();
    let ancestors = |filter: &str, paths: Value| json!({"tag_filter": filter, "tag_behaviour": "match_tag_ancestors", "paths": paths});
    expect(
        &env,
        &repo,
        ancestors("2*", json!(["file-c"])),
        None,
        refs(&[&r[2]]),
    );
    expect(
        &env,
        &repo,
        ancestors("*-staging", json!(["file-b"])),
        None,
        refs(&[&r[1]]),
    );
    expect(
        &env,
        &repo,
        ancestors("2.*", json!(["file-a"])),
        None,
        refs(&[&r[0]]),
    );
    expect(
        &env,
        &repo,
        ancestors("1.*", json!(["file-c"])),
        None,
        refs(&[]),
    );
    expect(
        &env,
        &repo,
        ancestors("*", json!(["file-b", "file-c"])),
        None,
        refs(&[&r[3]]),
    );
    expect(
        &env,
        &repo,
        ancestors("4.0-*", json!(["file-c"])),
        None,
        refs(&[]),
    );
}

#[test]
fn tag_cursor_depth_and_branches() {
    let env = Env::new();
    let repo = Repo::new();
    repo.commit("f", "initial");
    let mut commits = Vec::new();
    for (i, tag) in [
        "1.0-staging",
        "1.0-production",
        "2.0-staging",
        "2.0-production",
        "3.0-staging",
    ]
    .iter()
    .enumerate()
    {
        commits.push(repo.commit_on("branch-a", "f", &format!("c{i}")));
        repo.git(&["tag", "-a", tag, "-m", tag, "branch-a"]);
    }
    let filter = json!({"tag_filter": "*-staging"});
    expect(
        &env,
        &repo,
        filter.clone(),
        None,
        json!([tag_version("3.0-staging", &commits[4])]),
    );
    let depth2 = json!({"tag_filter": "*-staging", "version_depth": 2});
    let expected = json!([
        tag_version("2.0-staging", &commits[2]),
        tag_version("3.0-staging", &commits[4])
    ]);
    expect(
        &env,
        &repo,
        depth2.clone(),
        Some("2.0-staging"),
        expected.clone(),
    );
    expect(
        &env,
        &repo,
        json!({"tag_regex": ".*-staging", "version_depth": 2}),
        Some("2.0-staging"),
        expected,
    );
    // A cursor the cache does not know is as if there were none.
    expect(
        &env,
        &repo,
        filter.clone(),
        Some("bogus-ref"),
        json!([tag_version("3.0-staging", &commits[4])]),
    );
    // With a branch, only tags merged into it count.
    let on_main = json!({"tag_filter": "*-staging", "branch": "main"});
    expect(&env, &repo, on_main.clone(), None, json!([]));
    let m = repo.commit("f", "on main");
    repo.annotated_tag("4.0-staging");
    expect(
        &env,
        &repo,
        on_main,
        None,
        json!([tag_version("4.0-staging", &m)]),
    );
}

#[test]
fn moved_tags_are_new_versions() {
    let env = Env::new();
    let repo = Repo::new();
    repo.commit("f", "initial");
    let r1 = repo.commit_on("branch-a", "f", "one");
    repo.git(&["tag", "-a", "staging", "-m", "t", "branch-a"]);
    expect(
        &env,
        &repo,
        json!({"tag_filter": "staging"}),
        None,
        json!([tag_version("staging", &r1)]),
    );
    let r2 = repo.commit_on("branch-a", "f", "two");
    repo.git(&["tag", "-f", "-a", "staging", "-m", "t", "branch-a"]);
    expect(
        &env,
        &repo,
        json!({"tag_regex": "staging"}),
        None,
        json!([tag_version("staging", &r2)]),
    );
    expect(
        &env,
        &repo,
        json!({"tag_filter": "staging"}),
        None,
        json!([tag_version("staging", &r2)]),
    );
}

#[test]
fn tags_on_unmerged_branches_and_lightweight_tags() {
    let env = Env::new();
    let repo = Repo::new();
    repo.commit("f", "one");
    expect(
        &env,
        &repo,
        json!({"tag_filter": "v*-hotfix"}),
        None,
        json!([]),
    );
    let h = repo.commit_on("hotfix", "g", "hotfix");
    repo.git(&["tag", "v1.0.0-hotfix", "hotfix"]);
    repo.commit("f", "more on main");
    expect(
        &env,
        &repo,
        json!({"tag_filter": "v*-hotfix"}),
        None,
        json!([tag_version("v1.0.0-hotfix", &h)]),
    );
    expect(
        &env,
        &repo,
        json!({"tag_regex": "v.*-hotfix"}),
        None,
        json!([tag_version("v1.0.0-hotfix", &h)]),
    );
}

#[test]
fn version_depth_in_tag_mode() {
    let env = Env::new();
    let repo = Repo::new();
    repo.commit("f", "1");
    repo.annotated_tag("test.tag.1");
    let r2 = repo.commit("f", "2");
    repo.annotated_tag("test.tag.2");
    repo.commit("f", "3");
    repo.annotated_tag("test.badtag.3");
    let r4 = repo.commit("f", "4");
    repo.annotated_tag("test.tag.4");
    expect(
        &env,
        &repo,
        json!({"tag_filter": "test.tag.*", "version_depth": 2}),
        None,
        json!([
            tag_version("test.tag.2", &r2),
            tag_version("test.tag.4", &r4)
        ]),
    );
}

#[test]
fn caches_are_kept_per_uri_and_branch() {
    let env = Env::new();
    let (a, b) = (Repo::new(), Repo::new());
    let ra = a.commit("f", "a");
    let rb = b.commit("f", "b");
    expect(&env, &a, json!({}), None, refs(&[&ra]));
    expect(&env, &b, json!({}), None, refs(&[&rb]));
    expect(&env, &a, json!({}), None, refs(&[&ra]));
    let caches = std::fs::read_dir(env.dir.path().join("tmp/git-resource-repo-cache"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(caches, 2);
}

#[test]
fn file_urls_and_git_config() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("f", "one");
    let source = json!({
        "uri": format!("file://{}", repo.uri()),
        "git_config": [{"name": "core.bigFileThreshold", "value": "10m"}],
    });
    assert_eq!(env.check(&source, None).json(), refs(&[&r1]));
}

/// Over `git://` a new cache starts shallow; the walk fetches the rest of the history only when
/// it reaches the shallow boundary.
#[test]
fn shallow_cache_deepens_when_needed() {
    let repo = Repo::new();
    let first = repo.commit("docs/readme", "first");
    let tip = testbed::git::fast_import_history(&repo.path, 60);
    repo.git(&["reset", "-q", "--hard", &tip]);
    let all = repo.git(&["rev-list", "--reverse", "main"]);
    let all: Vec<&str> = all.lines().collect();
    let daemon = testbed::git::GitDaemon::start(repo.path.parent().unwrap());
    let uri = daemon.url_for("repo");
    let source = json!({"uri": uri});
    let cache_is_shallow = |env: &Env| {
        let root = env.dir.path().join("tmp/git-resource-repo-cache");
        std::fs::read_dir(root)
            .unwrap()
            .any(|d| d.unwrap().path().join("shallow").exists())
    };

    let env = Env::new();
    assert_eq!(env.check(&source, None).json(), refs(&[&tip]));
    assert!(cache_is_shallow(&env), "a new cache is shallow");
    // Incremental on top of the shallow cache.
    let next = repo.commit("f", "next");
    assert_eq!(
        env.check(&source, Some(json!({"ref": tip}))).json(),
        refs(&[&tip, &next])
    );
    // A cursor beyond the boundary: the whole range, after fetching the history.
    let expected: Vec<&str> = all[5..].iter().copied().chain([next.as_str()]).collect();
    assert_eq!(
        env.check(&source, Some(json!({"ref": all[5]}))).json(),
        refs(&expected)
    );
    assert!(!cache_is_shallow(&env));

    // paths matching only the first commit, on a new cache.
    let env = Env::new();
    assert_eq!(
        env.check(&json!({"uri": uri, "paths": ["docs"]}), None)
            .json(),
        refs(&[&first])
    );
    // A cursor unknown to a new shallow cache.
    let env = Env::new();
    let expected: Vec<&str> = all[1..].iter().copied().chain([next.as_str()]).collect();
    assert_eq!(
        env.check(&source, Some(json!({"ref": all[1]}))).json(),
        refs(&expected)
    );
}

#[test]
fn concurrent_checks_share_a_cache_safely() {
    let (env, repo) = (Env::new(), Repo::new());
    let tip = repo.commit("f", "one");
    let source = json!({"uri": repo.uri()});
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| env.check(&source, None)))
            .collect();
        for run in runs {
            assert_eq!(run.join().unwrap().json(), refs(&[&tip]));
        }
    });
}

/// Every incremental fetch adds a pack to the cache; the small ones are merged once there are
/// more than 16, and checks still see every commit afterwards.
#[test]
fn incremental_checks_keep_few_packs() {
    let (env, repo) = (Env::new(), Repo::new());
    let first = repo.commit("f", "0");
    let daemon = testbed::git::GitDaemon::start(repo.path.parent().unwrap());
    let source = json!({"uri": daemon.url_for("repo")});
    assert_eq!(env.check(&source, None).json(), refs(&[&first]));
    let packs = || {
        let root = env.dir.path().join("tmp/git-resource-repo-cache");
        let cache = std::fs::read_dir(root)
            .unwrap()
            .map(|d| d.unwrap().path())
            .find(|p| p.is_dir())
            .unwrap();
        std::fs::read_dir(cache.join("objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "idx")
            .count()
    };
    let mut prev = first.clone();
    let mut most = 0;
    for i in 1..=20 {
        let next = repo.commit("f", &i.to_string());
        assert_eq!(
            env.check(&source, Some(json!({"ref": prev}))).json(),
            refs(&[&prev, &next]),
            "check {i}"
        );
        most = most.max(packs());
        prev = next;
    }
    assert!(most <= 17, "{most} packs");
    assert!(packs() < 17, "{} packs after merging", packs());
    assert_eq!(
        env.check(&source, Some(json!({"ref": first})))
            .json()
            .as_array()
            .unwrap()
            .len(),
        21
    );
}
