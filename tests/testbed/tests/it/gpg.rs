//! Signed commits and tags verified by real git + gpg, with the key fetched from the keyserver.

use std::path::Path;

use testbed::git::{CommitSpec, git, git_command, init_bare};
use testbed::gpg::{GpgKey, Keyserver, commit_signed, tag_signed};
use testbed::tools::{require, temp_dir};

/// `git verify-commit`/`verify-tag` in `repo` with `home` as GNUPGHOME; Ok or gpg's message.
fn verify(repo: &Path, home: &Path, what: &str, object: &str) -> Result<(), String> {
    let mut command = git_command(repo);
    command.env("GNUPGHOME", home).args([what, object]);
    let output = command.output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn signed_commits_verify_with_the_key_from_the_keyserver() {
    let key = GpgKey::generate("Signer", "signer@example.com");
    let other = GpgKey::generate("Other", "other@example.com");
    assert_eq!(key.fingerprint.len(), 40);
    assert!(
        key.public_armored
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );

    let dir = temp_dir("signed");
    init_bare(dir.path());
    let spec = CommitSpec {
        files: &[("a", "a\n")],
        message: "signed",
        ..CommitSpec::default()
    };
    let sha = commit_signed(dir.path(), &spec, &key);
    assert_eq!(git(dir.path(), &["rev-parse", "main"]), sha);
    assert!(git(dir.path(), &["cat-file", "commit", &sha]).contains("gpgsig"));
    tag_signed(dir.path(), "v1", &sha, "release", &key);

    // A verifier that fetched only `key` from the keyserver.
    let keyserver = Keyserver::start(&[&key, &other]);
    let verifier = temp_dir("verifier");
    let gpg = require("gpg", "gnupg");
    let mut command = resource_protocol::process::command(&gpg, verifier.path());
    command.env("GNUPGHOME", verifier.path()).args([
        "--batch",
        "--keyserver",
        &keyserver.hkp_url(),
        "--recv-keys",
        &key.key_id,
    ]);
    testbed::tools::run_command(&mut command);
    verify(dir.path(), verifier.path(), "verify-commit", &sha).unwrap();
    verify(dir.path(), verifier.path(), "verify-tag", "v1").unwrap();
    let err = verify(dir.path(), other.gnupg_home(), "verify-commit", &sha).unwrap_err();
    assert!(
        err.contains(&key.key_id) || err.contains("No public key"),
        "{err}"
    );
    let mut kill =
        resource_protocol::process::command(require("gpgconf", "gnupg"), verifier.path());
    kill.env("GNUPGHOME", verifier.path())
        .args(["--kill", "all"]);
    testbed::tools::run_command(&mut kill);
}
