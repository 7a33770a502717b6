//! Parse ⇒ serialise ⇒ parse is stable: `Pipeline::to_json` writes Concourse's own shape, and
//! loading that again gives the same pipeline.

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use tributary::{StaticVars, load_file};

use crate::{example_files, load, rendered};

/// Loads `json` (JSON is YAML) and serialises it again.
fn reserialise(text: &str) -> Json {
    let loaded = load(text);
    assert!(!loaded.has_errors(), "{:#?}\n{text}", rendered(&loaded));
    loaded.pipeline.to_json()
}

#[test]
fn examples_round_trip() {
    for file in example_files() {
        let loaded = load_file(&file, &StaticVars::default());
        assert!(!loaded.has_errors(), "{file:?}");
        let first = loaded.pipeline.to_json();
        let second = reserialise(&serde_json::to_string_pretty(&first).unwrap());
        assert_eq!(first, second, "{file:?}");
        // Serialising is a fixed point after one pass.
        let third = reserialise(&serde_json::to_string(&second).unwrap());
        assert_eq!(second, third, "{file:?}");
    }
}

fn core_step(resources: usize) -> impl Strategy<Value = Json> {
    prop_oneof![
        (0..resources, any::<bool>(), prop::option::of(prop_oneof![Just("latest"), Just("every")]))
            .prop_map(|(r, trigger, version)| {
                let mut s = json!({"get": format!("in-{r}"), "resource": format!("r{r}"), "trigger": trigger});
                if let Some(v) = version {
                    s["version"] = json!(v);
                }
                s
            }),
        (0..resources, any::<bool>()).prop_map(|(r, no_get)| json!({
            "put": format!("r{r}"), "params": {"file": "out/x", "n": 1}, "no_get": no_get, "inputs": ["out"]
        })),
        ("[a-z]{1,8}", any::<bool>(), prop::collection::vec("[a-z -]{0,6}", 0..3)).prop_map(|(name, privileged, args)| json!({
            "task": name, "privileged": privileged,
            "config": {"platform": "linux", "outputs": [{"name": "out"}], "caches": [{"path": "c"}],
                        "params": {"A": "x", "B": null, "C": 1.5}, "run": {"path": "sh", "args": args}}
        })),
        "[a-z]{1,8}".prop_map(|name| json!({"load_var": name, "file": "out/v.json", "format": "json", "reveal": true})),
        Just(json!({"set_pipeline": "self", "file": "out/p.yml", "var_files": ["out/v.yml"]})),
    ]
}

fn step(resources: usize) -> impl Strategy<Value = Json> {
    let leaf = core_step(resources);
    let tree = leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|s| json!({"do": s})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|s| json!({"in_parallel": s})),
            (prop::collection::vec(inner.clone(), 0..3), 1u32..4, any::<bool>())
                .prop_map(|(s, limit, ff)| json!({"in_parallel": {"steps": s, "limit": limit, "fail_fast": ff}})),
            inner.clone().prop_map(|s| json!({"try": s})),
            (inner.clone(), inner.clone()).prop_map(|(s, h)| {
                let mut s = s;
                if s.get("ensure").is_none() {
                    s["ensure"] = h;
                }
                s
            }),
        ]
    });
    (
        tree,
        prop::option::of(1u32..5),
        prop::option::of(1u64..7200),
        any::<bool>(),
        prop::option::of(step_hook()),
    )
        .prop_map(|(mut s, attempts, timeout, across, hook)| {
            if let Some(a) = attempts {
                s["attempts"] = json!(a);
            }
            if let Some(t) = timeout {
                s["timeout"] = json!(format!("{t}s"));
            }
            if across && s.get("across").is_none() {
                s["across"] = json!([{"var": "v", "values": [1, "two"], "max_in_flight": "all"}]);
            }
            if let Some((key, h)) = hook
                && s.get(key).is_none()
            {
                s[key] = h;
            }
            s
        })
}

fn step_hook() -> impl Strategy<Value = (&'static str, Json)> {
    (
        prop_oneof![
            Just("on_success"),
            Just("on_failure"),
            Just("on_error"),
            Just("on_abort"),
            Just("ensure")
        ],
        Just(json!({"task": "hook", "file": "out/hook.yml"})),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn generated_pipelines_round_trip(plans in prop::collection::vec(prop::collection::vec(step(3), 1..4), 1..4)) {
        let resources: Vec<Json> = (0..3).map(|i| json!({"name": format!("r{i}"), "type": "git", "source": {"uri": format!("/r{i}")}})).collect();
        let jobs: Vec<Json> = plans.iter().enumerate().map(|(i, plan)| json!({"name": format!("j{i}"), "plan": plan})).collect();
        let pipeline = json!({"resources": resources, "jobs": jobs});
        let text = serde_json::to_string(&pipeline).unwrap();
        // Generated pipelines may break semantic rules (unused resources, repeated gets); only
        // structure matters here, so compare models, not diagnostics.
        let loaded = load(&text);
        let structural: Vec<String> = rendered(&loaded).into_iter()
            .filter(|d| d.contains("unknown field") || d.contains("expected")).collect();
        prop_assert!(structural.is_empty(), "{:?}", structural);
        let first = loaded.pipeline.to_json();
        let again = load(&serde_json::to_string_pretty(&first).unwrap());
        prop_assert_eq!(&first, &again.pipeline.to_json());
    }
}
