//! `mock-resource`: a resource without an outside world, for testing pipelines, with the
//! behaviour of concourse/mock-resource.
//!
//! `check` echoes the given version (or `force_version`, or an initial one), `in` writes
//! `version`, `privileged` and any `create_files`, `out` "creates" the version named in its
//! params. [`config`] holds the fields, [`privileged`] the privilege test upstream uses,
//! [`go_json`] Go's JSON encoding for file contents, [`mirror`] the `mirror_self` copy. This
//! module wires them into the protocol harness; it never writes to stdout itself.
//!
//! Differences from the official resource are listed in README.md (`mirror_self` only inside
//! an image, `create_files` paths stay inside the destination, `print_env` logs to stderr as
//! upstream really does).

pub mod config;
pub mod go_json;
pub mod mirror;
pub mod privileged;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use resource_protocol::{
    CheckRequest, InRequest, InvalidRequest, OutRequest, Resource, Response, Version,
};

pub use config::{GetParams, MockVersion, PutParams, Settings, Source};

/// Where the privilege test reads.
const UID_MAP: &str = "/proc/self/uid_map";

/// The environment variable a mirrored image sets to the version it was fetched at.
pub const MIRRORED_VERSION: &str = "MIRRORED_VERSION";

/// The mock resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct MockResource;

/// `source.check_failure` asked for a failing check.
#[derive(Debug, thiserror::Error)]
#[error("intentionally failing to check: {0}")]
pub struct IntentionalFailure(pub String);

impl Resource for MockResource {
    const NAME: &'static str = "mock";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        let settings = request.source.validate()?;
        let given = request
            .version
            .as_ref()
            .map(MockVersion::from_wire)
            .transpose()?;
        log_message(&settings);
        if let Some(nanos) = settings.check_delay.filter(|n| *n > 0) {
            std::thread::sleep(std::time::Duration::from_nanos(nanos.unsigned_abs()));
        }
        if let Some(message) = &settings.check_failure {
            return Err(IntentionalFailure(message.clone()).into());
        }
        let mirrored = std::env::var(MIRRORED_VERSION).ok();
        let mut versions = check_versions(&settings, given, mirrored.as_deref());
        if privileged::is_privileged(Path::new(UID_MAP))? {
            for version in &mut versions {
                version.privileged = "true".into();
            }
        }
        Ok(versions.iter().map(MockVersion::to_wire).collect())
    }

    fn get(&self, request: InRequest<Source, GetParams>, dest: &Path) -> anyhow::Result<Response> {
        let settings = request.source.validate()?;
        let version = MockVersion::from_wire(&request.version)?;
        let mirror_via_params = request.params.mirror_self_via_params.unwrap_or(false);
        let mut files = settings.create_files.clone();
        files.extend(
            request
                .params
                .create_files_via_params
                .clone()
                .unwrap_or_default(),
        );
        let files = files
            .iter()
            .map(|(path, contents)| Ok((safe_relative_path(path)?, file_contents(contents))))
            .collect::<Result<Vec<_>, InvalidRequest>>()?;
        let mirror_from = if settings.mirror_self || mirror_via_params {
            Some(mirror_source(mirror_via_params)?)
        } else {
            None
        };
        log_message(&settings);

        let privileged = privileged::is_privileged(Path::new(UID_MAP))?;
        if privileged {
            tracing::info!("fetching in a privileged container");
        }
        write_file(
            &dest.join("privileged"),
            format!("{privileged}\n").as_bytes(),
            0o644,
        )?;
        tracing::info!("fetching version: {}", version.version);
        write_file(
            &dest.join("version"),
            format!("{}\n", version.version).as_bytes(),
            0o777,
        )?;

        if let Some(root) = mirror_from {
            tracing::info!(via_params = mirror_via_params, "mirroring self image");
            mirror_self(&root, dest, &version.version)?;
        }
        for (path, contents) in files {
            let target = dest.join(&path);
            if let Some(parent) = target.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .create(parent)
                    .with_context(|| format!("failed to create directory {}", parent.display()))?;
            }
            write_file(&target, contents.as_bytes(), 0o644)?;
        }
        Ok(Response {
            version: version.to_wire(),
            metadata: settings.metadata,
        })
    }

    fn put(&self, request: OutRequest<Source, PutParams>, src: &Path) -> anyhow::Result<Response> {
        let settings = request.source.validate()?;
        let params = request.params;
        let named = params.version.filter(|v| !v.is_empty());
        let file = params.file.filter(|f| !f.is_empty());
        if named.is_none() && file.is_none() {
            return Err(InvalidRequest::new(
                "params.version or params.file: no version specified (set one)",
            )
            .into());
        }
        log_message(&settings);
        let privileged = privileged::is_privileged(Path::new(UID_MAP))?;
        let mut version = match (named, file) {
            (Some(version), _) => MockVersion::new(version),
            (None, Some(file)) => {
                let path = src.join(&file);
                let contents = std::fs::read(&path)
                    .with_context(|| format!("params.file: error reading version from {file:?}"))?;
                MockVersion::new(String::from_utf8_lossy(&contents))
            }
            (None, None) => MockVersion::default(),
        };
        if privileged {
            tracing::info!("pushing in a privileged container");
            version.privileged = "true".into();
        }
        tracing::info!("pushing version: {}", version.version);
        if params.print_env.unwrap_or(false) {
            for (name, value) in std::env::vars_os() {
                tracing::info!(
                    "env: {}={}",
                    name.to_string_lossy(),
                    value.to_string_lossy()
                );
            }
        }
        Ok(Response {
            version: version.to_wire(),
            metadata: settings.metadata,
        })
    }
}

/// What `check` emits, before the privileged marker: `force_version` if set, else the given
/// version, else the initial one unless `no_initial_version`.
pub fn check_versions(
    settings: &Settings,
    given: Option<MockVersion>,
    mirrored_version: Option<&str>,
) -> Vec<MockVersion> {
    if let Some(forced) = &settings.force_version {
        return vec![MockVersion::new(forced.clone())];
    }
    if let Some(given) = given {
        return vec![given];
    }
    if settings.no_initial_version {
        return Vec::new();
    }
    vec![MockVersion::new(settings.initial_version(mirrored_version))]
}

/// A file's contents: strings as they are, anything else as Go's JSON; then `START_VAR` and
/// `END_VAR` become `((` and `))` (so files can hold var syntax the pipeline would interpolate).
pub fn file_contents(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => go_json::to_string(other),
    };
    text.replace("START_VAR", "((").replace("END_VAR", "))")
}

/// A `create_files` path, which must stay inside the destination.
fn safe_relative_path(path: &str) -> Result<PathBuf, InvalidRequest> {
    let mut clean = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir if clean.pop() => {}
            _ => {
                return Err(InvalidRequest::new(format!(
                    "create_files: path {path:?} must stay inside the destination directory"
                )));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(InvalidRequest::new(format!(
            "create_files: path {path:?} names no file"
        )));
    }
    Ok(clean)
}

fn log_message(settings: &Settings) {
    if let Some(message) = &settings.log {
        tracing::info!("{message}");
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("failed to write {}", path.display()))
}

/// The root to mirror: `/`, but only when this binary runs inside a resource image.
fn mirror_source(via_params: bool) -> anyhow::Result<PathBuf> {
    let field = if via_params {
        "params.mirror_self_via_params"
    } else {
        "source.mirror_self"
    };
    let exe = std::env::current_exe().context("locate the running binary")?;
    if !mirror::runs_from_an_image(&exe) {
        return Err(InvalidRequest::new(format!(
            "{field}: works only inside the mock resource's image (this binary runs from {}); the host's / is never mirrored",
            exe.display()
        ))
        .into());
    }
    Ok(PathBuf::from("/"))
}

/// Copies `root` to `dest/rootfs` and writes `dest/metadata.json` (the image's env and user).
fn mirror_self(root: &Path, dest: &Path, version: &str) -> anyhow::Result<()> {
    let dest = std::fs::canonicalize(dest).unwrap_or_else(|_| dest.to_owned());
    mirror::copy_root(root, &dest.join("rootfs"), &dest)?;
    let metadata = serde_json::json!({
        "env": [format!("{MIRRORED_VERSION}={version}")],
        "user": "root",
    });
    let mut text = go_json::to_string(&metadata);
    text.push('\n');
    write_file(&dest.join("metadata.json"), text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(source: serde_json::Value) -> Settings {
        serde_json::from_value::<Source>(source)
            .unwrap()
            .validate()
            .unwrap()
    }

    /// (source, given version, `$MIRRORED_VERSION`, emitted versions)
    type CheckCase = (
        serde_json::Value,
        Option<MockVersion>,
        Option<&'static str>,
        &'static [&'static str],
    );

    #[test]
    fn check_picks_forced_given_or_initial() {
        let v = |s: &str| Some(MockVersion::new(s));
        let cases: [CheckCase; 8] = [
            (serde_json::json!({}), None, None, &["mock"]),
            (serde_json::json!({}), v("v2"), None, &["v2"]),
            (
                serde_json::json!({"initial_version": "first"}),
                None,
                None,
                &["first"],
            ),
            (serde_json::json!({}), None, Some("mirrored"), &["mirrored"]),
            (
                serde_json::json!({"no_initial_version": true}),
                None,
                None,
                &[],
            ),
            (
                serde_json::json!({"no_initial_version": true}),
                v("v2"),
                None,
                &["v2"],
            ),
            (
                serde_json::json!({"force_version": "pinned"}),
                v("v2"),
                None,
                &["pinned"],
            ),
            (
                serde_json::json!({"force_version": "pinned", "no_initial_version": true}),
                None,
                None,
                &["pinned"],
            ),
        ];
        for (source, given, mirrored, expected) in cases {
            let got: Vec<String> = check_versions(&settings(source.clone()), given, mirrored)
                .into_iter()
                .map(|v| v.version)
                .collect();
            assert_eq!(got, expected, "{source} {mirrored:?}");
        }
    }

    #[test]
    fn file_contents_and_var_markers() {
        let cases = [
            (serde_json::json!("plain\n"), "plain\n"),
            (
                serde_json::json!("x: START_VARsecretEND_VAR"),
                "x: ((secret))",
            ),
            (
                serde_json::json!({"b": [1, 2.5], "a": "<&>"}),
                r#"{"a":"\u003c\u0026\u003e","b":[1,2.5]}"#,
            ),
            (
                serde_json::json!({"v": "START_VARnameEND_VAR"}),
                r#"{"v":"((name))"}"#,
            ),
            (serde_json::json!(true), "true"),
            (serde_json::json!(null), "null"),
        ];
        for (value, expected) in cases {
            assert_eq!(file_contents(&value), expected, "{value}");
        }
    }

    #[test]
    fn mirror_writes_rootfs_and_metadata() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("opt/resource")).unwrap();
        std::fs::write(root.path().join("opt/resource/mock-resource"), "binary").unwrap();
        let dest = root.path().join("tmp/build/get");
        std::fs::create_dir_all(&dest).unwrap();
        mirror_self(root.path(), &dest, "v1").unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("metadata.json")).unwrap(),
            "{\"env\":[\"MIRRORED_VERSION=v1\"],\"user\":\"root\"}\n"
        );
        let binary = dest.join("rootfs/opt/resource/mock-resource");
        assert_eq!(std::fs::read_to_string(binary).unwrap(), "binary");
        assert_eq!(
            std::fs::read_dir(dest.join("rootfs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn create_files_paths_stay_inside() {
        let ok = [
            ("a.yml", "a.yml"),
            ("dir/sub/b.sh", "dir/sub/b.sh"),
            ("./c", "c"),
            ("d/../e", "e"),
        ];
        for (input, expected) in ok {
            assert_eq!(
                safe_relative_path(input).unwrap(),
                Path::new(expected),
                "{input}"
            );
        }
        for bad in ["../escape", "/etc/passwd", "a/../../b", "", "."] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
