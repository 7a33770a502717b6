//! Our signatures and fingerprints against real `nix key` and `nix store sign`.

use nix_cache_resource::hash::Sha256Hash;
use nix_cache_resource::narinfo::{Compression, NarInfo};
use nix_cache_resource::signing::{PublicKey, SecretKey};
use nix_cache_resource::store_path::{StorePath, content_address_matches};
use testbed::tools::temp_dir;

use crate::support::{build_closure, nix_keys, nix_ok};

fn info_from_path_info(json: &serde_json::Value) -> NarInfo {
    NarInfo {
        store_path: StorePath::parse(json["path"].as_str().unwrap()).unwrap(),
        url: "nar/x.nar".into(),
        compression: Compression::None,
        file_hash: None,
        file_size: None,
        nar_hash: Sha256Hash::parse(json["narHash"].as_str().unwrap()).unwrap(),
        nar_size: json["narSize"].as_u64().unwrap(),
        references: {
            let mut r: Vec<StorePath> = json["references"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| StorePath::parse(r.as_str().unwrap()).unwrap())
                .collect();
            r.sort();
            r
        },
        deriver: None,
        system: None,
        sigs: vec![],
        ca: json["ca"].as_str().map(str::to_owned),
    }
}

#[test]
fn signatures_match_nix_store_sign() {
    let tmp = temp_dir("nix-sign");
    let keys = nix_keys(tmp.path(), "sign-test-1");
    let secret = SecretKey::parse(&keys.secret).unwrap();
    assert_eq!(secret.public_key().to_text(), keys.public);
    let public = PublicKey::parse(&keys.public).unwrap();
    let paths = build_closure(tmp.path(), "sign");
    let top = &paths[0];
    nix_ok(
        tmp.path(),
        &[
            "store",
            "sign",
            "--key-file",
            keys.secret_file.to_str().unwrap(),
            "-r",
            top,
        ],
    );
    let infos: serde_json::Value =
        serde_json::from_str(&nix_ok(tmp.path(), &["path-info", "--json", "-r", top])).unwrap();
    for json in infos.as_array().unwrap() {
        let info = info_from_path_info(json);
        let nix_sigs: Vec<&str> = json["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        // Ed25519 is deterministic: the same key over the same fingerprint gives Nix's bytes.
        let ours = secret.sign(&info.fingerprint());
        assert!(
            nix_sigs.contains(&ours.as_str()),
            "{}: {ours} not in {nix_sigs:?}",
            info.store_path
        );
        assert!(public.verifies(&info.fingerprint(), &ours));
    }
}

#[test]
fn content_addressed_paths_are_recognised() {
    let tmp = temp_dir("nix-ca");
    let file = tmp.path().join("some-file.txt");
    std::fs::write(&file, "content addressed\n").unwrap();
    let dir = tmp.path().join("some-dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("f"), "x").unwrap();
    for input in [&file, &dir] {
        let mut command = resource_protocol::process::command("nix-store", tmp.path());
        command.arg("--add").arg(input);
        let path = String::from_utf8(command.output().unwrap().stdout).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&nix_ok(tmp.path(), &["path-info", "--json", path.trim()]))
                .unwrap();
        let info = info_from_path_info(&json[0]);
        let ca = info.ca.clone().unwrap();
        assert!(
            content_address_matches(&info.store_path, &ca, &info.nar_hash, &info.references),
            "{ca}"
        );
        // A CA claim for another path, or with another hash, is not accepted.
        let other = StorePath::parse(&paths_other(&info.store_path)).unwrap();
        assert!(!content_address_matches(
            &other,
            &ca,
            &info.nar_hash,
            &info.references
        ));
        assert!(!content_address_matches(
            &info.store_path,
            &ca,
            &Sha256Hash([1; 32]),
            &info.references
        ));
    }
}

fn paths_other(path: &StorePath) -> String {
    format!("/nix/store/{}-{}", "0".repeat(32), path.name())
}
