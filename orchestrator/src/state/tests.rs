//! Tests of the state database: check order, puts, builds, pins, caches and crash recovery.

use super::*;

fn v(r: &str) -> Version {
    resource_protocol::wire::version([("ref", r)])
}

fn refs(state: &State, resource: &str) -> Vec<String> {
    state
        .versions(resource)
        .unwrap()
        .into_iter()
        .map(|s| s.version["ref"].clone())
        .collect()
}

/// Applies checks (lists of refs) and puts (`+ref`) in turn; expects the order, oldest first.
fn check_order(steps: &[&[&str]], expect: &[&str]) {
    let mut state = State::open_in_memory().unwrap();
    for step in steps {
        if let [put] = step
            && let Some(r) = put.strip_prefix('+')
        {
            state
                .save_put_version("r", &v(r), &serde_json::json!([]))
                .unwrap();
            continue;
        }
        let versions: Vec<Version> = step.iter().map(|r| v(r)).collect();
        state.save_checked_versions("r", &versions).unwrap();
    }
    assert_eq!(refs(&state, "r"), expect, "steps {steps:?}");
}

#[test]
fn check_order_table() {
    check_order(&[&["a", "b", "c"]], &["a", "b", "c"]);
    // Nothing new: the order stays.
    check_order(&[&["a", "b", "c"], &["c", "a"]], &["a", "b", "c"]);
    // Something new: the returned versions are re-ordered in output order, last newest.
    check_order(&[&["a", "b", "c"], &["c", "a", "d"]], &["b", "c", "a", "d"]);
    check_order(&[&["a"], &["a", "b"], &["b", "c"]], &["a", "b", "c"]);
    check_order(&[&[]], &[]);
    // A put's version becomes the newest, even when it was known.
    check_order(&[&["a", "b"], &["+a"]], &["b", "a"]);
    check_order(&[&["a", "b"], &["+x"]], &["a", "b", "x"]);
    check_order(&[&["+x"], &["a", "b"]], &["x", "a", "b"]);
    // Duplicates in one answer keep their first position.
    check_order(&[&["a", "b", "a"]], &["a", "b"]);
}

#[test]
fn builds_inputs_outputs_and_history() {
    let mut state = State::open_in_memory().unwrap();
    let ids = state
        .save_checked_versions("repo", &[v("1"), v("2")])
        .unwrap();
    let input = |id| BuildVersion {
        name: "src".into(),
        resource: "repo".into(),
        version_id: id,
    };
    let b1 = state.create_build("unit", &[input(ids[0])]).unwrap();
    let b2 = state.create_build("unit", &[input(ids[1])]).unwrap();
    assert_eq!((b1.name, b2.name), (1, 2));
    state.start_build(b1.id).unwrap();
    state
        .finish_build(b1.id, BuildStatus::Succeeded, None)
        .unwrap();
    state
        .finish_build(b2.id, BuildStatus::Failed, None)
        .unwrap();
    let out = state
        .save_put_version("image", &v("sha"), &serde_json::json!([]))
        .unwrap();
    state
        .add_output(
            b1.id,
            &BuildVersion {
                name: "image".into(),
                resource: "image".into(),
                version_id: out,
            },
        )
        .unwrap();
    let ok = state.successful_builds("unit").unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].0, b1.id);
    assert_eq!(ok[0].1["repo"], BTreeSet::from([ids[0]]));
    assert_eq!(ok[0].1["image"], BTreeSet::from([out]));
    let history = state.job_input_history("unit").unwrap();
    assert_eq!(history["src"], BTreeSet::from([ids[0], ids[1]]));
    let builds = state.builds(Some("unit")).unwrap();
    assert_eq!(
        builds.iter().map(|b| b.status).collect::<Vec<_>>(),
        [BuildStatus::Failed, BuildStatus::Succeeded]
    );
    state.pin("repo", ids[0], "").unwrap();
    assert_eq!(state.pinned("repo").unwrap(), Some(ids[0]));
    state.unpin("repo").unwrap();
    assert_eq!(state.pinned("repo").unwrap(), None);
    assert_eq!(state.task_cache("unit", "t", "c", "d1").unwrap(), "d1");
    assert_eq!(state.task_cache("unit", "t", "c", "d2").unwrap(), "d1");
}

#[test]
fn reopening_marks_interrupted_builds_errored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (running, done) = {
        let mut state = State::open(&path).unwrap();
        let running = state.create_build("j", &[]).unwrap();
        state.start_build(running.id).unwrap();
        let done = state.create_build("j", &[]).unwrap();
        state
            .finish_build(done.id, BuildStatus::Succeeded, None)
            .unwrap();
        let pending = state.create_build("k", &[]).unwrap();
        let _ = pending;
        (running, done)
        // Dropped without finishing: as if the process died.
    };
    let state = State::open(&path).unwrap();
    let running = state.build(running.id).unwrap().unwrap();
    assert_eq!(running.status, BuildStatus::Errored);
    assert_eq!(running.error.as_deref(), Some("interrupted"));
    assert!(
        state.log(running.id).unwrap()[0]
            .text
            .contains("interrupted")
    );
    assert_eq!(
        state.build(done.id).unwrap().unwrap().status,
        BuildStatus::Succeeded
    );
    assert_eq!(
        state.builds(Some("k")).unwrap()[0].status,
        BuildStatus::Errored
    );
    // A new build continues the numbering.
    drop(state);
    let mut state = State::open(&path).unwrap();
    assert_eq!(state.create_build("j", &[]).unwrap().name, 3);
}

#[test]
fn a_changed_resource_config_starts_a_new_history() {
    let mut state = State::open_in_memory().unwrap();
    assert!(!state.set_resource_config("r", "aaa").unwrap());
    let ids = state.save_checked_versions("r", &[v("1"), v("2")]).unwrap();
    let build = state
        .create_build(
            "j",
            &[BuildVersion {
                name: "r".into(),
                resource: "r".into(),
                version_id: ids[1],
            }],
        )
        .unwrap();
    state.pin("r", ids[0], "").unwrap();
    // The same config: nothing changes.
    assert!(!state.set_resource_config("r", "aaa").unwrap());
    assert_eq!(refs(&state, "r"), ["1", "2"]);
    // Another config: a fresh history; old builds keep their versions.
    assert!(state.set_resource_config("r", "bbb").unwrap());
    assert_eq!(refs(&state, "r"), Vec::<String>::new());
    assert_eq!(refs(&state, "r@aaa"), ["1", "2"]);
    assert_eq!(state.pinned("r").unwrap(), None);
    assert_eq!(state.build_inputs(build.id).unwrap()[0].version_id, ids[1]);
    let new = state.save_checked_versions("r", &[v("2")]).unwrap();
    assert_ne!(new[0], ids[1]);
}

#[test]
fn reaping_logs_keeps_builds_inputs_and_outputs() {
    let mut state = State::open_in_memory().unwrap();
    let ids = state.save_checked_versions("r", &[v("1")]).unwrap();
    let input = BuildVersion {
        name: "r".into(),
        resource: "r".into(),
        version_id: ids[0],
    };
    let line = |text: &str| LogLine {
        time_ms: 1,
        step: String::new(),
        stream: "event".into(),
        text: text.into(),
    };
    let mut builds = Vec::new();
    for status in [
        BuildStatus::Failed,
        BuildStatus::Succeeded,
        BuildStatus::Started,
    ] {
        let build = state
            .create_build("j", std::slice::from_ref(&input))
            .unwrap();
        state.add_output(build.id, &input).unwrap();
        state.append_log(build.id, &[line("hello")]).unwrap();
        if status.is_finished() {
            state.finish_build(build.id, status, None).unwrap();
        } else {
            state.start_build(build.id).unwrap();
        }
        builds.push(build.id);
    }
    let logged = |state: &State| -> Vec<(BuildId, BuildStatus)> {
        state
            .logged_builds("j")
            .unwrap()
            .iter()
            .map(|b| (b.id, b.status))
            .collect()
    };
    assert_eq!(
        logged(&state),
        [
            (builds[2], BuildStatus::Started),
            (builds[1], BuildStatus::Succeeded),
            (builds[0], BuildStatus::Failed)
        ]
    );
    state.reap_logs(&builds[..1]).unwrap();
    assert!(state.log(builds[0]).unwrap().is_empty());
    assert!(state.logs_reaped_at(builds[0]).unwrap().is_some());
    assert_eq!(state.logs_reaped_at(builds[1]).unwrap(), None);
    assert_eq!(state.log(builds[1]).unwrap(), [line("hello")]);
    assert_eq!(logged(&state).len(), 2);
    // The build itself, its status, inputs and outputs stay (passed: still sees it).
    let build = state.build(builds[0]).unwrap().unwrap();
    assert_eq!(build.status, BuildStatus::Failed);
    assert_eq!(
        state.build_inputs(builds[0]).unwrap(),
        std::slice::from_ref(&input)
    );
    assert_eq!(state.build_outputs(builds[0]).unwrap(), [input]);
}
