//! The client against the packaged registry (distribution 2.8) in Basic, Bearer and TLS modes,
//! and a TLS one as the https blob storage a plain-http registry redirects to.

use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use registry_client::{ClientConfig, RegistryClient, RegistryError, RetryPolicy, Secret, media};
use testbed::http_fixture::HttpFixture;
use testbed::registry::{Registry, RegistryAuth};

/// A client for `registry`, with its credentials and CA when it has them.
fn client_for(registry: &Registry, repository: &str, password: Option<&str>) -> RegistryClient {
    let mut config = ClientConfig::new(registry.host(), repository);
    config.retry = RetryPolicy::fast();
    if let Some((user, pass)) = registry.credentials() {
        config.username = Some(user.to_owned());
        config.password = Some(Secret::new(password.unwrap_or(pass)));
    }
    config.ca_certs = registry
        .ca_cert_pem()
        .map(str::to_owned)
        .into_iter()
        .collect();
    RegistryClient::new(config).unwrap()
}

/// Pushes a tiny image under each tag (one shared config and layer) and returns the digests.
async fn push_tags(c: &RegistryClient, tags: &[String]) -> Vec<String> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = registry_client::digest::sha256_digest(config);
    c.upload_blob_bytes(&config_digest, config.to_vec().into())
        .await
        .unwrap();
    let mut digests = Vec::new();
    for tag in tags {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[],"annotations":{{"tag":"{tag}"}}}}"#,
            media::OCI_MANIFEST,
            config.len()
        );
        digests.push(
            c.put_manifest(tag, media::OCI_MANIFEST, manifest.into())
                .await
                .unwrap(),
        );
    }
    digests
}

async fn round_trip(auth: RegistryAuth) -> Registry {
    let registry = Registry::start(auth);
    let c = client_for(&registry, "team/app", None);
    let tags: Vec<String> = (0..300)
        .map(|i| format!("2.{}.{}", i / 10, i % 10))
        .collect();
    let digests = push_tags(&c, &tags).await;
    let mut listed = c.list_tags(50, 100).await.unwrap();
    listed.sort();
    let mut expected = tags.clone();
    expected.sort();
    assert_eq!(listed, expected, "2.8 ignores n and answers everything");
    let d = c.head_manifest("2.7.3").await.unwrap().unwrap();
    assert_eq!(d.digest, digests[73]);
    assert_eq!(d.media_type, media::OCI_MANIFEST);
    let m = c.get_manifest(&d.digest).await.unwrap();
    assert_eq!(m.digest, d.digest);
    assert_eq!(c.head_manifest("nope").await.unwrap(), None);
    registry
}

#[tokio::test]
async fn plain_registry_round_trip() {
    round_trip(RegistryAuth::None).await;
}

#[tokio::test]
async fn basic_auth_registry_round_trip_and_wrong_password() {
    let registry = round_trip(RegistryAuth::basic("alice", "pa55word")).await;
    let err = client_for(&registry, "team/app", Some("wrong-pass"))
        .list_tags(10, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-pass"), "{err}");
}

#[tokio::test]
async fn tls_registry_round_trip_with_ca_certs() {
    let registry = round_trip(RegistryAuth::tls_basic("alice", "pa55word")).await;
    // Without the CA the certificate is refused (no silent http fallback on TLS errors).
    // Both with the scheme forced and with the automatic https-then-http choice.
    for registry_name in [format!("https://{}", registry.host()), registry.host()] {
        let mut config = ClientConfig::new(registry_name, "team/app");
        // A retry would wait an hour (and the test time out): certificate errors are final.
        config.retry = RetryPolicy {
            base_delay: std::time::Duration::from_secs(3600),
            max_delay: std::time::Duration::from_secs(3600),
            ..RetryPolicy::fast()
        };
        let err = RegistryClient::new(config)
            .unwrap()
            .list_tags(10, 1)
            .await
            .unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn bearer_registry_round_trip_with_scoped_tokens() {
    let registry = round_trip(RegistryAuth::bearer("alice", "pa55word")).await;
    let tokens = registry.token_server().unwrap().requests();
    let scopes: Vec<String> = tokens.iter().flat_map(|t| t.scopes.clone()).collect();
    assert!(
        scopes.contains(&"repository:team/app:pull,push".to_owned()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:team/app:pull".to_owned()),
        "{scopes:?}"
    );
    // Tokens are cached per scope: far fewer token requests than registry requests (300 pushes).
    assert!(tokens.len() <= 4, "{tokens:?}");
    // Fifty concurrent lookups by a fresh client share one token request.
    let before = registry.token_server().unwrap().requests().len();
    let fresh = client_for(&registry, "team/app", None);
    let lookups = (0..50).map(|i| {
        let fresh = fresh.clone();
        async move {
            fresh
                .head_manifest(&format!("2.{}.{}", i / 10, i % 10))
                .await
        }
    });
    let found = futures::future::join_all(lookups).await;
    assert!(found.iter().all(|r| matches!(r, Ok(Some(_)))), "{found:?}");
    let after = registry.token_server().unwrap().requests().len();
    assert_eq!(after - before, 1, "one token for fifty concurrent requests");
    // Anonymous clients get pull-only tokens: reads work, pushes are refused.
    let mut config = ClientConfig::new(registry.host(), "team/app");
    config.retry = RetryPolicy::fast();
    let anonymous = RegistryClient::new(config).unwrap();
    assert_eq!(anonymous.list_tags(1000, 1).await.unwrap().len(), 300);
    let err = anonymous
        .upload_blob_bytes(&registry_client::digest::sha256_digest(b"x"), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    // Wrong password: the token server says 401.
    let err = client_for(&registry, "team/app", Some("bad"))
        .list_tags(10, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

/// A plain-http registry that answers blob `GET`s with a redirect to https blob storage (here a
/// TLS registry with its own CA), as registries in front of object storage do: the redirect is
/// followed with the TLS settings (`ca_certs`) and no credentials, and without the CA the
/// certificate is refused at once, never retried.
#[tokio::test]
async fn http_registry_redirects_blobs_to_https_storage() {
    let storage = Registry::start(RegistryAuth::Tls);
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = registry_client::digest::sha256_digest(&content);
    client_for(&storage, "store/app", None)
        .upload_blob_bytes(&digest, content.clone().into())
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<bool>>> = Arc::default();
    let front = {
        let (base, seen) = (storage.base_url(), Arc::clone(&seen));
        let blob = move |Path(digest): Path<String>, headers: HeaderMap| async move {
            let authorized = headers
                .get(header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes().starts_with(b"Basic "));
            seen.lock().unwrap().push(authorized);
            if !authorized {
                let challenge = [(header::WWW_AUTHENTICATE, r#"Basic realm="front""#)];
                return (StatusCode::UNAUTHORIZED, challenge).into_response();
            }
            Redirect::temporary(&format!("{base}/v2/store/app/blobs/{digest}")).into_response()
        };
        let router = axum::Router::new().route("/v2/app/blobs/{digest}", axum::routing::get(blob));
        HttpFixture::serve("http-front", router)
    };
    let config = |registry: &str, ca: bool| {
        let mut config = ClientConfig::new(registry, "app");
        config.username = Some("alice".into());
        config.password = Some(Secret::new("pa55word"));
        config.ca_certs = storage
            .ca_cert_pem()
            .filter(|_| ca)
            .map(str::to_owned)
            .into_iter()
            .collect();
        config
    };
    // Named with the scheme, and bare (https probed first, then http).
    for registry in [front.url(), front.addr().to_string()] {
        let mut with_ca = config(&registry, true);
        with_ca.retry = RetryPolicy::fast();
        let c = RegistryClient::new(with_ca).unwrap();
        let got = c.get_blob_bytes(&digest, 1 << 20).await.unwrap();
        assert!(got == content, "{registry}: blob differs");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        assert_eq!(c.download_blob_to(&digest, &path).await.unwrap(), 300_000);
        assert!(std::fs::read(&path).unwrap() == content, "{registry}");

        let mut without_ca = config(&registry, false);
        // A retry would wait an hour (and the test time out): certificate errors are final.
        without_ca.retry = RetryPolicy {
            base_delay: std::time::Duration::from_secs(3600),
            max_delay: std::time::Duration::from_secs(3600),
            ..RetryPolicy::fast()
        };
        let err = RegistryClient::new(without_ca)
            .unwrap()
            .get_blob_bytes(&digest, 1 << 20)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.to_lowercase().contains("certificate"), "{message}");
        assert!(message.contains("https://127.0.0.1:"), "{message}");
        assert!(!message.contains("pa55word"), "{message}");
    }
    // Each fetch: a 401, then the redirect with credentials (the storage never sees them:
    // it is another origin, and the client attaches credentials to its registry's only).
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|a| **a).count(), 6, "{seen:?}");
}
