//! Self-tests of the test bed: each server starts and answers one real request.

// Helpers here are test code too: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used)]

mod docker;
mod git;
mod gpg;
mod lfs;
mod nix;
mod oci;
mod proxy;
mod registry;
mod resource_cli;
mod support;
