//! Base resource types run from our OCI images (built in the test from the debug resource
//! binaries with the `images` library) under bwrap and runc, with an empty resource directory
//! so the host binaries cannot stand in; the host runtime and a missing image fall back to the
//! binaries; a second run reuses the unpacked rootfs; a broken layout names its path; and the
//! registry-tag type of `examples/rebuild-on-base-tag.yml` runs from our image pushed to a
//! test registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use testbed::git::GitDaemon;
use testbed::git::{commit_files, git, init_bare, tip};
use tributary::engine::resource::TypeImpl;
use tributary::engine::{Engine, EngineConfig, OutputMode, RunOptions};
use tributary::runner::Runtime;
use tributary::state::BuildStatus;

/// The resource binaries these tests package and run.
const BINARIES: [&str; 3] = [
    "git-resource",
    "registry-image-resource",
    "registry-tag-resource",
];

/// Copies of [`BINARIES`] (`bin/`) and the OCI layouts built from them (`images/<type>/`),
/// shared by every test process and run in `CARGO_TARGET_TMPDIR`, made once per build of the
/// binaries.
fn kit() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        testbed::built::ensure_built(&BINARIES);
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("base-images");
        testbed::built::shared_dir(&root, &BINARIES, b"", |dir| {
            let bin = dir.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for b in BINARIES {
                testbed::built::copy_binary(b, &bin);
            }
            let options = images::build::BuildOptions {
                out: dir.join("images"),
                binaries: bin,
                types: ["git", "registry-image", "registry-tag"]
                    .iter()
                    .map(|t| images::types::by_name(t).unwrap())
                    .collect(),
                source_date_epoch: 0,
                version: "0.1.0".into(),
                revision: "0123456789abcdef0123456789abcdef01234567".into(),
                source: "https://github.com/tributary-ci/tributary".into(),
                licenses: "Apache-2.0".into(),
                repo_prefix: "tributary".into(),
                ca_bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
                strip: true,
            };
            images::build::build_images(&options).unwrap();
        })
    })
    .clone()
}

/// The copied resource binaries.
fn binaries() -> PathBuf {
    kit().join("bin")
}

/// The directory of the built layouts (`<type>/`).
fn images_dir() -> PathBuf {
    kit().join("images")
}

/// A copy of one image's layout (tests that damage a layout get their own).
fn copy_layout(type_name: &str, to: &Path) -> PathBuf {
    let dest = to.join(type_name);
    let built = images_dir();
    let out = resource_protocol::process::output_checked(
        resource_protocol::process::command("cp", to)
            .arg("-a")
            .arg(built.join(type_name))
            .arg(&dest),
    );
    out.unwrap();
    dest
}

/// An engine for `yaml` whose pipeline directory and state (`.tributary/`) are in `dir`.
fn engine(
    dir: &Path,
    runtime: Runtime,
    resource_dir: &Path,
    image_dir: Option<&Path>,
    yaml: &str,
) -> Arc<Engine> {
    engine_at(dir, dir, runtime, resource_dir, image_dir, yaml)
}

/// An engine for `yaml` whose pipeline directory is `pipeline_dir`, with state in `state_dir`.
fn engine_at(
    pipeline_dir: &Path,
    state_dir: &Path,
    runtime: Runtime,
    resource_dir: &Path,
    image_dir: Option<&Path>,
    yaml: &str,
) -> Arc<Engine> {
    let loaded = tributary::load_str(yaml, "pipeline.yml", &tributary::StaticVars::default());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let config = EngineConfig {
        runtime,
        state_dir: state_dir.join(".tributary"),
        resource_dir: resource_dir.to_owned(),
        image_dir: image_dir.map(Path::to_owned),
        overrides: BTreeMap::new(),
        output: OutputMode::Quiet,
        pipeline_name: "test".into(),
        grace: Duration::from_millis(300),
        db: None,
        pipeline_dir: pipeline_dir.to_owned(),
    };
    Engine::new(loaded.pipeline, &loaded.redact, config).unwrap()
}

/// Under `dir`: a resource directory without binaries (so the host fallback is impossible)
/// and an image directory holding a copy of `type_name`'s layout. Returns (resource directory,
/// image directory, layout).
fn images_only(dir: &Path, type_name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let empty = dir.join("no-binaries");
    std::fs::create_dir_all(&empty).unwrap();
    let image_dir = dir.join("images");
    std::fs::create_dir_all(&image_dir).unwrap();
    let layout = copy_layout(type_name, &image_dir);
    (empty, image_dir, layout)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn run(engine: &Arc<Engine>) -> Vec<(String, i64, BuildStatus)> {
    rt().block_on(engine.run(&RunOptions::default())).builds
}

/// Runs `engine` and asserts that it made one build, `ship #n`, and that it succeeded.
fn assert_ships(engine: &Arc<Engine>, n: i64, name: &str) {
    assert_eq!(
        run(engine),
        [("ship".to_owned(), n, BuildStatus::Succeeded)],
        "{name}: {}",
        log_text(engine, "ship", n)
    );
}

fn log_text(engine: &Engine, job: &str, name: i64) -> String {
    let state = engine.state.lock().unwrap();
    let Some(build) = state.build_by_name(job, name).unwrap() else {
        return "no such build".into();
    };
    state
        .log(build.id)
        .unwrap()
        .iter()
        .map(|l| format!("{}: {}", l.step, l.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How `type_name` ran in `engine`'s run.
fn resolved(engine: &Engine, type_name: &str) -> TypeImpl {
    engine.base_types.lock().unwrap()[type_name].clone()
}

/// get → task (a new commit, on the host) → put (pushes it to branch `shipped`, another
/// resource so the put does not trigger the job again).
fn pipeline(uri: &str) -> String {
    format!(
        r#"
resources:
- name: repo
  type: git
  source: {{uri: "{uri}", branch: main}}
- name: shipped
  type: git
  source: {{uri: "{uri}", branch: shipped}}
jobs:
- name: ship
  plan:
  - get: repo
    trigger: true
  - task: change
    config:
      platform: linux
      inputs: [{{name: repo}}]
      outputs: [{{name: changed}}]
      run:
        path: sh
        args:
        - -ec
        - |
          cat repo/app.txt
          cp -a repo/. changed/
          cd changed
          git -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m "from the task"
  - put: shipped
    params: {{repository: changed, force: true}}
"#
    )
}

/// A bare repository served by `git daemon`, with one commit.
struct Served {
    _daemon_dir: tempfile::TempDir,
    daemon: GitDaemon,
    bare: PathBuf,
}

fn served_repo() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("r.git");
    init_bare(&bare);
    commit_files(&bare, &[("app.txt", "hello\n")], "first");
    let daemon = GitDaemon::start(dir.path());
    Served {
        _daemon_dir: dir,
        daemon,
        bare,
    }
}

impl Served {
    fn uri(&self) -> String {
        self.daemon.url_for("r.git")
    }

    fn head_message(&self) -> String {
        git(&self.bare, &["log", "-1", "--format=%s", "shipped"])
    }
}

#[test]
fn git_runs_from_its_image_under_bwrap_and_runc_and_the_rootfs_is_reused() {
    for runtime in [Runtime::Bwrap, Runtime::Runc] {
        let name = runtime.name();
        let repo = served_repo();
        let dir = tempfile::tempdir().unwrap();
        let (empty, image_dir, layout) = images_only(dir.path(), "git");
        let first_tip = tip(&repo.bare, "refs/heads/main").unwrap();
        let engine = engine(
            dir.path(),
            runtime,
            &empty,
            Some(&image_dir),
            &pipeline(&repo.uri()),
        );
        assert_ships(&engine, 1, name);
        // The put pushed the task's commit, from inside the image.
        assert_eq!(repo.head_message(), "from the task", "{name}");
        assert_eq!(
            git(&repo.bare, &["rev-parse", "shipped^"]),
            first_tip,
            "{name}"
        );
        let TypeImpl::Image {
            dir: cached,
            privileged,
            base,
        } = resolved(&engine, "git")
        else {
            panic!("{name}: git ran from {:?}", resolved(&engine, "git"));
        };
        assert!(!privileged, "{name}");
        assert_eq!(base.as_deref(), Some("git"));
        assert!(
            cached.starts_with(dir.path().join(".tributary/images")),
            "{cached:?}"
        );
        assert!(cached.join("rootfs/opt/resource/check").exists());
        // The check's cache outlived its container.
        let check_cache = dir.path().join(".tributary/caches/git-resource-repo-cache");
        assert!(
            std::fs::read_dir(&check_cache).unwrap().count() > 0,
            "{name}: {check_cache:?} is empty"
        );
        drop(engine);

        // The next run uses the cached rootfs: the layout's layers are gone, and a new commit
        // still builds (check, get and put run from the image).
        for blob in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let blob = blob.unwrap().path();
            if std::fs::read(&blob).unwrap().starts_with(&[0x1f, 0x8b]) {
                std::fs::remove_file(&blob).unwrap();
            }
        }
        commit_files(&repo.bare, &[("app.txt", "again\n")], "second");
        let engine = engine_again(dir.path(), runtime, &empty, &image_dir, &repo.uri());
        assert_ships(&engine, 2, name);
        assert!(
            log_text(&engine, "ship", 2).contains("again"),
            "{name}: {}",
            log_text(&engine, "ship", 2)
        );
        assert!(
            matches!(resolved(&engine, "git"), TypeImpl::Image { dir, .. } if dir == cached),
            "{name}"
        );
        // Another state directory has no cache: the damaged layout is an error naming it.
        let other = tempfile::tempdir().unwrap();
        let engine = engine_again(other.path(), runtime, &empty, &image_dir, &repo.uri());
        let err = rt().block_on(engine.check_resource("repo")).unwrap_err();
        assert!(
            err.contains(&format!("{}/blobs/sha256/", layout.display())),
            "{name}: {err}"
        );
    }
}

fn engine_again(
    dir: &Path,
    runtime: Runtime,
    resource_dir: &Path,
    image_dir: &Path,
    uri: &str,
) -> Arc<Engine> {
    engine(dir, runtime, resource_dir, Some(image_dir), &pipeline(uri))
}

#[test]
fn the_host_runtime_and_a_missing_image_run_the_binary() {
    let images = images_dir();
    let empty_images = tempfile::tempdir().unwrap();
    let cases: &[(Runtime, &Path)] = &[
        // Images present, but the host runtime runs none.
        (Runtime::Host, &images),
        // A container runtime without an image for the type.
        (Runtime::Bwrap, empty_images.path()),
    ];
    for (runtime, image_dir) in cases {
        let name = runtime.name();
        let repo = served_repo();
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(
            dir.path(),
            *runtime,
            &binaries(),
            Some(image_dir),
            &pipeline(&repo.uri()),
        );
        assert_ships(&engine, 1, name);
        assert_eq!(repo.head_message(), "from the task", "{name}");
        assert!(
            matches!(resolved(&engine, "git"), TypeImpl::Binary(ref b) if *b == binaries().join("git-resource")),
            "{name}: {:?}",
            resolved(&engine, "git")
        );
        // And nothing was unpacked.
        assert!(!dir.path().join(".tributary/images").exists(), "{name}");
    }
}

#[test]
fn broken_layouts_are_errors_naming_the_path_not_a_fallback() {
    let repo = served_repo();
    type Breaker = fn(&Path);
    let cases: &[(&str, Breaker, &str)] = &[
        (
            "empty directory",
            |l| {
                std::fs::remove_dir_all(l).unwrap();
                std::fs::create_dir(l).unwrap();
            },
            "oci-layout",
        ),
        (
            "no index",
            |l| std::fs::remove_file(l.join("index.json")).unwrap(),
            "index.json",
        ),
        (
            "bad index",
            |l| std::fs::write(l.join("index.json"), "[").unwrap(),
            "index.json: not JSON",
        ),
    ];
    for (case, breaker, expect) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (_, image_dir, layout) = images_only(dir.path(), "git");
        breaker(&layout);
        // The binaries are there: a broken image must still not fall back to them.
        let engine = engine(
            dir.path(),
            Runtime::Bwrap,
            &binaries(),
            Some(&image_dir),
            &pipeline(&repo.uri()),
        );
        let err = rt().block_on(engine.check_resource("repo")).unwrap_err();
        assert!(
            err.contains(&layout.display().to_string()) && err.contains(expect),
            "{case}: {err}"
        );
        assert!(
            engine.base_types.lock().unwrap().get("git").is_none(),
            "{case}"
        );
    }
}

/// The `registry-tag` type and `python-base-tag` resource of the rebuild example, with the
/// type's image replaced by ours pushed to `registry` and the Hub API by the fixture.
fn registry_tag_example(registry: &str, hub_uri: &str, user: &str, pass: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rebuild-on-base-tag.yml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let types =
        &yaml[yaml.find("resource_types:\n").unwrap()..yaml.find("\nresources:\n").unwrap()];
    let start = yaml.find("- name: python-base-tag\n").unwrap();
    let end = start + yaml[start..].find("\n\n").unwrap();
    let resource = &yaml[start..end];
    let substitutions = [
        (
            "repository: ghcr.io/tributary-ci/registry-tag-resource\n    tag: \"0.1\"\n",
            format!(
                "repository: {registry}/tributary/registry-tag-resource\n    tag: \"0.1.0\"\n    \
                 insecure: true\n    username: {user}\n    password: {pass}\n"
            ),
        ),
        (
            "uri: https://hub.docker.com/v2/repositories/library/python\n",
            format!("uri: {hub_uri}\n"),
        ),
    ];
    let mut text = format!("{types}\nresources:\n{resource}\n");
    for (from, to) in substitutions {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in {}",
            path.display()
        );
        text = text.replace(from, &to);
    }
    text
}

#[test]
fn the_rebuild_examples_registry_tag_type_runs_from_our_pushed_image() {
    use testbed::fixtures::hub::HubFixture;
    use testbed::registry::{Registry, RegistryAuth};
    let registry = Registry::start(RegistryAuth::basic("ci", "pushpass"));
    let scratch = tempfile::tempdir().unwrap();
    let mut copy = resource_protocol::process::command("skopeo", scratch.path());
    copy.args(["copy", "--retry-times=0"]);
    copy.args(registry.skopeo_args("dest"));
    copy.arg(format!(
        "oci:{}:0.1.0",
        images_dir().join("registry-tag").display()
    ));
    copy.arg(format!(
        "docker://{}/tributary/registry-tag-resource:0.1.0",
        registry.host()
    ));
    resource_protocol::process::output_checked(&mut copy).unwrap();
    let hub = HubFixture::start();
    hub.push_tags(
        "library/python",
        &[
            "3.10.14-slim-bookworm",
            "3.11.9-slim-bookworm",
            "3.12.1-alpine",
            "3.12.1-slim-bookworm",
        ],
    );
    let (user, pass) = registry.credentials().unwrap();
    let yaml = format!(
        "{}jobs:\n- name: j\n  plan:\n  - get: python-base-tag\n",
        registry_tag_example(
            &registry.host(),
            &hub.repository_uri("library/python"),
            user,
            pass
        )
    );
    for runtime in [Runtime::Bwrap, Runtime::Runc] {
        let name = runtime.name();
        let dir = tempfile::tempdir().unwrap();
        // registry-image fetches the custom type's image: from our image too.
        let (empty, image_dir, _) = images_only(dir.path(), "registry-image");
        let engine = engine(dir.path(), runtime, &empty, Some(&image_dir), &yaml);
        let (count, versions) = rt()
            .block_on(engine.check_resource_from("python-base-tag", None))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tags: Vec<String> = versions.iter().map(|v| v["tag"].clone()).collect();
        // The example's filters: slim-bookworm releases from 3.11 on, newest last.
        assert_eq!(
            tags.last().map(String::as_str),
            Some("3.12.1-slim-bookworm"),
            "{name}"
        );
        assert!(
            tags.iter()
                .all(|t| ["3.11.9-slim-bookworm", "3.12.1-slim-bookworm"].contains(&t.as_str())),
            "{name}: {tags:?}"
        );
        assert!(count >= 1, "{name}");
        assert!(
            matches!(resolved(&engine, "registry-image"), TypeImpl::Image { .. }),
            "{name}: {:?}",
            resolved(&engine, "registry-image")
        );
        // The Hub API was asked.
        assert!(
            hub.requests()
                .iter()
                .any(|r| r.contains("/hub.docker.com/v2/repositories/library/python/tags?")),
            "{name}: {:?}",
            hub.requests()
        );
    }
}

#[test]
fn a_local_git_path_runs_the_host_binary_even_with_an_image() {
    // `uri: ./r.git` as in `examples/hello-local.yml`: relative to the pipeline's directory,
    // which a container cannot see.
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("r.git");
    init_bare(&bare);
    let first = commit_files(&bare, &[("app.txt", "local\n")], "first");
    for runtime in [Runtime::Bwrap, Runtime::Runc] {
        let name = runtime.name();
        let state = tempfile::tempdir_in(dir.path()).unwrap();
        let engine = engine_at(
            dir.path(),
            state.path(),
            runtime,
            &binaries(),
            Some(&images_dir()),
            &pipeline("./r.git"),
        );
        assert_ships(&engine, 1, name);
        assert_eq!(git(&bare, &["rev-parse", "shipped^"]), first, "{name}");
        let types = engine.base_types.lock().unwrap().clone();
        assert!(
            matches!(types["git (local path)"], TypeImpl::Binary(ref b) if *b == binaries().join("git-resource")),
            "{name}: {types:?}"
        );
        // The type itself resolved to its image; only local-path calls left it.
        assert!(
            matches!(types["git"], TypeImpl::Image { .. }),
            "{name}: {types:?}"
        );
    }
}

#[test]
fn the_image_directory_is_looked_up_beside_and_above_the_binaries() {
    assert!(
        std::env::var_os(tributary::engine::resource::IMAGE_DIR_ENV).is_none(),
        "unset TRIBUTARY_IMAGE_DIR to run this test"
    );
    // (given with --images, directories made under the fixture, expected; paths relative to
    // the fixture, whose `bin/` is the resource directory)
    let cases: &[(Option<&str>, &[&str], Option<&str>)] = &[
        (None, &[], None),
        (None, &["bin/images"], Some("bin/images")),
        (None, &["images"], Some("bin/../images")),
        (None, &["bin/images", "images"], Some("bin/images")),
        (Some("elsewhere"), &["bin/images"], Some("elsewhere")),
    ];
    for (given, made, expect) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fixture");
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for m in *made {
            std::fs::create_dir_all(root.join(m)).unwrap();
        }
        let given = given.map(|g| root.join(g));
        let engine = engine(
            dir.path(),
            Runtime::Bwrap,
            &bin,
            given.as_deref(),
            &pipeline("git://127.0.0.1:1/r.git"),
        );
        assert_eq!(
            engine.image_dir(),
            expect.map(|e| root.join(e)),
            "{given:?} {made:?}"
        );
    }
}

#[test]
fn registry_image_from_its_image_trusts_ca_certs_over_tls() {
    use testbed::oci::{ImageSpec, LayerSpec, inspect_digest, push_image};
    use testbed::registry::{Registry, RegistryAuth};
    let registry = Registry::start(RegistryAuth::tls_basic("ci", "pushpass"));
    push_image(
        &registry,
        "app:latest",
        &ImageSpec {
            layers: &[LayerSpec {
                files: &[("hello", "hi\n")],
                ..LayerSpec::default()
            }],
            ..ImageSpec::default()
        },
    );
    let digest = inspect_digest(&registry, "app:latest");
    let (user, pass) = registry.credentials().unwrap();
    let pem = registry.ca_cert_pem().unwrap();
    let yaml = |ca: bool| {
        let mut source = serde_json::json!({
            "repository": format!("{}/app", registry.host()),
            "username": user,
            "password": pass,
        });
        if ca {
            source["ca_certs"] = serde_json::json!([pem]);
        }
        format!(
            "resources:\n- name: app\n  type: registry-image\n  source: {source}\n\
             jobs:\n- name: j\n  plan:\n  - get: app\n"
        )
    };
    for runtime in [Runtime::Bwrap, Runtime::Runc] {
        let name = runtime.name();
        // Without the CA once: the check then fails (slowly: registry-image retries).
        let cases: &[bool] = if runtime == Runtime::Bwrap {
            &[true, false]
        } else {
            &[true]
        };
        for &ca in cases {
            let dir = tempfile::tempdir().unwrap();
            let (empty, image_dir, _) = images_only(dir.path(), "registry-image");
            let engine = engine(dir.path(), runtime, &empty, Some(&image_dir), &yaml(ca));
            let checked = rt().block_on(engine.check_resource_from("app", None));
            if ca {
                let (_, versions) = checked.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(versions.last().unwrap()["digest"], digest, "{name}");
            } else {
                // The image's CA bundle does not know the test CA.
                let err = checked.unwrap_err();
                assert!(err.contains("certificate"), "{name}: {err}");
            }
            assert!(
                matches!(resolved(&engine, "registry-image"), TypeImpl::Image { .. }),
                "{name}"
            );
        }
    }
}
