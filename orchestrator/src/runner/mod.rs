//! Running one process of a build: on the host, under bubblewrap, or in a runc container.
//!
//! Every runner implements [`Runner`]: it gets a [`ProcessSpec`] (program, env, a working
//! directory bound from the host, extra bind mounts, a rootfs), streams the child's output line
//! by line to a [`LogSink`], and honours a [`Cancel`] token: SIGTERM to the child's own process
//! group, a grace period, then SIGKILL. Children are spawned only through
//! `resource_protocol::process`. Runners know nothing about steps or resources.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub mod bwrap;
mod cancel;
pub mod host;
pub mod layout;
pub mod rootfs;
pub mod runc;

pub use cancel::Cancel;

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Where a child's output lines go.
pub type LogSink = Arc<dyn Fn(Stream, &str) + Send + Sync>;

/// A bind mount into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where it appears in the container (absolute).
    pub dest: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// `container_limits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// Memory in bytes.
    pub memory: Option<u64>,
}

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct ProcessSpec {
    /// The image's root filesystem (read-only; each run gets a fresh writable layer). `None`
    /// runs on the host whatever the runner.
    pub rootfs: Option<PathBuf>,
    /// The program (absolute, or relative to `dir`, or looked up in `PATH`).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The environment, exactly (nothing is inherited in a container).
    pub env: Vec<(String, String)>,
    /// The build directory on the host, bound at `work_dest` in the container.
    pub work_host: PathBuf,
    /// Where the build directory appears in the container, e.g. `/tmp/build/get`.
    pub work_dest: String,
    /// The working directory, relative to the build directory.
    pub dir: String,
    /// More bind mounts (caches, inputs); destinations under `work_dest` become symlinks on
    /// the host runner.
    pub mounts: Vec<Mount>,
    /// The user to run as (name or uid), `None` for the image's default.
    pub user: Option<String>,
    /// Privileged container (all capabilities).
    pub privileged: bool,
    /// Resource limits (runc only).
    pub limits: Limits,
    /// Bytes written to stdin, which is then closed.
    pub stdin: Vec<u8>,
    /// Collect stdout instead of logging it (a resource's answer).
    pub capture_stdout: bool,
    /// On the host only: run here instead of the build directory (resource binaries run in
    /// the pipeline's directory, so relative paths in a `source` mean the same as for the user).
    pub host_cwd: Option<PathBuf>,
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Its exit code (128 + signal when killed by one).
    pub exit_code: i32,
    /// Stdout, when captured.
    pub stdout: Vec<u8>,
    /// The last lines of stderr (for error messages).
    pub stderr_tail: String,
}

/// Why a process could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runtime or program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was started.
        program: String,
        /// Why not.
        source: std::io::Error,
    },
    /// Preparing the container failed.
    #[error("preparing the container: {0}")]
    Prepare(String),
    /// The process was cancelled (and killed).
    #[error("cancelled")]
    Cancelled,
}

/// A boxed future, so runners can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs processes.
pub trait Runner: Send + Sync + fmt::Debug {
    /// `host`, `bwrap` or `runc`.
    fn name(&self) -> &'static str;

    /// Runs `spec` to completion, streaming output to `log`; stops it when `cancel` fires.
    fn run<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        log: LogSink,
        cancel: Cancel,
    ) -> BoxFuture<'a, Result<Finished, RunError>>;
}

/// The container runtimes by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// No isolation.
    Host,
    /// bubblewrap.
    Bwrap,
    /// runc.
    Runc,
}

impl Runtime {
    /// Parses `host`, `bwrap` or `runc`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "host" => Runtime::Host,
            "bwrap" => Runtime::Bwrap,
            "runc" => Runtime::Runc,
            _ => return None,
        })
    }

    /// The runtime's name.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Host => "host",
            Runtime::Bwrap => "bwrap",
            Runtime::Runc => "runc",
        }
    }

    /// The best runtime that works here: runc (limits) when it runs as root, else bwrap,
    /// else the host.
    pub fn detect() -> Self {
        let works = |program: &str, arg: &str| {
            resource_protocol::process::command(program, Path::new("/"))
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if rustix::process::geteuid().is_root() && works("runc", "--version") {
            Runtime::Runc
        } else if works("bwrap", "--version") {
            Runtime::Bwrap
        } else {
            Runtime::Host
        }
    }

    /// A runner for this runtime keeping its state (bundles, layers) under `state_dir`.
    pub fn runner(self, state_dir: &Path) -> Arc<dyn Runner> {
        match self {
            Runtime::Host => Arc::new(host::HostRunner::default()),
            Runtime::Bwrap => Arc::new(bwrap::BwrapRunner::new(state_dir)),
            Runtime::Runc => Arc::new(runc::RuncRunner::new(state_dir)),
        }
    }
}

/// The capabilities of an unprivileged container, on every runtime: the default set of
/// containerd and Docker, which Concourse's workers give unprivileged containers too. A
/// privileged container gets every capability in our bounding set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// How long a cancelled child gets between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The directory inside the container where the process starts.
pub fn container_cwd(spec: &ProcessSpec) -> String {
    let dir = spec.dir.trim_matches('/');
    if dir.is_empty() || dir == "." {
        spec.work_dest.clone()
    } else {
        format!("{}/{dir}", spec.work_dest.trim_end_matches('/'))
    }
}

/// Spawns `command` in its own process group, feeds stdin, streams output, honours `cancel`.
/// `cleanup` runs after a kill (runc deletes its container there).
pub(crate) async fn supervise(
    mut command: tokio::process::Command,
    spec: &ProcessSpec,
    log: LogSink,
    cancel: Cancel,
    grace: Duration,
) -> Result<Finished, RunError> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    command
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let input = spec.stdin.clone();
    let feed = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A child that exits without reading its stdin is not an error here.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
        drop(stdin);
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let capture = spec.capture_stdout;
    let out_log = log.clone();
    let read_stdout = async move {
        let mut captured = Vec::new();
        if let Some(mut stdout) = stdout {
            if capture {
                let _ = stdout.read_to_end(&mut captured).await;
            } else {
                stream_lines(stdout, Stream::Stdout, &out_log).await;
            }
        }
        captured
    };
    let read_stderr = async move {
        let mut tail = std::collections::VecDeque::new();
        if let Some(stderr) = stderr {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log(Stream::Stderr, &line);
                tail.push_back(line);
                if tail.len() > 5 {
                    tail.pop_front();
                }
            }
        }
        Vec::from(tail).join(" ")
    };
    let io = async { tokio::join!(feed, read_stdout, read_stderr) };
    let mut cancel_wait = cancel.clone();
    let wait = async {
        tokio::select! {
            status = child.wait() => (status, false),
            () = cancel_wait.cancelled() => {
                kill_group(pid, rustix::process::Signal::TERM);
                match tokio::time::timeout(grace, child.wait()).await {
                    Ok(status) => (status, true),
                    Err(_) => {
                        kill_group(pid, rustix::process::Signal::KILL);
                        (child.wait().await, true)
                    }
                }
            }
        }
    };
    let ((status, cancelled), ((), stdout, stderr_tail)) = tokio::join!(wait, io);
    if cancelled {
        return Err(RunError::Cancelled);
    }
    let status = status.map_err(|source| RunError::Spawn { program, source })?;
    Ok(Finished {
        exit_code: exit_code(status),
        stdout,
        stderr_tail,
    })
}

async fn stream_lines(reader: impl tokio::io::AsyncRead + Unpin, stream: Stream, log: &LogSink) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log(stream, &line);
    }
}

fn kill_group(pid: Option<u32>, signal: rustix::process::Signal) {
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // The group may be gone already.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Resolves a user name or uid to (uid, gid) with the rootfs's `/etc/passwd`.
pub fn resolve_user(rootfs: Option<&Path>, user: &str) -> Option<(u32, u32)> {
    if let Ok(uid) = user.parse::<u32>() {
        return Some((uid, uid));
    }
    let passwd = std::fs::read_to_string(rootfs?.join("etc/passwd")).ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == user {
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests;
