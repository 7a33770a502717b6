//! OpenPGP fixtures for signature checks: throw-away GnuPG keys, signed commits and tags, and an
//! HKP keyserver (`/pks/lookup`) serving chosen keys.
//!
//! Each [`GpgKey`] has its own `GNUPGHOME`; its `gpg-agent` is stopped when the key drops.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::git::{CommitSpec, commit, git_command};
use crate::http_fixture::HttpFixture;
use crate::tools::{require, run_command, temp_dir};

/// An ed25519 signing key in its own GnuPG home.
pub struct GpgKey {
    /// The user id's name.
    pub name: String,
    /// The user id's email.
    pub email: String,
    /// The full fingerprint (40 upper-case hex digits).
    pub fingerprint: String,
    /// The long key id (the fingerprint's last 16 digits).
    pub key_id: String,
    /// The ASCII-armored public key.
    pub public_armored: String,
    home: tempfile::TempDir,
}

impl GpgKey {
    /// Generates a key for `name <email>` (no passphrase, no expiry).
    pub fn generate(name: &str, email: &str) -> GpgKey {
        require("gpg", "gnupg");
        let home = temp_dir("gpg");
        let uid = format!("{name} <{email}>");
        let gpg = |args: &[&str]| -> String {
            let mut command =
                resource_protocol::process::command(require("gpg", "gnupg"), home.path());
            command
                .env("GNUPGHOME", home.path())
                .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args);
            String::from_utf8_lossy(&run_command(&mut command)).into_owned()
        };
        gpg(&["--quick-gen-key", &uid, "ed25519", "sign", "0"]);
        let listing = gpg(&["--with-colons", "--list-secret-keys"]);
        let fingerprint = listing
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .map(|rest| rest.trim_matches(':').to_owned())
            .expect("gpg listed the new key's fingerprint");
        let public_armored = gpg(&["--armor", "--export", &fingerprint]);
        GpgKey {
            name: name.to_owned(),
            email: email.to_owned(),
            key_id: fingerprint[fingerprint.len() - 16..].to_owned(),
            fingerprint,
            public_armored,
            home,
        }
    }

    /// The key's `GNUPGHOME`.
    pub fn gnupg_home(&self) -> &Path {
        self.home.path()
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        if let Some(gpgconf) = crate::tools::find_program("gpgconf") {
            let mut command = resource_protocol::process::command(gpgconf, self.home.path());
            command
                .env("GNUPGHOME", self.home.path())
                .args(["--kill", "all"]);
            let _ = command.output();
        }
    }
}

/// A hermetic git command that signs with `key`.
fn signing_git(cwd: &Path, key: &GpgKey) -> std::process::Command {
    let mut command = git_command(cwd);
    command
        .env("GNUPGHOME", key.gnupg_home())
        .arg("-c")
        .arg(format!("user.signingkey={}", key.fingerprint))
        .arg("-c")
        .arg(format!("user.name={}", key.name))
        .arg("-c")
        .arg(format!("user.email={}", key.email));
    command
}

/// Makes the commit `spec` in `repo` (like [`crate::git::commit`]) and signs it with `key`;
/// returns the signed commit's SHA, which the branch then points at.
pub fn commit_signed(repo: &Path, spec: &CommitSpec<'_>, key: &GpgKey) -> String {
    let unsigned = commit(repo, spec);
    let parents = crate::git::git(repo, &["rev-list", "--parents", "-n", "1", &unsigned]);
    let date = format!("{} +0000", spec.time);
    let mut command = signing_git(repo, key);
    command
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .args(["commit-tree", &format!("-S{}", key.fingerprint)])
        .arg(format!("{unsigned}^{{tree}}"))
        .args(["-m", spec.message]);
    for parent in parents.split_whitespace().skip(1) {
        command.args(["-p", parent]);
    }
    let signed = String::from_utf8_lossy(&run_command(&mut command))
        .trim()
        .to_owned();
    crate::git::git(
        repo,
        &[
            "update-ref",
            &format!("refs/heads/{}", spec.branch),
            &signed,
            &unsigned,
        ],
    );
    signed
}

/// Creates the annotated tag `name` on `target` in `repo`, signed with `key`.
pub fn tag_signed(repo: &Path, name: &str, target: &str, message: &str, key: &GpgKey) {
    let mut command = signing_git(repo, key);
    command.args(["tag", "-u", &key.fingerprint, "-m", message, name, target]);
    run_command(&mut command);
}

/// An HKP keyserver: `GET /pks/lookup?op=get&search=0xKEYID` (long id or fingerprint, with or
/// without `0x`) answers the armored key, 404 otherwise. Stops when dropped.
pub struct Keyserver {
    server: HttpFixture,
}

impl Keyserver {
    /// Serves the public keys of `keys`.
    pub fn start(keys: &[&GpgKey]) -> Keyserver {
        let served: Vec<(String, String)> = keys
            .iter()
            .map(|key| (key.fingerprint.clone(), key.public_armored.clone()))
            .collect();
        let app = Router::new()
            .route("/pks/lookup", get(lookup))
            .with_state(Arc::new(served));
        let server = HttpFixture::serve("keyserver", app);
        Keyserver { server }
    }

    /// `hkp://127.0.0.1:PORT`, for `gpg --keyserver`.
    pub fn hkp_url(&self) -> String {
        format!("hkp://{}", self.server.addr())
    }

    /// `http://127.0.0.1:PORT`, the same server for HTTP clients.
    pub fn http_url(&self) -> String {
        self.server.url()
    }
}

/// `GET /pks/lookup`: the key whose fingerprint ends with the searched id.
async fn lookup(
    State(keys): State<Arc<Vec<(String, String)>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("op") != Some("get") {
        return (StatusCode::NOT_IMPLEMENTED, "only op=get").into_response();
    }
    let search = param("search").unwrap_or_default();
    let search = search
        .strip_prefix("0x")
        .or_else(|| search.strip_prefix("0X"))
        .unwrap_or(search)
        .to_ascii_uppercase();
    let found = keys
        .iter()
        .find(|(fingerprint, _)| search.len() >= 8 && fingerprint.ends_with(&search));
    match found {
        Some((_, armored)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/pgp-keys")],
            armored.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such key").into_response(),
    }
}
