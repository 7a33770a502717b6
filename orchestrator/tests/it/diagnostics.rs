//! One case per validation error and per warning: the message and its location.

use serde_json::json;
use tributary::StaticVars;

use crate::{load, rendered};

/// A minimal valid pipeline tail: one resource used by one job.
const OK_TAIL: &str = "resources:
- name: repo
  type: git
  source: {uri: /r}
jobs:
- name: unit
  plan:
  - get: repo
";

#[track_caller]
fn check(text: &str, expect: &[&str]) {
    let loaded = load(text);
    assert_eq!(rendered(&loaded), expect, "\n--- pipeline ---\n{text}");
}

#[test]
fn a_valid_pipeline_has_no_diagnostics() {
    check(OK_TAIL, &[]);
    // Unknown top-level keys (anchors' home) are ignored.
    check(
        &format!("x-anchors: {{a: 1}}\nanything: [1]\n{OK_TAIL}"),
        &[],
    );
}

#[test]
fn validation_errors() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "no jobs",
            "resources: []\n",
            &["p.yml:1:1: error: pipeline has no jobs"],
        ),
        (
            "empty file",
            "",
            &["p.yml:1:1: error: pipeline has no jobs"],
        ),
        (
            "unknown resource in get",
            "jobs:\n- name: j\n  plan:\n  - get: nope\n",
            &["p.yml:4:5: error: job `j`: get `nope`: unknown resource `nope`"],
        ),
        (
            "unknown resource in put",
            "jobs:\n- name: j\n  plan:\n  - put: out\n    resource: nope\n",
            &["p.yml:4:5: error: job `j`: put `out`: unknown resource `nope`"],
        ),
        (
            "unknown resource type",
            "resources:\n- name: r\n  type: s3\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &["p.yml:2:3: error: resource `r`: unknown resource type `s3`"],
        ),
        (
            "unknown type of a resource type",
            "resource_types:\n- name: t\n  type: nope\nresources:\n- name: r\n  type: t\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &["p.yml:2:3: error: resource type `t`: unknown resource type `nope`"],
        ),
        (
            "resource types in a loop",
            "resource_types:\n- name: a\n  type: b\n- name: b\n  type: a\nresources:\n- name: r\n  type: a\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &[
                "p.yml:2:3: error: resource type `a`: its `type:` chain loops and never reaches a base type",
                "p.yml:4:3: error: resource type `b`: its `type:` chain loops and never reaches a base type",
            ],
        ),
        (
            "unused resource",
            "resources:\n- name: r\n  type: git\n- name: idle\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &["p.yml:4:3: error: resource `idle` is not used by any job"],
        ),
        (
            "repeated get name",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n  - do:\n    - get: r\n",
            &["p.yml:9:7: error: job `j`: get `r` appears more than once"],
        ),
        (
            "a near miss is suggested",
            "resources:\n- name: repo-src\n  type: git\njobs:\n- name: build\n  plan:\n  - get: repo-src\n- name: test\n  plan:\n  - get: repo-src\n    passed: [biuld]\n  - put: repo-scr\n",
            &[
                "p.yml:10:5: error: job `test`: get `repo-src`: passed job `biuld` does not exist (did you mean `build`?)",
                "p.yml:12:5: error: job `test`: put `repo-scr`: unknown resource `repo-scr` (did you mean `repo-src`?)",
            ],
        ),
        (
            "passed names a missing job",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    passed: [ghost]\n",
            &["p.yml:7:5: error: job `j`: get `r`: passed job `ghost` does not exist"],
        ),
        (
            "passed job does not use the resource",
            "resources:\n- name: r\n  type: git\n- name: s\n  type: git\njobs:\n- name: a\n  plan:\n  - get: s\n- name: b\n  plan:\n  - get: r\n    passed: [a]\n",
            &[
                "p.yml:12:5: error: job `b`: get `r`: passed job `a` does not get or put resource `r`",
            ],
        ),
        (
            "passed cycle",
            "resources:\n- name: r\n  type: git\njobs:\n- name: a\n  plan:\n  - get: r\n    passed: [b]\n- name: b\n  plan:\n  - get: r\n    passed: [a]\n",
            &["p.yml:5:3: error: `passed:` constraints form a cycle: a -> b -> a"],
        ),
        (
            "task with file and config",
            "jobs:\n- name: j\n  plan:\n  - task: t\n    file: x/t.yml\n    config: {platform: linux, run: {path: ls}}\n",
            &["p.yml:4:5: error: job `j`: task `t`: has both `file` and `config`; give one"],
        ),
        (
            "task with neither file nor config",
            "jobs:\n- name: j\n  plan:\n  - task: t\n    privileged: true\n",
            &["p.yml:4:5: error: job `j`: task `t`: needs `file` or `config`"],
        ),
        (
            "task config without run",
            "jobs:\n- name: j\n  plan:\n  - task: t\n    config:\n      platform: linux\n",
            &["p.yml:6:7: error: job `j`: task `t`: config has no `run`"],
        ),
        (
            "unknown step",
            "jobs:\n- name: j\n  plan:\n  - fetch: r\n    trigger: true\n",
            &[
                "p.yml:4:5: error: unknown step (none of get, put, task, set_pipeline, load_var, in_parallel, do, try; found: fetch, trigger)",
            ],
        ),
        (
            "two core steps in one",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    put: r\n",
            &["p.yml:7:5: error: unknown field `get` in put step (a step has one type)"],
        ),
        (
            "unknown field in a step",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    triger: true\n",
            &["p.yml:8:5: error: unknown field `triger` in get step (did you mean `trigger`?)"],
        ),
        (
            "fail_fast without across",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    fail_fast: true\n",
            &["p.yml:8:5: error: unknown field `fail_fast` in get step"],
        ),
        (
            "unknown field in a resource",
            "resources:\n- name: r\n  type: git\n  sauce: {}\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &["p.yml:4:3: error: unknown field `sauce` in resource (did you mean `source`?)"],
        ),
        (
            "unknown field in a job",
            "jobs:\n- name: j\n  steps: []\n",
            &[
                "p.yml:2:3: error: job `j`: `plan` is required",
                "p.yml:3:3: error: unknown field `steps` in job (did you mean `plan`?)",
            ],
        ),
        (
            "unknown field in a task config",
            "jobs:\n- name: j\n  plan:\n  - task: t\n    config:\n      run: {path: ls}\n      image: x\n",
            &[
                "p.yml:7:7: error: unknown field `image` in task config (valid: platform, image_resource, rootfs_uri, inputs, outputs, caches, params, run, container_limits)",
            ],
        ),
        (
            "duplicate names",
            "resources:\n- name: r\n  type: git\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n- name: j\n  plan:\n  - get: r\n    resource: r\n",
            &[
                "p.yml:4:3: error: resource `r` is declared more than once",
                "p.yml:10:3: error: job `j` is declared more than once",
            ],
        ),
        (
            "group names an unknown job",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\ngroups:\n- name: g\n  jobs: [j, nope, 'j*']\n",
            &["p.yml:9:3: error: group `g`: unknown job `nope`"],
        ),
        (
            "unknown image_resource type",
            "jobs:\n- name: j\n  plan:\n  - task: t\n    config:\n      image_resource: {type: s3, source: {}}\n      run: {path: ls}\n",
            &["p.yml:6:7: error: job `j`: task `t`: image_resource: unknown resource type `s3`"],
        ),
        (
            "var sources: duplicate, dummy without vars, a config using another var source",
            "var_sources:\n- name: a\n  type: dummy\n  config: {vars: {x: 1}}\n- name: a\n  type: dummy\n  config: {}\n- name: b\n  type: dummy\n  config: {vars: {y: ((a:x))}}\nresources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &[
                "p.yml:5:3: error: var source `a` is declared more than once",
                "p.yml:5:3: error: var_sources a: a dummy var source needs `config.vars`, a mapping",
                "p.yml:8:3: error: var_sources b: config uses ((a:x)); a var source's config may use static vars but not var sources",
            ],
        ),
        (
            "all problems at once",
            "resources:\n- name: idle\n  type: git\njobs:\n- name: j\n  plan:\n  - get: a\n  - put: b\n",
            &[
                "p.yml:2:3: error: resource `idle` is not used by any job",
                "p.yml:7:5: error: job `j`: get `a`: unknown resource `a`",
                "p.yml:8:5: error: job `j`: put `b`: unknown resource `b`",
            ],
        ),
    ];
    for (name, text, expect) in cases {
        let loaded = load(text);
        assert_eq!(&rendered(&loaded), expect, "case: {name}\n{text}");
    }
}

#[test]
fn type_errors() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "bool",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    trigger: maybe\n",
            &["p.yml:8:14: error: trigger: expected a bool, found a string"],
        ),
        (
            "quoted bool",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  serial: 'yes'\n  plan:\n  - get: r\n",
            &["p.yml:6:11: error: serial: expected a bool, found a string"],
        ),
        (
            "plan not a list",
            "jobs:\n- name: j\n  plan: {get: r}\n",
            &["p.yml:3:9: error: plan: expected a list, found a mapping"],
        ),
        (
            "duration",
            "resources:\n- name: r\n  type: git\n  check_every: 5 minutes\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &[
                "p.yml:4:16: error: check_every: invalid duration `5 minutes` (expected e.g. 90s, 15m, 1h30m)",
            ],
        ),
        (
            "negative integer",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    attempts: -1\n",
            &["p.yml:8:15: error: attempts: expected a non-negative integer, found `-1`"],
        ),
        (
            "zero attempts",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    attempts: 0\n",
            &["p.yml:8:15: error: attempts: must be at least 1"],
        ),
        (
            "name is a list",
            "jobs:\n- name: [a]\n  plan: []\n",
            &["p.yml:2:9: error: name: expected a string, found a list"],
        ),
        (
            "source is a string",
            "resources:\n- name: r\n  type: git\n  source: uri\njobs:\n- name: j\n  plan:\n  - get: r\n",
            &["p.yml:4:11: error: source: expected a mapping, found a string"],
        ),
        (
            "bad version",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    version: newest\n",
            &[
                "p.yml:8:14: error: version: expected `latest`, `every` or a mapping, found `newest`",
            ],
        ),
        (
            "bad load_var format",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n  - load_var: v\n    file: r/v\n    format: toml\n",
            &["p.yml:10:13: error: format: expected json, yaml, yml, trim or raw"],
        ),
        (
            "typed field from an unresolved var",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    trigger: ((t))\n",
            &[
                "p.yml:8:14: error: trigger: var ((t)) has no static value (give it with -v, -y or -l)",
            ],
        ),
        (
            "put inputs",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - put: r\n    inputs: some\n",
            &["p.yml:8:13: error: inputs: expected `detect`, `all` or a list, found `some`"],
        ),
        (
            "across values",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    across:\n    - var: v\n      values: {a: 1}\n",
            &["p.yml:10:15: error: values: expected a list, found a mapping"],
        ),
        (
            "in_parallel config",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - in_parallel:\n      step: [{get: r}]\n",
            &["p.yml:8:7: error: unknown field `step` in in_parallel (did you mean `steps`?)"],
        ),
        (
            "container limits",
            "jobs:\n- name: j\n  plan:\n  - task: t\n    config: {run: {path: ls}, container_limits: {memory: lots}}\n",
            &["p.yml:5:58: error: memory: expected a non-negative integer, found `lots`"],
        ),
        (
            "pinned version as a list",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    version: [a]\n",
            &["p.yml:8:14: error: version: expected a mapping, found a list"],
        ),
        (
            "top level is a list",
            "- a\n- b\n",
            &["p.yml:1:1: error: pipeline: expected a mapping, found a list"],
        ),
    ];
    for (name, text, expect) in cases {
        let loaded = load(text);
        assert_eq!(&rendered(&loaded), expect, "case: {name}\n{text}");
    }
}

#[test]
fn warnings() {
    let job = "jobs:\n- name: j\n  plan:\n  - get: r\n";
    let cases: &[(&str, String, &[&str])] = &[
        (
            "aggregate",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - aggregate:\n    - get: r\n".into(),
            &["p.yml:7:5: warning: `aggregate` is deprecated (removed in Concourse 7); use `in_parallel`"],
        ),
        (
            "old-style var",
            format!("resources:\n- name: r\n  type: git\n  source: {{uri: {{{{uri}}}}}}\n{job}"),
            &["p.yml:4:17: warning: `{{uri}}` is deprecated; write `((uri))`"],
        ),
        (
            "docker-image resource",
            format!("resources:\n- name: r\n  type: docker-image\n  source: {{repository: busybox}}\n{job}"),
            &[
                "p.yml:3:3: warning: type `docker-image` is deprecated; using `registry-image` (repository, tag, username, password and insecure_registries are mapped)",
            ],
        ),
        (
            "docker-image field without an equivalent",
            format!("resources:\n- name: r\n  type: docker-image\n  source: {{repository: busybox, cache: true}}\n{job}"),
            &[
                "p.yml:3:3: warning: type `docker-image` is deprecated; using `registry-image` (repository, tag, username, password and insecure_registries are mapped)",
                "p.yml:3:3: warning: source.cache: not supported by registry-image; ignored",
            ],
        ),
        (
            "docker-image image_resource",
            "jobs:\n- name: j\n  plan:\n  - task: t\n    config:\n      image_resource:\n        type: docker-image\n        source: {repository: busybox}\n      run: {path: ls}\n".into(),
            &[
                "p.yml:7:9: warning: type `docker-image` is deprecated; using `registry-image` (repository, tag, username, password and insecure_registries are mapped)",
            ],
        ),
        (
            "one warning per anchor, however often it is merged",
            "x-img: &img\n  type: docker-image\n  source: {repository: busybox, cache: true}\nresources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n  - task: a\n    config: {image_resource: *img, run: {path: ls}}\n  - task: b\n    config: {image_resource: *img, run: {path: ls}}\n".into(),
            &[
                "p.yml:2:3: warning: type `docker-image` is deprecated; using `registry-image` (repository, tag, username, password and insecure_registries are mapped)",
                "p.yml:2:3: warning: source.cache: not supported by registry-image; ignored",
            ],
        ),
        (
            "local var never set",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n  - load_var: tag\n    file: r/tag\n  - task: t\n    file: r/t.yml\n    params: {A: ((.:tag)), B: ((.:r.ref)), C: ((.:tga)), D: x-((.:tga))}\n".into(),
            &["p.yml:10:5: warning: job `j`: local var ((.:tga)) is never set in this job (by load_var, across or get)"],
        ),
        (
            "names that are not identifiers",
            "resources:\n- name: Repo\n  type: git\njobs:\n- name: 1st\n  plan:\n  - get: src_ok.v2-x\n    resource: Repo\n  - task: Build\n    file: src_ok.v2-x/t.yml\n  - task: build-((.:x))\n    file: src_ok.v2-x/t.yml\n".into(),
            &[
                "p.yml:2:3: warning: resource `Repo` is not a valid identifier: start with a lowercase letter, then use lowercase letters, digits, `-`, `_` or `.`",
                "p.yml:5:3: warning: job `1st` is not a valid identifier: start with a lowercase letter, then use lowercase letters, digits, `-`, `_` or `.`",
                "p.yml:9:5: warning: task step `Build` is not a valid identifier: start with a lowercase letter, then use lowercase letters, digits, `-`, `_` or `.`",
                "p.yml:11:5: warning: job `1st`: local var ((.:x)) is never set in this job (by load_var, across or get)",
            ],
        ),
        (
            "build_logs_to_retain",
            "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  build_logs_to_retain: 3\n  plan:\n  - get: r\n".into(),
            &["p.yml:6:3: warning: `build_logs_to_retain` is deprecated; use `build_log_retention: {builds: N}`"],
        ),
        (
            "a var source nobody declared, warned once",
            "resources:\n- name: r\n  type: git\n  source: {uri: ((vault:repo.uri)), key: ((vault:key))}\njobs:\n- name: j\n  plan:\n  - get: r\n  - task: t\n    file: r/t.yml\n    params: {A: ((.:r.ref)), B: ((creds:b)), C: ((vault:c))}\n".into(),
            &[
                "p.yml:2:3: warning: ((vault:key)) uses var source `vault`, which var_sources does not declare; builds that use it will error",
                "p.yml:9:5: warning: ((creds:b)) uses var source `creds`, which var_sources does not declare; builds that use it will error",
            ],
        ),
        (
            "var source of a type tributary cannot reach",
            format!("var_sources:\n- name: vault\n  type: vault\n  config: {{url: https://v}}\nresources:\n- name: r\n  type: git\n{job}"),
            &["p.yml:2:3: warning: var_sources vault: type vault is not supported by tributary; builds that use ((vault:…)) will error"],
        ),
    ];
    for (name, text, expect) in cases {
        let loaded = load(text);
        assert_eq!(&rendered(&loaded), expect, "case: {name}\n{text}");
        assert!(!loaded.has_errors(), "case: {name}");
    }
}

#[test]
fn var_errors_point_at_the_value() {
    let vars = StaticVars::from_pairs([("creds", json!({"user": "u"})), ("list", json!([1]))]);
    let text = "resources:\n- name: r\n  type: git\n  source:\n    user: ((creds.name))\n    uri: git@((list)):x\njobs:\n- name: j\n  plan:\n  - get: r\n";
    let loaded = tributary::load_str(text, "p.yml", &vars);
    assert_eq!(
        rendered(&loaded),
        [
            "p.yml:5:11: error: var ((creds.name)): field `name` not found",
            "p.yml:6:10: error: var ((list)) is a list; only strings and numbers can be embedded in a string",
        ]
    );
}

#[test]
fn modifiers_nest_in_concourse_order() {
    let text = "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n  - ensure: {get: r2, resource: r}\n    on_failure: {get: r3, resource: r}\n    attempts: 3\n    timeout: 1m\n    task: t\n    file: r/t.yml\n";
    let loaded = load(text);
    assert!(!loaded.has_errors(), "{:?}", rendered(&loaded));
    let step = &loaded.pipeline.jobs[0].plan[1];
    let mut chain = Vec::new();
    let mut cur = step;
    loop {
        use tributary::model::StepKind::*;
        match &cur.kind {
            Hook { when, step, .. } => {
                chain.push(when.key().to_string());
                cur = step;
            }
            Attempts { step, .. } => {
                chain.push("attempts".into());
                cur = step;
            }
            Timeout { step, .. } => {
                chain.push("timeout".into());
                cur = step;
            }
            Task(t) => {
                chain.push(format!("task {}", t.name));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        chain,
        ["ensure", "on_failure", "attempts", "timeout", "task t"]
    );
}
