//! What the packaged registry never does, through the testbed's distribution fixture: 429 and
//! 500 answers, connections reset mid-layer, corrupt blobs, missing digest headers, paginated
//! tag lists with a thousand tags, and blob redirects to another host (credentials stay home).

// Test helpers: a failed step is a failed test, with the panic naming it.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use testbed::fixtures::distribution::{DistributionFixture, Faults, OCI_MANIFEST};

use crate::images::{run, run_ok};

fn layer_tar(name: &str, content: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, name, content.as_bytes())
        .unwrap();
    builder.into_inner().unwrap()
}

/// A fixture holding `app:v1`, one layer with `hello` = `world`; returns it and the digest.
fn fixture_with_image() -> (DistributionFixture, String) {
    let fixture = DistributionFixture::start();
    let (manifest, _) = fixture.image_manifest("app", &layer_tar("hello", &"world".repeat(20_000)));
    let digest = fixture.add_manifest("app", Some("v1"), OCI_MANIFEST, manifest);
    (fixture, digest)
}

fn get_request(fixture: &DistributionFixture, digest: &str) -> serde_json::Value {
    json!({"source": {"repository": format!("{}/app", fixture.host())},
           "version": {"tag": "v1", "digest": digest}})
}

#[test]
fn in_survives_429_500_and_resets() {
    let cases = [
        Faults {
            too_many_requests: 2,
            ..Faults::default()
        },
        Faults {
            server_errors: 2,
            ..Faults::default()
        },
        Faults {
            blob_server_errors: 1,
            ..Faults::default()
        },
        Faults {
            blob_resets: 2,
            ..Faults::default()
        },
        Faults {
            blob_resets: 1,
            ignore_range: true,
            ..Faults::default()
        },
    ];
    for faults in cases {
        let (fixture, digest) = fixture_with_image();
        fixture.set_faults(faults.clone());
        let dest = tempfile::tempdir().unwrap();
        run_ok("in", Some(dest.path()), &get_request(&fixture, &digest));
        let hello = std::fs::read_to_string(dest.path().join("rootfs/hello")).unwrap();
        assert_eq!(hello.len(), 100_000, "{faults:?}");
    }
}

#[test]
fn corrupt_blobs_fail_with_a_digest_mismatch() {
    let (fixture, digest) = fixture_with_image();
    fixture.set_faults(Faults {
        corrupt_blobs: 100,
        ..Faults::default()
    });
    let dest = tempfile::tempdir().unwrap();
    let outcome = run("in", Some(dest.path()), &get_request(&fixture, &digest));
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("digest mismatch"),
        "{}",
        outcome.stderr
    );
    assert!(!dest.path().join("rootfs/hello").exists());
    assert!(!dest.path().join("digest").exists());
}

#[test]
fn redirected_blobs_never_carry_credentials() {
    let (fixture, digest) = fixture_with_image();
    fixture.require_basic_auth("user", "pw");
    fixture.set_faults(Faults {
        redirect_blobs: true,
        ..Faults::default()
    });
    let mut request = get_request(&fixture, &digest);
    request["source"]["username"] = json!("user");
    request["source"]["password"] = json!("pw");
    let dest = tempfile::tempdir().unwrap();
    run_ok("in", Some(dest.path()), &request);
    assert!(dest.path().join("rootfs/hello").is_file());
    let storage = fixture.storage_requests();
    assert!(!storage.is_empty());
    assert!(storage.iter().all(|r| !r.had_authorization), "{storage:?}");
}

#[test]
fn tag_mode_without_digest_header() {
    let (fixture, digest) = fixture_with_image();
    fixture.set_faults(Faults {
        omit_digest_header: true,
        ..Faults::default()
    });
    let versions = run_ok(
        "check",
        None,
        &json!({"source": {"repository": format!("{}/app", fixture.host()), "tag": "v1"}}),
    );
    assert_eq!(versions, json!([{"tag": "v1", "digest": digest}]));
}

#[test]
fn listing_modes_page_through_a_thousand_tags() {
    let fixture = DistributionFixture::start();
    let tags: Vec<String> = (0..1500).map(|i| format!("1.0.{i}")).collect();
    let digests = fixture.add_tags("app", &tags);
    let started = std::time::Instant::now();
    let versions = run_ok(
        "check",
        None,
        &json!({"source": {"repository": format!("{}/app", fixture.host())}}),
    );
    let elapsed = started.elapsed();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 1500);
    assert_eq!(versions[0], json!({"tag": "1.0.0", "digest": digests[0]}));
    assert_eq!(
        versions[1499],
        json!({"tag": "1.0.1499", "digest": digests[1499]})
    );
    let pages = fixture
        .requests()
        .iter()
        .filter(|r| r.path.contains("/tags/list"))
        .count();
    assert!(pages >= 2, "tags/list requests: {pages}");
    eprintln!("semver check over 1500 tags: {elapsed:?}");

    // Given the newest version, nothing older is requested again.
    fixture.clear_requests();
    let versions = run_ok(
        "check",
        None,
        &json!({"source": {"repository": format!("{}/app", fixture.host())},
                "version": {"tag": "1.0.1498", "digest": digests[1498]}}),
    );
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let heads = fixture
        .requests()
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .count();
    assert_eq!(heads, 2);

    let versions = run_ok(
        "check",
        None,
        &json!({"source": {"repository": format!("{}/app", fixture.host()), "tag_regex": "^1\\.0\\.14[0-9][0-9]$"}}),
    );
    assert_eq!(versions.as_array().unwrap().len(), 100);
}
