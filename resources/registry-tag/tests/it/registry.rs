//! check and in against registries: the paginating distribution fixture and the real
//! `docker-registry` with Basic and Bearer auth.

use registry_client::{ClientConfig, RegistryClient, Secret, digest::sha256_digest, media};
use serde_json::json;
use testbed::fixtures::distribution::{DistributionFixture, Faults};
use testbed::registry::{Registry, RegistryAuth};

use crate::support::{check_tags, get, run};

fn semver_tags(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("1.{}.{}", i / 10, i % 10))
        .collect()
}

#[test]
fn follows_link_pages_within_limits() {
    let fx = DistributionFixture::start();
    fx.add_tags("team/app", &semver_tags(95));
    let uri = format!("{}/v2/team/app", fx.base_url());
    // (pages, per page, count)
    for (pages, per_page, count) in [
        (1, 25, 25),
        (2, 25, 50),
        (4, 25, 95),
        (100, 10, 95),
        (1, 1000, 95),
    ] {
        let source = json!({"uri": uri, "pages": pages, "tags_per_page": per_page});
        let (tags, _) = check_tags(&source, None);
        assert_eq!(tags.len(), count, "{source}");
    }
    // Registry order is kept (the fixture lists lexically); semver orders by version.
    let source =
        json!({"uri": uri, "pages": 10, "tags_per_page": 30, "semver": {"matcher": ">= 1.8"}});
    let (tags, _) = check_tags(&source, Some("1.9.3"));
    assert_eq!(tags, ["1.9.3", "1.9.4"]);
    let list_requests: Vec<String> = fx
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("tags/list"))
        .collect();
    assert!(
        list_requests.contains(&"/v2/team/app/tags/list?n=30".to_owned()),
        "{list_requests:?}"
    );
    assert!(
        list_requests
            .iter()
            .any(|p| p.contains("last=") && p.contains("n=30")),
        "{list_requests:?}"
    );
}

#[test]
fn retries_and_digests_with_accept_headers() {
    let fx = DistributionFixture::start();
    let digests = fx.add_tags("app", &["1.0.0", "2.0.0"]);
    fx.set_faults(Faults {
        too_many_requests: 2,
        omit_digest_header: true,
        ..Faults::default()
    });
    let uri = format!("{}/v2/app", fx.base_url());
    let (tags, _) = check_tags(&json!({"uri": uri}), None);
    assert_eq!(tags, ["1.0.0", "2.0.0"]);
    let dir = tempfile::tempdir().unwrap();
    let got = get(&json!({"uri": uri}), "2.0.0", dir.path());
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("digest")).unwrap(),
        digests[1]
    );
    for r in fx
        .requests()
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
    {
        assert_eq!(r.accept.as_deref(), Some(media::MANIFEST_ACCEPT), "{r:?}");
    }
    let missing = get(&json!({"uri": uri}), "3.0.0", dir.path());
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("tag \"3.0.0\" not found in"),
        "{missing:?}"
    );
}

/// Pushes one tiny image per tag with the registry client.
fn push_tags(registry: &Registry, repository: &str, tags: &[String]) -> Vec<String> {
    let mut config = ClientConfig::new(registry.host(), repository);
    if let Some((user, pass)) = registry.credentials() {
        config.username = Some(user.into());
        config.password = Some(Secret::new(pass));
    }
    config.ca_certs = registry
        .ca_cert_pem()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let client = RegistryClient::new(config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cfg_digest = sha256_digest(cfg);
        client.upload_blob_bytes(&cfg_digest, cfg.to_vec().into()).await.unwrap();
        let mut digests = Vec::new();
        for tag in tags {
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_digest}","size":{}}},"layers":[],"annotations":{{"t":"{tag}"}}}}"#,
                media::OCI_MANIFEST,
                cfg.len()
            );
            digests.push(client.put_manifest(tag, media::OCI_MANIFEST, manifest.into()).await.unwrap());
        }
        digests
    })
}

fn real_registry(auth: RegistryAuth) {
    let registry = Registry::start(auth);
    let tags = semver_tags(300);
    let digests = push_tags(&registry, "team/app", &tags);
    let (user, pass) = registry.credentials().unwrap();
    let uri = format!("{}/v2/team/app", registry.base_url());
    let source = json!({"uri": uri, "username": user, "password": pass, "tags_per_page": 50,
                        "semver": {"matcher": "^1.25 || ~1.3"}});
    let (found, _) = check_tags(&source, None);
    let mut expected: Vec<&str> = tags
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("1.3.") || t.starts_with("1.2"))
        .collect();
    expected.retain(|t| {
        *t == "1.3.0"
            || !t.starts_with("1.2.")
            || t.starts_with("1.25.")
            || t.starts_with("1.26.")
            || t.starts_with("1.27.")
            || t.starts_with("1.28.")
            || t.starts_with("1.29.")
    });
    let mut expected: Vec<String> = tags
        .iter()
        .filter(|t| {
            let minor: u64 = t.split('.').nth(1).unwrap().parse().unwrap();
            minor == 3 || minor >= 25
        })
        .cloned()
        .collect();
    expected.sort_by_key(|t| {
        let parts: Vec<u64> = t.split('.').map(|p| p.parse().unwrap()).collect();
        (parts[1], parts[2])
    });
    assert_eq!(
        found, expected,
        "2.8 ignores n: everything arrives in one page"
    );
    let dir = tempfile::tempdir().unwrap();
    let got = get(&source, "1.29.9", dir.path());
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("digest")).unwrap(),
        digests[299]
    );
    // Wrong password: one line, no password.
    let bad = json!({"uri": uri, "username": user, "password": "not-the-password"});
    let failed = run(&["check"], &json!({"source": bad}));
    assert_eq!(failed.code, 1, "{failed:?}");
    assert_eq!(failed.stderr.lines().count(), 1, "{failed:?}");
    assert!(failed.stderr.contains("unauthorized"), "{failed:?}");
    assert!(!failed.stderr.contains("not-the-password"), "{failed:?}");
}

#[test]
fn real_registry_with_basic_auth() {
    real_registry(RegistryAuth::basic("alice", "pa55word"));
}

#[test]
fn real_registry_with_bearer_tokens() {
    real_registry(RegistryAuth::bearer("alice", "pa55word"));
}

#[test]
fn real_registry_over_tls_with_ca_certs() {
    let registry = Registry::start(RegistryAuth::tls_basic("alice", "pa55word"));
    push_tags(&registry, "app", &["v1".to_owned()]);
    let uri = format!("{}/v2/app", registry.base_url());
    let source = json!({"uri": uri, "username": "alice", "password": "pa55word",
                        "ca_certs": [registry.ca_cert_pem().unwrap()]});
    assert_eq!(check_tags(&source, None).0, ["v1"]);
    let without_ca = run(
        &["check"],
        &json!({"source": {"uri": uri, "username": "alice", "password": "pa55word"}}),
    );
    assert_eq!(without_ca.code, 1);
    assert!(
        without_ca.stderr.to_lowercase().contains("certificate"),
        "{without_ca:?}"
    );
    let insecure =
        json!({"uri": uri, "username": "alice", "password": "pa55word", "insecure": true});
    assert_eq!(check_tags(&insecure, None).0, ["v1"]);
}
