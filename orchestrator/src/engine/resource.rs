//! Driving resources through the protocol: finding a type's implementation (a base type's
//! image or binary, or a custom type's image fetched with registry-image and cached by
//! digest), then spawning `check`, `in` or `out` with a JSON request on stdin.
//!
//! Nothing here links a resource's code: the only contact is a child process.
//!
//! # Base types: our images, else our binaries
//!
//! Base types (`git`, `registry-image`, `registry-tag`, `nix-cache`, plus `time` and `mock`)
//! run from the OCI image layouts `images build` writes (`<images>/<type>/`), as Concourse
//! runs the base types shipped on its workers, when the runtime is bwrap or runc. The image
//! directory is `--images DIR`, else `$TRIBUTARY_IMAGE_DIR`, else `<resource_dir>/images`, else
//! `<resource_dir>/../images` (so `target/release/tributary` finds `target/images`). A layout
//! is unpacked once into the rootfs cache (`<state>/images`, keyed by its manifest digest) and
//! reused by later runs; its `/opt/resource/*` then run unprivileged, like a custom type's,
//! in `/tmp/build/get`, `/tmp/build/put` or a scratch directory, with the host network and
//! the image's CA bundle. The git resource's check cache (`/tmp/git-resource-repo-cache`) is
//! bound from `<state>/caches/`, so warm checks stay incremental as on the host. With the host
//! runtime, or without an image for the type, the `<type>-resource` binary beside `tributary`
//! runs on the host; the run's notes say so once per type. A layout that is there but broken
//! is an error naming its path.
//!
//! A `git` source whose `uri` is a local path (`..`, `/srv/repo.git`, `file://…`) and a
//! `nix-cache` put of `params.paths` (the local Nix store) name this machine's file system,
//! which a container does not see: such calls run the host binary in the pipeline's
//! directory (relative paths mean what they mean to the user), also noted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use crate::runner::rootfs::ImageMetadata;
use crate::runner::{Cancel, LogSink, Mount, ProcessSpec, RunError};

use super::Engine;

/// The base types, served by our own binaries (`<type>-resource`); one list with validation.
pub use crate::load::BASE_TYPES;

/// Environment variable naming the directory with our base types' image layouts.
pub const IMAGE_DIR_ENV: &str = "TRIBUTARY_IMAGE_DIR";

/// Whether a git `uri` names a local path (or `file://`) rather than a server, as the git
/// resource tells them apart.
pub fn is_local_git_uri(uri: &str) -> bool {
    if let Some((scheme, _)) = uri.split_once("://") {
        return scheme == "file";
    }
    uri.starts_with('/') || uri.starts_with('.') || !uri.contains(':')
}

/// Why a call of base type `base` cannot run in its image: its request names this machine's
/// file system (a local git repository, the local Nix store). Returns the key it is noted
/// under in `Engine::base_types` and the reason.
pub fn needs_the_host(base: &str, op: &str, request: &Json) -> Option<(String, String)> {
    match base {
        "git" => {
            let uri = request["source"]["uri"].as_str()?;
            is_local_git_uri(uri).then(|| {
                (
                    "git (local path)".to_owned(),
                    format!("source.uri {uri} is a local path"),
                )
            })
        }
        "nix-cache" if op == "out" => {
            let params = &request["params"];
            let paths = params["paths"].as_array().is_some_and(|p| !p.is_empty())
                || params["paths_file"].is_string();
            paths.then(|| {
                (
                    "nix-cache (local store)".to_owned(),
                    "params.paths name the local Nix store".to_owned(),
                )
            })
        }
        _ => None,
    }
}

/// How a resource type runs.
#[derive(Clone, Debug)]
pub enum TypeImpl {
    /// Our binary, on the host.
    Binary(PathBuf),
    /// `/opt/resource/*` in a cached image directory (`rootfs/`, `metadata.json`).
    Image {
        /// The cached image directory.
        dir: PathBuf,
        /// Run privileged.
        privileged: bool,
        /// The base type whose image this is (`None`: a custom type).
        base: Option<String>,
    },
}

/// A resource operation to run.
#[derive(Debug)]
pub struct Invocation<'a> {
    /// `check`, `in` or `out`.
    pub op: &'a str,
    /// The JSON request.
    pub request: Json,
    /// The directory the op works in (the artifact for `in`, the inputs for `out`).
    pub work_host: &'a Path,
    /// Where it appears in a container (`/tmp/build/get`, `/tmp/build/put`).
    pub work_dest: &'a str,
    /// Bind mounts (put inputs).
    pub mounts: Vec<Mount>,
    /// `BUILD_*` env (get/put only).
    pub env: Vec<(String, String)>,
}

/// Shallow-merges `defaults` under `source` (source keys win).
pub fn merge_defaults(
    source: &Map<String, Json>,
    defaults: Option<&Map<String, Json>>,
) -> Map<String, Json> {
    let mut out = defaults.cloned().unwrap_or_default();
    for (k, v) in source {
        out.insert(k.clone(), v.clone());
    }
    out
}

impl Engine {
    /// How resources of `type_name` run; a custom type's image is fetched (and cached) first.
    pub fn type_impl<'a>(
        self: &'a Arc<Self>,
        type_name: &'a str,
        log: LogSink,
        cancel: Cancel,
    ) -> super::BoxFuture<'a, Result<TypeImpl, String>> {
        Box::pin(async move {
            if let Some(custom) = self
                .pipeline
                .resource_types
                .iter()
                .find(|t| t.name == type_name)
            {
                // A type's image is checked once per its check_every (default one minute).
                let every = match custom.check_every {
                    Some(crate::model::CheckEvery::Every(d)) => d,
                    Some(crate::model::CheckEvery::Never) => std::time::Duration::MAX,
                    None => std::time::Duration::from_secs(60),
                };
                let known = self
                    .types
                    .lock()
                    .ok()
                    .and_then(|t| t.get(type_name).cloned());
                if let Some((at, imp)) = known
                    && at.elapsed() < every
                {
                    return Ok(imp);
                }
                let image_type = custom.type_.clone();
                // A type's source and params may use var sources, resolved when it is fetched.
                let scope = self.var_scope();
                let resolved = |map: &Map<String, Json>, what: &str| {
                    super::interp::resolve_object(map, &scope)
                        .map_err(|e| format!("resource type {type_name}: {what}: {e}"))
                };
                let source = resolved(&custom.source, "source")?;
                let params = custom
                    .params
                    .as_ref()
                    .map(|p| resolved(p, "params"))
                    .transpose()?;
                let dir = self
                    .fetch_image(
                        &image_type,
                        &source,
                        params.as_ref(),
                        None,
                        Some(type_name),
                        log,
                        cancel,
                    )
                    .await
                    .map_err(|e| format!("resource type {type_name}: {e}"))?;
                let imp = TypeImpl::Image {
                    dir,
                    privileged: custom.privileged,
                    base: None,
                };
                if let Ok(mut types) = self.types.lock() {
                    types.insert(
                        type_name.to_owned(),
                        (std::time::Instant::now(), imp.clone()),
                    );
                }
                return Ok(imp);
            }
            self.resolve_base_type(type_name, Some(&log))
        })
    }

    /// How a base type runs in this run: its image when the runtime is a container and
    /// `<images>/<type>/` holds one, else the binary beside us (resolved once per run).
    pub fn base_type(&self, type_name: &str) -> Result<TypeImpl, String> {
        self.resolve_base_type(type_name, None)
    }

    /// [`Engine::base_type`], saying in `log` (else in the run's notes), the first time, when
    /// the host binary runs.
    fn resolve_base_type(
        &self,
        type_name: &str,
        log: Option<&LogSink>,
    ) -> Result<TypeImpl, String> {
        if !BASE_TYPES.contains(&type_name) {
            return Err(format!("unknown resource type {type_name}"));
        }
        // Held while resolving: concurrent checks of one type unpack its image once.
        let mut known = self.base_types.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(imp) = known.get(type_name) {
            return Ok(imp.clone());
        }
        let container = self.runner.name() != "host";
        let why_host = match self.image_dir() {
            _ if !container => "the host runtime runs no images".to_owned(),
            None => "no image directory (--images, TRIBUTARY_IMAGE_DIR, or images/ beside \
                     the resource binaries)"
                .to_owned(),
            Some(images) => {
                let layout = images.join(type_name);
                if layout.exists() {
                    let scratch = self.scratch_dir("layout")?;
                    let image =
                        crate::runner::layout::unpack_layout(&layout, &self.images, scratch.path())
                            .map_err(|e| format!("resource type {type_name}: image {e}"))?;
                    let how = if image.unpacked { "unpacked" } else { "cached" };
                    self.note(&format!(
                        "{type_name}: running from the image in {} ({}, {how})",
                        layout.display(),
                        image.digest
                    ));
                    let imp = TypeImpl::Image {
                        dir: image.dir,
                        privileged: false,
                        base: Some(type_name.to_owned()),
                    };
                    known.insert(type_name.to_owned(), imp.clone());
                    return Ok(imp);
                }
                format!("no image in {}", images.display())
            }
        };
        let imp = self.host_binary(type_name)?;
        let text = format!("{type_name}: {why_host}, running the host binary");
        match log {
            Some(log) => log(crate::runner::Stream::Stderr, &text),
            None => self.note(&text),
        }
        known.insert(type_name.to_owned(), imp.clone());
        Ok(imp)
    }

    /// Where our base types' images are: `--images`, `$TRIBUTARY_IMAGE_DIR`,
    /// `<resource_dir>/images`, `<resource_dir>/../images` (the first that is set or exists).
    pub fn image_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.config.image_dir {
            return Some(dir.clone());
        }
        if let Some(dir) = std::env::var_os(IMAGE_DIR_ENV) {
            return Some(PathBuf::from(dir));
        }
        let beside = self.config.resource_dir.join("images");
        if beside.is_dir() {
            return Some(beside);
        }
        let above = self.config.resource_dir.join("../images");
        above.is_dir().then_some(above)
    }

    /// A base type's binary beside us (built with cargo under `cargo run`).
    fn host_binary(&self, type_name: &str) -> Result<TypeImpl, String> {
        let binary = self
            .config
            .resource_dir
            .join(format!("{type_name}-resource"));
        if !binary.is_file() {
            build_with_cargo(&binary, type_name);
        }
        if !binary.is_file() {
            return Err(format!(
                "resource type {type_name}: {} not found (build it with `cargo build --release`, \
                 or set TRIBUTARY_RESOURCE_DIR)",
                binary.display()
            ));
        }
        Ok(TypeImpl::Binary(binary))
    }

    /// The host binary for a call [`needs_the_host`] (said once per run and reason).
    fn host_for_call(
        &self,
        base: &str,
        (key, why): (String, String),
        log: &LogSink,
    ) -> Result<TypeImpl, String> {
        let mut known = self.base_types.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(imp) = known.get(&key) {
            return Ok(imp.clone());
        }
        let imp = self.host_binary(base)?;
        let text = format!("{base}: {why}, which a container cannot see: running the host binary");
        log(crate::runner::Stream::Stderr, &text);
        known.insert(key, imp.clone());
        Ok(imp)
    }

    /// Fetches an image (`image_resource`, a custom type) as a rootfs, cached by digest; returns
    /// the cached directory. `self_name` is the custom type being resolved: its own `type:`
    /// then means the base type.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_image<'a>(
        self: &'a Arc<Self>,
        type_name: &'a str,
        source: &'a Map<String, Json>,
        params: Option<&'a Map<String, Json>>,
        version: Option<&'a resource_protocol::Version>,
        self_name: Option<&'a str>,
        log: LogSink,
        cancel: Cancel,
    ) -> super::BoxFuture<'a, Result<PathBuf, String>> {
        Box::pin(async move {
            let imp = if self_name == Some(type_name) {
                self.resolve_base_type(type_name, Some(&log))?
            } else {
                self.type_impl(type_name, log.clone(), cancel.clone())
                    .await?
            };
            let defaults = self
                .pipeline
                .resource_types
                .iter()
                .find(|t| t.name == type_name && self_name != Some(type_name))
                .and_then(|t| t.defaults.as_ref())
                .map(|d| super::interp::resolve_object(d, &self.var_scope()))
                .transpose()
                .map_err(|e| format!("defaults of {type_name}: {e}"))?;
            let source = merge_defaults(source, defaults.as_ref());
            let version = match version {
                Some(v) => v.clone(),
                None => {
                    let scratch = self.scratch_dir("check")?;
                    let out = self
                        .invoke(
                            &imp,
                            Invocation {
                                op: "check",
                                request: json!({"source": source}),
                                work_host: scratch.path(),
                                work_dest: "/tmp/build/check",
                                mounts: Vec::new(),
                                env: Vec::new(),
                            },
                            log.clone(),
                            cancel.clone(),
                        )
                        .await?;
                    let versions: Vec<resource_protocol::Version> = serde_json::from_slice(&out)
                        .map_err(|e| format!("check answered badly: {e}"))?;
                    versions
                        .last()
                        .cloned()
                        .ok_or("check found no versions of the image")?
                }
            };
            if let Some(digest) = version.get("digest")
                && let Some(dir) = self.images.get(digest)
            {
                return Ok(dir);
            }
            let scratch = self.scratch_dir("image")?;
            let dest = scratch.path().join("image");
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
            let mut params = params.cloned().unwrap_or_default();
            params
                .entry("format".to_string())
                .or_insert(json!("rootfs"));
            let out = self
                .invoke(
                    &imp,
                    Invocation {
                        op: "in",
                        request: json!({"source": source, "version": version, "params": params}),
                        work_host: &dest,
                        work_dest: "/tmp/build/get",
                        mounts: Vec::new(),
                        env: Vec::new(),
                    },
                    log,
                    cancel,
                )
                .await?;
            let response: resource_protocol::Response =
                serde_json::from_slice(&out).map_err(|e| format!("in answered badly: {e}"))?;
            let digest = response
                .version
                .get("digest")
                .cloned()
                .or_else(|| std::fs::read_to_string(dest.join("digest")).ok())
                .map(|d| d.trim().to_owned())
                .ok_or("the image has no digest")?;
            if !dest.join("rootfs").is_dir() {
                return Err("the fetched image has no rootfs/ directory".into());
            }
            self.images
                .insert(&digest, &dest)
                .map_err(|e| format!("caching the image: {e}"))
        })
    }

    fn scratch_dir(&self, prefix: &str) -> Result<tempfile::TempDir, String> {
        let parent = self.config.state_dir.join("tmp");
        std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&parent)
            .map_err(|e| format!("{}: {e}", parent.display()))
    }

    /// Runs one resource operation; returns its stdout (the JSON answer).
    pub async fn invoke(
        &self,
        imp: &TypeImpl,
        call: Invocation<'_>,
        log: LogSink,
        cancel: Cancel,
    ) -> Result<Vec<u8>, String> {
        let stdin = serde_json::to_vec(&call.request).map_err(|e| e.to_string())?;
        let on_host;
        let imp = match imp {
            TypeImpl::Image {
                base: Some(base), ..
            } if let Some(reason) = needs_the_host(base, call.op, &call.request) => {
                on_host = self.host_for_call(base, reason, &log)?;
                &on_host
            }
            _ => imp,
        };
        let (spec, runner) = match imp {
            TypeImpl::Binary(binary) => {
                let mut args = vec![call.op.to_owned()];
                if call.op != "check" {
                    args.push(call.work_host.to_string_lossy().into_owned());
                }
                let spec = ProcessSpec {
                    rootfs: None,
                    path: binary.to_string_lossy().into_owned(),
                    args,
                    env: call.env,
                    work_host: call.work_host.to_owned(),
                    work_dest: call.work_dest.to_owned(),
                    mounts: call.mounts,
                    stdin,
                    capture_stdout: true,
                    host_cwd: Some(self.config.pipeline_dir.clone()),
                    ..ProcessSpec::default()
                };
                (spec, self.host.clone())
            }
            TypeImpl::Image {
                dir,
                privileged,
                base,
            } => {
                if self.runner.name() == "host" {
                    return Err(
                        "custom resource types need a container runtime (--runtime bwrap|runc)"
                            .into(),
                    );
                }
                let meta = ImageMetadata::read(dir);
                let mut env = meta.env.clone();
                env.extend(call.env);
                let mut args = Vec::new();
                if call.op != "check" {
                    args.push(call.work_dest.to_owned());
                }
                let mut mounts = call.mounts;
                if base.as_deref() == Some("git") && call.op == "check" {
                    // The git resource's check cache outlives the container, as on the host:
                    // a warm check fetches only what is new (it locks each cache itself).
                    let cache = self.config.state_dir.join("caches/git-resource-repo-cache");
                    std::fs::create_dir_all(&cache)
                        .map_err(|e| format!("{}: {e}", cache.display()))?;
                    mounts.push(Mount {
                        host: cache,
                        dest: "/tmp/git-resource-repo-cache".into(),
                        readonly: false,
                    });
                }
                let spec = ProcessSpec {
                    rootfs: Some(dir.join("rootfs")),
                    path: format!("/opt/resource/{}", call.op),
                    args,
                    env,
                    work_host: call.work_host.to_owned(),
                    work_dest: call.work_dest.to_owned(),
                    mounts,
                    user: meta.user,
                    privileged: *privileged,
                    stdin,
                    capture_stdout: true,
                    ..ProcessSpec::default()
                };
                (spec, self.runner.clone())
            }
        };
        match runner.run(&spec, log, cancel).await {
            Ok(done) if done.exit_code == 0 => Ok(done.stdout),
            Ok(done) => Err(format!(
                "{} failed (exit {}): {}",
                call.op, done.exit_code, done.stderr_tail
            )),
            Err(RunError::Cancelled) => Err("cancelled".into()),
            Err(e) => Err(format!("{}: {e}", call.op)),
        }
    }
}

/// Under `cargo run` (which sets `CARGO` and `CARGO_MANIFEST_DIR`), builds a missing resource
/// binary with the same profile, so `cargo run -p tributary -- run …` works on a fresh clone.
fn build_with_cargo(binary: &Path, type_name: &str) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock();
    if binary.is_file() {
        return;
    }
    let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return;
    };
    let Some(package) = binary.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    if !Path::new(&manifest_dir).join("../resources").is_dir() {
        return;
    }
    let release = binary
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|p| p == "release");
    eprintln!("building the {type_name} resource ({package}) with cargo");
    let mut command = resource_protocol::process::command(&cargo, Path::new(&manifest_dir));
    command.args(["build", "--quiet", "-p", &package]);
    if release {
        command.arg("--release");
    }
    if let Err(e) = command.status() {
        eprintln!("cannot build {package}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_naming_the_host_file_system_are_told_apart() {
        let cases: &[(&str, &str, Json, Option<&str>)] = &[
            (
                "git",
                "check",
                json!({"source": {"uri": ".."}}),
                Some("git (local path)"),
            ),
            (
                "git",
                "in",
                json!({"source": {"uri": "/srv/r.git"}}),
                Some("git (local path)"),
            ),
            (
                "git",
                "out",
                json!({"source": {"uri": "file:///srv/r.git"}}),
                Some("git (local path)"),
            ),
            (
                "git",
                "check",
                json!({"source": {"uri": "repo"}}),
                Some("git (local path)"),
            ),
            (
                "git",
                "check",
                json!({"source": {"uri": "git://h/r.git"}}),
                None,
            ),
            (
                "git",
                "check",
                json!({"source": {"uri": "https://h/r.git"}}),
                None,
            ),
            (
                "git",
                "check",
                json!({"source": {"uri": "git@github.com:o/r.git"}}),
                None,
            ),
            ("git", "check", json!({"source": {}}), None),
            (
                "nix-cache",
                "out",
                json!({"params": {"paths": ["/nix/store/x"]}}),
                Some("nix-cache (local store)"),
            ),
            (
                "nix-cache",
                "out",
                json!({"params": {"paths_file": "p"}}),
                Some("nix-cache (local store)"),
            ),
            (
                "nix-cache",
                "out",
                json!({"params": {"from": "cache"}}),
                None,
            ),
            ("nix-cache", "out", json!({"params": {"paths": []}}), None),
            (
                "nix-cache",
                "in",
                json!({"params": {"paths": ["/nix/store/x"]}}),
                None,
            ),
            (
                "registry-image",
                "check",
                json!({"source": {"uri": ".."}}),
                None,
            ),
        ];
        for (base, op, request, expect) in cases {
            let got = needs_the_host(base, op, request).map(|(key, _)| key);
            assert_eq!(got.as_deref(), *expect, "{base} {op} {request}");
        }
    }
}
