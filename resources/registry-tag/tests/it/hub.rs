//! check and in against the Docker Hub listing-API fixture.

use serde_json::json;
use testbed::fixtures::hub::{HubFixture, HubImage};

use crate::support::{check_tags, get, numbered, run};

#[test]
fn lists_pages_newest_last() {
    let hub = HubFixture::start();
    hub.push_tags("library/app", &numbered("t", 120));
    let uri = hub.repository_uri("library/app");
    // (pages, tags_per_page, expected count, first (oldest) of those emitted)
    let cases = [
        (json!(1), json!(25), 25, "t95"),
        (json!("2"), json!("50"), 100, "t20"),
        (json!(3), json!(50), 120, "t0"),
        (json!(10), json!(100), 120, "t0"),
        (json!(1), json!(100), 100, "t20"),
        (json!(1), json!(1), 1, "t119"),
    ];
    for (pages, per_page, count, first) in cases {
        let source = json!({"uri": uri, "pages": pages, "tags_per_page": per_page});
        let (tags, _) = check_tags(&source, None);
        assert_eq!(tags.len(), count, "{source}");
        assert_eq!(tags[0], first, "{source}");
        assert_eq!(tags.last().unwrap(), "t119", "newest last: {source}");
    }
    // Default: one page of 25.
    let (tags, _) = check_tags(&json!({"uri": uri}), None);
    assert_eq!(tags.len(), 25);
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.ends_with("/tags?page_size=25"))
    );
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.contains("page=2&page_size=50"))
    );
}

#[test]
fn filters_like_the_users_pipeline() {
    let hub = HubFixture::start();
    let tags = [
        "2.6.10",
        "2.6.10-alpine",
        "2.7.0",
        "2.7.0-alpine",
        "3.0.0-rc1",
        "01.2.3",
        "latest",
        "alpine",
        "3.1.4-alpine",
        "3.1.4",
        "3.2.0-alpine3.19",
        "2.7.8-alpine",
        "slim",
    ];
    hub.push_tags("library/ruby", &tags);
    let uri = hub.repository_uri("library/ruby");
    let source = json!({
        "uri": uri,
        "pages": 3,
        "tags_per_page": 5,
        "regexp": "^[0-9]+[.][0-9]+[.][0-9]+-alpine$",
        "semver": {"matcher": ">= 2.7"},
    });
    let (found, _) = check_tags(&source, None);
    assert_eq!(found, ["2.7.0-alpine", "2.7.8-alpine", "3.1.4-alpine"]);
    let (found, _) = check_tags(&source, Some("2.7.8-alpine"));
    assert_eq!(found, ["2.7.8-alpine", "3.1.4-alpine"]);
    // The current tag was deleted upstream: the newest, with a warning.
    let (found, stderr) = check_tags(&source, Some("2.7.5-alpine"));
    assert_eq!(found, ["3.1.4-alpine"]);
    assert!(stderr.contains("no longer listed"), "{stderr}");
    // Re-pushing a tag moves it to the front of Hub's listing: no duplicates, newest last.
    hub.push_tag("library/ruby", "2.6.10");
    let (found, _) = check_tags(&json!({"uri": uri, "pages": 5, "tags_per_page": 3}), None);
    assert_eq!(found.len(), tags.len());
    assert_eq!(found.last().unwrap(), "2.6.10");
}

#[test]
fn in_writes_the_platform_digest() {
    let hub = HubFixture::start();
    let amd64 = hub.push_tag("library/app", "1.0.0");
    hub.push_tag_with_images(
        "library/app",
        "arm-only",
        vec![HubImage {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            digest: format!("sha256:{}", "a".repeat(64)),
        }],
    );
    let uri = hub.repository_uri("library/app");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("get");
    let got = get(&json!({"uri": uri}), "1.0.0", &dest);
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(std::fs::read_to_string(dest.join("tag")).unwrap(), "1.0.0");
    assert_eq!(std::fs::read_to_string(dest.join("digest")).unwrap(), amd64);
    assert_eq!(got.stdout["version"], json!({"tag": "1.0.0"}));
    assert_eq!(
        got.stdout["metadata"],
        json!([{"name": "tag", "value": "1.0.0"}, {"name": "digest", "value": amd64}])
    );
    // Other platforms, the peer's spelling, and failures.
    let arm = got_digest(
        &json!({"uri": uri, "platform": {"architecture": "arm64"}}),
        "arm-only",
    );
    assert_eq!(arm, Ok(format!("sha256:{}", "a".repeat(64))));
    let arm = got_digest(&json!({"uri": uri, "arch": "arm64"}), "arm-only");
    assert!(arm.is_ok(), "{arm:?}");
    let err = got_digest(&json!({"uri": uri}), "arm-only").unwrap_err();
    assert!(
        err.contains("has no linux/amd64 image (it has: linux/arm64/v8)"),
        "{err}"
    );
    let err = got_digest(&json!({"uri": uri}), "9.9.9").unwrap_err();
    assert!(err.contains("tag \"9.9.9\" not found"), "{err}");
}

/// Runs `in` and returns the digest file's content or the last stderr line.
fn got_digest(source: &serde_json::Value, tag: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let got = get(source, tag, dir.path());
    if got.code == 0 {
        Ok(std::fs::read_to_string(dir.path().join("digest")).unwrap())
    } else {
        Err(got.stderr.lines().last().unwrap_or_default().to_owned())
    }
}

#[test]
fn hub_errors_are_one_clear_line() {
    let hub = HubFixture::start();
    hub.create_repository("library/empty");
    let (tags, _) = check_tags(&json!({"uri": hub.repository_uri("library/empty")}), None);
    assert!(tags.is_empty());
    let missing = run(
        &["check"],
        &json!({"source": {"uri": hub.repository_uri("library/missing")}}),
    );
    assert_eq!(missing.code, 1, "{missing:?}");
    assert_eq!(missing.stderr.lines().count(), 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("404 Not Found: httperror 404: object not found"),
        "{missing:?}"
    );
}

#[test]
fn retries_when_throttled() {
    let hub = HubFixture::start();
    hub.push_tags("library/app", &numbered("t", 30));
    hub.throttle(2);
    let source = json!({"uri": hub.repository_uri("library/app"), "pages": 2, "tags_per_page": 20});
    let (tags, stderr) = check_tags(&source, None);
    assert_eq!(tags.len(), 30);
    assert_eq!(stderr.matches("429").count(), 2, "{stderr}");
    assert_eq!(hub.requests().len(), 4);
}

/// The fixture's own fidelity to Hub, checked from outside: page limits, absolute links,
/// newest first, 404 past the end.
#[test]
fn fixture_answers_like_hub() {
    let hub = HubFixture::start();
    hub.push_tags("library/app", &numbered("t", 5));
    let base = hub.repository_uri("library/app");
    let transport = registry_client::HttpTransport::new(
        &[],
        false,
        registry_client::RetryPolicy::fast(),
        "test",
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |url: String| {
        runtime.block_on(async {
            let response = transport.get(&url.parse().unwrap()).await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        })
    };
    let (status, page) = get(format!("{base}/tags?page_size=2"));
    assert_eq!(status, 200);
    assert_eq!(page["count"], 5);
    assert_eq!(page["previous"], serde_json::Value::Null);
    assert_eq!(page["results"][0]["name"], "t4", "newest first");
    assert_eq!(page["next"], format!("{base}/tags?page=2&page_size=2"));
    let (_, last) = get(format!("{base}/tags?page=3&page_size=2"));
    assert_eq!(last["next"], serde_json::Value::Null);
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    assert_eq!(get(format!("{base}/tags?page=4&page_size=2")).0, 404);
    assert_eq!(get(format!("{base}/tags?page_size=101")).0, 400);
    let (status, tag) = get(format!("{base}/tags/t1"));
    assert_eq!(status, 200);
    assert_eq!(tag["images"][0]["architecture"], "amd64");
    assert_eq!(get(format!("{base}/tags/nope")).0, 404);
}
