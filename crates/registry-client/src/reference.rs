//! Image references (`[host[:port]/]repo[:tag][@digest]`) with Docker Hub normalisation.
//!
//! Parsing follows the rules of Docker's `reference` package: the first path component is a
//! registry host when it contains `.` or `:` or is `localhost`; otherwise the image lives on
//! Docker Hub, whose API host is `registry-1.docker.io` and whose one-component names get the
//! `library/` prefix. This module never touches the network.

use std::fmt;

use crate::digest::validate_digest;
use crate::error::RegistryError;

/// The host users write for Docker Hub.
pub const DOCKER_HUB_DISPLAY_HOST: &str = "docker.io";
/// The host that serves Docker Hub's distribution API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The host (and port) serving the distribution API, e.g. `registry-1.docker.io` or
    /// `127.0.0.1:5000`.
    pub registry: String,
    /// The repository path inside the registry, e.g. `library/ubuntu`.
    pub repository: String,
    /// The tag, if one was given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), if one was given.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses `repo`, `repo:tag`, `repo@digest` or `repo:tag@digest`, where `repo` may start with
    /// a registry host. No host means Docker Hub; a bare name there gets `library/`.
    pub fn parse(input: &str) -> Result<Self, RegistryError> {
        let invalid = |why: &str| RegistryError::InvalidReference(format!("{input:?}: {why}"));
        let input_trimmed = input.trim();
        if input_trimmed.is_empty() {
            return Err(invalid("must not be empty"));
        }
        let (name_and_tag, digest) = match input_trimmed.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest).map_err(|e| invalid(&e))?;
                (name, Some(digest.to_owned()))
            }
            None => (input_trimmed, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|e| invalid(&e))?;
        }
        let (host, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB_DISPLAY_HOST.to_owned(), name.to_owned()),
        };
        let is_hub = is_docker_hub(&host);
        let registry = if is_hub {
            DOCKER_HUB_API_HOST.to_owned()
        } else {
            host.to_ascii_lowercase()
        };
        let repository = if is_hub && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        validate_repository(&repository).map_err(|e| invalid(&e))?;
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Whether the image lives on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        is_docker_hub(&self.registry)
    }

    /// The reference to ask the registry for: the digest if there is one, else the tag, else
    /// `latest`.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The repository as users write it (`docker.io/library/ubuntu`, `127.0.0.1:5000/app`).
    pub fn name(&self) -> String {
        if self.is_docker_hub() {
            format!("{DOCKER_HUB_DISPLAY_HOST}/{}", self.repository)
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `host` names Docker Hub (any of the spellings people use).
pub fn is_docker_hub(host: &str) -> bool {
    matches!(
        host.to_ascii_lowercase().as_str(),
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// Checks a tag against the distribution grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Err(format!(
            "invalid tag {tag:?}: letters, digits, '_', '.', '-' only, at most 128, not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// Checks a repository path: lowercase components of `[a-z0-9]` joined by `.`, `_`, `__`, `-`,
/// separated by `/`.
pub fn validate_repository(repository: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
    };
    if repository.is_empty() || !repository.split('/').all(component_ok) {
        return Err(format!(
            "invalid repository name {repository:?}: lowercase letters, digits and separators ('.', '_', '-', '/') only"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        let got = match ImageReference::parse(input) {
            Ok(r) => format!(
                "{} {} {} {}",
                r.registry,
                r.repository,
                r.tag.as_deref().unwrap_or("-"),
                r.digest.as_deref().map_or("-", |d| &d[..12])
            ),
            Err(e) => format!("error: {e}"),
        };
        assert!(
            got == expect || (expect.starts_with("error") && got.contains(&expect[7..])),
            "{input:?}: got {got:?}, expected {expect:?}"
        );
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_references() {
        check("ubuntu", "registry-1.docker.io library/ubuntu - -");
        check(
            "ubuntu:22.04",
            "registry-1.docker.io library/ubuntu 22.04 -",
        );
        check(
            "concourse/git-resource",
            "registry-1.docker.io concourse/git-resource - -",
        );
        check(
            "docker.io/ubuntu",
            "registry-1.docker.io library/ubuntu - -",
        );
        check(
            "index.docker.io/library/ubuntu:1",
            "registry-1.docker.io library/ubuntu 1 -",
        );
        check("127.0.0.1:5000/app", "127.0.0.1:5000 app - -");
        check("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000 team/app v1 -");
        check("localhost/app", "localhost app - -");
        check("localhost:5000/app:latest", "localhost:5000 app latest -");
        check(
            "ghcr.io/org/a/b/c:tag_1.0-x",
            "ghcr.io org/a/b/c tag_1.0-x -",
        );
        check("Quay.IO/org/app", "quay.io org/app - -");
        check(
            &format!("app@{D}"),
            "registry-1.docker.io library/app - sha256:01234",
        );
        check(&format!("h.io/app:t@{D}"), "h.io app t sha256:01234");
        check("", "error: must not be empty");
        check("UPPER", "error: invalid repository name");
        check("app:", "error: invalid tag");
        check("app:-x", "error: invalid tag");
        check("app@sha256:xyz", "error: digest");
        check("h.io/", "error: invalid repository name");
        check("a//b", "error: invalid repository name");
    }

    #[test]
    fn displays_and_picks_reference() {
        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        assert_eq!(r.manifest_reference(), "latest");
        assert!(r.is_docker_hub());
        let r = ImageReference::parse(&format!("h.io:1/app:t@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("h.io:1/app:t@{D}"));
        assert_eq!(r.manifest_reference(), D);
    }
}
