//! The attic API against the testbed's attic fixture: get-missing-paths, upload-path with both
//! metadata forms, Bearer tokens, sorted references, errors; then `in` and real Nix reading the
//! fixture's binary-cache endpoint.

use std::path::Path;

use nix_cache_resource::hash::Sha256Hash;
use nix_cache_resource::nar;
use nix_cache_resource::nix32;
use serde_json::json;
use testbed::fixtures::attic::{AtticFixture, InfoForm};
use testbed::tools::temp_dir;

use crate::support::{WebDav, build_closure, check, get, nix, out};

#[test]
fn push_fetch_and_pin_through_attic() {
    let tmp = temp_dir("nix-attic");
    let xdg = tmp.path();
    let paths = build_closure(xdg, "attic");
    let top = &paths[0];
    let attic = AtticFixture::start();
    attic.create_cache("main", true);
    attic.grant("push-token", "main", true);
    let pins = WebDav::start();
    let public = attic.public_key("main");
    let source = json!({"url": format!("{}/main", attic.endpoint()), "api": "attic",
                        "token": "push-token", "pin": "release",
                        "pins_url": format!("{}/pins/", pins.url()),
                        "trusted_public_keys": [public]});
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();

    let pushed = out(&src, &source, &json!({"paths": [top]})).json();
    assert_eq!(
        pushed["version"],
        json!({"store_path": top, "revision": "1"})
    );
    let uploads = attic.uploads();
    assert_eq!(uploads.len(), 3);
    for upload in &uploads {
        assert_eq!(upload.form, InfoForm::Header);
        assert!(upload.had_authorization);
        let mut sorted = upload.info.references.clone();
        sorted.sort();
        assert_eq!(upload.info.references, sorted);
        assert!(upload.info.nar_hash.starts_with("sha256:") && upload.info.nar_hash.len() == 71);
    }
    // Topological: each path after everything it references.
    let order: Vec<&str> = uploads.iter().map(|u| u.info.store_path.as_str()).collect();
    assert_eq!(
        order,
        [paths[2].as_str(), paths[1].as_str(), paths[0].as_str()]
    );
    assert_eq!(attic.missing_queries(), 1);

    // Idempotent: one missing-paths query, no upload.
    let again = out(&src, &source, &json!({"paths": [top]})).json();
    assert!(
        again["metadata"]
            .to_string()
            .contains(r#""name":"paths_uploaded","value":"0""#)
    );
    assert_eq!(attic.uploads().len(), 3);
    assert_eq!(attic.missing_queries(), 2);

    assert_eq!(
        check(&source, None).json(),
        json!([{"store_path": top, "revision": "1"}])
    );
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
    assert!(dest.join("result/bin/run").exists());

    // Real Nix reads what attic serves for our uploads, with attic's key.
    let store = xdg.join("nix-store-copy");
    let copied = nix(
        xdg,
        &[
            "copy",
            "--from",
            &format!("{}/main", attic.endpoint()),
            "--to",
            store.to_str().unwrap(),
            "--option",
            "trusted-public-keys",
            &public,
            top,
        ],
    );
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
}

/// Writes a local binary cache (uncompressed NARs) with `leaves` small paths and one root that
/// references all of them, so the root's upload info is larger than 4 KiB.
/// The first `upstream` leaves carry a (fake) cache.nixos.org signature.
fn write_wide_cache(dir: &Path, leaves: usize, upstream: usize) -> String {
    std::fs::create_dir_all(dir.join("nar")).unwrap();
    let store_path = |name: &str| {
        let digest = Sha256Hash::of(name.as_bytes());
        format!("/nix/store/{}-{name}", nix32::encode(&digest.0[..20]))
    };
    let write = |path: &str, refs: &[String], content: &str, sig: &str| {
        let file = dir.join("content");
        std::fs::write(&file, content).unwrap();
        let mut bytes = Vec::new();
        nar::dump_path(&file, &mut bytes).unwrap();
        let hash = Sha256Hash::of(&bytes);
        let hash_part = &path[11..43];
        std::fs::write(dir.join(format!("nar/{hash_part}.nar")), &bytes).unwrap();
        let mut bases: Vec<&str> = refs.iter().map(|r| &r[11..]).collect();
        bases.sort();
        std::fs::write(
            dir.join(format!("{hash_part}.narinfo")),
            format!(
                "StorePath: {path}\nURL: nar/{hash_part}.nar\nCompression: none\nNarHash: {hash}\nNarSize: {}\nReferences: {}\n{sig}",
                bytes.len(),
                bases.join(" ")
            ),
        )
        .unwrap();
    };
    let leaf_paths: Vec<String> = (0..leaves)
        .map(|i| store_path(&format!("leaf-with-a-longer-name-{i}")))
        .collect();
    for (i, leaf) in leaf_paths.iter().enumerate() {
        let sig = if i < upstream {
            "Sig: cache.nixos.org-1:AAAA\n"
        } else {
            ""
        };
        write(leaf, &[], &format!("leaf {i}"), sig);
    }
    let root = store_path("wide-root");
    write(&root, &leaf_paths, "root", "");
    root
}

#[test]
fn large_upload_info_goes_in_the_preamble_and_upstream_paths_stay() {
    let tmp = temp_dir("nix-attic-preamble");
    let root = write_wide_cache(&tmp.path().join("local"), 70, 2);
    let attic = AtticFixture::start();
    attic.create_cache("wide", false);
    attic.grant("t", "wide", true);
    let source = json!({"url": format!("{}/wide", attic.endpoint()), "api": "attic", "token": "t"});
    let pushed = out(tmp.path(), &source, &json!({"from": "local"})).json();
    assert_eq!(pushed["version"], json!({"store_path": root}));
    let uploads = attic.uploads();
    // Two leaves are signed by an upstream cache attic names in its cache-config.
    assert_eq!(uploads.len(), 69);
    for upload in uploads {
        let expected = if upload.info.store_path == root {
            InfoForm::Preamble
        } else {
            InfoForm::Header
        };
        assert_eq!(upload.form, expected, "{}", upload.info.store_path);
    }
}

async fn raw_request(
    method: reqwest::Method,
    url: String,
    token: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn attic_errors_follow_attic() {
    let attic = AtticFixture::start();
    attic.create_cache("private", false);
    attic.grant("good", "private", true);
    attic.grant("reader", "private", false);
    let endpoint = attic.endpoint();
    let nar_bytes = nar::raw::strings(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"contents",
        b"hi",
        b")",
    ]);
    let info = |hash: &str| {
        json!({"cache": "private", "store_path_hash": "00000000000000000000000000000000",
               "store_path": "/nix/store/00000000000000000000000000000000-x", "references": [],
               "system": null, "deriver": null, "sigs": [], "ca": null,
               "nar_hash": hash, "nar_size": nar_bytes.len()})
        .to_string()
    };
    let good_hash = Sha256Hash::of(&nar_bytes).to_hex_string();
    let wrong_hash = Sha256Hash::of(b"other").to_hex_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upload = format!("{endpoint}/_api/v1/upload-path");
    let missing = format!("{endpoint}/_api/v1/get-missing-paths");
    let missing_body =
        json!({"cache": "private", "store_path_hashes": ["00000000000000000000000000000000"]})
            .to_string()
            .into_bytes();
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    let cases = vec![
        (
            put.clone(),
            upload.clone(),
            "good",
            vec![("X-Attic-Nar-Info", info(&wrong_hash))],
            nar_bytes.clone(),
            400,
            json!({"code": 400, "error": "RequestError", "message": "General request error: Bad NAR Hash or Size"}),
        ),
        (
            put.clone(),
            upload.clone(),
            "bad-token",
            vec![("X-Attic-Nar-Info", info(&good_hash))],
            nar_bytes.clone(),
            401,
            json!({"code": 401, "error": "Unauthorized", "message": "Unauthorized."}),
        ),
        (
            put.clone(),
            upload.clone(),
            "reader",
            vec![("X-Attic-Nar-Info", info(&good_hash))],
            nar_bytes.clone(),
            403,
            json!({"code": 403, "error": "AccessError", "message": "Access error: User does not have permission to complete this action."}),
        ),
        (
            put.clone(),
            upload.clone(),
            "good",
            vec![],
            nar_bytes.clone(),
            400,
            json!({"code": 400, "error": "RequestError", "message": "General request error: X-Attic-Nar-Info must be set"}),
        ),
        (
            post.clone(),
            missing.clone(),
            "bad-token",
            vec![("Content-Type", "application/json".into())],
            missing_body.clone(),
            401,
            json!({"code": 401, "error": "Unauthorized", "message": "Unauthorized."}),
        ),
        (
            post.clone(),
            missing.clone(),
            "good",
            vec![("Content-Type", "application/json".into())],
            missing_body.clone(),
            200,
            json!({"missing_paths": ["00000000000000000000000000000000"]}),
        ),
        (
            put.clone(),
            upload.clone(),
            "good",
            vec![("X-Attic-Nar-Info", info(&good_hash))],
            nar_bytes.clone(),
            200,
            json!({"kind": "Uploaded", "file_size": nar_bytes.len(), "frac_deduplicated": 0.0}),
        ),
        (
            post.clone(),
            missing.clone(),
            "good",
            vec![("Content-Type", "application/json".into())],
            missing_body.clone(),
            200,
            json!({"missing_paths": []}),
        ),
    ];
    for (i, (method, url, token, headers, body, status, expect)) in cases.into_iter().enumerate() {
        let (got_status, got_body) =
            runtime.block_on(raw_request(method, url, token, &headers, body));
        assert_eq!((got_status, &got_body), (status, &expect), "case {i}");
    }
    // Preamble form by hand: JSON first, then the NAR.
    let json = info(&good_hash);
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(&nar_bytes);
    let (status, answer) = runtime.block_on(raw_request(
        put,
        upload,
        "good",
        &[("X-Attic-Nar-Info-Preamble-Size", json.len().to_string())],
        body,
    ));
    assert_eq!(
        (status, answer["kind"].as_str()),
        (200, Some("Deduplicated"))
    );

    // Our out reports attic's refusal of a bad token.
    let tmp = temp_dir("nix-attic-badtoken");
    write_wide_cache(&tmp.path().join("local"), 1, 0);
    let source = json!({"url": format!("{endpoint}/private"), "api": "attic", "token": "nope"});
    let run = out(tmp.path(), &source, &json!({"from": "local"}));
    run.failed_with("401 Unauthorized");
    assert!(!run.stderr.contains("nope"), "token leaked: {}", run.stderr);
    // A token that may see a cache that does not exist learns so from cache-config.
    attic.grant("ghost-token", "ghost", true);
    let source =
        json!({"url": format!("{endpoint}/ghost"), "api": "attic", "token": "ghost-token"});
    out(tmp.path(), &source, &json!({"from": "local"}))
        .failed_with("The requested cache does not exist.");
}

#[test]
fn private_attic_caches_are_read_with_the_token() {
    let tmp = temp_dir("nix-attic-private");
    let xdg = tmp.path();
    let paths = build_closure(xdg, "attic-private");
    let top = &paths[0];
    let attic = AtticFixture::start();
    attic.create_cache("secret", false);
    attic.grant("writer", "secret", true);
    attic.grant("reader", "secret", false);
    let url = format!("{}/secret", attic.endpoint());
    let public = attic.public_key("secret");
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    let wait = json!({"url": url, "api": "attic", "token": "reader", "store_path": top,
                      "trusted_public_keys": [public]});
    assert_eq!(check(&wait, None).json(), json!([]));
    // A read-only token cannot push: attic answers 403.
    let reader = json!({"url": url, "api": "attic", "token": "reader"});
    out(&src, &reader, &json!({"paths": [top]})).failed_with("403 Forbidden");
    let writer = json!({"url": url, "api": "attic", "token": "writer"});
    out(&src, &writer, &json!({"paths": [top]})).json();
    assert_eq!(check(&wait, None).json(), json!([{"store_path": top}]));
    let dest = xdg.join("dest");
    get(&dest, &wait, &json!({"store_path": top}), &json!({})).json();
    assert!(dest.join("result/bin/run").exists());
    // Without a token the private cache does not even admit it exists.
    let anonymous = json!({"url": url, "trusted_public_keys": [public]});
    let run = get(
        &xdg.join("dest2"),
        &anonymous,
        &json!({"store_path": top}),
        &json!({}),
    );
    assert_ne!(run.code, 0);
    assert!(!xdg.join("dest2/store-path").exists());
}
