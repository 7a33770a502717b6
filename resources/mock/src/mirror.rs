//! `mirror_self`: `in` copies the root file system it runs in to `rootfs/` and writes
//! `metadata.json`, so the fetched version can serve as a task image (`image_resource`), as the
//! official resource does with `cp -a`.
//!
//! It must never copy a host's `/`: mirroring is refused unless the binary runs from
//! `/opt/resource/`, i.e. inside a resource image, and `/tmp`, `/dev`, `/proc` and `/sys` are
//! recreated empty, never descended into.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Top-level directories created empty (with their mode) instead of copied.
const NOT_COPIED: [&str; 4] = ["tmp", "dev", "proc", "sys"];

/// Whether `exe` is a resource image's binary (`/opt/resource/…`): only then is `/` an image.
pub fn runs_from_an_image(exe: &Path) -> bool {
    exe.starts_with("/opt/resource")
}

/// Copies the tree at `root` into `rootfs`, as `cp -a` per top-level entry: symlinks kept as
/// links, modes kept, [`NOT_COPIED`] directories recreated empty, `skip` (the destination, if it
/// lies inside `root`) left out.
pub fn copy_root(root: &Path, rootfs: &Path, skip: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(rootfs).with_context(|| format!("create {}", rootfs.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(root)
        .with_context(|| format!("read {}", root.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("read {}", root.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let to = rootfs.join(entry.file_name());
        let name = entry.file_name();
        if NOT_COPIED.iter().any(|n| name == *n) {
            let mode = entry.metadata()?.permissions().mode() & 0o7777;
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(&to)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .with_context(|| format!("create {}", to.display()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
        } else {
            copy_around(&from, &to, skip)?;
        }
    }
    Ok(())
}

/// [`copy_tree`], leaving out `skip` (and copying around it when it lies below `from`).
fn copy_around(from: &Path, to: &Path, skip: &Path) -> anyhow::Result<()> {
    if from == skip {
        return Ok(());
    }
    if !skip.starts_with(from) {
        return copy_tree(from, to);
    }
    let meta = std::fs::symlink_metadata(from).with_context(|| format!("{}", from.display()))?;
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    let mut children: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        copy_around(&child.path(), &to.join(child.file_name()), skip)?;
    }
    std::fs::set_permissions(to, meta.permissions())?;
    Ok(())
}

/// `cp -a from to` for one entry: files, directories (recursively) and symlinks.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(from).with_context(|| format!("{}", from.display()))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(from)?;
        std::os::unix::fs::symlink(&target, to)
            .with_context(|| format!("link {}", to.display()))?;
    } else if kind.is_dir() {
        std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
        let mut children: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            copy_tree(&child.path(), &to.join(child.file_name()))?;
        }
        std::fs::set_permissions(to, meta.permissions())?;
    } else if kind.is_file() {
        std::fs::copy(from, to)
            .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    }
    // Sockets, fifos and devices are left out: an image does not need them.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resource_images_are_mirrored() {
        assert!(runs_from_an_image(Path::new("/opt/resource/in")));
        assert!(runs_from_an_image(Path::new("/opt/resource/mock-resource")));
        assert!(!runs_from_an_image(Path::new(
            "/usr/local/bin/mock-resource"
        )));
        assert!(!runs_from_an_image(Path::new("/opt/resourceful/in")));
    }

    #[test]
    fn copies_like_cp_a_but_not_tmp_or_the_destination() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("opt/resource")).unwrap();
        std::fs::write(r.join("opt/resource/mock-resource"), "binary").unwrap();
        std::fs::set_permissions(
            r.join("opt/resource/mock-resource"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("mock-resource", r.join("opt/resource/in")).unwrap();
        std::fs::create_dir_all(r.join("tmp/build/get")).unwrap();
        std::fs::write(r.join("tmp/leftover"), "x").unwrap();
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::create_dir_all(r.join("work/dest")).unwrap();
        std::fs::write(r.join("work/keep"), "kept").unwrap();
        let dest = r.join("work/dest");
        let rootfs = dest.join("rootfs");

        copy_root(r, &rootfs, &dest).unwrap();

        let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
        assert_eq!(read("opt/resource/mock-resource"), "binary");
        let mode = std::fs::metadata(rootfs.join("opt/resource/mock-resource"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(rootfs.join("opt/resource/in")).unwrap(),
            Path::new("mock-resource")
        );
        assert_eq!(read("work/keep"), "kept");
        assert!(
            !rootfs.join("work/dest").exists(),
            "the destination is not copied into itself"
        );
        assert!(rootfs.join("tmp").is_dir());
        assert_eq!(std::fs::read_dir(rootfs.join("tmp")).unwrap().count(), 0);
        let tmp_mode = std::fs::metadata(rootfs.join("tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(tmp_mode & 0o7777, 0o1777);
    }
}
