//! Integration tests of `registry-image-resource`: the real binary, driven through the protocol.

mod bad_input;
mod check;
mod faults;
mod get;
mod images;
mod put;
mod tarball;
