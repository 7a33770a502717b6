//! Git smart HTTP: nginx with Basic auth in front of `fcgiwrap` running `git http-backend`.
//! Clone and push both need the credentials.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::git;
use crate::nginx::{Nginx, htpasswd_line};
use crate::tls::{TestCa, generate_ca};
use crate::tools::{ServerProcess, require, temp_dir};

/// A running git HTTP server; nginx and fcgiwrap are killed when dropped.
pub struct GitHttp {
    nginx: Nginx,
    _fcgiwrap: ServerProcess,
    user: String,
    pass: String,
    repos_root: PathBuf,
    ca: Option<TestCa>,
    _dir: tempfile::TempDir,
}

impl GitHttp {
    /// Serves the repos under `repos_root` (which the caller owns) on
    /// `http://127.0.0.1:PORT/`, for `user`/`pass` only, push included.
    pub fn start(repos_root: &Path, user: &str, pass: &str) -> GitHttp {
        Self::start_with(repos_root, user, pass, false)
    }

    /// [`GitHttp::start`] over HTTPS (`https://127.0.0.1:PORT/`) with a certificate from a
    /// throw-away CA ([`GitHttp::ca_cert_pem`]).
    pub fn start_tls(repos_root: &Path, user: &str, pass: &str) -> GitHttp {
        Self::start_with(repos_root, user, pass, true)
    }

    fn start_with(repos_root: &Path, user: &str, pass: &str, tls: bool) -> GitHttp {
        let fcgiwrap = require("fcgiwrap", "fcgiwrap");
        let exec_path = git(repos_root, &["--exec-path"]);
        let backend = Path::new(&exec_path).join("git-http-backend");
        assert!(
            backend.exists(),
            "program git-http-backend not found in {exec_path}: apt-get install git"
        );
        let dir = temp_dir("git-http");
        let socket = dir.path().join("fcgi.sock");
        let mut command = resource_protocol::process::command(&fcgiwrap, dir.path());
        command
            .arg("-c")
            .arg("4")
            .arg("-s")
            .arg(format!("unix:{}", socket.display()));
        let mut fcgi = ServerProcess::spawn("fcgiwrap", command, &dir.path().join("fcgiwrap.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        fcgi.wait_for_file(&socket, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, htpasswd_line(dir.path(), user, pass)).expect("write htpasswd");
        let home = super::hermetic_env()
            .into_iter()
            .find(|(key, _)| *key == "HOME")
            .map(|(_, value)| value)
            .unwrap_or_default();
        let ca = tls.then(|| generate_ca(dir.path()));
        let site = |_| {
            format!(
                "client_max_body_size 0;\n\
                 location / {{\n\
                 auth_basic \"git\";\n\
                 auth_basic_user_file {htpasswd};\n\
                 fastcgi_pass unix:{socket};\n\
                 fastcgi_param SCRIPT_FILENAME {backend};\n\
                 fastcgi_param GIT_PROJECT_ROOT {root};\n\
                 fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n\
                 fastcgi_param GIT_CONFIG_NOSYSTEM 1;\n\
                 fastcgi_param HOME {home};\n\
                 fastcgi_param REMOTE_USER $remote_user;\n\
                 fastcgi_param REMOTE_ADDR $remote_addr;\n\
                 fastcgi_param PATH_INFO $uri;\n\
                 fastcgi_param QUERY_STRING $args;\n\
                 fastcgi_param REQUEST_METHOD $request_method;\n\
                 fastcgi_param CONTENT_TYPE $content_type;\n\
                 fastcgi_param CONTENT_LENGTH $content_length;\n\
                 fastcgi_param HTTP_CONTENT_ENCODING $http_content_encoding;\n\
                 fastcgi_param GIT_PROTOCOL $http_git_protocol;\n\
                 }}\n",
                htpasswd = htpasswd.display(),
                socket = socket.display(),
                backend = backend.display(),
                root = repos_root.display(),
            )
        };
        let nginx = match &ca {
            Some(ca) => Nginx::start_tls(dir.path(), ca, site),
            None => Nginx::start(dir.path(), site),
        };
        GitHttp {
            nginx,
            _fcgiwrap: fcgi,
            user: user.to_owned(),
            pass: pass.to_owned(),
            repos_root: repos_root.to_owned(),
            ca,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT/<repo>` (`https://` with TLS), without credentials.
    pub fn url_for(&self, repo: &str) -> String {
        format!(
            "{}://{}/{}",
            self.scheme(),
            self.nginx.addr(),
            repo.trim_start_matches('/')
        )
    }

    /// `http://USER:PASS@127.0.0.1:PORT/<repo>` (`https://` with TLS; the credentials are
    /// URL-safe only if chosen so).
    pub fn url_with_credentials(&self, repo: &str) -> String {
        format!(
            "{}://{}:{}@{}/{}",
            self.scheme(),
            self.user,
            self.pass,
            self.nginx.addr(),
            repo.trim_start_matches('/')
        )
    }

    fn scheme(&self) -> &'static str {
        if self.ca.is_some() { "https" } else { "http" }
    }

    /// The PEM of the CA that signed the server's certificate (TLS only).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|ca| ca.ca_cert_pem.as_str())
    }

    /// The CA certificate file (TLS only), e.g. for `GIT_SSL_CAINFO`.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca.as_ref().map(|ca| ca.ca_cert.as_path())
    }

    /// The accepted `(user, pass)`.
    pub fn credentials(&self) -> (&str, &str) {
        (&self.user, &self.pass)
    }

    /// The directory being served.
    pub fn repos_root(&self) -> &Path {
        &self.repos_root
    }

    /// The last few KB of nginx's error log.
    pub fn log_tail(&self) -> String {
        self.nginx.log_tail()
    }
}
