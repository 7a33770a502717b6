//! `tributary`: runs Concourse pipelines on one machine.
//!
//! This library holds the pipeline model and everything that reads it: `yaml` (a located YAML
//! tree), `vars` (`((vars))`, var files, redaction), `load` (text ⇒ typed `model`), `validate`,
//! `graph` (DOT/SVG) and the `cli`. It never runs resources itself: the engine (part 2) talks to
//! them only through the resource protocol.

#![deny(missing_docs)]

pub mod cli;
pub mod diag;
pub mod duration;
pub mod engine;
pub mod graph;
pub mod load;
pub mod model;
pub mod runner;
pub mod schedule;
pub mod state;
pub mod validate;
pub mod vars;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Loc, Severity};
pub use load::{Loaded, load_file, load_str};
pub use model::Pipeline;
pub use vars::{StaticVars, VarOptions};
