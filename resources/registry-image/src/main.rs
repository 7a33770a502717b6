//! The `registry-image` resource's multi-call binary: `/opt/resource/{check,in,out}` or
//! `registry-image-resource check|in DEST|out SRC`.

fn main() -> std::process::ExitCode {
    resource_protocol::run(&registry_image_resource::RegistryImageResource)
}
