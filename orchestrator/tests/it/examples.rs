//! Snapshots of the parsed, interpolated model of every example pipeline.

use serde_json::json;
use tributary::{StaticVars, load_file};

use crate::{example_files, rendered};

/// Vars that the examples reference (as a user would pass with -v/-y/-l).
fn vars() -> StaticVars {
    StaticVars::from_pairs([
        (
            "registry",
            json!({"username": "robot", "password": "s3cret-registry"}),
        ),
        ("pip-index-url", json!("https://pypi.example.org/simple")),
        (
            "ssh-private-key",
            json!("-----BEGIN KEY-----\nabc\n-----END KEY-----"),
        ),
        ("notify-token", json!("tok-123")),
        ("repo", json!("/srv/git/hello")),
        (
            "cache-signing-key",
            json!("cache.example.org-1:c2lnbmluZw=="),
        ),
    ])
}

#[test]
fn every_example_loads_without_errors_and_matches_its_snapshot() {
    let files = example_files();
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let loaded = load_file(&file, &vars());
        let diags: Vec<String> = rendered(&loaded)
            .into_iter()
            .map(|d| {
                d.rsplit_once("examples/")
                    .map_or(d.clone(), |(_, rest)| rest.to_string())
            })
            .collect();
        assert!(!loaded.has_errors(), "{name}: {diags:#?}");
        insta::assert_debug_snapshot!(format!("{name}-diagnostics"), diags);
        insta::assert_debug_snapshot!(format!("{name}-model"), loaded.pipeline);
    }
}

#[test]
fn var_values_are_in_the_redaction_set_and_interpolated() {
    let file = crate::examples_dir().join("rebuild-on-base-tag.yml");
    let loaded = load_file(&file, &vars());
    assert!(loaded.redact.contains("s3cret-registry"));
    assert!(loaded.redact.contains("robot"));
    let image = loaded.pipeline.resource("app-image").unwrap();
    assert_eq!(image.source["password"], json!("s3cret-registry"));
    // Local vars stay for run time.
    let text = format!("{:?}", loaded.pipeline.jobs[0].plan);
    assert!(text.contains("((.:base_tag))"), "{text}");
}

#[test]
fn legacy_example_maps_docker_image_and_substitutes_old_vars() {
    let file = crate::examples_dir().join("site-deploy-legacy.yml");
    let loaded = load_file(&file, &vars());
    let json = loaded.pipeline.to_json();
    let deploy = &json["jobs"][0]["plan"][2];
    assert_eq!(deploy["task"], json!("deploy"));
    assert_eq!(
        deploy["params"]["DEPLOY_KEY"],
        json!("-----BEGIN KEY-----\nabc\n-----END KEY-----")
    );
    let image = &deploy["config"]["image_resource"];
    assert_eq!(
        image,
        &json!({
            "type": "registry-image",
            "source": {"repository": "ci-registry:5000/site-builder", "tag": "latest", "insecure": true}
        })
    );
    // aggregate is loaded as in_parallel.
    assert!(json["jobs"][1]["plan"][0]["in_parallel"].is_array());
    assert!(loaded.redact.contains("tok-123"));
}
