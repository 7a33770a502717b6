//! The `time` resource's multi-call binary: `/opt/resource/{check,in,out}` or
//! `time-resource check|in DEST|out SRC`.

fn main() -> std::process::ExitCode {
    resource_protocol::run(&time_resource::TimeResource)
}
