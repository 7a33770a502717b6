//! The model's helpers that the engine relies on: type resolution, `defaults` merging, task
//! config files.

use serde_json::json;
use tributary::StaticVars;
use tributary::load::load_task_config;

use crate::{load, rendered};

const TYPES: &str = "resource_types:
- name: registry-tag
  type: registry-image
  source: {repository: example/registry-tag-resource}
  defaults: {pages: 2, regexp: '.*'}
- name: tagged
  type: registry-tag
  source: {repository: example/tagged}
- name: git
  type: git
  source: {repository: example/git-resource}
resources:
- name: base
  type: registry-tag
  source: {uri: https://hub.example.org/v2/repositories/library/python, regexp: '^3'}
- name: other
  type: tagged
- name: repo
  type: git
jobs:
- name: j
  plan:
  - get: base
  - get: other
  - get: repo
";

#[test]
fn types_resolve_to_base_types() {
    let loaded = load(TYPES);
    assert!(!loaded.has_errors(), "{:?}", rendered(&loaded));
    let p = &loaded.pipeline;
    let cases = [
        ("registry-tag", Some("registry-image")),
        ("tagged", Some("registry-image")),
        ("git", Some("git")),
        ("nix-cache", Some("nix-cache")),
    ];
    for (name, want) in cases {
        assert_eq!(p.base_type(name), want, "{name}");
    }
}

#[test]
fn defaults_merge_under_sources() {
    let loaded = load(TYPES);
    let p = &loaded.pipeline;
    let base = p.resource("base").unwrap();
    assert_eq!(
        serde_json::Value::Object(p.source_with_defaults(base)),
        json!({"uri": "https://hub.example.org/v2/repositories/library/python", "regexp": "^3", "pages": 2})
    );
    let repo = p.resource("repo").unwrap();
    assert_eq!(
        serde_json::Value::Object(p.source_with_defaults(repo)),
        json!({})
    );
}

#[test]
fn task_config_files_load_with_vars() {
    let vars = StaticVars::from_pairs([("tag", json!("1.36"))]);
    let text = "platform: linux\nimage_resource:\n  type: registry-image\n  source: {repository: busybox, tag: ((tag))}\ninputs: [{name: src}]\nrun: {path: sh, args: [-c, 'echo ((.:x))']}\n";
    let (config, warnings) = load_task_config(text, "task.yml", &vars).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(config.image_resource.unwrap().source["tag"], json!("1.36"));
    assert_eq!(config.run.unwrap().args, ["-c", "echo ((.:x))"]);

    let cases: &[(&str, &[&str])] = &[
        (
            "platform: linux\n",
            &["t.yml:1:1: error: task config has no `run`"],
        ),
        (
            "run: {path: ls}\nimage: x\n",
            &[
                "t.yml:2:1: error: unknown field `image` in task config (valid: platform, image_resource, rootfs_uri, inputs, outputs, caches, params, run, container_limits)",
            ],
        ),
        (
            "run: [\n",
            &[
                "t.yml:2:1: error: invalid yaml: while parsing a node, did not find expected node content",
            ],
        ),
    ];
    for (text, want) in cases {
        let err = load_task_config(text, "t.yml", &StaticVars::default()).unwrap_err();
        let got: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
        assert_eq!(&got, want, "{text}");
    }
}
