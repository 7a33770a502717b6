//! Docker accepts our images: every `<type>.docker-archive.tar` loads with `docker load` as
//! `tributary/<type>-resource:<version>` with our config digest as its image ID, runs with
//! `docker run` (bad input, and real checks of `mock` and `time`), and every
//! `resources/<type>/Containerfile` builds with `docker build` into an image that runs too.
//! The daemon is the testbed's private dockerd 20.10 (classic builder, `--network none`).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use testbed::docker::Docker;

use crate::support::{REVISION, Summary, binaries_dir, build, image_config, layer_file};

/// Invalid for every type (`time` and `mock` accept an empty source).
const BAD_REQUEST: &str = r#"{"source":{"no_such_field":true}}"#;

/// `docker run --rm -i --network none IMAGE /opt/resource/check` with `request` on stdin:
/// (exit code, stdout, stderr).
fn check_in(docker: &Docker, image: &str, request: &str) -> (Option<i32>, String, String) {
    let output = docker.docker_with_stdin(
        [
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            image,
            "/opt/resource/check",
        ],
        request,
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The bad request answered in `image`: exit 2, nothing on stdout, one line naming the field,
/// exactly what the binary answers on the host.
fn assert_rejects_bad_input(docker: &Docker, image: &str, summary: &Summary) {
    let host = crate::support::run_binary(
        &binaries_dir().join(format!("{}-resource", summary.type_name)),
        &["check"],
        BAD_REQUEST,
    );
    let (code, stdout, stderr) = check_in(docker, image, BAD_REQUEST);
    assert_eq!(code, Some(2), "{image}: {stdout} {stderr}");
    assert_eq!(stdout, "", "{image}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{image}: {stderr}");
    assert!(stderr.contains("source.no_such_field"), "{image}: {stderr}");
    assert_eq!(stderr, host.stderr, "{image}");
}

/// `Config.User`, `Config.Env` and `Config.Labels` of a `docker inspect` answer.
fn docker_config(inspect: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "User": inspect["Config"]["User"],
        "Env": inspect["Config"]["Env"],
        "Labels": inspect["Config"]["Labels"],
    })
}

/// The same three fields of our image config.
fn our_config(config: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "User": config["config"]["User"],
        "Env": config["config"]["Env"],
        "Labels": config["config"]["Labels"],
    })
}

#[test]
fn docker_loads_and_runs_every_docker_archive() {
    let out = tempfile::tempdir().unwrap();
    let images = build(out.path(), &[]);
    assert_eq!(images.len(), images::types::ALL.len());
    let docker = Docker::start();
    for image in &images {
        let name = format!("tributary/{}-resource:{}", image.type_name, image.tag);
        let loaded = docker.docker(["load", "-i", &image.docker_archive.to_string_lossy()]);
        assert_eq!(
            String::from_utf8_lossy(&loaded),
            format!("Loaded image: {name}\n"),
            "{}",
            image.type_name
        );

        let (config_digest, config) = image_config(image);
        let inspect = docker.inspect(&name);
        assert_eq!(inspect["Id"], config_digest.as_str(), "{name}");
        assert_eq!(inspect["RepoTags"], serde_json::json!([name]), "{name}");
        assert_eq!(docker_config(&inspect), our_config(&config), "{name}");
        assert_eq!(inspect["Config"]["User"], "root", "{name}");
        assert_eq!(
            inspect["Config"]["Labels"]["org.opencontainers.image.revision"], REVISION,
            "{name}"
        );
        assert_eq!(
            inspect["Config"]["Labels"]["org.opencontainers.image.title"],
            format!("{}-resource", image.type_name),
            "{name}"
        );
        assert!(
            inspect["Config"]["Env"]
                .as_array()
                .unwrap()
                .contains(&"PATH=/opt/resource:/usr/local/bin:/usr/bin:/bin".into()),
            "{name}: {inspect}"
        );
        assert_eq!(inspect["Created"], "1970-01-01T00:00:00Z", "{name}");
        assert_eq!(
            (&inspect["Os"], &inspect["Architecture"]),
            (&"linux".into(), &"amd64".into()),
            "{name}"
        );

        assert_rejects_bad_input(&docker, &name, image);

        match image.type_name.as_str() {
            "mock" => {
                let (code, stdout, stderr) =
                    check_in(&docker, &name, r#"{"source":{"initial_version":"v1"}}"#);
                assert_eq!(code, Some(0), "{name}: {stderr}");
                let versions: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
                assert_eq!(versions.len(), 1, "{name}: {stdout}");
                assert_eq!(versions[0]["version"], "v1", "{name}: {stdout}");
            }
            "time" => {
                let (code, stdout, stderr) =
                    check_in(&docker, &name, r#"{"source":{"interval":"1h"}}"#);
                assert_eq!(code, Some(0), "{name}: {stderr}");
                let versions: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
                assert_eq!(versions.len(), 1, "{name}: {stdout}");
                let time = versions[0]["time"].as_str().unwrap();
                assert!(
                    time.ends_with('Z') && time.contains('T'),
                    "{name}: {stdout}"
                );
            }
            _ => {}
        }
    }
}

/// A build context like the workspace root after the documented build steps, holding only
/// what `resources/<type>/Containerfile` reads: the base tar, the (stripped, from our layer)
/// binary, and the `Containerfile.dockerignore` as `.dockerignore` (the classic builder reads
/// only that name; BuildKit reads `<file>.dockerignore`).
fn build_context(image: &Summary, out: &Path, context: &Path) {
    let name = &image.type_name;
    let images_dir = context.join("target/images");
    let release_dir = context.join("target/x86_64-unknown-linux-gnu/release");
    std::fs::create_dir_all(&images_dir).unwrap();
    std::fs::create_dir_all(&release_dir).unwrap();
    std::fs::copy(
        out.join(format!("{name}.base.tar")),
        images_dir.join(format!("{name}.base.tar")),
    )
    .unwrap();
    let binary = release_dir.join(format!("{name}-resource"));
    std::fs::write(
        &binary,
        layer_file(image, &format!("opt/resource/{name}-resource")),
    )
    .unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let workspace = crate::support::workspace_root();
    std::fs::copy(
        workspace.join(format!("resources/{name}/Containerfile.dockerignore")),
        context.join(".dockerignore"),
    )
    .unwrap();
}

#[test]
fn docker_builds_every_containerfile_into_an_image_that_runs() {
    let out = tempfile::tempdir().unwrap();
    let images = build(out.path(), &[]);
    let docker = Docker::start();
    let workspace = crate::support::workspace_root();
    // In parallel: the classic builder commits a container per step, and vfs copies the whole
    // rootfs for each; one after the other this takes six times as long.
    std::thread::scope(|scope| {
        for image in &images {
            let (docker, workspace, out) = (&docker, &workspace, out.path());
            scope.spawn(move || {
                let name = &image.type_name;
                let context = tempfile::tempdir().unwrap();
                build_context(image, out, context.path());
                let tag = format!("tributary-build/{name}-resource:test");
                let containerfile = workspace.join(format!("resources/{name}/Containerfile"));
                docker.docker_in(
                    context.path(),
                    [
                        "build",
                        "-q",
                        "-f",
                        &containerfile.to_string_lossy(),
                        "--build-arg",
                        &format!("REVISION={REVISION}"),
                        "-t",
                        &tag,
                        ".",
                    ],
                );
                let inspect = docker.inspect(&tag);
                let (_, config) = image_config(image);
                assert_eq!(docker_config(&inspect), our_config(&config), "{tag}");
                assert_rejects_bad_input(docker, &tag, image);
            });
        }
    });
}
