//! `registry-client`: OCI distribution client shared by registry-image and registry-tag: auth, retries, CA certs, pagination.
//!
//! Being written (issues 4 and 5).
