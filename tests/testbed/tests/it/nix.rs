//! The WebDAV binary cache and the Nix helpers, proved with real `nix copy` and
//! `nix store verify`.

use testbed::nix::{NixEnv, WebDavCache, generate_key};

#[test]
fn signed_paths_round_trip_through_the_webdav_cache() {
    let cache = WebDavCache::start();
    let env = NixEnv::new();
    let dep = env.build_input_addressed("testbed-dep", "dependency\n", &[]);
    let top = env.build_input_addressed("testbed-top", "top \"quoted\" ${x}\n", &[&dep]);
    assert!(
        top.starts_with("/nix/store/") && top.ends_with("-testbed-top"),
        "{top}"
    );
    let content = std::fs::read_to_string(&top).unwrap();
    assert_eq!(content, format!("top \"quoted\" ${{x}}\n{dep}\n"));

    let key = generate_key(&env, "testbed-1");
    assert!(key.public.starts_with("testbed-1:"), "{}", key.public);
    env.copy_to_cache(&cache.url(), &[&top], Some(&key))
        .unwrap_or_else(|e| panic!("{e}\nnginx log:\n{}", cache.log_tail()));
    let hash = top
        .trim_start_matches("/nix/store/")
        .split('-')
        .next()
        .unwrap();
    assert!(cache.root().join(format!("{hash}.narinfo")).exists());
    assert!(cache.root().join("nix-cache-info").exists());

    assert_eq!(env.verify_in_cache(&cache.url(), &top, &key.public), 0);
    let other = generate_key(&env, "other-1");
    assert_eq!(env.verify_in_cache(&cache.url(), &top, &other.public), 2);
    env.copy_from_cache(&cache.url(), &top, &key.public)
        .unwrap();
    let err = env
        .copy_from_cache(&cache.url(), &top, &other.public)
        .unwrap_err();
    assert!(err.contains("signature"), "{err}");
}

#[test]
fn content_addressed_paths_and_basic_auth_cache() {
    let env = NixEnv::new();
    let file = env.dir().join("hello.txt");
    std::fs::write(&file, "hello\n").unwrap();
    let path = env.add_file_to_store(&file);
    assert!(path.ends_with("-hello.txt"), "{path}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");

    let cache = WebDavCache::start_with_basic_auth("nix", "pw");
    assert_eq!(cache.credentials(), Some(("nix", "pw")));
    let err = env.copy_to_cache(&cache.url(), &[&path], None).unwrap_err();
    // Nix 2.8 reports the 401 on `nix-cache-info` this way.
    assert!(
        err.contains("does not appear to be a binary cache"),
        "{err}"
    );
    // Nix reads credentials from a netrc file.
    let netrc = env.dir().join("netrc");
    std::fs::write(&netrc, "machine 127.0.0.1 login nix password pw\n").unwrap();
    let mut command = env.command("nix");
    command
        .args(["copy", "--to", &cache.url(), "--option", "netrc-file"])
        .arg(&netrc)
        .arg(&path);
    resource_protocol::process::output_checked(&mut command)
        .unwrap_or_else(|e| panic!("{e}\nnginx log:\n{}", cache.log_tail()));
    assert!(cache.root().join("nix-cache-info").exists());
}

#[test]
fn verify_reports_a_modified_nar_and_a_missing_signature_by_exit_code() {
    let cache = WebDavCache::start();
    let env = NixEnv::new();
    let signed = env.build_input_addressed("testbed-verify-signed", "signed\n", &[]);
    let unsigned = env.build_input_addressed("testbed-verify-unsigned", "unsigned\n", &[]);
    let key = generate_key(&env, "testbed-verify-1");
    let url = format!("{}?compression=none", cache.url());
    env.copy_to_cache(&url, &[&signed], Some(&key)).unwrap();
    env.copy_to_cache(&url, &[&unsigned], None).unwrap();
    assert_eq!(env.verify_in_cache(&cache.url(), &unsigned, &key.public), 2);
    assert_eq!(env.verify_in_cache(&cache.url(), &signed, &key.public), 0);

    // Flip the content inside the signed path's NAR (same length): the hash no longer matches.
    let nar_dir = cache.root().join("nar");
    for entry in std::fs::read_dir(&nar_dir).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(7).position(|w| w == b"signed\n") {
            bytes[at] = b'S';
            std::fs::write(&path, bytes).unwrap();
        }
    }
    assert_eq!(env.verify_in_cache(&cache.url(), &signed, &key.public), 1);
}
