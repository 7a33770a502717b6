//! The registry in every auth mode: real pushes and pulls with skopeo, and the challenge each
//! mode sends on `GET /v2/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use crate::support::http_request;
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
fn tls_bearer_registry_issues_tokens_over_https() {
    let registry = check_round_trip(RegistryAuth::tls_bearer("dan", "pw"));
    assert!(registry.base_url().starts_with("https://"));
    let requests = registry.token_server().unwrap().requests();
    assert!(
        requests.iter().any(|r| r.user.as_deref() == Some("dan")),
        "{requests:?}"
    );
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

/// The claims of a JWT, after checking its header names RS256 and carries the certificate.
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let decode = |part: &str| -> serde_json::Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header = decode(parts[0]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 1);
    decode(parts[1])
}

/// One token request and the answer it must get (`access` is checked for status 200 only).
struct TokenCase<'a> {
    method: &'a str,
    query: &'a str,
    headers: &'a [&'a str],
    body: &'a str,
    status: u16,
    sub: &'a str,
    access: serde_json::Value,
}

#[test]
fn token_server_follows_the_docker_token_spec() {
    let registry = Registry::start(RegistryAuth::bearer("carol", "tok-pass"));
    let realm = registry.token_server().unwrap().realm();
    let good = ["Authorization: Basic Y2Fyb2w6dG9rLXBhc3M="]; // carol:tok-pass
    let bad = ["Authorization: Basic Y2Fyb2w6bm9wZQ=="]; // carol:nope
    let query =
        "service=test-registry&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository:c:push";
    let password_form = "grant_type=password&username=carol&password=tok-pass&service=test-registry&scope=repository:a/b:pull,push";
    let case = |method, query, headers, body, status, sub, access| TokenCase {
        method,
        query,
        headers,
        body,
        status,
        sub,
        access,
    };
    let form = &["Content-Type: application/x-www-form-urlencoded"][..];
    let pull_push_a_b =
        serde_json::json!([{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}]);
    let cases = [
        case(
            "GET",
            query,
            &[],
            "",
            200,
            "",
            serde_json::json!([{"type": "repository", "name": "a/b", "actions": ["pull"]}]),
        ),
        case(
            "GET",
            query,
            &good,
            "",
            200,
            "carol",
            serde_json::json!([
            {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
            {"type": "repository", "name": "c", "actions": ["push"]}]),
        ),
        case("GET", query, &bad, "", 401, "", serde_json::Value::Null),
        case(
            "POST",
            "",
            form,
            password_form,
            200,
            "carol",
            pull_push_a_b.clone(),
        ),
        case(
            "POST",
            "",
            form,
            "grant_type=refresh_token&refresh_token=x",
            401,
            "",
            serde_json::Value::Null,
        ),
        case(
            "POST",
            "",
            form,
            "grant_type=refresh_token&refresh_token=testbed-refresh-carol&scope=repository:a/b:pull,push",
            200,
            "carol",
            pull_push_a_b,
        ),
        case(
            "POST",
            "",
            form,
            "grant_type=client_credentials",
            400,
            "",
            serde_json::Value::Null,
        ),
    ];
    for TokenCase {
        method,
        query,
        headers,
        body,
        status,
        sub,
        access,
    } in cases
    {
        let url = format!("{realm}?{query}");
        let (got_status, got_body) = http_request(method, &url, headers, body);
        assert_eq!(
            got_status, status,
            "{method} {query} {headers:?}: {got_body}"
        );
        if status != 200 {
            continue;
        }
        let answer: serde_json::Value = serde_json::from_str(&got_body).unwrap();
        assert_eq!(answer["token"], answer["access_token"]);
        assert_eq!(answer["expires_in"], 300);
        let claims = jwt_claims(answer["token"].as_str().unwrap());
        assert_eq!(claims["sub"], sub, "{claims}");
        assert_eq!(claims["access"], access, "{claims}");
        assert_eq!(claims["iss"], TOKEN_ISSUER);
        assert_eq!(claims["aud"], TOKEN_SERVICE);
        assert!(claims["exp"].as_u64().unwrap() > claims["nbf"].as_u64().unwrap());
    }
    // Authenticated clients asking for an offline token get the refresh token.
    let url = format!("{realm}?service=test-registry&offline_token=true&client_id=x");
    let (_, body) = http_request("GET", &url, &good, "");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["refresh_token"], "testbed-refresh-carol", "{answer}");
    let (_, body) = http_request("GET", &url, &[], "");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(answer.get("refresh_token").is_none(), "{answer}");
}
