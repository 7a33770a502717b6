//! Root filesystems: unpacked once per image digest, and a fresh writable layer per container.
//!
//! A cached rootfs is never written to: each container gets an overlayfs (the cached tree as
//! the lower layer, a new upper layer in a temp dir) or, where overlayfs cannot be mounted, a
//! copy. Dropping the [`WritableRoot`] unmounts and deletes the layer.

use std::path::{Path, PathBuf};

use resource_protocol::process::{command, output_checked};

/// A per-container writable view of a rootfs.
#[derive(Debug)]
pub struct WritableRoot {
    dir: Option<tempfile::TempDir>,
    merged: PathBuf,
    mounted: bool,
}

impl WritableRoot {
    /// Makes a writable view of `lower` under `scratch`.
    pub fn new(lower: &Path, scratch: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(scratch)?;
        let dir = tempfile::Builder::new()
            .prefix("ctr-")
            .tempdir_in(scratch)?;
        let merged = dir.path().join("rootfs");
        let upper = dir.path().join("upper");
        let work = dir.path().join("work");
        for d in [&merged, &upper, &work] {
            std::fs::create_dir(d)?;
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let mounted = std::ffi::CString::new(options).is_ok_and(|options| {
            rustix::mount::mount(
                "overlay",
                &merged,
                "overlay",
                rustix::mount::MountFlags::empty(),
                options.as_c_str(),
            )
            .is_ok()
        });
        if !mounted {
            // No overlayfs here (not root, or an unsupported upper filesystem): copy.
            std::fs::remove_dir(&merged)?;
            copy_tree(lower, &merged)?;
        }
        Ok(WritableRoot {
            dir: Some(dir),
            merged,
            mounted,
        })
    }

    /// The rootfs to run in.
    pub fn path(&self) -> &Path {
        &self.merged
    }

    /// The directory holding this container's files (for a runc bundle).
    pub fn scratch(&self) -> &Path {
        self.dir.as_ref().map_or(&self.merged, |d| d.path())
    }
}

impl Drop for WritableRoot {
    fn drop(&mut self) {
        // Unmounting waits for the kernel (tens of ms): do it off the step's path, and let
        // [`finish_cleanups`] wait for it before the process exits.
        let mounted = self.mounted;
        let merged = self.merged.clone();
        let dir = self.dir.take();
        let cleanup = std::thread::spawn(move || {
            if mounted {
                let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
            }
            drop(dir);
        });
        if let Ok(mut pending) = PENDING_CLEANUPS.lock() {
            pending.retain(|h| !h.is_finished());
            pending.push(cleanup);
        }
    }
}

static PENDING_CLEANUPS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits until every container's writable layer is unmounted and deleted.
pub fn finish_cleanups() {
    let pending = PENDING_CLEANUPS
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    for handle in pending {
        let _ = handle.join();
    }
}

/// Copies a directory tree with `cp -a` (keeps modes, owners, symlinks; reflinks where it can).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let cwd = from.parent().unwrap_or(Path::new("/"));
    output_checked(
        command("cp", cwd)
            .arg("-a")
            .arg("--reflink=auto")
            .arg("--no-target-directory")
            .arg(from)
            .arg(to),
    )
    .map(|_| ())
    .map_err(std::io::Error::other)
}

/// Makes `to` a tree of hard links to `from`'s files (`cp -al`), or a copy across filesystems.
pub fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let cwd = from.parent().unwrap_or(Path::new("/"));
    let linked = output_checked(
        command("cp", cwd)
            .arg("-al")
            .arg("--no-target-directory")
            .arg(from)
            .arg(to),
    );
    match linked {
        Ok(_) => Ok(()),
        Err(_) => {
            let _ = std::fs::remove_dir_all(to);
            copy_tree(from, to)
        }
    }
}

/// Image rootfs directories cached by digest: `<dir>/<hex>/rootfs` plus `metadata.json`.
#[derive(Clone, Debug)]
pub struct RootfsCache {
    dir: PathBuf,
}

impl RootfsCache {
    /// A cache in `dir`.
    pub fn new(dir: &Path) -> Self {
        RootfsCache {
            dir: dir.to_owned(),
        }
    }

    /// Where an image with this digest is (or would be) cached.
    pub fn entry(&self, digest: &str) -> PathBuf {
        let key: String = digest
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.dir.join(key)
    }

    /// The cached image directory for `digest`, if complete.
    pub fn get(&self, digest: &str) -> Option<PathBuf> {
        let entry = self.entry(digest);
        entry.join(".complete").exists().then_some(entry)
    }

    /// Moves a fetched image directory (`rootfs/`, `metadata.json`) into the cache; a
    /// concurrent insert of the same digest wins harmlessly.
    pub fn insert(&self, digest: &str, fetched: &Path) -> std::io::Result<PathBuf> {
        if let Some(existing) = self.get(digest) {
            return Ok(existing);
        }
        std::fs::create_dir_all(&self.dir)?;
        let entry = self.entry(digest);
        let _ = std::fs::remove_dir_all(&entry);
        if std::fs::rename(fetched, &entry).is_err() {
            copy_tree(fetched, &entry)?;
        }
        std::fs::write(entry.join(".complete"), digest)?;
        Ok(entry)
    }
}

/// An image's config as registry-image's `in` writes it in `metadata.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageMetadata {
    /// `KEY=value` entries.
    pub env: Vec<(String, String)>,
    /// The default user.
    pub user: Option<String>,
}

impl ImageMetadata {
    /// Reads `metadata.json` beside a rootfs (missing ⇒ empty).
    pub fn read(image_dir: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(image_dir.join("metadata.json")) else {
            return Self::default();
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            return Self::default();
        };
        let env = json["env"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.as_str()?.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let user = json["user"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        ImageMetadata { env, user }
    }
}
