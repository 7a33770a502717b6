//! `resource-protocol`: the one crate that knows the Concourse resource protocol's wire format.
//!
//! Every resource binary in Tributary is a thin `main` over [`run`]: the harness reads the JSON
//! request from stdin, dispatches to the resource's `check`, `get` (`in`) or `put` (`out`),
//! writes exactly one JSON answer to stdout and reports failures as one line on stderr with a
//! documented [`ExitCode`]. Besides the wire types this crate holds what every resource needs
//! and must not write twice: strict request parsing, lenient booleans and numbers, Go's
//! duration syntax, the redacting [`Secret`] type, the build environment, process spawning and
//! safe unpacking.
//!
//! This crate must never print anything but the protocol answer on stdout.
#![deny(missing_docs)]

pub mod build_env;
pub mod duration;
pub mod harness;
pub mod lenient;
pub mod process;
pub mod secret;
pub mod timestamp;
pub mod unpack;
pub mod wire;

pub use build_env::BuildEnv;
pub use harness::{ExitCode, InvalidRequest, NotImplemented, Resource, run};
pub use secret::Secret;
pub use wire::{CheckRequest, InRequest, MetadataField, OutRequest, Response, Version};
