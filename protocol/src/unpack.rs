//! Safe unpacking of archives (OCI image layers, tarballs) into a destination directory.
//!
//! Every writer of a DEST (registry-image layers, the orchestrator's image cache) goes through
//! this module, which must never let an entry write outside the destination: entries with `..`
//! components or absolute paths are skipped, every parent directory is resolved *inside* the
//! root (a symlink on the way is followed as if the root were `/`, the way a container sees it),
//! the final component is never followed (an existing symlink is replaced, not written
//! through), and hard links may only name paths inside the root.
//!
//! On top of that it implements the OCI layer rules: `.wh.NAME` whiteouts delete `NAME` from the
//! lower layers, `.wh..wh..opq` empties a directory of what the lower layers put there; modes,
//! mtimes, symlinks and hard links are kept, ownership when running as root, and device nodes
//! are skipped when not root. Streams are gzip, zstd or plain tar, sniffed by magic bytes, and a
//! final tar block cut short (umoci 0.4 writes such layers) is tolerated.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;

/// Prefix of a whiteout entry's file name.
const WHITEOUT_PREFIX: &str = ".wh.";
/// File name of an opaque-directory whiteout.
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// How many symlinks one path may traverse before we give up (Linux uses 40 too).
const MAX_SYMLINK_HOPS: usize = 40;

/// How an archive is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Apply the owners recorded in the archive (needs root).
    pub preserve_ownership: bool,
    /// Create block and character devices (needs root); otherwise they are skipped.
    pub create_devices: bool,
    /// Interpret `.wh.` entries as OCI whiteouts (layers); otherwise they are ordinary files.
    pub whiteouts: bool,
}

impl UnpackOptions {
    /// Options for an OCI layer unpacked by the current user: ownership and devices only when
    /// running as root, whiteouts honoured.
    pub fn for_layers() -> Self {
        let root = is_root();
        Self {
            preserve_ownership: root,
            create_devices: root,
            whiteouts: true,
        }
    }

    /// Options for a plain tarball (no whiteout semantics) unpacked by the current user.
    pub fn for_tarballs() -> Self {
        Self {
            whiteouts: false,
            ..Self::for_layers()
        }
    }
}

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// What unpacking one archive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries written (files, directories, links, devices).
    pub written: u64,
    /// Whiteouts applied (including opaque ones).
    pub whiteouts: u64,
    /// Entries skipped, each with the reason (unsafe path, device when not root…).
    pub skipped: Vec<String>,
}

/// Unpacking failed: the archive is corrupt or the file system refused a write.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading the archive failed (corrupt compression or tar stream).
    #[error("cannot read archive: {0}")]
    Read(#[source] io::Error),
    /// Writing an entry failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The entry's path inside the archive.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The compression of a stream, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// Anything else: read as is.
    None,
}

/// Tells the compression from the first bytes of a stream.
pub fn sniff_compression(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for.
pub fn decompressing_reader<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    // `fill_buf` may return fewer bytes than the magic; a few bytes always arrive in the
    // first read of a real stream, and a short read only means "not compressed".
    let prefix = buffered.fill_buf()?;
    Ok(match sniff_compression(prefix) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        Compression::None => Box::new(buffered),
    })
}

/// Unpacks one archive (compressed or not) into `root`, which must exist.
///
/// Entries that would escape `root` are skipped and listed in the returned stats; I/O errors
/// on entries inside `root` are errors.
pub fn unpack_archive(
    reader: impl Read,
    root: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let decompressed = decompressing_reader(reader).map_err(UnpackError::Read)?;
    let end_of_stream = Rc::new(Cell::new(None));
    let mut archive = tar::Archive::new(PadToBlock::new(decompressed, Rc::clone(&end_of_stream)));
    let mut unpacker = Unpacker {
        end_of_stream,
        root,
        options,
        stats: UnpackStats::default(),
        written_here: HashSet::new(),
        directories: Vec::new(),
    };
    let entries = archive.entries().map_err(UnpackError::Read)?;
    for entry in entries {
        let mut entry = entry.map_err(UnpackError::Read)?;
        unpacker.apply_entry(&mut entry)?;
    }
    unpacker.finish_directories()?;
    Ok(unpacker.stats)
}

/// Pads a stream that ends mid-block with zeros up to the next 512-byte boundary, so a tar
/// whose last block was cut short still reads to the end.
struct PadToBlock<R> {
    inner: R,
    offset: u64,
    padding: Option<u64>,
    /// Where the real stream ended, once it has: file data past it was made up.
    end_of_stream: Rc<Cell<Option<u64>>>,
}

impl<R: Read> PadToBlock<R> {
    fn new(inner: R, end_of_stream: Rc<Cell<Option<u64>>>) -> Self {
        Self {
            inner,
            offset: 0,
            padding: None,
            end_of_stream,
        }
    }
}

impl<R: Read> Read for PadToBlock<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.padding.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 {
                self.offset += n as u64;
                return Ok(n);
            }
            self.padding = Some((512 - self.offset % 512) % 512);
            self.end_of_stream.set(Some(self.offset));
        }
        let left = self.padding.unwrap_or(0);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        buf[..n].fill(0);
        self.padding = Some(left - n as u64);
        Ok(n)
    }
}

/// The state of one archive being applied.
struct Unpacker<'a> {
    end_of_stream: Rc<Cell<Option<u64>>>,
    root: &'a Path,
    options: &'a UnpackOptions,
    stats: UnpackStats,
    /// Paths (relative to root) this archive wrote: an opaque whiteout keeps them.
    written_here: HashSet<PathBuf>,
    /// Directories whose mode and mtime are applied at the end (writing children changes them).
    directories: Vec<(PathBuf, u32, Option<u64>)>,
}

/// An entry's metadata we apply.
struct Attributes {
    mode: u32,
    mtime: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
}

impl Unpacker<'_> {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw_path = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw_path).into_owned();
        let Some(relative) = safe_relative_path(OsStr::from_bytes(&raw_path)) else {
            self.skip(&display, "path escapes the destination");
            return Ok(());
        };
        let xattrs = if self.options.preserve_ownership {
            extended_attributes(entry).map_err(UnpackError::Read)?
        } else {
            Vec::new()
        };
        let header = entry.header();
        let kind = header.entry_type();
        let attributes = Attributes {
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            mtime: header.mtime().ok(),
            uid: header.uid().ok(),
            gid: header.gid().ok(),
        };
        let write_error = |source: io::Error| UnpackError::Write {
            path: display.clone(),
            source,
        };

        let Some(name) = relative.file_name().map(OsStr::to_os_string) else {
            // The root itself (`./`): only a directory may describe it.
            if kind.is_dir() {
                self.directories
                    .push((self.root.to_path_buf(), attributes.mode, attributes.mtime));
                self.chown(self.root, &attributes).map_err(write_error)?;
            }
            return Ok(());
        };
        let parent_relative = relative.parent().unwrap_or(Path::new(""));

        if self.options.whiteouts && name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return self
                .apply_whiteout(parent_relative, &name)
                .map_err(write_error);
        }

        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Fifo => {}
            EntryType::Char | EntryType::Block if self.options.create_devices => {}
            EntryType::Char | EntryType::Block => {
                self.skip(&display, "device node (not running as root)");
                return Ok(());
            }
            // `git archive` and others start with a global PAX header: metadata, not a file.
            EntryType::XGlobalHeader => return Ok(()),
            other => {
                self.skip(&display, &format!("unsupported entry type {other:?}"));
                return Ok(());
            }
        }

        let parent = match resolve_in_root(self.root, parent_relative, true) {
            Ok(Some(parent)) => parent,
            Ok(None) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
                self.skip(&display, "a parent is not a directory");
                return Ok(());
            }
            Err(err) => return Err(write_error(err)),
        };
        let target = parent.join(&name);

        if kind.is_dir() {
            match fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    remove_any(&target).map_err(write_error)?;
                    create_dir(&target).map_err(write_error)?;
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    create_dir(&target).map_err(write_error)?;
                }
                Err(err) => return Err(write_error(err)),
            }
            self.chown(&target, &attributes).map_err(write_error)?;
            self.directories
                .push((target, attributes.mode, attributes.mtime));
        } else if kind.is_hard_link() {
            let Some(link_name) = entry.link_name_bytes().map(|n| n.into_owned()) else {
                self.skip(&display, "hard link without a target");
                return Ok(());
            };
            let Some(source) = self.hard_link_source(OsStr::from_bytes(&link_name)) else {
                self.skip(
                    &display,
                    "hard link target is outside the destination or missing",
                );
                return Ok(());
            };
            if source == target {
                return Ok(());
            }
            remove_existing(&target).map_err(write_error)?;
            fs::hard_link(&source, &target).map_err(write_error)?;
        } else {
            remove_existing(&target).map_err(write_error)?;
            match kind {
                EntryType::Symlink => {
                    let Some(link_name) = entry.link_name_bytes().map(|n| n.into_owned()) else {
                        self.skip(&display, "symlink without a target");
                        return Ok(());
                    };
                    // The target is data: we store it verbatim and never follow it.
                    std::os::unix::fs::symlink(OsStr::from_bytes(&link_name), &target)
                        .map_err(write_error)?;
                }
                EntryType::Fifo | EntryType::Char | EntryType::Block => {
                    let file_type = match kind {
                        EntryType::Fifo => rustix::fs::FileType::Fifo,
                        EntryType::Char => rustix::fs::FileType::CharacterDevice,
                        _ => rustix::fs::FileType::BlockDevice,
                    };
                    let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                    let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &target,
                        file_type,
                        rustix::fs::Mode::from_raw_mode(attributes.mode),
                        rustix::fs::makedev(major, minor),
                    )
                    .map_err(io::Error::from)
                    .map_err(write_error)?;
                }
                _ => {
                    let mut file = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                        .open(&target)
                        .map_err(write_error)?;
                    let size = io::copy(entry, &mut file).map_err(|err| {
                        if err.kind() == io::ErrorKind::UnexpectedEof {
                            UnpackError::Read(err)
                        } else {
                            write_error(err)
                        }
                    })?;
                    let data_end = entry.raw_file_position() + size;
                    if self.end_of_stream.get().is_some_and(|end| end < data_end) {
                        return Err(UnpackError::Read(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("archive ends inside {display}"),
                        )));
                    }
                }
            }
            self.chown(&target, &attributes).map_err(write_error)?;
            if kind != EntryType::Symlink {
                fs::set_permissions(&target, fs::Permissions::from_mode(attributes.mode))
                    .map_err(write_error)?;
            }
            // After chown, which clears `security.capability`.
            for (name, value) in &xattrs {
                if let Err(err) = rustix::fs::lsetxattr(
                    &target,
                    name.as_str(),
                    value,
                    rustix::fs::XattrFlags::empty(),
                ) {
                    let message = format!("{display}: cannot set extended attribute {name}: {err}");
                    tracing::warn!("{message}");
                }
            }
            if let Some(mtime) = attributes.mtime {
                let time = filetime::FileTime::from_unix_time(mtime as i64, 0);
                filetime::set_symlink_file_times(&target, time, time).map_err(write_error)?;
            }
        }
        self.stats.written += 1;
        self.written_here.insert(relative);
        Ok(())
    }

    /// `.wh.NAME` removes `NAME`; `.wh..wh..opq` empties the directory of lower-layer content.
    fn apply_whiteout(&mut self, parent_relative: &Path, name: &OsStr) -> io::Result<()> {
        let parent = match resolve_in_root(self.root, parent_relative, false) {
            Ok(Some(parent)) => parent,
            Ok(None) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotADirectory => return Ok(()),
            Err(err) => return Err(err),
        };
        self.stats.whiteouts += 1;
        if name == OPAQUE_WHITEOUT {
            return self.clear_lower_content(&parent, parent_relative);
        }
        let hidden = &name.as_bytes()[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
            return Ok(());
        }
        match fs::symlink_metadata(parent.join(OsStr::from_bytes(hidden))) {
            Ok(_) => remove_any(&parent.join(OsStr::from_bytes(hidden))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Removes every child of `dir` this archive did not write itself.
    fn clear_lower_content(&self, dir: &Path, relative: &Path) -> io::Result<()> {
        for child in fs::read_dir(dir)? {
            let child = child?;
            let child_relative = relative.join(child.file_name());
            if self.written_here.contains(&child_relative) {
                if child.file_type()?.is_dir() {
                    self.clear_lower_content(&child.path(), &child_relative)?;
                }
            } else {
                remove_any(&child.path())?;
            }
        }
        Ok(())
    }

    /// The real path a hard link's target names, if it exists inside the root and is no
    /// directory.
    fn hard_link_source(&self, link_name: &OsStr) -> Option<PathBuf> {
        let relative = safe_relative_path(link_name)?;
        let name = relative.file_name()?;
        let parent = resolve_in_root(self.root, relative.parent()?, false).ok()??;
        let source = parent.join(name);
        let meta = fs::symlink_metadata(&source).ok()?;
        (!meta.is_dir()).then_some(source)
    }

    fn chown(&self, path: &Path, attributes: &Attributes) -> io::Result<()> {
        if !self.options.preserve_ownership {
            return Ok(());
        }
        let uid = attributes.uid.and_then(|id| u32::try_from(id).ok());
        let gid = attributes.gid.and_then(|id| u32::try_from(id).ok());
        std::os::unix::fs::lchown(path, uid, gid)
    }

    fn skip(&mut self, path: &str, reason: &str) {
        tracing::warn!("skipping {path}: {reason}");
        self.stats.skipped.push(format!("{path}: {reason}"));
    }

    /// Applies directory modes and mtimes, deepest first, once all children are written.
    fn finish_directories(&mut self) -> Result<(), UnpackError> {
        let running_as_root = is_root();
        for (path, mode, mtime) in self.directories.iter().rev() {
            // A later entry may have replaced the directory, or one of its parents, with a
            // symlink: chmod would follow it, possibly outside the root.
            if !is_real_directory_in(self.root, path) {
                continue;
            }
            let write_error = |source| UnpackError::Write {
                path: path.display().to_string(),
                source,
            };
            // Without root a directory we cannot enter or write would break the next layer.
            let mode = if running_as_root { *mode } else { mode | 0o700 };
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(write_error)?;
            if let Some(mtime) = mtime {
                let time = filetime::FileTime::from_unix_time(*mtime as i64, 0);
                filetime::set_symlink_file_times(path, time, time).map_err(write_error)?;
            }
        }
        Ok(())
    }
}

/// Whether `path` is `root` or below it through real directories only (no symlink on the way).
fn is_real_directory_in(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let mut current = root.to_path_buf();
    for component in relative.components() {
        let Component::Normal(part) = component else {
            return false;
        };
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// The `SCHILY.xattr.*` PAX records of an entry (how tar carries extended attributes such as
/// `security.capability`).
fn extended_attributes<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(Vec::new());
    };
    let mut xattrs = Vec::new();
    for extension in extensions {
        let extension = extension?;
        if let Ok(key) = extension.key()
            && let Some(name) = key.strip_prefix("SCHILY.xattr.")
        {
            xattrs.push((name.to_owned(), extension.value_bytes().to_vec()));
        }
    }
    Ok(xattrs)
}

/// The entry path as plain components, or `None` when it is absolute or has a `..`.
fn safe_relative_path(raw: &OsStr) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

/// Resolves `relative` to a real directory inside `root`, following symlinks as if `root`
/// were `/` (absolute targets restart at root, `..` stops at root). Missing directories are
/// created when `create`, else the answer is `None`. A component that is neither a directory
/// nor a symlink is `NotADirectory`.
pub fn resolve_in_root(root: &Path, relative: &Path, create: bool) -> io::Result<Option<PathBuf>> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = relative
        .components()
        .rev()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == "." || part.is_empty() || part == "/" {
            continue;
        }
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.is_dir() => resolved.push(part),
            Ok(meta) if meta.is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "too many levels of symbolic links",
                    ));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                pending.extend(
                    target
                        .components()
                        .rev()
                        .map(|c| c.as_os_str().to_os_string()),
                );
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", candidate.display()),
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound && create => {
                create_dir(&candidate)?;
                resolved.push(part);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        }
    }
    let mut path = root.to_path_buf();
    path.extend(&resolved);
    Ok(Some(path))
}

fn create_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .or_else(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() {
                Ok(())
            } else {
                Err(err)
            }
        })
}

/// Removes whatever is at `path` (never following a symlink), if anything.
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => remove_any(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        make_tree_writable(path)?;
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Without root, a read-only directory's children cannot be removed: open it up first.
fn make_tree_writable(path: &Path) -> io::Result<()> {
    if is_root() {
        return Ok(());
    }
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() | 0o700))?;
        for child in fs::read_dir(path)? {
            make_tree_writable(&child?.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::*;

    /// One tar entry a test layer holds; names are written raw, so `..` and `/abs` survive.
    enum Item<'a> {
        Dir(&'a str, u32),
        File(&'a str, &'a str),
        FileMode(&'a str, &'a str, u32, u64),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        CharDevice(&'a str),
        Fifo(&'a str),
    }

    fn layer(items: &[Item<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(1_600_000_000);
            header.set_uid(0);
            header.set_gid(0);
            let (name, data): (&str, &[u8]) = match item {
                Item::Dir(name, mode) => {
                    header.set_entry_type(EntryType::Directory);
                    header.set_mode(*mode);
                    (name, b"")
                }
                Item::File(name, content) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_mode(0o644);
                    (name, content.as_bytes())
                }
                Item::FileMode(name, content, mode, mtime) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_mtime(*mtime);
                    (name, content.as_bytes())
                }
                Item::Symlink(name, target) | Item::HardLink(name, target) => {
                    header.set_entry_type(if matches!(item, Item::Symlink(..)) {
                        EntryType::Symlink
                    } else {
                        EntryType::Link
                    });
                    header.set_mode(0o777);
                    raw_name(&mut header.as_old_mut().linkname, target);
                    (name, b"")
                }
                Item::CharDevice(name) => {
                    header.set_entry_type(EntryType::Char);
                    header.set_mode(0o666);
                    header.set_device_major(1).unwrap();
                    header.set_device_minor(3).unwrap();
                    (name, b"")
                }
                Item::Fifo(name) => {
                    header.set_entry_type(EntryType::Fifo);
                    header.set_mode(0o600);
                    (name, b"")
                }
            };
            raw_name(&mut header.as_old_mut().name, name);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn raw_name(field: &mut [u8], name: &str) {
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// A sorted, human-readable listing of a tree: `path/ mode`, `path mode "content"`,
    /// `path -> target`.
    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        list_into(root, Path::new(""), &mut out);
        out.sort();
        out
    }

    fn list_into(dir: &Path, relative: &Path, out: &mut Vec<String>) {
        for child in fs::read_dir(dir).unwrap() {
            let child = child.unwrap();
            let path = child.path();
            let rel = relative.join(child.file_name());
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_symlink() {
                out.push(format!(
                    "{} -> {}",
                    rel.display(),
                    fs::read_link(&path).unwrap().display()
                ));
            } else if ft.is_dir() {
                out.push(format!("{}/ {mode:o}", rel.display()));
                list_into(&path, &rel, out);
            } else if ft.is_file() {
                let content = fs::read_to_string(&path).unwrap();
                out.push(format!("{} {mode:o} {content:?}", rel.display()));
            } else if ft.is_fifo() {
                out.push(format!("{} fifo", rel.display()));
            } else {
                out.push(format!("{} device", rel.display()));
            }
        }
    }

    /// Applies `layers` in order to a fresh DEST inside a sandbox that also holds an
    /// `outside/` directory, asserts `outside/` is unchanged, and returns DEST's listing.
    fn apply(layers: &[Vec<u8>], options: UnpackOptions) -> (Vec<String>, Vec<String>) {
        let sandbox = tempfile::tempdir().unwrap();
        let outside = sandbox.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "untouched").unwrap();
        let dest = sandbox.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let before = listing(sandbox.path());
        let mut skipped = Vec::new();
        for layer in layers {
            let layer = layer.replace_sandbox(sandbox.path());
            let stats = unpack_archive(layer.as_slice(), &dest, &options).unwrap();
            skipped.extend(stats.skipped);
        }
        let after: Vec<String> = listing(sandbox.path())
            .into_iter()
            .filter(|line| !line.starts_with("dest"))
            .collect();
        let before: Vec<String> = before
            .into_iter()
            .filter(|line| !line.starts_with("dest"))
            .collect();
        assert_eq!(before, after, "something outside DEST changed");
        assert_eq!(
            fs::read_to_string(outside.join("secret")).unwrap(),
            "untouched"
        );
        let skipped = skipped
            .into_iter()
            .map(|s| s.replace(&sandbox.path().display().to_string(), "SANDBOX"))
            .collect();
        // Absolute symlink targets resolve inside DEST, so DEST may hold the sandbox's path:
        // name it SANDBOX and drop its ancestors, which differ from machine to machine.
        let sandbox_relative = sandbox.path().display().to_string()[1..].to_owned();
        let mut tree = listing(&dest)
            .into_iter()
            .filter(|line| {
                let dir = line.strip_suffix("/ 755").unwrap_or("");
                dir.is_empty() || !sandbox_relative.starts_with(&format!("{dir}/"))
            })
            .map(|line| {
                line.replace(&sandbox_relative, "SANDBOX")
                    .replace("/SANDBOX", "SANDBOX")
            })
            .collect::<Vec<_>>();
        tree.sort();
        (tree, skipped)
    }

    /// Test layers name the sandbox as `SANDBOX`; each run substitutes its real path, keeping
    /// the tar valid (names are short and checksums recomputed).
    trait ReplaceSandbox {
        fn replace_sandbox(&self, sandbox: &Path) -> Vec<u8>;
    }

    impl ReplaceSandbox for Vec<u8> {
        fn replace_sandbox(&self, sandbox: &Path) -> Vec<u8> {
            if sniff_compression(self) != Compression::None
                || !self.windows(7).any(|w| w == b"SANDBOX")
            {
                return self.clone();
            }
            let mut archive = tar::Archive::new(self.as_slice());
            let mut builder = tar::Builder::new(Vec::new());
            let sandbox = sandbox.display().to_string();
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let mut header = entry.header().clone();
                let name =
                    String::from_utf8_lossy(&entry.path_bytes()).replace("SANDBOX", &sandbox);
                raw_name(&mut header.as_old_mut().name, &name);
                if let Some(link) = entry.link_name_bytes() {
                    let link = String::from_utf8_lossy(&link).replace("SANDBOX", &sandbox);
                    raw_name(&mut header.as_old_mut().linkname, &link);
                }
                header.set_cksum();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                builder.append(&header, data.as_slice()).unwrap();
            }
            builder.into_inner().unwrap()
        }
    }

    fn check(layers: &[&[Item<'_>]], expect: &[&str], expect_skipped: &[&str]) {
        let layers: Vec<Vec<u8>> = layers.iter().map(|items| layer(items)).collect();
        let (tree, skipped) = apply(&layers, UnpackOptions::for_layers());
        assert_eq!(tree, expect, "tree");
        let skipped_prefixes: Vec<String> = skipped
            .iter()
            .map(|s| s.split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(skipped_prefixes, expect_skipped, "skipped: {skipped:?}");
    }

    #[test]
    fn escapes_never_write_outside_dest() {
        use Item::*;
        // `..` and absolute paths are skipped.
        check(
            &[&[File("../outside/secret", "pwned"), File("../x", "x")]],
            &[],
            &["../outside/secret", "../x"],
        );
        check(
            &[&[File("SANDBOX/outside/abs", "pwned")]],
            &[],
            &["SANDBOX/outside/abs"],
        );
        check(
            &[&[File("a/../../x", "x"), File("./ok", "ok")]],
            &[r#"ok 644 "ok""#],
            &["a/../../x"],
        );
        // A symlink to outside, then a write through it, lands inside DEST (chroot semantics).
        check(
            &[&[
                Symlink("link", "SANDBOX/outside"),
                File("link/secret", "pwned"),
            ]],
            &[
                "SANDBOX/ 755",
                "SANDBOX/outside/ 755",
                r#"SANDBOX/outside/secret 644 "pwned""#,
                "link -> SANDBOX/outside",
            ],
            &[],
        );
        check(
            &[&[
                Symlink("up", "../../.."),
                File("up/outside/secret", "pwned"),
            ]],
            &[
                "outside/ 755",
                r#"outside/secret 644 "pwned""#,
                "up -> ../../..",
            ],
            &[],
        );
        // The same, with the symlink in a lower layer.
        check(
            &[
                &[Symlink("link", "../outside")],
                &[File("link/secret", "pwned")],
            ],
            &[
                "link -> ../outside",
                "outside/ 755",
                r#"outside/secret 644 "pwned""#,
            ],
            &[],
        );
        // A file replacing a symlink replaces it; it never writes through it.
        check(
            &[
                &[Symlink("s", "SANDBOX/outside/secret")],
                &[File("s", "pwned")],
            ],
            &[r#"s 644 "pwned""#],
            &[],
        );
        // Hard links to outside paths are skipped, however they are spelled.
        check(
            &[&[
                HardLink("h1", "../outside/secret"),
                HardLink("h2", "SANDBOX/outside/secret"),
                Symlink("sl", "SANDBOX/outside"),
                HardLink("h3", "sl/secret"),
            ]],
            &["sl -> SANDBOX/outside"],
            &["h1", "h2", "h3"],
        );
        // A whiteout through a symlinked parent deletes nothing outside.
        check(
            &[&[Symlink("sl", "../outside")], &[File("sl/.wh.secret", "")]],
            &["sl -> ../outside"],
            &[],
        );
        // A symlink replacing a directory (or its parent) of the same layer: the directory's
        // mode is not applied through it (found by the property test below).
        check(
            &[&[Dir("a", 0o700), Symlink("a", "../outside/secret")]],
            &["a -> ../outside/secret"],
            &[],
        );
        check(
            &[&[
                Dir("p", 0o755),
                Dir("p/q", 0o700),
                Symlink("p", "../outside"),
            ]],
            &["p -> ../outside"],
            &[],
        );
        // A directory entry replacing a symlink to outside does not chmod outside.
        check(
            &[&[Symlink("d", "../outside"), Dir("d", 0o700)]],
            &["d/ 700"],
            &[],
        );
    }

    #[test]
    fn applies_whiteouts_and_opaque_directories() {
        use Item::*;
        check(
            &[
                &[
                    Dir("a", 0o755),
                    File("a/b", "b"),
                    File("a/c", "c"),
                    Dir("a/sub", 0o755),
                    File("a/sub/deep", "d"),
                    File("d", "d"),
                    Dir("keep", 0o755),
                    File("keep/x", "x"),
                ],
                &[
                    File(".wh.d", ""),
                    File("a/new-before-opaque", "n"),
                    File("a/.wh..wh..opq", ""),
                    File("a/e", "e"),
                    File("keep/.wh.missing", ""),
                    File("nodir/.wh.x", ""),
                ],
            ],
            &[
                "a/ 755",
                r#"a/e 644 "e""#,
                r#"a/new-before-opaque 644 "n""#,
                "keep/ 755",
                r#"keep/x 644 "x""#,
            ],
            &[],
        );
        // A global PAX header (as `git archive` writes) is not a file.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(EntryType::XGlobalHeader);
        header.set_path("pax_global_header").unwrap();
        header.set_size(0);
        header.set_cksum();
        builder.append(&header, &b""[..]).unwrap();
        let (tree, skipped) = apply(
            &[builder.into_inner().unwrap()],
            UnpackOptions::for_tarballs(),
        );
        assert!(
            tree.is_empty() && skipped.is_empty(),
            "{tree:?} {skipped:?}"
        );
        // Without whiteout semantics `.wh.` files are ordinary files.
        let plain = layer(&[File(".wh.d", "")]);
        let (tree, _) = apply(&[plain], UnpackOptions::for_tarballs());
        assert_eq!(tree, [r#".wh.d 644 """#]);
    }

    #[test]
    fn keeps_modes_links_and_mtimes() {
        use Item::*;
        check(
            &[
                &[
                    Dir("bin", 0o755),
                    FileMode("bin/tool", "sh-script", 0o4755, 1_500_000_000),
                    HardLink("bin/alias", "bin/tool"),
                    Symlink("lib", "usr/lib"),
                    Dir("usr/lib", 0o700),
                    File("lib/libc.so", "elf"),
                    Dir("ro", 0o555),
                    File("ro/f", "f"),
                    Fifo("pipe"),
                ],
                // A later layer may write into a read-only directory and replace files.
                &[File("ro/g", "g"), File("bin/tool", "new")],
            ],
            &[
                "bin/ 755",
                r#"bin/alias 4755 "sh-script""#,
                r#"bin/tool 644 "new""#,
                "lib -> usr/lib",
                "pipe fifo",
                "ro/ 555",
                r#"ro/f 644 "f""#,
                r#"ro/g 644 "g""#,
                "usr/ 755",
                "usr/lib/ 700",
                r#"usr/lib/libc.so 644 "elf""#,
            ],
            &[],
        );
        let items = [
            Dir("d", 0o750),
            FileMode("d/f", "x", 0o640, 1_234_567_890),
            HardLink("d/g", "d/f"),
        ];
        let sandbox = tempfile::tempdir().unwrap();
        unpack_archive(
            layer(&items).as_slice(),
            sandbox.path(),
            &UnpackOptions::for_layers(),
        )
        .unwrap();
        let f = fs::metadata(sandbox.path().join("d/f")).unwrap();
        let g = fs::metadata(sandbox.path().join("d/g")).unwrap();
        assert_eq!(f.ino(), g.ino(), "hard link shares the inode");
        assert_eq!(f.mtime(), 1_234_567_890);
        assert_eq!(
            fs::metadata(sandbox.path().join("d")).unwrap().mtime(),
            1_600_000_000
        );
    }

    #[test]
    fn devices_only_when_allowed() {
        use Item::*;
        let items = layer(&[CharDevice("dev/null"), File("f", "f")]);
        let options = UnpackOptions {
            create_devices: false,
            ..UnpackOptions::for_layers()
        };
        let (tree, skipped) = apply(std::slice::from_ref(&items), options);
        assert_eq!(tree, [r#"f 644 "f""#]);
        assert_eq!(skipped, ["dev/null: device node (not running as root)"]);
        if is_root() {
            let (tree, skipped) = apply(&[items], UnpackOptions::for_layers());
            assert_eq!(tree, ["dev/ 755", "dev/null device", r#"f 644 "f""#]);
            assert!(skipped.is_empty());
        }
    }

    #[test]
    fn ownership_is_kept_as_root() {
        let mut header = tar::Header::new_gnu();
        header.set_path("owned").unwrap();
        header.set_mode(0o644);
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_size(0);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b""[..]).unwrap();
        let data = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack_archive(data.as_slice(), dir.path(), &UnpackOptions::for_layers()).unwrap();
        let meta = fs::metadata(dir.path().join("owned")).unwrap();
        if is_root() {
            assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        } else {
            assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
        }
    }

    #[test]
    fn extended_attributes_are_kept_as_root() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([("SCHILY.xattr.trusted.tributary", &b"yes"[..])])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("f").unwrap();
        header.set_mode(0o755);
        header.set_size(1);
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        let data = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack_archive(data.as_slice(), dir.path(), &UnpackOptions::for_layers()).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("f")).unwrap(), "x");
        let mut value = [0u8; 16];
        let read = rustix::fs::lgetxattr(dir.path().join("f"), "trusted.tributary", &mut value);
        if is_root() {
            assert_eq!(&value[..read.unwrap()], b"yes");
        } else {
            assert!(read.is_err());
        }
    }

    #[test]
    fn reads_gzip_zstd_plain_and_cut_short_layers() {
        use Item::*;
        let plain = layer(&[Dir("d", 0o755), File("d/f", "hello\n")]);
        let zstd = zstd::encode_all(plain.as_slice(), 3).unwrap();
        // umoci 0.4.7 ends a layer right after the last file's data: no padding, no end blocks.
        let cut = plain[..512 * 2 + 6].to_vec();
        let expect = ["d/ 755", r#"d/f 644 "hello\n""#];
        for (name, data) in [
            ("plain", plain.clone()),
            ("gzip", gzip(&plain)),
            ("zstd", zstd),
            ("cut short", cut.clone()),
            ("gzip cut short", gzip(&cut)),
        ] {
            let (tree, _) = apply(&[data], UnpackOptions::for_layers());
            assert_eq!(tree, expect, "{name}");
        }
        // A stream cut inside a file's data is an error, not a silent short file.
        let dir = tempfile::tempdir().unwrap();
        let err = unpack_archive(
            &plain[..512 * 2 + 3],
            dir.path(),
            &UnpackOptions::for_layers(),
        );
        assert!(err.is_err());
        let garbage = gzip(b"not a tar at all, but long enough to need a header......");
        let err = unpack_archive(garbage.as_slice(), dir.path(), &UnpackOptions::for_layers())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read archive"), "{err}");
    }

    /// Random layers over a small alphabet of names, links and whiteouts (including `..`,
    /// absolute paths and links to outside): whatever they hold, nothing outside DEST changes
    /// and nothing panics.
    mod random_layers {
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Kind {
            File,
            Dir,
            Symlink(String),
            HardLink(String),
        }

        fn name() -> impl Strategy<Value = String> {
            let part =
                prop::sample::select(vec!["a", "b", "..", ".", "l", ".wh.a", ".wh..wh..opq"]);
            (prop::bool::weighted(0.2), prop::collection::vec(part, 1..4)).prop_map(
                |(abs, parts)| {
                    let joined = parts.join("/");
                    if abs { format!("/{joined}") } else { joined }
                },
            )
        }

        fn kind() -> impl Strategy<Value = Kind> {
            let target = prop::sample::select(vec![
                "OUTSIDE",
                "OUTSIDE/secret",
                "../..",
                "..",
                "/",
                "a",
                "l/b",
                "../outside/secret",
            ])
            .prop_map(str::to_owned);
            prop_oneof![
                Just(Kind::File),
                Just(Kind::Dir),
                target.clone().prop_map(Kind::Symlink),
                target.prop_map(Kind::HardLink),
            ]
        }

        fn build(entries: &[(String, Kind)], outside: &Path) -> Vec<u8> {
            let outside = outside.display().to_string();
            let mut builder = tar::Builder::new(Vec::new());
            for (name, kind) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_mode(0o755);
                let data: &[u8] = match kind {
                    Kind::File => {
                        header.set_entry_type(EntryType::Regular);
                        b"pwned"
                    }
                    Kind::Dir => {
                        header.set_entry_type(EntryType::Directory);
                        b""
                    }
                    Kind::Symlink(target) | Kind::HardLink(target) => {
                        header.set_entry_type(if matches!(kind, Kind::Symlink(_)) {
                            EntryType::Symlink
                        } else {
                            EntryType::Link
                        });
                        raw_name(
                            &mut header.as_old_mut().linkname,
                            &target.replace("OUTSIDE", &outside),
                        );
                        b""
                    }
                };
                raw_name(&mut header.as_old_mut().name, name);
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder.append(&header, data).unwrap();
            }
            builder.into_inner().unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn nothing_outside_dest_changes(
                layers in prop::collection::vec(prop::collection::vec((name(), kind()), 1..8), 1..4)
            ) {
                let sandbox = tempfile::tempdir().unwrap();
                let outside = sandbox.path().join("outside");
                fs::create_dir(&outside).unwrap();
                fs::write(outside.join("secret"), "untouched").unwrap();
                fs::create_dir(outside.join("a")).unwrap();
                let dest = sandbox.path().join("dest");
                fs::create_dir(&dest).unwrap();
                let before = listing(&outside);
                for layer in &layers {
                    // Errors are allowed (a layer may be nonsense); escapes are not.
                    let _ = unpack_archive(build(layer, &outside).as_slice(), &dest, &UnpackOptions::for_layers());
                }
                prop_assert_eq!(listing(&outside), before);
                let mut siblings: Vec<_> = fs::read_dir(sandbox.path()).unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
                siblings.sort();
                prop_assert_eq!(siblings, ["dest", "outside"]);
            }
        }
    }

    #[test]
    fn resolves_symlinked_parents_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        fs::write(root.join("file"), "").unwrap();
        let cases: BTreeMap<&str, Result<Option<PathBuf>, io::ErrorKind>> = [
            ("lib", Ok(Some(root.join("usr/lib")))),
            ("lib/../..", Ok(Some(root.to_path_buf()))),
            ("missing/x", Ok(None)),
            ("file/x", Err(io::ErrorKind::NotADirectory)),
            ("loop", Err(io::ErrorKind::NotADirectory)),
        ]
        .into_iter()
        .collect();
        for (input, expect) in cases {
            let got = resolve_in_root(root, Path::new(input), false).map_err(|e| e.kind());
            assert_eq!(got, expect, "{input}");
        }
    }
}
