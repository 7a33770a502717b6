//! What goes into an image's filesystem: the multi-call binary and its `check`/`in`/`out` names,
//! the shared libraries a dynamic binary needs, the CA bundle, `/etc/passwd`, `/etc/group`,
//! `/etc/hosts` and `/etc/nsswitch.conf` (so `localhost` resolves), `/tmp`.
//!
//! The result is a [`Rootfs`]: a sorted map from image path to entry, with every parent
//! directory present and every mode normalised. Nothing else (no shell, no package manager).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use resource_protocol::process::{command, output_checked};

use crate::types::ResourceType;

/// Where the multi-call binary and its three names live in every image.
pub const RESOURCE_DIR: &str = "opt/resource";
/// The CA bundle's path in every image (where Debian, Alpine and OpenSSL's probes look).
pub const CA_BUNDLE_PATH: &str = "etc/ssl/certs/ca-certificates.crt";
/// The operations the binary answers to by name.
pub const OPERATIONS: &[&str] = &["check", "in", "out"];

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";
/// `localhost` for runners that do not mount their own `/etc/hosts` (bubblewrap); Docker, runc
/// setups and Concourse's Garden mount theirs over it.
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
/// Files before DNS, so `localhost` resolves even where no DNS server answers; glibc's built-in
/// default asks DNS first and may stop there.
const NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\n";

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// Bytes made here (passwd, group).
    Bytes(Vec<u8>),
    /// A file on the host, read when the layer is written.
    File(PathBuf),
}

/// One entry of the image filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory with this mode (permission and sticky bits).
    Dir {
        /// e.g. `0o755`, `0o1777` for `/tmp`.
        mode: u32,
    },
    /// A regular file.
    File {
        /// `0o755` for executables and libraries, `0o644` otherwise.
        mode: u32,
        /// Its bytes.
        contents: Contents,
    },
    /// A symbolic link to `target` (relative targets keep the image relocatable).
    Symlink {
        /// What the link points at.
        target: String,
    },
}

/// An image filesystem: relative paths (no leading `/`) in component order, parents first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rootfs {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Rootfs {
    /// Adds `entry` at `path` (relative or absolute, normalised), creating missing parent
    /// directories with mode `0o755`. A later insert at the same path replaces the earlier one.
    pub fn insert(&mut self, path: &str, entry: Entry) {
        let path: PathBuf = Path::new(path)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let mut parent = PathBuf::new();
        if let Some(dir) = path.parent() {
            for component in dir.components() {
                parent.push(component);
                self.entries
                    .entry(parent.clone())
                    .or_insert(Entry::Dir { mode: 0o755 });
            }
        }
        self.entries.insert(path, entry);
    }

    /// The entries, parents before children, siblings by name.
    pub fn entries(&self) -> impl Iterator<Item = (&Path, &Entry)> {
        self.entries
            .iter()
            .map(|(path, entry)| (path.as_path(), entry))
    }

    /// Removes the entry at `path` (relative), returning it.
    pub fn remove(&mut self, path: &str) -> Option<Entry> {
        self.entries.remove(Path::new(path))
    }

    /// The entry at `path` (relative), if any.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(Path::new(path))
    }
}

/// Errors while collecting an image's files.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The resource binary is not where the build looked.
    #[error("binary {path} not found: build it first (see images/README.md) or pass --binaries")]
    MissingBinary {
        /// Where it was expected.
        path: PathBuf,
    },
    /// The host CA bundle is missing.
    #[error("CA bundle {path} not found: install ca-certificates or pass --ca-bundle")]
    MissingCaBundle {
        /// Where it was expected.
        path: PathBuf,
    },
    /// A tool (`strip`, `ldd`) failed.
    #[error(transparent)]
    Tool(#[from] resource_protocol::process::ProcessError),
    /// `ldd` printed something we cannot read.
    #[error("ldd {binary}: cannot read line {line:?}")]
    Ldd {
        /// The binary.
        binary: PathBuf,
        /// The line.
        line: String,
    },
    /// Reading or copying a file failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// How to collect an image's files.
#[derive(Debug, Clone)]
pub struct RootfsOptions<'a> {
    /// Directory holding `<type>-resource` binaries.
    pub binaries: &'a Path,
    /// The host CA bundle to copy in.
    pub ca_bundle: &'a Path,
    /// Strip symbols from the binary (into `scratch`) before packing it.
    pub strip: bool,
    /// A directory for the stripped copy; must live as long as the [`Rootfs`].
    pub scratch: &'a Path,
}

/// The filesystem of `resource_type`'s image.
pub fn collect(
    resource_type: &ResourceType,
    options: &RootfsOptions<'_>,
) -> Result<Rootfs, RootfsError> {
    let binary_name = resource_type.binary_name();
    let built = options.binaries.join(&binary_name);
    if !built.is_file() {
        return Err(RootfsError::MissingBinary { path: built });
    }
    if !options.ca_bundle.is_file() {
        return Err(RootfsError::MissingCaBundle {
            path: options.ca_bundle.to_owned(),
        });
    }
    let binary = if options.strip {
        let stripped = options.scratch.join(&binary_name);
        output_checked(
            command("strip", options.scratch)
                .arg("--strip-all")
                .arg("-o")
                .arg(&stripped)
                .arg(&built),
        )?;
        stripped
    } else {
        built
    };

    let mut rootfs = Rootfs::default();
    for library in shared_libraries(&binary)? {
        let source = std::fs::canonicalize(&library).map_err(|source| RootfsError::Io {
            what: format!("resolve {}", library.display()),
            source,
        })?;
        rootfs.insert(
            &library.to_string_lossy(),
            Entry::File {
                mode: 0o755,
                contents: Contents::File(source),
            },
        );
    }
    rootfs.insert(
        &format!("{RESOURCE_DIR}/{binary_name}"),
        Entry::File {
            mode: 0o755,
            contents: Contents::File(binary),
        },
    );
    for operation in OPERATIONS {
        rootfs.insert(
            &format!("{RESOURCE_DIR}/{operation}"),
            Entry::Symlink {
                target: binary_name.clone(),
            },
        );
    }
    rootfs.insert(
        CA_BUNDLE_PATH,
        Entry::File {
            mode: 0o644,
            contents: Contents::File(options.ca_bundle.to_owned()),
        },
    );
    rootfs.insert(
        "etc/passwd",
        Entry::File {
            mode: 0o644,
            contents: Contents::Bytes(PASSWD.as_bytes().to_vec()),
        },
    );
    rootfs.insert(
        "etc/group",
        Entry::File {
            mode: 0o644,
            contents: Contents::Bytes(GROUP.as_bytes().to_vec()),
        },
    );
    for (path, text) in [("etc/hosts", HOSTS), ("etc/nsswitch.conf", NSSWITCH)] {
        rootfs.insert(
            path,
            Entry::File {
                mode: 0o644,
                contents: Contents::Bytes(text.as_bytes().to_vec()),
            },
        );
    }
    rootfs.insert("tmp", Entry::Dir { mode: 0o1777 });
    rootfs.insert("root", Entry::Dir { mode: 0o700 });
    Ok(rootfs)
}

/// The absolute paths (as the dynamic loader will look them up) of every shared library and
/// the interpreter `binary` loads; empty for a static binary.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, RootfsError> {
    let cwd = binary.parent().unwrap_or(Path::new("/"));
    let output = command("ldd", cwd)
        .arg(binary)
        .output()
        .map_err(|source| RootfsError::Io {
            what: "run ldd".into(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // glibc's ldd exits 1 with "not a dynamic executable" for static binaries, and prints
    // "statically linked" for static-pie ones.
    if stdout.contains("statically linked") || stderr.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        return Err(RootfsError::Tool(
            resource_protocol::process::ProcessError::Failed {
                program: "ldd".into(),
                status: output.status,
                stderr: resource_protocol::process::stderr_tail(&output.stderr),
            },
        ));
    }
    parse_ldd(&stdout).map_err(|line| RootfsError::Ldd {
        binary: binary.to_owned(),
        line,
    })
}

/// The library paths in `ldd` output, sorted; `Err(line)` for a line that names a library
/// ldd could not find.
pub fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, String> {
    let mut libraries = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`,
        // `linux-vdso.so.1 (0x…)` (in the kernel, nothing to copy), `libx.so => not found`.
        let path = match line.split_once(" => ") {
            Some((_, rest)) => rest.split(" (").next().unwrap_or_default().trim(),
            None => line.split(" (").next().unwrap_or_default().trim(),
        };
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        } else if line.contains("=>") || !line.starts_with("linux-vdso") {
            return Err(line.to_owned());
        }
    }
    libraries.sort();
    libraries.dedup();
    Ok(libraries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ldd(output: &str, expect: Result<&[&str], &str>) {
        let got = parse_ldd(output);
        let expect = expect
            .map(|paths| paths.iter().map(PathBuf::from).collect::<Vec<_>>())
            .map_err(str::to_owned);
        assert_eq!(got, expect, "{output}");
    }

    #[test]
    fn ldd_output() {
        check_ldd(
            "\tlinux-vdso.so.1 (0x00007ffd)\n\
             \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007fb1)\n\
             \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fb2)\n\
             \t/lib64/ld-linux-x86-64.so.2 (0x00007fb3)\n",
            Ok(&[
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2",
            ]),
        );
        check_ldd("", Ok(&[]));
        check_ldd(
            "\tlibssl.so.3 => not found\n",
            Err("libssl.so.3 => not found"),
        );
    }

    #[test]
    fn insert_adds_parents_and_normalises_paths() {
        let mut rootfs = Rootfs::default();
        rootfs.insert("/opt/resource/check", Entry::Symlink { target: "x".into() });
        rootfs.insert(
            "etc/passwd",
            Entry::File {
                mode: 0o644,
                contents: Contents::Bytes(vec![]),
            },
        );
        rootfs.insert("tmp", Entry::Dir { mode: 0o1777 });
        let paths: Vec<_> = rootfs
            .entries()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "etc",
                "etc/passwd",
                "opt",
                "opt/resource",
                "opt/resource/check",
                "tmp"
            ]
        );
        assert_eq!(rootfs.get("tmp"), Some(&Entry::Dir { mode: 0o1777 }));
        assert_eq!(rootfs.get("opt"), Some(&Entry::Dir { mode: 0o755 }));
    }
}
