//! Malformed requests give a non-zero exit, an empty stdout and one line on stderr.

#[test]
fn rejects_bad_input() {
    testbed::bad_input::assert_rejects_bad_input(
        std::path::Path::new(env!("CARGO_BIN_EXE_git-resource")),
        serde_json::json!({"uri": "https://example.com/repo.git"}),
        "branch",
    );
}

/// Configuration the resource must refuse before touching the network: exit 2, one line naming
/// the field, nothing on stdout.
#[test]
fn rejects_bad_configuration() {
    let env = crate::support::Env::new();
    let uri = "/nonexistent/repo";
    let dest = env.dir.path().join("dest");
    let src = env.dir.path().to_path_buf();
    let in_args = ["in", dest.to_str().unwrap()];
    let out_args = ["out", src.to_str().unwrap()];
    let cases: Vec<(&[&str], serde_json::Value, &str)> = vec![
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "bogus": 1}}),
            "source.bogus: unknown field `bogus`, expected one of `uri`, `branch`",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "tag_filter": "*", "tag_regex": ".*"}}),
            "source.tag_filter and source.tag_regex: set at most one of them",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "version_depth": 0}}),
            "source.version_depth: must be greater than 0",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "tag_behaviour": "newest"}}),
            "source.tag_behaviour: \"newest\" is not one of",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": ""}}),
            "source.uri: must not be empty",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "commit_filter": {"include": "not a list"}}}),
            "source.commit_filter.include: invalid type",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "commit_filter": {"exclude": ["["]}}}),
            "source.commit_filter.exclude[0]: invalid regular expression",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "tag_regex": "("}}),
            "source.tag_regex: invalid regular expression",
        ),
        (
            &["check"],
            serde_json::json!({"source": {"uri": uri, "private_key": "garbage"}}),
            "source.private_key: not a PEM or OpenSSH private key",
        ),
        (
            &in_args,
            serde_json::json!({"source": {"uri": uri}, "version": {"ref": "x"}, "params": {"depht": 1}}),
            "params.depht: unknown field `depht`",
        ),
        (
            &in_args,
            serde_json::json!({"source": {"uri": uri}, "version": {}, "params": {"timestamp_format": "relative"}}),
            "params.timestamp_format: \"relative\" is not supported",
        ),
        (
            &in_args,
            serde_json::json!({"source": {"uri": uri}, "version": {}, "params": {"describe_ref_options": "--contains"}}),
            "params.describe_ref_options: --contains is not supported",
        ),
        (
            &out_args,
            serde_json::json!({"source": {"uri": uri, "branch": "main"}, "params": {"repository": "r", "rebase": "yes-please"}}),
            "params.rebase: invalid value",
        ),
    ];
    for (args, request, message) in cases {
        let run = env.run(args, &request);
        assert_eq!(run.code, 2, "{request}: {run:?}");
        assert_eq!(run.stdout_text, "", "{request}");
        assert!(
            run.stderr.contains(message),
            "{request}: {message}\n{}",
            run.stderr
        );
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    }
}
