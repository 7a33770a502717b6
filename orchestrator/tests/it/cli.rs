//! The `tributary` binary: validate and graph, exit codes, and the DOT output checked against an
//! independent reading of its edges.

use std::collections::BTreeSet;

use assert_cmd::Command;

use crate::examples_dir;

fn tributary() -> Command {
    Command::cargo_bin("tributary").unwrap()
}

#[test]
fn validate_accepts_every_example() {
    let mut cmd = tributary();
    cmd.arg("validate");
    for file in crate::example_files() {
        cmd.arg(file);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("site-deploy-legacy.yml: valid (2 jobs, 3 resources, 5 warnings)"),
        "{stderr}"
    );
}

#[test]
fn validate_reports_every_error_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "resources:\n- name: idle\n  type: git\njobs:\n- name: j\n  plan:\n  - get: a\n",
    )
    .unwrap();
    let out = tributary().arg("validate").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let p = bad.display();
    assert!(
        stderr.contains(&format!(
            "{p}:2:3: error: resource `idle` is not used by any job"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:7:5: error: job `j`: get `a`: unknown resource `a`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}: invalid (2 errors)")),
        "{stderr}"
    );
}

#[test]
fn validate_uses_vars_from_files_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.yml");
    std::fs::write(&pipeline, "resources:\n- name: r\n  type: git\njobs:\n- name: j\n  plan:\n  - get: r\n    trigger: ((t))\n").unwrap();
    let vars = dir.path().join("vars.yml");
    std::fs::write(&vars, "t: maybe\n").unwrap();
    // Without vars the typed field cannot be checked.
    let out = tributary().arg("validate").arg(&pipeline).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    // The file's value is wrong, the flag wins.
    let out = tributary()
        .arg("validate")
        .arg(&pipeline)
        .arg("-l")
        .arg(&vars)
        .args(["-y", "t=true"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tributary()
        .arg("validate")
        .arg(&pipeline)
        .arg("-l")
        .arg(&vars)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = tributary()
        .arg("validate")
        .arg(&pipeline)
        .args(["-v", "novalue"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-v novalue: expected name=value"));
}

#[test]
fn unreadable_pipeline_is_bad_input() {
    let out = tributary()
        .args(["validate", "/nonexistent/p.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nonexistent/p.yml:0:0: error: cannot read pipeline")
    );
}

/// Edges read back from DOT text, independently of the code that wrote it:
/// `(from, to, label, style)`.
fn dot_edges(dot: &str) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for line in dot.lines().map(str::trim).filter(|l| l.contains(" -> ")) {
        let quoted: Vec<&str> = line.split('"').collect();
        // "from" -> "to" [label="x", style=y];
        let from = quoted[1].to_string();
        let to = quoted[3].to_string();
        let label = if line.contains("label=") {
            quoted[5].to_string()
        } else {
            String::new()
        };
        let style = line
            .rsplit("style=")
            .next()
            .unwrap()
            .trim_end_matches("];")
            .to_string();
        out.insert((from, to, label, style));
    }
    out
}

#[test]
fn graph_dot_has_the_pipeline_edges() {
    let file = examples_dir().join("nix-matrix.yml");
    let out = tributary()
        .arg("graph")
        .arg(&file)
        .args(["--format", "dot"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.starts_with("digraph pipeline {"));
    let e = |f: &str, t: &str, l: &str, s: &str| {
        (f.to_string(), t.to_string(), l.to_string(), s.to_string())
    };
    let want: BTreeSet<_> = [
        e("resource:ci-config", "job:reconfigure", "", "solid"),
        e("resource:flake", "job:build", "", "solid"),
        e("resource:nightly", "job:build", "", "solid"),
        e("job:build", "resource:cache", "", "solid"),
        e("job:build", "job:check", "flake", "solid"),
        e("job:build", "job:check", "cache", "dashed"),
    ]
    .into_iter()
    .collect();
    assert_eq!(dot_edges(&dot), want);
    for job in ["reconfigure", "build", "check"] {
        assert!(
            dot.contains(&format!("\"job:{job}\" [label=\"{job}\", shape=box];")),
            "{dot}"
        );
    }
}

#[test]
fn graph_dot_of_the_local_example() {
    let file = examples_dir().join("hello-local.yml");
    let out = tributary().arg("graph").arg(&file).output().unwrap();
    let dot = String::from_utf8(out.stdout).unwrap();
    let want: BTreeSet<_> = [
        (
            "resource:repo".to_string(),
            "job:test".to_string(),
            String::new(),
            "solid".to_string(),
        ),
        (
            "job:test".to_string(),
            "job:package".to_string(),
            "repo".to_string(),
            "solid".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(dot_edges(&dot), want);
}

#[test]
fn graph_svg_is_standalone_and_draws_every_node_and_edge() {
    let file = examples_dir().join("nix-matrix.yml");
    let out = tributary()
        .arg("graph")
        .arg(&file)
        .args(["--format", "svg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<g class=\"job\">").count(), 3);
    assert_eq!(svg.matches("<g class=\"resource\">").count(), 4);
    assert_eq!(svg.matches("class=\"edge\"").count(), 6);
    assert_eq!(svg.matches("stroke-dasharray").count(), 1);
}

#[test]
fn graph_of_an_invalid_pipeline_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "jobs: {}\n").unwrap();
    let out = tributary().arg("graph").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
}

#[test]
fn engine_commands_report_missing_files_as_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "p.yml", "--job", "x"], "p.yml: invalid pipeline"),
        (&["trigger", "p.yml", "x"], "p.yml: invalid pipeline"),
        (&["execute", "-c", "p.yml"], "p.yml: No such file"),
        (&["check", "p.yml", "r"], "p.yml: invalid pipeline"),
        (&["builds", "p.yml"], "no state yet"),
        (&["logs", "p.yml", "j"], "no state yet"),
        (&["versions", "p.yml", "r"], "no state yet"),
        (
            &["execute", "-c", "t.yml", "-j", "ok.yml"],
            "-j ok.yml: expected PIPELINE/JOB",
        ),
        (
            &["execute", "-c", "t.yml", "-j", "ok.yml/"],
            "-j ok.yml/: expected PIPELINE/JOB",
        ),
        (
            &["execute", "-c", "t.yml", "-j", "p.yml/unit"],
            "-j p.yml/unit: invalid pipeline",
        ),
        (
            &["execute", "-c", "t.yml", "-j", "ok.yml/nope"],
            "-j ok.yml/nope: no job nope in ok.yml",
        ),
        (
            &[
                "execute",
                "-c",
                "t.yml",
                "-j",
                "ok.yml/unit",
                "--override",
                "x=.",
            ],
            "--override x: no such resource",
        ),
    ];
    std::fs::write(
        dir.path().join("t.yml"),
        "platform: linux\nrun: {path: \"true\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ok.yml"),
        "resources:\n- name: repo\n  type: git\n  source: {uri: /nowhere}\njobs:\n- name: unit\n  plan:\n  - get: repo\n",
    )
    .unwrap();
    for (args, want) in cases {
        let out = tributary()
            .current_dir(dir.path())
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn validate_json_lists_diagnostics_per_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "resources:\n- name: idle\n  type: git\njobs:\n- name: j\n  plan:\n  - aggregate: [{get: idle}]\n  - get: a\n").unwrap();
    let good = examples_dir().join("hello-local.yml");
    let out = tributary()
        .args(["validate", "--json"])
        .arg(&bad)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let b = bad.display().to_string();
    assert_eq!(
        lines[0],
        serde_json::json!({
            "version": 1,
            "file": b,
            "valid": false,
            "diagnostics": [
                {"severity": "warning", "file": b, "line": 7, "column": 5, "message": "`aggregate` is deprecated (removed in Concourse 7); use `in_parallel`"},
                {"severity": "error", "file": b, "line": 8, "column": 5, "message": "job `j`: get `a`: unknown resource `a`"},
            ],
        })
    );
    assert_eq!(lines[1]["valid"], serde_json::json!(true));
    assert_eq!(lines[1]["diagnostics"], serde_json::json!([]));
}

#[test]
fn the_scheduled_example_runs_on_time_mock_and_a_dummy_var_source() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("scheduled.yml");
    std::fs::copy(examples_dir().join("scheduled.yml"), &pipeline).unwrap();
    let run = |args: &[&str]| {
        let out = tributary()
            .current_dir(dir.path())
            .args(args)
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let (code, _, err) = run(&["run", "scheduled.yml", "--runtime", "host"]);
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "build #1: succeeded",
        "announce #1: succeeded",
        "[build #1] report: built by the mock resource",
        "[build #1] release: pushed {\"privileged\":\"true\",\"version\":\"1.0.1\"}",
        "[announce #1] show: released 1.0.1",
    ] {
        assert!(err.contains(line), "{line}: {err}");
    }
    // The dummy var source's value is used and redacted.
    assert!(err.contains("[build #1] report: ((redacted))"), "{err}");
    assert!(!err.contains("hello from tributary"), "{err}");
    // The time resource's interval has not passed: nothing new to build.
    let (code, _, err) = run(&["run", "scheduled.yml", "--runtime", "host"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("build started"), "{err}");
    let (code, out, err) = run(&["builds", "scheduled.yml"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "a header and two builds: {out}");
    let (code, out, err) = run(&["logs", "scheduled.yml", "build"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("tick "), "{out}");
}

/// The README's main job: `tributary run examples/hello-local.yml` in a checkout (here a fresh
/// repository holding the example, so `uri: ..` is that repository).
#[test]
fn the_readme_main_job_runs_both_jobs_then_has_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    std::fs::copy(
        examples_dir().join("hello-local.yml"),
        dir.path().join("examples/hello-local.yml"),
    )
    .unwrap();
    let git = |args: &[&str]| {
        let out = resource_protocol::process::output_checked(
            resource_protocol::process::command("git", dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1"),
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "examples"]);
    git(&["commit", "-q", "-m", "the example"]);
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let run = || {
        let out = tributary()
            .current_dir(dir.path())
            .args(["run", "examples/hello-local.yml"])
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run();
    assert_eq!(code, Some(0), "{err}");
    for line in [
        format!("[test #1] list-files: testing {head}"),
        "test #1: succeeded".to_owned(),
        "[package #1] tarball: ".to_owned(),
        "package #1: succeeded".to_owned(),
    ] {
        assert!(err.contains(&line), "{line}: {err}");
    }
    assert!(dir.path().join("examples/.tributary/state.db").is_file());
    let (code, err) = run();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("build started"), "{err}");
}
