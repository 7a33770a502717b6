//! `testbed`: the real servers and fixtures Tributary's tests run against.
//!
//! Every server starts on `127.0.0.1` with a free port in its own temp dir and is stopped when
//! its handle drops. A missing program is a test failure naming the Debian package to install,
//! never a skip. Fixtures (for APIs nobody ships a server for) mimic the real API's shapes; they
//! are never mocks of our own code.

pub mod bad_input;
pub mod fixtures;
pub mod git;
pub mod nginx;
pub mod nix;
pub mod oci;
pub mod registry;
pub mod tls;
pub mod tools;
