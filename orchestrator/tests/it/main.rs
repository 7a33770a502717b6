//! Integration tests of the tributary crate.
