//! Round trips through a plain HTTP cache (nginx WebDAV), proven by real Nix.

use std::path::Path;

use serde_json::json;
use testbed::tools::temp_dir;

use crate::support::{WebDav, build_closure, check, get, nix, nix_keys, nix_ok, out};

/// `nix copy --from <cache> --to <fresh store>` with only `public` trusted.
fn nix_copy_from(xdg: &Path, from: &str, public: &str, path: &str) -> std::process::Output {
    let store = tempfile::tempdir_in(xdg).unwrap().keep();
    nix(
        xdg,
        &[
            "copy",
            "--from",
            from,
            "--to",
            store.to_str().unwrap(),
            "--option",
            "trusted-public-keys",
            public,
            path,
        ],
    )
}

fn nix_verify(xdg: &Path, store: &str, public: &str, path: &str) -> std::process::Output {
    nix(
        xdg,
        &[
            "store",
            "verify",
            "--store",
            store,
            "-r",
            "--option",
            "trusted-public-keys",
            public,
            path,
        ],
    )
}

/// Real Nix accepts `path` from `store` with only `public` trusted: `nix copy` gets its closure
/// and `nix store verify` checks every signature and hash (`context` names the case).
fn assert_nix_accepts(xdg: &Path, store: &str, public: &str, path: &str, context: &str) {
    let copied = nix_copy_from(xdg, store, public, path);
    assert!(
        copied.status.success(),
        "{context}: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let verified = nix_verify(xdg, store, public, path);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{context}: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[test]
fn push_from_a_local_cache_then_nix_copies_and_verifies_it() {
    let tmp = temp_dir("nix-plain");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "plain-1");
    let paths = build_closure(xdg, "plain");
    let top = &paths[0];
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    nix_ok(
        xdg,
        &[
            "copy",
            "--to",
            &format!("file://{}/local", src.display()),
            top,
        ],
    );
    let cache = WebDav::start();
    let source = json!({"url": cache.url(), "signing_key": keys.secret, "pin": "main",
                        "trusted_public_keys": [keys.public]});

    // Nothing pinned yet.
    assert_eq!(check(&source, None).json(), json!([]));

    let first = out(&src, &source, &json!({"from": "local"})).json();
    assert_eq!(
        first["version"],
        json!({"store_path": top, "revision": "1"})
    );
    let meta = first["metadata"].to_string();
    assert!(
        meta.contains(r#""name":"paths_uploaded","value":"3""#),
        "{meta}"
    );

    // NARs first, then narinfos dependencies first, then the pin.
    let hash = |p: &str| p["/nix/store/".len().."/nix/store/".len() + 32].to_owned();
    let puts = cache.wait_for_puts(8);
    let narinfos: Vec<&String> = puts.iter().filter(|p| p.ends_with(".narinfo")).collect();
    let expected: Vec<String> = paths
        .iter()
        .rev()
        .map(|p| format!("/c/{}.narinfo", hash(p)))
        .collect();
    assert_eq!(narinfos, expected.iter().collect::<Vec<_>>(), "{puts:?}");
    let first_narinfo = puts.iter().position(|p| p.ends_with(".narinfo")).unwrap();
    assert!(
        puts[1..first_narinfo]
            .iter()
            .all(|p| p.starts_with("/c/nar/")),
        "{puts:?}"
    );
    assert_eq!(puts.len(), 8, "{puts:?}");
    assert_eq!(puts[0], "/c/nix-cache-info");
    assert_eq!(
        std::fs::read_to_string(cache.cache_dir().join("nix-cache-info")).unwrap(),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
    );
    assert_eq!(puts.last().unwrap(), "/c/pins/main");

    // Real Nix accepts what we wrote.
    assert_nix_accepts(xdg, &cache.url(), &keys.public, top, "the WebDAV cache");

    // Idempotent: the same put uploads nothing, and the pin stays where it is.
    let puts = cache.wait_for_puts(8).len();
    let second = out(&src, &source, &json!({"from": "local"})).json();
    assert_eq!(
        second["version"],
        json!({"store_path": top, "revision": "1"})
    );
    assert!(
        second["metadata"]
            .to_string()
            .contains(r#""name":"paths_uploaded","value":"0""#)
    );
    // Give nginx time to log anything the second put might have sent.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(cache.put_count(), puts, "second put uploaded something");

    // check follows the pin.
    let versions = check(&source, Some(&json!({"store_path": top, "revision": "1"}))).json();
    assert_eq!(versions, json!([{"store_path": top, "revision": "1"}]));

    // Pushing another closure moves the pin and bumps its revision; check follows.
    let other = build_closure(xdg, "plain-next");
    let src2 = xdg.join("src2");
    std::fs::create_dir(&src2).unwrap();
    nix_ok(
        xdg,
        &[
            "copy",
            "--to",
            &format!("file://{}/local", src2.display()),
            &other[0],
        ],
    );
    let moved = out(&src2, &source, &json!({"from": "local"})).json();
    assert_eq!(
        moved["version"],
        json!({"store_path": other[0], "revision": "2"})
    );
    let versions = check(&source, Some(&json!({"store_path": top, "revision": "1"}))).json();
    assert_eq!(versions, json!([{"store_path": other[0], "revision": "2"}]));
    let pin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cache.cache_dir().join("pins/main")).unwrap(),
    )
    .unwrap();
    assert_eq!(pin["store_path"], json!(other[0]));
    assert_eq!(pin["revision"], json!(2));
    assert!(pin["updated_at"].as_str().unwrap().ends_with('Z'));

    // in: store-path, closure (dependencies first), result/, and a cache Nix accepts.
    let dest = xdg.join("dest");
    get(
        &dest,
        &source,
        &json!({"store_path": top, "revision": "1"}),
        &json!({}),
    )
    .json();
    assert_eq!(
        std::fs::read_to_string(dest.join("store-path")).unwrap(),
        format!("{top}\n")
    );
    let closure: Vec<String> = std::fs::read_to_string(dest.join("closure"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(closure, paths.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(
        std::fs::read_to_string(dest.join("result/bin/run")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    let local = format!("file://{}/cache", dest.display());
    assert_nix_accepts(
        xdg,
        &local,
        &keys.public,
        top,
        "the file:// cache written by in",
    );
}

#[test]
fn push_from_the_store_with_each_compression() {
    let tmp = temp_dir("nix-store-push");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "store-1");
    let paths = build_closure(xdg, "storepush");
    let top = &paths[0];
    for compression in ["zstd", "xz", "none"] {
        let cache = WebDav::start();
        let source = json!({"url": cache.url(), "signing_key": keys.secret,
                            "compression": compression});
        let src = xdg.join(format!("src-{compression}"));
        std::fs::create_dir(&src).unwrap();
        // paths_file names a store path; paths names a `result` symlink in SRC.
        std::fs::write(src.join("paths"), format!("# roots\n{top}\n")).unwrap();
        std::os::unix::fs::symlink(top, src.join("result")).unwrap();
        let pushed = out(
            &src,
            &source,
            &json!({"paths_file": "paths", "paths": ["result"]}),
        )
        .json();
        assert_eq!(pushed["version"], json!({"store_path": top}));
        let ext = match compression {
            "zstd" => ".nar.zst",
            "xz" => ".nar.xz",
            _ => ".nar",
        };
        let nars: Vec<_> = std::fs::read_dir(cache.cache_dir().join("nar"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(nars.len(), 3, "{nars:?}");
        assert!(
            nars.iter().all(|n| n.ends_with(ext)),
            "{compression}: {nars:?}"
        );
        assert_nix_accepts(xdg, &cache.url(), &keys.public, top, compression);
    }
}

#[test]
fn get_decompresses_every_compression_nix_writes() {
    let tmp = temp_dir("nix-decompress");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "dec-1");
    let paths = build_closure(xdg, "decompress");
    let top = &paths[0];
    for compression in ["xz", "zstd", "bzip2", "none"] {
        let cache = WebDav::start();
        nix_ok(
            xdg,
            &[
                "copy",
                "--to",
                &format!(
                    "file://{}?compression={compression}&secret-key={}",
                    cache.cache_dir().display(),
                    keys.secret_file.display()
                ),
                top,
            ],
        );
        let source = json!({"url": cache.url(), "trusted_public_keys": [keys.public]});
        let dest = xdg.join(format!("dest-{compression}"));
        get(&dest, &source, &json!({"store_path": top}), &json!({})).json();
        assert_eq!(
            std::fs::read_to_string(dest.join("store-path")).unwrap(),
            format!("{top}\n")
        );
        assert!(dest.join("result/bin/run").exists(), "{compression}");
    }
}

#[test]
fn check_waits_for_a_store_path_and_its_closure() {
    let tmp = temp_dir("nix-wait");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "wait-1");
    let paths = build_closure(xdg, "wait");
    let top = &paths[0];
    let cache = WebDav::start();
    let source = json!({"url": cache.url(), "store_path": top,
                        "trusted_public_keys": [keys.public]});
    assert_eq!(check(&source, None).json(), json!([]));
    // Unsigned: still waiting.
    nix_ok(
        xdg,
        &[
            "copy",
            "--to",
            &format!("file://{}", cache.cache_dir().display()),
            top,
        ],
    );
    assert_eq!(check(&source, None).json(), json!([]));
    // Signed by the trusted key: there.
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::remove_dir_all(cache.cache_dir()).unwrap();
    std::fs::create_dir(cache.cache_dir()).unwrap();
    let push = json!({"url": cache.url(), "signing_key": keys.secret});
    out(&src, &push, &json!({"paths": [top]})).json();
    assert_eq!(check(&source, None).json(), json!([{"store_path": top}]));
    // A closure member disappears: waiting again.
    let leaf_hash = &paths[2]["/nix/store/".len().."/nix/store/".len() + 32];
    std::fs::remove_file(cache.cache_dir().join(format!("{leaf_hash}.narinfo"))).unwrap();
    assert_eq!(check(&source, None).json(), json!([]));
}

#[test]
fn content_addressed_paths_pass_without_signatures_unless_forged() {
    let tmp = temp_dir("nix-ca-get");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "ca-1");
    let file = xdg.join("ca-input");
    std::fs::write(&file, format!("content addressed {:?}\n", xdg)).unwrap();
    let mut add = resource_protocol::process::command("nix-store", xdg);
    add.arg("--add").arg(&file);
    let path = String::from_utf8(add.output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    let cache = WebDav::start();
    nix_ok(
        xdg,
        &[
            "copy",
            "--to",
            &format!("file://{}", cache.cache_dir().display()),
            &path,
        ],
    );
    let source = json!({"url": cache.url(), "trusted_public_keys": [keys.public]});
    let dest = xdg.join("dest");
    get(&dest, &source, &json!({"store_path": path}), &json!({})).json();
    assert_eq!(
        std::fs::read_to_string(dest.join("result")).unwrap(),
        std::fs::read_to_string(&file).unwrap()
    );
    // A CA claim that does not produce the path is no excuse for a missing signature.
    let narinfo = cache.cache_dir().join(format!(
        "{}.narinfo",
        &path["/nix/store/".len().."/nix/store/".len() + 32]
    ));
    let text = std::fs::read_to_string(&narinfo).unwrap();
    let forged = text
        .lines()
        .map(|l| {
            if l.starts_with("CA: ") {
                "CA: fixed:r:sha256:1qvnrwyv3441f9jdjjxg4q4zwcl92cx5sczhyw5l15qn68h3bdim".to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect::<String>();
    std::fs::write(&narinfo, forged).unwrap();
    let dest = xdg.join("dest-forged");
    get(&dest, &source, &json!({"store_path": path}), &json!({}))
        .failed_with("narinfo is not signed");
    assert!(!dest.join("store-path").exists());
}

#[test]
fn get_params_limit_the_fetch() {
    let tmp = temp_dir("nix-get-params");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "params-1");
    let paths = build_closure(xdg, "params");
    let cache = WebDav::start();
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    let push = json!({"url": cache.url(), "signing_key": keys.secret});
    out(&src, &push, &json!({"paths": [paths[0]]})).json();
    let source = json!({"url": cache.url(), "trusted_public_keys": [keys.public]});
    let dest = xdg.join("dest");
    let got = get(
        &dest,
        &source,
        &json!({"store_path": paths[0]}),
        &json!({"closure": false, "unpack": "false"}),
    )
    .json();
    assert_eq!(got["version"], json!({"store_path": paths[0]}));
    assert_eq!(
        std::fs::read_to_string(dest.join("closure")).unwrap(),
        format!("{}\n", paths[0])
    );
    assert!(!dest.join("result").exists());
    let narinfos = std::fs::read_dir(dest.join("cache"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".narinfo")
        })
        .count();
    assert_eq!(narinfos, 1);
    // A path the cache does not have.
    let missing = "/nix/store/00000000000000000000000000000000-missing";
    get(
        &xdg.join("dest2"),
        &source,
        &json!({"store_path": missing}),
        &json!({}),
    )
    .failed_with("is not in the cache");
}

#[test]
fn basic_auth_is_sent_and_failures_name_the_fields() {
    let tmp = temp_dir("nix-basic");
    let xdg = tmp.path();
    let paths = build_closure(xdg, "basic");
    let top = &paths[0];
    let cache = WebDav::start_with_auth(Some(("ci", "s3cret-pass")));
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    let good = json!({"url": cache.url(), "username": "ci", "password": "s3cret-pass", "pin": "p"});
    out(&src, &good, &json!({"paths": [top]})).json();
    let dest = xdg.join("dest");
    get(&dest, &good, &json!({"store_path": top}), &json!({})).json();
    assert_eq!(check(&good, None).json()[0]["store_path"], json!(top));
    for bad in [
        json!({"url": cache.url(), "pin": "p"}),
        json!({"url": cache.url(), "username": "ci", "password": "wrong-pass", "pin": "p"}),
    ] {
        let run = out(&src, &bad, &json!({"paths": [top]}));
        run.failed_with("401 Unauthorized: check source.username/password or source.token");
        assert!(!run.stderr.contains("wrong-pass"));
        let run = check(&bad, None);
        assert_ne!(run.code, 0);
        assert!(run.stderr.contains("401"), "{}", run.stderr);
    }
}

#[test]
fn https_caches_need_their_ca() {
    let tmp = temp_dir("nix-tls");
    let xdg = tmp.path();
    let ca = testbed::tls::generate_ca(&xdg.join("ca"));
    let paths = build_closure(xdg, "tls");
    let top = &paths[0];
    let cache = WebDav::start_tls(&ca);
    assert!(cache.url().starts_with("https://"));
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    let trusted = json!({"url": cache.url(), "ca_certs": [ca.ca_cert_pem]});
    out(&src, &trusted, &json!({"paths": [top]})).json();
    get(
        &xdg.join("dest"),
        &trusted,
        &json!({"store_path": top}),
        &json!({}),
    )
    .json();
    let insecure = json!({"url": cache.url(), "insecure": "true"});
    get(
        &xdg.join("dest2"),
        &insecure,
        &json!({"store_path": top}),
        &json!({}),
    )
    .json();
    let untrusted = json!({"url": cache.url()});
    let run = get(
        &xdg.join("dest3"),
        &untrusted,
        &json!({"store_path": top}),
        &json!({}),
    );
    assert_ne!(run.code, 0);
    assert!(!xdg.join("dest3/store-path").exists());
    let bad_pem = json!({"url": cache.url(), "ca_certs": ["not a pem"]});
    let run = get(
        &xdg.join("dest4"),
        &bad_pem,
        &json!({"store_path": top}),
        &json!({}),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.failed_with("source.ca_certs[0]");
}

#[test]
fn from_with_roots_pushes_only_their_closure() {
    let tmp = temp_dir("nix-from-roots");
    let xdg = tmp.path();
    let paths = build_closure(xdg, "fromroots");
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    nix_ok(
        xdg,
        &[
            "copy",
            "--to",
            &format!("file://{}/local", src.display()),
            &paths[0],
        ],
    );
    let cache = WebDav::start();
    let source = json!({"url": cache.url()});
    let pushed = out(
        &src,
        &source,
        &json!({"from": "local", "paths": [paths[1]]}),
    )
    .json();
    assert_eq!(pushed["version"], json!({"store_path": paths[1]}));
    assert!(
        pushed["metadata"]
            .to_string()
            .contains(r#""name":"paths_uploaded","value":"2""#)
    );
    let hash = |p: &str| p["/nix/store/".len().."/nix/store/".len() + 32].to_owned();
    assert!(
        !cache
            .cache_dir()
            .join(format!("{}.narinfo", hash(&paths[0])))
            .exists()
    );
    assert!(
        cache
            .cache_dir()
            .join(format!("{}.narinfo", hash(&paths[2])))
            .exists()
    );
    // A root the directory does not hold is an error that names it.
    let missing = "/nix/store/00000000000000000000000000000000-absent";
    out(&src, &source, &json!({"from": "local", "paths": [missing]}))
        .failed_with("params.from: /nix/store/00000000000000000000000000000000-absent is not in the cache directory");
}
