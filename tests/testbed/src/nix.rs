//! Nix fixtures: a writable binary cache (nginx WebDAV), store paths to put in it, signing keys,
//! and the real `nix` commands that prove what a cache holds.
//!
//! Nix 2.8 runs as root on the machine's own `/nix/store` without a daemon (configured by
//! `.ci/install-deps`). Nix caches narinfo lookups per cache URL under `$XDG_CACHE_HOME/nix`, so
//! every [`NixEnv`] has a fresh one: without it, a lookup can answer from a previous test.
//!
//! ```no_run
//! use testbed::nix::{NixEnv, WebDavCache, generate_key};
//! let cache = WebDavCache::start();
//! let env = NixEnv::new();
//! let path = env.build_input_addressed("hello", "hello\n", &[]);
//! let key = generate_key(&env, "test-1");
//! env.copy_to_cache(&cache.url(), &[&path], Some(&key)).unwrap();
//! assert_eq!(env.verify_in_cache(&cache.url(), &path, &key.public), 0);
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::nginx::{Nginx, htpasswd_line};
use crate::tools::{require, run_command, temp_dir};

/// A writable Nix binary cache over HTTP: nginx serving a directory with WebDAV `PUT`/`DELETE`.
pub struct WebDavCache {
    nginx: Nginx,
    root: PathBuf,
    credentials: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl WebDavCache {
    /// Starts an anonymous, writable cache.
    pub fn start() -> WebDavCache {
        Self::start_with(None)
    }

    /// Starts a cache that needs Basic auth for every request (reads included).
    pub fn start_with_basic_auth(user: &str, pass: &str) -> WebDavCache {
        Self::start_with(Some((user, pass)))
    }

    fn start_with(credentials: Option<(&str, &str)>) -> WebDavCache {
        let dir = temp_dir("webdav-cache");
        let root = dir.path().join("cache");
        std::fs::create_dir_all(&root).expect("create cache root");
        let auth = match credentials {
            Some((user, pass)) => {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, htpasswd_line(dir.path(), user, pass))
                    .expect("write htpasswd");
                format!(
                    "auth_basic \"cache\";\nauth_basic_user_file {};\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        let nginx = Nginx::start(dir.path(), |_| {
            format!(
                "client_max_body_size 0;\n\
                 root {root};\n\
                 location / {{\n\
                 {auth}\
                 dav_methods PUT DELETE;\n\
                 create_full_put_path on;\n\
                 dav_access user:rw group:r all:r;\n\
                 }}\n",
                root = root.display(),
            )
        });
        WebDavCache {
            nginx,
            root,
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`, the cache's URL (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.nginx.addr())
    }

    /// The directory the cache serves (`nix-cache-info`, `*.narinfo`, `nar/…` land here).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The accepted `(user, pass)`, if the cache needs Basic auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, pass)| (user.as_str(), pass.as_str()))
    }

    /// Writes `nix-cache-info` (`StoreDir: /nix/store`, `WantMassQuery: 1`, `Priority: 40`),
    /// as a populated cache has.
    pub fn write_cache_info(&self) {
        std::fs::write(
            self.root.join("nix-cache-info"),
            "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
        )
        .expect("write nix-cache-info");
    }

    /// The last few KB of nginx's error log.
    pub fn log_tail(&self) -> String {
        self.nginx.log_tail()
    }
}

/// A signing key pair in Nix's `name:base64` text form.
#[derive(Debug, Clone)]
pub struct NixKey {
    /// The key name (`name` in `name:…`).
    pub name: String,
    /// The secret key text.
    pub secret: String,
    /// The public key text, for `trusted-public-keys`.
    pub public: String,
    /// A file holding the secret key, for `secret-key-files`/`?secret-key=`.
    pub secret_file: PathBuf,
}

/// A hermetic environment for `nix` commands: fresh `HOME` and `XDG_*` dirs (so no narinfo
/// cache is shared), the machine's store, no daemon. Deleted when dropped.
pub struct NixEnv {
    dir: tempfile::TempDir,
}

impl Default for NixEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl NixEnv {
    /// A fresh environment.
    pub fn new() -> NixEnv {
        let dir = temp_dir("nix-env");
        for sub in ["home", "cache", "config", "data", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create nix env dir");
        }
        NixEnv { dir }
    }

    /// The variables the environment sets.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let path = |sub: &str| self.dir.path().join(sub).display().to_string();
        vec![
            ("HOME", path("home")),
            ("XDG_CACHE_HOME", path("cache")),
            ("XDG_CONFIG_HOME", path("config")),
            ("XDG_DATA_HOME", path("data")),
            ("XDG_STATE_HOME", path("state")),
            ("NIX_REMOTE", String::new()),
        ]
    }

    /// The environment's own directory (for scratch files and key files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `program` (e.g. `nix`, `nix-store`) with this environment, run in its directory.
    pub fn command(&self, program: &str) -> Command {
        let mut command =
            resource_protocol::process::command(require(program, "nix-bin"), self.dir());
        command.envs(self.vars());
        command
    }

    /// Adds the file or directory at `path` to the store (content-addressed: Nix does not check
    /// signatures of such paths) and returns its store path.
    pub fn add_file_to_store(&self, path: &Path) -> String {
        let mut command = self.command("nix-store");
        command.arg("--add").arg(path);
        stdout_line(&mut command)
    }

    /// Builds an input-addressed store path (use these for signature tests) named `name`: a
    /// regular file holding `content`, then one line per path in `deps` (so they become its
    /// references). The same arguments always give the same path.
    pub fn build_input_addressed(&self, name: &str, content: &str, deps: &[&str]) -> String {
        let deps_nix: Vec<String> = deps
            .iter()
            .map(|dep| format!("(builtins.storePath {})", nix_string(dep)))
            .collect();
        let expression = format!(
            "builtins.derivation {{\n\
               name = {name};\n\
               system = builtins.currentSystem;\n\
               builder = \"/bin/sh\";\n\
               PATH = \"/usr/bin:/bin\";\n\
               content = {content};\n\
               deps = [ {deps} ];\n\
               args = [ \"-c\" \"printf '%s' \\\"$content\\\" > $out; for d in $deps; do echo $d >> $out; done\" ];\n\
             }}",
            name = nix_string(name),
            content = nix_string(content),
            deps = deps_nix.join(" "),
        );
        let mut command = self.command("nix-build");
        command.args(["--no-out-link", "--quiet", "-E", &expression]);
        stdout_line(&mut command)
    }

    /// Pushes `paths` (with their closures) to the cache at `url` with `nix copy`, signing with
    /// `key` when given. `url` may carry store parameters (`?compression=none`).
    pub fn copy_to_cache(
        &self,
        url: &str,
        paths: &[&str],
        key: Option<&NixKey>,
    ) -> Result<(), String> {
        let mut to = url.to_owned();
        if let Some(key) = key {
            let separator = if to.contains('?') { '&' } else { '?' };
            to.push_str(&format!(
                "{separator}secret-key={}",
                key.secret_file.display()
            ));
        }
        let mut command = self.command("nix");
        command
            .args(["copy", "--to", &to])
            .args(no_caching())
            .args(paths);
        resource_protocol::process::output_checked(&mut command)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Copies `path` from the cache at `url` into a fresh, empty store under this environment,
    /// trusting only `public_key`: what a consumer of the cache would do.
    pub fn copy_from_cache(&self, url: &str, path: &str, public_key: &str) -> Result<(), String> {
        let store = self.dir().join(format!("store-{}", unique_suffix()));
        let mut command = self.command("nix");
        command
            .args(["copy", "--from", url, "--to"])
            .arg(&store)
            .args(no_caching())
            .args(["--option", "trusted-public-keys", public_key])
            .arg(path);
        resource_protocol::process::output_checked(&mut command)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// `nix store verify -r` of `path` in the cache at `url` trusting `public_key`: 0 when
    /// everything is intact and signed, 1 for a modified NAR, 2 for a bad or missing signature
    /// (other codes for other failures).
    pub fn verify_in_cache(&self, url: &str, path: &str, public_key: &str) -> i32 {
        let mut command = self.command("nix");
        command
            .args(["store", "verify", "--store", url, "-r"])
            .args(no_caching())
            .args(["--option", "trusted-public-keys", public_key])
            .arg(path);
        command
            .output()
            .map(|output| output.status.code().unwrap_or(-1))
            .unwrap_or(-1)
    }
}

/// A fresh [`NixEnv`].
pub fn nix_env() -> NixEnv {
    NixEnv::new()
}

/// Generates a signing key named `name` with `nix key generate-secret`, writing the secret to
/// a file in `env`'s directory.
pub fn generate_key(env: &NixEnv, name: &str) -> NixKey {
    let mut command = env.command("nix");
    command.args(["key", "generate-secret", "--key-name", name]);
    let secret = String::from_utf8_lossy(&run_command(&mut command))
        .trim()
        .to_owned();
    let secret_file = env.dir().join(format!("{name}.sec"));
    std::fs::write(&secret_file, &secret).expect("write secret key");
    let mut command = env.command("nix");
    command
        .args(["key", "convert-secret-to-public"])
        .stdin(std::fs::File::open(&secret_file).expect("open secret key"));
    let public = String::from_utf8_lossy(&run_command(&mut command))
        .trim()
        .to_owned();
    NixKey {
        name: name.to_owned(),
        secret,
        public,
        secret_file,
    }
}

/// Options that make Nix ask the cache every time instead of trusting its narinfo cache.
fn no_caching() -> [&'static str; 9] {
    [
        "--option",
        "download-attempts",
        "1",
        "--option",
        "narinfo-cache-negative-ttl",
        "0",
        "--option",
        "narinfo-cache-positive-ttl",
        "0",
    ]
}

/// A Nix string literal for `text`.
fn nix_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$");
    format!("\"{escaped}\"")
}

/// The last non-empty line of a command's stdout (store-path printing commands).
fn stdout_line(command: &mut Command) -> String {
    let out = run_command(command);
    String::from_utf8_lossy(&out)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A suffix unique within this process.
fn unique_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_strings_escape_interpolation() {
        assert_eq!(nix_string(r#"a"b\c${d}"#), r#""a\"b\\c\${d}""#);
    }
}
