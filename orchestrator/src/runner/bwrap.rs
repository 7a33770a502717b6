//! The bubblewrap runner: a fresh writable rootfs, the build directory and mounts bound in, a
//! PID namespace, a clean environment, the default capability set unless privileged (all of
//! them then). Fast; no resource limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rootfs::WritableRoot;
use super::{
    BoxFuture, Cancel, DEFAULT_GRACE, Finished, LogSink, ProcessSpec, RunError, Runner,
    container_cwd,
};

/// Runs processes under `bwrap`.
#[derive(Debug)]
pub struct BwrapRunner {
    scratch: PathBuf,
    /// SIGTERM-to-SIGKILL grace period.
    pub grace: Duration,
}

impl BwrapRunner {
    /// A runner keeping per-container layers under `state_dir/containers`.
    pub fn new(state_dir: &Path) -> Self {
        BwrapRunner {
            scratch: state_dir.join("containers"),
            grace: DEFAULT_GRACE,
        }
    }
}

/// The `bwrap` arguments for `spec` with its writable root at `root`.
pub fn bwrap_args(spec: &ProcessSpec, root: &Path) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&["--bind", &root.to_string_lossy(), "/"]);
    push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    push(&["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]);
    push(&["--ro-bind-try", "/etc/hosts", "/etc/hosts"]);
    push(&["--bind", &spec.work_host.to_string_lossy(), &spec.work_dest]);
    for mount in &spec.mounts {
        let flag = if mount.readonly {
            "--ro-bind"
        } else {
            "--bind"
        };
        push(&[flag, &mount.host.to_string_lossy(), &mount.dest]);
    }
    push(&["--unshare-pid", "--die-with-parent", "--clearenv"]);
    for (key, value) in &spec.env {
        push(&["--setenv", key, value]);
    }
    let user = spec
        .user
        .as_deref()
        .and_then(|u| super::resolve_user(spec.rootfs.as_deref(), u))
        .filter(|(uid, _)| *uid != 0);
    if let Some((uid, gid)) = user {
        push(&[
            "--unshare-user",
            "--uid",
            &uid.to_string(),
            "--gid",
            &gid.to_string(),
        ]);
    }
    if spec.privileged {
        push(&["--cap-add", "ALL"]);
    } else if rustix::process::geteuid().is_root() {
        // bwrap run by root keeps every capability unless told otherwise (run by a user, it
        // keeps none): an unprivileged container gets the default set, as under runc, and a
        // process running as another user none (bwrap would make them ambient).
        push(&["--cap-drop", "ALL"]);
        if user.is_none() {
            for cap in super::runc::within_bounding_set(super::DEFAULT_CAPABILITIES) {
                push(&["--cap-add", cap]);
            }
        }
    }
    push(&["--chdir", &container_cwd(spec), "--", &spec.path]);
    args.extend(spec.args.iter().cloned());
    args
}

impl Runner for BwrapRunner {
    fn name(&self) -> &'static str {
        "bwrap"
    }

    fn run<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        log: LogSink,
        cancel: Cancel,
    ) -> BoxFuture<'a, Result<Finished, RunError>> {
        Box::pin(async move {
            let Some(rootfs) = &spec.rootfs else {
                return super::host::HostRunner { grace: self.grace }
                    .run(spec, log, cancel)
                    .await;
            };
            let root = WritableRoot::new(rootfs, &self.scratch)
                .map_err(|e| RunError::Prepare(format!("writable rootfs: {e}")))?;
            let mut command = resource_protocol::process::async_command("bwrap", &spec.work_host);
            command.args(bwrap_args(spec, root.path())).env_clear();
            let result = super::supervise(command, spec, log, cancel, self.grace).await;
            drop(root);
            result
        })
    }
}
