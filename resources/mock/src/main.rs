//! The `mock` resource's multi-call binary: `/opt/resource/{check,in,out}` or
//! `mock-resource check|in DEST|out SRC`.

fn main() -> std::process::ExitCode {
    resource_protocol::run(&mock_resource::MockResource)
}
