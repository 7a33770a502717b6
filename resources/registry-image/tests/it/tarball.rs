//! `out` from image tarballs read in place (no extraction) against the real registry: the
//! digests match the extract path's (the same tarball gzipped) and skopeo's, long member names
//! (GNU and PAX), repeated layers linked as old `docker save` does, and tampered tarballs.

// Test helpers: a failed step is a failed test, with the panic naming it.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

use registry_image_resource::tar_index::TarIndex;
use serde_json::json;
use testbed::registry::{Registry, RegistryAuth};

use crate::images::{remote_raw, run, run_ok, sha256, skopeo, source};

/// One member of a hand-made tarball.
#[derive(Clone)]
enum Member {
    File(Vec<u8>),
    Symlink(String),
}

/// A tarball's members, in order.
type Members = Vec<(String, Member)>;

/// Writes `members` as a tarball; names over 100 bytes get GNU long-name entries, or PAX
/// `path` records with `pax`.
fn write_tar(path: &Path, members: &[(String, Member)], pax: bool) {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, member) in members {
        let mut header = if pax {
            tar::Header::new_ustar()
        } else {
            tar::Header::new_gnu()
        };
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        let data: &[u8] = match member {
            Member::File(data) => data,
            Member::Symlink(_) => {
                header.set_entry_type(tar::EntryType::Symlink);
                b""
            }
        };
        header.set_size(data.len() as u64);
        if pax && name.len() > 100 {
            builder
                .append_pax_extensions([("path", name.as_bytes())])
                .unwrap();
            if let Member::Symlink(target) = member {
                header.set_link_name(target).unwrap();
            }
            let short = &mut header.as_old_mut().name;
            short.copy_from_slice(&name.as_bytes()[..100]);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        } else {
            match member {
                Member::Symlink(target) => builder.append_link(&mut header, name, target).unwrap(),
                Member::File(_) => builder.append_data(&mut header, name, data).unwrap(),
            }
        }
    }
    std::fs::write(path, builder.into_inner().unwrap()).unwrap();
}

fn file(name: impl Into<String>, data: &[u8]) -> (String, Member) {
    (name.into(), Member::File(data.to_vec()))
}

fn link(name: impl Into<String>, target: &str) -> (String, Member) {
    (name.into(), Member::Symlink(target.to_owned()))
}

/// A two-layer image with uncompressed layers: its config and layer tars.
struct Image {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
}

fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn image() -> Image {
    let layers = vec![
        layer(&[("etc/hello", "world"), ("bin/tool", "x")]),
        layer(&[("etc/second", "layer two")]),
    ];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "User": "1000"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    Image { config, layers }
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// An old-style `docker save`: `<hex>.json` config, each layer under a long directory name,
/// the first layer repeated through a symlink as docker does for shared layers.
fn docker_save(image: &Image) -> Vec<(String, Member)> {
    let long = "d".repeat(120);
    let config_name = format!("{}.json", hex(&sha256(&image.config)));
    let names = [
        format!("{long}/0/layer.tar"),
        format!("{long}/1/layer.tar"),
        "again/layer.tar".to_owned(),
    ];
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name, "RepoTags": ["app:t"], "Layers": names
    }]))
    .unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
    let first = config["rootfs"]["diff_ids"][0].clone();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(first);
    let config = serde_json::to_vec(&config).unwrap();
    let config_name_3 = format!("{}.json", hex(&sha256(&config)));
    let manifest_3 = String::from_utf8(manifest)
        .unwrap()
        .replace(&config_name, &config_name_3);
    vec![
        file(config_name_3, &config),
        file(names[0].clone(), &image.layers[0]),
        file(names[1].clone(), &image.layers[1]),
        link("again/layer.tar", &format!("../{long}/0/layer.tar")),
        file("manifest.json", manifest_3.as_bytes()),
    ]
}

/// A Docker 25+ save without `index.json`: every file under `blobs/sha256/`.
fn docker_save_blobs(image: &Image) -> Vec<(String, Member)> {
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", hex(&sha256(bytes)));
    let manifest = serde_json::to_vec(&json!([{
        "Config": blob(&image.config), "RepoTags": ["app:t"],
        "Layers": image.layers.iter().map(|l| blob(l)).collect::<Vec<_>>()
    }]))
    .unwrap();
    let mut members = vec![file(blob(&image.config), &image.config)];
    members.extend(image.layers.iter().map(|l| file(blob(l), l)));
    members.push(file("manifest.json", &manifest));
    members
}

/// An old-style save with gzipped layers (no digest stated anywhere: they are hashed);
/// returns its members and the layer digests.
fn docker_save_gzip(image: &Image) -> (Members, Vec<String>) {
    let long = "g".repeat(110);
    let config_name = format!("{}.json", hex(&sha256(&image.config)));
    let layers: Vec<Vec<u8>> = image
        .layers
        .iter()
        .map(|l| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(l).unwrap();
            encoder.finish().unwrap()
        })
        .collect();
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("{long}/{i}/layer.tar"))
        .collect();
    let manifest = serde_json::to_vec(&json!([{"Config": config_name, "Layers": names}])).unwrap();
    let mut members = vec![file(config_name, &image.config)];
    members.extend(names.iter().zip(&layers).map(|(n, l)| file(n.clone(), l)));
    members.push(file("manifest.json", &manifest));
    (members, layers.iter().map(|l| sha256(l)).collect())
}

/// An oci-archive (an OCI layout in a tar); returns its members and its manifest digest.
fn oci_archive(image: &Image) -> (Vec<(String, Member)>, String) {
    let blob = |bytes: &[u8]| file(format!("blobs/sha256/{}", hex(&sha256(bytes))), bytes);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&image.config), "size": image.config.len()},
        "layers": image.layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(l), "size": l.len()})).collect::<Vec<_>>()
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    .unwrap();
    let mut members = vec![
        file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        file("index.json", &index),
        blob(&image.config),
        blob(&manifest),
    ];
    members.extend(image.layers.iter().map(|l| blob(l)));
    (members, sha256(&manifest))
}

fn gzip(path: &Path) -> std::path::PathBuf {
    let gz = path.with_extension("tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&std::fs::read(path).unwrap()).unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    gz
}

/// Runs `out` of `image` (relative to `src`) to `repo:t`.
fn out(registry: &Registry, src: &Path, image: &str, repo: &str) -> testbed::resource_cli::Run {
    let mut source = source(registry, repo);
    source["tag"] = json!("t");
    run(
        "out",
        Some(src),
        &json!({"source": source, "params": {"image": image}}),
    )
}

fn pushed_manifest(registry: &Registry, repo: &str) -> serde_json::Value {
    serde_json::from_slice(&remote_raw(registry, repo, "t")).unwrap()
}

#[test]
fn in_place_pushes_what_the_extract_path_and_skopeo_push() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let image = image();
    let (oci_members, oci_digest) = oci_archive(&image);
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let ids: Vec<String> = image.layers.iter().map(|l| sha256(l)).collect();
    let (gz_members, gz_digests) = docker_save_gzip(&image);
    let layers = |list: &[(&str, &String)]| -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(m, d)| (m.to_string(), d.to_string()))
                .collect(),
        )
    };
    // name, members, PAX long names, manifest digest expected, pushed layers expected
    // (docker-save layers go up as they are: uncompressed tars have their diff_id)
    let cases = [
        (
            "docker-save-gnu",
            docker_save(&image),
            false,
            None,
            layers(&[(tar, &ids[0]), (tar, &ids[1]), (tar, &ids[0])]),
        ),
        (
            "docker-save-pax",
            docker_save(&image),
            true,
            None,
            layers(&[(tar, &ids[0]), (tar, &ids[1]), (tar, &ids[0])]),
        ),
        (
            "docker-save-blobs",
            docker_save_blobs(&image),
            false,
            None,
            layers(&[(tar, &ids[0]), (tar, &ids[1])]),
        ),
        (
            "docker-save-gzip",
            gz_members,
            false,
            None,
            layers(&[(gz, &gz_digests[0]), (gz, &gz_digests[1])]),
        ),
        ("oci-archive", oci_members, true, Some(oci_digest), None),
    ];
    let mut docker_digests = Vec::new();
    for (name, members, pax, expect, expect_layers) in cases {
        let tarball = src.join(format!("{name}.tar"));
        write_tar(&tarball, &members, pax);
        let gz = gzip(&tarball);
        let in_place = out(&registry, &src, &format!("{name}.tar"), name);
        assert_eq!(in_place.code, 0, "{name}: {}", in_place.stderr);
        assert!(
            in_place.stderr.contains("read in place, nothing extracted"),
            "{name}: {}",
            in_place.stderr
        );
        let extracted_repo = format!("{name}-extracted");
        let extracted = out(&registry, &src, &format!("{name}.tar.gz"), &extracted_repo);
        assert_eq!(extracted.code, 0, "{name}: {}", extracted.stderr);
        assert!(
            extracted.stderr.contains("compressed, extracted"),
            "{name}: {}",
            extracted.stderr
        );
        std::fs::remove_file(gz).unwrap();
        let digest = in_place.stdout["version"]["digest"].as_str().unwrap();
        assert_eq!(
            digest, extracted.stdout["version"]["digest"],
            "{name}: in place and extracted push the same manifest"
        );
        assert_eq!(sha256(&remote_raw(&registry, name, "t")), digest, "{name}");
        if let Some(expect) = expect {
            assert_eq!(digest, expect, "{name}: the archive's own manifest");
        }
        if let Some(expect) = expect_layers {
            let manifest = pushed_manifest(&registry, name);
            let pushed: Vec<(String, String)> = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let field = |k: &str| l[k].as_str().unwrap().to_owned();
                    (field("mediaType"), field("digest"))
                })
                .collect();
            assert_eq!(pushed, expect, "{name}");
            docker_digests.push(digest.to_owned());
        }
        // And the image is whole: `in` unpacks it.
        let dest = dir.path().join(format!("dest-{name}"));
        run_ok(
            "in",
            Some(&dest),
            &json!({"source": source(&registry, name), "version": {"tag": "t", "digest": digest}}),
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("rootfs/etc/second")).unwrap(),
            "layer two",
            "{name}"
        );
    }
    // The GNU and PAX spellings of one tarball are one image.
    assert_eq!(docker_digests[0], docker_digests[1]);

    // skopeo's docker-archive (symlinked `<diff_id>.tar` layers, `<id>.json` config): our push
    // names the same config and layers as skopeo's push of it.
    let archive = src.join("skopeo.tar");
    skopeo(&[
        "copy".into(),
        "--dest-tls-verify=false".into(),
        format!("oci-archive:{}", src.join("oci-archive.tar").display()),
        format!("docker-archive:{}:app:t", archive.display()),
    ]);
    let ours = out(&registry, &src, "skopeo.tar", "ours");
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    let theirs: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect".into(),
        "--raw".into(),
        format!("docker-archive:{}", archive.display()),
    ]))
    .unwrap();
    let blobs = |m: serde_json::Value| {
        let mut digests = vec![m["config"]["digest"].clone()];
        digests.extend(
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].clone()),
        );
        digests
    };
    assert_eq!(blobs(pushed_manifest(&registry, "ours")), blobs(theirs));
}

/// Flips one byte of member `name` of `tarball`, inside its data.
fn flip(tarball: &Path, name: &str) {
    let range = TarIndex::open(tarball).unwrap().find(name).unwrap();
    let mut bytes = std::fs::read(tarball).unwrap();
    let at = usize::try_from(range.offset + range.len / 2).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(tarball, bytes).unwrap();
}

#[test]
fn tampered_tarballs_fail_naming_the_digest_and_tag_nothing() {
    let registry = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let image = image();
    let layer0 = sha256(&image.layers[0]);
    let layer1 = sha256(&image.layers[1]);
    let config = sha256(&image.config);
    let (oci_members, manifest) = oci_archive(&image);
    let long = format!("{}/1/layer.tar", "d".repeat(120));
    let saved = docker_save(&image);
    let saved_config = saved[0].0.clone();
    let blob = |d: &str| format!("blobs/sha256/{}", hex(d));
    let mut escaping = docker_save(&image);
    escaping[3] = link("again/layer.tar", "/etc/passwd");
    // case, members, member to flip, what the error names
    let cases: Vec<(&str, Members, Option<String>, Vec<String>)> = vec![
        (
            "oci-layer",
            oci_members.clone(),
            Some(blob(&layer1)),
            vec![format!("digest mismatch: expected {layer1}")],
        ),
        (
            "oci-config",
            oci_members.clone(),
            Some(blob(&config)),
            vec![format!("digest mismatch: expected {config}")],
        ),
        (
            "oci-manifest",
            oci_members,
            Some(blob(&manifest)),
            vec![format!("digest mismatch: blob {manifest} hashes to")],
        ),
        (
            "save-layer",
            docker_save(&image),
            Some(long.clone()),
            vec![format!("digest mismatch: expected {layer1}")],
        ),
        (
            "save-config",
            saved,
            Some(saved_config.clone()),
            vec![format!("digest mismatch: config {saved_config} hashes to")],
        ),
        (
            "save-blobs-layer",
            docker_save_blobs(&image),
            Some(blob(&layer0)),
            vec![format!("digest mismatch: expected {layer0}")],
        ),
        (
            "save-escaping-link",
            escaping,
            None,
            vec!["is a link to \"/etc/passwd\", outside the tarball".to_owned()],
        ),
    ];
    for (name, members, tamper, expect) in cases {
        let tarball = src.join(format!("{name}.tar"));
        write_tar(&tarball, &members, false);
        if let Some(member) = tamper {
            flip(&tarball, &member);
        }
        let outcome = out(&registry, &src, &format!("{name}.tar"), name);
        assert_eq!(outcome.code, 1, "{name}: {}", outcome.stderr);
        for expect in expect {
            assert!(
                outcome.stderr.contains(&expect),
                "{name}: {}",
                outcome.stderr
            );
        }
        let mut check = source(&registry, name);
        check["tag"] = json!("t");
        assert_eq!(
            run_ok("check", None, &json!({"source": check})),
            json!([]),
            "{name}: no tag pushed"
        );
    }
    // Extracted (gzipped), the same link must not be followed out of the temp dir either.
    gzip(&src.join("save-escaping-link.tar"));
    let outcome = out(&registry, &src, "save-escaping-link.tar.gz", "gz-link");
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("\"again/layer.tar\" links outside the image"),
        "{}",
        outcome.stderr
    );
}
