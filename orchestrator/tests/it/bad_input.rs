//! Hostile and broken input: malformed YAML, alias bombs, deep nesting, huge pipelines.
//! Each must end in a clear error (or a result) quickly, never a panic or a runaway.

use std::time::{Duration, Instant};

use crate::{load, rendered};

#[test]
fn malformed_yaml_is_an_error_with_a_location() {
    let cases: &[(&str, &str)] = &[
        ("jobs: [\n", "p.yml:2:1: error: invalid yaml:"),
        ("jobs:\n  - name: a\n   bad: indent\n", "p.yml:3:"),
        ("a: 'unterminated\n", "p.yml:"),
        ("a: *nope\n", "p.yml:1:4: error: invalid yaml:"),
        ("a: 1\na: 2\n", "p.yml:2:1: error: duplicate key `a`"),
        (
            "? [a]\n: b\n",
            "p.yml:1:3: error: mapping keys must be scalars",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "p.yml:2:1: error: a pipeline is one yaml document; found a second one",
        ),
        (
            "m:\n  <<: 3\n",
            "p.yml:2:7: error: `<<` merge value must be a mapping or a list of mappings",
        ),
        ("\t- tab\n", "p.yml:1:"),
    ];
    for (text, prefix) in cases {
        let loaded = load(text);
        let diags = rendered(&loaded);
        assert_eq!(diags.len(), 1, "{text:?}: {diags:?}");
        assert!(diags[0].starts_with(prefix), "{text:?}: {diags:?}");
        assert!(loaded.has_errors());
    }
}

fn alias_bomb(levels: usize, width: usize) -> String {
    let mut text = String::from("a0: &a0 [\"lol\"]\n");
    for i in 1..levels {
        let refs = vec![format!("*a{}", i - 1); width].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("jobs: []\n");
    text
}

#[test]
fn billion_laughs_is_refused_quickly() {
    let start = Instant::now();
    let loaded = load(&alias_bomb(10, 10));
    let diags = rendered(&loaded);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].contains("anchors and aliases copy more than 64 MiB; refusing"),
        "{diags:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn nested_anchors_over_big_content_are_refused() {
    let levels = 100;
    let mut text = String::from("a: ");
    for i in 0..levels {
        text.push_str(&format!("&a{i} ["));
    }
    text.push_str(&format!("\"{}\"", "x".repeat(2 * 1024 * 1024)));
    text.push_str(&"]".repeat(levels));
    text.push_str("\njobs: []\n");
    let start = Instant::now();
    let diags = rendered(&load(&text));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].contains("anchors and aliases copy more than 64 MiB; refusing"),
        "{diags:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn modest_alias_use_is_fine() {
    let loaded = load(&alias_bomb(3, 5));
    assert_eq!(
        rendered(&loaded),
        ["p.yml:1:1: error: pipeline has no jobs"]
    );
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let text = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let loaded = load(&text);
    let diags = rendered(&loaded);
    assert_eq!(diags.len(), 1, "{diags:?}");
    // saphyr-parser stops at its own recursion limit before ours.
    assert!(
        diags[0].starts_with("p.yml:1:259: error: invalid yaml: recursion limit exceeded"),
        "{diags:?}"
    );
}

#[test]
fn deep_nesting_through_aliases_is_refused() {
    let mut text = format!("a0: &a0 {}x{}\n", "[".repeat(200), "]".repeat(200));
    for i in 1..5 {
        text.push_str(&format!(
            "a{i}: &a{i} {}*a{}{}\n",
            "[".repeat(200),
            i - 1,
            "]".repeat(200)
        ));
    }
    let diags = rendered(&load(&text));
    assert!(
        diags[0].contains("yaml nests deeper than 256 levels"),
        "{diags:?}"
    );
}

/// A ~10 MB pipeline: many resources and jobs, each with a passed chain and a task.
fn big_pipeline(target_bytes: usize) -> (String, usize) {
    let mut text = String::from("resources:\n");
    let mut jobs = String::from("jobs:\n");
    let mut n = 0;
    while text.len() + jobs.len() < target_bytes {
        text.push_str(&format!(
            "- name: repo-{n}\n  type: git\n  source:\n    uri: https://git.example.org/team/project-{n}.git\n    branch: main\n"
        ));
        let passed = if n == 0 {
            String::new()
        } else {
            format!("\n    passed: [job-{}]", n - 1)
        };
        jobs.push_str(&format!(
            "- name: job-{n}\n  plan:\n  - get: repo-{n}\n    trigger: true\n  - get: shared{passed}\n    resource: repo-0\n  - task: build\n    config:\n      platform: linux\n      inputs: [{{name: repo-{n}}}]\n      params: {{N: {n}, LABEL: \"build number {n} of a long pipeline\"}}\n      run: {{path: sh, args: [-ec, \"make -C repo-{n} all\"]}}\n"
        ));
        n += 1;
    }
    text.push_str(&jobs);
    (text, n)
}

#[test]
fn a_ten_megabyte_pipeline_loads() {
    let (text, n) = big_pipeline(10 * 1024 * 1024);
    let start = Instant::now();
    let loaded = load(&text);
    let took = start.elapsed();
    assert!(
        !loaded.has_errors(),
        "{:?}",
        &rendered(&loaded)[..3.min(loaded.diagnostics.len())]
    );
    assert_eq!(loaded.pipeline.jobs.len(), n);
    assert_eq!(loaded.pipeline.resources.len(), n);
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

mod never_panics {
    use proptest::prelude::*;

    /// Fragments that pipelines are made of, so random input gets past the YAML parser often.
    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "jobs:",
            "resources:",
            "resource_types:",
            "- name: a",
            "  plan:",
            "  - get: a",
            "    passed: [a]",
            "  type: git",
            "  source: {uri: x}",
            "- task: t",
            "  config: {run: {path: ls}}",
            "  file: a/t.yml",
            "    trigger: yes",
            "  timeout: 1h",
            "  attempts: 2",
            "  across: [{var: v, values: [1]}]",
            "  in_parallel: [{get: a}]",
            "  aggregate:",
            "  do: []",
            "  try: {get: a}",
            "  ensure: {get: a}",
            "x-a: &a {k: v}",
            "  <<: *a",
            "  <<: [*a]",
            "*a",
            "&b",
            "((v))",
            "((.:v))",
            "{{v}}",
            "'q'",
            "\"q\"",
            "[",
            "]",
            "{",
            "}",
            ":",
            "-",
            "?",
            "|",
            ">",
            "#",
            "!!str",
            "~",
            "null",
            "0x1f",
            "1e3",
            "\n",
            "  ",
            "\t",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn loading_token_soup_never_panics(tokens in prop::collection::vec(token(), 0..60)) {
            let text = tokens.join(" ");
            let _ = crate::load(&text);
            let text = tokens.join("\n");
            let _ = crate::load(&text);
        }

        #[test]
        fn loading_arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = crate::load(&text);
        }
    }
}

#[test]
fn unclosed_var_openings_are_not_quadratic() {
    let text = format!(
        "jobs:\n- name: j\n  plan:\n  - task: t\n    config: {{run: {{path: ls}}}}\n    params: {{A: \"{}x))\", B: \"{}\"}}\n",
        "((".repeat(500_000),
        "((".repeat(500_000)
    );
    let start = Instant::now();
    let vars = tributary::StaticVars::from_pairs([("x", serde_json::json!("1"))]);
    let loaded = tributary::load_str(&text, "p.yml", &vars);
    assert!(!loaded.has_errors(), "{:?}", rendered(&loaded));
    let a = format!("{:?}", loaded.pipeline.jobs[0].plan[0]);
    assert!(a.contains("(((1"), "the closing ((x)) is interpolated");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}
