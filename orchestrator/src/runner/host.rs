//! The host runner: no isolation, the process runs in the build directory on the host.
//!
//! Bind mounts below the build directory become symlinks (writable: caches) or hard-linked
//! copies (read-only: put inputs); the environment is the
//! spec's plus the host's `PATH` and `HOME` when the spec has none. A rootfs is ignored.

use std::path::Path;
use std::time::Duration;

use super::{BoxFuture, Cancel, DEFAULT_GRACE, Finished, LogSink, ProcessSpec, RunError, Runner};

/// Runs processes directly on the host.
#[derive(Debug)]
pub struct HostRunner {
    /// SIGTERM-to-SIGKILL grace period.
    pub grace: Duration,
}

impl Default for HostRunner {
    fn default() -> Self {
        HostRunner {
            grace: DEFAULT_GRACE,
        }
    }
}

impl Runner for HostRunner {
    fn name(&self) -> &'static str {
        "host"
    }

    fn run<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        log: LogSink,
        cancel: Cancel,
    ) -> BoxFuture<'a, Result<Finished, RunError>> {
        Box::pin(async move {
            let prefix = spec.work_dest.trim_end_matches('/');
            for mount in &spec.mounts {
                if let Some(rel) = mount.dest.strip_prefix(prefix)
                    && rel.starts_with('/')
                {
                    let link = spec.work_host.join(rel.trim_start_matches('/'));
                    if !link.exists() {
                        if let Some(parent) = link.parent() {
                            std::fs::create_dir_all(parent)
                                .map_err(|e| RunError::Prepare(e.to_string()))?;
                        }
                        if mount.readonly {
                            // Read-only inputs: a tree of hard links (tools that walk
                            // directories often do not follow symlinks), a copy if that fails.
                            super::rootfs::link_tree(&mount.host, &link).map_err(|e| {
                                RunError::Prepare(format!("{}: {e}", link.display()))
                            })?;
                        } else {
                            std::os::unix::fs::symlink(&mount.host, &link).map_err(|e| {
                                RunError::Prepare(format!("{}: {e}", link.display()))
                            })?;
                        }
                    }
                }
            }
            let dir = spec.dir.trim_matches('/');
            let cwd = if let Some(cwd) = &spec.host_cwd {
                cwd.clone()
            } else if dir.is_empty() {
                spec.work_host.clone()
            } else {
                spec.work_host.join(dir)
            };
            // A relative program is relative to the working directory, as in a container.
            let program = if spec.path.contains('/') && !Path::new(&spec.path).is_absolute() {
                cwd.join(&spec.path).to_string_lossy().into_owned()
            } else {
                spec.path.clone()
            };
            let mut command = resource_protocol::process::async_command(&program, &cwd);
            command.args(&spec.args).env_clear();
            for inherited in ["PATH", "HOME"] {
                if !spec.env.iter().any(|(k, _)| k == inherited)
                    && let Some(value) = std::env::var_os(inherited)
                {
                    command.env(inherited, value);
                }
            }
            command.envs(spec.env.iter().map(|(k, v)| (k, v)));
            super::supervise(command, spec, log, cancel, self.grace).await
        })
    }
}
