//! Malformed requests give a non-zero exit, an empty stdout and one line on stderr.

#[test]
fn rejects_bad_input() {
    testbed::bad_input::assert_rejects_bad_input(
        std::path::Path::new(env!("CARGO_BIN_EXE_registry-image-resource")),
        serde_json::json!({"repository": "127.0.0.1:5000/app"}),
        "variant",
    );
}
