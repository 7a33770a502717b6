//! Test support: building images with the real CLI, unpacking them with umoci, and running
//! a resource inside a rootfs with bwrap or runc.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use resource_protocol::process::{command, output_checked};
use testbed::tools::require;

/// The workspace root (where `git rev-parse HEAD` names the revision).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The revision label tests build with: fixed, because other commits may land while tests run.
pub const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

/// A snapshot of the resource binaries cargo built with this test (`target/debug`), hard-linked
/// into a directory of this test process's own so that a concurrent rebuild cannot change them
/// between two builds. The tests package these debug binaries (stripped, with their shared
/// libraries) because CI has already built them; the static release build is the documented
/// shipping path; set `IMAGES_TEST_BINARIES` to a directory of binaries (e.g. the static
/// release build) to run every test on those instead.
pub fn binaries_dir() -> PathBuf {
    static SNAPSHOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    SNAPSHOT
        .get_or_init(|| {
            let names: Vec<String> = images::types::ALL.iter().map(|t| t.binary_name()).collect();
            let dir = match std::env::var_os("IMAGES_TEST_BINARIES") {
                Some(dir) => workspace_root().join(dir), // relative to the workspace root
                None => {
                    // Builds only when this package's tests run alone: `--workspace` builds all.
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    testbed::built::ensure_built(&names);
                    testbed::built::target_dir()
                }
            };
            let snapshot = tempfile::tempdir().unwrap();
            for binary in &names {
                let to = snapshot.path().join(binary);
                std::fs::hard_link(dir.join(binary), &to)
                    .or_else(|_| std::fs::copy(dir.join(binary), &to).map(drop))
                    .unwrap();
            }
            snapshot
        })
        .path()
        .to_owned()
}

/// One image as `images.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub type_name: String,
    pub tag: String,
    pub layout: PathBuf,
    pub oci_archive: PathBuf,
    pub docker_archive: PathBuf,
    pub manifest_digest: String,
    pub compressed_size: u64,
}

/// Runs `images build --out OUT --binaries … ARGS` and returns its exit output.
/// Adds `--revision` [`REVISION`] unless `args` name one or `default_revision` is set.
pub fn images_cli(out: &Path, args: &[&str]) -> Output {
    images_cli_env(out, args, &[])
}

/// [`images_cli`] with extra environment variables.
pub fn images_cli_env(out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    if args.contains(&"--revision") || args.contains(&"--default-revision") {
        let args: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| *a != "--default-revision")
            .collect();
        return images_cli_exact(out, &args, env);
    }
    let mut with_revision = vec!["--revision", REVISION];
    with_revision.extend_from_slice(args);
    images_cli_exact(out, &with_revision, env)
}

fn images_cli_exact(out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(env!("CARGO_BIN_EXE_images"), &workspace_root())
        .arg("build")
        .arg("--out")
        .arg(out)
        .arg("--binaries")
        .arg(binaries_dir())
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Builds images into `out` and returns the summaries; panics with stderr on failure.
pub fn build(out: &Path, args: &[&str]) -> Vec<Summary> {
    build_env(out, args, &[])
}

/// [`build`] with extra environment variables.
pub fn build_env(out: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<Summary> {
    let output = images_cli_env(out, args, env);
    assert!(
        output.status.success(),
        "images build failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("images.json")).unwrap()).unwrap();
    summary
        .as_array()
        .unwrap()
        .iter()
        .map(|image| Summary {
            type_name: image["type"].as_str().unwrap().into(),
            tag: image["tag"].as_str().unwrap().into(),
            layout: image["layout"].as_str().unwrap().into(),
            oci_archive: image["oci_archive"].as_str().unwrap().into(),
            docker_archive: image["docker_archive"].as_str().unwrap().into(),
            manifest_digest: image["manifest_digest"].as_str().unwrap().into(),
            compressed_size: image["compressed_size"].as_u64().unwrap(),
        })
        .collect()
}

/// Runs `program args` in `cwd`, panicking with its stderr on failure; returns stdout.
pub fn run_tool(program: &str, package: &str, args: &[&str], cwd: &Path) -> Vec<u8> {
    let program = require(program, package);
    output_checked(command(&program, cwd).args(args))
        .unwrap_or_else(|err| panic!("{err}"))
        .stdout
}

/// Unpacks `image`'s layout with `umoci unpack` into `bundle`; returns the rootfs.
pub fn umoci_unpack(image: &Summary, bundle: &Path) -> PathBuf {
    let reference = format!("{}:{}", image.layout.display(), image.tag);
    run_tool(
        "umoci",
        "umoci",
        &["unpack", "--image", &reference, &bundle.to_string_lossy()],
        Path::new("/"),
    );
    bundle.join("rootfs")
}

/// A host directory bind-mounted into a container.
#[derive(Debug, Clone)]
pub struct Bind {
    pub host: PathBuf,
    pub container: String,
}

/// The answer of a process run in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

fn run_with_stdin(mut cmd: std::process::Command, stdin: &str) -> Answer {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    Answer {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The `PATH` a container gets (the image config's).
const CONTAINER_PATH: &str = "/opt/resource:/usr/local/bin:/usr/bin:/bin";

/// Runs `args` in `rootfs` with bubblewrap, `stdin` on stdin.
pub fn bwrap(rootfs: &Path, binds: &[Bind], args: &[&str], stdin: &str) -> Answer {
    let mut cmd = command(require("bwrap", "bubblewrap"), Path::new("/"));
    cmd.arg("--bind").arg(rootfs).arg("/");
    cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    for bind in binds {
        cmd.arg("--bind").arg(&bind.host).arg(&bind.container);
    }
    cmd.args(["--unshare-pid", "--die-with-parent", "--clearenv"]);
    cmd.args([
        "--setenv",
        "PATH",
        CONTAINER_PATH,
        "--setenv",
        "HOME",
        "/root",
    ]);
    cmd.args(["--chdir", "/"]).args(args);
    run_with_stdin(cmd, stdin)
}

static CONTAINER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs `args` in `rootfs` with runc: a bundle whose `config.json` starts from `runc spec` and
/// is made non-interactive, without a network namespace (host network) and with `binds`.
pub fn runc(rootfs: &Path, binds: &[Bind], args: &[&str], stdin: &str) -> Answer {
    let runc = require("runc", "runc");
    let bundle = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    output_checked(command(&runc, bundle.path()).args(["spec"])).unwrap();
    let config_path = bundle.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(args);
    config["process"]["env"] = serde_json::json!([format!("PATH={CONTAINER_PATH}"), "HOME=/root"]);
    config["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "network");
    let mounts = config["mounts"].as_array_mut().unwrap();
    // sysfs cannot be mounted without a network namespace; the resources do not need it.
    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/sys"));
    mounts.push(serde_json::json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777"],
    }));
    for bind in binds {
        mounts.push(serde_json::json!({
            "destination": bind.container, "type": "bind", "source": bind.host,
            "options": ["rbind", "rw"],
        }));
    }
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let id = format!(
        "images-it-{}-{}",
        std::process::id(),
        CONTAINER_SEQ.fetch_add(1, Ordering::SeqCst)
    );
    let mut cmd = command(&runc, bundle.path());
    cmd.arg("--root").arg(state.path());
    cmd.args(["run", "--bundle"]).arg(bundle.path()).arg(&id);
    run_with_stdin(cmd, stdin)
}

/// A bare git repository with two commits on `main`; returns (repo dir, head sha).
pub fn bare_repository(dir: &Path) -> (PathBuf, String) {
    let work = dir.join("work");
    let bare = dir.join("repo.git");
    std::fs::create_dir_all(&work).unwrap();
    let git = |args: &[&str], cwd: &Path| -> String {
        let out = output_checked(
            command("git", cwd)
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", dir)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com"),
        )
        .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["init", "-q", "-b", "main"], &work);
    git(&["commit", "-q", "--allow-empty", "-m", "one"], &work);
    git(&["commit", "-q", "--allow-empty", "-m", "two"], &work);
    git(
        &["clone", "-q", "--bare", ".", &bare.to_string_lossy()],
        &work,
    );
    let head = git(&["rev-parse", "main"], &bare);
    (bare, head)
}

/// Runs a binary on the host with `args`, `stdin` on stdin, and a clean environment.
pub fn run_binary(binary: &Path, args: &[&str], stdin: &str) -> Answer {
    let mut cmd = command(binary, Path::new("/"));
    cmd.args(args).env_clear().env("PATH", CONTAINER_PATH);
    run_with_stdin(cmd, stdin)
}

/// The image config blob of `image` (from its OCI layout: index → manifest → config), parsed,
/// with its digest.
pub fn image_config(image: &Summary) -> (String, serde_json::Value) {
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::read(image.layout.join("blobs/sha256").join(hex)).unwrap()
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(&image.manifest_digest)).unwrap();
    let digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let config = serde_json::from_slice(&blob(&digest)).unwrap();
    (digest, config)
}

/// The contents of the regular file `path` (e.g. `opt/resource/git-resource`) in `image`'s
/// (only) layer.
pub fn layer_file(image: &Summary, path: &str) -> Vec<u8> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"], image.manifest_digest,
        "{}",
        image.type_name
    );
    let manifest_path = image
        .layout
        .join("blobs/sha256")
        .join(image.manifest_digest.trim_start_matches("sha256:"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let file = std::fs::File::open(
        image
            .layout
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new(path) {
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut contents).unwrap();
            return contents;
        }
    }
    panic!("{}: no {path} in the layer", image.type_name);
}
