//! The `git` resource's multi-call binary: `/opt/resource/{check,in,out}` or
//! `git-resource check|in DEST|out SRC`.

fn main() -> std::process::ExitCode {
    resource_protocol::run(&git_resource::GitResource)
}
