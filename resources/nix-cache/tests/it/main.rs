//! Integration tests of `nix-cache-resource`: the real binary, driven through the protocol,
//! against real Nix 2.8 and nginx.
// Helpers outside #[test] functions unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

mod attic;
mod bad_input;
mod faults;
mod nar;
mod negative;
mod plain;
mod signing;
mod support;
