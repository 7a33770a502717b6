//! Talking to remotes: credentials, certificate checks, timeouts and redacted URLs.
//!
//! Every network operation (check's fetch, in's clone, out's push) builds its libgit2 callbacks
//! here, so authentication behaves the same everywhere. Secrets leave the process only through
//! libgit2's credential objects; they must never reach a log line or an error message, which is
//! why errors name URLs through [`redact_url`].

use std::cell::Cell;

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, PushOptions,
    RemoteCallbacks,
};
use resource_protocol::{InvalidRequest, Secret};

use crate::config::{Source, SubmoduleCredential};

/// How long connecting to a server may take before the operation fails.
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// How often a long fetch logs its progress (one line each time: build logs are not terminals).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Credentials and TLS settings for one remote.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// HTTP user name.
    pub username: Option<String>,
    /// HTTP password.
    pub password: Option<Secret>,
    /// SSH private key.
    pub private_key: Option<Secret>,
    /// Passphrase of the SSH key.
    pub passphrase: Option<Secret>,
    /// SSH user when the URL names none.
    pub ssh_user: Option<String>,
    /// Accept any TLS certificate.
    pub skip_ssl_verification: bool,
    /// Field prefix used in errors (`source` or `source.submodule_credentials[0]`).
    pub field: String,
}

impl Auth {
    /// The credentials of `source` for its main repository.
    pub fn from_source(source: &Source) -> Self {
        let (url_user, url_password) = match url_credentials(source.uri.trim()) {
            Some((user, password)) => (Some(user), Some(password)),
            None => (None, None),
        };
        Self {
            username: source
                .username
                .clone()
                .filter(|u| !u.is_empty())
                .or(url_user),
            password: source
                .password
                .clone()
                .filter(|p| !p.is_empty())
                .or(url_password),
            private_key: source.private_key.clone().filter(|k| !k.is_empty()),
            passphrase: source
                .private_key_passphrase
                .clone()
                .filter(|p| !p.is_empty()),
            ssh_user: source.private_key_user.clone().filter(|u| !u.is_empty()),
            skip_ssl_verification: source.skip_ssl_verification.unwrap_or(false),
            field: "source".into(),
        }
    }

    /// The credentials for a submodule at `url`: a matching `submodule_credentials` entry, or
    /// the main repository's.
    pub fn for_submodule(source: &Source, url: &str) -> Self {
        let base = Self::from_source(source);
        let host = url_host(url);
        for (i, cred) in source.submodule_credentials.iter().enumerate() {
            let SubmoduleCredential {
                host: cred_host,
                username,
                password,
                url: cred_url,
                private_key,
                private_key_passphrase,
            } = cred;
            let field = format!("source.submodule_credentials[{i}]");
            if cred_url.as_deref() == Some(url) {
                return Self {
                    private_key: private_key.clone(),
                    passphrase: private_key_passphrase.clone(),
                    field,
                    ..base
                };
            }
            if let (Some(h), Some(host)) = (cred_host, &host)
                && h == host
            {
                return Self {
                    username: username.clone(),
                    password: password.clone(),
                    field,
                    ..base
                };
            }
        }
        base
    }

    /// Checks the SSH key before any connection, so a bad key is a clear configuration error.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        let Some(key) = &self.private_key else {
            return Ok(());
        };
        let field = &self.field;
        match key_encryption(key.expose()) {
            KeyKind::NotAKey => Err(InvalidRequest::new(format!(
                "{field}.private_key: not a PEM or OpenSSH private key"
            ))),
            KeyKind::Encrypted if self.passphrase.is_none() => Err(InvalidRequest::new(format!(
                "{field}.private_key: the key is passphrase-protected; set {field}.private_key_passphrase"
            ))),
            _ => Ok(()),
        }
    }

    /// Callbacks that answer credential requests once (a second request means the server
    /// refused them) and apply the TLS setting.
    pub fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let attempts = Cell::new(0u32);
        callbacks.credentials(move |_url, user_from_url, allowed| {
            attempts.set(attempts.get() + 1);
            self.credential(user_from_url, allowed, attempts.get())
        });
        let skip_ssl = self.skip_ssl_verification;
        callbacks.certificate_check(move |cert, _host| {
            // SSH host keys are accepted like the official resource does
            // (StrictHostKeyChecking=no); TLS certificates are verified unless told not to.
            if cert.as_hostkey().is_some() || skip_ssl {
                Ok(CertificateCheckStatus::CertificateOk)
            } else {
                Ok(CertificateCheckStatus::CertificatePassthrough)
            }
        });
        callbacks
    }

    fn credential(
        &self,
        user_from_url: Option<&str>,
        allowed: CredentialType,
        attempt: u32,
    ) -> Result<Cred, git2::Error> {
        let field = &self.field;
        if allowed.contains(CredentialType::USERNAME) {
            let user = user_from_url.or(self.ssh_user.as_deref()).unwrap_or("git");
            return Cred::username(user);
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let Some(key) = &self.private_key else {
                return Err(git2::Error::from_str(&format!(
                    "ssh authentication required: set {field}.private_key"
                )));
            };
            if attempt > 2 {
                return Err(git2::Error::from_str(&format!(
                    "ssh authentication failed: the server refused {field}.private_key"
                )));
            }
            let user = user_from_url.or(self.ssh_user.as_deref()).unwrap_or("git");
            return Cred::ssh_key_from_memory(
                user,
                None,
                key.expose(),
                self.passphrase.as_ref().map(Secret::expose),
            )
            .map_err(|_| {
                git2::Error::from_str(&format!(
                    "{field}.private_key: cannot load the key (wrong {field}.private_key_passphrase?)"
                ))
            });
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            let (Some(user), Some(password)) = (
                self.username.as_deref().or(user_from_url),
                self.password.as_ref(),
            ) else {
                return Err(git2::Error::from_str(&format!(
                    "authentication required: set {field}.username and {field}.password"
                )));
            };
            if attempt > 1 {
                return Err(git2::Error::from_str(&format!(
                    "authentication failed: the server rejected {field}.username/{field}.password"
                )));
            }
            return Cred::userpass_plaintext(user, password.expose());
        }
        Err(git2::Error::from_str(
            "the server asked for an unsupported kind of credentials",
        ))
    }

    /// Fetch options with these credentials, logging progress every few seconds.
    pub fn fetch_options(&self) -> FetchOptions<'_> {
        let mut callbacks = self.callbacks();
        let started = std::time::Instant::now();
        let last = Cell::new(started);
        callbacks.transfer_progress(move |progress| {
            let now = std::time::Instant::now();
            if now.duration_since(last.get()) >= PROGRESS_EVERY {
                last.set(now);
                tracing::info!(
                    "received {}/{} objects ({:.1} MiB), indexed {} in {}s",
                    progress.received_objects(),
                    progress.total_objects(),
                    progress.received_bytes() as f64 / 1_048_576.0,
                    progress.indexed_objects(),
                    now.duration_since(started).as_secs()
                );
            }
            true
        });
        let mut options = FetchOptions::new();
        options
            .proxy_options(proxy())
            .remote_callbacks(callbacks)
            .download_tags(AutotagOption::None);
        options
    }

    /// Push options with these credentials.
    pub fn push_options(&self) -> PushOptions<'_> {
        let mut options = PushOptions::new();
        options
            .proxy_options(proxy())
            .remote_callbacks(self.callbacks());
        options
    }
}

/// Proxy settings as git uses them: `http.proxy` from the configuration, else the
/// `http_proxy`/`https_proxy` environment variables.
pub fn proxy() -> git2::ProxyOptions<'static> {
    let mut options = git2::ProxyOptions::new();
    options.auto();
    options
}

/// Process-wide libgit2 settings: no repository-owner check (Concourse hands us directories
/// created by other users), no re-hashing of objects already verified when fetched.
///
/// libgit2's own connect timeout is not used: with it set, libgit2 1.9 leaves sockets
/// non-blocking and reads fail with EAGAIN; [`probe_reachable`] bounds the connect instead.
pub fn configure_libgit2() {
    crate::daemon::register();
    // Objects are verified when a fetch indexes them; hashing every object again on each read
    // (with the collision-detecting SHA-1) would triple the cost of a history walk.
    git2::opts::strict_hash_verification(false);
    #[allow(unsafe_code)]
    // SAFETY: this setter only stores a flag in libgit2's global settings; it is called before
    // any libgit2 operation, on the main thread.
    unsafe {
        let _ = git2::opts::set_verify_owner_validation(false);
    }
}

/// [`configure_libgit2`] for a check of `uri`, skipping the system's CA certificates unless
/// `uri` is `http(s)://`.
///
/// libgit2 loads the whole CA bundle (some 150 certificates, about 4 ms, a quarter of an
/// incremental check) when it starts, and only TLS needs it. A check contacts nothing but
/// `uri` (no submodules, no LFS), so over `git://`, ssh or a path OpenSSL is pointed at an
/// empty bundle while libgit2 starts, and `SSL_CERT_FILE` is restored right after.
pub fn configure_libgit2_for_check(uri: &str) {
    let uri = uri.trim();
    let http = ["http://", "https://"].iter().any(|scheme| {
        uri.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    if http {
        configure_libgit2();
        return;
    }
    let saved = std::env::var_os("SSL_CERT_FILE");
    #[allow(unsafe_code)]
    // SAFETY: the check runs on the main thread before any other thread exists, and libgit2
    // (which reads the variable while it starts, in `configure_libgit2`) is not yet in use.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", "/dev/null");
        configure_libgit2();
        match saved {
            Some(value) => std::env::set_var("SSL_CERT_FILE", value),
            None => std::env::remove_var("SSL_CERT_FILE"),
        }
    }
}

/// Fails fast, with a clear message, when the server of a network URL does not accept TCP
/// connections within 20 s (libgit2 would wait for the system's timeout,
/// minutes for a silent host). Skipped for local repositories and when a proxy is configured.
pub fn probe_reachable(uri: &str) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    let proxied = [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    let Some((host, port)) = host_and_port(uri) else {
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        if !std::path::Path::new(path).exists() {
            anyhow::bail!("source.uri: {path} does not exist");
        }
        return Ok(());
    };
    // `git://` connects through [`crate::daemon`], which bounds the connect itself.
    if proxied
        || uri
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("git://"))
    {
        return Ok(());
    }
    let shown = redact_url(uri);
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|err| anyhow::anyhow!("cannot reach {shown}: cannot resolve {host}: {err}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(err) => last = Some(err),
        }
    }
    match last {
        Some(err) => anyhow::bail!("cannot reach {shown}: connecting to {host}:{port}: {err}"),
        None => anyhow::bail!("cannot reach {shown}: {host} has no addresses"),
    }
}

/// Whether `uri` names a server (as opposed to a local path or `file://`, which libgit2 reads
/// directly and cannot fetch shallow).
pub fn is_network(uri: &str) -> bool {
    host_and_port(uri).is_some()
}

/// The server and port of a network URL; `None` for local paths and `file://`.
fn host_and_port(uri: &str) -> Option<(String, u16)> {
    let (scheme, rest) = match uri.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None if !uri.starts_with('/') && !uri.starts_with('.') && uri.contains(':') => ("ssh", uri),
        None => return None,
    };
    let default_port = match scheme {
        "git" => 9418,
        "ssh" | "git+ssh" | "ssh+git" => 22,
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return Some((host.to_owned(), port));
    }
    match host_port.split_once(':') {
        // scp-style `host:path` has a path, not a port, after the colon.
        Some((host, port)) if uri.contains("://") => {
            Some((host.to_owned(), port.parse().unwrap_or(default_port)))
        }
        Some((host, _)) => Some((host.to_owned(), default_port)),
        None => Some((host_port.to_owned(), default_port)),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum KeyKind {
    Plain,
    Encrypted,
    NotAKey,
}

/// Whether a private key is passphrase-protected, without decrypting it.
fn key_encryption(key: &str) -> KeyKind {
    let key = key.trim();
    if key.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        use base64::Engine;
        let body: String = key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body) else {
            return KeyKind::NotAKey;
        };
        // "openssh-key-v1\0", then a length-prefixed cipher name ("none" when unencrypted).
        let magic = b"openssh-key-v1\0";
        if !bytes.starts_with(magic) || bytes.len() < magic.len() + 4 {
            return KeyKind::NotAKey;
        }
        let at = magic.len();
        let len =
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        match bytes.get(at + 4..at + 4 + len) {
            Some(b"none") => KeyKind::Plain,
            Some(_) => KeyKind::Encrypted,
            None => KeyKind::NotAKey,
        }
    } else if key.starts_with("-----BEGIN") && key.contains("PRIVATE KEY-----") {
        if key.contains("ENCRYPTED") {
            KeyKind::Encrypted
        } else {
            KeyKind::Plain
        }
    } else {
        KeyKind::NotAKey
    }
}

/// `url` with any password (and user name) removed, for logs and errors.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                return format!("{scheme}://{user}:***@{host}{path}");
            }
        }
    }
    url.to_owned()
}

/// The host of a URL (`https://host/…`, `ssh://user@host:22/…`, `user@host:path`).
pub fn url_host(url: &str) -> Option<String> {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None if url.contains(':') && !url.starts_with('/') => url,
        None => return None,
    };
    let authority = rest.split('/').next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()).then(|| host.to_owned())
}

/// libgit2's error as one line, without its class/code suffix, with libssh2's key errors
/// explained.
pub fn describe_git_error(err: &git2::Error) -> String {
    let message = err.message().replace(['\n', '\r'], " ").trim().to_owned();
    if err.code() == git2::ErrorCode::Certificate
        || message.contains("certificate is invalid")
        || message.contains("certificate verify failed")
    {
        return format!(
            "{message} (the server's TLS certificate is not trusted; set source.skip_ssl_verification: true to accept it)"
        );
    }
    if message.contains("Unable to extract public key from private key")
        || message.contains("Unable to decrypt")
        || message.contains("Wrong passphrase")
    {
        return format!(
            "source.private_key: cannot load the key (wrong source.private_key_passphrase?): {message}"
        );
    }
    message
}

/// The user name and password embedded in a URL (`https://user:pass@host/…`), decoded.
fn url_credentials(url: &str) -> Option<(String, Secret)> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    Some((percent_decode(user), Secret::new(percent_decode(password))))
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = value.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        let cases = [
            ("https://u:p@host/r.git", "https://u:***@host/r.git"),
            ("https://u@host/r.git", "https://u@host/r.git"),
            ("https://host/r.git", "https://host/r.git"),
            ("git@host:r.git", "git@host:r.git"),
            ("/srv/r.git", "/srv/r.git"),
        ];
        for (input, expect) in cases {
            assert_eq!(redact_url(input), expect, "{input}");
        }
    }

    #[test]
    fn finds_servers() {
        let cases = [
            ("https://github.com/a/b", Some(("github.com", 443))),
            ("http://127.0.0.1:8080/r.git", Some(("127.0.0.1", 8080))),
            ("git://127.0.0.1/r", Some(("127.0.0.1", 9418))),
            ("ssh://git@h:2222/x", Some(("h", 2222))),
            ("git@gitlab.com:a/b.git", Some(("gitlab.com", 22))),
            ("file:///srv/r.git", None),
            ("/srv/r.git", None),
        ];
        for (input, expect) in cases {
            let got = host_and_port(input);
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                expect,
                "{input}"
            );
        }
    }

    #[test]
    fn finds_hosts() {
        let cases = [
            ("https://github.com/a/b", Some("github.com")),
            ("ssh://git@h.example:2222/x", Some("h.example")),
            ("git@gitlab.com:a/b.git", Some("gitlab.com")),
            ("/local/path", None),
        ];
        for (input, expect) in cases {
            assert_eq!(url_host(input).as_deref(), expect, "{input}");
        }
    }

    #[test]
    fn classifies_keys() {
        assert_eq!(key_encryption("hello"), KeyKind::NotAKey);
        assert_eq!(
            key_encryption("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"),
            KeyKind::Encrypted
        );
        assert_eq!(
            key_encryption(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n-----END OPENSSH PRIVATE KEY-----"
            ),
            KeyKind::NotAKey
        );
    }
}
