//! Shared set-up for the integration tests: a WebDAV nginx cache, real Nix commands with a
//! fresh narinfo cache, small input-addressed closures built with `nix-build`, and a runner for
//! the resource binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use testbed::nginx::Nginx;
use testbed::resource_cli::{ResourceCli, Run};
use testbed::tools::{require, temp_dir};

/// A writable plain binary cache served by nginx (PUT/DELETE), rooted at `root`.
pub struct WebDav {
    pub nginx: Nginx,
    pub root: PathBuf,
    pub dir: tempfile::TempDir,
    scheme: &'static str,
}

impl WebDav {
    pub fn start() -> WebDav {
        Self::start_with_auth(None)
    }

    /// With `Some((user, pass))`, every request needs HTTP Basic credentials.
    pub fn start_with_auth(basic: Option<(&str, &str)>) -> WebDav {
        Self::start_full(basic, None)
    }

    /// Over TLS with a certificate from `ca` (`url()` is then `https://`).
    pub fn start_tls(ca: &testbed::tls::TestCa) -> WebDav {
        Self::start_full(None, Some(ca))
    }

    fn start_full(basic: Option<(&str, &str)>, tls: Option<&testbed::tls::TestCa>) -> WebDav {
        let dir = temp_dir("nix-webdav");
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("c")).unwrap();
        let www = root.display().to_string();
        let auth = match basic {
            Some((user, pass)) => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, testbed::nginx::htpasswd_line(dir.path(), user, pass))
                    .unwrap();
                format!(
                    "auth_basic \"cache\"; auth_basic_user_file {};",
                    file.display()
                )
            }
            None => String::new(),
        };
        let ssl = match tls {
            // nginx.rs writes a plain `listen`; nginx 1.22 still turns it into TLS with the
            // deprecated `ssl on`.
            Some(ca) => format!(
                "ssl on;\nssl_certificate {};\nssl_certificate_key {};",
                ca.server_cert.display(),
                ca.server_key.display()
            ),
            None => String::new(),
        };
        let nginx = Nginx::start(dir.path(), |_| {
            format!(
                "{ssl}\nroot {www};\nclient_max_body_size 0;\n\
                 location / {{ {auth} dav_methods PUT DELETE; create_full_put_path on; }}"
            )
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        WebDav {
            nginx,
            root,
            dir,
            scheme,
        }
    }

    /// The cache URL (`/c` on the server).
    pub fn url(&self) -> String {
        format!("{}://{}/c", self.scheme, self.nginx.addr())
    }

    /// The cache's directory on disk.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("c")
    }

    /// How many PUT requests nginx has logged so far.
    pub fn put_count(&self) -> usize {
        self.put_paths().len()
    }

    /// The PUT paths once at least `n` are logged (nginx may log a request just after the
    /// client saw its answer).
    pub fn wait_for_puts(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let puts = self.put_paths();
            if puts.len() >= n || std::time::Instant::now() > deadline {
                return puts;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The paths of the PUT requests nginx has logged, in completion order.
    pub fn put_paths(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("\"PUT ").map(|(_, rest)| rest.to_owned()))
            .filter_map(|rest| rest.split(' ').next().map(str::to_owned))
            .collect()
    }
}

/// A nix command with a fresh narinfo cache and no retries, as TESTBED.md prescribes.
pub fn nix(xdg: &Path, args: &[&str]) -> Output {
    let mut command =
        resource_protocol::process::command(require("nix", "nix-bin"), Path::new("/"));
    command
        .env("XDG_CACHE_HOME", xdg)
        .args(["--extra-experimental-features", "nix-command"])
        .args(args)
        .args([
            "--option",
            "narinfo-cache-negative-ttl",
            "0",
            "--option",
            "narinfo-cache-positive-ttl",
            "0",
            "--option",
            "download-attempts",
            "1",
        ]);
    command.output().unwrap()
}

/// Runs nix and panics with its stderr unless it succeeds.
pub fn nix_ok(xdg: &Path, args: &[&str]) -> String {
    let out = nix(xdg, args);
    assert!(
        out.status.success(),
        "nix {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A secret/public key pair made by real `nix key`.
pub struct Keys {
    pub secret: String,
    pub public: String,
    pub secret_file: PathBuf,
}

pub fn nix_keys(dir: &Path, name: &str) -> Keys {
    let secret = nix_ok(dir, &["key", "generate-secret", "--key-name", name]);
    let secret_file = dir.join(format!("{name}.sec"));
    std::fs::write(&secret_file, &secret).unwrap();
    let mut command = resource_protocol::process::command(require("nix", "nix-bin"), dir);
    command
        .args([
            "--extra-experimental-features",
            "nix-command",
            "key",
            "convert-secret-to-public",
        ])
        .stdin(std::fs::File::open(&secret_file).unwrap());
    let public = String::from_utf8(command.output().unwrap().stdout).unwrap();
    Keys {
        secret: secret.trim().to_owned(),
        public: public.trim().to_owned(),
        secret_file,
    }
}

/// Builds a small input-addressed closure (`top` → `mid` → `leaf`) whose paths depend on
/// `tag`, returning the store paths in that order.
pub fn build_closure(dir: &Path, tag: &str) -> Vec<String> {
    let expr = format!(
        r#"let
  mk = name: script: deps: builtins.derivation ({{
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    PATH = "/usr/bin:/bin"; args = [ "-c" script ]; tag = "{tag}";
  }} // deps);
  leaf = mk "leaf-{tag}" "mkdir $out; echo leaf > $out/file; touch $out/empty; ln -s file $out/link" {{}};
  mid = mk "mid-{tag}" "mkdir -p $out/share/x; echo $leaf > $out/share/x/ref; head -c 100000 /dev/urandom > $out/blob" {{ inherit leaf; }};
in mk "top-{tag}" "mkdir -p $out/bin; echo $mid > $out/ref; printf '#!/bin/sh\necho hi\n' > $out/bin/run; chmod +x $out/bin/run" {{ inherit mid; }}
"#
    );
    let file = dir.join("closure.nix");
    std::fs::write(&file, expr).unwrap();
    let mut command = resource_protocol::process::command(require("nix-build", "nix-bin"), dir);
    command.arg(&file).arg("--no-out-link");
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "nix-build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let closure = nix_ok(dir, &["path-info", "--recursive", &top]);
    let mut paths: Vec<String> = closure.lines().map(str::to_owned).collect();
    let rank = |p: &String| {
        ["-top-", "-mid-", "-leaf-"]
            .iter()
            .position(|n| p.contains(n))
    };
    paths.sort_by_key(rank);
    assert_eq!(paths.len(), 3, "{paths:?}");
    paths
}

/// Runs `nix-cache-resource <args>` with `request` on stdin.
pub fn resource(args: &[&str], request: &Value) -> Run {
    ResourceCli::new(env!("CARGO_BIN_EXE_nix-cache-resource"))
        .env("TRIBUTARY_LOG", "warn")
        .timeout(std::time::Duration::from_secs(300))
        .run(args, request)
}

pub fn out(src: &Path, source: &Value, params: &Value) -> Run {
    resource(
        &["out", src.to_str().unwrap()],
        &json!({"source": source, "params": params}),
    )
}

pub fn get(dest: &Path, source: &Value, version: &Value, params: &Value) -> Run {
    resource(
        &["in", dest.to_str().unwrap()],
        &json!({"source": source, "version": version, "params": params}),
    )
}

pub fn check(source: &Value, version: Option<&Value>) -> Run {
    let mut request = json!({"source": source});
    if let Some(v) = version {
        request["version"] = v.clone();
    }
    resource(&["check"], &request)
}
