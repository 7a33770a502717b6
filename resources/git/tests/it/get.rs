//! `in` against local repositories and `git daemon`, mirroring concourse/git-resource's
//! `test/get.sh`: refs, branches, tags, depth and deepening, `.git/` files, metadata, sparse
//! paths, submodules, clean_tags, search_remote_refs.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Env, Repo, git_in};

/// A fresh destination directory inside `env`.
fn dest(env: &Env, name: &str) -> PathBuf {
    env.dir.path().join(name)
}

fn read(dest: &Path, file: &str) -> String {
    std::fs::read_to_string(dest.join(".git").join(file)).unwrap()
}

fn metadata_value(answer: &Value, name: &str) -> Option<String> {
    answer["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| f["value"].as_str().unwrap().to_owned())
}

#[test]
fn gets_head_a_ref_a_branch_and_a_tag() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("some-file", "one");
    repo.annotated_tag("1.0-staging");
    let r2 = repo.commit("some-file", "two");
    let b1 = repo.commit_on("feature", "branch-file", "on feature");
    let source = json!({"uri": repo.uri()});
    let cases: Vec<(Value, Value, &str, &str)> = vec![
        (source.clone(), json!({}), &r2, &r2),
        (source.clone(), json!({"ref": r1}), &r1, &r1),
        (
            source.clone(),
            json!({"ref": "1.0-staging"}),
            "1.0-staging",
            &r1,
        ),
        (
            json!({"uri": repo.uri(), "branch": "feature"}),
            json!({"ref": b1}),
            &b1,
            &b1,
        ),
        (
            source.clone(),
            json!({"ref": b1, "branch": "feature"}),
            &b1,
            &b1,
        ),
    ];
    for (i, (source, version, answered, head)) in cases.into_iter().enumerate() {
        let dest = dest(&env, &format!("d{i}"));
        let answer = env.get(&dest, &source, &version, &json!({})).json();
        assert_eq!(answer["version"], json!({"ref": answered}), "{version}");
        assert_eq!(git_in(&dest, &["rev-parse", "HEAD"]), head, "{version}");
        assert_eq!(read(&dest, "ref"), format!("{answered}\n"));
        assert!(dest.join("some-file").exists());
        assert_eq!(
            git_in(&dest, &["status", "--porcelain"]),
            "",
            "clean work tree"
        );
    }
}

#[test]
fn only_the_branch_is_fetched_unless_all_branches() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "one");
    repo.commit_on("other", "g", "other");
    let d = dest(&env, "single");
    env.get(&d, &json!({"uri": repo.uri()}), &json!({}), &json!({}))
        .json();
    assert_eq!(git_in(&d, &["branch", "-r"]), "origin/main");
    let d = dest(&env, "all");
    env.get(
        &d,
        &json!({"uri": repo.uri()}),
        &json!({}),
        &json!({"all_branches": true}),
    )
    .json();
    assert!(git_in(&d, &["branch", "-r"]).contains("origin/other"));
    let d = dest(&env, "fetch");
    env.get(
        &d,
        &json!({"uri": repo.uri()}),
        &json!({}),
        &json!({"fetch": ["other"]}),
    )
    .json();
    assert!(git_in(&d, &["branch"]).contains("other"));
}

#[test]
fn writes_complete_metadata_files() {
    let (env, repo) = (Env::new(), Repo::new());
    // The fixture environment names its own author; this commit's author is alice.
    let mut command = testbed::git::git_command(&repo.path);
    command
        .args(["commit", "-q", "--allow-empty", "-m", "test commit message"])
        .env("GIT_AUTHOR_NAME", "alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.com")
        .env("GIT_AUTHOR_DATE", "@1700000000 +0100")
        .env("GIT_COMMITTER_DATE", "@1700000000 +0100");
    assert!(command.output().unwrap().status.success());
    let sha = repo.head();
    repo.tag("v1.0.0");
    repo.tag("v1.0.0-rc1");
    repo.annotated_tag("latest");
    let d = dest(&env, "d");
    let answer = env
        .get(
            &d,
            &json!({"uri": repo.uri()}),
            &json!({"ref": sha}),
            &json!({"short_ref_format": "test-%s"}),
        )
        .json();
    let expected_files = [
        ("commit", format!("{sha}\n")),
        ("author", "alice\n".to_owned()),
        ("author_date", "2023-11-14 23:13:20 +0100\n".to_owned()),
        ("committer", "alice@example.com".to_owned()),
        ("committer_name", "alice".to_owned()),
        ("committer_date", "2023-11-14 23:13:20 +0100\n".to_owned()),
        ("ref", format!("{sha}\n")),
        ("branch", "main\n".to_owned()),
        ("short_ref", format!("test-{}", &sha[..7])),
        ("commit_message", "test commit message\n".to_owned()),
        ("commit_timestamp", "2023-11-14 23:13:20 +0100\n".to_owned()),
        ("tags", "latest,v1.0.0,v1.0.0-rc1\n".to_owned()),
        ("url", String::new()),
        ("describe_ref", "latest\n".to_owned()),
    ];
    for (file, content) in expected_files {
        assert_eq!(read(&d, file), content, ".git/{file}");
    }
    let metadata: Value = serde_json::from_str(&read(&d, "metadata.json")).unwrap();
    assert_eq!(metadata, answer["metadata"]);
    let names: Vec<&str> = metadata
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "commit",
            "author",
            "author_date",
            "committer",
            "committer_date",
            "branch",
            "tags",
            "message"
        ]
    );
    assert_eq!(
        metadata_value(&answer, "message").unwrap(),
        "test commit message\n"
    );

    // At the branch tip, the branch is named; without tags the file is empty.
    let plain = Repo::new();
    plain.commit("f", "one");
    let d = dest(&env, "plain");
    let answer = env
        .get(&d, &json!({"uri": plain.uri()}), &json!({}), &json!({}))
        .json();
    assert_eq!(read(&d, "branch"), "main\n");
    assert_eq!(read(&d, "tags"), "");
    assert_eq!(metadata_value(&answer, "branch").as_deref(), Some("main"));
    assert_eq!(metadata_value(&answer, "tags"), None);
}

#[test]
fn timestamp_formats_match_git() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "Time-is-relevant!");
    for (i, format) in [
        "iso8601",
        "iso-strict",
        "rfc",
        "short",
        "raw",
        "unix",
        "default",
    ]
    .into_iter()
    .enumerate()
    {
        let d = dest(&env, &format!("d{i}"));
        env.get(
            &d,
            &json!({"uri": repo.uri()}),
            &json!({}),
            &json!({"timestamp_format": format}),
        )
        .json();
        let expected = git_in(
            &d,
            &[
                "log",
                "-1",
                &format!("--date={format}"),
                "--format=format:%cd",
            ],
        );
        assert_eq!(
            read(&d, "commit_timestamp"),
            format!("{expected}\n"),
            "{format}"
        );
    }
}

#[test]
fn describe_ref_follows_options() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "one");
    repo.annotated_tag("v1.0");
    repo.commit("f", "two");
    repo.tag("light");
    let cases = ["--always --dirty --broken", "--tags", "--long --abbrev=10"];
    for (i, options) in cases.into_iter().enumerate() {
        let d = dest(&env, &format!("d{i}"));
        env.get(
            &d,
            &json!({"uri": repo.uri()}),
            &json!({}),
            &json!({"describe_ref_options": options}),
        )
        .json();
        let mut args = vec!["describe"];
        args.extend(options.split_whitespace());
        let expected = git_in(&d, &args);
        assert_eq!(
            read(&d, "describe_ref"),
            format!("{expected}\n"),
            "{options}"
        );
    }
}

#[test]
fn tags_fetch_and_clean() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "one");
    repo.tag("v1.1-pre");
    let d = dest(&env, "kept");
    env.get(&d, &json!({"uri": repo.uri()}), &json!({}), &json!({}))
        .json();
    assert_eq!(git_in(&d, &["tag"]), "v1.1-pre");
    let d = dest(&env, "kept2");
    env.get(
        &d,
        &json!({"uri": repo.uri()}),
        &json!({}),
        &json!({"clean_tags": false}),
    )
    .json();
    assert_eq!(git_in(&d, &["tag"]), "v1.1-pre");
    let d = dest(&env, "cleaned");
    env.get(
        &d,
        &json!({"uri": repo.uri()}),
        &json!({}),
        &json!({"clean_tags": true}),
    )
    .json();
    assert_eq!(git_in(&d, &["tag"]), "");

    // fetch_tags brings tags of other branches; fetch_tags false none at all.
    let r = repo.commit_on("branch-a", "g", "a");
    repo.git(&["tag", "-a", "v1.1-final", "-m", "t", "branch-a"]);
    repo.commit_on("branch-b", "h", "b");
    repo.git(&["tag", "-a", "v1.1-branch-b", "-m", "t", "branch-b"]);
    let source = json!({"uri": repo.uri(), "branch": "branch-a"});
    let d = dest(&env, "with-tags");
    let answer = env
        .get(
            &d,
            &source,
            &json!({"ref": r}),
            &json!({"fetch_tags": true}),
        )
        .json();
    assert_eq!(
        metadata_value(&answer, "tags").as_deref(),
        Some("v1.1-final")
    );
    assert!(git_in(&d, &["tag"]).contains("v1.1-branch-b"));
    let d = dest(&env, "without-tags");
    let answer = env
        .get(
            &d,
            &source,
            &json!({"ref": r}),
            &json!({"fetch_tags": false}),
        )
        .json();
    assert_eq!(metadata_value(&answer, "tags"), None);
    assert_eq!(git_in(&d, &["tag"]), "");
}

#[test]
fn git_config_is_written_to_the_clone() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "one");
    let source = json!({"uri": repo.uri(), "git_config": [
        {"name": "core.pager", "value": "true"},
        {"name": "credential.helper", "value": "!true long command with variables $@"},
    ]});
    let d = dest(&env, "d");
    env.get(&d, &source, &json!({}), &json!({})).json();
    assert_eq!(git_in(&d, &["config", "core.pager"]), "true");
    assert_eq!(
        git_in(&d, &["config", "credential.helper"]),
        "!true long command with variables $@"
    );
}

#[test]
fn sparse_paths_check_out_only_those() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("a/file", "a");
    repo.commit("b/file", "b");
    repo.commit("top", "top");
    let d = dest(&env, "d");
    env.get(
        &d,
        &json!({"uri": repo.uri(), "sparse_paths": ["a"]}),
        &json!({}),
        &json!({}),
    )
    .json();
    assert!(d.join("a/file").exists());
    assert!(!d.join("b/file").exists());
    assert!(!d.join("top").exists());
    assert_eq!(git_in(&d, &["config", "core.sparseCheckout"]), "true");
    assert_eq!(read(&d, "info/sparse-checkout"), "a\n");
    assert_eq!(git_in(&d, &["status", "--porcelain"]), "");
}

#[test]
fn a_version_that_no_longer_exists_is_a_clear_error() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "one");
    let gone = repo.commit("f", "two");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    repo.git(&["reflog", "expire", "--expire=now", "--all"]);
    repo.git(&["gc", "-q", "--prune=now"]);
    let run = env.get(
        &dest(&env, "d"),
        &json!({"uri": repo.uri()}),
        &json!({"ref": gone}),
        &json!({}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("version.ref: {gone} not found on branch \"main\"")),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout_text, "");
}

#[test]
fn search_remote_refs_finds_unmerged_refs() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "initial");
    let r1 = repo.commit_on("branch-a", "f", "one");
    let r2 = repo.commit_on("branch-a", "f", "two");
    repo.git(&["update-ref", "refs/heads/branch-a", &r1]);
    repo.git(&["update-ref", "refs/changes/1", &r2]);
    // Over a real transport: libgit2's local transport copies every object of the remote.
    let daemon = testbed::git::GitDaemon::start(repo.path.parent().unwrap());
    let uri = daemon.url_for("repo");
    let source = json!({"uri": uri, "branch": "branch-a"});
    let run = env.get(
        &dest(&env, "plain"),
        &source,
        &json!({"ref": r2}),
        &json!({}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    let source = json!({"uri": uri, "branch": "branch-a", "search_remote_refs": true});
    let d = dest(&env, "searched");
    let answer = env.get(&d, &source, &json!({"ref": r2}), &json!({})).json();
    assert_eq!(answer["version"], json!({"ref": r2}));
    assert_eq!(git_in(&d, &["rev-parse", "HEAD"]), r2);
}

#[test]
fn submodules_are_updated() {
    let env = Env::new();
    let sub = Repo::new();
    let sub_sha = sub.commit("sub-file", "sub");
    let nested = Repo::new();
    nested.commit("nested-file", "nested");
    sub.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        &nested.uri(),
        "nested",
    ]);
    sub.git(&["commit", "-q", "-m", "add nested"]);
    let repo = Repo::new();
    repo.commit("f", "one");
    repo.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        &sub.uri(),
        "sub",
    ]);
    repo.git(&["commit", "-q", "-m", "add sub"]);
    let source = json!({"uri": repo.uri()});
    let d = dest(&env, "all");
    env.get(&d, &source, &json!({}), &json!({})).json();
    assert!(d.join("sub/sub-file").exists());
    assert!(d.join("sub/nested/nested-file").exists());
    let d = dest(&env, "flat");
    env.get(
        &d,
        &source,
        &json!({}),
        &json!({"submodule_recursive": false}),
    )
    .json();
    assert!(d.join("sub/sub-file").exists());
    assert!(!d.join("sub/nested/nested-file").exists());
    let d = dest(&env, "none");
    env.get(&d, &source, &json!({}), &json!({"submodules": "none"}))
        .json();
    assert!(!d.join("sub/sub-file").exists());
    let d = dest(&env, "listed");
    env.get(&d, &source, &json!({}), &json!({"submodules": ["sub"]}))
        .json();
    assert!(d.join("sub/sub-file").exists());
    let _ = sub_sha;
}

#[test]
fn unsupported_features_fail_loudly() {
    let (env, repo) = (Env::new(), Repo::new());
    std::fs::write(
        repo.path.join(".gitattributes"),
        "*.bin filter=lfs diff=lfs merge=lfs -text\n",
    )
    .unwrap();
    repo.commit("f", "one");
    let uri = repo.uri();
    let cases = [(
        json!({"uri": uri, "git_crypt_key": "AAAA"}),
        json!({"disable_git_lfs": true}),
        1,
        "source.git_crypt_key: git-crypt is not installed",
    )];
    for (i, (source, params, code, message)) in cases.into_iter().enumerate() {
        let run = env.get(&dest(&env, &format!("d{i}")), &source, &json!({}), &params);
        assert_eq!(run.code, code, "{run:?}");
        assert!(run.stderr.contains(message), "{}", run.stderr);
    }
    let d = dest(&env, "pointers");
    env.get(
        &d,
        &json!({"uri": uri}),
        &json!({}),
        &json!({"disable_git_lfs": true}),
    )
    .json();
    assert!(d.join("f").exists());
}

/// Serves `repo` over `git://` (libgit2's local transport ignores `depth`).
fn daemon_for(repo: &Repo) -> (testbed::git::GitDaemon, String) {
    let daemon = testbed::git::GitDaemon::start(repo.path.parent().unwrap());
    let url = daemon.url_for("repo");
    (daemon, url)
}

#[test]
fn depth_makes_shallow_clones() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("some-file", "one");
    repo.commit("some-file", "two");
    let r3 = repo.commit("some-file", "three");
    let (_daemon, uri) = daemon_for(&repo);
    let d = dest(&env, "head");
    let answer = env
        .get(&d, &json!({"uri": uri}), &json!({}), &json!({"depth": 1}))
        .json();
    assert_eq!(answer["version"], json!({"ref": r3}));
    assert_eq!(git_in(&d, &["rev-list", "--all", "--count"]), "1");
    // An older ref: the clone deepens until it is there.
    let d = dest(&env, "older");
    let run = env.get(
        &d,
        &json!({"uri": uri}),
        &json!({"ref": r1}),
        &json!({"depth": 1}),
    );
    assert_eq!(run.json()["version"], json!({"ref": r1}));
    assert_eq!(git_in(&d, &["rev-parse", "HEAD"]), r1);
    assert!(d.join("some-file").exists());
}

/// Asserts the official resource's deepening log lines: `wanted` (`sha~n`) was missing from a
/// shallow clone of each depth in `missing`, and the clone was deepened by each of `deepened`.
fn assert_deepening_log(stderr: &str, wanted: &str, missing: &[u32], deepened: &[u32]) {
    let missing = missing
        .iter()
        .map(|depth| format!("Could not find ref {wanted} in a shallow clone of depth {depth}"));
    let deepened = deepened
        .iter()
        .map(|depth| format!("Deepening the shallow clone by an additional {depth}..."));
    for line in missing.chain(deepened) {
        assert!(stderr.contains(&line), "{line}\n{stderr}");
    }
}

#[test]
fn deepening_falls_back_to_a_deep_clone() {
    let (env, repo) = (Env::new(), Repo::new());
    let r1 = repo.commit("some-file", "one");
    let tip = testbed::git::fast_import_history(&repo.path, 127);
    repo.git(&["reset", "-q", "--hard", &tip]);
    let (_daemon, uri) = daemon_for(&repo);
    let d = dest(&env, "d");
    let run = env.get(
        &d,
        &json!({"uri": uri}),
        &json!({"ref": r1}),
        &json!({"depth": 1}),
    );
    assert_eq!(run.json()["version"], json!({"ref": r1}));
    assert_eq!(git_in(&d, &["rev-parse", "HEAD"]), r1);
    assert_deepening_log(
        &run.stderr,
        &format!("{r1}~0"),
        &[1, 3, 7, 15, 31, 63, 127],
        &[2, 4, 8, 16, 32, 64],
    );
    assert!(
        run.stderr
            .contains("Reached depth threshold 127, falling back to deep clone...")
    );
}

#[test]
fn deepening_considers_depth() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("some-file", "zero");
    let r1 = repo.commit("some-file", "one");
    let r2 = repo.commit("some-file", "two");
    let r3 = repo.commit("some-file", "three");
    let tip = testbed::git::fast_import_history(&repo.path, 18);
    repo.git(&["reset", "-q", "--hard", &tip]);
    let (_daemon, uri) = daemon_for(&repo);
    let d = dest(&env, "d");
    let run = env.get(
        &d,
        &json!({"uri": uri}),
        &json!({"ref": r3}),
        &json!({"depth": 3}),
    );
    assert_eq!(run.json()["version"], json!({"ref": r3}));
    assert_eq!(git_in(&d, &["rev-parse", "HEAD~1"]), r2);
    assert_eq!(git_in(&d, &["rev-parse", "HEAD~2"]), r1);
    assert!(d.join(".git/shallow").exists(), "still shallow");
    assert_deepening_log(&run.stderr, &format!("{r3}~2"), &[3, 9], &[6, 12]);
}

#[test]
fn deepening_stops_when_the_ref_does_not_exist() {
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("some-file", "one");
    let (_daemon, uri) = daemon_for(&repo);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let run = env.get(
        &dest(&env, "d"),
        &json!({"uri": uri}),
        &json!({"ref": missing}),
        &json!({"depth": 1}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("Reached max depth of the origin repo while deepening the shallow clone, it's a deep clone now"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("version.ref: {missing} not found")),
        "{}",
        run.stderr
    );
}

#[test]
fn submodule_credentials_reach_http_submodules() {
    let env = Env::new();
    let sub = Repo::bare_with(1);
    let http = testbed::git::GitHttp::start(sub.path.parent().unwrap(), "subuser", "sub-pa55");
    let sub_url = http.url_for("bare.git");
    let repo = Repo::new();
    repo.commit("f", "one");
    // Register the submodule by hand: the fixture git has no credentials for it.
    let sub_sha = git_in(&sub.path, &["rev-parse", "main"]);
    std::fs::write(
        repo.path.join(".gitmodules"),
        format!("[submodule \"sub\"]\n\tpath = sub\n\turl = {sub_url}\n"),
    )
    .unwrap();
    repo.git(&["add", ".gitmodules"]);
    repo.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{sub_sha},sub"),
    ]);
    repo.git(&["commit", "-q", "-m", "add sub"]);
    let source = json!({"uri": repo.uri(), "submodule_credentials": [
        {"host": "127.0.0.1", "username": "subuser", "password": "sub-pa55"}
    ]});
    let d = dest(&env, "with");
    env.get(&d, &source, &json!({}), &json!({})).json();
    assert_eq!(git_in(&d.join("sub"), &["rev-parse", "HEAD"]), sub_sha);
    let run = env.get(
        &dest(&env, "without"),
        &json!({"uri": repo.uri()}),
        &json!({}),
        &json!({}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("submodule sub"), "{}", run.stderr);
    assert!(!run.stderr.contains("sub-pa55"));
}

#[test]
fn submodule_remote_checks_out_the_remote_tip() {
    let env = Env::new();
    let sub = Repo::new();
    let recorded = sub.commit("sub-file", "recorded");
    let repo = Repo::new();
    repo.commit("f", "one");
    repo.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        &sub.uri(),
        "sub",
    ]);
    repo.git(&["commit", "-q", "-m", "add sub"]);
    let newer = sub.commit("sub-file", "newer");
    let source = json!({"uri": repo.uri()});
    let d = dest(&env, "recorded");
    env.get(&d, &source, &json!({}), &json!({})).json();
    assert_eq!(git_in(&d.join("sub"), &["rev-parse", "HEAD"]), recorded);
    let d = dest(&env, "remote");
    env.get(&d, &source, &json!({}), &json!({"submodule_remote": true}))
        .json();
    assert_eq!(git_in(&d.join("sub"), &["rev-parse", "HEAD"]), newer);
}

#[test]
fn submodules_deepen_to_the_recorded_commit() {
    let env = Env::new();
    let sub = Repo::new();
    let recorded = sub.commit("sub-file", "recorded");
    let tip = testbed::git::fast_import_history(&sub.path, 30);
    sub.git(&["reset", "-q", "--hard", &tip]);
    let daemon = testbed::git::GitDaemon::start(sub.path.parent().unwrap());
    let repo = Repo::new();
    repo.commit("f", "one");
    let add_gitlink = |sha: &str| {
        std::fs::write(
            repo.path.join(".gitmodules"),
            format!(
                "[submodule \"sub\"]\n\tpath = sub\n\turl = {}\n",
                daemon.url_for("repo")
            ),
        )
        .unwrap();
        repo.git(&["add", ".gitmodules"]);
        repo.git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{sha},sub"),
        ]);
        repo.git(&["commit", "-q", "-m", "gitlink"]);
        repo.head()
    };
    let with_recorded = add_gitlink(&recorded);
    let d = dest(&env, "deep");
    let run = env.get(
        &d,
        &json!({"uri": repo.uri()}),
        &json!({"ref": with_recorded}),
        &json!({"depth": 1}),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(git_in(&d.join("sub"), &["rev-parse", "HEAD"]), recorded);
    assert!(
        run.stderr.contains(&format!(
            "Could not find ref {recorded}~0 in a shallow clone of depth 1"
        )),
        "{}",
        run.stderr
    );
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let with_missing = add_gitlink(missing);
    let run = env.get(
        &dest(&env, "missing"),
        &json!({"uri": repo.uri()}),
        &json!({"ref": with_missing}),
        &json!({"depth": 1}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("submodule sub: commit {missing} not found")),
        "{}",
        run.stderr
    );
}

#[test]
fn git_crypt_unlocks_with_the_decoded_key() {
    use base64::Engine;
    let (env, repo) = (Env::new(), Repo::new());
    repo.commit("f", "one");
    // A stand-in git-crypt that records how it was called (the real one is not packaged here).
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("git-crypt");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$1\" > unlocked-by\ncat \"$2\" > unlocked-with\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let key = b"\0GITCRYPTKEY binary key material";
    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
    let source = json!({"uri": repo.uri(), "git_crypt_key": encoded});
    let d = dest(&env, "d");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let request = json!({"source": source, "version": {}, "params": {}});
    let run = env.run_with_env(&["in", d.to_str().unwrap()], &request, &[("PATH", &path)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        std::fs::read_to_string(d.join("unlocked-by")).unwrap(),
        "unlock\n"
    );
    assert_eq!(std::fs::read(d.join("unlocked-with")).unwrap(), key);
    assert!(!run.stderr.contains(&encoded));
}
