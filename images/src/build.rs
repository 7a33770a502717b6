//! Builds the images of several resource types (in parallel, one thread per type) into an
//! output directory: `<type>/` (OCI layout), `<type>.oci-archive.tar`, `<type>.docker-archive.tar`,
//! `<type>.base.tar` (the image's files but the binary, for `resources/<type>/Containerfile`),
//! and `images.json`, a summary naming each image's digest and sizes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use resource_protocol::process::{ProcessError, command, output_checked};

use crate::archive::{write_docker_archive, write_oci_archive};
use crate::layer::write_tar;
use crate::layout::{ImageMeta, LayoutError, write_layout};
use crate::rootfs::{RESOURCE_DIR, Rootfs, RootfsError, RootfsOptions, collect};
use crate::types::ResourceType;

/// Everything a build needs; see `images build --help` for the defaults.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Directory holding the `<type>-resource` binaries.
    pub binaries: PathBuf,
    /// The types to build.
    pub types: Vec<ResourceType>,
    /// Every mtime and the config's `created` (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: u64,
    /// `org.opencontainers.image.version`, also the tag.
    pub version: String,
    /// `org.opencontainers.image.revision`.
    pub revision: String,
    /// `org.opencontainers.image.source`.
    pub source: String,
    /// `org.opencontainers.image.licenses`.
    pub licenses: String,
    /// Name prefix of the docker archive's tag: `<prefix>/<type>-resource:<version>`.
    pub repo_prefix: String,
    /// The CA bundle copied into every image.
    pub ca_bundle: PathBuf,
    /// Strip the binaries' symbols before packing them.
    pub strip: bool,
}

/// One built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The resource type's name.
    pub type_name: String,
    /// The tag (`org.opencontainers.image.ref.name` in the layout).
    pub tag: String,
    /// The OCI layout directory.
    pub layout: PathBuf,
    /// The `oci-archive` tarball.
    pub oci_archive: PathBuf,
    /// The `docker-archive` tarball.
    pub docker_archive: PathBuf,
    /// The manifest's digest: the image's identity in a registry.
    pub manifest_digest: String,
    /// Manifest + config + layer bytes: what a registry stores and a pull transfers.
    pub compressed_size: u64,
    /// The uncompressed layer's size (the unpacked rootfs, roughly).
    pub uncompressed_size: u64,
    /// How long this image took to assemble, in milliseconds (not part of any output blob).
    pub millis: u128,
}

/// Why building an image failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Collecting the image's files failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// Writing the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Writing an archive or moving outputs into place failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A build thread panicked.
    #[error("the build thread panicked")]
    Panicked,
}

/// A failed image, named.
#[derive(Debug, thiserror::Error)]
#[error("image {image}")]
pub struct ImageError {
    /// The resource type.
    pub image: String,
    /// What failed.
    #[source]
    pub source: BuildError,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// Writes `rootfs` without the resource binary as a plain tar: what the Containerfile `ADD`s
/// before it `COPY`s the binary (a `COPY` cannot make symlinks or a mode-1777 `/tmp`).
fn write_base_tar(
    rootfs: &Rootfs,
    resource_type: &ResourceType,
    mtime: u64,
    out: &Path,
) -> io::Result<()> {
    let mut base = rootfs.clone();
    base.remove(&format!("{RESOURCE_DIR}/{}", resource_type.binary_name()));
    let partial = out.with_extension("partial");
    let writer = io::BufWriter::new(fs::File::create(&partial)?);
    write_tar(&base, mtime, writer)?
        .into_inner()
        .map_err(|e| e.into_error())?;
    fs::rename(&partial, out)
}

/// The commit checked out in `dir` (`git rev-parse HEAD`).
pub fn git_revision(dir: &Path) -> Result<String, ProcessError> {
    let output = output_checked(command("git", dir).args(["rev-parse", "HEAD"]))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Builds every image in `options.types`, writes `images.json`, and returns the images in
/// `options.types` order. Stops at the first failure (other threads finish their image).
pub fn build_images(options: &BuildOptions) -> Result<Vec<BuiltImage>, ImageError> {
    let general = |source| ImageError {
        image: "*".into(),
        source,
    };
    fs::create_dir_all(&options.out)
        .map_err(io_err(format!("create {}", options.out.display())))
        .map_err(general)?;
    let results: Vec<Result<BuiltImage, ImageError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = options
            .types
            .iter()
            .map(|resource_type| {
                let handle = scope.spawn(move || build_image(resource_type, options));
                (resource_type, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(resource_type, handle)| {
                handle
                    .join()
                    .unwrap_or(Err(BuildError::Panicked))
                    .map_err(|source| ImageError {
                        image: resource_type.name.to_owned(),
                        source,
                    })
            })
            .collect()
    });
    let images = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let summary: Vec<_> = images
        .iter()
        .map(|image| {
            serde_json::json!({
                "type": image.type_name,
                "tag": image.tag,
                "layout": image.layout,
                "oci_archive": image.oci_archive,
                "docker_archive": image.docker_archive,
                "manifest_digest": image.manifest_digest,
                "compressed_size": image.compressed_size,
                "uncompressed_size": image.uncompressed_size,
            })
        })
        .collect();
    let summary_path = options.out.join("images.json");
    let summary = serde_json::to_vec_pretty(&summary).map_err(|e| {
        general(BuildError::Io {
            what: "images.json".into(),
            source: io::Error::other(e),
        })
    })?;
    fs::write(&summary_path, summary)
        .map_err(io_err(format!("write {}", summary_path.display())))
        .map_err(general)?;
    Ok(images)
}

fn build_image(
    resource_type: &ResourceType,
    options: &BuildOptions,
) -> Result<BuiltImage, BuildError> {
    let started = Instant::now();
    let name = resource_type.name;
    let scratch = tempfile::Builder::new()
        .prefix(&format!(".{name}.scratch"))
        .tempdir_in(&options.out)
        .map_err(io_err("create scratch directory"))?;
    let rootfs = collect(
        resource_type,
        &RootfsOptions {
            binaries: &options.binaries,
            ca_bundle: &options.ca_bundle,
            strip: options.strip,
            scratch: scratch.path(),
        },
    )?;
    let meta = ImageMeta {
        title: resource_type.binary_name(),
        description: resource_type.description.to_owned(),
        version: options.version.clone(),
        revision: options.revision.clone(),
        source: options.source.clone(),
        licenses: options.licenses.clone(),
        created: options.source_date_epoch,
        ref_name: options.version.clone(),
    };

    let base = options.out.join(format!("{name}.base.tar"));
    write_base_tar(&rootfs, resource_type, options.source_date_epoch, &base)
        .map_err(io_err(format!("write {}", base.display())))?;

    // Written beside the final place, then swapped in, so a failed build leaves the old one.
    let staged = scratch.path().join("layout");
    let mut layout = write_layout(&staged, &rootfs, &meta)?;
    let oci_archive = options.out.join(format!("{name}.oci-archive.tar"));
    write_oci_archive(&layout, options.source_date_epoch, &oci_archive)
        .map_err(io_err(format!("write {}", oci_archive.display())))?;
    let docker_archive = options.out.join(format!("{name}.docker-archive.tar"));
    let repo_tag = format!(
        "{}/{}:{}",
        options.repo_prefix,
        resource_type.binary_name(),
        options.version
    );
    write_docker_archive(
        &layout,
        &repo_tag,
        options.source_date_epoch,
        scratch.path(),
        &docker_archive,
    )
    .map_err(io_err(format!("write {}", docker_archive.display())))?;
    let final_layout = options.out.join(name);
    if final_layout.exists() {
        fs::remove_dir_all(&final_layout)
            .map_err(io_err(format!("remove old {}", final_layout.display())))?;
    }
    fs::rename(&staged, &final_layout)
        .map_err(io_err(format!("move layout to {}", final_layout.display())))?;
    layout.dir = final_layout;

    Ok(BuiltImage {
        type_name: name.to_owned(),
        tag: options.version.clone(),
        compressed_size: layout.manifest_size + layout.config.len() as u64 + layout.layer.size,
        uncompressed_size: layout.layer.uncompressed_size,
        manifest_digest: layout.manifest_digest,
        layout: layout.dir,
        oci_archive,
        docker_archive,
        millis: started.elapsed().as_millis(),
    })
}
