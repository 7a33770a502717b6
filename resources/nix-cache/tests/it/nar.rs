//! Our NAR writer and reader against real `nix-store --dump` and `--restore`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix_cache_resource::nar;
use testbed::tools::{require, run, temp_dir};

fn nix_dump(path: &Path) -> Vec<u8> {
    run(
        &require("nix-store", "nix-bin"),
        [std::ffi::OsStr::new("--dump"), path.as_os_str()],
        Path::new("/"),
    )
}

fn our_dump(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    nar::dump_path(path, &mut out).unwrap();
    out
}

type Setup = fn(&Path);

fn tree_cases() -> Vec<(&'static str, Setup)> {
    vec![
        ("regular file", |p| std::fs::write(p, "hello\n").unwrap()),
        ("empty file", |p| std::fs::write(p, "").unwrap()),
        ("executable", |p| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }),
        ("symlink", |p| {
            std::os::unix::fs::symlink("/nix/store/target", p).unwrap()
        }),
        ("empty dir", |p| std::fs::create_dir(p).unwrap()),
        ("nested tree", |p| {
            std::fs::create_dir_all(p.join("a/b/c")).unwrap();
            std::fs::write(p.join("a/b/c/deep"), vec![7u8; 100_003]).unwrap();
            std::fs::write(p.join("a/empty"), "").unwrap();
            std::fs::write(p.join("Z-upper"), "sorted before lower case").unwrap();
            std::fs::write(p.join("x.sh"), "echo").unwrap();
            std::fs::set_permissions(p.join("x.sh"), std::fs::Permissions::from_mode(0o700))
                .unwrap();
            std::os::unix::fs::symlink("../a", p.join("a/b/up")).unwrap();
            std::os::unix::fs::symlink("dangling", p.join("dangling")).unwrap();
            std::fs::create_dir(p.join("a/emptydir")).unwrap();
            std::fs::write(p.join("ünïcode"), "x").unwrap();
        }),
    ]
}

#[test]
fn writer_is_byte_identical_to_nix_store_dump() {
    let tmp = temp_dir("nar-dump");
    for (name, setup) in tree_cases() {
        let path = tmp.path().join(name.replace(' ', "-"));
        setup(&path);
        let ours = our_dump(&path);
        assert_eq!(ours, nix_dump(&path), "{name}");
        // Our reader accepts Nix's archive and unpacks it back to an identical tree.
        let restored = tmp
            .path()
            .join(format!("{}-restored", name.replace(' ', "-")));
        nar::unpack(&ours[..], &restored).unwrap();
        assert_eq!(nix_dump(&restored), ours, "{name} after unpack");
    }
}

#[test]
fn real_store_paths_dump_identically() {
    let tmp = temp_dir("nar-store");
    let paths = crate::support::build_closure(tmp.path(), "nar");
    for path in paths {
        assert_eq!(
            our_dump(Path::new(&path)),
            nix_dump(Path::new(&path)),
            "{path}"
        );
    }
}

#[test]
fn unpack_refuses_escapes_and_disorder() {
    let tmp = temp_dir("nar-bad");
    let entry = |name: &'static [u8]| -> Vec<&'static [u8]> {
        vec![
            b"entry",
            b"(",
            b"name",
            name,
            b"node",
            b"(",
            b"type",
            b"regular",
            b"contents",
            b"x",
            b")",
            b")",
        ]
    };
    let dir = |names: &[&'static [u8]]| {
        let mut tokens: Vec<&[u8]> = vec![b"nix-archive-1", b"(", b"type", b"directory"];
        for n in names {
            tokens.extend(entry(n));
        }
        tokens.push(b")");
        nar::raw::strings(&tokens)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (dir(&[b".."]), "invalid entry name \"..\""),
        (dir(&[b"../../etc/passwd"]), "invalid entry name"),
        (dir(&[b"/etc"]), "invalid entry name"),
        (dir(&[b"b", b"a"]), "not in strictly increasing order"),
        (dir(&[b"a", b"a"]), "not in strictly increasing order"),
    ];
    for (i, (bytes, expect)) in cases.into_iter().enumerate() {
        let dest = tmp.path().join(format!("case{i}"));
        let err = nar::unpack(&bytes[..], &dest).unwrap_err().to_string();
        assert!(err.contains(expect), "case {i}: {err}");
    }
    // Nothing was written outside the temp dir.
    assert!(!tmp.path().parent().unwrap().join("etc").exists());
}
