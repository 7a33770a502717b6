//! What `in` writes besides the rootfs: the OCI image layout (`oci/`), the docker-save tarball
//! (`image.tar`), `metadata.json` and `labels.json`.
//!
//! Writers work from blobs already downloaded and verified into a [`BlobStore`]; they never
//! touch the network, and they never re-serialise a manifest or index whose digest matters:
//! those are written byte for byte as fetched.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::oci::{self, Descriptor, ImageConfig, Index, Manifest};

/// A manifest or index as fetched: its exact bytes, media type and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDocument {
    /// The bytes the digest is over.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// `sha256:…` of `bytes`.
    pub digest: String,
}

impl RawDocument {
    /// A descriptor pointing at this document.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
            annotations: None,
        }
    }
}

/// Blobs on disk under `ROOT/<algorithm>/<hex>`: the `blobs/` directory of an OCI layout.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives; `None` for a digest that is not `algorithm:hex`.
    pub fn path(&self, digest: &str) -> io::Result<PathBuf> {
        let (algorithm, hex) = digest
            .split_once(':')
            .filter(|(a, h)| {
                !a.is_empty()
                    && a.bytes().all(|b| b.is_ascii_alphanumeric())
                    && !h.is_empty()
                    && h.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid digest {digest:?}"),
                )
            })?;
        Ok(self.root.join(algorithm).join(hex))
    }

    /// Writes a small blob (manifest, config) whose digest the caller verified.
    pub fn write(&self, digest: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(digest)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, bytes)
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }
}

/// Writes `oci-layout` and `index.json` into `layout` (whose `blobs/` already holds every
/// blob). An index is written byte for byte; a single image is wrapped in an index whose
/// entry is named `tag`, and its digest is also written to `single-image-digest`.
pub fn write_oci_layout(layout: &Path, top: &RawDocument, tag: &str) -> io::Result<()> {
    fs::create_dir_all(layout)?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    if oci::is_index_media_type(&top.media_type) {
        fs::write(layout.join("index.json"), &top.bytes)?;
    } else {
        let index = wrapping_index(top, tag);
        fs::write(layout.join("index.json"), to_json(&index)?)?;
        fs::write(layout.join("single-image-digest"), &top.digest)?;
    }
    Ok(())
}

/// An OCI index holding just `manifest`, named `tag`.
fn wrapping_index(manifest: &RawDocument, tag: &str) -> Index {
    let mut entry = manifest.descriptor();
    if !tag.is_empty() {
        entry.annotations = Some(BTreeMap::from([(
            oci::REF_NAME_ANNOTATION.to_owned(),
            tag.to_owned(),
        )]));
    }
    Index {
        schema_version: 2,
        media_type: Some(oci::OCI_INDEX.to_owned()),
        manifests: vec![entry],
        annotations: None,
    }
}

/// One entry of a docker-save `manifest.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Writes `image.tar` as `docker save` (Docker 25+) does: a `manifest.json` for `docker load`
/// and `skopeo copy docker-archive:`, laid over an OCI image layout (`oci-layout`,
/// `index.json`, `blobs/`), so the same file is also an `oci-archive:`. Layers stay as the
/// registry compressed them; every blob comes from `store` and is streamed, never buffered.
pub fn write_docker_archive(
    path: &Path,
    store: &BlobStore,
    manifest: &RawDocument,
    parsed: &Manifest,
    repo_tag: &str,
) -> io::Result<()> {
    // Written beside, renamed into place when complete: a failure leaves no image.tar.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = write_docker_archive_to(&partial, store, manifest, parsed, repo_tag)
        .and_then(|()| fs::rename(&partial, path));
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

fn write_docker_archive_to(
    path: &Path,
    store: &BlobStore,
    manifest: &RawDocument,
    parsed: &Manifest,
    repo_tag: &str,
) -> io::Result<()> {
    let blob_name = |digest: &str| format!("blobs/{}", digest.replacen(':', "/", 1));
    let file = File::create(path)?;
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, file));
    tar.mode(tar::HeaderMode::Deterministic);

    append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let tag = repo_tag.rsplit_once(':').map_or("", |(_, tag)| tag);
    let mut index = wrapping_index(manifest, tag);
    if let Some(entry) = index.manifests.first_mut() {
        // Docker names the image by its full reference here; ref.name stays the bare tag.
        entry
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert("io.containerd.image.name".to_owned(), repo_tag.to_owned());
    }
    append_bytes(&mut tar, "index.json", &to_json(&index)?)?;
    append_bytes(&mut tar, &blob_name(&manifest.digest), &manifest.bytes)?;

    let mut written = std::collections::HashSet::new();
    for descriptor in std::iter::once(&parsed.config).chain(&parsed.layers) {
        if !written.insert(descriptor.digest.clone()) {
            continue;
        }
        let mut blob = File::open(store.path(&descriptor.digest)?)?;
        let size = blob.metadata()?.len();
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, blob_name(&descriptor.digest), &mut blob)?;
    }
    let entry = DockerSaveEntry {
        config: blob_name(&parsed.config.digest),
        repo_tags: if repo_tag.is_empty() {
            Vec::new()
        } else {
            vec![repo_tag.to_owned()]
        },
        layers: parsed.layers.iter().map(|l| blob_name(&l.digest)).collect(),
    };
    append_bytes(&mut tar, "manifest.json", &to_json(&[entry])?)?;
    tar.into_inner()?.flush()
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

/// `metadata.json` as Concourse reads it for `image_resource`: env, user, cmd, entrypoint.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ImageMetadata {
    /// `K=V` pairs.
    pub env: Vec<String>,
    /// User to run as (may be empty).
    pub user: String,
    /// Default command.
    pub cmd: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
}

impl ImageMetadata {
    /// The metadata of `config` (empty fields when the config leaves them out).
    pub fn of(config: &ImageConfig) -> Self {
        let runtime = config.config.clone().unwrap_or_default();
        Self {
            env: runtime.env.unwrap_or_default(),
            user: runtime.user.unwrap_or_default(),
            cmd: runtime.cmd.unwrap_or_default(),
            entrypoint: runtime.entrypoint.unwrap_or_default(),
        }
    }
}

/// Writes `metadata.json` into `dest`.
pub fn write_metadata_json(dest: &Path, config: &ImageConfig) -> io::Result<()> {
    fs::write(
        dest.join("metadata.json"),
        to_json(&ImageMetadata::of(config))?,
    )
}

/// Writes `labels.json` (the config's labels, `{}` when none) into `dest`.
pub fn write_labels_json(dest: &Path, config: &ImageConfig) -> io::Result<()> {
    let labels = config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    fs::write(dest.join("labels.json"), to_json(&labels)?)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use sha2::{Digest as _, Sha256};

    use super::*;

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// A one-layer image in `store`: (manifest, parsed manifest).
    fn tiny_image(store: &BlobStore) -> (RawDocument, Manifest) {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "hello.txt", &b"hello"[..])
            .unwrap();
        let layer_tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer_tar).unwrap();
        let layer = gz.finish().unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "User": "1000", "Cmd": ["sh"], "Labels": {"a": "b"}},
            "rootfs": {"type": "layers", "diff_ids": [digest(&layer_tar)]}
        });
        let config = serde_json::to_vec(&config).unwrap();
        store.write(&digest(&layer), &layer).unwrap();
        store.write(&digest(&config), &config).unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST,
            "config": {"mediaType": oci::OCI_CONFIG, "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": oci::OCI_LAYER_GZIP, "digest": digest(&layer), "size": layer.len()}]
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let raw = RawDocument {
            digest: digest(&bytes),
            media_type: oci::OCI_MANIFEST.to_owned(),
            bytes,
        };
        store.write(&raw.digest, &raw.bytes).unwrap();
        let parsed = serde_json::from_value(manifest).unwrap();
        (raw, parsed)
    }

    fn skopeo(args: &[&str]) -> String {
        let out = resource_protocol::process::output_checked(
            resource_protocol::process::command("skopeo", Path::new("/")).args(args),
        )
        .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn docker_archive_loads_in_skopeo_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let (manifest, parsed) = tiny_image(&store);
        let image_tar = dir.path().join("image.tar");
        write_docker_archive(
            &image_tar,
            &store,
            &manifest,
            &parsed,
            "127.0.0.1:5000/app:v1",
        )
        .unwrap();
        let image_tar = image_tar.display().to_string();

        let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
            "inspect",
            &format!("docker-archive:{image_tar}"),
        ]))
        .unwrap();
        assert_eq!(inspect["Env"], serde_json::json!(["PATH=/bin"]));
        assert_eq!(inspect["Labels"], serde_json::json!({"a": "b"}));
        // As an oci-archive, the manifest is ours, byte for byte.
        let raw = skopeo(&["inspect", "--raw", &format!("oci-archive:{image_tar}")]);
        assert_eq!(raw.as_bytes(), manifest.bytes.as_slice());
        // skopeo copies it into a layout whose layer is the one we wrote.
        let copied = dir.path().join("copied");
        skopeo(&[
            "copy",
            &format!("docker-archive:{image_tar}"),
            &format!("oci:{}:x", copied.display()),
        ]);
        let mut layer = Vec::new();
        let copied_manifest: serde_json::Value = serde_json::from_str(&skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:x", copied.display()),
        ]))
        .unwrap();
        let layer_digest = copied_manifest["layers"][0]["digest"].as_str().unwrap();
        File::open(
            BlobStore::new(copied.join("blobs"))
                .path(layer_digest)
                .unwrap(),
        )
        .unwrap()
        .read_to_end(&mut layer)
        .unwrap();
        let mut listing = tar::Archive::new(flate2::read::GzDecoder::new(layer.as_slice()));
        let names: Vec<String> = listing
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["hello.txt"]);
    }

    #[test]
    fn oci_layout_wraps_a_single_image_and_keeps_an_index_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("oci");
        let store = BlobStore::new(layout.join("blobs"));
        let (manifest, _) = tiny_image(&store);
        write_oci_layout(&layout, &manifest, "v1").unwrap();
        assert_eq!(
            fs::read_to_string(layout.join("single-image-digest")).unwrap(),
            manifest.digest
        );
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", layout.display())]);
        assert_eq!(raw.as_bytes(), manifest.bytes.as_slice());

        // An index: index.json is the index as fetched, byte for byte.
        let index_bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            oci::OCI_INDEX,
            oci::OCI_MANIFEST,
            manifest.digest,
            manifest.bytes.len()
        );
        let index = RawDocument {
            digest: digest(index_bytes.as_bytes()),
            media_type: oci::OCI_INDEX.to_owned(),
            bytes: index_bytes.clone().into_bytes(),
        };
        let layout2 = dir.path().join("oci2");
        fs::create_dir_all(&layout2).unwrap();
        let copy = resource_protocol::process::output_checked(
            resource_protocol::process::command("cp", dir.path()).args([
                "-r",
                "oci/blobs",
                "oci2/",
            ]),
        );
        copy.unwrap();
        write_oci_layout(&layout2, &index, "v1").unwrap();
        assert_eq!(
            fs::read_to_string(layout2.join("index.json")).unwrap(),
            index_bytes
        );
        assert!(!layout2.join("single-image-digest").exists());
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{}", layout2.display())]);
        assert_eq!(raw.as_bytes(), manifest.bytes.as_slice());
    }

    #[test]
    fn metadata_and_labels() {
        let cases = [
            (
                serde_json::json!({"config": {"Env": ["A=1"], "User": "me", "Cmd": ["a"], "Entrypoint": ["/e"], "Labels": {"l": "v"}}}),
                r#"{"env":["A=1"],"user":"me","cmd":["a"],"entrypoint":["/e"]}"#,
                r#"{"l":"v"}"#,
            ),
            (
                serde_json::json!({"config": {"Env": null}}),
                r#"{"env":[],"user":"","cmd":[],"entrypoint":[]}"#,
                "{}",
            ),
            (
                serde_json::json!({}),
                r#"{"env":[],"user":"","cmd":[],"entrypoint":[]}"#,
                "{}",
            ),
        ];
        for (config, metadata, labels) in cases {
            let dir = tempfile::tempdir().unwrap();
            let config: ImageConfig = serde_json::from_value(config).unwrap();
            write_metadata_json(dir.path(), &config).unwrap();
            write_labels_json(dir.path(), &config).unwrap();
            assert_eq!(
                fs::read_to_string(dir.path().join("metadata.json")).unwrap(),
                metadata
            );
            assert_eq!(
                fs::read_to_string(dir.path().join("labels.json")).unwrap(),
                labels
            );
        }
    }
}
