//! `images`: builds one OCI image per resource type from the release binaries (issue 7).
//!
//! Not built yet: the binary exits with "not implemented" so the workspace layout is complete.

fn main() -> std::process::ExitCode {
    eprintln!("error: the image builder is not implemented yet");
    std::process::ExitCode::from(3)
}
