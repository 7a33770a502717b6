//! The OCI and Docker image documents this resource reads and writes: descriptors, manifests,
//! indexes, the parts of an image config we use, media types and platform matching.
//!
//! Parsed loosely (unknown fields ignored, Docker and OCI media types alike) because these come
//! from registries and tarballs we do not control; the raw bytes are always kept next to the
//! parsed form, since a digest is over the bytes and must never be recomputed from a
//! re-serialisation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation naming an image inside an OCI layout.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Whether `media_type` names an index (OCI index or Docker manifest list).
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A platform in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`, …
    #[serde(default)]
    pub architecture: String,
    /// `linux`, `windows`, …
    #[serde(default)]
    pub os: String,
    /// `v7`, `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when the document names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI index or Docker manifest list).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when the document names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The images.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The part of an image config this resource reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// Creation time (RFC 3339), used by `created_at_sort`.
    #[serde(default)]
    pub created: Option<String>,
    /// Architecture.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<String>,
    /// The run-time configuration.
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
    /// Uncompressed layer digests.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// `config.config`: how a container of this image runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// Environment, `K=V`.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `config.rootfs`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    /// Digests of the uncompressed layers.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// What a document fetched by digest or tag turned out to be.
#[derive(Debug, Clone)]
pub enum Document {
    /// An image index.
    Index(Index),
    /// An image manifest.
    Manifest(Manifest),
}

/// Parses a manifest or an index, told apart by media type (the header's, then the body's)
/// and, failing both, by shape.
pub fn parse_document(bytes: &[u8], header_media_type: Option<&str>) -> Result<Document, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| format!("manifest is not JSON: {err}"))?;
    let media_type = header_media_type
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            value
                .get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        });
    let is_index = match media_type.as_deref() {
        Some(m) if is_index_media_type(m) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        _ => value.get("manifests").is_some(),
    };
    if is_index {
        serde_json::from_value(value)
            .map(Document::Index)
            .map_err(|err| format!("invalid image index: {err}"))
    } else {
        if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
            return Err("schema 1 manifests are not supported".to_owned());
        }
        serde_json::from_value(value)
            .map(Document::Manifest)
            .map_err(|err| format!("invalid image manifest: {err}"))
    }
}

/// The platform wanted when picking from an index: linux/amd64 unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPlatform {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant, if one is required.
    pub variant: Option<String>,
}

impl Default for WantedPlatform {
    fn default() -> Self {
        Self {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            variant: None,
        }
    }
}

impl std::fmt::Display for WantedPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The index entry for `wanted`: os and architecture must match; a wanted variant must match,
/// and without one the first entry of the right os/architecture wins.
pub fn select_platform<'a>(index: &'a Index, wanted: &WantedPlatform) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|entry| {
        let Some(platform) = &entry.platform else {
            return false;
        };
        platform.os == wanted.os
            && platform.architecture == wanted.architecture
            && wanted
                .variant
                .as_ref()
                .is_none_or(|v| platform.variant.as_deref() == Some(v.as_str()))
    })
}

/// The media type of a layer whose first bytes are `prefix`.
pub fn layer_media_type(prefix: &[u8]) -> &'static str {
    use resource_protocol::unpack::{Compression, sniff_compression};
    match sniff_compression(prefix) {
        Compression::Gzip => OCI_LAYER_GZIP,
        Compression::Zstd => OCI_LAYER_ZSTD,
        Compression::None => OCI_LAYER_TAR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, digest: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.to_owned(),
            digest: digest.to_owned(),
            size: 1,
            platform: Some(Platform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: variant.map(str::to_owned),
            }),
            annotations: None,
        }
    }

    #[test]
    fn selects_platforms() {
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            manifests: vec![
                entry("linux", "arm", Some("v6"), "a"),
                entry("linux", "arm", Some("v7"), "b"),
                entry("linux", "amd64", None, "c"),
                entry("windows", "amd64", None, "d"),
            ],
            annotations: None,
        };
        let want = |os: &str, arch: &str, variant: Option<&str>| WantedPlatform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        };
        let cases = [
            (WantedPlatform::default(), Some("c")),
            (want("linux", "arm", None), Some("a")),
            (want("linux", "arm", Some("v7")), Some("b")),
            (want("windows", "amd64", None), Some("d")),
            (want("linux", "s390x", None), None),
        ];
        for (wanted, expect) in cases {
            let got = select_platform(&index, &wanted).map(|d| d.digest.as_str());
            assert_eq!(got, expect, "{wanted}");
        }
    }

    #[test]
    fn tells_documents_apart() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}"#;
        let cases: [(&[u8], Option<&str>, &str); 5] = [
            (index, None, "index"),
            (index, Some(DOCKER_MANIFEST_LIST), "index"),
            (manifest, None, "manifest"),
            (manifest, Some(OCI_MANIFEST), "manifest"),
            (br#"{"schemaVersion":1,"fsLayers":[]}"#, None, "error"),
        ];
        for (bytes, header, expect) in cases {
            let got = match parse_document(bytes, header) {
                Ok(Document::Index(_)) => "index",
                Ok(Document::Manifest(_)) => "manifest",
                Err(_) => "error",
            };
            assert_eq!(got, expect, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
