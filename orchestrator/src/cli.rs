//! The command line: argument parsing, output, and the one place that picks the exit code.
//!
//! Exit codes: 0 ok, 1 a build failed, 2 a build errored, 3 bad input (including a pipeline
//! that does not validate). Diagnostics go to stderr; stdout carries only the answer (a graph).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, ValueEnum};

use crate::engine::commands;
use crate::graph;
use crate::load::{self, Loaded};
use crate::vars::{StaticVars, VarOptions};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: bad input (unreadable or invalid pipeline, bad flags, not implemented).
pub const EXIT_BAD_INPUT: u8 = 3;

/// Runs Concourse pipelines on one machine.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about)]
pub enum Cli {
    /// Parse, interpolate static vars and validate pipelines.
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// Print one JSON object per pipeline on stdout (file, valid, diagnostics).
        #[arg(long)]
        json: bool,
        /// Static vars.
        #[command(flatten)]
        vars: VarFlags,
    },
    /// Print the job/resource graph.
    Graph {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Static vars.
        #[command(flatten)]
        vars: VarFlags,
    },
    /// Run a pipeline until nothing more triggers.
    ///
    /// The first Ctrl-C (or SIGTERM) stops scheduling new builds, aborts the builds of
    /// `interruptible: true` jobs and lets the others finish; a second aborts every build.
    Run(commands::RunArgs),
    /// One manual build of a job.
    Trigger(commands::TriggerArgs),
    /// Run one task locally, like `fly execute`.
    Execute(commands::ExecuteArgs),
    /// Check one resource and print the versions found.
    Check(commands::CheckArgs),
    /// Build history.
    Builds(commands::BuildsArgs),
    /// A build's log.
    Logs(commands::LogsArgs),
    /// A resource's versions, newest first.
    Versions(commands::VersionsArgs),
}

/// `-l`, `-v`, `-y`.
#[derive(Debug, Args, Clone, Default)]
pub struct VarFlags {
    /// A YAML file of vars (repeatable; later files win).
    #[arg(short = 'l', long = "load-vars-from", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A string var `name=value` (wins over files).
    #[arg(short = 'v', long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// A YAML var `name=yaml` (wins over files and `-v`).
    #[arg(short = 'y', long = "yaml-var", value_name = "NAME=YAML")]
    pub yaml_vars: Vec<String>,
}

impl VarFlags {
    fn options(&self) -> VarOptions {
        VarOptions {
            files: self.files.clone(),
            vars: self.vars.clone(),
            yaml_vars: self.yaml_vars.clone(),
        }
    }
}

/// `graph --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A standalone SVG.
    Svg,
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli))
}

fn report(loaded: &Loaded) {
    let mut err = std::io::stderr().lock();
    for d in &loaded.diagnostics {
        let _ = writeln!(err, "{d}");
    }
}

fn static_vars(flags: &VarFlags) -> Option<StaticVars> {
    match StaticVars::load(&flags.options()) {
        Ok(vars) => Some(vars),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    match cli {
        Cli::Validate {
            pipelines,
            json,
            vars,
        } => {
            let Some(vars) = static_vars(&vars) else {
                return EXIT_BAD_INPUT;
            };
            let mut code = EXIT_OK;
            for path in &pipelines {
                let loaded = load::load_file(path, &vars);
                if json {
                    let line = validation_json(path, &loaded).to_string();
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{line}").is_err() {
                        return EXIT_BAD_INPUT;
                    }
                } else {
                    report(&loaded);
                }
                if loaded.has_errors() {
                    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
                    eprintln!("{}: invalid ({errors} errors)", path.display());
                    code = EXIT_BAD_INPUT;
                } else {
                    let p = &loaded.pipeline;
                    eprintln!(
                        "{}: valid ({} jobs, {} resources, {} warnings)",
                        path.display(),
                        p.jobs.len(),
                        p.resources.len(),
                        loaded.warnings().count()
                    );
                }
            }
            code
        }
        Cli::Graph {
            pipeline,
            format,
            vars,
        } => {
            let Some(vars) = static_vars(&vars) else {
                return EXIT_BAD_INPUT;
            };
            let loaded = load::load_file(&pipeline, &vars);
            report(&loaded);
            if loaded.has_errors() {
                return EXIT_BAD_INPUT;
            }
            let g = graph::build(&loaded.pipeline);
            let text = match format {
                GraphFormat::Dot => graph::to_dot(&g),
                GraphFormat::Svg => graph::to_svg(&g),
            };
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => EXIT_OK,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
                Err(e) => {
                    eprintln!("error: writing the graph: {e}");
                    EXIT_BAD_INPUT
                }
            }
        }
        Cli::Run(args) => commands::run(args),
        Cli::Trigger(args) => commands::trigger(args),
        Cli::Execute(args) => commands::execute(args),
        Cli::Check(args) => commands::check(args),
        Cli::Builds(args) => commands::builds(args),
        Cli::Logs(args) => commands::logs(args),
        Cli::Versions(args) => commands::versions(args),
    }
}

/// The `validate --json` shape (version 1): `{"version":1,"file","valid","diagnostics":[{
/// "severity","file","line","column","message"}]}`.
fn validation_json(path: &std::path::Path, loaded: &Loaded) -> serde_json::Value {
    let diagnostics: Vec<serde_json::Value> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            serde_json::json!({
                "severity": if d.is_error() { "error" } else { "warning" },
                "file": &*d.loc.file,
                "line": d.loc.line,
                "column": d.loc.col,
                "message": d.message,
            })
        })
        .collect();
    serde_json::json!({
        "version": 1,
        "file": path.display().to_string(),
        "valid": !loaded.has_errors(),
        "diagnostics": diagnostics,
    })
}
