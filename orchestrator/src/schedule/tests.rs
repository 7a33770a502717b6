//! Scheduler tables: versions, upstream builds and history in, next inputs and trigger out.

use super::*;

/// `"name resource [every|pin=N|pin=?] [trigger] [passed=a,b]"`.
fn input(text: &str) -> InputSpec {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap().to_owned();
    let resource = words.next().unwrap().to_owned();
    let mut spec = InputSpec {
        name,
        resource,
        passed: Vec::new(),
        trigger: false,
        version: VersionChoice::Latest,
    };
    for word in words {
        match word {
            "every" => spec.version = VersionChoice::Every,
            "trigger" => spec.trigger = true,
            "pin=?" => spec.version = VersionChoice::Pinned(None),
            w if w.starts_with("pin=") => {
                spec.version = VersionChoice::Pinned(Some(w[4..].parse().unwrap()));
            }
            w if w.starts_with("passed=") => {
                spec.passed = w[7..].split(',').map(str::to_owned).collect();
            }
            other => panic!("bad word {other}"),
        }
    }
    spec
}

type Builds<'a> = &'a [(&'a str, &'a [(BuildId, &'a [(&'a str, &'a [VersionId])])])];

struct Case<'a> {
    /// Per resource, version ids oldest first.
    versions: &'a [(&'a str, &'a [VersionId])],
    /// Per upstream job, successful builds (id, versions per resource), any order.
    builds: Builds<'a>,
    /// Per input name, versions this job used.
    used: &'a [(&'a str, &'a [VersionId])],
    inputs: &'a [&'a str],
    /// `"a=1 b=2"`, or `!` followed by part of the error.
    expect: &'a str,
    trigger: bool,
}

fn check(case: Case<'_>) {
    let mut snapshot = Snapshot::default();
    for (resource, ids) in case.versions {
        snapshot.versions.insert(resource.to_string(), ids.to_vec());
    }
    for (job, builds) in case.builds {
        let mut list: Vec<PassedBuild> = builds
            .iter()
            .map(|(id, versions)| PassedBuild {
                id: *id,
                versions: versions
                    .iter()
                    .map(|(r, ids)| (r.to_string(), ids.iter().copied().collect()))
                    .collect(),
            })
            .collect();
        list.sort_by_key(|b| std::cmp::Reverse(b.id));
        snapshot.passed_builds.insert(job.to_string(), list);
    }
    for (name, ids) in case.used {
        snapshot
            .used
            .insert(name.to_string(), ids.iter().copied().collect());
    }
    let inputs: Vec<InputSpec> = case.inputs.iter().map(|t| input(t)).collect();
    match resolve_next_inputs(&inputs, &snapshot) {
        Ok(next) => {
            let got: Vec<String> = next.iter().map(|(k, v)| format!("{k}={v}")).collect();
            assert_eq!(got.join(" "), case.expect, "inputs {:?}", case.inputs);
            assert_eq!(
                should_trigger(&inputs, &next, &snapshot),
                case.trigger,
                "trigger for {:?}",
                case.inputs
            );
        }
        Err(err) => {
            let want = case
                .expect
                .strip_prefix('!')
                .unwrap_or_else(|| panic!("inputs {:?}: unexpected error {err}", case.inputs));
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
    }
}

#[test]
fn latest_and_trigger() {
    // First build: the newest version triggers.
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[],
        used: &[],
        inputs: &["src repo trigger"],
        expect: "src=3",
        trigger: true,
    });
    // Already used: resolves, does not trigger.
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[],
        used: &[("src", &[3])],
        inputs: &["src repo trigger"],
        expect: "src=3",
        trigger: false,
    });
    // Several new versions collapse to the newest.
    check(Case {
        versions: &[("repo", &[1, 2, 3, 4])],
        builds: &[],
        used: &[("src", &[1])],
        inputs: &["src repo trigger"],
        expect: "src=4",
        trigger: true,
    });
    // A new version of a non-trigger input does not trigger.
    check(Case {
        versions: &[("repo", &[1]), ("tools", &[7, 8])],
        builds: &[],
        used: &[("src", &[1]), ("tools", &[7])],
        inputs: &["src repo trigger", "tools tools"],
        expect: "src=1 tools=8",
        trigger: false,
    });
    // No versions yet.
    check(Case {
        versions: &[("repo", &[])],
        builds: &[],
        used: &[],
        inputs: &["src repo trigger"],
        expect: "!no versions of resource repo",
        trigger: false,
    });
}

#[test]
fn every_walks_versions_in_order() {
    // First time: the newest.
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[],
        used: &[],
        inputs: &["src repo every trigger"],
        expect: "src=3",
        trigger: true,
    });
    // Then the next after the newest used.
    check(Case {
        versions: &[("repo", &[1, 2, 3, 4])],
        builds: &[],
        used: &[("src", &[2])],
        inputs: &["src repo every trigger"],
        expect: "src=3",
        trigger: true,
    });
    check(Case {
        versions: &[("repo", &[1, 2, 3, 4])],
        builds: &[],
        used: &[("src", &[1, 3])],
        inputs: &["src repo every trigger"],
        expect: "src=4",
        trigger: true,
    });
    // Nothing after the newest used: stays, no trigger.
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[],
        used: &[("src", &[3])],
        inputs: &["src repo every trigger"],
        expect: "src=3",
        trigger: false,
    });
    // every with passed: the next one that passed.
    check(Case {
        versions: &[("repo", &[1, 2, 3, 4])],
        builds: &[("unit", &[(10, &[("repo", &[1])]), (11, &[("repo", &[3])])])],
        used: &[("src", &[1])],
        inputs: &["src repo every trigger passed=unit"],
        expect: "src=3",
        trigger: true,
    });
}

#[test]
fn pins() {
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[],
        used: &[],
        inputs: &["src repo pin=2 trigger"],
        expect: "src=2",
        trigger: true,
    });
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[],
        used: &[("src", &[2])],
        inputs: &["src repo pin=2 trigger"],
        expect: "src=2",
        trigger: false,
    });
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[],
        used: &[],
        inputs: &["src repo pin=?"],
        expect: "!pinned version not found",
        trigger: false,
    });
    // A pin must still have passed.
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[("unit", &[(10, &[("repo", &[3])])])],
        used: &[],
        inputs: &["src repo pin=2 passed=unit"],
        expect: "!no versions satisfy",
        trigger: false,
    });
}

#[test]
fn passed_constraints() {
    // Only versions that passed, newest upstream build first.
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[("unit", &[(10, &[("repo", &[1])]), (11, &[("repo", &[2])])])],
        used: &[],
        inputs: &["src repo trigger passed=unit"],
        expect: "src=2",
        trigger: true,
    });
    // An output of the upstream build counts.
    check(Case {
        versions: &[("repo", &[1]), ("image", &[5, 6])],
        builds: &[("build", &[(10, &[("repo", &[1]), ("image", &[5])])])],
        used: &[],
        inputs: &["img image trigger passed=build"],
        expect: "img=5",
        trigger: true,
    });
    // Nothing passed yet.
    check(Case {
        versions: &[("repo", &[1, 2])],
        builds: &[],
        used: &[],
        inputs: &["src repo trigger passed=unit"],
        expect: "!no versions satisfy",
        trigger: false,
    });
    // Two inputs through one job: they come from the same build.
    check(Case {
        versions: &[("repo", &[1, 2]), ("lib", &[7, 8])],
        builds: &[(
            "unit",
            &[
                (10, &[("repo", &[1]), ("lib", &[8])]),
                (11, &[("repo", &[2]), ("lib", &[7])]),
            ],
        )],
        used: &[],
        inputs: &["src repo trigger passed=unit", "lib lib passed=unit"],
        expect: "lib=7 src=2",
        trigger: true,
    });
}

#[test]
fn fan_in_across_two_upstream_jobs() {
    // `src` passed both unit and lint: it must be a version both succeeded with. unit's newest
    // build has 3 but lint only got to 2, so 2 is chosen (backtracking from 3).
    check(Case {
        versions: &[("repo", &[1, 2, 3])],
        builds: &[
            ("unit", &[(10, &[("repo", &[2])]), (12, &[("repo", &[3])])]),
            ("lint", &[(11, &[("repo", &[1])]), (13, &[("repo", &[2])])]),
        ],
        used: &[("src", &[1])],
        inputs: &["src repo trigger passed=unit,lint"],
        expect: "src=2",
        trigger: true,
    });
    // Two inputs, each from its own upstream job, plus a shared one: the shared resource must
    // match in both upstream builds chosen.
    check(Case {
        versions: &[("repo", &[1, 2]), ("a", &[10, 11]), ("b", &[20, 21])],
        builds: &[
            (
                "build-a",
                &[
                    (100, &[("repo", &[1]), ("a", &[10])]),
                    (102, &[("repo", &[2]), ("a", &[11])]),
                ],
            ),
            ("build-b", &[(101, &[("repo", &[1]), ("b", &[20])])]),
        ],
        used: &[],
        inputs: &[
            "src repo passed=build-a,build-b",
            "a a trigger passed=build-a",
            "b b trigger passed=build-b",
        ],
        expect: "a=10 b=20 src=1",
        trigger: true,
    });
    // No common version at all.
    check(Case {
        versions: &[("repo", &[1, 2])],
        builds: &[
            ("unit", &[(10, &[("repo", &[2])])]),
            ("lint", &[(11, &[("repo", &[1])])]),
        ],
        used: &[],
        inputs: &["src repo trigger passed=unit,lint"],
        expect: "!no versions satisfy",
        trigger: false,
    });
}

#[test]
fn concurrency_limits() {
    let c = |serial: bool, groups: &[&str], max: Option<u32>| Concurrency {
        serial,
        serial_groups: groups.iter().map(|g| g.to_string()).collect(),
        max_in_flight: max,
    };
    let jobs: BTreeMap<String, Concurrency> = [
        ("free".to_string(), c(false, &[], None)),
        ("serial".to_string(), c(true, &[], None)),
        ("two".to_string(), c(false, &[], Some(2))),
        ("g1".to_string(), c(false, &["deploy"], None)),
        ("g2".to_string(), c(false, &["deploy"], None)),
    ]
    .into();
    type Row<'a> = (&'a str, &'a [(&'a str, u32)], bool);
    let table: &[Row<'_>] = &[
        ("free", &[("free", 5)], true),
        ("serial", &[], true),
        ("serial", &[("serial", 1)], false),
        ("two", &[("two", 1)], true),
        ("two", &[("two", 2)], false),
        ("g1", &[], true),
        ("g1", &[("g2", 1)], false),
        ("g2", &[("free", 1)], true),
    ];
    for (job, running, expect) in table {
        let running: BTreeMap<String, u32> =
            running.iter().map(|(j, n)| (j.to_string(), *n)).collect();
        assert_eq!(
            may_start(job, &jobs, &running),
            *expect,
            "{job} with {running:?}"
        );
    }
}
