//! `testbed`: the real servers and fixtures Tributary's tests run against.
//!
//! Every server starts on `127.0.0.1` with a free port in its own temp dir and is stopped when
//! its handle drops. A missing program is a test failure naming the Debian package to install,
//! never a skip. Fixtures (for APIs nobody ships a server for) mimic the real API's shapes; they
//! are never mocks of our own code.
//!
//! # What is here
//!
//! | Need | Start with | Reach it with |
//! |---|---|---|
//! | OCI registry (distribution 2.8.2) | [`registry::Registry::start`] with [`registry::RegistryAuth`] `None`, `Basic`, `Tls`, `TlsBasic`, `Bearer`, `TlsBearer` | `host()`, `base_url()`, `ca_cert_pem()`, `cert_dir()`, `credentials()`, `skopeo_args("dest")` |
//! | Bearer tokens (Docker token spec) | started by `Registry` in `Bearer` mode | `token_server().realm()`, `.requests()` |
//! | Test images | [`oci::OciLayout::build`], [`oci::OciLayout::build_multi_arch`] | [`oci::push`], [`oci::push_as`] (Docker v2s2), [`oci::push_image`], [`oci::inspect_digest`], [`oci::inspect_raw`], `Registry::tag_in_storage` (10,000 tags in a blink) |
//! | git repos and histories | [`git::init_bare`], [`git::commit`], [`git::commit_files`], [`git::fast_import_history`] | [`git::git`], [`git::git_command`] (hermetic) |
//! | `git://` | [`git::GitDaemon::start`] | `url_for("r.git")` |
//! | `ssh://` | [`git::Sshd::start`] (four client keys) | `ssh_url(path)`, `key.git_env()`, `known_hosts_line()` |
//! | smart HTTP with Basic auth | [`git::GitHttp::start`], `start_tls` | `url_for`, `url_with_credentials`, `credentials()`, `ca_cert_pem()` |
//! | Git LFS (batch API) | [`git::LfsServer::start`] (optional Basic auth) | `lfs_url(repo)` for `.lfsconfig`, `store(content)` → pointer text, `object(oid)`, `batches()` |
//! | signed commits and tags | [`gpg::GpgKey::generate`], [`gpg::commit_signed`], [`gpg::tag_signed`] | `fingerprint`, `key_id`, `public_armored` |
//! | HKP keyserver | [`gpg::Keyserver::start`] | `hkp_url()`, `http_url()` |
//! | writable Nix binary cache | [`nix::WebDavCache::start`], `start_with_basic_auth` | `url()`, `root()` |
//! | Nix store paths and keys | [`nix::NixEnv`] (fresh `XDG_CACHE_HOME`) | `build_input_addressed`, `add_file_to_store`, [`nix::generate_key`], `copy_to_cache`, `copy_from_cache`, `verify_in_cache` |
//! | HTTP proxy (CONNECT tunnels, forwarding) | [`proxy::HttpProxy::start`] (optional Basic proxy auth) | `url()`, `addr()`, `requests()` |
//! | Docker daemon (dockerd 20.10, `vfs`, no network) | [`docker::Docker::start`] | `host()`, `env()`, `docker(args)`, `docker_with_stdin`, `inspect(image)` |
//! | any other nginx site | [`nginx::Nginx::start`], `start_tls` | `addr()` |
//! | a CA and server certificate | [`tls::generate_ca`] | `ca_cert_pem`, `cert_dir`, `server_cert`, `server_key` |
//! | your own in-process HTTP fixture | [`http_fixture::HttpFixture::serve`] (an axum `Router`) | `addr()`, `url()` |
//! | your own server process | [`tools::ServerProcess`], [`tools::retry_start`] | `wait_listening`, `log_tail` |
//! | programs and temp dirs | [`tools::require`] (panics with the apt package), [`tools::temp_dir`], [`tools::fast_temp_dir`] (tmpfs), [`tools::run`] | |
//! | bad-input conformance | [`bad_input::assert_rejects_bad_input`] | |
//! | workspace binaries built and copied once per build | [`built::ensure_built`], [`built::shared_dir`], [`built::copy_binary`] | [`built::target_dir`] |
//! | running a resource binary with a request | [`resource_cli::ResourceCli::new`] (env, timeout), [`resource_cli::run`] | [`resource_cli::Run`]: `code`, `stdout` (JSON), `stdout_text`, `stderr`, `json()`, `versions_of`, `failed_with` |
//!
//! ```no_run
//! use testbed::registry::{Registry, RegistryAuth};
//! use testbed::oci::{ImageSpec, OciLayout, push};
//!
//! let registry = Registry::start(RegistryAuth::bearer("user", "pass"));
//! let layout = OciLayout::new();
//! layout.build("t", &ImageSpec::default()); // busybox, amd64/linux
//! let digest = push(&layout.reference("t"), &registry, "library/busybox:latest");
//! ```
//!
//! # Rules the servers follow
//!
//! - Processes are spawned with [`resource_protocol::process::command`], each server in its own
//!   process group: dropping the handle SIGKILLs the group (workers, per-connection forks), and a
//!   watchdog does the same if the test process dies without dropping it (e.g. a timeout).
//! - Ports come from [`tools::free_port`]; a server that fails to come up (usually another test
//!   took the port) is retried with a new port, then the test panics with the server's log tail.
//! - Nothing reads the machine's configuration: git runs with `GIT_CONFIG_NOSYSTEM=1` and a
//!   testbed `HOME`; nginx writes pid, logs and temp files into its temp dir; Nix commands get a
//!   fresh `XDG_CACHE_HOME` (Nix caches narinfo lookups per URL there).
//! - Servers are tied to the test process, not to the thread that started them; keeping one in a
//!   `static` leaks it until the process exits (nextest runs each test in its own process).

pub mod bad_input;
pub mod built;
pub mod docker;
pub mod fixtures;
pub mod git;
pub mod gpg;
pub mod http_fixture;
pub mod nginx;
pub mod nix;
pub mod oci;
pub mod proxy;
pub mod registry;
pub mod resource_cli;
pub mod tls;
pub mod tools;
