//! The one place that spawns child processes.
//!
//! `clippy.toml` bans `Command::new` everywhere else. Commands made here always have an explicit
//! working directory, and [`output_checked`] turns a failed exit into an error that carries the
//! program name and the tail of its stderr, so a failing tool is never a silent `exit 1`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// How many bytes of a failed command's stderr an error keeps.
const STDERR_TAIL_BYTES: usize = 2000;

/// A child process that failed to start or exited unsuccessfully.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (not installed, not executable).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program's name.
        program: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program's name.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its stderr, on one line.
        stderr: String,
    },
}

/// A synchronous command for `program`, run in `cwd`.
#[allow(clippy::disallowed_methods)]
pub fn command(program: impl AsRef<OsStr>, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd);
    command
}

/// An async (tokio) command for `program`, run in `cwd`; killed if dropped while running.
#[allow(clippy::disallowed_methods)]
pub fn async_command(program: impl AsRef<OsStr>, cwd: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.current_dir(cwd).kill_on_drop(true);
    command
}

/// Runs `command` to completion, capturing output; a non-zero exit is a [`ProcessError`].
pub fn output_checked(command: &mut Command) -> Result<Output, ProcessError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ProcessError::Failed {
            program,
            status: output.status,
            stderr: stderr_tail(&output.stderr),
        })
    }
}

/// The last [`STDERR_TAIL_BYTES`] of `stderr`, lossily decoded and flattened to one line.
pub fn stderr_tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&stderr[start..])
        .trim()
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_program_and_stderr() {
        let dir = std::env::temp_dir();
        let ok = output_checked(command("sh", &dir).args(["-c", "echo hi"])).unwrap();
        assert_eq!(ok.stdout, b"hi\n");
        let err = output_checked(
            command("sh", &dir).args(["-c", "echo bad >&2; echo worse >&2; exit 3"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("sh failed (exit status: 3): bad worse"),
            "{err}"
        );
        let err = output_checked(&mut command("/nonexistent/tool", &dir))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot run /nonexistent/tool"), "{err}");
    }
}
