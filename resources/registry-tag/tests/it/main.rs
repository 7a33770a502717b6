//! Integration tests of `registry-tag-resource`: the real binary, driven through the protocol.

mod bad_input;
