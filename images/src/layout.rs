//! OCI image layouts: the layer, config, manifest and `index.json` of one image, written with
//! `oci-spec` types and named by digests computed while writing.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ANNOTATION_DESCRIPTION, ANNOTATION_LICENSES, ANNOTATION_REF_NAME, ANNOTATION_REVISION,
    ANNOTATION_SOURCE, ANNOTATION_TITLE, ANNOTATION_VERSION, Arch, ConfigBuilder, Descriptor,
    DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, RootFsBuilder,
};

use crate::digest::{canonical_json, sha256_digest};
use crate::layer::{Layer, write_layer};
use crate::rootfs::Rootfs;

/// The `PATH` every image's config sets.
pub const PATH_ENV: &str = "PATH=/opt/resource:/usr/local/bin:/usr/bin:/bin";
/// Points OpenSSL and rustls-native-certs at the bundle even where their probes do not look.
pub const SSL_CERT_FILE_ENV: &str = "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt";

/// What an image says about itself (labels, annotations, creation time, tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    /// `org.opencontainers.image.title`, e.g. `git-resource`.
    pub title: String,
    /// `org.opencontainers.image.description`.
    pub description: String,
    /// `org.opencontainers.image.version`.
    pub version: String,
    /// `org.opencontainers.image.revision`: the source commit.
    pub revision: String,
    /// `org.opencontainers.image.source`: the repository URL.
    pub source: String,
    /// `org.opencontainers.image.licenses`: an SPDX expression.
    pub licenses: String,
    /// Seconds since the epoch for `created` and every file's mtime (`SOURCE_DATE_EPOCH`).
    pub created: u64,
    /// The `org.opencontainers.image.ref.name` of the image in `index.json` (its tag).
    pub ref_name: String,
}

impl ImageMeta {
    /// The five `org.opencontainers.image.*` labels plus the description.
    pub fn labels(&self) -> HashMap<String, String> {
        [
            (ANNOTATION_TITLE, &self.title),
            (ANNOTATION_DESCRIPTION, &self.description),
            (ANNOTATION_VERSION, &self.version),
            (ANNOTATION_REVISION, &self.revision),
            (ANNOTATION_SOURCE, &self.source),
            (ANNOTATION_LICENSES, &self.licenses),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// A written image layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayout {
    /// The layout directory.
    pub dir: PathBuf,
    /// The manifest's descriptor (as in `index.json`, without annotations).
    pub manifest_digest: String,
    /// The manifest's size.
    pub manifest_size: u64,
    /// The config blob's digest.
    pub config_digest: String,
    /// The config blob's bytes (also needed by the docker archive).
    pub config: Vec<u8>,
    /// The one layer.
    pub layer: Layer,
}

impl WrittenLayout {
    /// The path of the blob with `digest` in this layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }
}

/// Errors while writing a layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Writing a file failed.
    #[error("{what}")]
    Io {
        /// What was being written.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// An `oci-spec` builder rejected a value.
    #[error("image metadata")]
    Spec(#[from] oci_spec::OciSpecError),
    /// Serialising JSON failed.
    #[error("image json")]
    Json(#[from] serde_json::Error),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LayoutError {
    let what = what.into();
    move |source| LayoutError::Io { what, source }
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    dir.join("blobs").join(algorithm).join(hex)
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Result<(String, u64), LayoutError> {
    let digest = sha256_digest(bytes);
    let path = blob_path(dir, &digest);
    fs::write(&path, bytes).map_err(io_err(format!("write {}", path.display())))?;
    Ok((digest, bytes.len() as u64))
}

fn descriptor(media_type: MediaType, digest: &str, size: u64) -> Result<Descriptor, LayoutError> {
    Ok(DescriptorBuilder::default()
        .media_type(media_type)
        .digest(oci_spec::image::Digest::try_from(digest)?)
        .size(size)
        .build()?)
}

/// Writes `rootfs` as a one-layer image layout into `dir` (created; must not hold another image).
pub fn write_layout(
    dir: &Path,
    rootfs: &Rootfs,
    meta: &ImageMeta,
) -> Result<WrittenLayout, LayoutError> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err(format!("create {}", blobs.display())))?;

    let partial = blobs.join(".layer.partial");
    let layer = write_layer(rootfs, meta.created, &partial)
        .map_err(io_err(format!("write layer {}", partial.display())))?;
    fs::rename(&partial, blob_path(dir, &layer.digest)).map_err(io_err("name layer blob"))?;

    let created = rfc3339(meta.created);
    let config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .user("root")
                .env(vec![PATH_ENV.to_owned(), SSL_CERT_FILE_ENV.to_owned()])
                .labels(meta.labels())
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.clone()])
                .build()?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created)
                .created_by(format!("tributary images build ({})", meta.title))
                .build()?,
        ])
        .build()?;
    let config = canonical_json(&config)?;
    let (config_digest, config_size) = write_blob(dir, &config)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_size,
        )?)
        .layers(vec![descriptor(
            MediaType::ImageLayerGzip,
            &layer.digest,
            layer.size,
        )?])
        .annotations(meta.labels())
        .build()?;
    let manifest = canonical_json(&manifest)?;
    let (manifest_digest, manifest_size) = write_blob(dir, &manifest)?;

    let mut manifest_descriptor =
        descriptor(MediaType::ImageManifest, &manifest_digest, manifest_size)?;
    manifest_descriptor.set_annotations(Some(
        [(ANNOTATION_REF_NAME.to_owned(), meta.ref_name.clone())]
            .into_iter()
            .collect(),
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_descriptor])
        .build()?;
    let index_path = dir.join("index.json");
    fs::write(&index_path, canonical_json(&index)?).map_err(io_err("write index.json"))?;
    let oci_layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()?;
    fs::write(dir.join("oci-layout"), canonical_json(&oci_layout)?)
        .map_err(io_err("write oci-layout"))?;

    Ok(WrittenLayout {
        dir: dir.to_owned(),
        manifest_digest,
        manifest_size,
        config_digest,
        config,
        layer,
    })
}

/// `seconds` since the epoch as an RFC 3339 UTC time (`1970-01-01T00:00:00Z`).
pub fn rfc3339(seconds: u64) -> String {
    resource_protocol::timestamp::rfc3339_utc(seconds as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        for (seconds, expect) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(seconds), expect, "{seconds}");
        }
    }
}
