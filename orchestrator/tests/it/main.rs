//! Integration tests of the tributary crate: one binary, one module per concern.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod base_images;
mod cli;
mod diagnostics;
mod examples;
mod model_api;
mod roundtrip;

use std::path::PathBuf;

use tributary::{Loaded, StaticVars, load_str};

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every example pipeline, sorted by name.
pub fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// Loads `text` as `p.yml` with no vars.
pub fn load(text: &str) -> Loaded {
    load_str(text, "p.yml", &StaticVars::default())
}

/// Diagnostics rendered as `file:line:col: severity: message`.
pub fn rendered(loaded: &Loaded) -> Vec<String> {
    loaded.diagnostics.iter().map(|d| d.to_string()).collect()
}
