//! Images run: each image's `/opt/resource/check` answers inside an unpacked rootfs under
//! bubblewrap and runc exactly as the binary answers on the host.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::support::{
    Answer, Bind, bare_repository, binaries_dir, build, bwrap, runc, umoci_unpack,
};

fn host_answer(binary: &Path, stdin: &str) -> Answer {
    crate::support::run_binary(binary, &["check"], stdin)
}

#[test]
fn every_image_answers_like_its_binary_under_bwrap() {
    let out = tempfile::tempdir().unwrap();
    let bundles = tempfile::tempdir().unwrap();
    // Invalid for every type (some accept an empty source): the answer (exit 2, the unknown
    // field) comes from the resource's own parsing, so it proves the binary, its libraries and
    // the `check` name all work.
    let request = r#"{"source":{"no_such_field":true}}"#;
    for image in build(out.path(), &[]) {
        let rootfs = umoci_unpack(&image, &bundles.path().join(&image.type_name));
        let expect = host_answer(
            &binaries_dir().join(format!("{}-resource", image.type_name)),
            request,
        );
        assert_eq!(expect.code, Some(2), "{}: {expect:?}", image.type_name);
        let got = bwrap(&rootfs, &[], &["/opt/resource/check"], request);
        assert_eq!(got, expect, "{}", image.type_name);
    }
}

#[test]
fn git_check_and_in_run_in_the_image_under_bwrap_and_runc() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = build(out.path(), &["--types", "git"]).remove(0);
    let rootfs = umoci_unpack(&image, &work.path().join("bundle"));
    let (repo, head) = bare_repository(&work.path().join("git"));
    let daemon = testbed::git::GitDaemon::start(repo.parent().unwrap());
    // Over the network by name: the image's /etc/hosts and nsswitch.conf resolve `localhost`.
    let by_name = daemon.url_for("repo.git").replace("127.0.0.1", "localhost");
    assert!(by_name.starts_with("git://localhost:"), "{by_name}");
    let binds = vec![Bind {
        host: repo,
        container: "/repo.git".into(),
    }];
    type Runner = fn(&Path, &[Bind], &[&str], &str) -> Answer;
    let runners: [(&str, Runner); 2] = [("bwrap", bwrap), ("runc", runc)];

    let expect = serde_json::json!([{ "ref": head }]);
    for uri in ["/repo.git", by_name.as_str()] {
        let request = serde_json::json!({"source": {"uri": uri, "branch": "main"}}).to_string();
        for (runner, run) in runners {
            let answer = run(&rootfs, &binds, &["/opt/resource/check"], &request);
            assert_eq!(answer.code, Some(0), "{runner} {uri}: {answer:?}");
            let versions: serde_json::Value = serde_json::from_str(&answer.stdout)
                .unwrap_or_else(|e| panic!("{runner} {uri}: {e}: {answer:?}"));
            assert_eq!(versions, expect, "{runner} {uri}");
        }
    }

    // `in` writes through a read-write bind mount, as a get step's volume is.
    for (runner, run) in runners {
        let dest = work.path().join(format!("dest-{runner}"));
        std::fs::create_dir(&dest).unwrap();
        let mut binds = binds.clone();
        binds.push(Bind {
            host: dest.clone(),
            container: "/dest".into(),
        });
        let request = serde_json::json!({
            "source": {"uri": "/repo.git", "branch": "main"},
            "version": {"ref": head},
        })
        .to_string();
        let answer = run(&rootfs, &binds, &["/opt/resource/in", "/dest"], &request);
        assert_eq!(answer.code, Some(0), "{runner} in: {answer:?}");
        let response: serde_json::Value = serde_json::from_str(&answer.stdout).unwrap();
        assert_eq!(
            response["version"],
            serde_json::json!({ "ref": head }),
            "{runner}"
        );
        assert!(
            dest.join(".git").is_dir(),
            "{runner}: no checkout in {}",
            dest.display()
        );
    }
}

#[test]
fn time_reads_zones_inside_its_image_without_zoneinfo() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = build(out.path(), &["--types", "time"]).remove(0);
    let rootfs = umoci_unpack(&image, &work.path().join("bundle"));
    assert!(!rootfs.join("usr/share/zoneinfo").exists());
    let request = r#"{"source":{"location":"America/New_York","interval":"1m"}}"#;
    let answer = bwrap(&rootfs, &[], &["/opt/resource/check"], request);
    assert_eq!(answer.code, Some(0), "{answer:?}");
    let versions: serde_json::Value = serde_json::from_str(&answer.stdout).unwrap();
    let time = versions[0]["time"].as_str().unwrap();
    assert!(
        time.ends_with("-05:00") || time.ends_with("-04:00"),
        "New York's offset from the bundled database: {time}"
    );
}

#[test]
fn mock_mirror_self_copies_its_own_image_under_bwrap() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = build(out.path(), &["--types", "mock"]).remove(0);
    let rootfs = umoci_unpack(&image, &work.path().join("bundle"));
    let dest = work.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let binds = vec![Bind {
        host: dest.clone(),
        container: "/tmp/build/get".into(),
    }];
    let request = r#"{"source":{"mirror_self":true},"version":{"version":"v1"}}"#;
    let answer = bwrap(
        &rootfs,
        &binds,
        &["/opt/resource/in", "/tmp/build/get"],
        request,
    );
    assert_eq!(answer.code, Some(0), "{answer:?}");
    let response: serde_json::Value = serde_json::from_str(&answer.stdout).unwrap();
    assert_eq!(response["version"]["version"], "v1", "{answer:?}");
    assert_eq!(
        std::fs::read_to_string(dest.join("metadata.json")).unwrap(),
        "{\"env\":[\"MIRRORED_VERSION=v1\"],\"user\":\"root\"}\n"
    );
    let mirrored = dest.join("rootfs");
    let binary = std::fs::read(mirrored.join("opt/resource/mock-resource")).unwrap();
    assert_eq!(
        binary,
        std::fs::read(rootfs.join("opt/resource/mock-resource")).unwrap()
    );
    assert_eq!(
        std::fs::read_link(mirrored.join("opt/resource/check")).unwrap(),
        std::fs::read_link(rootfs.join("opt/resource/check")).unwrap()
    );
    assert!(mirrored.join("etc/passwd").is_file());
    for empty in ["tmp", "proc", "dev"] {
        let entries = std::fs::read_dir(mirrored.join(empty)).unwrap().count();
        assert_eq!(entries, 0, "/{empty} is recreated empty");
    }
}
