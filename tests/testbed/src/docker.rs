//! A private Docker daemon (dockerd 20.10 from Debian's `docker.io`) for tests that must prove
//! our images work with `docker load`, `docker run` and `docker build`.
//!
//! Each [`Docker`] runs its own `dockerd` as root in a temp dir: data root, exec root, Unix
//! socket, pid file and an empty `daemon.json` there (the machine's `/etc/docker` is never read),
//! no iptables, no bridge (containers run with `--network none`), the `vfs` storage driver (no
//! overlay mounts). dockerd starts its own containerd (in its own session, so a process-group
//! kill misses it). Dropping the handle stops dockerd with SIGTERM (it stops containerd and
//! unmounts its data root), then kills whatever is left of this daemon (containerd, shims),
//! unmounts anything still mounted under the temp dir and removes it (vfs copies every layer, so
//! the dir is big). A reaper does the same if the test process dies without dropping it.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{START_TIMEOUT, ServerProcess, require, run_command, temp_dir};

/// How long dockerd may take to stop on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// `sh` commands that kill every process of this daemon still alive (containerd and its shims
/// name the temp dir `$1` in their command line), unmount whatever is mounted under `$1`
/// (deepest first) and remove `$1`.
const CLEANUP: &str = "\
for p in /proc/[0-9]*; do \
  [ \"${p#/proc/}\" = \"$$\" ] && continue; \
  grep -qF \"$1/\" \"$p/cmdline\" 2>/dev/null && kill -s KILL \"${p#/proc/}\" 2>/dev/null; \
done; \
grep -F \" $1/\" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l \"$m\"; done; \
rm -rf \"$1\"";

/// A running private dockerd; stopped, cleaned up and its temp dir removed when dropped.
pub struct Docker {
    process: Option<ServerProcess>,
    reaper: Option<Child>,
    dir: Option<tempfile::TempDir>,
    client: PathBuf,
    host: String,
    client_config: PathBuf,
}

impl Docker {
    /// Starts dockerd and waits until it answers `docker version`. Panics (naming the Debian
    /// package `docker.io` when `dockerd` or `docker` is missing, or with dockerd's log) if it
    /// cannot start.
    pub fn start() -> Docker {
        let dockerd = require("dockerd", "docker.io");
        let client = require("docker", "docker.io");
        // containerd and runc come with docker.io; name them here so a broken install says so.
        require("containerd", "containerd");
        require("runc", "runc");
        require("umount", "mount");
        // Short paths: containerd's sockets live under the exec root (Unix socket paths are
        // limited to 108 bytes).
        let dir = temp_dir("docker");
        let root = dir.path().to_owned();
        let socket = root.join("docker.sock");
        let client_config = root.join("client");
        std::fs::create_dir_all(&client_config).expect("create docker client config dir");
        let daemon_json = root.join("daemon.json");
        std::fs::write(&daemon_json, "{}\n").expect("write daemon.json");
        let log = root.join("dockerd.log");
        let mut command = resource_protocol::process::command(&dockerd, &root);
        command
            .arg("--config-file")
            .arg(&daemon_json)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        let mut process = ServerProcess::spawn("dockerd", command, &log)
            .unwrap_or_else(|failure| panic!("dockerd did not start: {failure}"));
        let reaper = spawn_reaper(process.pid(), &root, &log);
        let mut docker = Docker {
            process: None,
            reaper,
            dir: Some(dir),
            client,
            host: format!("unix://{}", socket.display()),
            client_config,
        };
        if let Err(failure) = process.wait_for_file(&socket, START_TIMEOUT) {
            docker.process = Some(process);
            panic!("dockerd did not start: {failure}");
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answer = docker
                .command(&root)
                .args(["version", "--format", "{{.Server.Version}}"])
                .output();
            if answer.as_ref().is_ok_and(|output| output.status.success()) {
                break;
            }
            if let Some(status) = process.exit_status() {
                let failure = process.failure(&format!("exited ({status}) before answering"));
                docker.process = Some(process);
                panic!("dockerd did not start: {failure}");
            }
            if Instant::now() > deadline {
                let failure = process.failure(&format!(
                    "did not answer `docker version` in {START_TIMEOUT:?}"
                ));
                docker.process = Some(process);
                panic!("dockerd did not start: {failure}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        docker.process = Some(process);
        docker
    }

    /// The daemon's address for `DOCKER_HOST` (`unix:///tmp/testbed-docker-…/docker.sock`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The environment a `docker` client needs to talk to this daemon: `DOCKER_HOST`, a private
    /// `DOCKER_CONFIG` (no `~/.docker`), and `DOCKER_BUILDKIT=0` (the classic builder:
    /// dockerd 20.10 has it built in, BuildKit needs the buildx plugin on newer clients).
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("DOCKER_HOST", OsString::from(&self.host)),
            ("DOCKER_CONFIG", self.client_config.clone().into_os_string()),
            ("DOCKER_BUILDKIT", OsString::from("0")),
        ]
    }

    /// A `docker` client command in `cwd` talking to this daemon (no arguments yet).
    pub fn command(&self, cwd: &Path) -> Command {
        let mut command = resource_protocol::process::command(&self.client, cwd);
        command.envs(self.env());
        command
    }

    /// Runs `docker ARGS` against this daemon and returns its stdout; panics with its stderr
    /// and dockerd's log tail when it fails.
    pub fn docker<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(Path::new("/"));
        command.args(args);
        match resource_protocol::process::output_checked(&mut command) {
            Ok(output) => output.stdout,
            Err(e) => panic!(
                "{e}\n(args: {:?})\ndockerd log:\n{}",
                command.get_args().collect::<Vec<_>>(),
                self.log_tail()
            ),
        }
    }

    /// [`Docker::docker`] in `cwd` (e.g. a build context).
    pub fn docker_in<I, S>(&self, cwd: &Path, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(cwd);
        command.args(args);
        run_command(&mut command)
    }

    /// Runs `docker ARGS` with `stdin` on its standard input and returns its output whatever
    /// the exit status (for `docker run -i`, whose exit status is the container's).
    pub fn docker_with_stdin<I, S>(&self, args: I, stdin: &str) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .command(Path::new("/"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker");
        let mut input = child.stdin.take().expect("docker stdin");
        // A container that exits without reading closes the pipe: not a failure here.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().expect("wait for docker")
    }

    /// `docker inspect` of `object` (an image or container), parsed: the first element.
    pub fn inspect(&self, object: &str) -> serde_json::Value {
        let out = self.docker(["inspect", "--type", "image", object]);
        let mut all: Vec<serde_json::Value> =
            serde_json::from_slice(&out).expect("docker inspect prints a JSON array");
        assert_eq!(all.len(), 1, "docker inspect {object}: {all:?}");
        all.remove(0)
    }

    /// The daemon's temp dir (data root `data/`, exec root `exec/`, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("/"), |dir| dir.path())
    }

    /// dockerd's process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, ServerProcess::pid)
    }

    /// The last few KB of dockerd's log.
    pub fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map_or_else(String::new, ServerProcess::log_tail)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // SIGTERM: dockerd stops its containers and containerd and unmounts its data root.
            let pid = i32::try_from(process.pid())
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while process.exit_status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(process); // SIGKILLs the group if dockerd is still there
        }
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.keep();
            if let Some(sh) = crate::tools::find_program("sh") {
                let _ = resource_protocol::process::command(sh, Path::new("/"))
                    .args(["-c", CLEANUP, "testbed-docker-cleanup"])
                    .arg(&path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            // Anything the script could not remove (no sh): try once more here.
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Starts a `sh` loop, in a process group of its own (a test timeout kills the test's group, and
/// the server watchdog kills dockerd's), that waits until this test process is gone, then stops
/// dockerd and runs [`CLEANUP`] on `dir`. `None` if it cannot start: dropping still cleans up.
fn spawn_reaper(dockerd: u32, dir: &Path, log: &Path) -> Option<Child> {
    let sh = crate::tools::find_program("sh")?;
    let log = std::fs::File::options().append(true).open(log).ok()?;
    let script = format!(
        "while kill -0 \"$2\" 2>/dev/null; do sleep 1; done; \
         echo \"testbed docker reaper: process $2 is gone, stopping dockerd $3\" >&2; \
         kill -s TERM \"$3\" 2>/dev/null; \
         i=0; while kill -0 \"$3\" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.5; i=$((i+1)); done; \
         kill -s KILL \"$3\" 2>/dev/null; \
         {CLEANUP}"
    );
    let mut command = resource_protocol::process::command(sh, Path::new("/"));
    command
        .args(["-c", &script, "testbed-docker-reaper"])
        .arg(dir)
        .arg(std::process::id().to_string())
        .arg(dockerd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
    command.spawn().ok()
}
