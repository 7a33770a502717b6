//! Workspace binaries for tests that run them as child processes: built with cargo when they
//! are missing, then copied once per build of them into a directory every test process shares.
//!
//! Copies, not links: another package's build may replace the originals while tests run.
//! Shared and keyed by the binaries' sizes and mtimes: nextest runs every test in its own
//! process, and a copy per process once filled the disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The profile directory (`target/debug`) of the running test executable
/// (`target/debug/deps/<test>-<hash>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("a test executable under target/<profile>/deps")
        .to_owned()
}

/// Builds the packages of `binaries` (each binary is named like its package) with the profile
/// of [`target_dir`], unless every one of them is there already.
pub fn ensure_built(binaries: &[&str]) {
    let target = target_dir();
    if binaries.iter().all(|b| target.join(b).exists()) {
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = resource_protocol::process::command(&cargo, &workspace);
    build.arg("build");
    for b in binaries {
        build.args(["-p", b]);
    }
    if target.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    resource_protocol::process::output_checked(&mut build).expect("building the binaries");
}

/// A directory under `root` made once per build of `binaries` (and per `salt`, for whatever
/// else goes into it): the first test process to ask fills a staging directory with `fill`
/// and renames it into place; the others reuse it. Entries nobody made for an hour are removed.
pub fn shared_dir(
    root: &Path,
    binaries: &[&str],
    salt: &[u8],
    fill: impl FnOnce(&Path),
) -> PathBuf {
    use sha2::Digest;
    let target = target_dir();
    let mut key = sha2::Sha256::new();
    key.update(salt);
    for b in binaries {
        let meta = std::fs::metadata(target.join(b)).expect("a built binary");
        let mtime = meta
            .modified()
            .expect("an mtime")
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        key.update(format!("{b} {} {}\n", meta.len(), mtime.as_nanos()));
    }
    std::fs::create_dir_all(root).expect("the shared root");
    let dir = root.join(&hex::encode(key.finalize())[..16]);
    let done = |dir: &Path| dir.join(".done").exists();
    if done(&dir) {
        return dir;
    }
    let staging = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(root)
        .expect("a staging dir");
    fill(staging.path());
    std::fs::write(staging.path().join(".done"), "").expect("the completion marker");
    // Another test process may have won the race: then its copy is used and ours goes.
    let staged = staging.keep();
    if std::fs::rename(&staged, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    assert!(done(&dir), "{}", dir.display());
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(3600)));
        if old && entry.path() != dir {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    dir
}

/// Copies `binary` from [`target_dir`] into `dir`, retrying while a concurrent build replaces
/// it (the copy fails with "text file busy" or "not found" for a moment).
pub fn copy_binary(binary: &str, dir: &Path) {
    let from = target_dir().join(binary);
    let mut tries = 0;
    while let Err(e) = std::fs::copy(&from, dir.join(binary)) {
        tries += 1;
        assert!(tries < 40, "copying {binary}: {e}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
