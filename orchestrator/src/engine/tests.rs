//! Engine tests: whole pipelines on the host runner with a real local git repository (our
//! git-resource binary) and a small `mock` resource script, asserting builds, statuses, hooks,
//! timeouts, retries, fail_fast and bad input; images from the testbed registry on bwrap and
//! runc, and `examples/rebuild-on-base-tag.yml` against the Hub fixture.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::*;
use crate::state::BuildStatus::{Aborted, Errored, Failed, Succeeded};

/// The directory holding `git-resource` (built on demand) and the `mock-resource` script:
/// one copy per build of the binaries, shared by every test process.
pub(crate) fn resource_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let binaries = [
            "git-resource",
            "registry-image-resource",
            "registry-tag-resource",
        ];
        testbed::built::ensure_built(&binaries);
        let root = std::env::temp_dir().join("tributary-test-resources");
        testbed::built::shared_dir(&root, &binaries, MOCK_RESOURCE.as_bytes(), |dir| {
            use std::os::unix::fs::PermissionsExt;
            for b in binaries {
                testbed::built::copy_binary(b, dir);
            }
            let mock = dir.join("mock-resource");
            std::fs::write(&mock, MOCK_RESOURCE).unwrap();
            std::fs::set_permissions(&mock, std::fs::Permissions::from_mode(0o755)).unwrap();
        })
    })
    .clone()
}

/// A resource type for tests: versions are the lines of `source.file`; `in` writes the
/// version to `DEST/ref`; `out` appends `params.value` (or the content of `params.from`) to
/// the file; `source.fail` makes every call fail.
const MOCK_RESOURCE: &str = r#"#!/bin/sh
set -e
op="$1"; dir="$2"
req=$(cat)
file=$(echo "$req" | jq -r .source.file)
if [ "$(echo "$req" | jq -r '.source.fail // false')" = true ]; then echo "mock: told to fail" >&2; exit 1; fi
case "$op" in
check) touch "$file"; jq -R '{ref: .}' < "$file" | jq -s . ;;
in) ref=$(echo "$req" | jq -r .version.ref); echo "$ref" > "$dir/ref"
    echo "{\"version\":{\"ref\":\"$ref\"},\"metadata\":[{\"name\":\"ref\",\"value\":\"$ref\"},{\"name\":\"build\",\"value\":\"$BUILD_JOB_NAME/$BUILD_NAME\"}]}" ;;
out) from=$(echo "$req" | jq -r '.params.from // empty')
    if [ -n "$from" ]; then value=$(cat "$dir/$from"); else value=$(echo "$req" | jq -r .params.value); fi
    echo "$value" >> "$file"; echo "pushed $value" >&2
    echo "{\"version\":{\"ref\":\"$value\"},\"metadata\":[]}" ;;
esac
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn engine(&self, yaml: &str, vars: &[(&str, &str)]) -> Arc<Engine> {
        self.engine_on(Runtime::Host, yaml, vars)
    }

    fn engine_on(&self, runtime: Runtime, yaml: &str, vars: &[(&str, &str)]) -> Arc<Engine> {
        let vars: Vec<_> = vars
            .iter()
            .map(|(k, v)| (*k, serde_json::json!(v)))
            .collect();
        self.engine_with_vars(runtime, yaml, &vars)
    }

    /// Like `engine_on`, with vars of any JSON value (`((registry.username))`).
    fn engine_with_vars(
        &self,
        runtime: Runtime,
        yaml: &str,
        vars: &[(&str, serde_json::Value)],
    ) -> Arc<Engine> {
        let vars = crate::vars::StaticVars::from_pairs(vars.iter().map(|(k, v)| (*k, v.clone())));
        let loaded = crate::load::load_str(yaml, "pipeline.yml", &vars);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let config = EngineConfig {
            runtime,
            state_dir: self.path().join(".tributary"),
            resource_dir: resource_dir(),
            image_dir: None,
            overrides: BTreeMap::new(),
            output: OutputMode::Quiet,
            pipeline_name: "test".into(),
            grace: Duration::from_millis(300),
            db: None,
            pipeline_dir: self.path().to_owned(),
        };
        Engine::new(loaded.pipeline, &loaded.redact, config).unwrap()
    }

    fn git(&self, args: &[&str]) -> String {
        let repo = self.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let out = resource_protocol::process::output_checked(
            resource_protocol::process::command("git", &repo)
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", self.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com"),
        )
        .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn commit(&self, file: &str, content: &str) -> String {
        std::fs::write(self.path().join("repo").join(file), content).unwrap();
        self.git(&["add", "."]);
        self.git(&["commit", "-q", "-m", &format!("change {file}")]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn versions_file(&self, lines: &[&str]) -> String {
        let file = self.path().join("versions");
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    }
}

fn run(engine: &Arc<Engine>) -> Vec<(String, i64, BuildStatus)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(engine.run(&RunOptions::default())).builds
}

fn log_text(engine: &Engine, job: &str, name: i64) -> String {
    let state = engine.state();
    let build = state.build_by_name(job, name).unwrap().unwrap();
    state
        .log(build.id)
        .unwrap()
        .iter()
        .map(|l| format!("{}: {}", l.step, l.text))
        .collect::<Vec<_>>()
        .join("\n")
}

fn b(job: &str, name: i64, status: BuildStatus) -> (String, i64, BuildStatus) {
    (job.to_owned(), name, status)
}

const GIT_PIPELINE: &str = r#"
resources:
- name: repo
  type: git
  source: {uri: ((repo)), branch: main}
jobs:
- name: test
  plan:
  - get: repo
    trigger: true
  - task: unit
    config:
      platform: linux
      inputs: [{name: repo}]
      outputs: [{name: report}]
      params: {SECRET: ((token)), COUNT: 3}
      run:
        path: sh
        args: [-ec, 'cat repo/app.txt; echo "token is $SECRET, count $COUNT"; cp repo/app.txt report/']
- name: package
  plan:
  - get: repo
    trigger: true
    passed: [test]
  - task: tarball
    config:
      platform: linux
      inputs: [{name: repo}]
      run: {path: sh, args: [-ec, 'test -f repo/app.txt']}
  - task: from-file
    file: repo/ci/task.yml
    vars: {greeting: bonjour}
    input_mapping: {source: repo}
"#;

const TASK_FILE: &str = r#"
platform: linux
inputs: [{name: source}]
params: {GREETING: ((greeting))}
run: {path: sh, args: [-ec, 'echo "$GREETING from $(cat source/app.txt)"']}
"#;

#[test]
fn git_pipeline_flows_through_passed_and_new_commits_trigger_once() {
    let f = Fixture::new();
    f.git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(f.path().join("repo/ci")).unwrap();
    std::fs::write(f.path().join("repo/ci/task.yml"), TASK_FILE).unwrap();
    let first = f.commit("app.txt", "v1");
    let repo = f.path().join("repo").display().to_string();
    let vars = [("repo", repo.as_str()), ("token", "s3cr3t-token")];
    let engine = f.engine(GIT_PIPELINE, &vars);
    assert_eq!(
        run(&engine),
        [b("package", 1, Succeeded), b("test", 1, Succeeded)]
    );
    let log = log_text(&engine, "test", 1);
    assert!(log.contains("unit: v1"), "{log}");
    assert!(log.contains("token is ((redacted)), count 3"), "{log}");
    assert!(!log.contains("s3cr3t"), "{log}");
    let log = log_text(&engine, "package", 1);
    assert!(log.contains("from-file: bonjour from v1"), "{log}");
    // Both jobs used the same commit.
    let state = engine.state();
    for job in ["test", "package"] {
        let build = state.build_by_name(job, 1).unwrap().unwrap();
        let input = &state.build_inputs(build.id).unwrap()[0];
        let (_, version) = state.version(input.version_id).unwrap().unwrap();
        assert_eq!(version["ref"], first, "{job}");
    }
    drop(state);
    // Nothing new: nothing runs.
    assert_eq!(run(&engine), []);
    // A new commit: exactly one new build of each.
    f.commit("app.txt", "v2");
    f.commit("app.txt", "v3");
    assert_eq!(
        run(&engine),
        [b("package", 2, Succeeded), b("test", 2, Succeeded)]
    );
    assert!(log_text(&engine, "test", 2).contains("unit: v3"));
    assert_eq!(run(&engine), []);
}

fn mock_pipeline(plan: &str) -> String {
    format!(
        r#"
resources:
- name: thing
  type: mock
  source: {{file: ((file))}}
{sink}jobs:
- name: job
  plan:
  - get: thing
    trigger: true
{plan}
"#,
        sink = if plan.contains("sink") {
            "- name: sink\n  type: mock\n  source: {file: ((file))-sink}\n"
        } else {
            ""
        }
    )
}

fn run_mock(plan: &str) -> (Fixture, Arc<Engine>, Vec<(String, i64, BuildStatus)>) {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let engine = f.engine(&mock_pipeline(plan), &[("file", &file)]);
    let builds = run(&engine);
    (f, engine, builds)
}

#[test]
fn failing_task_runs_on_failure_and_fails_the_build() {
    let (_f, engine, builds) = run_mock(
        r#"
  - task: broken
    config:
      platform: linux
      run: {path: sh, args: [-c, 'echo about to fail; exit 4']}
    on_failure:
      task: report
      config:
        platform: linux
        run: {path: sh, args: [-c, 'echo failure reported']}
    on_success:
      task: never
      config:
        platform: linux
        run: {path: sh, args: [-c, 'echo wrong hook']}
"#,
    );
    assert_eq!(builds, [b("job", 1, Failed)]);
    let log = log_text(&engine, "job", 1);
    assert!(log.contains("broken: failed: exit status 4"), "{log}");
    assert!(log.contains("report: failure reported"), "{log}");
    assert!(!log.contains("wrong hook"), "{log}");
}

#[test]
fn timeout_fails_the_step_and_runs_on_failure() {
    let started = std::time::Instant::now();
    let (_f, engine, builds) = run_mock(
        r#"
  - task: slow
    timeout: 1s
    config:
      platform: linux
      run: {path: sh, args: [-c, 'sleep 30']}
    on_failure:
      task: after
      config:
        platform: linux
        run: {path: sh, args: [-c, 'echo cleaned up']}
"#,
    );
    assert_eq!(builds, [b("job", 1, Failed)]);
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = log_text(&engine, "job", 1);
    assert!(log.contains("timed out after 1s"), "{log}");
    assert!(log.contains("after: cleaned up"), "{log}");
}

#[test]
fn attempts_retry_until_success() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let counter = f.path().join("attempts");
    let plan = format!(
        r#"
  - task: flaky
    attempts: 3
    config:
      platform: linux
      run: {{path: sh, args: [-c, 'echo x >> {c}; test $(wc -l < {c}) -ge 3']}}
"#,
        c = counter.display()
    );
    let engine = f.engine(&mock_pipeline(&plan), &[("file", &file)]);
    assert_eq!(run(&engine), [b("job", 1, Succeeded)]);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        3
    );
    let log = log_text(&engine, "job", 1);
    assert!(
        log.contains("attempt 2 of 3 did not succeed; retrying"),
        "{log}"
    );
}

#[test]
fn in_parallel_fail_fast_cancels_siblings() {
    let started = std::time::Instant::now();
    let (_f, engine, builds) = run_mock(
        r#"
  - in_parallel:
      fail_fast: true
      steps:
      - task: fails
        config:
          platform: linux
          run: {path: sh, args: [-c, 'sleep 0.2; exit 1']}
      - task: sleeps
        config:
          platform: linux
          run: {path: sh, args: [-c, 'sleep 30']}
"#,
    );
    assert_eq!(builds, [b("job", 1, Failed)]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let log = log_text(&engine, "job", 1);
    assert!(log.contains("sleeps: aborted"), "{log}");
}

#[test]
fn artifacts_outputs_put_load_var_across_and_try() {
    let (f, engine, builds) = run_mock(
        r#"
  - task: make
    config:
      platform: linux
      inputs: [{name: thing}]
      outputs: [{name: out}]
      caches: [{path: cache}]
      run: {path: sh, args: [-ec, 'echo "$(cat thing/ref)-built" > out/value; echo hit >> cache/hits; echo changed > thing/ref']}
  - task: check-copy
    input_mapping: {renamed: thing}
    config:
      platform: linux
      inputs: [{name: renamed}]
      run: {path: sh, args: [-ec, 'test "$(cat renamed/ref)" != changed']}
  - load_var: built
    file: out/value
    reveal: true
  - across:
    - var: n
      values: [a, b]
    task: each
    config:
      platform: linux
      params: {WHO: ((.:n)), WHAT: ((.:built))}
      run: {path: sh, args: [-ec, 'echo "each $WHO $WHAT"']}
  - try:
      task: ignored
      config:
        platform: linux
        run: {path: sh, args: [-c, 'exit 1']}
  - put: sink
    params: {from: out/value}
  - task: after-put
    config:
      platform: linux
      inputs: [{name: sink}]
      run: {path: sh, args: [-ec, 'cat sink/ref']}
"#,
    );
    assert_eq!(builds, [b("job", 1, Succeeded)]);
    let log = log_text(&engine, "job", 1);
    for want in [
        "each a v1-built",
        "each b v1-built",
        "after-put: v1-built",
        "sink: pushed v1-built",
    ] {
        assert!(log.contains(want), "{want} missing in {log}");
    }
    // The put's version is the newest and an output of the build.
    let state = engine.state();
    let newest = state.newest_version("sink").unwrap().unwrap();
    assert_eq!(newest.version["ref"], "v1-built");
    let build = state.build_by_name("job", 1).unwrap().unwrap();
    assert_eq!(
        state.build_outputs(build.id).unwrap()[0].version_id,
        newest.id
    );
    drop(state);
    // A new version builds again, with the cache kept.
    assert_eq!(run(&engine), []);
    std::fs::write(f.path().join("versions"), "v1\nv2\n").unwrap();
    let again = run(&engine);
    assert_eq!(again, [b("job", 2, Succeeded)]);
    let hits = std::fs::read_dir(f.path().join(".tributary/caches"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("hits")).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(hits, ["hit\nhit\n"]);
}

/// `var_sources` of a pipeline for `run_mock_with`: a dummy source (whose config uses a static
/// var) and one of a type tributary cannot reach.
const VAR_SOURCES: &str = r#"
var_sources:
- name: dumb
  type: dummy
  config:
    vars:
      simple: ((greeting))
      user: {username: big, password: sekrit-pw}
- name: vault
  type: vault
  config: {url: https://vault.example.com}
"#;

#[test]
fn var_sources_resolve_at_build_time_and_are_redacted() {
    let table: &[(&str, BuildStatus, &str)] = &[
        (
            "echo simple ((dumb:simple)) user ((dumb:user.username)) pw $PW",
            Succeeded,
            "t: simple ((redacted)) user ((redacted)) pw ((redacted))",
        ),
        (
            "echo ((dumb:nope))",
            Errored,
            "undefined var ((dumb:nope)) (not in var_sources dumb config.vars)",
        ),
        (
            "echo ((dumb:user.nope))",
            Errored,
            "var ((dumb:user.nope)): no field nope",
        ),
        (
            "echo ((vault:secret/token))",
            Errored,
            "var_sources vault: type vault is not supported by tributary",
        ),
        (
            "echo ((dum:simple))",
            Errored,
            "unknown var source `dum` in ((dum:simple)) (did you mean `dumb`?)",
        ),
    ];
    for (script, status, want) in table {
        let f = Fixture::new();
        let file = f.versions_file(&["v1"]);
        let plan = format!(
            "  - task: t\n    config:\n      platform: linux\n      params: {{PW: ((dumb:user.password))}}\n      run: {{path: sh, args: [-ec, '{script}']}}\n"
        );
        let yaml = format!("{VAR_SOURCES}{}", mock_pipeline(&plan));
        let engine = f.engine(&yaml, &[("file", &file), ("greeting", "hello-there")]);
        assert_eq!(run(&engine), [b("job", 1, *status)], "{script}");
        let log = log_text(&engine, "job", 1);
        for secret in ["hello-there", "big", "sekrit-pw"] {
            assert!(!log.contains(secret), "{script}: {log}");
        }
        if *status == Succeeded {
            assert!(log.contains(want), "{script}: {log}");
        } else {
            let build = engine.state().build_by_name("job", 1).unwrap().unwrap();
            assert_eq!(
                build.error.as_deref(),
                Some(format!("t: {want}").as_str()),
                "{script}"
            );
            assert!(log.contains(want), "{script}: {log}");
        }
    }
}

#[test]
fn worker_tags_are_ignored_once_per_step_and_the_steps_run() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let yaml = r#"
resources:
- name: thing
  type: mock
  source: {file: ((file))}
  tags: [linux]
- name: sink
  type: mock
  source: {file: ((file))-sink}
jobs:
- name: job
  plan:
  - get: thing
    trigger: true
    tags: [big, linux]
  - task: t
    tags: [gpu]
    config:
      platform: linux
      inputs: [{name: thing}]
      run: {path: sh, args: [-ec, 'echo "ran with $(cat thing/ref)"']}
  - task: untagged
    config:
      platform: linux
      run: {path: "true"}
  - put: sink
    tags: [dc1]
    params: {value: shipped}
"#;
    let engine = f.engine(yaml, &[("file", &file)]);
    assert_eq!(run(&engine), [b("job", 1, Succeeded)]);
    let log = log_text(&engine, "job", 1);
    let why = "ignored: tributary runs every step on its one local worker, which has no tags";
    let noted: Vec<&str> = log.lines().filter(|l| l.contains(why)).collect();
    assert_eq!(
        noted,
        [
            format!("thing: tags [big, linux] {why}"),
            format!("t: tags [gpu] {why}"),
            format!("sink: tags [dc1] {why}"),
        ],
        "{log}"
    );
    assert!(log.contains("t: ran with v1"), "{log}");
    assert!(log.contains("sink: pushed"), "{log}");
}

#[test]
fn bad_input_errors_the_build_naming_it() {
    let table: &[(&str, &str)] = &[
        (
            r#"
  - task: needs
    config:
      platform: linux
      inputs: [{name: nowhere}]
      run: {path: "true"}
"#,
            "missing inputs: nowhere",
        ),
        (
            r#"
  - task: var
    config:
      platform: linux
      params: {X: ((.:never_loaded))}
      run: {path: "true"}
"#,
            "undefined local var: ((.:never_loaded))",
        ),
        (
            r#"
  - task: ok
    config:
      platform: linux
      run: {path: /nonexistent/program}
"#,
            "cannot start /nonexistent/program",
        ),
    ];
    for (plan, want) in table {
        let (_f, engine, builds) = run_mock(plan);
        assert_eq!(builds, [b("job", 1, Errored)], "{want}");
        let build = engine.state().build_by_name("job", 1).unwrap().unwrap();
        assert!(
            build.error.as_deref().unwrap_or_default().contains(want),
            "{:?} lacks {want}",
            build.error
        );
    }
}

#[test]
fn failing_resource_and_unknown_image_error() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let yaml = r#"
resources:
- name: thing
  type: mock
  source: {file: ((file))}
- name: broken
  type: mock
  source: {file: ((file)), fail: true}
jobs:
- name: job
  plan:
  - get: thing
    trigger: true
  - put: broken
    params: {value: x}
"#;
    let engine = f.engine(yaml, &[("file", &file)]);
    assert_eq!(run(&engine), [b("job", 1, Errored)]);
    let build = engine.state().build_by_name("job", 1).unwrap().unwrap();
    let error = build.error.unwrap();
    assert!(
        error.contains("broken: out failed (exit 1): mock: told to fail"),
        "{error}"
    );
    let _ = Aborted;
}

/// A custom resource type whose `/opt/resource` scripts record what they were asked.
const SCRIPTED_CHECK: &str = "#!/bin/sh\ncat > /dev/null\necho '[{\"n\":\"1\"}]'\n";
const SCRIPTED_IN: &str =
    "#!/bin/sh\ncat > /dev/null\necho fetched > \"$1/note\"\necho '{\"version\":{\"n\":\"1\"}}'\n";
const SCRIPTED_OUT: &str = "#!/bin/sh\ncat > /dev/null\nls \"$1\" >&2\necho \"put by $BUILD_JOB_NAME\" >&2\necho '{\"version\":{\"n\":\"2\"}}'\n";

const REGISTRY_PIPELINE: &str = r#"
var_sources:
- name: tools
  type: dummy
  config: {vars: {tag: latest}}
resource_types:
- name: scripted
  type: registry-image
  # A custom type's source resolves var sources when the type is fetched.
  source: {repository: ((registry))/tools/scripted, tag: ((tools:tag)), insecure: true}
resources:
- name: repo
  type: git
  source: {uri: ((repo)), branch: main}
- name: app-image
  type: registry-image
  source: {repository: ((registry))/out/app, tag: latest, insecure: true}
- name: note
  type: scripted
  source: {}
jobs:
- name: build
  plan:
  - get: repo
    trigger: true
  - task: compile
    config:
      platform: linux
      image_resource:
        type: registry-image
        source: {repository: ((registry))/library/busybox, tag: latest, insecure: true}
      inputs: [{name: repo}]
      outputs: [{name: built}]
      run:
        path: sh
        args: [-ec, 'cat repo/app.txt; test -x /bin/busybox; cp -a repo/layout built/layout; echo "in $(pwd)"']
  - put: app-image
    params: {image: built/layout}
- name: verify
  plan:
  - get: app-image
    trigger: true
    passed: [build]
    params: {skip_download: true}
  - get: repo
    passed: [build]
  - put: note
    params: {files: app-image/digest}
"#;

#[test]
fn registry_pipeline_with_image_resource_custom_type_and_put() {
    use testbed::oci::{ImageSpec, LayerSpec, OciLayout, push_image};
    use testbed::registry::{Registry, RegistryAuth};
    let registry = Registry::start(RegistryAuth::None);
    push_image(&registry, "library/busybox:latest", &ImageSpec::default());
    let scripts = [
        ("opt/resource/check", SCRIPTED_CHECK),
        ("opt/resource/in", SCRIPTED_IN),
        ("opt/resource/out", SCRIPTED_OUT),
    ];
    push_image(
        &registry,
        "tools/scripted:latest",
        &ImageSpec {
            layers: &[LayerSpec {
                files: &scripts,
                ..LayerSpec::default()
            }],
            ..ImageSpec::default()
        },
    );
    for runtime in [Runtime::Bwrap, Runtime::Runc] {
        let f = Fixture::new();
        f.git(&["init", "-q", "-b", "main"]);
        // The "build output": an OCI layout committed to the repository.
        let layout = OciLayout::new();
        layout.build(
            "app",
            &ImageSpec {
                layers: &[LayerSpec {
                    files: &[("app.txt", "app v1\n")],
                    ..LayerSpec::default()
                }],
                ..ImageSpec::default()
            },
        );
        crate::runner::rootfs::copy_tree(layout.path(), &f.path().join("repo/layout")).unwrap();
        f.commit("app.txt", "v1");
        let repo = f.path().join("repo").display().to_string();
        let host = registry.host();
        let engine = f.engine_on(
            runtime,
            REGISTRY_PIPELINE,
            &[("repo", repo.as_str()), ("registry", host.as_str())],
        );
        let name = runtime.name();
        let builds = run(&engine);
        // The state lock is released before log_text takes it again.
        let verify_ran = engine
            .state()
            .build_by_name("verify", 1)
            .ok()
            .flatten()
            .is_some();
        let verify_log = if verify_ran {
            log_text(&engine, "verify", 1)
        } else {
            String::new()
        };
        assert_eq!(
            builds,
            [b("build", 1, Succeeded), b("verify", 1, Succeeded)],
            "{name}: {}\n{verify_log}",
            log_text(&engine, "build", 1),
        );
        let build_log = log_text(&engine, "build", 1);
        assert!(
            build_log.contains("compile: v1in /tmp/build/"),
            "{name}: {build_log}"
        );
        let verify_log = log_text(&engine, "verify", 1);
        assert!(
            verify_log.contains("note: app-image"),
            "{name}: {verify_log}"
        );
        assert!(
            verify_log.contains("note: put by verify"),
            "{name}: {verify_log}"
        );
        // The pushed image is the version both jobs saw.
        let state = engine.state();
        let pushed = state.newest_version("app-image").unwrap().unwrap();
        let verify = state.build_by_name("verify", 1).unwrap().unwrap();
        let inputs = state.build_inputs(verify.id).unwrap();
        assert!(inputs.iter().any(|i| i.version_id == pushed.id), "{name}");
        assert!(
            testbed::oci::inspect_digest(&registry, "out/app:latest") == pushed.version["digest"],
            "{name}"
        );
        drop(state);
        // A new commit: one new build of each.
        f.commit("app.txt", "v2");
        let again = run(&engine);
        assert_eq!(
            again[0],
            b("build", 2, Succeeded),
            "{name}: {}",
            log_text(&engine, "build", 2)
        );
        let _ = again;
    }
    // Bad input: a resource type whose image does not exist errors the build, naming the type.
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let yaml = r#"
resource_types:
- name: ghost
  type: registry-image
  source: {repository: ((registry))/no/such-image, tag: latest, insecure: true}
resources:
- name: thing
  type: mock
  source: {file: ((file))}
- name: haunted
  type: ghost
  source: {}
jobs:
- name: job
  plan:
  - get: thing
    trigger: true
  - put: haunted
"#;
    let host = registry.host();
    let engine = f.engine_on(
        Runtime::Bwrap,
        yaml,
        &[("file", &file), ("registry", &host)],
    );
    assert_eq!(run(&engine), [b("job", 1, Errored)]);
    let build = engine.state().build_by_name("job", 1).unwrap().unwrap();
    let error = build.error.unwrap();
    assert!(
        error.starts_with("haunted: resource type ghost: check found no versions"),
        "{error}"
    );
}

/// The `tributary` binary of this target dir (built for the integration tests; built here if
/// missing).
fn tributary_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap().to_owned();
    let binary = target.join("tributary");
    if !binary.exists() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        resource_protocol::process::output_checked(
            resource_protocol::process::command(&cargo, workspace).args([
                "build",
                "-p",
                "tributary",
                "--bin",
                "tributary",
            ]),
        )
        .unwrap();
    }
    binary
}

#[test]
fn killed_run_leaves_a_consistent_database_and_restart_marks_the_build_errored() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let marker = f.path().join("started");
    let pipeline = f.path().join("pipeline.yml");
    let plan = format!(
        r#"
  - task: slow
    config:
      platform: linux
      inputs: [{{name: thing}}]
      run:
        path: sh
        args: [-c, 'if [ "$(cat thing/ref)" = v1 ]; then echo $$ > {m}; sleep 30; fi']
"#,
        m = marker.display()
    );
    std::fs::write(&pipeline, mock_pipeline(&plan)).unwrap();
    let tributary = |args: &[&str]| {
        let mut command = resource_protocol::process::command(tributary_binary(), f.path());
        command
            .args(args)
            .args(["-v", &format!("file={file}"), "--runtime", "host"])
            .env(RESOURCE_DIR_ENV, resource_dir());
        command
    };
    let mut child = tributary(&["run", "pipeline.yml"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A crash: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let task_pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The task leads its own process group, which outlived us.
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(task_pid).unwrap(),
        rustix::process::Signal::KILL,
    );
    // Restarting recovers: the interrupted build is errored, and v1 (already used) does not
    // build again.
    let out = tributary(&["run", "pipeline.yml"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let builds = |f: &Fixture| {
        let out = resource_protocol::process::output_checked(
            resource_protocol::process::command(tributary_binary(), f.path())
                .args(["builds", "pipeline.yml"]),
        )
        .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let table = builds(&f);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(
        rows[0].contains("\tjob\t1\terrored\t") && rows[0].ends_with("\tinterrupted"),
        "{table}"
    );
    // It carries on: a new version builds.
    std::fs::write(&file, "v1\nv2\n").unwrap();
    let out = tributary(&["run", "pipeline.yml"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = builds(&f);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .contains("\tjob\t2\tsucceeded\t"),
        "{table}"
    );
    let log = resource_protocol::process::output_checked(
        resource_protocol::process::command(tributary_binary(), f.path()).args([
            "logs",
            "pipeline.yml",
            "job",
            "1",
        ]),
    )
    .unwrap();
    let log = String::from_utf8(log.stdout).unwrap();
    assert!(log.contains("build interrupted"), "{log}");
}

#[test]
fn interrupt_aborts_the_build_and_runs_on_abort() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let marker = f.path().join("started");
    let pipeline = f.path().join("pipeline.yml");
    let plan = format!(
        r#"
  - task: slow
    config:
      platform: linux
      run: {{path: sh, args: [-c, 'touch {m}; sleep 30']}}
    on_abort:
      task: tidy
      config:
        platform: linux
        run: {{path: sh, args: [-c, 'echo tidied up']}}
"#,
        m = marker.display()
    );
    std::fs::write(&pipeline, mock_pipeline(&plan)).unwrap();
    let child = resource_protocol::process::command(tributary_binary(), f.path())
        .args(["run", "pipeline.yml", "--runtime", "host", "--json"])
        .args(["-v", &format!("file={file}")])
        .env(RESOURCE_DIR_ENV, resource_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Reading the state meanwhile changes nothing; a second run of the same state is refused.
    let builds = resource_protocol::process::command(tributary_binary(), f.path())
        .args(["builds", "pipeline.yml"])
        .output()
        .unwrap();
    let table = String::from_utf8(builds.stdout).unwrap();
    assert!(table.contains("\tjob\t1\tstarted\t"), "{table}");
    let second = resource_protocol::process::command(tributary_binary(), f.path())
        .args(["run", "pipeline.yml", "--runtime", "host"])
        .args(["-v", &format!("file={file}")])
        .env(RESOURCE_DIR_ENV, resource_dir())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another tributary is running with this state"),
        "{err}"
    );
    // The first signal lets a build of a job that is not interruptible run on; the second
    // aborts it.
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    let mut child = child;
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal ended the run"
    );
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --json: one versioned object per line on stdout.
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["v"] == 1));
    let texts: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_owned(),
                e["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        texts.contains(&("tidy".into(), "tidied up".into())),
        "{texts:?}"
    );
    assert!(
        texts.contains(&("".into(), "build aborted".into())),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|(_, t)| t.starts_with("stopping: no new builds"))
            && texts.contains(&("".into(), "aborting every running build".into())),
        "{texts:?}"
    );
}

#[test]
fn shutdown_aborts_interruptible_builds_and_lets_the_others_finish() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let marker = |name: &str| f.path().join(name).display().to_string();
    let yaml = format!(
        r#"
resources:
- name: thing
  type: mock
  source: {{file: ((file))}}
jobs:
- name: deploy
  interruptible: true
  plan:
  - get: thing
    trigger: true
  - task: slow
    config:
      platform: linux
      run: {{path: sh, args: [-c, 'touch {deploy}; sleep 30']}}
- name: test
  plan:
  - get: thing
    trigger: true
  - task: steady
    config:
      platform: linux
      run: {{path: sh, args: [-c, 'touch {test}; sleep 3; echo finished']}}
- name: after
  plan:
  - get: thing
    trigger: true
    passed: [test]
"#,
        deploy = marker("deploy-started"),
        test = marker("test-started"),
    );
    let engine = f.engine(&yaml, &[("file", &file)]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = engine.clone();
    let handle = rt.spawn(async move { running.run(&RunOptions::default()).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(Path::new(&marker("deploy-started")).exists()
        && Path::new(&marker("test-started")).exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the builds never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    engine.shutdown();
    let summary = rt.block_on(handle).unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    // `after` would have run once `test` passed: a stopping run starts nothing new.
    assert_eq!(
        summary.builds,
        [b("deploy", 1, Aborted), b("test", 1, Succeeded)]
    );
    assert!(log_text(&engine, "test", 1).contains("steady: finished"));
    assert!(engine.is_stopping());
}

#[test]
fn build_log_retention_removes_old_logs_and_keeps_the_builds() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let yaml = r#"
resources:
- name: thing
  type: mock
  source: {file: ((file))}
jobs:
- name: keep-succeeded
  serial: true
  build_log_retention: {builds: 2, minimum_succeeded_builds: 1}
  plan:
  - get: thing
    trigger: true
    version: every
  - task: only-v1-passes
    config:
      platform: linux
      inputs: [{name: thing}]
      run: {path: sh, args: [-c, 'echo "testing $(cat thing/ref)"; [ "$(cat thing/ref)" = v1 ]']}
- name: old-style
  serial: true
  build_logs_to_retain: 1
  plan:
  - get: thing
    trigger: true
    version: every
"#;
    let engine = f.engine(yaml, &[("file", &file)]);
    let all = ["v1", "v2", "v3", "v4", "v5"];
    for n in 1..=all.len() {
        f.versions_file(&all[..n]);
        assert_eq!(run(&engine).len(), 2, "v{n}");
    }
    // Reaped after each build, as Concourse's reaper would between builds: with builds 2 and
    // one succeeded build kept, the logs of #2 and #3 went when #4 finished.
    let table: &[(&str, &[i64], &[i64])] = &[
        ("keep-succeeded", &[1, 4, 5], &[2, 3]),
        ("old-style", &[5], &[1, 2, 3, 4]),
    ];
    for (job, kept, reaped) in table {
        for n in *kept {
            assert!(log_text(&engine, job, *n).contains("build "), "{job} #{n}");
        }
        let state = engine.state();
        for n in *reaped {
            let build = state.build_by_name(job, *n).unwrap().unwrap();
            assert!(state.log(build.id).unwrap().is_empty(), "{job} #{n}");
            assert!(
                state.logs_reaped_at(build.id).unwrap().is_some(),
                "{job} #{n}"
            );
            assert_eq!(state.build_inputs(build.id).unwrap().len(), 1, "{job} #{n}");
        }
    }
    assert_eq!(
        engine
            .state()
            .build_by_name("keep-succeeded", 2)
            .unwrap()
            .unwrap()
            .status,
        Failed
    );
    let logs = |n: &str| {
        resource_protocol::process::command(tributary_binary(), f.path())
            .args(["logs", "pipeline.yml", "keep-succeeded", n])
            .output()
            .unwrap()
    };
    let out = logs("2");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "keep-succeeded #2: its log was removed by build_log_retention\n"
    );
    let out = logs("1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("testing v1"));
    // `builds` keeps every build and says whose log is gone.
    let out = resource_protocol::process::command(tributary_binary(), f.path())
        .args(["builds", "pipeline.yml", "--job", "keep-succeeded"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let logs: Vec<(&str, &str)> = table
        .lines()
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row.split('\t').collect();
            (cells[2], cells[6])
        })
        .collect();
    assert_eq!(
        logs,
        [
            ("5", "kept"),
            ("4", "kept"),
            ("3", "reaped"),
            ("2", "reaped"),
            ("1", "kept")
        ],
        "{table}"
    );
}

#[test]
fn execute_takes_inputs_from_a_job_its_next_versions_overrides_and_an_image_input() {
    let f = Fixture::new();
    f.git(&["init", "-q", "-b", "main"]);
    f.commit("app.txt", "v1");
    let repo = f.path().join("repo").display().to_string();
    std::fs::write(
        f.path().join("pipeline.yml"),
        r#"
resources:
- name: repo
  type: git
  source: {uri: ((repo)), branch: main}
jobs:
- name: unit
  plan:
  - get: repo
    trigger: true
- name: ship
  plan:
  - get: repo
    trigger: true
    passed: [unit]
- name: build
  plan:
  - get: repo
  - get: image
    resource: repo
"#,
    )
    .unwrap();
    std::fs::write(
        f.path().join("task.yml"),
        "platform: linux\ninputs: [{name: repo}]\noutputs: [{name: out}]\n\
         run: {path: /bin/sh, args: [-c, '/bin/cat repo/app.txt > out/app; /bin/cat /etc/marker >> out/app 2>/dev/null; true']}\n",
    )
    .unwrap();
    let var = format!("repo={repo}");
    let tributary = |args: &[&str]| {
        let out = resource_protocol::process::command(tributary_binary(), f.path())
            .args(args)
            .args(["-v", &var])
            .env(RESOURCE_DIR_ENV, resource_dir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        err
    };
    let execute = |job: &str, extra: &[&str]| {
        let result = f.path().join(format!(
            "result-{}-{}",
            job.replace('/', "-"),
            extra.join("-").replace('/', "-")
        ));
        let out = format!("out={}", result.display());
        let mut args = vec!["execute", "-c", "task.yml", "-j", job, "-o", &out];
        args.extend(extra);
        if !extra.contains(&"--runtime") {
            args.extend(["--runtime", "host"]);
        }
        let log = tributary(&args);
        std::fs::read_to_string(result.join("app"))
            .unwrap_or_else(|e| panic!("{args:?}: {e}\n{log}"))
    };
    // No state yet: the resource is checked first.
    assert_eq!(execute("pipeline.yml/ship", &[]), "v1");
    tributary(&["run", "pipeline.yml", "--runtime", "host"]);
    f.commit("app.txt", "v2");
    tributary(&["check", "pipeline.yml", "repo"]);
    // ship's next inputs must have passed unit, which only built v1; unit takes the newest.
    assert_eq!(execute("pipeline.yml/ship", &[]), "v1");
    assert_eq!(execute("pipeline.yml/unit", &[]), "v2");
    // --override wins over the job's version; -i over the job's get.
    std::fs::create_dir_all(f.path().join("local")).unwrap();
    std::fs::write(f.path().join("local/app.txt"), "local").unwrap();
    assert_eq!(
        execute("pipeline.yml/unit", &["--override", "repo=local"]),
        "local"
    );
    assert_eq!(
        execute("pipeline.yml/unit", &["-i", "repo=local", "-v", "x=y"]),
        "local"
    );
    // --image INPUT: the job's input becomes the task's rootfs (a busybox tree in the repo).
    let rootfs = f.path().join("repo/rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    f.commit("rootfs/etc/marker", "from the image input");
    tributary(&["check", "pipeline.yml", "repo"]);
    assert_eq!(
        execute(
            "pipeline.yml/build",
            &["--image", "image", "--runtime", "bwrap"]
        ),
        "v2from the image input"
    );
}

#[test]
fn execute_check_and_versions_commands() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1", "v2"]);
    std::fs::create_dir_all(f.path().join("src")).unwrap();
    std::fs::write(f.path().join("src/in.txt"), "hello").unwrap();
    std::fs::write(
        f.path().join("task.yml"),
        "platform: linux\ninputs: [{name: src}]\noutputs: [{name: out}]\n\
         params: {WORD: ((word))}\n\
         run: {path: sh, args: [-ec, 'cat src/in.txt > out/result; echo \" $WORD\" >> out/result; echo changed > src/in.txt']}\n",
    )
    .unwrap();
    let tributary = |args: &[&str]| {
        let out = resource_protocol::process::command(tributary_binary(), f.path())
            .args(args)
            .env(RESOURCE_DIR_ENV, resource_dir())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, _, err) = tributary(&[
        "execute",
        "-c",
        "task.yml",
        "-i",
        "src=src",
        "-o",
        "out=result",
        "-v",
        "word=world",
        "--runtime",
        "host",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(f.path().join("result/result")).unwrap(),
        "hello world\n"
    );
    // Inputs are copies.
    assert_eq!(
        std::fs::read_to_string(f.path().join("src/in.txt")).unwrap(),
        "hello"
    );
    // An output that cannot be handed over errors the build.
    let (code, _, err) = tributary(&[
        "execute",
        "-c",
        "task.yml",
        "-i",
        "src=src",
        "-o",
        "nope=elsewhere",
        "-v",
        "word=w",
        "--runtime",
        "host",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("output nope: not produced"), "{err}");
    assert!(
        err.contains("((redacted))") || !err.contains("world"),
        "{err}"
    );
    std::fs::write(f.path().join("pipeline.yml"), mock_pipeline("")).unwrap();
    let var = format!("file={file}");
    let (code, out, err) = tributary(&["check", "pipeline.yml", "thing", "-v", &var]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "[{\"ref\":\"v1\"},{\"ref\":\"v2\"}]\n");
    let (code, out, err) = tributary(&["versions", "pipeline.yml", "thing"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "{\"ref\":\"v2\"}\n{\"ref\":\"v1\"}\n");
    let (code, _, err) = tributary(&[
        "trigger",
        "pipeline.yml",
        "job",
        "-v",
        &var,
        "--runtime",
        "host",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = tributary(&["builds", "pipeline.yml", "--job", "job"]);
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .contains("\tjob\t1\tsucceeded\t"),
        "{out}"
    );
    // A var missing at run time: the check fails naming it, nothing is built, exit 2.
    let (code, _, err) = tributary(&["run", "pipeline.yml", "--runtime", "host"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("check of thing failed: resource thing: source: undefined var: ((file))"),
        "{err}"
    );
    assert!(err.contains("nothing built: 1 checks failed"), "{err}");
    let (code, _, err) = tributary(&["run", "pipeline.yml", "--job", "nope", "-v", &var]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--job nope: no such job"), "{err}");
}

#[test]
fn every_with_serial_builds_each_version_one_at_a_time() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let lock = f.path().join("lock");
    let yaml = format!(
        r#"
resources:
- name: thing
  type: mock
  source: {{file: ((file))}}
jobs:
- name: job
  serial: true
  plan:
  - get: thing
    trigger: true
    version: every
  - task: exclusive
    config:
      platform: linux
      inputs: [{{name: thing}}]
      run: {{path: sh, args: [-ec, 'mkdir {l}; cat thing/ref; sleep 0.3; rmdir {l}']}}
"#,
        l = lock.display()
    );
    let engine = f.engine(&yaml, &[("file", &file)]);
    assert_eq!(run(&engine), [b("job", 1, Succeeded)]);
    std::fs::write(&file, "v1\nv2\nv3\n").unwrap();
    assert_eq!(
        run(&engine),
        [b("job", 2, Succeeded), b("job", 3, Succeeded)]
    );
    assert!(log_text(&engine, "job", 2).contains("exclusive: v2"));
    assert!(log_text(&engine, "job", 3).contains("exclusive: v3"));
}

#[test]
fn watch_checks_again_and_builds_new_versions() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let yaml = r#"
resources:
- name: thing
  type: mock
  check_every: 1s
  source: {file: ((file))}
jobs:
- name: job
  plan:
  - get: thing
    trigger: true
"#;
    let engine = f.engine(yaml, &[("file", &file)]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let watcher = engine.clone();
    let versions = file.clone();
    let summary = rt.block_on(async move {
        let run = tokio::spawn(async move {
            watcher
                .run(&RunOptions {
                    watch: true,
                    job: None,
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        std::fs::write(&versions, "v1\nv2\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while engine.state().builds(Some("job")).unwrap().len() < 2
            || engine.state().builds(Some("job")).unwrap()[0].status != Succeeded
        {
            assert!(std::time::Instant::now() < deadline, "no second build");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        engine.cancel.cancel();
        run.await.unwrap()
    });
    assert_eq!(
        summary.builds,
        [b("job", 1, Succeeded), b("job", 2, Succeeded)]
    );
}

#[test]
fn override_uses_a_local_directory_instead_of_fetching() {
    let f = Fixture::new();
    let local = f.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("ref"), "from-disk").unwrap();
    // The resource would fail if it were ever run.
    let yaml = r#"
resources:
- name: thing
  type: mock
  source: {file: /nonexistent/versions, fail: true}
jobs:
- name: job
  plan:
  - get: thing
    trigger: true
  - task: show
    config:
      platform: linux
      inputs: [{name: thing}]
      run: {path: sh, args: [-ec, 'cat thing/ref']}
"#;
    let loaded = crate::load::load_str(yaml, "pipeline.yml", &crate::vars::StaticVars::default());
    let config = EngineConfig {
        runtime: Runtime::Host,
        state_dir: f.path().join(".tributary"),
        resource_dir: resource_dir(),
        image_dir: None,
        overrides: BTreeMap::from([("thing".to_string(), local.clone())]),
        output: OutputMode::Quiet,
        pipeline_name: "test".into(),
        grace: Duration::from_millis(300),
        db: None,
        pipeline_dir: f.path().to_owned(),
    };
    let engine = Engine::new(loaded.pipeline, &loaded.redact, config).unwrap();
    assert_eq!(run(&engine), [b("job", 1, Succeeded)]);
    let log = log_text(&engine, "job", 1);
    assert!(log.contains("show: from-disk"), "{log}");
    assert!(log.contains("using local directory"), "{log}");
}

#[test]
fn across_is_a_cartesian_product_and_in_parallel_honours_limit() {
    let f = Fixture::new();
    let file = f.versions_file(&["v1"]);
    let lock = f.path().join("lock");
    let plan = format!(
        r#"
  - across:
    - var: x
      values: [a, b]
    - var: n
      values: [1, 2]
      max_in_flight: all
    task: combo
    config:
      platform: linux
      params: {{X: ((.:x)), N: ((.:n))}}
      run: {{path: sh, args: [-ec, 'echo "combo $X$N"']}}
  - in_parallel:
      limit: 1
      steps:
      - task: one
        config: &exclusive
          platform: linux
          outputs: [{{name: kept}}]
          run: {{path: sh, args: [-ec, 'mkdir {l}; sleep 0.2; rmdir {l}; touch kept/x; exit 1']}}
      - task: two
        config: *exclusive
"#,
        l = lock.display()
    );
    let engine = f.engine(&mock_pipeline(&plan), &[("file", &file)]);
    assert_eq!(run(&engine), [b("job", 1, Failed)]);
    let log = log_text(&engine, "job", 1);
    for combo in ["a1", "a2", "b1", "b2"] {
        assert!(
            log.contains(&format!("combo: combo {combo}")),
            "{combo}: {log}"
        );
    }
    // Both ran (no fail_fast), one at a time (the lock never clashed), and both failed.
    assert_eq!(log.matches("failed: exit status 1").count(), 2, "{log}");
    assert!(!log.contains("File exists"), "{log}");
}

/// A stand-in for oci-build-task's `build` (on `PATH` in its image): builds the context into
/// an `oci-archive` tarball `image/image.tar` with busybox tools only. The one layer holds the
/// context's `app/` and `/etc/python-tag`; the config's `Env` carries
/// `PYTHON_TAG=$BUILD_ARG_PYTHON_TAG`, so the pushed image shows what the task saw.
const OCI_BUILD_SCRIPT: &str = r##"#!/bin/sh
set -eu
cd "${CONTEXT:-.}"
test -f Dockerfile
caps=$(grep CapEff /proc/self/status | cut -f2)
sys_admin=no
[ $((0x$caps >> 21 & 1)) = 1 ] && sys_admin=yes
echo "build: uid $(id -u), CAP_SYS_ADMIN $sys_admin, pip index ${BUILDKIT_SECRETTEXT_pip_index:+given}"
work=cache/build
rm -rf "$work"
mkdir -p "$work/root/etc" "$work/oci/blobs/sha256" image
printf '%s\n' "$BUILD_ARG_PYTHON_TAG" > "$work/root/etc/python-tag"
cp -r app "$work/root/app"
tar -cf "$work/layer.tar" -C "$work/root" etc app
blob() {
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$work/oci/blobs/sha256/$digest"
  echo "$digest $(($(wc -c < "$1")))"
}
set -- $(blob "$work/layer.tar"); layer=$1; layer_size=$2
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PYTHON_TAG=%s"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$BUILD_ARG_PYTHON_TAG" "$layer" > "$work/config.json"
set -- $(blob "$work/config.json"); config=$1; config_size=$2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" > "$work/manifest.json"
set -- $(blob "$work/manifest.json"); manifest=$1; manifest_size=$2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' \
  "$manifest" "$manifest_size" > "$work/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"
tar -cf image/image.tar -C "$work/oci" oci-layout index.json blobs
echo "build: wrote image/image.tar ($manifest)"
"##;

/// `examples/rebuild-on-base-tag.yml` with only its outside world swapped for the testbed:
/// the git repository, the Hub API (the fixture, under a `hub.docker.com` path), the
/// registries (the test registry, plain HTTP) and `concourse/oci-build-task` (a busybox image
/// of that name in the test registry with `build` on `PATH`). The `registry-tag` type the
/// example pins to a ghcr.io image is dropped (the base type is the same code) and its
/// `defaults` (`pages: 2`) moved into the source. Every replaced text must be there, so the
/// example cannot drift away from what this runs.
fn rebuild_example_pipeline() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rebuild-on-base-tag.yml");
    let mut yaml = std::fs::read_to_string(&path).unwrap();
    let start = yaml.find("resource_types:\n").unwrap();
    let end = yaml.find("\nresources:\n").unwrap();
    assert!(
        yaml[start..end].contains("check_every: 24h\n  defaults:\n    pages: 2"),
        "{}",
        &yaml[start..end]
    );
    yaml.replace_range(start..=end, "");
    let substitutions = [
        (
            "uri: https://git.example.org/platform/python-app.git",
            "uri: ((repo))",
        ),
        (
            "uri: https://hub.docker.com/v2/repositories/library/python\n",
            "uri: ((hub))\n    pages: 2\n",
        ),
        (
            "repository: registry.example.org/platform/python-app\n",
            "repository: ((registry_host))/platform/python-app\n    insecure: true\n",
        ),
        (
            "repository: concourse/oci-build-task\n          tag: \"0.11\"\n",
            "repository: ((registry_host))/concourse/oci-build-task\n          tag: \"0.11\"\n          insecure: true\n          username: ((registry.username))\n          password: ((registry.password))\n",
        ),
    ];
    for (from, to) in substitutions {
        assert_eq!(
            yaml.matches(from).count(),
            1,
            "{from:?} in {}",
            path.display()
        );
        yaml = yaml.replace(from, to);
    }
    yaml
}

/// The configuration of `repo_ref` on `registry` (`skopeo inspect --config`).
fn image_config(registry: &testbed::registry::Registry, repo_ref: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut skopeo = resource_protocol::process::command("skopeo", dir.path());
    skopeo.args(["inspect", "--config", "--retry-times=0"]);
    skopeo.args(registry.skopeo_args(""));
    skopeo.arg(format!("docker://{}/{repo_ref}", registry.host()));
    let out = resource_protocol::process::output_checked(&mut skopeo).unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn rebuild_on_base_tag_example_runs_against_the_hub_fixture_and_test_registry() {
    use testbed::fixtures::hub::HubFixture;
    use testbed::oci::{ImageSpec, LayerSpec, push_image};
    use testbed::registry::{Registry, RegistryAuth};
    let registry = Registry::start(RegistryAuth::basic("ci", "pushpass"));
    push_image(
        &registry,
        "concourse/oci-build-task:0.11",
        &ImageSpec {
            layers: &[LayerSpec {
                files: &[("bin/build", OCI_BUILD_SCRIPT)],
                ..LayerSpec::default()
            }],
            ..ImageSpec::default()
        },
    );
    for runtime in [Runtime::Bwrap, Runtime::Runc] {
        rebuild_example_on(runtime, &registry, &HubFixture::start());
    }
}

/// One run of [`rebuild_example_pipeline`] on `runtime`: first build, nothing new, a new tag.
fn rebuild_example_on(
    runtime: Runtime,
    registry: &testbed::registry::Registry,
    hub: &testbed::fixtures::hub::HubFixture,
) {
    let name = runtime.name();
    // Only 3.11.9-slim-bookworm and 3.12.1-slim-bookworm pass both `regexp` and `semver`.
    hub.push_tags(
        "library/python",
        &[
            "3.10.14-slim-bookworm",
            "3.11.9-slim-bookworm",
            "3.12.1-alpine",
            "3.12.1-slim-bookworm",
            "3.13.0rc1-slim-bookworm",
        ],
    );
    let f = Fixture::new();
    f.git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(f.path().join("repo/app")).unwrap();
    std::fs::write(f.path().join("repo/app/main.py"), "print('hi')\n").unwrap();
    f.commit(
        "Dockerfile",
        "ARG PYTHON_TAG\nFROM python:${PYTHON_TAG}\nCOPY app /app\n",
    );
    let repo = f.path().join("repo").display().to_string();
    let (user, pass) = registry.credentials().unwrap();
    let vars = [
        ("repo", serde_json::json!(repo)),
        (
            "hub",
            serde_json::json!(hub.repository_uri("library/python")),
        ),
        ("registry_host", serde_json::json!(registry.host())),
        (
            "registry",
            serde_json::json!({"username": user, "password": pass}),
        ),
        (
            "pip-index-url",
            serde_json::json!("https://pypi.internal/simple"),
        ),
    ];
    let engine = f.engine_with_vars(runtime, &rebuild_example_pipeline(), &vars);
    let check_pushed = |tag: &str| {
        let config = image_config(registry, &format!("platform/python-app:{tag}"));
        let env = config["config"]["Env"].to_string();
        assert!(
            env.contains(&format!("PYTHON_TAG={tag}")),
            "{name}: {tag}: {config}"
        );
    };
    assert_eq!(
        run(&engine),
        [b("build-image", 1, Succeeded)],
        "{name}: {}",
        log_text(&engine, "build-image", 1)
    );
    // The Hub API was used, with pages of the fixture's size.
    let requests = hub.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/hub.docker.com/v2/repositories/library/python/tags?")),
        "{name}: {requests:?}"
    );
    let log = log_text(&engine, "build-image", 1);
    // `privileged: true`: CAP_SYS_ADMIN, which unprivileged tasks lack on both runtimes.
    assert!(
        log.contains("build: uid 0, CAP_SYS_ADMIN yes, pip index given"),
        "{name}: {log}"
    );
    assert!(
        log.contains("build: wrote image/image.tar"),
        "{name}: {log}"
    );
    assert!(
        !log.contains("pypi.internal"),
        "{name}: var values are redacted: {log}"
    );
    // The task saw the newest matching tag in BUILD_ARG_PYTHON_TAG; the put pushed it there.
    check_pushed("3.12.1-slim-bookworm");
    let state = engine.state();
    let pushed = state.newest_version("app-image").unwrap().unwrap();
    assert_eq!(
        testbed::oci::inspect_digest(registry, "platform/python-app:3.12.1-slim-bookworm"),
        pushed.version["digest"],
        "{name}"
    );
    drop(state);
    // Nothing new: no build.
    assert_eq!(run(&engine), [], "{name}");
    // A new release (and tags the filters reject): exactly one new build, with the new tag.
    hub.push_tags(
        "library/python",
        &[
            "3.13.0-slim-bookworm",
            "3.13.0-alpine",
            "3.9.20-slim-bookworm",
        ],
    );
    assert_eq!(
        run(&engine),
        [b("build-image", 2, Succeeded)],
        "{name}: {}",
        log_text(&engine, "build-image", 2)
    );
    check_pushed("3.13.0-slim-bookworm");
    assert_eq!(run(&engine), [], "{name}");
}
