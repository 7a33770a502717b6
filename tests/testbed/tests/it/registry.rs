//! The registry in every auth mode: real pushes and pulls with skopeo, and the challenge each
//! mode sends on `GET /v2/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use testbed::registry::{Registry, RegistryAuth, TOKEN_ISSUER, TOKEN_SERVICE};
use testbed::tools::{require, run, temp_dir};

/// An OCI layout at `dir/layout` holding an empty image tagged `t`.
fn empty_image(dir: &Path) -> String {
    let umoci = require("umoci", "umoci");
    let layout = dir.join("layout").display().to_string();
    run(&umoci, ["init", "--layout", &layout], dir);
    run(&umoci, ["new", "--image", &format!("{layout}:t")], dir);
    format!("oci:{layout}:t")
}

/// `skopeo copy` of `source` to `repo:tag` with `extra` arguments; the command's result.
fn push(registry: &Registry, source: &str, repo: &str, extra: &[String]) -> Result<(), String> {
    let skopeo = require("skopeo", "skopeo");
    let dir = temp_dir("push");
    let mut command = resource_protocol::process::command(&skopeo, dir.path());
    command
        .args(["copy", "--retry-times=0"])
        .args(extra)
        .arg(source)
        .arg(format!("docker://{}/{repo}", registry.host()));
    resource_protocol::process::output_checked(&mut command)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The manifest digest `skopeo inspect` reports for `repo`.
fn inspect_digest(registry: &Registry, repo: &str, extra: &[String]) -> String {
    let skopeo = require("skopeo", "skopeo");
    let dir = temp_dir("inspect");
    let mut args = vec!["inspect".to_owned(), "--retry-times=0".to_owned()];
    args.extend(extra.iter().cloned());
    args.push(format!("docker://{}/{repo}", registry.host()));
    let out = run(&skopeo, &args, dir.path());
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    json["Digest"].as_str().unwrap().to_owned()
}

/// Status line and headers of a plain-HTTP `GET path`.
fn http_get_head(host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Pushes the empty image with the registry's own skopeo arguments and reads it back.
fn check_round_trip(auth: RegistryAuth) -> Registry {
    let registry = Registry::start(auth);
    let dir = temp_dir("image");
    let image = empty_image(dir.path());
    push(
        &registry,
        &image,
        "testbed/empty:1",
        &registry.skopeo_args("dest"),
    )
    .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log_tail()));
    let digest = inspect_digest(&registry, "testbed/empty:1", &registry.skopeo_args(""));
    assert!(digest.starts_with("sha256:"), "{digest}");
    registry
}

#[test]
fn plain_registry_accepts_anonymous_push() {
    let registry = check_round_trip(RegistryAuth::None);
    assert!(registry.base_url().starts_with("http://127.0.0.1:"));
    assert!(http_get_head(&registry.host(), "/v2/").starts_with("HTTP/1.1 200"));
}

#[test]
fn basic_registry_challenges_and_accepts_credentials() {
    let registry = check_round_trip(RegistryAuth::basic("alice", "s3cret"));
    let head = http_get_head(&registry.host(), "/v2/");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.contains("Www-Authenticate: Basic realm=\"testbed\""),
        "{head}"
    );
    let wrong = vec![
        "--dest-tls-verify=false".to_owned(),
        "--dest-creds=alice:wrong".to_owned(),
    ];
    let dir = temp_dir("image");
    let err = push(&registry, &empty_image(dir.path()), "testbed/x:1", &wrong).unwrap_err();
    assert!(err.contains("unauthorized"), "{err}");
}

#[test]
fn tls_registry_serves_a_certificate_for_127_0_0_1() {
    let registry = check_round_trip(RegistryAuth::Tls);
    assert!(registry.base_url().starts_with("https://127.0.0.1:"));
    assert!(
        registry
            .ca_cert_pem()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    // Without the CA, verification fails.
    let dir = temp_dir("image");
    let err = push(&registry, &empty_image(dir.path()), "testbed/x:1", &[]).unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn tls_basic_registry_needs_both() {
    check_round_trip(RegistryAuth::tls_basic("bob", "pw"));
}

#[test]
fn bearer_registry_issues_tokens_and_limits_anonymous_to_pull() {
    let registry = check_round_trip(RegistryAuth::bearer("carol", "tok-pass"));
    let head = http_get_head(&registry.host(), "/v2/");
    let realm = registry.token_server().unwrap().realm();
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.contains(&format!(
            "Www-Authenticate: Bearer realm=\"{realm}\",service=\"{TOKEN_SERVICE}\""
        )),
        "{head}"
    );
    assert_eq!(TOKEN_ISSUER, "test-issuer");

    // Anonymous: pull works, push is refused.
    let digest = inspect_digest(&registry, "testbed/empty:1", &["--tls-verify=false".into()]);
    assert!(digest.starts_with("sha256:"));
    let dir = temp_dir("image");
    let anonymous = vec!["--dest-tls-verify=false".to_owned()];
    let err = push(
        &registry,
        &empty_image(dir.path()),
        "testbed/anon:1",
        &anonymous,
    )
    .unwrap_err();
    assert!(
        err.contains("unauthorized") || err.contains("denied"),
        "{err}"
    );
    let requests = registry.token_server().unwrap().requests();
    assert!(
        requests.iter().any(|r| r.user.as_deref() == Some("carol")
            && r.scopes
                .iter()
                .any(|s| s.contains("testbed/empty:pull,push"))),
        "{requests:?}"
    );
}
