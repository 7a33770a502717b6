//! Git LFS for `in`: replace pointer files in the checkout with their objects, fetched with the
//! LFS batch API (`POST <endpoint>/objects/batch`, then the `basic` transfer's downloads).
//!
//! Only files whose `filter` attribute is `lfs` and whose content is a valid pointer are
//! touched. Every object is hashed while it streams to `.git/lfs/tmp` and checked against the
//! pointer's oid and size before it lands in `.git/lfs/objects` and the work tree, so a failed
//! download never leaves a file that looks complete. Credentials go only to the endpoint's host.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use git2::{AttrCheckFlags, Repository};
use resource_protocol::NotImplemented;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::transport::{Auth, redact_url, url_host};

const POINTER_VERSION: &str = "version https://git-lfs.github.com/spec/v1";
const LFS_MEDIA_TYPE: &str = "application/vnd.git-lfs+json";

/// One pointer file in the work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pointer {
    path: String,
    oid: String,
    size: u64,
}

/// Parses an LFS pointer file; `None` when `content` is not one.
fn parse_pointer(content: &[u8]) -> Option<(String, u64)> {
    if content.len() > 1024 {
        return None;
    }
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines();
    if lines.next()? != POINTER_VERSION {
        return None;
    }
    let (mut oid, mut size) = (None, None);
    for line in lines {
        if let Some(v) = line.strip_prefix("oid sha256:") {
            oid = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("size ") {
            size = v.parse().ok();
        }
    }
    let oid = oid.filter(|o| o.len() == 64 && o.bytes().all(|b| b.is_ascii_hexdigit()))?;
    Some((oid, size?))
}

/// The LFS pointers of the checked-out tree (`filter=lfs` paths whose blob is a pointer).
fn pointers(repo: &Repository) -> anyhow::Result<Vec<Pointer>> {
    let index = repo.index()?;
    let mut found = Vec::new();
    for entry in index.iter() {
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        let filter = repo.get_attr(Path::new(&path), "filter", AttrCheckFlags::FILE_THEN_INDEX)?;
        if filter != Some("lfs") {
            continue;
        }
        let blob = repo.find_blob(entry.id)?;
        if let Some((oid, size)) = parse_pointer(blob.content()) {
            found.push(Pointer { path, oid, size });
        }
    }
    Ok(found)
}

/// The LFS endpoint: `lfs.url` (git config or `.lfsconfig`), else derived from the remote URL
/// as git-lfs does.
fn endpoint(repo: &Repository, workdir: &Path, remote_url: &str) -> anyhow::Result<String> {
    if let Ok(url) = repo.config()?.get_string("lfs.url") {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    if let Ok(config) = git2::Config::open(&workdir.join(".lfsconfig"))
        && let Ok(url) = config.get_string("lfs.url")
    {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let url = remote_url.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(NotImplemented::new(format!(
            "git-lfs over {} (only http(s) remotes or an lfs.url are supported; set params.disable_git_lfs: true to get the pointer files)",
            redact_url(url)
        ))
        .into());
    }
    Ok(if url.ends_with(".git") {
        format!("{url}/info/lfs")
    } else {
        format!("{url}.git/info/lfs")
    })
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    operation: &'a str,
    transfers: [&'a str; 1],
    objects: Vec<BatchObject>,
}

#[derive(Serialize, Deserialize)]
struct BatchObject {
    oid: String,
    size: u64,
}

#[derive(Deserialize)]
struct BatchResponse {
    #[serde(default)]
    objects: Vec<ResponseObject>,
}

#[derive(Deserialize)]
struct ResponseObject {
    oid: String,
    #[serde(default)]
    actions: Option<Actions>,
    #[serde(default)]
    error: Option<ObjectError>,
}

#[derive(Deserialize)]
struct Actions {
    download: Option<Action>,
}

#[derive(Deserialize)]
struct Action {
    href: String,
    #[serde(default)]
    header: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ObjectError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// Replaces the pointer files of the checkout in `workdir` with their LFS objects.
pub fn smudge(
    repo: &Repository,
    workdir: &Path,
    remote_url: &str,
    auth: &Auth,
) -> anyhow::Result<()> {
    let pointers = pointers(repo)?;
    if pointers.is_empty() {
        return Ok(());
    }
    let endpoint = endpoint(repo, workdir, remote_url)?;
    tracing::info!(
        "fetching {} git-lfs object(s) from {}",
        pointers.len(),
        redact_url(&endpoint)
    );
    let client = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(auth.skip_ssl_verification)
        .timeout(std::time::Duration::from_secs(600))
        .build()?;
    let endpoint_host = url_host(&endpoint);
    let with_auth = |request: reqwest::blocking::RequestBuilder, url: &str| match (
        &auth.username,
        &auth.password,
    ) {
        (Some(user), Some(password)) if url_host(url) == endpoint_host => {
            request.basic_auth(user, Some(password.expose()))
        }
        _ => request,
    };
    let mut wanted: Vec<BatchObject> = Vec::new();
    for p in &pointers {
        if !wanted.iter().any(|w| w.oid == p.oid) {
            wanted.push(BatchObject {
                oid: p.oid.clone(),
                size: p.size,
            });
        }
    }
    let batch_url = format!("{endpoint}/objects/batch");
    let request = client
        .post(&batch_url)
        .header("Accept", LFS_MEDIA_TYPE)
        .header("Content-Type", LFS_MEDIA_TYPE)
        .body(serde_json::to_vec(&BatchRequest {
            operation: "download",
            transfers: ["basic"],
            objects: wanted,
        })?);
    let response = with_auth(request, &batch_url)
        .send()
        .with_context(|| format!("git-lfs batch request to {}", redact_url(&batch_url)))?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "git-lfs batch request to {} failed: {status}",
            redact_url(&batch_url)
        );
    }
    let batch: BatchResponse = response
        .json()
        .context("git-lfs batch response is not valid")?;
    let store = repo.path().join("lfs");
    for object in batch.objects {
        if let Some(error) = object.error {
            bail!(
                "git-lfs object {}: {} ({})",
                object.oid,
                error.message,
                error.code
            );
        }
        let Some(download) = object.actions.and_then(|a| a.download) else {
            bail!(
                "git-lfs object {}: the server gave no download action",
                object.oid
            );
        };
        let Some(pointer) = pointers.iter().find(|p| p.oid == object.oid) else {
            continue;
        };
        let stored = store
            .join("objects")
            .join(&object.oid[..2])
            .join(&object.oid[2..4])
            .join(&object.oid);
        if !stored.exists() {
            download_object(&client, &download, pointer, &store, &stored, &with_auth)?;
        }
        for p in pointers.iter().filter(|p| p.oid == object.oid) {
            let target = workdir.join(&p.path);
            // Sparse checkouts leave some paths out of the work tree.
            if target.exists() {
                std::fs::copy(&stored, &target).with_context(|| format!("writing {}", p.path))?;
            }
        }
    }
    Ok(())
}

fn download_object(
    client: &reqwest::blocking::Client,
    action: &Action,
    pointer: &Pointer,
    store: &Path,
    stored: &Path,
    with_auth: &dyn Fn(
        reqwest::blocking::RequestBuilder,
        &str,
    ) -> reqwest::blocking::RequestBuilder,
) -> anyhow::Result<()> {
    let mut request = client.get(&action.href);
    for (name, value) in &action.header {
        request = request.header(name, value);
    }
    // Explicit headers from the server (e.g. a token) replace our credentials.
    if !action
        .header
        .keys()
        .any(|k| k.eq_ignore_ascii_case("authorization"))
    {
        request = with_auth(request, &action.href);
    }
    let mut response = request
        .send()
        .with_context(|| format!("downloading git-lfs object {}", pointer.oid))?;
    if !response.status().is_success() {
        bail!(
            "downloading git-lfs object {}: {}",
            pointer.oid,
            response.status()
        );
    }
    let tmp_dir = store.join("tmp");
    std::fs::create_dir_all(&tmp_dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = response.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        tmp.write_all(&buffer[..n])?;
        size += n as u64;
    }
    let digest = hex::encode(hasher.finalize());
    if digest != pointer.oid || size != pointer.size {
        bail!(
            "git-lfs object {} is corrupt: got {size} bytes with sha256 {digest}",
            pointer.oid
        );
    }
    if let Some(parent) = stored.parent() {
        std::fs::create_dir_all(parent)?;
    }
    tmp.persist(stored)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pointers() {
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let good = format!("{POINTER_VERSION}\noid sha256:{oid}\nsize 12345\n");
        assert_eq!(
            parse_pointer(good.as_bytes()),
            Some((oid.to_owned(), 12345))
        );
        assert_eq!(parse_pointer(b"hello"), None);
        let short = format!("{POINTER_VERSION}\noid sha256:abc\nsize 1\n");
        assert_eq!(parse_pointer(short.as_bytes()), None);
    }
}
