//! The client against the distribution-API fixture: pagination, retries, faults, redirects.

use futures::TryStreamExt;
use registry_client::{RegistryError, media};
use testbed::fixtures::distribution::{DistributionFixture, Faults, OCI_MANIFEST};

use crate::{client, client_as};

fn tag_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("1.0.{i:04}")).collect()
}

#[tokio::test]
async fn lists_tags_across_link_pages() {
    let fx = DistributionFixture::start();
    fx.add_tags("team/app", &tag_names(250));
    let c = client(&fx.host(), "team/app");
    // (page size, max pages) -> tags expected, tags/list requests expected
    let cases = [
        (100, 10, 250, 3),
        (100, 2, 200, 2),
        (1000, 5, 250, 1),
        (7, 1, 7, 1),
        (250, 9, 250, 1),
    ];
    for (page_size, max_pages, want_tags, want_requests) in cases {
        fx.clear_requests();
        let tags = c.list_tags(page_size, max_pages).await.unwrap();
        assert_eq!(
            tags.len(),
            want_tags,
            "page size {page_size}, pages {max_pages}"
        );
        assert_eq!(tags, tag_names(250)[..want_tags], "order kept");
        let lists = fx
            .requests()
            .iter()
            .filter(|r| r.path.contains("/tags/list"))
            .count();
        assert_eq!(
            lists, want_requests,
            "page size {page_size}, pages {max_pages}"
        );
    }
    let later = fx
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("last="))
        .count();
    assert_eq!(later, 0, "the last case fits in one page");
}

#[tokio::test]
async fn pages_one_at_a_time() {
    let fx = DistributionFixture::start();
    fx.add_tags("app", &tag_names(5));
    let c = client(&fx.host(), "app");
    let mut pages = c.tag_pages(2).await.unwrap();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
    }
    assert_eq!(sizes, [2, 2, 1]);
    let paths: Vec<String> = fx.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/v2/app/tags/list?last=1.0.0001&n=2".to_owned()),
        "{paths:?}"
    );
}

#[tokio::test]
async fn registry_ignoring_n_answers_everything_at_once() {
    let fx = DistributionFixture::start();
    fx.add_tags("app", &tag_names(40));
    fx.set_faults(Faults {
        ignore_tag_pagination: true,
        ..Faults::default()
    });
    let tags = client(&fx.host(), "app").list_tags(10, 1).await.unwrap();
    assert_eq!(tags.len(), 40);
}

#[tokio::test]
async fn retries_429_and_5xx_but_not_404() {
    let fx = DistributionFixture::start();
    fx.add_tags("app", &["a"]);
    let c = client(&fx.host(), "app");
    // (faults, expect ok, tags/list requests)
    let cases = [
        (
            Faults {
                too_many_requests: 2,
                ..Faults::default()
            },
            true,
            3,
        ),
        (
            Faults {
                server_errors: 3,
                ..Faults::default()
            },
            true,
            4,
        ),
        (
            Faults {
                server_errors: 4,
                ..Faults::default()
            },
            false,
            4,
        ),
    ];
    for (faults, ok, requests) in cases {
        fx.clear_requests();
        fx.set_faults(faults.clone());
        let result = c.list_tags(10, 1).await;
        assert_eq!(result.is_ok(), ok, "{faults:?}: {result:?}");
        let lists = fx
            .requests()
            .iter()
            .filter(|r| r.path.contains("tags/list"))
            .count();
        assert_eq!(lists, requests, "{faults:?}");
        if !ok {
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains("500") && err.contains("injected failure"),
                "{err}"
            );
        }
    }
    fx.set_faults(Faults::default());
    fx.clear_requests();
    let err = client(&fx.host(), "nope")
        .list_tags(10, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::RepositoryNotFound { .. }),
        "{err}"
    );
    assert_eq!(
        fx.requests()
            .iter()
            .filter(|r| r.path.contains("tags/list"))
            .count(),
        1
    );
}

#[tokio::test]
async fn resolves_manifests_with_full_accept() {
    let fx = DistributionFixture::start();
    let digests = fx.add_tags("app", &["v1"]);
    let c = client(&fx.host(), "app");
    let d = c.head_manifest("v1").await.unwrap().unwrap();
    assert_eq!(d.digest, digests[0]);
    assert_eq!(d.media_type, OCI_MANIFEST);
    let manifest = c.get_manifest(&d.digest).await.unwrap();
    assert_eq!(manifest.digest, d.digest);
    assert_eq!(manifest.bytes.len() as u64, d.size);
    assert_eq!(c.head_manifest("v2").await.unwrap(), None);
    let err = c.get_manifest("v2").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::ManifestUnknown { .. }),
        "{err}"
    );
    assert_eq!(err.to_string(), "manifest unknown: app:v2 does not exist");
    for r in fx
        .requests()
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
    {
        assert_eq!(r.accept.as_deref(), Some(media::MANIFEST_ACCEPT), "{r:?}");
    }
}

#[tokio::test]
async fn computes_digest_when_header_is_missing() {
    let fx = DistributionFixture::start();
    let digests = fx.add_tags("app", &["v1"]);
    fx.set_faults(Faults {
        omit_digest_header: true,
        ..Faults::default()
    });
    let c = client(&fx.host(), "app");
    let d = c.head_manifest("v1").await.unwrap().unwrap();
    assert_eq!(d.digest, digests[0]);
    let methods: Vec<String> = fx
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/manifests/"))
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
    assert_eq!(c.head_manifest("missing").await.unwrap(), None);
}

#[tokio::test]
async fn downloads_blobs_verified_through_faults() {
    let fx = DistributionFixture::start();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = fx.add_blob("app", content.clone());
    let c = client(&fx.host(), "app");
    let dir = tempfile::tempdir().unwrap();
    // (name, faults, expected ranged requests)
    let cases = [
        ("clean", Faults::default(), 0),
        (
            "500 then fine",
            Faults {
                blob_server_errors: 2,
                ..Faults::default()
            },
            0,
        ),
        (
            "reset mid-blob, resumed",
            Faults {
                blob_resets: 2,
                ..Faults::default()
            },
            2,
        ),
        (
            "reset, server ignores range",
            Faults {
                blob_resets: 1,
                ignore_range: true,
                ..Faults::default()
            },
            1,
        ),
        (
            "429 first",
            Faults {
                too_many_requests: 1,
                ..Faults::default()
            },
            0,
        ),
    ];
    for (name, faults, ranged) in cases {
        fx.set_faults(faults);
        fx.clear_requests();
        let path = dir.path().join(name);
        let size = c
            .download_blob_to(&digest, &path)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(size, content.len() as u64, "{name}");
        assert!(
            std::fs::read(&path).unwrap() == content,
            "{name}: content differs"
        );
        let ranges = fx.requests().iter().filter(|r| r.range.is_some()).count();
        assert_eq!(ranges, ranged, "{name}: {:?}", fx.requests());
    }
    // Streaming gives the same bytes.
    fx.set_faults(Faults {
        blob_resets: 1,
        ..Faults::default()
    });
    let chunks: Vec<_> = c
        .get_blob(&digest)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(chunks.concat(), content);
}

#[tokio::test]
async fn rejects_corrupt_blobs_and_leaves_no_file() {
    let fx = DistributionFixture::start();
    let digest = fx.add_blob("app", b"layer bytes".to_vec());
    fx.set_faults(Faults {
        corrupt_blobs: 1,
        ..Faults::default()
    });
    let c = client(&fx.host(), "app");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let err = c.download_blob_to(&digest, &path).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("digest mismatch: expected {digest}, got sha256:"))
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file left behind"
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let err = c.download_blob_to(&missing, &path).await.unwrap_err();
    assert!(matches!(err, RegistryError::BlobUnknown { .. }), "{err}");
}

#[tokio::test]
async fn redirected_blobs_never_carry_credentials() {
    let fx = DistributionFixture::start();
    fx.require_basic_auth("user", "s3cret");
    let digest = fx.add_blob("app", vec![7u8; 100_000]);
    fx.set_faults(Faults {
        redirect_blobs: true,
        blob_resets: 1,
        ..Faults::default()
    });
    let c = client_as(&fx.host(), "app", "user", "s3cret");
    let bytes = c.get_blob_bytes(&digest, 1 << 20).await.unwrap();
    assert_eq!(bytes.len(), 100_000);
    let storage = fx.storage_requests();
    assert_eq!(storage.len(), 2, "reset then resumed: {storage:?}");
    assert!(storage.iter().all(|r| !r.had_authorization), "{storage:?}");
    assert!(fx.requests().iter().any(|r| r.had_authorization));
}

#[tokio::test]
async fn basic_auth_errors_never_show_the_password() {
    let fx = DistributionFixture::start();
    fx.require_basic_auth("user", "right-password");
    fx.add_tags("app", &["a"]);
    let ok = client_as(&fx.host(), "app", "user", "right-password");
    assert_eq!(ok.list_tags(10, 1).await.unwrap(), ["a"]);
    let cases = [
        (
            Some(("user", "wrong-password")),
            "rejected the credentials of user \"user\"",
        ),
        (None, "refused anonymous access to repository \"app\""),
    ];
    for (creds, expect) in cases {
        let c = match creds {
            Some((u, p)) => client_as(&fx.host(), "app", u, p),
            None => client(&fx.host(), "app"),
        };
        let err = c.list_tags(10, 1).await.unwrap_err();
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
        let text = format!("{err} {err:?}");
        assert!(text.contains(expect), "{text}");
        assert!(
            !text.contains("password\"") && !text.contains("wrong-password"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn pushes_blobs_manifests_and_mounts() {
    let fx = DistributionFixture::start();
    let c = client(&fx.host(), "dest/app");
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    let content = vec![42u8; 700_000];
    std::fs::write(&layer, &content).unwrap();
    let digest = testbed::fixtures::distribution::sha256_digest(&content);
    assert!(!c.blob_exists(&digest).await.unwrap());
    c.upload_blob(&digest, content.len() as u64, &layer)
        .await
        .unwrap();
    assert!(c.blob_exists(&digest).await.unwrap());
    assert_eq!(fx.blob(&digest).unwrap().len(), content.len());
    // A wrong digest is refused by the registry.
    let wrong = format!("sha256:{}", "1".repeat(64));
    let err = c.upload_blob_bytes(&wrong, "x".into()).await.unwrap_err();
    assert!(err.to_string().contains("DIGEST_INVALID"), "{err}");
    // Mount from another repository, or decline.
    let other = c.for_repository("other/app").unwrap();
    assert!(other.mount_blob(&digest, "dest/app").await.unwrap());
    assert!(other.blob_exists(&digest).await.unwrap());
    assert!(!other.mount_blob(&wrong, "dest/app").await.unwrap());
    // Manifests.
    let manifest = br#"{"schemaVersion":2}"#.to_vec();
    let pushed = c
        .put_manifest("v1", OCI_MANIFEST, manifest.clone().into())
        .await
        .unwrap();
    assert_eq!(
        pushed,
        testbed::fixtures::distribution::sha256_digest(&manifest)
    );
    assert_eq!(fx.tags("dest/app").get("v1"), Some(&pushed));
    let fetched = c.get_manifest("v1").await.unwrap();
    assert_eq!(
        (fetched.digest, fetched.media_type),
        (pushed, OCI_MANIFEST.to_owned())
    );
}

#[tokio::test]
async fn uploads_file_ranges_verified_while_streaming() {
    let fx = DistributionFixture::start();
    let c = client(&fx.host(), "app");
    let dir = tempfile::tempdir().unwrap();
    let blob: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let digest = testbed::fixtures::distribution::sha256_digest(&blob);
    let mut file = b"header bytes".to_vec();
    let offset = file.len() as u64;
    file.extend_from_slice(&blob);
    file.extend_from_slice(b"trailer");
    let mut tampered = file.clone();
    tampered[offset as usize + 1_000_000] ^= 1;
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::write(&good, &file).unwrap();
    std::fs::write(&bad, &tampered).unwrap();
    let len = blob.len() as u64;
    // (body limit, file, ok, upload sessions expected, PATCHes expected): a mismatch is
    // never retried, and a chunked upload checks the range before opening its session.
    let cases = [
        (None, &bad, false, 1, 0),
        (Some(1024 * 1024), &bad, false, 1, 0),
        // 1.5 MB: three PATCHes refused (8, 4, 2 MiB chunks), two of 1 MiB accepted.
        (Some(1024 * 1024), &good, true, 2, 5),
        (None, &good, true, 1, 0),
    ];
    for (limit, path, ok, sessions, patches) in cases {
        fx.set_faults(Faults {
            max_upload_body: limit,
            ..Faults::default()
        });
        fx.clear_requests();
        let result = c.upload_blob_range(&digest, path, offset, len).await;
        let case = format!("{limit:?} {}", path.display());
        match result {
            Ok(()) => assert!(ok, "{case}: uploaded"),
            Err(err) => {
                assert!(!ok, "{case}: {err}");
                assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
                assert!(err.to_string().contains(&digest), "{err}");
                assert!(fx.blob(&digest).is_none(), "{case}: nothing stored");
            }
        }
        let requests = fx.requests();
        let count = |method: &str| requests.iter().filter(|r| r.method == method).count();
        assert_eq!(count("POST"), sessions, "{case}");
        assert_eq!(count("PATCH"), patches, "{case}");
    }
    assert!(fx.blob(&digest).unwrap() == blob);
}

#[tokio::test]
async fn uploads_in_chunks_when_the_proxy_limits_bodies() {
    let fx = DistributionFixture::start();
    fx.set_faults(Faults {
        max_upload_body: Some(3 * 1024 * 1024),
        ..Faults::default()
    });
    let c = client(&fx.host(), "app");
    let content: Vec<u8> = (0..20_000_000u32).map(|i| (i % 241) as u8).collect();
    let digest = testbed::fixtures::distribution::sha256_digest(&content);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    std::fs::write(&path, &content).unwrap();
    c.upload_blob(&digest, content.len() as u64, &path)
        .await
        .unwrap();
    assert!(fx.blob(&digest).unwrap() == content);
    // In memory too.
    let small: Vec<u8> = content[..5_000_000].to_vec();
    let small_digest = testbed::fixtures::distribution::sha256_digest(&small);
    c.upload_blob_bytes(&small_digest, small.into())
        .await
        .unwrap();
    assert!(fx.blob(&small_digest).is_some());
    let methods: Vec<String> = fx.requests().into_iter().map(|r| r.method).collect();
    // Per blob: POST, PUT (413), POST, then PATCHes: 8 MiB (413), 4 MiB (413), 2 MiB each.
    let patches = methods.iter().filter(|m| *m == "PATCH").count();
    assert_eq!(patches, 2 + 10 + 2 + 3, "{methods:?}");
}

#[tokio::test]
async fn refreshes_a_token_the_registry_no_longer_accepts() {
    let fx = DistributionFixture::start();
    fx.require_bearer_tokens();
    fx.add_tags("app", &["a", "b"]);
    let digest = fx.add_blob("app", vec![1u8; 1000]);
    let c = client(&fx.host(), "app");
    assert_eq!(c.list_tags(10, 1).await.unwrap(), ["a", "b"]);
    assert!(c.head_manifest("a").await.unwrap().is_some());
    assert_eq!(
        fx.token_requests(),
        [vec!["repository:app:pull".to_owned()]]
    );
    // The token expires server-side: one 401, one new token, and the request succeeds.
    fx.expire_tokens();
    assert_eq!(c.get_blob_bytes(&digest, 10_000).await.unwrap().len(), 1000);
    assert_eq!(fx.token_requests().len(), 2);
    // Pushing asks for a push scope.
    c.upload_blob_bytes(
        &testbed::fixtures::distribution::sha256_digest(b"x"),
        "x".into(),
    )
    .await
    .unwrap();
    assert_eq!(
        fx.token_requests().last().unwrap(),
        &vec!["repository:app:pull,push".to_owned()]
    );
}
