//! Integration tests of `mock-resource`: the real binary, driven through the protocol.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod operations;
mod support;
