//! The `nix-cache` resource's multi-call binary: `/opt/resource/{check,in,out}` or
//! `nix-cache-resource check|in DEST|out SRC`.

fn main() -> std::process::ExitCode {
    resource_protocol::run(&nix_cache_resource::NixCacheResource)
}
