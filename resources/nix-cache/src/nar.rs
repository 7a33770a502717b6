//! NAR (Nix ARchive) writing and reading, byte-identical to `nix-store --dump`.
//!
//! The writer streams a directory tree (regular files, executables, symlinks, directories) to
//! any [`Write`]; the reader parses a NAR from any [`Read`] without buffering file contents and
//! either unpacks it into a new directory or only validates it. The reader enforces what Nix
//! enforces: entries in strictly increasing byte order, no empty, `.`, `..` or `/`-containing
//! names, padding of zeros. Unpacking never writes outside its destination: every entry is
//! created fresh (never through an existing file or symlink) inside directories the unpacker
//! made itself.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"nix-archive-1";
/// Longest token, name or symlink target the reader accepts (Nix names are far shorter).
const MAX_STRING: u64 = 64 * 1024;
/// Deepest directory nesting the reader accepts.
const MAX_DEPTH: usize = 256;

/// Why a NAR could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    /// The archive is not a valid NAR.
    #[error("invalid nar: {0}")]
    Format(String),
    /// Reading, writing or creating files failed.
    #[error("nar: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

fn format_err(message: impl Into<String>) -> NarError {
    NarError::Format(message.into())
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> NarError {
    let context = context.into();
    move |source| NarError::Io { context, source }
}

// ---------------------------------------------------------------------------------------------
// Writing

fn write_padding(out: &mut impl Write, len: u64) -> io::Result<()> {
    let pad = (8 - (len % 8) as usize) % 8;
    out.write_all(&[0u8; 8][..pad])
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(&(bytes.len() as u64).to_le_bytes())?;
    out.write_all(bytes)?;
    write_padding(out, bytes.len() as u64)
}

/// Serialises the file, symlink or directory at `path` as a NAR into `out`.
pub fn dump_path(path: &Path, out: &mut impl Write) -> Result<(), NarError> {
    let mut out = io::BufWriter::with_capacity(256 * 1024, out);
    write_bytes(&mut out, MAGIC).map_err(io_err("write"))?;
    dump_node(path, &mut out)?;
    out.flush().map_err(io_err("write"))
}

fn dump_node(path: &Path, out: &mut impl Write) -> Result<(), NarError> {
    let meta = fs::symlink_metadata(path).map_err(io_err(format!("stat {}", path.display())))?;
    let w = |out: &mut _, tokens: &[&[u8]]| -> Result<(), NarError> {
        for t in tokens {
            write_bytes(out, t).map_err(io_err("write"))?;
        }
        Ok(())
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        let target = fs::read_link(path).map_err(io_err(format!("readlink {}", path.display())))?;
        w(
            out,
            &[
                b"(",
                b"type",
                b"symlink",
                b"target",
                target.as_os_str().as_bytes(),
                b")",
            ],
        )
    } else if file_type.is_file() {
        w(out, &[b"(", b"type", b"regular"])?;
        if meta.permissions().mode() & 0o100 != 0 {
            w(out, &[b"executable", b""])?;
        }
        w(out, &[b"contents"])?;
        let len = meta.len();
        out.write_all(&len.to_le_bytes()).map_err(io_err("write"))?;
        let file = fs::File::open(path).map_err(io_err(format!("open {}", path.display())))?;
        let copied = io::copy(&mut file.take(len), out)
            .map_err(io_err(format!("read {}", path.display())))?;
        if copied != len {
            return Err(format_err(format!(
                "{} shrank while being archived",
                path.display()
            )));
        }
        write_padding(out, len).map_err(io_err("write"))?;
        w(out, &[b")"])
    } else if file_type.is_dir() {
        w(out, &[b"(", b"type", b"directory"])?;
        let mut names: Vec<Vec<u8>> = fs::read_dir(path)
            .map_err(io_err(format!("list {}", path.display())))?
            .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(io_err(format!("list {}", path.display())))?;
        names.sort();
        for name in names {
            w(out, &[b"entry", b"(", b"name", &name, b"node"])?;
            dump_node(&path.join(std::ffi::OsStr::from_bytes(&name)), out)?;
            w(out, &[b")"])?;
        }
        w(out, &[b")"])
    } else {
        Err(format_err(format!(
            "{} is not a regular file, directory or symlink",
            path.display()
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// What the reader reports for each node, in archive order. `path` is relative to the root
/// (empty for the root itself) and made only of validated names.
pub trait NarVisitor {
    /// A directory; its entries follow.
    fn directory(&mut self, path: &Path) -> Result<(), NarError>;
    /// A regular file; `contents` must be read to its end (exactly `size` bytes).
    fn file(
        &mut self,
        path: &Path,
        executable: bool,
        size: u64,
        contents: &mut dyn Read,
    ) -> Result<(), NarError>;
    /// A symlink with its raw target.
    fn symlink(&mut self, path: &Path, target: &[u8]) -> Result<(), NarError>;
}

struct Parser<R> {
    reader: R,
}

impl<R: Read> Parser<R> {
    fn read_u64(&mut self) -> Result<u64, NarError> {
        let mut buf = [0u8; 8];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| truncated_or(e, "read"))?;
        Ok(u64::from_le_bytes(buf))
    }

    fn read_padding(&mut self, len: u64) -> Result<(), NarError> {
        let pad = (8 - (len % 8) as usize) % 8;
        let mut buf = [0u8; 8];
        self.reader
            .read_exact(&mut buf[..pad])
            .map_err(|e| truncated_or(e, "read"))?;
        if buf.iter().any(|b| *b != 0) {
            return Err(format_err("non-zero padding"));
        }
        Ok(())
    }

    fn read_string(&mut self) -> Result<Vec<u8>, NarError> {
        let len = self.read_u64()?;
        if len > MAX_STRING {
            return Err(format_err(format!("string of {len} bytes is too long")));
        }
        let mut buf = vec![0u8; len as usize];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| truncated_or(e, "read"))?;
        self.read_padding(len)?;
        Ok(buf)
    }

    fn expect(&mut self, token: &[u8]) -> Result<(), NarError> {
        let got = self.read_string()?;
        if got != token {
            return Err(format_err(format!(
                "expected {:?}, found {:?}",
                String::from_utf8_lossy(token),
                String::from_utf8_lossy(&got[..got.len().min(64)])
            )));
        }
        Ok(())
    }

    fn node(
        &mut self,
        path: &Path,
        depth: usize,
        visitor: &mut dyn NarVisitor,
    ) -> Result<(), NarError> {
        if depth > MAX_DEPTH {
            return Err(format_err(format!("nesting deeper than {MAX_DEPTH}")));
        }
        self.expect(b"(")?;
        self.expect(b"type")?;
        let kind = self.read_string()?;
        match kind.as_slice() {
            b"regular" => {
                let mut tag = self.read_string()?;
                let executable = tag == b"executable";
                if executable {
                    self.expect(b"")?;
                    tag = self.read_string()?;
                }
                if tag != b"contents" {
                    return Err(format_err(format!(
                        "expected \"contents\", found {:?}",
                        String::from_utf8_lossy(&tag)
                    )));
                }
                let size = self.read_u64()?;
                let mut contents = (&mut self.reader).take(size);
                visitor.file(path, executable, size, &mut contents)?;
                if contents.limit() != 0 {
                    // The visitor stopped early: drain the rest so the stream stays aligned.
                    io::copy(&mut contents, &mut io::sink())
                        .map_err(|e| truncated_or(e, "read"))?;
                    if contents.limit() != 0 {
                        return Err(format_err("truncated file contents"));
                    }
                }
                self.read_padding(size)?;
                self.expect(b")")
            }
            b"symlink" => {
                self.expect(b"target")?;
                let target = self.read_string()?;
                if target.is_empty() || target.contains(&0) {
                    return Err(format_err("empty symlink target or NUL in it"));
                }
                visitor.symlink(path, &target)?;
                self.expect(b")")
            }
            b"directory" => {
                visitor.directory(path)?;
                let mut previous: Option<Vec<u8>> = None;
                loop {
                    let tag = self.read_string()?;
                    match tag.as_slice() {
                        b")" => return Ok(()),
                        b"entry" => {}
                        other => {
                            return Err(format_err(format!(
                                "expected \"entry\" or \")\", found {:?}",
                                String::from_utf8_lossy(other)
                            )));
                        }
                    }
                    self.expect(b"(")?;
                    self.expect(b"name")?;
                    let name = self.read_string()?;
                    validate_name(&name)?;
                    if let Some(prev) = &previous
                        && name.as_slice() <= prev.as_slice()
                    {
                        return Err(format_err(format!(
                            "entries not in strictly increasing order: {:?} after {:?}",
                            String::from_utf8_lossy(&name),
                            String::from_utf8_lossy(prev)
                        )));
                    }
                    self.expect(b"node")?;
                    let child = path.join(std::ffi::OsStr::from_bytes(&name));
                    self.node(&child, depth + 1, visitor)?;
                    self.expect(b")")?;
                    previous = Some(name);
                }
            }
            other => Err(format_err(format!(
                "unknown node type {:?}",
                String::from_utf8_lossy(other)
            ))),
        }
    }
}

fn truncated_or(e: io::Error, context: &str) -> NarError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        format_err("unexpected end of archive")
    } else {
        NarError::Io {
            context: context.to_owned(),
            source: e,
        }
    }
}

fn validate_name(name: &[u8]) -> Result<(), NarError> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(format_err(format!(
            "invalid entry name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// Parses a whole NAR from `reader`, reporting every node to `visitor`. Bytes after the
/// archive are an error.
pub fn parse(reader: impl Read, visitor: &mut dyn NarVisitor) -> Result<(), NarError> {
    let mut parser = Parser { reader };
    let magic = parser.read_string()?;
    if magic != MAGIC {
        return Err(format_err("not a nar (bad magic)"));
    }
    parser.node(Path::new(""), 0, visitor)?;
    let mut extra = [0u8; 1];
    match parser.reader.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(format_err("trailing bytes after the archive")),
        Err(e) => Err(truncated_or(e, "read")),
    }
}

/// A visitor that only checks structure and consumes contents.
struct Validate;

impl NarVisitor for Validate {
    fn directory(&mut self, _: &Path) -> Result<(), NarError> {
        Ok(())
    }
    fn file(&mut self, _: &Path, _: bool, _: u64, contents: &mut dyn Read) -> Result<(), NarError> {
        io::copy(contents, &mut io::sink()).map_err(|e| truncated_or(e, "read"))?;
        Ok(())
    }
    fn symlink(&mut self, _: &Path, _: &[u8]) -> Result<(), NarError> {
        Ok(())
    }
}

/// Checks that `reader` holds one well-formed NAR.
pub fn validate(reader: impl Read) -> Result<(), NarError> {
    parse(reader, &mut Validate)
}

/// Unpacks into `dest`, which must not exist yet.
struct Unpack {
    dest: PathBuf,
}

impl Unpack {
    fn target(&self, path: &Path) -> PathBuf {
        if path.as_os_str().is_empty() {
            self.dest.clone()
        } else {
            self.dest.join(path)
        }
    }
}

impl NarVisitor for Unpack {
    fn directory(&mut self, path: &Path) -> Result<(), NarError> {
        let target = self.target(path);
        fs::create_dir(&target).map_err(io_err(format!("create {}", target.display())))
    }

    fn file(
        &mut self,
        path: &Path,
        executable: bool,
        _size: u64,
        contents: &mut dyn Read,
    ) -> Result<(), NarError> {
        let target = self.target(path);
        // create_new refuses existing files and symlinks, so nothing is written through them.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(io_err(format!("create {}", target.display())))?;
        io::copy(contents, &mut file).map_err(|e| truncated_or(e, "write"))?;
        let mode = if executable { 0o755 } else { 0o644 };
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(format!("chmod {}", target.display())))
    }

    fn symlink(&mut self, path: &Path, target: &[u8]) -> Result<(), NarError> {
        let link = self.target(path);
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &link)
            .map_err(io_err(format!("symlink {}", link.display())))
    }
}

/// Unpacks the NAR in `reader` to `dest` (which must not exist; its parent must). On error,
/// a partial tree may remain at `dest`; callers unpack into a temporary name and rename.
pub fn unpack(reader: impl Read, dest: &Path) -> Result<(), NarError> {
    parse(
        reader,
        &mut Unpack {
            dest: dest.to_path_buf(),
        },
    )
}

/// A NAR builder for tests and fixtures: writes nodes in the order given, without sorting or
/// validating, so malformed archives can be made on purpose.
#[doc(hidden)]
pub mod raw {
    use super::write_bytes;

    /// Encodes tokens as NAR strings.
    pub fn strings(tokens: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for t in tokens {
            write_bytes(&mut out, t).unwrap_or_default();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nar_of(tokens: &[&[u8]]) -> Vec<u8> {
        raw::strings(tokens)
    }

    fn check_validate(tokens: &[&[u8]], expect: Result<(), &str>) {
        let got = validate(&nar_of(tokens)[..]).map_err(|e| e.to_string());
        match expect {
            Ok(()) => assert!(got.is_ok(), "{got:?}"),
            Err(e) => {
                let msg = got.expect_err(e);
                assert!(msg.contains(e), "expected {e:?} in {msg:?}");
            }
        }
    }

    fn dir(entries: &[&[u8]]) -> Vec<&'static [u8]> {
        let mut t: Vec<&'static [u8]> = vec![b"nix-archive-1", b"(", b"type", b"directory"];
        for name in entries {
            let name: &'static [u8] = Box::leak(name.to_vec().into_boxed_slice());
            t.extend_from_slice(&[
                b"entry", b"(", b"name", name, b"node", b"(", b"type", b"symlink", b"target", b"x",
                b")", b")",
            ]);
        }
        t.push(b")");
        t
    }

    #[test]
    fn validates_structure() {
        check_validate(&dir(&[b"a", b"b"]), Ok(()));
        check_validate(&dir(&[b"b", b"a"]), Err("not in strictly increasing order"));
        check_validate(&dir(&[b"a", b"a"]), Err("not in strictly increasing order"));
        check_validate(&dir(&[b".."]), Err("invalid entry name \"..\""));
        check_validate(&dir(&[b"."]), Err("invalid entry name \".\""));
        check_validate(&dir(&[b"a/b"]), Err("invalid entry name \"a/b\""));
        check_validate(&dir(&[b""]), Err("invalid entry name \"\""));
        check_validate(&[b"nix-archive-2"], Err("bad magic"));
        check_validate(
            &[b"nix-archive-1", b"(", b"type", b"fifo", b")"],
            Err("unknown node type"),
        );
        check_validate(
            &[b"nix-archive-1", b"(", b"type"],
            Err("unexpected end of archive"),
        );
        check_validate(
            &[
                b"nix-archive-1",
                b"(",
                b"type",
                b"symlink",
                b"target",
                b"x",
                b")",
                b"extra",
            ],
            Err("trailing bytes"),
        );
    }

    #[test]
    fn rejects_bad_padding_and_huge_strings() {
        let mut bytes = nar_of(&[b"nix-archive-1"]);
        bytes[8 + 13] = 1;
        assert!(
            validate(&bytes[..])
                .unwrap_err()
                .to_string()
                .contains("non-zero padding")
        );
        let mut huge = nar_of(&[b"nix-archive-1"]);
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            validate(&huge[..])
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }

    #[test]
    fn round_trips_a_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("d/e")).unwrap();
        fs::write(src.join("a"), "hello\n").unwrap();
        fs::write(src.join("empty"), "").unwrap();
        fs::write(src.join("d/e/run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("d/e/run"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("../a", src.join("d/link")).unwrap();
        let mut nar = Vec::new();
        dump_path(&src, &mut nar).unwrap();
        let out = tmp.path().join("out");
        unpack(&nar[..], &out).unwrap();
        let mut again = Vec::new();
        dump_path(&out, &mut again).unwrap();
        assert_eq!(nar, again);
        assert_eq!(
            fs::read_link(out.join("d/link")).unwrap(),
            Path::new("../a")
        );
        // Unpacking over an existing destination is refused.
        assert!(unpack(&nar[..], &out).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn valid_nar() -> Vec<u8> {
        raw::strings(&[
            b"nix-archive-1",
            b"(",
            b"type",
            b"directory",
            b"entry",
            b"(",
            b"name",
            b"a",
            b"node",
            b"(",
            b"type",
            b"regular",
            b"executable",
            b"",
            b"contents",
            b"hello",
            b")",
            b")",
            b"entry",
            b"(",
            b"name",
            b"b",
            b"node",
            b"(",
            b"type",
            b"symlink",
            b"target",
            b"a",
            b")",
            b")",
            b")",
        ])
    }

    proptest! {
        #[test]
        fn reader_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = validate(&bytes[..]);
        }

        #[test]
        fn reader_never_panics_on_corrupted_archives(
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..6),
            cut in 0usize..400,
        ) {
            let mut bytes = valid_nar();
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            bytes.truncate(cut.max(1).min(bytes.len()));
            let _ = validate(&bytes[..]);
        }

        #[test]
        fn formats_never_panic_on_text(text in "\\PC{0,300}") {
            let _ = crate::narinfo::NarInfo::parse(&text);
            let _ = crate::hash::Sha256Hash::parse(&text);
            let _ = crate::nix32::decode(&text, 20);
            let _ = crate::store_path::StorePath::parse(&text);
            let _ = crate::signing::PublicKey::parse(&text);
            let _ = crate::signing::SecretKey::parse(&text);
        }
    }

    #[test]
    fn the_sample_is_valid() {
        validate(&valid_nar()[..]).unwrap();
    }
}
