//! `git-resource`: the Concourse git resource (check, in, out) on libgit2.
//!
//! Contract: `shared/spec/git.md`, a drop-in for concourse/git-resource. libgit2 is vendored and
//! statically linked, so the binary needs no git CLI at run time. Modules: `config` (the
//! `source`/`params` types), `transport` (credentials, TLS, redaction), `filter` (which commits
//! and tags count), `check`, `get` (`in`), `put` (`out`) and `metadata` (the `.git/` files and
//! metadata entries both `in` and `out` report), `signature` (GPG), `lfs` (LFS batch API) and
//! `tunnel` (`https_tunnel`), `daemon` (the `git://` transport, replacing libgit2's own).
//!
//! # Where we differ from concourse/git-resource
//!
//! - Credentials go to libgit2 callbacks, never to `~/.netrc`, `~/.ssh` or an ssh-agent;
//!   `forward_agent` is accepted and has no effect. SSH host keys are accepted (as the
//!   official resource's `StrictHostKeyChecking no`).
//! - The check cache is one bare repository per uri, branch and mode under
//!   `$TMPDIR/git-resource-repo-cache/<key>`. Over the network a new cache starts shallow
//!   (`version_depth` + 20 commits) and fetches the rest only when the walk reaches the
//!   boundary; later checks list the refs and fetch only new objects, on one connection.
//!   Once the cache holds more than 16 packs (one per incremental fetch), the small ones are
//!   merged into one (the official resource's `git gc --auto`).
//! - Local paths and `file://` are read by libgit2 directly: `params.depth` is ignored there
//!   (never shallow), and every object of the remote is copied.
//! - `out` pushes the tag it creates, not every local tag (`git push --tags`), and never moves
//!   an existing remote tag without `force`.
//! - `timestamp_format`: iso8601, iso-strict, rfc, short, raw, unix, default and `format:…`;
//!   `describe_ref_options`: --always, --tags, --all, --long, --first-parent, --dirty,
//!   --broken, --abbrev, --match. Anything else is an error naming the field.
//! - `rebase_strategy_option`: ours, theirs, ignore-space-change, ignore-all-space,
//!   ignore-space-at-eol, patience.
//! - Kept as the official resource has them: `.git/committer` holds the author's email, and
//!   the `committer`/`committer_date` metadata appear only when they equal the author's.
//! - git-crypt needs the `git-crypt` program and GPG verification the `gpg` program; without
//!   them the error says so. LFS needs no program.
//!
//! # Trying it by hand
//!
//! Pipe a request into the binary; the answer is the only thing on stdout, logs go to stderr:
//!
//! ```sh
//! # the newest commit of a branch
//! echo '{"source":{"uri":"https://github.com/concourse/git-resource.git","branch":"master"}}' \
//!   | git-resource check
//! # every commit since a known one (inclusive), oldest first, touching only assets/
//! echo '{"source":{"uri":"https://github.com/concourse/git-resource.git","branch":"master",
//!        "paths":["assets/*"]},"version":{"ref":"<sha>"}}' | git-resource check
//! # fetch one of them into ./checkout
//! echo '{"source":{"uri":"https://github.com/concourse/git-resource.git"},
//!        "version":{"ref":"<sha>"},"params":{"depth":1}}' | git-resource in ./checkout
//! ```
//!
//! `check` keeps its cache under `$TMPDIR/git-resource-repo-cache/`; a second run fetches only
//! what is new.

pub mod check;
pub mod config;
pub mod daemon;
pub mod filter;
pub mod get;
pub mod lfs;
pub mod metadata;
pub mod put;
pub mod signature;
pub mod transport;
pub mod tunnel;

use std::path::Path;

use resource_protocol::{CheckRequest, InRequest, OutRequest, Resource, Response, Version};

pub use config::{GetParams, PutParams, Source};

/// The git resource type.
#[derive(Debug, Default, Clone, Copy)]
pub struct GitResource;

impl Resource for GitResource {
    const NAME: &'static str = "git";
    type Source = Source;
    type GetParams = GetParams;
    type PutParams = PutParams;

    fn check(&self, request: CheckRequest<Source>) -> anyhow::Result<Vec<Version>> {
        transport::configure_libgit2_for_check(&request.source.uri);
        request.source.validate()?;
        let source = tunnel::route(&request.source)?;
        log_debug(&source);
        check::check(&source, request.version.as_ref())
    }

    fn get(&self, request: InRequest<Source, GetParams>, dest: &Path) -> anyhow::Result<Response> {
        transport::configure_libgit2();
        request.source.validate()?;
        let source = tunnel::route(&request.source)?;
        log_debug(&source);
        get::get(&source, &request.version, &request.params, dest)
    }

    fn put(&self, request: OutRequest<Source, PutParams>, src: &Path) -> anyhow::Result<Response> {
        transport::configure_libgit2();
        request.source.validate()?;
        let source = tunnel::route(&request.source)?;
        log_debug(&source);
        put::put(&source, &request.params, src)
    }
}

/// `source.debug`: show the parsed configuration (secrets print as `<redacted>`) and the cache.
fn log_debug(source: &Source) {
    if source.debug.unwrap_or(false) {
        tracing::info!("debug mode enabled: {source:?}");
        tracing::info!(
            "check cache: {}",
            check::cache_dir(
                source,
                source.tag_filter.is_some() || source.tag_regex.is_some()
            )
            .display()
        );
    }
}
