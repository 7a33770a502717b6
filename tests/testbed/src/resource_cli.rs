//! Running a built resource binary the way Concourse does: `check`, `in DEST` or `out SRC` with
//! a JSON request on stdin, collecting the exit code, the answer and the log.
//!
//! Only the calling crate knows where its binary is, so tests pass
//! `env!("CARGO_BIN_EXE_<name>")` in:
//!
//! ```no_run
//! use testbed::resource_cli::ResourceCli;
//!
//! let cli = ResourceCli::new("/path/to/time-resource").env("TZ", "UTC");
//! let run = cli.run(&["check"], &serde_json::json!({"source": {}}));
//! assert_eq!(run.code, 0, "{run:?}");
//! ```

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// How long a run may take by default before the binary is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one run of a resource binary produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (`-1` when a signal ended the process).
    pub code: i32,
    /// The answer parsed as JSON; `Null` when stdout was empty. A non-empty stdout that is not
    /// JSON fails the test: stdout carries only the answer.
    pub stdout: Value,
    /// stdout as written (for checks that no secret or stray text reached it).
    pub stdout_text: String,
    /// The log.
    pub stderr: String,
}

impl Run {
    /// The answer of a successful run; panics with the log when the run failed.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "failed: {}", self.stderr);
        self.stdout.clone()
    }

    /// The `key` of each version a successful `check` answered, oldest first; panics unless the
    /// run succeeded, answered an array, and every version holds only `key`, as a string.
    pub fn versions_of(&self, key: &str) -> Vec<String> {
        assert_eq!(self.code, 0, "check failed: {self:?}");
        let versions = self
            .stdout
            .as_array()
            .unwrap_or_else(|| panic!("check answered no array: {}", self.stdout_text));
        versions
            .iter()
            .map(|v| {
                let only = v
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get(key))
                    .and_then(Value::as_str);
                only.unwrap_or_else(|| panic!("versions hold only the {key}: {v}"))
                    .to_owned()
            })
            .collect()
    }

    /// Asserts that the run failed and that its log contains `needle`.
    pub fn failed_with(&self, needle: &str) {
        assert_ne!(self.code, 0, "unexpected success: {}", self.stdout_text);
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr: {}",
            self.stderr
        );
    }
}

/// How to run one resource binary: its path, environment changes and timeout.
///
/// By default `TRIBUTARY_LOG` is removed (the binary logs at its default level whatever the
/// developer's shell says) and a run may take [`DEFAULT_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct ResourceCli {
    binary: PathBuf,
    clear: bool,
    removed: Vec<OsString>,
    added: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl ResourceCli {
    /// Runs `binary` (a test's `env!("CARGO_BIN_EXE_…")`).
    pub fn new(binary: impl Into<PathBuf>) -> ResourceCli {
        ResourceCli {
            binary: binary.into(),
            clear: false,
            removed: vec!["TRIBUTARY_LOG".into()],
            added: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets `name` to `value` in the binary's environment (after any clearing or removal).
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> ResourceCli {
        self.added.push((name.into(), value.into()));
        self
    }

    /// [`ResourceCli::env`] for each pair.
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> ResourceCli
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        for (name, value) in vars {
            self = self.env(name, value);
        }
        self
    }

    /// Removes `name` from the environment the binary inherits.
    pub fn env_remove(mut self, name: impl Into<OsString>) -> ResourceCli {
        self.removed.push(name.into());
        self
    }

    /// Starts the binary with an empty environment (plus what [`ResourceCli::env`] adds).
    pub fn env_clear(mut self) -> ResourceCli {
        self.clear = true;
        self
    }

    /// Kills the binary when a run takes longer than `timeout` (its `code` is then `-1`).
    pub fn timeout(mut self, timeout: Duration) -> ResourceCli {
        self.timeout = timeout;
        self
    }

    /// Runs the binary with `args` and `request` on stdin.
    ///
    /// # Panics
    /// When the binary cannot be started, or stdout is neither empty nor JSON.
    pub fn run(&self, args: &[&str], request: &Value) -> Run {
        let mut command = assert_cmd::Command::new(&self.binary);
        command.args(args);
        if self.clear {
            command.env_clear();
        }
        for name in &self.removed {
            command.env_remove(name);
        }
        for (name, value) in &self.added {
            command.env(name, value);
        }
        let output = command
            .write_stdin(request.to_string())
            .timeout(self.timeout)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.binary.display()));
        let stdout_text = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let stdout = if output.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
                panic!("stdout is not JSON ({e}): {stdout_text:?}; stderr: {stderr}")
            })
        };
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout,
            stdout_text,
            stderr,
        }
    }
}

/// Runs `binary` with `args` and `request` on stdin, with [`ResourceCli::new`]'s defaults.
pub fn run(binary: impl Into<PathBuf>, args: &[&str], request: &Value) -> Run {
    ResourceCli::new(binary).run(args, request)
}
