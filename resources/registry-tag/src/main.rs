//! The `registry-tag` resource's multi-call binary: `/opt/resource/{check,in,out}` or
//! `registry-tag-resource check|in DEST|out SRC`.

fn main() -> std::process::ExitCode {
    resource_protocol::run(&registry_tag_resource::RegistryTagResource)
}
