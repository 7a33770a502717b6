//! An index of an uncompressed tarball's members, so `out` can read an image tarball in place.
//!
//! A plain tar stores each regular member's bytes contiguously, so a member is fully described
//! by (offset, length) in the tarball: blobs are uploaded straight from there and small
//! documents (manifests, configs) are read into memory, without extracting anything. The index
//! is built by walking the headers only (data is seeked over), with the `tar` crate resolving
//! GNU long names and PAX `path`/`linkpath`/`size` records.
//!
//! Lookups resolve symbolic and hard links between members (old `docker save` tarballs link
//! repeated `layer.tar` files), and refuse what cannot be read in place: a link leading outside
//! the tarball (absolute, or climbing above its root), a sparse member (GNU or PAX sparse
//! formats store holes, not bytes), a directory or device where a file is expected.
//! Member names are normalised (`./a//b` is `a/b`); names that are absolute or contain `..`
//! are left out of the index, as the safe unpacker skips them.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How many links one lookup may traverse (Linux uses 40 too).
const MAX_LINK_HOPS: usize = 40;

/// A regular member's bytes inside the tarball.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Offset of the first data byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    File(Range),
    /// A symbolic link: its target, relative to the member's directory (or absolute).
    Symlink(String),
    /// A hard link: the name of the member it repeats, relative to the tarball's root.
    HardLink(String),
    Directory,
    Sparse,
    /// Anything else (fifo, device, PAX global header…): its kind, for messages.
    Other(&'static str),
}

/// Why a tarball cannot be indexed or a member cannot be read in place.
#[derive(Debug, thiserror::Error)]
pub enum TarIndexError {
    /// The tarball cannot be opened or its headers do not parse.
    #[error("{tarball}: not a readable tarball: {source}")]
    Read {
        /// The tarball.
        tarball: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No member of that name.
    #[error("{tarball}: no member {name:?}")]
    Missing {
        /// The tarball.
        tarball: String,
        /// The name looked up.
        name: String,
    },
    /// A link on the way leads outside the tarball.
    #[error("{tarball}: member {name:?} is a link to {target:?}, outside the tarball")]
    Outside {
        /// The tarball.
        tarball: String,
        /// The name looked up.
        name: String,
        /// The link target that escapes.
        target: String,
    },
    /// A sparse member: its bytes are not stored contiguously.
    #[error("{tarball}: member {name:?} is a sparse file, which cannot be read in place")]
    Sparse {
        /// The tarball.
        tarball: String,
        /// The name looked up.
        name: String,
    },
    /// A directory, device or the like where a file is expected.
    #[error("{tarball}: member {name:?} is a {kind}, not a file")]
    NotFile {
        /// The tarball.
        tarball: String,
        /// The name looked up.
        name: String,
        /// What it is.
        kind: &'static str,
    },
    /// Links that go round in circles.
    #[error("{tarball}: too many levels of links resolving member {name:?}")]
    Loop {
        /// The tarball.
        tarball: String,
        /// The name looked up.
        name: String,
    },
    /// A member larger than the caller reads into memory.
    #[error("{tarball}: member {name:?} is {len} bytes, more than the {limit} expected")]
    TooLarge {
        /// The tarball.
        tarball: String,
        /// The name looked up.
        name: String,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading a member's bytes failed.
    #[error("{tarball}: cannot read member {name:?}: {source}")]
    ReadMember {
        /// The tarball.
        tarball: String,
        /// The member.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The members of one uncompressed tarball, by normalised name (a later member of the same
/// name replaces an earlier one, as extraction would).
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
}

/// `a/./b//c` as `a/b/c`; `None` for absolute names and names with `..`.
fn normalise(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

impl TarIndex {
    /// Indexes the tarball at `path` (headers only; data is seeked over).
    pub fn open(path: &Path) -> Result<Self, TarIndexError> {
        let read_error = |source| TarIndexError::Read {
            tarball: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let mut archive = tar::Archive::new(io::BufReader::with_capacity(64 * 1024, file));
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            let name = entry.path().map_err(read_error)?;
            let Some(name) = normalise(&name.to_string_lossy()) else {
                continue;
            };
            let link = || {
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            use tar::EntryType as T;
            let member = match entry.header().entry_type() {
                T::Regular | T::Continuous => Member::File(Range {
                    offset: entry.raw_file_position(),
                    len: entry.size(),
                }),
                T::Symlink => Member::Symlink(link()),
                T::Link => Member::HardLink(link()),
                T::Directory => Member::Directory,
                T::GNUSparse => Member::Sparse,
                T::Char => Member::Other("character device"),
                T::Block => Member::Other("block device"),
                T::Fifo => Member::Other("fifo"),
                _ => Member::Other("special member"),
            };
            // PAX sparse formats (GNU 0.1/1.0) hide behind an ordinary file type.
            let member = match member {
                Member::File(_) if pax_sparse(&mut entry) => Member::Sparse,
                member => member,
            };
            if name.is_empty() {
                continue;
            }
            members.insert(name, member);
        }
        Ok(Self {
            path: path.to_owned(),
            members,
        })
    }

    /// The tarball.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many members were indexed.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the tarball has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `name` resolves to a regular member.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Where the bytes of member `name` are, following links between members.
    pub fn find(&self, name: &str) -> Result<Range, TarIndexError> {
        let tarball = || self.path.display().to_string();
        let mut pending: VecDeque<String> = name.split('/').map(str::to_owned).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        // The last link followed: what a `..` climbing out of the root came from.
        let mut via: Option<String> = None;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if resolved.pop().is_none() {
                        return Err(TarIndexError::Outside {
                            tarball: tarball(),
                            name: name.to_owned(),
                            target: via.clone().unwrap_or(part),
                        });
                    }
                    continue;
                }
                _ => resolved.push(part),
            }
            let (target, from_root) = match self.members.get(&resolved.join("/")) {
                Some(Member::Symlink(target)) => (target.clone(), false),
                Some(Member::HardLink(target)) => (target.clone(), true),
                _ => continue,
            };
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(TarIndexError::Loop {
                    tarball: tarball(),
                    name: name.to_owned(),
                });
            }
            if target.starts_with('/') || target.is_empty() {
                return Err(TarIndexError::Outside {
                    tarball: tarball(),
                    name: name.to_owned(),
                    target,
                });
            }
            via = Some(target.clone());
            resolved.pop();
            if from_root {
                resolved.clear();
            }
            // A `..` climbing above the root is caught when it is popped.
            for part in target.split('/').rev() {
                pending.push_front(part.to_owned());
            }
        }
        let key = resolved.join("/");
        match self.members.get(&key) {
            Some(Member::File(range)) => Ok(*range),
            Some(Member::Sparse) => Err(TarIndexError::Sparse {
                tarball: tarball(),
                name: name.to_owned(),
            }),
            Some(Member::Directory) => Err(TarIndexError::NotFile {
                tarball: tarball(),
                name: name.to_owned(),
                kind: "directory",
            }),
            Some(Member::Other(kind)) => Err(TarIndexError::NotFile {
                tarball: tarball(),
                name: name.to_owned(),
                kind,
            }),
            Some(Member::Symlink(_) | Member::HardLink(_)) | None => Err(TarIndexError::Missing {
                tarball: tarball(),
                name: name.to_owned(),
            }),
        }
    }

    /// Reads member `name` into memory, refusing one larger than `limit` bytes.
    pub fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, TarIndexError> {
        let range = self.find(name)?;
        if range.len > limit {
            return Err(TarIndexError::TooLarge {
                tarball: self.path.display().to_string(),
                name: name.to_owned(),
                len: range.len,
                limit,
            });
        }
        self.read_range(range)
            .map_err(|source| TarIndexError::ReadMember {
                tarball: self.path.display().to_string(),
                name: name.to_owned(),
                source,
            })
    }

    /// The bytes of `range`.
    pub fn read_range(&self, range: Range) -> io::Result<Vec<u8>> {
        let file = File::open(&self.path)?;
        let len = usize::try_from(range.len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "member too large"))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, range.offset)?;
        Ok(buf)
    }
}

/// Whether a member's PAX records describe it as sparse (`GNU.sparse.*`).
fn pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> bool {
    match entry.pax_extensions() {
        Ok(Some(extensions)) => extensions
            .flatten()
            .any(|ext| ext.key_bytes().starts_with(b"GNU.sparse.")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a test member is written.
    enum M<'a> {
        File(&'a [u8]),
        Dir,
        Symlink(&'a str),
        HardLink(&'a str),
        Fifo,
        /// A file described as sparse by PAX records.
        PaxSparse(&'a [u8]),
        /// A GNU sparse header (type `S`) with no holes.
        GnuSparse(&'a [u8]),
    }

    /// A tarball of `members`, written with PAX or GNU long-name headers as the tar crate
    /// chooses for names over 100 bytes.
    fn tarball(members: &[(&str, M<'_>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, member) in members {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            let data: &[u8] = match member {
                M::File(data) => data,
                M::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    b""
                }
                M::Symlink(_) | M::HardLink(_) | M::Fifo => {
                    header.set_entry_type(match member {
                        M::Symlink(_) => tar::EntryType::Symlink,
                        M::HardLink(_) => tar::EntryType::Link,
                        _ => tar::EntryType::Fifo,
                    });
                    b""
                }
                M::PaxSparse(data) => {
                    builder
                        .append_pax_extensions([
                            ("GNU.sparse.major", b"1".as_slice()),
                            ("GNU.sparse.minor", b"0".as_slice()),
                        ])
                        .unwrap();
                    data
                }
                M::GnuSparse(data) => {
                    header.set_entry_type(tar::EntryType::GNUSparse);
                    if let Some(gnu) = header.as_gnu_mut() {
                        gnu.sparse[0].offset = *b"00000000000\0";
                        let len = format!("{:011o}\0", data.len());
                        gnu.sparse[0].numbytes.copy_from_slice(len.as_bytes());
                        let real = format!("{:011o}\0", data.len());
                        gnu.realsize.copy_from_slice(real.as_bytes());
                    }
                    data
                }
            };
            header.set_size(data.len() as u64);
            match member {
                M::Symlink(target) | M::HardLink(target) => {
                    builder.append_link(&mut header, name, target).unwrap()
                }
                _ => builder.append_data(&mut header, name, data).unwrap(),
            }
        }
        builder.into_inner().unwrap()
    }

    fn index(members: &[(&str, M<'_>)]) -> (tempfile::TempDir, TarIndex) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        std::fs::write(&path, tarball(members)).unwrap();
        let index = TarIndex::open(&path).unwrap();
        (dir, index)
    }

    #[test]
    fn finds_members_through_long_names_and_links() {
        let long = format!("{}/layer.tar", "d".repeat(150));
        let long_link = format!("{}/link.tar", "e".repeat(120));
        let (_dir, index) = index(&[
            ("manifest.json", M::File(b"[]")),
            ("./a/", M::Dir),
            ("a/layer.tar", M::File(b"layer a bytes")),
            ("b/layer.tar", M::Symlink("../a/layer.tar")),
            ("c", M::Symlink("a")),
            ("hard.tar", M::HardLink("a/layer.tar")),
            (&long, M::File(b"long name")),
            (&long_link, M::Symlink(&format!("../{long}"))),
            ("dup", M::File(b"first")),
            ("dup", M::File(b"second")),
            ("empty", M::File(b"")),
        ]);
        // name -> content expected
        let cases: &[(&str, &[u8])] = &[
            ("manifest.json", b"[]"),
            ("./manifest.json", b"[]"),
            ("a/layer.tar", b"layer a bytes"),
            ("b/layer.tar", b"layer a bytes"),
            ("c/layer.tar", b"layer a bytes"),
            ("hard.tar", b"layer a bytes"),
            (&long, b"long name"),
            (&long_link, b"long name"),
            ("dup", b"second"),
            ("empty", b""),
        ];
        for (name, expect) in cases {
            assert_eq!(index.read(name, 1 << 20).unwrap(), *expect, "{name}");
        }
        assert!(index.contains("a/layer.tar"));
        assert!(!index.contains("a"));
    }

    #[test]
    fn refuses_what_cannot_be_read_in_place() {
        let (_dir, index) = index(&[
            ("up", M::Symlink("../../etc/passwd")),
            ("abs", M::Symlink("/etc/passwd")),
            ("hard-up", M::HardLink("x/../../etc/passwd")),
            ("dir/", M::Dir),
            ("via/", M::Symlink("..")),
            ("pax-sparse", M::PaxSparse(b"holes")),
            ("gnu-sparse", M::GnuSparse(b"holes")),
            ("fifo", M::Fifo),
            ("loop1", M::Symlink("loop2")),
            ("loop2", M::Symlink("loop1")),
            ("big", M::File(&[7u8; 100])),
        ]);
        let cases = [
            (
                "up",
                "is a link to \"../../etc/passwd\", outside the tarball",
            ),
            ("abs", "is a link to \"/etc/passwd\", outside the tarball"),
            ("hard-up", "outside the tarball"),
            ("via/x", "outside the tarball"),
            ("pax-sparse", "is a sparse file"),
            ("gnu-sparse", "is a sparse file"),
            ("dir", "is a directory, not a file"),
            ("fifo", "is a fifo, not a file"),
            ("loop1", "too many levels of links"),
            ("nothing", "no member \"nothing\""),
            ("big", "is 100 bytes, more than the 10 expected"),
        ];
        for (name, expect) in cases {
            let err = index.read(name, 10).unwrap_err().to_string();
            assert!(err.contains(expect), "{name}: {err}");
            assert!(err.contains("t.tar"), "{name}: {err}");
        }
    }

    #[test]
    fn ranges_are_the_member_bytes() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let (_dir, index) = index(&[("x", M::File(b"abc")), ("blob", M::File(&data))]);
        let range = index.find("blob").unwrap();
        assert_eq!(range.len, 5000);
        assert_eq!(range.offset % 512, 0);
        assert_eq!(index.read_range(range).unwrap(), data);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn unreadable_tarballs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.tar");
        let mut bad = tarball(&[("x", M::File(b"abc"))]);
        bad[100] ^= 0xff; // inside the first header: checksum mismatch
        std::fs::write(&path, &bad).unwrap();
        let err = TarIndex::open(&path).unwrap_err().to_string();
        assert!(err.contains("not a readable tarball"), "{err}");
        let err = TarIndex::open(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent"), "{err}");
    }
}
