//! `in`: clone the repository into DEST and check out the requested version.
//!
//! Mirrors the official resource's `assets/in`: a single-branch clone (all branches on request),
//! shallow with deepening until the ref is found, notes, submodules, sparse paths, then the
//! `.git/` files and metadata. Everything goes through libgit2; no git CLI is needed. A ref that
//! is not on the fetched branch is an error that says so, never a silent checkout of another
//! commit.

use std::path::Path;

use anyhow::{Context, bail};
use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, DescribeFormatOptions, DescribeOptions, FetchOptions, Oid, Repository,
    SubmoduleUpdateOptions,
};
use resource_protocol::{InvalidRequest, Response, Version};

use crate::check::{FetchSpec, RemoteRefs, connect, fetch_connected};
use crate::config::{GetParams, Source, apply_git_config};
use crate::metadata::{DateFormat, GitFiles, commit_metadata, write_git_files};
use crate::transport::{Auth, describe_git_error, redact_url};

/// Depth past which deepening gives up and fetches the whole history, as the official resource.
const MAX_DEEPEN_DEPTH: i32 = 127;

/// libgit2's "fetch everything" depth (`GIT_FETCH_DEPTH_UNSHALLOW`).
const UNSHALLOW: i32 = i32::MAX;

/// Which submodules to update.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Submodules {
    All,
    None,
    Paths(Vec<String>),
}

fn parse_submodules(value: Option<&serde_json::Value>) -> Result<Submodules, InvalidRequest> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(Submodules::All),
        Some(serde_json::Value::String(s)) if s == "all" => Ok(Submodules::All),
        Some(serde_json::Value::String(s)) if s == "none" => Ok(Submodules::None),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(|s| s.trim_end_matches('/').to_owned()))
            .collect::<Option<Vec<_>>>()
            .map(Submodules::Paths)
            .ok_or_else(|| InvalidRequest::new("params.submodules: list entries must be strings")),
        Some(_) => Err(InvalidRequest::new(
            "params.submodules: expected \"all\", \"none\" or a list of paths",
        )),
    }
}

/// Everything `in` needs, resolved from the request.
struct Plan<'a> {
    source: &'a Source,
    params: &'a GetParams,
    auth: Auth,
    reference: String,
    branch_override: Option<String>,
    depth: i32,
    /// `params.depth` for submodules (each decides by its own URL whether it can be shallow).
    submodule_depth: i32,
    tags: AutotagOption,
    submodules: Submodules,
    timestamp_format: DateFormat,
}

/// Runs `in`.
pub fn get(
    source: &Source,
    version: &Version,
    params: &GetParams,
    dest: &Path,
) -> anyhow::Result<Response> {
    source.validate()?;
    let auth = Auth::from_source(source);
    auth.validate()?;
    let tag_mode = source
        .tag_filter
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty())
        || source
            .tag_regex
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty());
    let fetch_tags = params.fetch_tags.or(source.fetch_tags);
    let tags = match fetch_tags {
        Some(false) => AutotagOption::None,
        Some(true) => AutotagOption::All,
        None if tag_mode => AutotagOption::All,
        None => AutotagOption::Auto,
    };
    let depth = i32::try_from(params.depth.unwrap_or(0))
        .map_err(|_| InvalidRequest::new("params.depth: too large"))?;
    let submodule_depth = depth;
    let depth = if depth > 0 && !crate::transport::is_network(source.uri.trim()) {
        tracing::info!(
            "params.depth: ignored for a local repository (read directly, never shallow)"
        );
        0
    } else {
        depth
    };
    let plan = Plan {
        source,
        params,
        auth,
        reference: version
            .get("ref")
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "HEAD".to_owned()),
        branch_override: version.get("branch").cloned().filter(|b| !b.is_empty()),
        depth,
        submodule_depth,
        tags,
        submodules: parse_submodules(params.submodules.as_ref())?,
        timestamp_format: DateFormat::parse(
            params.timestamp_format.as_deref().unwrap_or("iso8601"),
        )?,
    };
    let describe_options = parse_describe_options(
        params
            .describe_ref_options
            .as_deref()
            .unwrap_or("--always --dirty --broken"),
    )?;
    clone(&plan, dest, &describe_options)
}

fn clone(plan: &Plan<'_>, dest: &Path, describe: &DescribeSpec) -> anyhow::Result<Response> {
    let source = plan.source;
    let uri = source.uri.trim();
    let repo = Repository::init(dest).map_err(|err| {
        anyhow::anyhow!(
            "creating a repository in {}: {}",
            dest.display(),
            describe_git_error(&err)
        )
    })?;
    apply_git_config(&repo, source)?;
    crate::transport::probe_reachable(uri)?;
    // A destination left over from an earlier attempt already has an origin: point it here.
    if repo.find_remote("origin").is_ok() {
        repo.remote_set_url("origin", uri)?;
    }
    let mut origin = repo
        .find_remote("origin")
        .or_else(|_| repo.remote("origin", uri))
        .map_err(|err| {
            anyhow::anyhow!(
                "source.uri: {}: {}",
                redact_url(uri),
                describe_git_error(&err)
            )
        })?;
    let (mut connection, remote_refs) = connect(&mut origin, &plan.auth, uri)?;
    let branch = match &plan.branch_override {
        Some(branch) => {
            tracing::info!(
                "override {} with {branch}",
                source.branch.as_deref().unwrap_or_default()
            );
            Some(branch.clone())
        }
        None => remote_refs.tracked_branch(source),
    };
    let Some(branch) = branch else {
        bail!("source.uri: {} has no branches to clone", redact_url(uri));
    };
    let all_branches = plan.params.all_branches.unwrap_or(false);
    let fetch_spec = if all_branches {
        "+refs/heads/*:refs/remotes/origin/*".to_owned()
    } else {
        format!("+refs/heads/{branch}:refs/remotes/origin/{branch}")
    };
    repo.config()?.set_str("remote.origin.fetch", &fetch_spec)?;
    let sparse = sparse_patterns(source);
    if let Some(patterns) = &sparse {
        let mut config = repo.config()?;
        config.set_bool("core.sparseCheckout", true)?;
        let info = dest.join(".git/info");
        std::fs::create_dir_all(&info)?;
        std::fs::write(
            info.join("sparse-checkout"),
            format!("{}\n", patterns.join("\n")),
        )?;
    }
    tracing::info!("cloning {} (branch {branch})", redact_url(uri));
    let refspecs = [fetch_spec.as_str(), "+refs/notes/*:refs/notes/*"];
    let spec = FetchSpec {
        refspecs: &refspecs,
        prune: false,
        depth: plan.depth,
        tags: plan.tags,
    };
    fetch_connected(&mut connection, &plan.auth, uri, spec)
        .with_context(|| format!("cloning {}", redact_url(uri)))?;
    drop(connection);

    // A local branch at the remote tip, as `git clone --branch` leaves it.
    let tracking = format!("refs/remotes/origin/{branch}");
    let tip = repo.refname_to_id(&tracking).with_context(|| {
        format!(
            "source.branch: branch {branch:?} not found in {}",
            redact_url(uri)
        )
    })?;
    {
        let tip_commit = repo.find_commit(tip)?;
        let mut local = repo.branch(&branch, &tip_commit, true)?;
        local.set_upstream(Some(&format!("origin/{branch}")))?;
    }
    repo.set_head(&format!("refs/heads/{branch}"))?;

    let target = resolve_reference(plan, &repo, &remote_refs, &branch, &refspecs)?;
    crate::signature::verify_commit(&repo, target, source)?;
    checkout(&repo, target, &plan.reference, sparse.as_deref())?;
    let commit = repo.find_commit(target)?;
    tracing::info!(
        "{} {}",
        &target.to_string()[..7],
        commit.summary().unwrap_or_default()
    );

    if source.git_crypt_key.is_some() {
        unlock_git_crypt(plan, dest)?;
    }
    update_submodules(plan, &repo, plan.submodule_depth)?;
    if !plan.params.disable_git_lfs.unwrap_or(false) {
        let remote_url = source.original_uri.as_deref().unwrap_or(uri);
        crate::lfs::smudge(&repo, dest, remote_url, &plan.auth)?;
    }

    for extra in &plan.params.fetch {
        let spec = format!("+refs/heads/{extra}:refs/remotes/origin/{extra}");
        fetch_origin(&repo, &plan.auth, &[spec.as_str()], 0, AutotagOption::Auto)
            .with_context(|| format!("params.fetch: fetching branch {extra:?}"))?;
        if repo.find_branch(extra, git2::BranchType::Local).is_err() {
            let oid = repo.refname_to_id(&format!("refs/remotes/origin/{extra}"))?;
            repo.branch(extra, &repo.find_commit(oid)?, false)?;
        }
    }

    let returned_ref = if plan.reference == "HEAD" {
        target.to_string()
    } else {
        plan.reference.clone()
    };
    let shown_uri = source.original_uri.as_deref().unwrap_or(uri);
    if source.original_uri.is_some() {
        repo.remote_set_url("origin", shown_uri)?;
    }
    let metadata = commit_metadata(&repo, &commit, Some(shown_uri));
    let describe_ref = describe.run(&repo);
    write_git_files(
        &dest.join(".git"),
        &commit,
        &metadata,
        &GitFiles {
            returned_ref: &returned_ref,
            short_ref_format: plan.params.short_ref_format.as_deref().unwrap_or("%s"),
            timestamp_format: &plan.timestamp_format,
            describe_ref: &describe_ref,
        },
    )?;
    if plan.params.clean_tags.unwrap_or(false) {
        for name in repo.tag_names(None)?.iter().flatten() {
            repo.tag_delete(name)?;
        }
    }
    Ok(Response {
        version: resource_protocol::wire::version([("ref", returned_ref)]),
        metadata,
    })
}

/// Fetches `refspecs` from `origin`, shallow when `depth > 0`.
fn fetch_origin(
    repo: &Repository,
    auth: &Auth,
    refspecs: &[&str],
    depth: i32,
    tags: AutotagOption,
) -> anyhow::Result<()> {
    let mut remote = repo.find_remote("origin")?;
    let mut options: FetchOptions<'_> = auth.fetch_options();
    options.download_tags(tags);
    if depth > 0 {
        options.depth(depth);
    }
    remote
        .fetch(refspecs, Some(&mut options), None)
        .map_err(|err| anyhow::anyhow!("{}", describe_git_error(&err)))
}

/// Finds the commit for the requested ref, deepening a shallow clone as the official resource
/// does, and searching the remote's other refs when `search_remote_refs` is set.
fn resolve_reference(
    plan: &Plan<'_>,
    repo: &Repository,
    remote_refs: &RemoteRefs,
    branch: &str,
    refspecs: &[&str],
) -> anyhow::Result<Oid> {
    let reference = plan.reference.as_str();
    if plan.depth > 0 {
        deepen_until_found(plan, repo, reference, refspecs)?;
    }
    if let Some(oid) = peel(repo, reference) {
        return Ok(oid);
    }
    if plan.source.search_remote_refs.unwrap_or(false) {
        let matching: Vec<String> = remote_refs
            .refs
            .iter()
            .filter(|(name, oid)| name.contains(reference) || oid.to_string().contains(reference))
            .map(|(name, _)| name.clone())
            .collect();
        if matching.is_empty() {
            tracing::warn!("couldn't find a ref for {reference} listed on the remote");
        } else {
            tracing::info!(
                "{reference} not found locally, but search_remote_refs is enabled: fetching {}",
                matching.join(", ")
            );
            let specs: Vec<&str> = matching.iter().map(String::as_str).collect();
            fetch_origin(repo, &plan.auth, &specs, 0, AutotagOption::None)?;
            if let Some(oid) = peel(repo, reference) {
                return Ok(oid);
            }
        }
    }
    bail!(
        "version.ref: {reference} not found on branch {branch:?} of {}: it may have been removed by a force-push",
        redact_url(plan.source.uri.trim())
    )
}

fn peel(repo: &Repository, reference: &str) -> Option<Oid> {
    repo.revparse_single(reference)
        .ok()?
        .peel_to_commit()
        .ok()
        .map(|c| c.id())
}

/// The official resource's `deepen_shallow_clone_until_ref_is_found_then_check_out`, with
/// the same log lines.
fn deepen_until_found(
    plan: &Plan<'_>,
    repo: &Repository,
    reference: &str,
    refspecs: &[&str],
) -> anyhow::Result<()> {
    deepen(repo, &plan.auth, refspecs, plan.depth, plan.tags, reference)
}

/// Deepens the shallow clone `repo` until `reference~(depth-1)` is there (see
/// [`deepen_until_found`]).
fn deepen(
    repo: &Repository,
    auth: &Auth,
    refspecs: &[&str],
    depth: i32,
    tags: AutotagOption,
    reference: &str,
) -> anyhow::Result<()> {
    let mut depth = depth;
    let mut total_depth = depth;
    let depth_from_ref = depth - 1;
    loop {
        let wanted = format!("{reference}~{depth_from_ref}");
        if repo.revparse_single(&wanted).is_ok() {
            return Ok(());
        }
        if !repo.is_shallow() {
            tracing::info!(
                "Reached max depth of the origin repo while deepening the shallow clone, it's a deep clone now"
            );
            return Ok(());
        }
        tracing::info!("Could not find ref {wanted} in a shallow clone of depth {total_depth}");
        depth = depth.saturating_mul(2);
        if total_depth >= MAX_DEEPEN_DEPTH {
            tracing::info!(
                "Reached depth threshold {MAX_DEEPEN_DEPTH}, falling back to deep clone..."
            );
            fetch_origin(repo, auth, refspecs, UNSHALLOW, tags)?;
            return Ok(());
        }
        tracing::info!("Deepening the shallow clone by an additional {depth}...");
        total_depth = total_depth.saturating_add(depth);
        fetch_origin(repo, auth, refspecs, total_depth, tags)?;
    }
}

/// Checks out `target` (detached, as `git checkout <sha>`; `HEAD` stays on the branch), writing
/// only `sparse` paths when set.
fn checkout(
    repo: &Repository,
    target: Oid,
    reference: &str,
    sparse: Option<&[String]>,
) -> anyhow::Result<()> {
    if reference != "HEAD" {
        repo.set_head_detached(target)?;
    }
    let mut builder = CheckoutBuilder::new();
    builder.force();
    if let Some(patterns) = sparse {
        for pattern in patterns {
            builder.path(pattern.trim_start_matches('/'));
        }
    }
    repo.checkout_head(Some(&mut builder))
        .map_err(|err| anyhow::anyhow!("checking out {reference}: {}", describe_git_error(&err)))?;
    if let Some(patterns) = sparse {
        mark_skip_worktree(repo, target, patterns)?;
    }
    Ok(())
}

fn sparse_patterns(source: &Source) -> Option<Vec<String>> {
    let patterns: Vec<String> = source
        .sparse_paths
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    (!patterns.is_empty() && patterns != ["."]).then_some(patterns)
}

/// Records the full tree in the index with the skip-worktree bit on paths outside `patterns`,
/// which is what git's sparse checkout leaves behind (so `git status` stays clean).
fn mark_skip_worktree(repo: &Repository, target: Oid, patterns: &[String]) -> anyhow::Result<()> {
    const SKIP_WORKTREE: u16 = 1 << 14;
    const EXTENDED: u16 = 0x4000;
    let source = Source {
        paths: patterns.to_vec(),
        ..Source::default()
    };
    let filter = crate::filter::PathFilter::from_source(&source)?;
    let tree = repo.find_commit(target)?.tree()?;
    let mut index = repo.index()?;
    index.read_tree(&tree)?;
    let entries: Vec<git2::IndexEntry> = index.iter().collect();
    for mut entry in entries {
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        if !filter.matches_path(&path) {
            entry.flags |= EXTENDED;
            entry.flags_extended |= SKIP_WORKTREE;
            index.add(&entry)?;
        }
    }
    index.write()?;
    Ok(())
}

fn unlock_git_crypt(plan: &Plan<'_>, dest: &Path) -> anyhow::Result<()> {
    use base64::Engine;
    let Some(key) = &plan.source.git_crypt_key else {
        return Ok(());
    };
    let compact: String = key.expose().split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| InvalidRequest::new("source.git_crypt_key: not valid base64"))?;
    let key_file = tempfile::NamedTempFile::new()?;
    std::fs::write(key_file.path(), bytes)?;
    tracing::info!("unlocking git repo");
    let mut command = resource_protocol::process::command("git-crypt", dest);
    command.arg("unlock").arg(key_file.path());
    resource_protocol::process::output_checked(&mut command).map_err(|err| match err {
        resource_protocol::process::ProcessError::Spawn { .. } => {
            anyhow::anyhow!("source.git_crypt_key: git-crypt is not installed, so the checkout cannot be unlocked")
        }
        other => anyhow::anyhow!("source.git_crypt_key: {other}"),
    })?;
    Ok(())
}

/// Initialises and updates submodules as `git submodule update --init [--recursive]`.
fn update_submodules(plan: &Plan<'_>, repo: &Repository, depth: i32) -> anyhow::Result<()> {
    if plan.submodules == Submodules::None {
        return Ok(());
    }
    let Some(workdir) = repo.workdir() else {
        return Ok(());
    };
    for mut submodule in repo.submodules()? {
        let path = submodule.path().to_string_lossy().into_owned();
        if let Submodules::Paths(wanted) = &plan.submodules
            && !wanted.iter().any(|w| w == &path)
        {
            continue;
        }
        if !workdir.join(&path).exists() {
            tracing::warn!("skipping missing submodule: {path}");
            continue;
        }
        let url = submodule.url().unwrap_or_default().to_owned();
        let depth = if crate::transport::is_network(&url) {
            depth
        } else {
            0
        };
        let auth = Auth::for_submodule(plan.source, &url);
        auth.validate()?;
        tracing::info!("updating submodule {path}");
        let mut fetch = auth.fetch_options();
        if depth > 0 {
            fetch.depth(depth);
        }
        let mut options = SubmoduleUpdateOptions::new();
        options.fetch(fetch);
        let updated = submodule.update(true, Some(&mut options));
        let sub_repo = match updated {
            Ok(()) => submodule.open()?,
            Err(err) => {
                let Some(recorded) = submodule.head_id() else {
                    bail!("submodule {path}: {}", describe_git_error(&err));
                };
                let Ok(sub_repo) = submodule.open() else {
                    bail!("submodule {path}: {}", describe_git_error(&err));
                };
                if depth > 0 {
                    // The recorded commit lies deeper than `depth`: deepen as for the
                    // repository itself.
                    let refspecs = ["+refs/heads/*:refs/remotes/origin/*"];
                    deepen(
                        &sub_repo,
                        &auth,
                        &refspecs,
                        depth,
                        AutotagOption::Auto,
                        &recorded.to_string(),
                    )?;
                } else {
                    fetch_origin(
                        &sub_repo,
                        &auth,
                        &["+refs/heads/*:refs/remotes/origin/*"],
                        0,
                        AutotagOption::Auto,
                    )?;
                }
                if sub_repo.find_commit(recorded).is_err() {
                    bail!(
                        "submodule {path}: commit {recorded} not found in {}",
                        redact_url(&url)
                    );
                }
                sub_repo.set_head_detached(recorded)?;
                sub_repo.checkout_head(Some(CheckoutBuilder::new().force()))?;
                sub_repo
            }
        };
        if plan.params.submodule_remote.unwrap_or(false) {
            follow_remote_branch(&sub_repo, &auth, &path)?;
        }
        if plan.params.submodule_recursive.unwrap_or(true) {
            update_submodules(plan, &sub_repo, depth)?;
        }
    }
    Ok(())
}

/// `git submodule update --remote`: check out the tip of the submodule's remote default branch.
fn follow_remote_branch(repo: &Repository, auth: &Auth, path: &str) -> anyhow::Result<()> {
    let mut remote = repo.find_remote("origin")?;
    let mut options = auth.fetch_options();
    remote
        .fetch(
            &["+refs/heads/*:refs/remotes/origin/*"],
            Some(&mut options),
            None,
        )
        .map_err(|err| anyhow::anyhow!("submodule {path}: {}", describe_git_error(&err)))?;
    let branch = remote
        .default_branch()
        .ok()
        .and_then(|b| b.as_str().map(str::to_owned))
        .unwrap_or_else(|| "refs/heads/master".to_owned());
    let tracking = branch.replacen("refs/heads/", "refs/remotes/origin/", 1);
    let oid = repo
        .refname_to_id(&tracking)
        .with_context(|| format!("submodule {path}: remote branch {branch} not found"))?;
    repo.set_head_detached(oid)?;
    repo.checkout_head(Some(CheckoutBuilder::new().force()))?;
    Ok(())
}

/// `git describe` options, from `params.describe_ref_options`.
#[derive(Debug, Clone, Default)]
struct DescribeSpec {
    always: bool,
    tags: bool,
    all: bool,
    long: bool,
    first_parent: bool,
    abbrev: Option<u32>,
    pattern: Option<String>,
    dirty: Option<String>,
}

fn parse_describe_options(options: &str) -> Result<DescribeSpec, InvalidRequest> {
    let mut spec = DescribeSpec::default();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let (flag, value) = match word.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (word, None),
        };
        match flag {
            "--always" => spec.always = true,
            "--tags" => spec.tags = true,
            "--all" => spec.all = true,
            "--long" => spec.long = true,
            "--first-parent" => spec.first_parent = true,
            "--dirty" | "--broken" => {
                if spec.dirty.is_none() || value.is_some() {
                    spec.dirty = Some(value.unwrap_or_else(|| "-dirty".to_owned()));
                }
            }
            "--abbrev" => {
                let value = value.unwrap_or_default();
                spec.abbrev = Some(value.parse().map_err(|_| {
                    InvalidRequest::new(format!(
                        "params.describe_ref_options: --abbrev={value} is not a number"
                    ))
                })?);
            }
            "--match" => spec.pattern = value.or_else(|| words.next().map(str::to_owned)),
            other => {
                return Err(InvalidRequest::new(format!(
                    "params.describe_ref_options: {other} is not supported (use --always, --tags, --all, --long, --first-parent, --dirty, --broken, --abbrev=N, --match)"
                )));
            }
        }
    }
    Ok(spec)
}

impl DescribeSpec {
    /// `git describe` of the work tree, or empty when nothing describes it.
    fn run(&self, repo: &Repository) -> String {
        let mut options = DescribeOptions::new();
        options.show_commit_oid_as_fallback(self.always);
        if self.tags {
            options.describe_tags();
        }
        if self.all {
            options.describe_all();
        }
        if self.first_parent {
            options.only_follow_first_parent(true);
        }
        if let Some(pattern) = &self.pattern {
            options.pattern(pattern);
        }
        let mut format = DescribeFormatOptions::new();
        format.always_use_long_format(self.long);
        if let Some(abbrev) = self.abbrev {
            format.abbreviated_size(abbrev);
        }
        if let Some(dirty) = &self.dirty {
            format.dirty_suffix(dirty);
        }
        repo.describe(&options)
            .and_then(|d| d.format(Some(&format)))
            .unwrap_or_default()
    }
}
