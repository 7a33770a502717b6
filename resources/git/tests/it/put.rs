//! `out` against local bare repositories, mirroring concourse/git-resource's `test/put.sh`:
//! plain pushes, branches, tags (prefix, annotation, only_tag), rebase and merge retries,
//! returning, notes, force, refs_prefix and the non-fast-forward error.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::support::{Env, Repo, empty_commit_in, git_in};

/// A bare remote with one commit, and a clone of it under `env`'s `src/repo`.
fn setup(env: &Env) -> (Repo, Repo, std::path::PathBuf) {
    let remote = Repo::bare_with(1);
    let src = env.dir.path().join("src");
    let clone = Repo::clone_into(&remote.uri(), &src.join("repo"));
    (remote, clone, src)
}

fn source(remote: &Repo, extra: Value) -> Value {
    let mut source = json!({"uri": remote.uri(), "branch": "main"});
    for (k, v) in extra.as_object().unwrap() {
        source[k] = v.clone();
    }
    source
}

#[test]
fn pushes_head_to_the_branch() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let sha = clone.commit("some-file", "pushed");
    let answer = env
        .put(
            &src,
            &source(&remote, json!({})),
            &json!({"repository": "repo"}),
        )
        .json();
    assert_eq!(answer["version"], json!({"ref": sha}));
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), sha);
    let names: Vec<&str> = answer["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"commit") && names.contains(&"message"),
        "{names:?}"
    );
}

#[test]
fn pushes_to_an_overridden_branch_and_refs_prefix() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let sha = clone.commit("f", "to other");
    let answer = env
        .put(
            &src,
            &source(&remote, json!({})),
            &json!({"repository": "repo", "branch": "other"}),
        )
        .json();
    assert_eq!(answer["version"], json!({"ref": sha, "branch": "other"}));
    assert_eq!(git_in(&remote.path, &["rev-parse", "other"]), sha);
    env.put(
        &src,
        &source(&remote, json!({})),
        &json!({"repository": "repo", "refs_prefix": "refs/for"}),
    )
    .json();
    assert_eq!(git_in(&remote.path, &["rev-parse", "refs/for/main"]), sha);
}

#[test]
fn tags_lightweight_prefixed_annotated_and_only_tag() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let sha = clone.commit("f", "tagged");
    std::fs::write(src.join("tag-file"), "1.0\n").unwrap();
    std::fs::write(src.join("annotation"), "release notes\n").unwrap();
    let params = json!({"repository": "repo", "tag": "tag-file", "tag_prefix": "v"});
    env.put(&src, &source(&remote, json!({})), &params).json();
    assert_eq!(git_in(&remote.path, &["rev-parse", "v1.0"]), sha);
    assert_eq!(git_in(&remote.path, &["cat-file", "-t", "v1.0"]), "commit");
    std::fs::write(src.join("tag-file"), "2.0").unwrap();
    let params = json!({"repository": "repo", "tag": "tag-file", "annotate": "annotation"});
    env.put(&src, &source(&remote, json!({})), &params).json();
    assert_eq!(git_in(&remote.path, &["cat-file", "-t", "2.0"]), "tag");
    assert_eq!(
        git_in(&remote.path, &["tag", "-l", "--format=%(contents)", "2.0"]),
        "release notes"
    );
    // only_tag pushes the tag and leaves the branch alone, and needs no branch.
    let newer = clone.commit("f", "only tagged");
    std::fs::write(src.join("tag-file"), "3.0").unwrap();
    let params = json!({"repository": "repo", "tag": "tag-file", "only_tag": true});
    env.put(&src, &json!({"uri": remote.uri()}), &params).json();
    assert_eq!(git_in(&remote.path, &["rev-parse", "3.0"]), newer);
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), sha);
}

#[test]
fn rejected_pushes_say_non_fast_forward_and_force_overrides() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let other = Repo::clone_into(&remote.uri(), &env.dir.path().join("other"));
    let theirs = other.commit("their-file", "theirs");
    other.git(&["push", "-q", "origin", "HEAD:main"]);
    clone.commit("my-file", "mine");
    let run = env.put(
        &src,
        &source(&remote, json!({})),
        &json!({"repository": "repo"}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("non-fast-forward"), "{}", run.stderr);
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), theirs);
    let forced = env
        .put(
            &src,
            &source(&remote, json!({})),
            &json!({"repository": "repo", "force": true}),
        )
        .json();
    assert_eq!(
        git_in(&remote.path, &["rev-parse", "main"]),
        forced["version"]["ref"].as_str().unwrap()
    );
}

#[test]
fn rebase_retries_on_top_of_the_remote() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let other = Repo::clone_into(&remote.uri(), &env.dir.path().join("other"));
    let theirs = other.commit("some-other-file", "theirs");
    other.git(&["push", "-q", "origin", "HEAD:main"]);
    clone.commit("some-file", "mine");
    std::fs::write(src.join("tag-file"), "rebased-tag").unwrap();
    std::fs::write(src.join("notes"), "a note").unwrap();
    let params = json!({"repository": "repo", "rebase": true, "tag": "tag-file", "notes": "notes"});
    let answer = env.put(&src, &source(&remote, json!({})), &params).json();
    let rebased = answer["version"]["ref"].as_str().unwrap().to_owned();
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), rebased);
    assert_eq!(git_in(&remote.path, &["rev-parse", "main~1"]), theirs);
    assert_eq!(git_in(&remote.path, &["rev-parse", "rebased-tag"]), rebased);
    assert_eq!(git_in(&remote.path, &["notes", "show", &rebased]), "a note");
    let check = git_in(&remote.path, &["ls-tree", "--name-only", "main"]);
    assert!(
        check.contains("some-file") && check.contains("some-other-file"),
        "{check}"
    );
}

#[test]
fn merge_retries_and_returning() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let other = Repo::clone_into(&remote.uri(), &env.dir.path().join("other"));
    let theirs = other.commit("some-other-file", "theirs");
    other.git(&["push", "-q", "origin", "HEAD:main"]);
    let mine = clone.commit("some-file", "mine");
    let answer = env
        .put(
            &src,
            &source(&remote, json!({})),
            &json!({"repository": "repo", "merge": true}),
        )
        .json();
    let merged = answer["version"]["ref"].as_str().unwrap().to_owned();
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), merged);
    assert_eq!(git_in(&remote.path, &["rev-parse", "main^1"]), mine);
    assert_eq!(git_in(&remote.path, &["rev-parse", "main^2"]), theirs);

    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let other = Repo::clone_into(&remote.uri(), &env.dir.path().join("other"));
    other.commit("some-other-file", "theirs");
    other.git(&["push", "-q", "origin", "HEAD:main"]);
    let mine = clone.commit("some-file", "mine");
    let answer = env
        .put(
            &src,
            &source(&remote, json!({})),
            &json!({"repository": "repo", "merge": true, "returning": "unmerged"}),
        )
        .json();
    assert_eq!(answer["version"], json!({"ref": mine}));
    assert_eq!(git_in(&remote.path, &["rev-parse", "main^1"]), mine);
}

#[test]
fn bad_params_are_rejected() {
    let env = Env::new();
    let (remote, _clone, src) = setup(&env);
    let cases = [
        (
            json!({"repository": "repo", "merge": true, "rebase": true}),
            "params.rebase and params.merge",
        ),
        (json!({}), "params.repository: required"),
        (
            json!({"repository": "repo", "tag": "missing"}),
            "params.tag: tag file \"missing\" does not exist",
        ),
        (json!({"repository": "nope"}), "params.repository:"),
    ];
    for (params, message) in cases {
        let run = env.put(&src, &source(&remote, json!({})), &params);
        assert_eq!(run.code, 2, "{params}: {run:?}");
        assert!(run.stderr.contains(message), "{params}: {}", run.stderr);
    }
    let run = env.put(
        &src,
        &json!({"uri": remote.uri()}),
        &json!({"repository": "repo"}),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("source.branch: required"),
        "{}",
        run.stderr
    );
}

#[test]
fn push_options_reach_the_server() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    git_in(
        &remote.path,
        &["config", "receive.advertisePushOptions", "true"],
    );
    let hook = remote.path.join("hooks/pre-receive");
    let seen = env.dir.path().join("push-options");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nenv | grep '^GIT_PUSH_OPTION_[0-9]' | sort > {}\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = testbed::git::GitDaemon::start(remote.path.parent().unwrap());
    let sha = clone.commit("f", "with options");
    let source = json!({"uri": daemon.url_for("bare.git"), "branch": "main"});
    let params = json!({"repository": "repo", "push_options": ["ci.skip", "merge_request.create"]});
    env.put(&src, &source, &params).json();
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), sha);
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "GIT_PUSH_OPTION_0=ci.skip\nGIT_PUSH_OPTION_1=merge_request.create\n"
    );
}

#[test]
fn rebase_strategy_options_resolve_conflicts() {
    // (strategy option, their content, my content, expected pushed content); a conflict
    // without an option is an error.
    let cases: [(Value, &str, &str, Option<&str>); 4] = [
        (json!("theirs"), "remote\n", "local\n", Some("local\n")),
        (json!(["ours"]), "remote\n", "local\n", Some("remote\n")),
        (
            json!("ignore-space-change"),
            "line1-changed\nline2  \nline3\n",
            "line1\nline2\nline3-changed\n",
            // Both changes land (the official suite checks just that).
            Some("line1-changed\nline2  \nline3-changed\n"),
        ),
        (Value::Null, "remote\n", "local\n", None),
    ];
    for (option, theirs, mine, expected) in cases {
        let env = Env::new();
        let remote = Repo::bare_with(0);
        let seed = Repo::clone_into(&remote.uri(), &env.dir.path().join("seed"));
        std::fs::write(seed.path.join("conflict-file"), "line1\nline2  \nline3\n").unwrap();
        seed.git(&["add", "."]);
        seed.git(&["commit", "-q", "-m", "initial"]);
        seed.git(&["push", "-q", "origin", "HEAD:main"]);
        let src = env.dir.path().join("src");
        let clone = Repo::clone_into(&remote.uri(), &src.join("repo"));
        std::fs::write(seed.path.join("conflict-file"), theirs).unwrap();
        seed.git(&["commit", "-q", "-am", "theirs"]);
        seed.git(&["push", "-q", "origin", "HEAD:main"]);
        std::fs::write(clone.path.join("conflict-file"), mine).unwrap();
        clone.git(&["commit", "-q", "-am", "mine"]);
        let mut params = json!({"repository": "repo", "rebase": true});
        if !option.is_null() {
            params["rebase_strategy_option"] = option.clone();
        }
        let run = env.put(&src, &source(&remote, json!({})), &params);
        match expected {
            Some(content) => {
                let answer = run.json();
                let pushed = answer["version"]["ref"].as_str().unwrap();
                assert_eq!(
                    git_in(&remote.path, &["rev-parse", "main"]),
                    pushed,
                    "{option}"
                );
                let file = git_in(&remote.path, &["show", "main:conflict-file"]);
                assert_eq!(format!("{file}\n"), content, "{option}");
            }
            None => {
                assert_eq!(run.code, 1, "{run:?}");
                assert!(run.stderr.contains("conflicts"), "{}", run.stderr);
            }
        }
    }
}

#[test]
fn existing_tags_move_only_with_force() {
    let env = Env::new();
    let (remote, clone, src) = setup(&env);
    let first = clone.commit("f", "first");
    std::fs::write(src.join("tag-file"), "v1").unwrap();
    let params = json!({"repository": "repo", "tag": "tag-file", "only_tag": true});
    env.put(&src, &json!({"uri": remote.uri()}), &params).json();
    assert_eq!(git_in(&remote.path, &["rev-parse", "v1"]), first);
    let second = clone.commit("f", "second");
    let run = env.put(&src, &json!({"uri": remote.uri()}), &params);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("tag v1 already exists on the remote"),
        "{}",
        run.stderr
    );
    assert_eq!(git_in(&remote.path, &["rev-parse", "v1"]), first);
    let forced = json!({"repository": "repo", "tag": "tag-file", "only_tag": true, "force": true});
    env.put(&src, &json!({"uri": remote.uri()}), &forced).json();
    assert_eq!(git_in(&remote.path, &["rev-parse", "v1"]), second);
}

#[test]
fn pushes_from_a_shallow_get() {
    let env = Env::new();
    let remote = Repo::bare_with(5);
    let daemon = testbed::git::GitDaemon::start(remote.path.parent().unwrap());
    let source = json!({"uri": daemon.url_for("bare.git"), "branch": "main"});
    let src = env.dir.path().join("src");
    env.get(&src.join("repo"), &source, &json!({}), &json!({"depth": 1}))
        .json();
    assert!(src.join("repo/.git/shallow").exists());
    let sha = empty_commit_in(&src.join("repo"), "on shallow");
    let answer = env
        .put(&src, &source, &json!({"repository": "repo"}))
        .json();
    assert_eq!(answer["version"], json!({"ref": sha}));
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), sha);
    assert_eq!(git_in(&remote.path, &["rev-list", "--count", "main"]), "6");

    // Someone else pushes; a rebase on top of it works from the shallow clone too.
    let other = Repo::clone_into(&remote.uri(), &env.dir.path().join("other"));
    let theirs = other.commit("their-file", "theirs");
    other.git(&["push", "-q", "origin", "HEAD:main"]);
    empty_commit_in(&src.join("repo"), "mine");
    let answer = env
        .put(
            &src,
            &source,
            &json!({"repository": "repo", "rebase": true}),
        )
        .json();
    let rebased = answer["version"]["ref"].as_str().unwrap().to_owned();
    assert_eq!(git_in(&remote.path, &["rev-parse", "main"]), rebased);
    assert_eq!(git_in(&remote.path, &["rev-parse", "main~1"]), theirs);
}
