//! [`RegistryError`]: every way a registry operation fails, each with a distinct one-line message.
//!
//! Messages never contain a password or token: credentials live in `Secret`s and request URLs
//! never carry them.

use reqwest::StatusCode;

/// A failed registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An image reference, tag, digest or repository name that does not parse.
    #[error("invalid reference {0}")]
    InvalidReference(String),
    /// Client configuration that cannot work (a CA certificate that does not parse, …).
    #[error("invalid registry configuration: {0}")]
    InvalidConfig(String),
    /// The registry rejected the credentials (or demanded some and none were given).
    #[error("{}", unauthorized_message(registry, repository, user.as_deref()))]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository asked for.
        repository: String,
        /// User name, if any was configured.
        user: Option<String>,
    },
    /// Authenticated, but not allowed (403).
    #[error("denied: {registry} does not allow this operation on repository {repository:?}")]
    Denied {
        /// Registry host.
        registry: String,
        /// Repository asked for.
        repository: String,
    },
    /// The repository does not exist (or is invisible with these credentials).
    #[error("repository not found: {registry}/{repository}")]
    RepositoryNotFound {
        /// Registry host.
        registry: String,
        /// Repository asked for.
        repository: String,
    },
    /// The tag or digest is not in the repository.
    #[error("manifest unknown: {repository}:{reference} does not exist")]
    ManifestUnknown {
        /// Repository asked for.
        repository: String,
        /// Tag or digest asked for.
        reference: String,
    },
    /// The blob is not in the repository.
    #[error("blob unknown: {digest} is not in repository {repository:?}")]
    BlobUnknown {
        /// Repository asked for.
        repository: String,
        /// Digest asked for.
        digest: String,
    },
    /// Downloaded content does not hash to the digest it was asked for.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// An HTTP status the operation does not expect.
    #[error("{method} {url}: unexpected status {status}{}", detail_suffix(.detail))]
    UnexpectedStatus {
        /// Request method.
        method: String,
        /// Request URL (never holds credentials).
        url: String,
        /// Status received.
        status: StatusCode,
        /// The registry's error message, if it sent one.
        detail: String,
    },
    /// A response that does not follow the API (bad JSON, missing headers, …).
    #[error("invalid response from {url}: {message}")]
    InvalidResponse {
        /// Request URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The connection failed (after retries).
    #[error("{method} {url}: {message}")]
    Transport {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// The error chain, flattened to one line.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn unauthorized_message(registry: &str, repository: &str, user: Option<&str>) -> String {
    match user {
        Some(user) => format!(
            "unauthorized: {registry} rejected the credentials of user {user:?} for repository {repository:?}: check username and password"
        ),
        None => format!(
            "unauthorized: {registry} refused anonymous access to repository {repository:?}: it needs a username and password (or does not exist)"
        ),
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl RegistryError {
    /// Whether the error means "this tag/digest/blob/repository is not there".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::RepositoryNotFound { .. }
                | Self::ManifestUnknown { .. }
                | Self::BlobUnknown { .. }
        )
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn transport(method: &str, url: &str, err: &reqwest::Error) -> Self {
        Self::Transport {
            method: method.to_owned(),
            url: url.to_owned(),
            message: error_chain(err),
        }
    }
}

/// `err` and its sources joined by `: `, without repeating the URL reqwest puts in its message.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        let text = match text.find(" for url (") {
            Some(i) => text[..i].to_owned(),
            None => text,
        };
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
