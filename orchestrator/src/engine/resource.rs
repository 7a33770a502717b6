//! Driving resources through the protocol: finding a type's implementation (our binary beside
//! `tributary`, or a custom type's image fetched with registry-image and cached by digest),
//! then spawning `check`, `in` or `out` with a JSON request on stdin.
//!
//! Nothing here links a resource's code: the only contact is a child process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use crate::runner::rootfs::ImageMetadata;
use crate::runner::{Cancel, LogSink, Mount, ProcessSpec, RunError};

use super::Engine;

/// The base types, served by our own binaries (`<type>-resource`); one list with validation.
pub use crate::load::BASE_TYPES;

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
                let dir = self
                    .fetch_image(
                        &image_type,
                        &custom.source,
                        custom.params.as_ref(),
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
                };
                if let Ok(mut types) = self.types.lock() {
                    types.insert(
                        type_name.to_owned(),
                        (std::time::Instant::now(), imp.clone()),
                    );
                }
                return Ok(imp);
            }
            self.base_type(type_name)
        })
    }

    /// A base type's binary.
    pub fn base_type(&self, type_name: &str) -> Result<TypeImpl, String> {
        if !BASE_TYPES.contains(&type_name) {
            return Err(format!("unknown resource type {type_name}"));
        }
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
                self.base_type(type_name)?
            } else {
                self.type_impl(type_name, log.clone(), cancel.clone())
                    .await?
            };
            let defaults = self
                .pipeline
                .resource_types
                .iter()
                .find(|t| t.name == type_name && self_name != Some(type_name))
                .and_then(|t| t.defaults.as_ref());
            let source = merge_defaults(source, defaults);
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
            TypeImpl::Image { dir, privileged } => {
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
                let spec = ProcessSpec {
                    rootfs: Some(dir.join("rootfs")),
                    path: format!("/opt/resource/{}", call.op),
                    args,
                    env,
                    work_host: call.work_host.to_owned(),
                    work_dest: call.work_dest.to_owned(),
                    mounts: call.mounts,
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
