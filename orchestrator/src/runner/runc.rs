//! The runc runner: an OCI runtime bundle written by us (no terminal, host network, bind
//! mounts, env, cwd, user, memory/CPU limits, the default capability set unless privileged),
//! run with `runc run` in the foreground and deleted afterwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oci_spec::runtime::{
    LinuxCapabilities, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxResources,
    MountBuilder, Spec,
};

use super::rootfs::WritableRoot;
use super::{
    BoxFuture, Cancel, DEFAULT_GRACE, Finished, LogSink, ProcessSpec, RunError, Runner,
    container_cwd,
};

/// Runs processes with `runc`.
#[derive(Debug)]
pub struct RuncRunner {
    scratch: PathBuf,
    root: PathBuf,
    /// SIGTERM-to-SIGKILL grace period.
    pub grace: Duration,
}

impl RuncRunner {
    /// A runner keeping bundles under `state_dir/containers` and runc's state in
    /// `state_dir/runc`.
    pub fn new(state_dir: &Path) -> Self {
        RuncRunner {
            scratch: state_dir.join("containers"),
            root: state_dir.join("runc"),
            grace: DEFAULT_GRACE,
        }
    }
}

/// Every capability, in bit order (`CAP_CHOWN` is bit 0).
pub(crate) const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Those of `caps` in this process's bounding set: asking runc (or bwrap) for one outside it
/// fails with "unable to apply caps" when we run inside a container that lacks some.
pub(crate) fn within_bounding_set(caps: &[&'static str]) -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        });
    caps.iter()
        .copied()
        .filter(|cap| {
            let bit = ALL_CAPABILITIES.iter().position(|c| c == cap);
            bounding.is_none_or(|b| bit.is_some_and(|bit| b >> bit & 1 == 1))
        })
        .collect()
}

/// The capabilities of a privileged container: all of those in this process's bounding set
/// (as Docker does for `--privileged`).
fn privileged_capabilities() -> Vec<&'static str> {
    within_bounding_set(ALL_CAPABILITIES)
}

fn bind(source: &Path, dest: &str, readonly: bool) -> Result<oci_spec::runtime::Mount, RunError> {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec![
            "rbind".to_string(),
            if readonly { "ro" } else { "rw" }.to_string(),
        ])
        .build()
        .map_err(|e| RunError::Prepare(format!("mount {dest}: {e}")))
}

/// The OCI runtime config for `spec` with its writable root at `root`.
pub fn bundle_config(spec: &ProcessSpec, root: &Path) -> Result<Spec, RunError> {
    let prepare = |e: oci_spec::OciSpecError| RunError::Prepare(e.to_string());
    let mut config = Spec::default();
    config.set_hostname(Some("tributary".into()));
    config.set_root(Some(
        oci_spec::runtime::RootBuilder::default()
            .path(root)
            .readonly(false)
            .build()
            .map_err(prepare)?,
    ));
    let mut mounts = config.mounts().clone().unwrap_or_default();
    for file in ["/etc/resolv.conf", "/etc/hosts"] {
        if Path::new(file).exists() {
            mounts.push(bind(Path::new(file), file, true)?);
        }
    }
    mounts.push(bind(&spec.work_host, &spec.work_dest, false)?);
    for mount in &spec.mounts {
        mounts.push(bind(&mount.host, &mount.dest, mount.readonly)?);
    }
    config.set_mounts(Some(mounts));

    let mut process = config.process().clone().unwrap_or_default();
    process.set_terminal(Some(false));
    let mut argv = vec![spec.path.clone()];
    argv.extend(spec.args.iter().cloned());
    process.set_args(Some(argv));
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !spec.env.iter().any(|(k, _)| k == "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(container_cwd(spec)));
    let user = spec
        .user
        .as_deref()
        .and_then(|u| super::resolve_user(spec.rootfs.as_deref(), u));
    if let Some((uid, gid)) = user {
        process.user_mut().set_uid(uid);
        process.user_mut().set_gid(gid);
    }
    // Privileged: everything. Unprivileged: the default set, bounded; a process running as
    // another user than root holds none of them (as with Docker).
    let (bounding, held) = if spec.privileged {
        process.set_no_new_privileges(Some(false));
        let all = privileged_capabilities();
        (all.clone(), all)
    } else {
        let default = within_bounding_set(super::DEFAULT_CAPABILITIES);
        let as_root = user.is_none_or(|(uid, _)| uid == 0);
        (default.clone(), if as_root { default } else { Vec::new() })
    };
    let caps = serde_json::json!({
        "bounding": bounding, "effective": held, "inheritable": held, "permitted": held,
        "ambient": held,
    });
    let caps: LinuxCapabilities =
        serde_json::from_value(caps).map_err(|e| RunError::Prepare(e.to_string()))?;
    process.set_capabilities(Some(caps));
    config.set_process(Some(process));

    let mut linux = config.linux().clone().unwrap_or_default();
    let namespaces = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    linux.set_namespaces(Some(namespaces));
    let mut resources: LinuxResources = linux.resources().clone().unwrap_or_default();
    if let Some(memory) = spec.limits.memory {
        let limit = i64::try_from(memory).unwrap_or(i64::MAX);
        resources.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(prepare)?,
        ));
    }
    if let Some(shares) = spec.limits.cpu_shares {
        resources.set_cpu(Some(
            LinuxCpuBuilder::default()
                .shares(shares)
                .build()
                .map_err(prepare)?,
        ));
    }
    linux.set_resources(Some(resources));
    if spec.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    config.set_linux(Some(linux));
    Ok(config)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Runner for RuncRunner {
    fn name(&self) -> &'static str {
        "runc"
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
            let config = bundle_config(spec, root.path())?;
            let bundle = root.scratch();
            config
                .save(bundle.join("config.json"))
                .map_err(|e| RunError::Prepare(format!("config.json: {e}")))?;
            let id = format!(
                "tributary-{}-{}",
                std::process::id(),
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            );
            let mut command = resource_protocol::process::async_command("runc", bundle);
            command
                .arg("--root")
                .arg(&self.root)
                .args(["run", "--bundle"])
                .arg(bundle)
                .arg(&id);
            let result = super::supervise(command, spec, log, cancel, self.grace).await;
            // Removes what a killed runc may leave behind; harmless when it is gone.
            let _ = resource_protocol::process::async_command("runc", bundle)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "--force", &id])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await;
            drop(root);
            result
        })
    }
}
