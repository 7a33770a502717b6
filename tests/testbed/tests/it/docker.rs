//! The private Docker daemon: builds an image (classic builder), runs it with stdin and exit
//! codes, loads a `docker save` archive back, and leaves no process, mount or directory behind.

use std::path::Path;

use testbed::docker::Docker;
use testbed::tools::{require, temp_dir};

/// Every line of `/proc/mounts` naming `dir`, and every process whose command line names it.
fn leftovers(dir: &Path) -> (Vec<String>, Vec<String>) {
    let needle = dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_owned)
        .collect();
    let processes = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(&needle)
                .then(|| format!("{:?}: {cmdline}", entry.file_name()))
        })
        .collect();
    (mounts, processes)
}

#[test]
fn docker_builds_runs_saves_and_loads_then_cleans_up() {
    let docker = Docker::start();
    let dir = docker.dir().to_owned();
    assert!(docker.host().starts_with("unix:///"), "{}", docker.host());
    let version = docker.docker(["version", "--format", "{{.Server.Version}}"]);
    assert!(
        String::from_utf8_lossy(&version).starts_with("20.10."),
        "{}",
        String::from_utf8_lossy(&version)
    );

    // A one-file image from busybox-static, built by the classic builder.
    let context = temp_dir("docker-context");
    std::fs::copy(
        require("busybox", "busybox-static"),
        context.path().join("busybox"),
    )
    .unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nLABEL org.example.test=yes\nUSER 65534:65534\n",
    )
    .unwrap();
    docker.docker_in(
        context.path(),
        ["build", "-q", "-t", "testbed/busybox:1", "."],
    );
    let image = docker.inspect("testbed/busybox:1");
    assert_eq!(image["Config"]["Labels"]["org.example.test"], "yes");
    assert_eq!(image["Config"]["User"], "65534:65534");

    // stdin reaches the container, and its exit status is docker run's.
    let run = |args: &[&str], stdin: &str| {
        let mut all = vec![
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "testbed/busybox:1",
        ];
        all.extend_from_slice(args);
        docker.docker_with_stdin(all, stdin)
    };
    let echoed = run(&["/bin/busybox", "cat"], "hello docker\n");
    assert_eq!(echoed.status.code(), Some(0), "{echoed:?}");
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "hello docker\n");
    let failed = run(&["/bin/busybox", "sh", "-c", "echo oops >&2; exit 3"], "");
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    assert_eq!(String::from_utf8_lossy(&failed.stderr), "oops\n");
    // --network none: only a loopback interface.
    let links = run(&["/bin/busybox", "ls", "/sys/class/net"], "");
    assert_eq!(
        String::from_utf8_lossy(&links.stdout).trim(),
        "lo",
        "{links:?}"
    );

    // docker save | docker rmi | docker load gives the same image back.
    let archive = context.path().join("saved.tar");
    docker.docker([
        "save",
        "-o",
        &archive.to_string_lossy(),
        "testbed/busybox:1",
    ]);
    docker.docker(["rmi", "testbed/busybox:1"]);
    let loaded = docker.docker(["load", "-i", &archive.to_string_lossy()]);
    assert!(
        String::from_utf8_lossy(&loaded).contains("Loaded image: testbed/busybox:1"),
        "{}",
        String::from_utf8_lossy(&loaded)
    );
    assert_eq!(docker.inspect("testbed/busybox:1")["Id"], image["Id"]);

    // A failing client command names itself and shows dockerd's log.
    let missing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        docker.docker(["inspect", "--type", "image", "no/such:image"])
    }))
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    assert!(missing.contains("no/such:image"), "{missing}");

    let (mounts, processes) = leftovers(&dir);
    assert!(!processes.is_empty(), "dockerd runs from {}", dir.display());
    assert!(dir.join("data").is_dir());
    drop(docker);
    assert!(!dir.exists(), "{} left behind", dir.display());
    let (mounts_after, processes_after) = leftovers(&dir);
    assert_eq!(
        mounts_after,
        Vec::<String>::new(),
        "mounts before: {mounts:?}"
    );
    assert_eq!(processes_after, Vec::<String>::new());
}
