//! Integration tests of `git-resource`: the real binary, driven through the protocol.

mod bad_input;
mod check;
mod get;
mod lfs;
mod put;
mod signature;
mod support;
mod transport;
mod tunnel;
