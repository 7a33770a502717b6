//! `tributary`: the reference orchestrator's command line.
//!
//! The pipeline model (issue 8) and the engine that runs pipelines (issue 9) are filled in
//! later; today the binary only names what it will do.

use clap::Parser;

/// Runs Concourse pipelines on one machine.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about)]
enum Cli {
    /// Parse, interpolate and validate a pipeline.
    Validate {
        /// The pipeline file.
        pipeline: std::path::PathBuf,
    },
    /// Run a pipeline until nothing more triggers.
    Run {
        /// The pipeline file.
        pipeline: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let what = match cli {
        Cli::Validate { .. } => "validate",
        Cli::Run { .. } => "run",
    };
    eprintln!("error: tributary {what} is not implemented yet");
    std::process::ExitCode::from(3)
}
