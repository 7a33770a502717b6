//! check, in and out over every transport, against real servers from the testbed: local path,
//! `file://`, `git://` (git daemon), `ssh://` (sshd, plain and passphrase-protected keys) and
//! smart HTTP with Basic auth (nginx + git-http-backend).

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::support::{Env, Repo, empty_commit_in, git_in, refs};

/// check, in and out through `source`, whose `uri` serves `bare` (a bare repo with commits).
fn round_trip(env: &Env, bare: &Repo, source: Value) {
    let tip = git_in(&bare.path, &["rev-parse", "main"]);
    assert_eq!(
        env.check(&source, None).json(),
        refs(&[&tip]),
        "check {source}"
    );
    let dest = env.dir.path().join("dest");
    let answer = env
        .get(&dest, &source, &json!({"ref": tip}), &json!({}))
        .json();
    assert_eq!(answer["version"], json!({"ref": tip}));
    assert_eq!(git_in(&dest, &["rev-parse", "HEAD"]), tip);
    // Push a new commit made in the clone `in` produced.
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::rename(&dest, src.join("repo")).unwrap();
    let clone = Repo::clone_into(&bare.uri(), &env.dir.path().join("scratch"));
    drop(clone);
    let pushed = empty_commit_in(&src.join("repo"), "pushed");
    let answer = env
        .put(&src, &source, &json!({"repository": "repo"}))
        .json();
    assert_eq!(answer["version"], json!({"ref": pushed}));
    assert_eq!(git_in(&bare.path, &["rev-parse", "main"]), pushed);
    // The next check sees it.
    assert_eq!(
        env.check(&source, Some(json!({"ref": tip}))).json(),
        refs(&[&tip, &pushed])
    );
}

fn with(source: Value, extra: Value) -> Value {
    let mut source = source;
    for (k, v) in extra.as_object().unwrap() {
        source[k] = v.clone();
    }
    source
}

#[test]
fn local_path_and_file_url() {
    let bare = Repo::bare_with(2);
    round_trip(
        &Env::new(),
        &bare,
        json!({"uri": bare.uri(), "branch": "main"}),
    );
    round_trip(
        &Env::new(),
        &bare,
        json!({"uri": format!("file://{}", bare.uri()), "branch": "main"}),
    );
}

#[test]
fn git_daemon() {
    let bare = Repo::bare_with(2);
    let daemon = testbed::git::GitDaemon::start(bare.path.parent().unwrap());
    round_trip(
        &Env::new(),
        &bare,
        json!({"uri": daemon.url_for("bare.git"), "branch": "main"}),
    );
}

#[test]
fn ssh_with_each_kind_of_key() {
    let bare = Repo::bare_with(2);
    let sshd = testbed::git::Sshd::start();
    let uri = sshd.ssh_url(&bare.path);
    for key in [
        &sshd.key,
        &sshd.encrypted_key,
        &sshd.rsa_pem_key,
        &sshd.encrypted_rsa_pem_key,
    ] {
        let mut source = json!({"uri": uri, "branch": "main", "private_key": key.private_key});
        if let Some(passphrase) = &key.passphrase {
            source["private_key_passphrase"] = json!(passphrase);
        }
        round_trip(&Env::new(), &bare, source);
    }
}

#[test]
fn ssh_key_errors_are_clear() {
    let bare = Repo::bare_with(1);
    let sshd = testbed::git::Sshd::start();
    let uri = sshd.ssh_url(&bare.path);
    let env = Env::new();
    let cases = [
        (
            json!({"uri": uri, "private_key": sshd.encrypted_key.private_key}),
            2,
            "source.private_key: the key is passphrase-protected; set source.private_key_passphrase",
        ),
        (
            json!({"uri": uri, "private_key": sshd.encrypted_rsa_pem_key.private_key}),
            2,
            "source.private_key: the key is passphrase-protected",
        ),
        (
            json!({"uri": uri, "private_key": "not a key"}),
            2,
            "source.private_key: not a PEM or OpenSSH private key",
        ),
        (
            json!({"uri": uri, "private_key": sshd.encrypted_key.private_key, "private_key_passphrase": "wrong"}),
            1,
            "source.private_key: cannot load the key (wrong source.private_key_passphrase?)",
        ),
        (
            json!({"uri": uri}),
            1,
            "ssh authentication required: set source.private_key",
        ),
    ];
    for (source, code, message) in cases {
        let run = env.check(&source, None);
        assert_eq!(run.code, code, "{run:?}");
        assert!(run.stderr.contains(message), "{message}\n{}", run.stderr);
        assert!(!run.stderr.contains("PRIVATE KEY"), "{}", run.stderr);
    }
}

#[test]
fn http_with_basic_auth() {
    let bare = Repo::bare_with(2);
    let http = testbed::git::GitHttp::start(bare.path.parent().unwrap(), "user", "s3cret-pa55");
    let uri = http.url_for("bare.git");
    round_trip(
        &Env::new(),
        &bare,
        json!({"uri": uri, "branch": "main", "username": "user", "password": "s3cret-pa55"}),
    );
}

#[test]
fn http_wrong_or_missing_credentials() {
    let bare = Repo::bare_with(1);
    let http = testbed::git::GitHttp::start(bare.path.parent().unwrap(), "user", "s3cret-pa55");
    let env = Env::new();
    let uri = http.url_for("bare.git");
    let wrong = "WrongPassw0rd-do-not-print";
    let cases = [
        (
            json!({"uri": uri, "username": "user", "password": wrong}),
            "authentication failed: the server rejected source.username/source.password",
        ),
        (
            json!({"uri": uri}),
            "authentication required: set source.username and source.password",
        ),
        (
            json!({"uri": http.url_for("bare.git").replace("http://", &format!("http://user:{wrong}@"))}),
            "authentication failed",
        ),
    ];
    for (source, message) in cases {
        for run in [
            env.check(&source, None),
            env.get(&env.dir.path().join("d"), &source, &json!({}), &json!({})),
        ] {
            assert_eq!(run.code, 1, "{run:?}");
            assert!(run.stderr.contains(message), "{message}\n{}", run.stderr);
            assert!(
                !run.stderr.contains(wrong),
                "password leaked: {}",
                run.stderr
            );
            assert!(!run.stdout_text.contains(wrong));
        }
    }
    let src = env.dir.path().join("src");
    Repo::clone_into(&bare.uri(), &src.join("repo"));
    let run = env.put(
        &src,
        &json!({"uri": uri, "branch": "main", "username": "user", "password": wrong}),
        &json!({"repository": "repo"}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        !run.stderr.contains(wrong),
        "password leaked: {}",
        run.stderr
    );
}

#[test]
fn unreachable_hosts_fail_fast_and_clearly() {
    let env = Env::new();
    let port = testbed::tools::free_port();
    for uri in [
        format!("git://127.0.0.1:{port}/r.git"),
        format!("http://127.0.0.1:{port}/r.git"),
        format!("ssh://git@127.0.0.1:{port}/r.git"),
    ] {
        let started = std::time::Instant::now();
        let run = env.check(&json!({"uri": uri}), None);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains(&format!("cannot reach {uri}")),
            "{}",
            run.stderr
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
    let run = env.check(&json!({"uri": "/does/not/exist"}), None);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("source.uri: /does/not/exist does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn https_with_an_untrusted_certificate() {
    let bare = Repo::bare_with(2);
    let http = testbed::git::GitHttp::start_tls(bare.path.parent().unwrap(), "user", "pa55");
    let uri = http.url_for("bare.git");
    assert!(uri.starts_with("https://"), "{uri}");
    let env = Env::new();
    let source = json!({"uri": uri, "branch": "main", "username": "user", "password": "pa55"});
    let run = env.check(&source, None);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("set source.skip_ssl_verification: true"),
        "{}",
        run.stderr
    );
    let trusting = with(source, json!({"skip_ssl_verification": true}));
    round_trip(&env, &bare, trusting);
}

/// A check over `git://` starts libgit2 without the CA bundle; over https it still reads the
/// one `SSL_CERT_FILE` names.
#[test]
fn https_checks_trust_the_bundle_in_ssl_cert_file() {
    let bare = Repo::bare_with(2);
    let http = testbed::git::GitHttp::start_tls(bare.path.parent().unwrap(), "user", "pa55");
    let ca = http.ca_cert_path().unwrap().to_str().unwrap().to_owned();
    let env = Env::new();
    let source = json!({"uri": http.url_for("bare.git"), "branch": "main",
                        "username": "user", "password": "pa55"});
    let run = env.run_with_env(
        &["check"],
        &json!({ "source": source }),
        &[("SSL_CERT_FILE", &ca)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json(), refs(&[&bare.head()]));
}

#[test]
fn debug_shows_the_configuration_without_secrets() {
    let bare = Repo::bare_with(1);
    let env = Env::new();
    let source =
        json!({"uri": bare.uri(), "debug": true, "password": "debug-s3cret", "username": "u"});
    let run = env.check(&source, None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("debug mode enabled"), "{}", run.stderr);
    assert!(
        run.stderr.contains("git-resource-repo-cache"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("debug-s3cret"), "{}", run.stderr);
}
