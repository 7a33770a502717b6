//! Commit signature verification for `in` (`commit_verification_keys`,
//! `commit_verification_key_ids`, `gpg_keyserver`), like `git verify-commit`.
//!
//! libgit2 extracts the signature and the signed payload; `gpg` checks them against a keyring
//! that holds only the configured keys, in a throw-away `GNUPGHOME`, so the machine's own keys
//! never count. `gpg` is the one external program this needs; without it the error says so.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use git2::{Oid, Repository};
use resource_protocol::InvalidRequest;
use resource_protocol::process::{ProcessError, command, output_checked};

use crate::config::Source;

/// Default keyserver of the official resource.
const DEFAULT_KEYSERVER: &str = "hkp://keyserver.ubuntu.com/";

/// Fails unless `commit` carries a good signature by one of the configured keys. Does nothing
/// when no keys are configured.
pub fn verify_commit(repo: &Repository, commit: Oid, source: &Source) -> anyhow::Result<()> {
    let keys: Vec<&str> = source
        .commit_verification_keys
        .iter()
        .map(String::as_str)
        .filter(|k| !k.trim().is_empty())
        .collect();
    let key_ids: Vec<&str> = source
        .commit_verification_key_ids
        .iter()
        .map(String::as_str)
        .filter(|k| !k.trim().is_empty())
        .collect();
    if keys.is_empty() && key_ids.is_empty() {
        return Ok(());
    }
    let home = tempfile::tempdir().context("creating a GNUPGHOME")?;
    let gpg = |args: &[&str]| {
        let mut cmd = command("gpg", home.path());
        cmd.env("GNUPGHOME", home.path())
            .args(["--batch", "--no-tty", "--quiet"])
            .args(args);
        cmd
    };
    for (i, key) in keys.iter().enumerate() {
        let mut cmd = gpg(&["--import"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|err| gpg_missing(&err))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(key.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            return Err(InvalidRequest::new(format!(
                "source.commit_verification_keys[{i}]: not a valid GPG public key"
            ))
            .into());
        }
    }
    let keyserver = source
        .gpg_keyserver
        .as_deref()
        .filter(|k| !k.is_empty())
        .unwrap_or(DEFAULT_KEYSERVER);
    for id in &key_ids {
        output_checked(&mut gpg(&["--keyserver", keyserver, "--recv-keys", id])).map_err(
            |err| match err {
                ProcessError::Spawn { source, .. } => gpg_missing(&source),
                other => anyhow::anyhow!(
                    "source.commit_verification_key_ids: cannot fetch key {id} from {keyserver}: {other}"
                ),
            },
        )?;
    }
    let (signature, payload) = match repo.extract_signature(&commit, None) {
        Ok(pair) => pair,
        Err(err) if err.code() == git2::ErrorCode::NotFound => {
            bail!("the commit {commit} is not signed")
        }
        Err(err) => return Err(err.into()),
    };
    let sig_file = home.path().join("commit.sig");
    let payload_file = home.path().join("commit.payload");
    std::fs::write(&sig_file, &*signature)?;
    std::fs::write(&payload_file, &*payload)?;
    let status = verify(
        &mut gpg(&["--status-fd", "1", "--verify"]),
        &sig_file,
        &payload_file,
    )?;
    if status.lines().any(|l| l.starts_with("[GNUPG:] GOODSIG")) {
        tracing::info!("commit {commit} has a good signature");
        Ok(())
    } else {
        bail!("the commit {commit} is not signed by any of the configured keys")
    }
}

fn verify(cmd: &mut std::process::Command, sig: &Path, payload: &Path) -> anyhow::Result<String> {
    let output = cmd
        .arg(sig)
        .arg(payload)
        .output()
        .map_err(|err| gpg_missing(&err))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn gpg_missing(err: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "source.commit_verification_keys: cannot run gpg ({err}); install gnupg to verify commit signatures"
    )
}
