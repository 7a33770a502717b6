//! Plumbing every server shares: finding installed programs, free ports, temp dirs, and the
//! [`ServerProcess`] guard that kills a server's whole process group when it drops.
//!
//! Nothing here skips a test: a missing program panics with the Debian package to install.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start listening before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many bytes of a server log [`ServerProcess::log_tail`] shows.
const LOG_TAIL_BYTES: u64 = 4000;

/// Directories searched after `PATH`: root's sbin dirs are often missing from a test's `PATH`.
const EXTRA_PATH: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The absolute path of `program`, found on `PATH` (or in the sbin dirs).
///
/// # Panics
/// With `program X not found: apt-get install PACKAGE` when it is not installed: tests never skip.
pub fn require(program: &str, package: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| {
        panic!("program {program} not found: apt-get install {package}");
    })
}

/// Where `program` is installed, if anywhere.
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let is_executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_PATH.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// A TCP port on `127.0.0.1` that was free a moment ago.
///
/// Another process may take it before the server binds it; the `start` functions of this crate
/// retry with a fresh port when a server fails to come up (see [`retry_start`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// A fresh temp dir under `/tmp` named after `purpose`; deleted when dropped.
pub fn temp_dir(purpose: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("testbed-{purpose}-"))
        .tempdir()
        .expect("create temp dir")
}

/// A directory of slow-to-make fixture files (RSA keys, certificates) shared by every test on
/// the machine, so each test does not pay for key generation. `populate` fills a scratch dir
/// that is then renamed into place, so no test ever sees a half-made one. Callers must never
/// modify the files, and must change `name` whenever `populate` changes.
pub fn machine_cache(name: &str, populate: impl FnOnce(&Path)) -> PathBuf {
    let root = std::env::temp_dir().join("testbed-cache");
    let dir = root.join(name);
    if dir.is_dir() {
        return dir;
    }
    std::fs::create_dir_all(&root).expect("create testbed cache dir");
    let scratch = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(&root)
        .expect("create testbed cache scratch dir");
    populate(scratch.path());
    let scratch = scratch.keep();
    // Losing the race to another process is fine: its copy is as good as ours.
    if std::fs::rename(&scratch, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    assert!(dir.is_dir(), "testbed cache {} missing", dir.display());
    dir
}

/// A fresh temp dir on tmpfs (`/dev/shm`) when it is writable, else under `/tmp`.
///
/// For storage that sees many small writes (registry blobs, thousands of tags): about ten times
/// faster than disk.
pub fn fast_temp_dir(purpose: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    tempfile::Builder::new()
        .prefix(&format!("testbed-{purpose}-"))
        .tempdir_in(shm)
        .unwrap_or_else(|_| temp_dir(purpose))
}

/// Starts a server with a fresh free port, retrying a few times when it fails to come up
/// (most often because another test took the port in between).
///
/// `start` gets the port and returns the running server or a description of the failure
/// (including the server's log tail). Panics with the last failure after three attempts.
pub fn retry_start<T>(what: &str, mut start: impl FnMut(u16) -> Result<T, String>) -> T {
    const ATTEMPTS: usize = 3;
    let mut failures = Vec::new();
    for _ in 0..ATTEMPTS {
        match start(free_port()) {
            Ok(server) => return server,
            Err(failure) => failures.push(failure),
        }
    }
    panic!(
        "{what} did not start ({ATTEMPTS} attempts):\n{}",
        failures.join("\n---\n")
    );
}

/// A running server: its child process leads its own process group, and the whole group is
/// killed (SIGKILL) and reaped when the guard drops, so workers and per-connection forks
/// (nginx, sshd, git daemon) go too.
///
/// A guard cannot drop when the test process is killed (a nextest timeout, SIGKILL), and the
/// server's own process group escapes the runner's group kill. So each server gets a watchdog:
/// a `sh` loop in the server's group that kills the group once the test process is gone.
pub struct ServerProcess {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
    /// The log's length when this process started: earlier lines belong to earlier attempts.
    log_start: u64,
}

/// How often a watchdog checks that the test process is alive, in seconds.
const WATCHDOG_PERIOD_SECS: &str = "1";

impl ServerProcess {
    /// Spawns `command` as `name` in a new process group, stdin closed, stdout and stderr
    /// appended to `log` (which servers may also write to themselves).
    pub fn spawn(name: &str, command: Command, log: &Path) -> Result<ServerProcess, String> {
        Self::spawn_watched(name, command, log, std::process::id())
    }

    /// [`ServerProcess::spawn`], with the watchdog watching process `watched` instead of this
    /// one.
    fn spawn_watched(
        name: &str,
        mut command: Command,
        log: &Path,
        watched: u32,
    ) -> Result<ServerProcess, String> {
        let open_log = || {
            File::options()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| format!("{name}: cannot open log {}: {e}", log.display()))
        };
        command
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .process_group(0);
        let log_start = std::fs::metadata(log).map_or(0, |meta| meta.len());
        let child = command
            .spawn()
            .map_err(|e| format!("{name}: cannot run {:?}: {e}", command.get_program()))?;
        let watchdog = spawn_watchdog(watched, child.id(), log);
        Ok(ServerProcess {
            name: name.to_owned(),
            child,
            watchdog,
            log: log.to_owned(),
            log_start,
        })
    }

    /// The server's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last few KB of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log, LOG_TAIL_BYTES)
    }

    /// Waits until `addr` accepts TCP connections. Fails (with the log tail) if the server exits
    /// first or `timeout` passes.
    pub fn wait_listening(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.failure(&format!("exited ({status}) before listening on {addr}")));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Something listens; if our server says the port was taken, that is another
                // test's server and ours is about to give up.
                if self
                    .log_since_start()
                    .to_ascii_lowercase()
                    .contains("already in use")
                {
                    return Err(self.failure(&format!("found {addr} already in use")));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failure(&format!("not listening on {addr} after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `path` (a Unix socket or pid file the server creates) exists.
    pub fn wait_for_file(&mut self, path: &Path, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.failure(&format!(
                    "exited ({status}) before creating {}",
                    path.display()
                )));
            }
            if path.exists() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failure(&format!(
                    "did not create {} after {timeout:?}",
                    path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server logged since it started (this attempt only).
    fn log_since_start(&self) -> String {
        let len = std::fs::metadata(&self.log).map_or(0, |meta| meta.len());
        read_tail(&self.log, len.saturating_sub(self.log_start))
    }

    /// The exit status if the server has stopped.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// A failure message naming the server, `what` went wrong, and its log tail.
    pub fn failure(&self, what: &str) -> String {
        format!(
            "{} (pid {}) {what}; log {}:\n{}",
            self.name,
            self.pid(),
            self.log.display(),
            self.log_tail()
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let group = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(group) = group {
            // The group may be gone already (the server exited); nothing to do then.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(watchdog) = &mut self.watchdog {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Starts a `sh` loop inside process group `group` that kills the group (itself included) once
/// process `watched` is gone. `None` if it cannot start: the guard's drop still works then.
fn spawn_watchdog(watched: u32, group: u32, log: &Path) -> Option<Child> {
    let sh = find_program("sh")?;
    let log = File::options().append(true).open(log).ok()?;
    let mut command = resource_protocol::process::command(sh, Path::new("/"));
    command
        .args([
            "-c",
            "while kill -0 \"$1\" 2>/dev/null; do sleep \"$3\"; done; \
             echo \"testbed watchdog: process $1 is gone, killing server group $2\" >&2; \
             kill -s KILL -- -\"$2\"",
            "testbed-watchdog",
            &watched.to_string(),
            &group.to_string(),
            WATCHDOG_PERIOD_SECS,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(i32::try_from(group).ok()?);
    command.spawn().ok()
}

/// The last `bytes` of the file at `path` (lossy UTF-8), or a note that it cannot be read.
pub fn read_tail(path: &Path, bytes: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(bytes)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// Runs `program` with `args` in `cwd` and returns its stdout; panics with the program's stderr
/// tail when it fails. For fixture set-up steps, where a failure is a broken test bed.
pub fn run<I, S>(program: &Path, args: I, cwd: &Path) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = resource_protocol::process::command(program, cwd);
    command.args(args);
    run_command(&mut command)
}

/// Runs a prepared command and returns its stdout; panics with its stderr tail when it fails.
pub fn run_command(command: &mut Command) -> Vec<u8> {
    let args: Vec<String> = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    match resource_protocol::process::output_checked(command) {
        Ok(output) => output.stdout,
        Err(e) => panic!("{e}\n(args: {args:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_finds_installed_and_names_the_package_otherwise() {
        assert!(require("sh", "dash").is_absolute());
        let missing = std::panic::catch_unwind(|| require("no-such-tool-xyz", "pkg-xyz"))
            .unwrap_err()
            .downcast::<String>()
            .unwrap();
        assert_eq!(
            *missing,
            "program no-such-tool-xyz not found: apt-get install pkg-xyz"
        );
    }

    #[test]
    fn server_process_reports_early_exit_and_kills_its_group_on_drop() {
        let dir = temp_dir("tools");
        let log = dir.path().join("log");
        let sh = require("sh", "dash");

        let mut command = resource_protocol::process::command(&sh, dir.path());
        command.args(["-c", "echo boom >&2; exit 3"]);
        let mut failing = ServerProcess::spawn("failing", command, &log).unwrap();
        let err = failing
            .wait_listening(
                SocketAddr::from(([127, 0, 0, 1], free_port())),
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(
            err.contains("failing (pid") && err.contains("boom"),
            "{err}"
        );

        // A grandchild in the same group must die with the guard.
        let pid_file = dir.path().join("grandchild.pid");
        let mut command = resource_protocol::process::command(&sh, dir.path());
        command.args([
            "-c",
            &format!("sleep 60 & echo $! > {}; wait", pid_file.display()),
        ]);
        let mut server = ServerProcess::spawn("sleeper", command, &log).unwrap();
        server
            .wait_for_file(&pid_file, Duration::from_secs(5))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let grandchild = std::fs::read_to_string(&pid_file).unwrap();
        assert!(alive(grandchild.trim()));
        drop(server);
        wait_until_dead(grandchild.trim(), "grandchild survived the guard");
    }

    #[test]
    fn a_port_taken_by_someone_else_is_reported_not_mistaken_for_ours() {
        let dir = temp_dir("tools");
        let log = dir.path().join("log");
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let sh = require("sh", "dash");
        let mut command = resource_protocol::process::command(&sh, dir.path());
        command.args([
            "-c",
            "echo 'bind: address already in use' >&2; sleep 0.5; echo retrying >&2; sleep 60",
        ]);
        let mut server = ServerProcess::spawn("squatter", command, &log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !read_tail(&log, 1000).contains("already in use") {
            assert!(Instant::now() < deadline, "the squatter never logged");
            std::thread::sleep(Duration::from_millis(20));
        }
        let err = server
            .wait_listening(addr, Duration::from_secs(5))
            .unwrap_err();
        assert!(err.contains("already in use"), "{err}");
        drop(server);
        // A later attempt logging to the same file is not blamed for the earlier one.
        let mut command = resource_protocol::process::command(&sh, dir.path());
        command.args(["-c", "sleep 60"]);
        let mut server = ServerProcess::spawn("second", command, &log).unwrap();
        server.wait_listening(addr, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn machine_cache_populates_once() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("self-test-{}-{nanos}", std::process::id());
        let calls = std::cell::Cell::new(0);
        let populate = |dir: &Path| {
            calls.set(calls.get() + 1);
            std::fs::write(dir.join("f"), "x").unwrap();
        };
        let first = machine_cache(&name, populate);
        let second = machine_cache(&name, populate);
        assert_eq!((first.clone(), calls.get()), (second, 1));
        assert_eq!(std::fs::read_to_string(first.join("f")).unwrap(), "x");
        std::fs::remove_dir_all(first).unwrap();
    }

    #[test]
    fn watchdog_kills_the_server_when_the_test_process_is_gone() {
        let dir = temp_dir("tools");
        let sh = require("sh", "dash");
        // Stands in for the test process.
        let sleep = require("sleep", "coreutils");
        let mut fake_test = resource_protocol::process::command(&sleep, dir.path())
            .arg("60")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut command = resource_protocol::process::command(&sh, dir.path());
        command.args(["-c", "sleep 60"]);
        let log = dir.path().join("log");
        let server =
            ServerProcess::spawn_watched("sleeper", command, &log, fake_test.id()).unwrap();
        let pid = server.pid().to_string();
        std::thread::sleep(Duration::from_millis(200));
        assert!(alive(&pid));
        fake_test.kill().unwrap();
        fake_test.wait().unwrap();
        wait_until_dead(&pid, "server survived its test process");
        assert!(read_tail(&log, 1000).contains("testbed watchdog: process"));
        drop(server);
    }

    /// Whether process `pid` runs (a zombie counts as dead).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
    }

    fn wait_until_dead(pid: &str, message: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            assert!(Instant::now() < deadline, "{message}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
