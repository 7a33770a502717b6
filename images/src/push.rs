//! `--push`: pushes built images through our own registry-image resource's `out`, exactly as a
//! Concourse put step would run it (request JSON on stdin, the image in a source directory).
//!
//! Credentials travel only in the request on the child's stdin; they never reach logs or errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use resource_protocol::Secret;
use resource_protocol::process::{command, stderr_tail};

use crate::build::BuiltImage;

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// `REGISTRY/NAMESPACE`: images go to `REGISTRY/NAMESPACE/<type>-resource`.
    pub prefix: String,
    /// Extra tags besides the version (e.g. `latest`).
    pub extra_tags: Vec<String>,
    /// Allow plain HTTP (`source.insecure`).
    pub insecure: bool,
    /// Registry user name.
    pub username: Option<String>,
    /// Registry password.
    pub password: Option<Secret>,
    /// Extra CA certificates (PEM) the registry's TLS certificate may chain to.
    pub ca_certs: Vec<String>,
    /// The `registry-image-resource` binary that pushes.
    pub resource_binary: PathBuf,
}

/// A pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `REGISTRY/NAMESPACE/<type>-resource`.
    pub repository: String,
    /// The version tag.
    pub tag: String,
    /// The digest the resource reported.
    pub digest: String,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Preparing the put's source directory or running the resource failed.
    #[error("push {repository}: {what}")]
    Io {
        /// Target repository.
        repository: String,
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The resource exited unsuccessfully.
    #[error("push {repository}: registry-image out failed ({status}): {stderr}")]
    Failed {
        /// Target repository.
        repository: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its stderr.
        stderr: String,
    },
    /// The resource answered something other than `{"version":{"tag","digest"}}`.
    #[error("push {repository}: unexpected answer from registry-image out: {answer}")]
    Answer {
        /// Target repository.
        repository: String,
        /// What it printed.
        answer: String,
    },
}

/// The repository `image` is pushed to under `prefix`.
pub fn repository_for(prefix: &str, image: &BuiltImage) -> String {
    format!(
        "{}/{}-resource",
        prefix.trim_end_matches('/'),
        image.type_name
    )
}

/// The put request for `image`: `source` names the repository and tag, `params` the archive.
pub fn put_request(image: &BuiltImage, options: &PushOptions) -> serde_json::Value {
    let mut source = serde_json::json!({
        "repository": repository_for(&options.prefix, image),
        "tag": image.tag,
    });
    if options.insecure {
        source["insecure"] = true.into();
    }
    if let Some(username) = &options.username {
        source["username"] = username.clone().into();
    }
    if let Some(password) = &options.password {
        source["password"] = password.expose().into();
    }
    if !options.ca_certs.is_empty() {
        source["ca_certs"] = options.ca_certs.clone().into();
    }
    let mut params = serde_json::json!({ "image": "image/image.tar" });
    if !options.extra_tags.is_empty() {
        params["additional_tags"] = "tags".into();
    }
    serde_json::json!({ "source": source, "params": params })
}

/// Pushes `image` with `registry-image-resource out`.
pub fn push_image(image: &BuiltImage, options: &PushOptions) -> Result<PushedImage, PushError> {
    let repository = repository_for(&options.prefix, image);
    let io_err = |what: &str| {
        let repository = repository.clone();
        let what = what.to_owned();
        move |source| PushError::Io {
            repository,
            what,
            source,
        }
    };
    let src = tempfile::tempdir().map_err(io_err("create put source directory"))?;
    let image_dir = src.path().join("image");
    std::fs::create_dir(&image_dir).map_err(io_err("create put source directory"))?;
    link_or_copy(&image.oci_archive, &image_dir.join("image.tar"))
        .map_err(io_err("stage oci-archive"))?;
    if !options.extra_tags.is_empty() {
        std::fs::write(
            src.path().join("tags"),
            options.extra_tags.join("\n") + "\n",
        )
        .map_err(io_err("write tags file"))?;
    }
    let request = put_request(image, options).to_string();

    let mut child = command(&options.resource_binary, src.path())
        .arg("out")
        .arg(src.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(&format!(
            "run {}",
            options.resource_binary.display()
        )))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.as_bytes())
            .map_err(io_err("write request"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(io_err("wait for registry-image out"))?;
    if !output.status.success() {
        return Err(PushError::Failed {
            repository,
            status: output.status,
            stderr: stderr_tail(&output.stderr),
        });
    }
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let version = &answer["version"];
    match (version["tag"].as_str(), version["digest"].as_str()) {
        (Some(tag), Some(digest)) => Ok(PushedImage {
            repository,
            tag: tag.to_owned(),
            digest: digest.to_owned(),
        }),
        _ => Err(PushError::Answer {
            repository,
            answer: String::from_utf8_lossy(&output.stdout).into_owned(),
        }),
    }
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> BuiltImage {
        BuiltImage {
            type_name: "git".into(),
            tag: "0.1.0".into(),
            layout: "out/git".into(),
            oci_archive: "out/git.oci-archive.tar".into(),
            docker_archive: "out/git.docker-archive.tar".into(),
            manifest_digest: "sha256:00".into(),
            compressed_size: 1,
            uncompressed_size: 2,
            millis: 3,
        }
    }

    fn options() -> PushOptions {
        PushOptions {
            prefix: "127.0.0.1:5000/tributary/".into(),
            extra_tags: vec![],
            insecure: false,
            username: None,
            password: None,
            ca_certs: vec![],
            resource_binary: "registry-image-resource".into(),
        }
    }

    #[test]
    fn put_requests() {
        let check = |options: PushOptions, expect: serde_json::Value| {
            assert_eq!(put_request(&image(), &options), expect);
        };
        check(
            options(),
            serde_json::json!({
                "source": {"repository": "127.0.0.1:5000/tributary/git-resource", "tag": "0.1.0"},
                "params": {"image": "image/image.tar"},
            }),
        );
        check(
            PushOptions {
                extra_tags: vec!["latest".into()],
                insecure: true,
                username: Some("u".into()),
                password: Some(Secret::new("p".to_owned())),
                ca_certs: vec!["PEM".into()],
                ..options()
            },
            serde_json::json!({
                "source": {
                    "repository": "127.0.0.1:5000/tributary/git-resource", "tag": "0.1.0",
                    "insecure": true, "username": "u", "password": "p", "ca_certs": ["PEM"],
                },
                "params": {"image": "image/image.tar", "additional_tags": "tags"},
            }),
        );
    }
}
