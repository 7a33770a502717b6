//! `in` with commit signature verification, mirroring the official suite's
//! `it_can_get_signed_commit`, `it_cant_get_commit_not_signed`, `…_with_invalid_key`,
//! `…_signed_with_unknown_key`, `…_via_tag`: keys made with a real gpg, commits signed by git.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::{Env, Repo};

/// A gpg home with one signing key; returns (home, armored public key, fingerprint).
fn make_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let home = dir.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    let gpg = |args: &[&str]| {
        let output = resource_protocol::process::command("gpg", dir)
            .env("GNUPGHOME", &home)
            .args(["--batch", "--no-tty", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    gpg(&[
        "--quick-gen-key",
        &format!("{name} <{name}@example.com>"),
        "ed25519",
        "sign",
        "never",
    ]);
    let public = gpg(&["--armor", "--export"]);
    let listing = gpg(&["--with-colons", "--list-secret-keys"]);
    let fingerprint = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_owned();
    (home, public, fingerprint)
}

/// A signed commit in `repo` by the key in `home`.
fn signed_commit(repo: &Repo, home: &Path, fingerprint: &str, message: &str) -> String {
    let mut command = testbed::git::git_command(&repo.path);
    command.env("GNUPGHOME", home).args([
        "-c",
        &format!("user.signingkey={fingerprint}"),
        "commit",
        "-q",
        "--allow-empty",
        "-S",
        "-m",
        message,
    ]);
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    repo.head()
}

#[test]
fn verifies_commit_signatures() {
    let env = Env::new();
    let keys = testbed::tools::temp_dir("gpg-keys");
    let (home, public, fpr) = make_key(keys.path(), "alice");
    let (other_home, other_public, other_fpr) = make_key(keys.path(), "mallory");
    let repo = Repo::new();
    let unsigned = repo.commit("f", "unsigned");
    let signed = signed_commit(&repo, &home, &fpr, "signed by alice");
    repo.annotated_tag("v1.0");
    let by_other = signed_commit(&repo, &other_home, &other_fpr, "signed by mallory");
    let source = json!({"uri": repo.uri(), "commit_verification_keys": [public]});
    let dest = |name: &str| env.dir.path().join(name);

    let answer = env
        .get(&dest("good"), &source, &json!({"ref": signed}), &json!({}))
        .json();
    assert_eq!(answer["version"], json!({"ref": signed}));
    let tagged =
        json!({"uri": repo.uri(), "commit_verification_keys": [public], "tag_filter": "v*"});
    let answer = env
        .get(
            &dest("tag"),
            &tagged,
            &json!({"ref": "v1.0", "commit": signed}),
            &json!({}),
        )
        .json();
    assert_eq!(answer["version"], json!({"ref": "v1.0"}));

    let failures = [
        (
            source.clone(),
            unsigned.clone(),
            1,
            format!("the commit {unsigned} is not signed"),
        ),
        (
            source.clone(),
            by_other.clone(),
            1,
            format!("the commit {by_other} is not signed by any of the configured keys"),
        ),
        (
            json!({"uri": repo.uri(), "commit_verification_keys": ["not a key"]}),
            signed.clone(),
            2,
            "source.commit_verification_keys[0]: not a valid GPG public key".to_owned(),
        ),
        (
            json!({"uri": repo.uri(), "commit_verification_keys": [other_public]}),
            signed.clone(),
            1,
            format!("the commit {signed} is not signed by any of the configured keys"),
        ),
    ];
    for (i, (source, sha, code, message)) in failures.into_iter().enumerate() {
        let run = env.get(
            &dest(&format!("bad{i}")),
            &source,
            &json!({"ref": sha}),
            &json!({}),
        );
        assert_eq!(run.code, code, "{run:?}");
        assert!(run.stderr.contains(&message), "{message}\n{}", run.stderr);
    }
}
