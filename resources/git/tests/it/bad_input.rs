//! Malformed requests give a non-zero exit, an empty stdout and one line on stderr.

#[test]
fn rejects_bad_input() {
    testbed::bad_input::assert_rejects_bad_input(
        std::path::Path::new(env!("CARGO_BIN_EXE_git-resource")),
        serde_json::json!({"uri": "https://example.com/repo.git"}),
        "branch",
    );
}
