//! The two tarball forms of an image layout: `oci-archive` (the layout directory as a tar, what
//! `skopeo copy oci-archive:` and our registry-image `out` read) and `docker-archive` (the
//! `docker save` format that `docker load` reads). Both are written as deterministically as
//! layers are.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use crate::digest::{DigestWriter, canonical_json};
use crate::layer::write_tar;
use crate::layout::WrittenLayout;
use crate::rootfs::{Contents, Entry, Rootfs};

fn file(path: &Path) -> Entry {
    Entry::File {
        mode: 0o644,
        contents: Contents::File(path.to_owned()),
    }
}

fn write_archive(rootfs: &Rootfs, mtime: u64, out: &Path) -> io::Result<()> {
    let partial = out.with_extension("partial");
    let writer = io::BufWriter::new(File::create(&partial)?);
    let writer = write_tar(rootfs, mtime, writer)?;
    writer.into_inner().map_err(|e| e.into_error())?;
    fs::rename(&partial, out)
}

/// Writes the layout `layout` as an `oci-archive` tarball at `out`.
pub fn write_oci_archive(layout: &WrittenLayout, mtime: u64, out: &Path) -> io::Result<()> {
    let mut rootfs = Rootfs::default();
    rootfs.insert("oci-layout", file(&layout.dir.join("oci-layout")));
    rootfs.insert("index.json", file(&layout.dir.join("index.json")));
    for digest in [
        &layout.manifest_digest,
        &layout.config_digest,
        &layout.layer.digest,
    ] {
        let blob = layout.blob_path(digest);
        let relative = blob.strip_prefix(&layout.dir).map_err(io::Error::other)?;
        rootfs.insert(&relative.to_string_lossy(), file(&blob));
    }
    write_archive(&rootfs, mtime, out)
}

/// Writes the layout `layout` as a `docker-archive` tarball at `out`, tagged `repo_tag`
/// (`name:tag`). `scratch` holds the uncompressed layer while the archive is written.
pub fn write_docker_archive(
    layout: &WrittenLayout,
    repo_tag: &str,
    mtime: u64,
    scratch: &Path,
    out: &Path,
) -> io::Result<()> {
    let hex = |digest: &str| digest.split_once(':').map_or(digest, |(_, h)| h).to_owned();
    let layer_tar = scratch.join("layer.tar");
    let mut plain = DigestWriter::new(io::BufWriter::new(File::create(&layer_tar)?));
    io::copy(
        &mut flate2::read::GzDecoder::new(io::BufReader::new(File::open(
            layout.blob_path(&layout.layer.digest),
        )?)),
        &mut plain,
    )?;
    let (_, diff_id, _) = plain.finish()?;
    if diff_id != layout.layer.diff_id {
        return Err(io::Error::other(format!(
            "layer {} decompresses to {diff_id}, not {}",
            layout.layer.digest, layout.layer.diff_id
        )));
    }

    let config_name = format!("{}.json", hex(&layout.config_digest));
    let layer_name = format!("{}/layer.tar", hex(&layout.layer.diff_id));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": [layer_name],
    }]);
    let manifest = canonical_json(&manifest).map_err(io::Error::other)?;

    let mut rootfs = Rootfs::default();
    rootfs.insert(
        "manifest.json",
        Entry::File {
            mode: 0o644,
            contents: Contents::Bytes(manifest),
        },
    );
    rootfs.insert(
        &config_name,
        Entry::File {
            mode: 0o644,
            contents: Contents::Bytes(layout.config.clone()),
        },
    );
    rootfs.insert(&layer_name, file(&layer_tar));
    let result = write_archive(&rootfs, mtime, out);
    fs::remove_file(&layer_tar)?;
    result
}
