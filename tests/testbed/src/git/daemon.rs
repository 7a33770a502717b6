//! `git daemon` serving every repo under a directory over `git://`, push enabled.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{git_program, hermetic_env};
use crate::tools::{START_TIMEOUT, ServerProcess, retry_start, temp_dir};

/// A running `git daemon`; killed (with its per-connection forks) when dropped.
pub struct GitDaemon {
    process: ServerProcess,
    addr: SocketAddr,
    base_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl GitDaemon {
    /// Serves the repos under `base_dir` (which the caller owns) on `git://127.0.0.1:PORT/`,
    /// with `receive-pack` enabled so tests can push.
    pub fn start(base_dir: &Path) -> GitDaemon {
        let git = git_program();
        let exec_path = super::git(base_dir, &["--exec-path"]);
        assert!(
            Path::new(&exec_path).join("git-daemon").exists(),
            "program git-daemon not found in {exec_path}: apt-get install git-daemon-run"
        );
        let dir = temp_dir("git-daemon");
        let log = dir.path().join("git-daemon.log");
        let (process, addr) = retry_start("git daemon", |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut command = resource_protocol::process::command(&git, dir.path());
            command
                .envs(hermetic_env())
                .arg("daemon")
                .arg("--reuseaddr")
                .arg("--informative-errors")
                .arg(format!("--base-path={}", base_dir.display()))
                .arg("--export-all")
                .arg("--enable=receive-pack")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(base_dir);
            let mut process = ServerProcess::spawn("git daemon", command, &log)?;
            process.wait_listening(addr, START_TIMEOUT)?;
            Ok((process, addr))
        });
        GitDaemon {
            process,
            addr,
            base_dir: base_dir.to_owned(),
            _dir: dir,
        }
    }

    /// `git://127.0.0.1:PORT/<repo>` for `repo` relative to the base dir (e.g. `r.git`).
    pub fn url_for(&self, repo: &str) -> String {
        format!("git://{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// The directory being served.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The last few KB of the daemon's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
