//! A real OCI registry (distribution 2.8.2, `docker-registry serve`) on 127.0.0.1.
//!
//! Modes: plain HTTP, htpasswd Basic auth, TLS with a throw-away CA (optionally with Basic auth
//! or Bearer tokens), and Bearer tokens from this crate's [`TokenServer`]. Storage lives on
//! tmpfs when available.
//!
//! ```no_run
//! use testbed::registry::{Registry, RegistryAuth};
//! let registry = Registry::start(RegistryAuth::basic("user", "pass"));
//! let image = format!("docker://{}/library/busybox:latest", registry.host());
//! ```

pub mod token_server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::tls::{TestCa, generate_ca};
use crate::tools::{
    START_TIMEOUT, ServerProcess, fast_temp_dir, require, retry_start, run, temp_dir,
};
pub use token_server::{TokenRequest, TokenServer};

/// The `service` the registry names in its Bearer challenge (the token's audience).
pub const TOKEN_SERVICE: &str = "test-registry";
/// The issuer the registry trusts in Bearer mode.
pub const TOKEN_ISSUER: &str = "test-issuer";

/// How clients must authenticate to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Plain HTTP, no authentication.
    None,
    /// Plain HTTP with htpasswd (bcrypt) Basic auth.
    Basic {
        /// The one accepted user.
        user: String,
        /// Its password.
        pass: String,
    },
    /// HTTPS with a certificate from a throw-away CA ([`Registry::ca_cert_pem`]), no auth.
    Tls,
    /// HTTPS plus Basic auth.
    TlsBasic {
        /// The one accepted user.
        user: String,
        /// Its password.
        pass: String,
    },
    /// Plain HTTP with Bearer tokens from a token server (anonymous clients may pull only).
    Bearer {
        /// The user the token server accepts (it grants push too).
        user: String,
        /// Its password.
        pass: String,
    },
    /// HTTPS plus Bearer tokens, like public registries (the token server itself stays plain
    /// HTTP).
    TlsBearer {
        /// The user the token server accepts (it grants push too).
        user: String,
        /// Its password.
        pass: String,
    },
}

impl RegistryAuth {
    /// [`RegistryAuth::Basic`] with these credentials.
    pub fn basic(user: &str, pass: &str) -> RegistryAuth {
        RegistryAuth::Basic {
            user: user.into(),
            pass: pass.into(),
        }
    }

    /// [`RegistryAuth::TlsBasic`] with these credentials.
    pub fn tls_basic(user: &str, pass: &str) -> RegistryAuth {
        RegistryAuth::TlsBasic {
            user: user.into(),
            pass: pass.into(),
        }
    }

    /// [`RegistryAuth::TlsBearer`] with these credentials.
    pub fn tls_bearer(user: &str, pass: &str) -> RegistryAuth {
        RegistryAuth::TlsBearer {
            user: user.into(),
            pass: pass.into(),
        }
    }

    /// [`RegistryAuth::Bearer`] with these credentials.
    pub fn bearer(user: &str, pass: &str) -> RegistryAuth {
        RegistryAuth::Bearer {
            user: user.into(),
            pass: pass.into(),
        }
    }

    fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            RegistryAuth::None | RegistryAuth::Tls => None,
            RegistryAuth::Basic { user, pass }
            | RegistryAuth::TlsBasic { user, pass }
            | RegistryAuth::Bearer { user, pass }
            | RegistryAuth::TlsBearer { user, pass } => Some((user, pass)),
        }
    }

    fn tls(&self) -> bool {
        matches!(
            self,
            RegistryAuth::Tls | RegistryAuth::TlsBasic { .. } | RegistryAuth::TlsBearer { .. }
        )
    }
}

/// A running registry; killed (and its storage deleted) when dropped.
pub struct Registry {
    process: ServerProcess,
    token_server: Option<TokenServer>,
    auth: RegistryAuth,
    addr: SocketAddr,
    ca: Option<TestCa>,
    storage: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with `auth`; panics (with the registry's log) if it does not come up.
    pub fn start(auth: RegistryAuth) -> Registry {
        let binary = require("docker-registry", "docker-registry");
        let dir = temp_dir("registry");
        let storage = fast_temp_dir("registry-storage");
        let mut auth_yaml = String::new();
        if let RegistryAuth::Basic { user, pass } | RegistryAuth::TlsBasic { user, pass } = &auth {
            let htpasswd = require("htpasswd", "apache2-utils");
            let line = run(
                &htpasswd,
                ["-Bbn", user.as_str(), pass.as_str()],
                dir.path(),
            );
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, line).expect("write htpasswd");
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: testbed\n    path: {}\n",
                file.display()
            );
        }
        let token_server = match &auth {
            RegistryAuth::Bearer { user, pass } | RegistryAuth::TlsBearer { user, pass } => {
                let server = TokenServer::start(TOKEN_SERVICE, TOKEN_ISSUER, user, pass);
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    \
                     issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.realm(),
                    server.root_cert_path().display()
                );
                Some(server)
            }
            _ => None,
        };
        let ca = auth.tls().then(|| generate_ca(dir.path()));
        let tls_yaml = ca.as_ref().map_or(String::new(), |ca| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                ca.server_cert.display(),
                ca.server_key.display()
            )
        });
        let config = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        let (process, addr) = retry_start("docker-registry", |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
                     maintenance:\n    uploadpurging:\n      enabled: false\n\
                     http:\n  addr: {addr}\n  secret: testbed-secret\n{tls_yaml}{auth_yaml}",
                    storage = storage.path().display(),
                ),
            )
            .map_err(|e| format!("write registry config: {e}"))?;
            let mut command = resource_protocol::process::command(&binary, dir.path());
            command.arg("serve").arg(&config);
            let mut process = ServerProcess::spawn("docker-registry", command, &log)?;
            process.wait_listening(addr, START_TIMEOUT)?;
            Ok((process, addr))
        });
        Registry {
            process,
            token_server,
            auth,
            addr,
            ca,
            storage,
            dir,
        }
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` (or `https://` in the TLS modes).
    pub fn base_url(&self) -> String {
        let scheme = if self.auth.tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM of the CA that signed the registry's certificate (TLS modes only).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|ca| ca.ca_cert_pem.as_str())
    }

    /// A directory holding only `ca.crt`, for `skopeo --src-cert-dir/--dest-cert-dir`
    /// (TLS modes only).
    pub fn cert_dir(&self) -> Option<&Path> {
        self.ca.as_ref().map(|ca| ca.cert_dir.as_path())
    }

    /// The accepted `(user, pass)`, if the mode has credentials.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.credentials()
    }

    /// The authentication mode the registry was started with.
    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// The token server (Bearer mode only), e.g. to inspect the scopes clients asked for.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// The registry's storage root (`docker/registry/v2/...` below it).
    pub fn storage_dir(&self) -> &Path {
        self.storage.path()
    }

    /// The registry's config and log directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log file.
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path().to_owned()
    }

    /// The last few KB of the registry's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Tags the manifest `digest` (already pushed to `repo`) as each of `tags` by writing the
    /// registry's tag links straight into its storage: 10,000 tags take a fraction of a second
    /// instead of minutes of pushes. The registry reads tags from storage on every request.
    pub fn tag_in_storage(&self, repo: &str, digest: &str, tags: &[String]) {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("tag_in_storage: not a sha256 digest: {digest}"));
        let manifests = self
            .storage
            .path()
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests");
        assert!(
            manifests.join("revisions/sha256").join(hex).exists(),
            "tag_in_storage: {repo}@{digest} was not pushed to this registry"
        );
        for tag in tags {
            let tag_dir = manifests.join("tags").join(tag);
            for link_dir in [
                tag_dir.join("current"),
                tag_dir.join("index/sha256").join(hex),
            ] {
                std::fs::create_dir_all(&link_dir).expect("create tag link dir");
                std::fs::write(link_dir.join("link"), digest).expect("write tag link");
            }
        }
    }

    /// Arguments for `skopeo` to reach this registry: TLS verification off for plain HTTP, the
    /// CA dir for TLS, and the credentials. `prefix` is `"src"` or `"dest"` for `skopeo copy`,
    /// `""` for `skopeo inspect`/`list-tags`.
    pub fn skopeo_args(&self, prefix: &str) -> Vec<String> {
        let flag = |name: &str| {
            if prefix.is_empty() {
                format!("--{name}")
            } else {
                format!("--{prefix}-{name}")
            }
        };
        let mut args = Vec::new();
        match self.cert_dir() {
            Some(dir) => args.push(format!("{}={}", flag("cert-dir"), dir.display())),
            None => args.push(format!("{}=false", flag("tls-verify"))),
        }
        if let Some((user, pass)) = self.credentials() {
            args.push(format!("{}={user}:{pass}", flag("creds")));
        }
        args
    }
}
