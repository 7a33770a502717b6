//! The mock resource's `source`, `params` and version, field for field as concourse/mock-resource
//! accepts them (which, like us, refuses unknown fields).
//!
//! Go's empty string means "unset" for every string field upstream, so it does here too.

use std::collections::BTreeMap;

use resource_protocol::{InvalidRequest, MetadataField, Version, duration, lenient};
use serde::Deserialize;

/// The version `check` emits first when `initial_version` is unset.
pub const DEFAULT_INITIAL_VERSION: &str = "mock";

/// `source` of a mock resource. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `in` copies its own image's root file system to `rootfs/` (for `image_resource`).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub mirror_self: Option<bool>,
    /// The version of the first check (default `MIRRORED_VERSION` from the environment, else
    /// `mock`).
    #[serde(default)]
    pub initial_version: Option<String>,
    /// No version on the first check (to test triggers).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub no_initial_version: Option<bool>,
    /// `check` always emits exactly this version.
    #[serde(default)]
    pub force_version: Option<String>,
    /// Files `in` writes: path → contents (a string as is, anything else as JSON).
    #[serde(default)]
    pub create_files: Option<BTreeMap<String, serde_json::Value>>,
    /// Go duration `check` sleeps before answering.
    #[serde(default)]
    pub check_delay: Option<String>,
    /// `check` fails with this message.
    #[serde(default)]
    pub check_failure: Option<String>,
    /// Metadata returned by every `in` and `out`.
    #[serde(default)]
    pub metadata: Option<Vec<MetadataEntry>>,
    /// A message logged by every operation.
    #[serde(default)]
    pub log: Option<String>,
}

/// One `metadata` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataEntry {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// `params` of a get step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Same as `source.mirror_self`.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub mirror_self_via_params: Option<bool>,
    /// Merged over `source.create_files` (same path: these contents win).
    #[serde(default)]
    pub create_files_via_params: Option<BTreeMap<String, serde_json::Value>>,
}

/// `params` of a put step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// The version to "create".
    #[serde(default)]
    pub version: Option<String>,
    /// Log every environment variable.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub print_env: Option<bool>,
    /// A file (relative to the put's inputs) whose whole contents are the version.
    #[serde(default)]
    pub file: Option<String>,
}

/// A validated source.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `mirror_self`.
    pub mirror_self: bool,
    /// `initial_version`, non-empty.
    pub initial_version: Option<String>,
    /// `no_initial_version`.
    pub no_initial_version: bool,
    /// `force_version`, non-empty.
    pub force_version: Option<String>,
    /// `create_files`.
    pub create_files: BTreeMap<String, serde_json::Value>,
    /// `check_delay` in nanoseconds (negative: no delay, as Go's `time.Sleep`).
    pub check_delay: Option<i64>,
    /// `check_failure`, non-empty.
    pub check_failure: Option<String>,
    /// `metadata`.
    pub metadata: Vec<MetadataField>,
    /// `log`, non-empty.
    pub log: Option<String>,
}

/// `Some` only for a non-empty string.
fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

impl Source {
    /// Checks every field; each error names it.
    pub fn validate(&self) -> Result<Settings, InvalidRequest> {
        let check_delay = non_empty(&self.check_delay)
            .map(|d| duration::parse(&d))
            .transpose()
            .map_err(|e| InvalidRequest::new(format!("source.check_delay: {e}")))?;
        Ok(Settings {
            mirror_self: self.mirror_self.unwrap_or(false),
            initial_version: non_empty(&self.initial_version),
            no_initial_version: self.no_initial_version.unwrap_or(false),
            force_version: non_empty(&self.force_version),
            create_files: self.create_files.clone().unwrap_or_default(),
            check_delay,
            check_failure: non_empty(&self.check_failure),
            metadata: self
                .metadata
                .iter()
                .flatten()
                .map(|m| MetadataField::new(&m.name, &m.value))
                .collect(),
            log: non_empty(&self.log),
        })
    }
}

impl Settings {
    /// The first check's version: `initial_version`, else `$MIRRORED_VERSION` (set in the
    /// image `in` mirrored), else `mock`.
    pub fn initial_version(&self, mirrored_version: Option<&str>) -> String {
        self.initial_version
            .clone()
            .or_else(|| {
                mirrored_version
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| DEFAULT_INITIAL_VERSION.to_owned())
    }
}

/// A mock version: `{"version": "…"}`, plus `"privileged": "true"` when made in a privileged
/// container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockVersion {
    /// The version string.
    pub version: String,
    /// `privileged`, empty when absent.
    pub privileged: String,
}

impl MockVersion {
    /// A version without the privileged marker.
    pub fn new(version: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            privileged: String::new(),
        }
    }

    /// Reads a version from the request; keys other than `version` and `privileged` are
    /// refused, as upstream refuses them.
    pub fn from_wire(version: &Version) -> Result<Self, InvalidRequest> {
        if let Some(other) = version
            .keys()
            .find(|k| !matches!(k.as_str(), "version" | "privileged"))
        {
            return Err(InvalidRequest::new(format!(
                "version.{other}: unknown field (mock versions are {{\"version\": \"…\", \"privileged\": \"true\"}})"
            )));
        }
        Ok(Self {
            version: version.get("version").cloned().unwrap_or_default(),
            privileged: version.get("privileged").cloned().unwrap_or_default(),
        })
    }

    /// The wire form; `privileged` only when set.
    pub fn to_wire(&self) -> Version {
        let mut wire = resource_protocol::wire::version([("version", self.version.clone())]);
        if !self.privileged.is_empty() {
            wire.insert("privileged".into(), self.privileged.clone());
        }
        wire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(source: serde_json::Value) -> Result<Settings, String> {
        serde_json::from_value::<Source>(source)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn empty_strings_are_unset() {
        let settings = validate(serde_json::json!({
            "initial_version": "", "force_version": "", "check_delay": "", "check_failure": "",
            "log": ""
        }))
        .unwrap();
        assert_eq!(settings.initial_version, None);
        assert_eq!(settings.force_version, None);
        assert_eq!(settings.check_delay, None);
        assert_eq!(settings.check_failure, None);
        assert_eq!(settings.log, None);
    }

    #[test]
    fn initial_version_falls_back_to_the_mirrored_one_then_mock() {
        let cases = [
            (serde_json::json!({}), None, "mock"),
            (serde_json::json!({}), Some(""), "mock"),
            (serde_json::json!({}), Some("v7"), "v7"),
            (
                serde_json::json!({"initial_version": "first"}),
                Some("v7"),
                "first",
            ),
        ];
        for (source, mirrored, expected) in cases {
            let settings = validate(source.clone()).unwrap();
            assert_eq!(
                settings.initial_version(mirrored),
                expected,
                "{source} {mirrored:?}"
            );
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let err = validate(serde_json::json!({"check_delay": "soon"})).unwrap_err();
        assert!(
            err.contains("source.check_delay: invalid duration \"soon\""),
            "{err}"
        );
        let err =
            validate(serde_json::json!({"metadata": [{"name": "a", "val": "b"}]})).unwrap_err();
        assert!(err.contains("unknown field `val`"), "{err}");
    }

    #[test]
    fn versions_round_trip_and_refuse_other_keys() {
        let wire = resource_protocol::wire::version([("version", "v1"), ("privileged", "true")]);
        let version = MockVersion::from_wire(&wire).unwrap();
        assert_eq!(version.to_wire(), wire);
        assert_eq!(
            MockVersion::from_wire(&Version::new()).unwrap().to_wire(),
            resource_protocol::wire::version([("version", "")])
        );
        let err = MockVersion::from_wire(&resource_protocol::wire::version([("ref", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("version.ref: unknown field"), "{err}");
    }
}
