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
    // Invalid for every type: the answer (exit 2, the missing field) comes from the resource's
    // own parsing, so it proves the binary, its libraries and the `check` name all work.
    let request = r#"{"source":{}}"#;
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
fn git_check_of_a_bind_mounted_and_a_served_repository_under_bwrap_and_runc() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = build(out.path(), &["--types", "git"]).remove(0);
    let rootfs = umoci_unpack(&image, &work.path().join("bundle"));
    let (repo, head) = bare_repository(&work.path().join("git"));
    let binds = [Bind {
        host: repo,
        container: "/repo.git".into(),
    }];
    let request = r#"{"source":{"uri":"/repo.git","branch":"main"}}"#;
    let expect = serde_json::json!([{ "ref": head }]);
    for (runner, answer) in [
        (
            "bwrap",
            bwrap(&rootfs, &binds, &["/opt/resource/check"], request),
        ),
        (
            "runc",
            runc(&rootfs, &binds, &["/opt/resource/check"], request),
        ),
    ] {
        assert_eq!(answer.code, Some(0), "{runner}: {answer:?}");
        let versions: serde_json::Value = serde_json::from_str(&answer.stdout)
            .unwrap_or_else(|e| panic!("{runner}: {e}: {answer:?}"));
        assert_eq!(versions, expect, "{runner}");
    }
}
