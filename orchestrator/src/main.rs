//! `tributary`: the reference orchestrator's command line (thin glue over `tributary::cli`).

fn main() -> std::process::ExitCode {
    tributary::cli::main()
}
