//! Malformed requests give a non-zero exit, an empty stdout and one line on stderr.

#[test]
fn rejects_bad_input() {
    testbed::bad_input::assert_rejects_bad_input(
        std::path::Path::new(env!("CARGO_BIN_EXE_registry-tag-resource")),
        serde_json::json!({"uri": "http://127.0.0.1:5000/v2/app"}),
        "regexp",
    );
}
