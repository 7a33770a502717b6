//! Runner tests: the same cases on the host, under bwrap and under runc, with a busybox rootfs
//! made in the test.

use std::sync::Mutex;

use super::*;

/// A rootfs with busybox-static and its applets as relative symlinks.
pub(crate) fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("busybox-rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = resource_protocol::process::output_checked(
        resource_protocol::process::command("/bin/busybox", dir).arg("--list"),
    )
    .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    root
}

struct Run {
    finished: Result<Finished, RunError>,
    lines: Vec<(Stream, String)>,
}

async fn run(runner: &dyn Runner, spec: &ProcessSpec, cancel: Cancel) -> Run {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let log: LogSink = Arc::new(move |stream, line: &str| {
        sink.lock().unwrap().push((stream, line.to_owned()));
    });
    let finished = runner.run(spec, log, cancel).await;
    let lines = lines.lock().unwrap().clone();
    Run { finished, lines }
}

fn runners(state: &Path) -> Vec<Arc<dyn Runner>> {
    // A shell as a container's PID 1 ignores SIGTERM: keep the wait for SIGKILL short.
    let grace = Duration::from_millis(500);
    let mut bwrap = bwrap::BwrapRunner::new(state);
    bwrap.grace = grace;
    let mut runc = runc::RuncRunner::new(state);
    runc.grace = grace;
    vec![
        Arc::new(host::HostRunner { grace }),
        Arc::new(bwrap),
        Arc::new(runc),
    ]
}

fn spec(rootfs: Option<&Path>, work: &Path, script: &str) -> ProcessSpec {
    ProcessSpec {
        rootfs: rootfs.map(Path::to_owned),
        path: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![
            ("GREETING".into(), "hello world".into()),
            ("PATH".into(), "/bin".into()),
        ],
        work_host: work.to_owned(),
        work_dest: "/tmp/build/0a1b2c3d".into(),
        dir: String::new(),
        ..ProcessSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_scripts_with_env_dirs_mounts_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    for runner in runners(&tmp.path().join("state")) {
        let name = runner.name();
        let work = tmp.path().join(format!("work-{name}"));
        std::fs::create_dir_all(work.join("input/sub")).unwrap();
        std::fs::write(work.join("input/sub/file"), "data").unwrap();
        let cache = tmp.path().join(format!("cache-{name}"));
        std::fs::create_dir_all(&cache).unwrap();
        let mut s = spec(
            Some(&rootfs),
            &work,
            "echo \"$GREETING\"; pwd; cat file >&2; echo out > ../../made; \
             echo c >> ../../cache/count; exit 3",
        );
        s.dir = "input/sub".into();
        s.mounts.push(Mount {
            host: cache.clone(),
            dest: "/tmp/build/0a1b2c3d/cache".into(),
            readonly: false,
        });
        let r = run(runner.as_ref(), &s, Cancel::new()).await;
        let finished = r.finished.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(finished.exit_code, 3, "{name}: {:?}", r.lines);
        let stdout: Vec<&str> = r
            .lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(stdout[0], "hello world", "{name}");
        if name != "host" {
            assert_eq!(stdout[1], "/tmp/build/0a1b2c3d/input/sub", "{name}");
        }
        assert!(
            r.lines.contains(&(Stream::Stderr, "data".into())),
            "{name}: {:?}",
            r.lines
        );
        assert_eq!(std::fs::read_to_string(work.join("made")).unwrap(), "out\n");
        assert_eq!(
            std::fs::read_to_string(cache.join("count")).unwrap(),
            "c\n",
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_get_fresh_writable_roots_and_capture_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    for runner in runners(&tmp.path().join("state")).into_iter().skip(1) {
        let name = runner.name();
        let work = tmp.path().join(format!("work-{name}"));
        std::fs::create_dir_all(&work).unwrap();
        let mut s = spec(
            Some(&rootfs),
            &work,
            "test ! -e /scribble || exit 9; echo x > /scribble; cat; id -u",
        );
        s.stdin = b"{\"source\":{}}".to_vec();
        s.capture_stdout = true;
        s.user = Some("nobody".into());
        for _ in 0..2 {
            let r = run(runner.as_ref(), &s, Cancel::new()).await;
            let finished = r.finished.unwrap();
            // runc runs as the user; bwrap maps it in a user namespace: both report it.
            assert_eq!(
                String::from_utf8_lossy(&finished.stdout),
                "{\"source\":{}}65534\n",
                "{name}: {:?} {}",
                r.lines,
                finished.stderr_tail
            );
            assert_eq!(finished.exit_code, 0, "{name}");
        }
        assert!(
            !rootfs.join("scribble").exists(),
            "{name} wrote into the cached rootfs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_terminates_the_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    for runner in runners(&tmp.path().join("state")) {
        let name = runner.name();
        let work = tmp.path().join(format!("work-{name}"));
        std::fs::create_dir_all(&work).unwrap();
        // A grandchild that ignores nothing: the whole group must go.
        let s = spec(Some(&rootfs), &work, "sleep 30 & sleep 30; wait");
        let cancel = Cancel::new();
        let child = cancel.child();
        let started = std::time::Instant::now();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.cancel();
        });
        let r = run(runner.as_ref(), &s, child).await;
        assert!(matches!(r.finished, Err(RunError::Cancelled)), "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{name}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn runc_bundle_has_no_network_namespace_and_limits() {
    let mut s = spec(None, Path::new("/w"), "true");
    s.limits = Limits {
        cpu_shares: Some(512),
        memory: Some(64 << 20),
    };
    s.privileged = true;
    let config =
        serde_json::to_value(runc::bundle_config(&s, Path::new("/root")).unwrap()).unwrap();
    assert_eq!(config["process"]["terminal"], false);
    assert_eq!(config["process"]["cwd"], "/tmp/build/0a1b2c3d");
    assert_eq!(config["root"]["path"], "/root");
    let namespaces: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(!namespaces.contains(&"network"), "{namespaces:?}");
    assert!(namespaces.contains(&"pid"));
    assert_eq!(config["linux"]["resources"]["memory"]["limit"], 64 << 20);
    assert_eq!(config["linux"]["resources"]["cpu"]["shares"], 512);
    assert!(
        config["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("CAP_SYS_ADMIN"))
    );
    let mounts = config["mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["destination"] == "/tmp/build/0a1b2c3d" && m["source"] == "/w")
    );
}

#[test]
fn bwrap_arguments() {
    let mut s = spec(None, Path::new("/w"), "true");
    s.mounts.push(Mount {
        host: "/c".into(),
        dest: "/tmp/build/0a1b2c3d/c".into(),
        readonly: true,
    });
    let args = bwrap::bwrap_args(&s, Path::new("/r")).join(" ");
    assert!(
        args.starts_with("--bind /r / --proc /proc --dev /dev --tmpfs /tmp"),
        "{args}"
    );
    assert!(args.contains("--bind /w /tmp/build/0a1b2c3d --ro-bind /c /tmp/build/0a1b2c3d/c"));
    assert!(
        args.contains("--unshare-pid --die-with-parent --clearenv --setenv GREETING hello world")
    );
    assert!(
        args.ends_with("--chdir /tmp/build/0a1b2c3d -- /bin/sh -c true"),
        "{args}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runc_enforces_the_memory_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let runner = runc::RuncRunner::new(&tmp.path().join("state"));
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // dd allocates its block size: 64 MiB under a 32 MiB limit is killed, 8 MiB is fine.
    let mut s = spec(
        Some(&rootfs),
        &work,
        "dd if=/dev/zero of=/dev/null bs=64M count=1",
    );
    s.limits.memory = Some(32 << 20);
    let r = run(&runner, &s, Cancel::new()).await;
    let killed = r.finished.unwrap();
    // Killed by the OOM killer (SIGKILL).
    assert_eq!(killed.exit_code, 137, "{:?}", r.lines);
    s.args[1] = "dd if=/dev/zero of=/dev/null bs=8M count=1".into();
    let r = run(&runner, &s, Cancel::new()).await;
    assert_eq!(r.finished.unwrap().exit_code, 0, "{:?}", r.lines);
    rootfs::finish_cleanups();
}

/// `CapEff` of a shell in a busybox container on `runner`, privileged or not, as `user`.
async fn effective_caps(
    runner: &dyn Runner,
    rootfs: &Path,
    work: &Path,
    privileged: bool,
    user: Option<&str>,
) -> u64 {
    let mut s = spec(
        Some(rootfs),
        work,
        "sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status",
    );
    s.privileged = privileged;
    s.user = user.map(str::to_owned);
    s.capture_stdout = true;
    let done = run(runner, &s, Cancel::new()).await.finished.unwrap();
    assert_eq!(done.exit_code, 0, "{}: {}", runner.name(), done.stderr_tail);
    let text = String::from_utf8(done.stdout).unwrap();
    u64::from_str_radix(text.trim(), 16).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_containers_get_the_default_capabilities_on_bwrap_and_runc() {
    // Root (and the bounding set's) defaults; privileged: all; another user: none.
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let bit = |name: &str| {
        1u64 << runc::ALL_CAPABILITIES
            .iter()
            .position(|c| *c == name)
            .unwrap()
    };
    let default: u64 = runc::within_bounding_set(DEFAULT_CAPABILITIES)
        .iter()
        .map(|c| bit(c))
        .sum();
    let mut seen = Vec::new();
    for runner in runners(&tmp.path().join("state")).iter().skip(1) {
        let name = runner.name();
        let plain = effective_caps(runner.as_ref(), &rootfs, &work, false, None).await;
        let privileged = effective_caps(runner.as_ref(), &rootfs, &work, true, None).await;
        // Another user than root holds none (as with Docker).
        let nobody = effective_caps(runner.as_ref(), &rootfs, &work, false, Some("nobody")).await;
        assert_eq!(nobody, 0, "{name}: {nobody:x}");
        assert_eq!(plain, default, "{name}: {plain:x}");
        assert_eq!(plain & bit("CAP_SYS_ADMIN"), 0, "{name}: {plain:x}");
        assert_ne!(
            privileged & bit("CAP_SYS_ADMIN"),
            0,
            "{name}: {privileged:x}"
        );
        assert_eq!(privileged & plain, plain, "{name}");
        seen.push((name, plain, privileged));
    }
    // Both runtimes agree, privileged or not.
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].1, seen[0].2), (seen[1].1, seen[1].2), "{seen:x?}");
}
