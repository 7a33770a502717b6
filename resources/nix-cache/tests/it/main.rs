//! Integration tests of `nix-cache-resource`: the real binary, driven through the protocol.

mod bad_input;
