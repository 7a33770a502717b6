//! Tampered caches, missing or foreign signatures, and malformed input: our `in` fails with a
//! clear message and leaves no `store-path` file; real Nix rejects the same tampering.

use std::path::Path;

use nix_cache_resource::hash::Sha256Hash;
use nix_cache_resource::nar;
use serde_json::{Value, json};
use testbed::tools::temp_dir;

use crate::support::{WebDav, build_closure, get, nix, nix_keys, out, resource};

fn narinfo_path(cache: &WebDav, store_path: &str) -> std::path::PathBuf {
    let hash = &store_path["/nix/store/".len().."/nix/store/".len() + 32];
    cache.cache_dir().join(format!("{hash}.narinfo"))
}

fn edit(path: &Path, change: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, change(text)).unwrap();
}

/// What a case does to a freshly pushed cache, and what our `in` must say.
struct Case {
    name: &'static str,
    tamper: fn(&WebDav, &[String]),
    wrong_key: bool,
    expect: &'static str,
    nix_rejects: bool,
}

#[test]
fn tampering_and_bad_signatures_fail_without_a_store_path() {
    let tmp = temp_dir("nix-negative");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "good-1");
    let other = nix_keys(xdg, "other-1");
    let paths = build_closure(xdg, "negative");
    let top = paths[0].clone();
    let cases = [
        Case {
            name: "tampered nar",
            tamper: |cache, paths| {
                let info = std::fs::read_to_string(narinfo_path(cache, &paths[1])).unwrap();
                let url = info
                    .lines()
                    .find_map(|l| l.strip_prefix("URL: "))
                    .unwrap()
                    .to_owned();
                let file = cache.cache_dir().join(url);
                let mut bytes = std::fs::read(&file).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                std::fs::write(file, bytes).unwrap();
            },
            wrong_key: false,
            expect: "NAR hash mismatch",
            nix_rejects: true,
        },
        Case {
            name: "tampered narinfo",
            tamper: |cache, paths| {
                let fake = Sha256Hash::of(b"something else").to_nix32_string();
                edit(&narinfo_path(cache, &paths[2]), |t| {
                    let line = t
                        .lines()
                        .find(|l| l.starts_with("NarHash: "))
                        .unwrap()
                        .to_owned();
                    t.replace(&line, &format!("NarHash: {fake}"))
                });
            },
            wrong_key: false,
            expect: "no valid signature from a trusted key (signed by: good-1)",
            nix_rejects: true,
        },
        Case {
            name: "missing signature",
            tamper: |cache, paths| {
                edit(&narinfo_path(cache, &paths[1]), |t| {
                    t.lines()
                        .filter(|l| !l.starts_with("Sig: "))
                        .map(|l| format!("{l}\n"))
                        .collect()
                });
            },
            wrong_key: false,
            expect: "narinfo is not signed",
            nix_rejects: true,
        },
        Case {
            name: "wrong trusted key",
            tamper: |_, _| {},
            wrong_key: true,
            expect: "no valid signature from a trusted key",
            nix_rejects: false,
        },
    ];
    for case in cases {
        let cache = WebDav::start();
        let src = xdg.join(format!("src-{}", case.name.replace(' ', "-")));
        std::fs::create_dir(&src).unwrap();
        let push = json!({"url": cache.url(), "signing_key": keys.secret, "compression": "none"});
        out(&src, &push, &json!({"paths": [top]})).json();
        (case.tamper)(&cache, &paths);
        let trusted = if case.wrong_key {
            &other.public
        } else {
            &keys.public
        };
        let source = json!({"url": cache.url(), "trusted_public_keys": [trusted]});
        let dest = xdg.join(format!("dest-{}", case.name.replace(' ', "-")));
        let run = get(&dest, &source, &json!({"store_path": top}), &json!({}));
        run.failed_with(case.expect);
        assert!(
            !dest.join("store-path").exists(),
            "{}: store-path written",
            case.name
        );
        assert!(!run.stderr.contains(&keys.secret), "secret leaked");
        if case.nix_rejects {
            let store = xdg.join(format!("store-{}", case.name.replace(' ', "-")));
            let copied = nix(
                xdg,
                &[
                    "copy",
                    "--from",
                    &cache.url(),
                    "--to",
                    store.to_str().unwrap(),
                    "--option",
                    "trusted-public-keys",
                    &keys.public,
                    &top,
                ],
            );
            assert!(
                !copied.status.success(),
                "{}: nix accepted the tampered cache",
                case.name
            );
            let verified = nix(
                xdg,
                &[
                    "store",
                    "verify",
                    "--store",
                    &cache.url(),
                    "-r",
                    "--option",
                    "trusted-public-keys",
                    &keys.public,
                    &top,
                ],
            );
            assert_ne!(
                verified.status.code(),
                Some(0),
                "{}: nix store verify passed",
                case.name
            );
        }
    }
}

/// Serves `nar_bytes` (uncompressed) with a matching unsigned narinfo for a made-up path.
fn serve_raw(
    cache: &WebDav,
    nar_bytes: &[u8],
    narinfo_change: impl Fn(String) -> String,
) -> String {
    let path = "/nix/store/00000000000000000000000000000000-bad";
    let hash = Sha256Hash::of(nar_bytes);
    std::fs::create_dir_all(cache.cache_dir().join("nar")).unwrap();
    std::fs::write(cache.cache_dir().join("nar/bad.nar"), nar_bytes).unwrap();
    let info = format!(
        "StorePath: {path}\nURL: nar/bad.nar\nCompression: none\nNarHash: {hash}\nNarSize: {}\nReferences: \n",
        nar_bytes.len()
    );
    std::fs::write(
        cache
            .cache_dir()
            .join("00000000000000000000000000000000.narinfo"),
        narinfo_change(info),
    )
    .unwrap();
    path.to_owned()
}

fn dir_nar(names: &[&'static [u8]]) -> Vec<u8> {
    let mut tokens: Vec<&[u8]> = vec![b"nix-archive-1", b"(", b"type", b"directory"];
    for name in names {
        tokens.extend_from_slice(&[
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
        ]);
    }
    tokens.push(b")");
    nar::raw::strings(&tokens)
}

#[test]
fn malformed_caches_give_clear_errors() {
    let tmp = temp_dir("nix-malformed");
    type Change = fn(String) -> String;
    let cases: Vec<(&str, Vec<u8>, Change, &str)> = vec![
        (
            "dotdot entry",
            dir_nar(&[b".."]),
            |t| t,
            "invalid entry name \"..\"",
        ),
        (
            "unsorted entries",
            dir_nar(&[b"b", b"a"]),
            |t| t,
            "not in strictly increasing order",
        ),
        (
            "missing NarHash",
            dir_nar(&[b"a"]),
            |t| {
                t.lines()
                    .filter(|l| !l.starts_with("NarHash"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            },
            "narinfo: missing NarHash",
        ),
        (
            "unknown compression",
            dir_nar(&[b"a"]),
            |t| t.replace("Compression: none", "Compression: lz4"),
            "unknown Compression \"lz4\"",
        ),
    ];
    for (name, nar_bytes, change, expect) in cases {
        let cache = WebDav::start();
        let path = serve_raw(&cache, &nar_bytes, change);
        let dest = tmp.path().join(name.replace(' ', "-"));
        let run = get(
            &dest,
            &json!({"url": cache.url()}),
            &json!({"store_path": path}),
            &json!({}),
        );
        run.failed_with(expect);
        assert!(!dest.join("store-path").exists(), "{name}");
        assert!(!dest.join("result").exists(), "{name}");
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(expect),
            "{name}: {}",
            run.stderr
        );
    }
}

#[test]
fn malformed_keys_are_invalid_requests_that_hide_the_key() {
    let tmp = temp_dir("nix-badkeys");
    let good = nix_keys(tmp.path(), "k-1");
    let truncated = good.secret[..good.secret.len() - 8].to_owned();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "out",
            json!({"url": "http://127.0.0.1:9/c", "signing_key": truncated}),
            "source.signing_key: secret key \"k-1\"",
        ),
        (
            "out",
            json!({"url": "http://127.0.0.1:9/c", "signing_key": "no-colon"}),
            "source.signing_key: secret key: expected name:base64",
        ),
        (
            "check",
            json!({"url": "http://127.0.0.1:9/c", "store_path": "/nix/store/00000000000000000000000000000000-x",
                   "trusted_public_keys": [good.public, "k-2:AAAA"]}),
            "source.trusted_public_keys[1]: public key \"k-2\": key has 3 bytes, expected 32",
        ),
        (
            "check",
            json!({"url": "http://127.0.0.1:9/c", "compression": "gzip", "pin": "p"}),
            "source.compression: \"gzip\" is not one of zstd, xz, none",
        ),
    ];
    for (command, source, expect) in cases {
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let run = match command {
            "out" => out(
                &src,
                &source,
                &json!({"paths": ["/nix/store/00000000000000000000000000000000-x"]}),
            ),
            _ => resource(&["check"], &json!({"source": source})),
        };
        assert_eq!(run.code, 2, "{expect}: {}", run.stderr);
        run.failed_with(expect);
        assert!(
            !run.stderr.contains(&truncated[10..]),
            "key material leaked: {}",
            run.stderr
        );
    }
}

#[test]
fn bad_configuration_is_an_invalid_request() {
    let tmp = temp_dir("nix-badconfig");
    let url = "http://127.0.0.1:9/c";
    let path = "/nix/store/00000000000000000000000000000000-x";
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "out",
            json!({"url": url}),
            json!({}),
            "params: set params.from, params.paths or params.paths_file",
        ),
        (
            "out",
            json!({"url": url}),
            json!({"paths": ["/usr/bin"]}),
            "params.paths[0]: invalid store path \"/usr/bin\": not under /nix/store/",
        ),
        (
            "out",
            json!({"url": url}),
            json!({"paths": ["/nix/store/short"]}),
            "params.paths[0]: invalid store path",
        ),
        (
            "out",
            json!({"url": url}),
            json!({"paths_file": "nope"}),
            "params.paths_file: cannot read \"nope\"",
        ),
        (
            "out",
            json!({"url": url}),
            json!({"from": "missing-dir"}),
            "params.from: cannot read",
        ),
        (
            "out",
            json!({"url": url, "pin": "../x"}),
            json!({"paths": [path]}),
            "source.pin: \"../x\" must be",
        ),
        (
            "out",
            json!({"url": url}),
            json!({"paths": [path], "pin": "a b"}),
            "params.pin: \"a b\" must be",
        ),
        (
            "out",
            json!({"url": "ftp://127.0.0.1/c"}),
            json!({"paths": [path]}),
            "source.url: must be http:// or https://",
        ),
        (
            "out",
            json!({"url": "http://127.0.0.1:9", "api": "attic"}),
            json!({"paths": [path]}),
            "source.url: an attic url must name the cache",
        ),
        (
            "check",
            json!({"url": "http://127.0.0.1:9/c", "api": "attic", "pin": "p"}),
            json!(null),
            "source.pins_url: required with api attic and a pin",
        ),
        (
            "check",
            json!({"url": url}),
            json!(null),
            "source.pin or source.store_path: check needs one of them",
        ),
        (
            "check",
            json!({"url": url, "store_path": "/tmp/x"}),
            json!(null),
            "source.store_path: invalid store path",
        ),
        (
            "in",
            json!({"url": url}),
            json!({"store_path": "nope"}),
            "version.store_path: invalid store path",
        ),
    ];
    for (command, source, extra, expect) in cases {
        let run = match command {
            "out" => out(tmp.path(), &source, &extra),
            "in" => get(&tmp.path().join("dest"), &source, &extra, &json!({})),
            _ => resource(&["check"], &json!({"source": source})),
        };
        assert_eq!(run.code, 2, "{expect}: {}", run.stderr);
        run.failed_with(expect);
        assert!(!tmp.path().join("dest/store-path").exists());
    }
}
