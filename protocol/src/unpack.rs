//! Safe unpacking of archives into a destination directory.
//!
//! Every writer of a DEST (registry-image layers, the orchestrator's image cache) goes through
//! this module, which must never let an entry write outside the destination: no `..`
//! components, no absolute paths, no writes through symlinks that point outside, no hard links
//! to outside paths. Filled in by the registry-image work (issue 4).
