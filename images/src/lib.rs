//! `images`: assembles one reproducible OCI image per resource type, with no Docker daemon.
//!
//! An image is one deterministic layer (the multi-call binary under `/opt/resource`, the shared
//! libraries it needs if it is dynamic, a CA bundle, `/etc/passwd`, `/etc/group`, `/tmp`), an image
//! config and a manifest, written as an OCI image layout, an `oci-archive` and a `docker-archive`.
//! Two builds from the same inputs give byte-identical outputs: nothing here may read the clock,
//! the host's user names, file mtimes or hash-map iteration order into an output.

pub mod archive;
pub mod build;
pub mod digest;
pub mod layer;
pub mod layout;
pub mod push;
pub mod rootfs;
pub mod types;

pub use build::{BuildOptions, BuiltImage, build_images};
