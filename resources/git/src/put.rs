//! `out`: push a repository from the build's artifacts to `source.uri`.
//!
//! Mirrors the official resource's `assets/out`: optional tag (lightweight or annotated, with a
//! prefix), push of HEAD to `<refs_prefix>/<branch>`, notes, and on a non-fast-forward
//! rejection either an error that says so, or a fetch + rebase/merge and another try. It never
//! force-pushes unless `params.force` says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use git2::{ErrorCode, MergeOptions, Oid, Repository, Signature};
use resource_protocol::{InvalidRequest, NotImplemented, Response};

use crate::config::{PutParams, Source, apply_git_config};
use crate::metadata::commit_metadata;
use crate::transport::{Auth, describe_git_error, redact_url};

/// How many times a rejected push is retried after a rebase or merge.
const MAX_PUSH_ATTEMPTS: usize = 20;

/// What a push attempt came to.
enum PushOutcome {
    Pushed,
    /// The remote moved: a rebase or merge may help.
    Rejected(String),
}

/// Runs `out`.
pub fn put(source: &Source, params: &PutParams, src: &Path) -> anyhow::Result<Response> {
    source.validate()?;
    let auth = Auth::from_source(source);
    auth.validate()?;
    let repository = params
        .repository
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            InvalidRequest::new("params.repository: required (a directory in the put's inputs)")
        })?;
    let only_tag = params.only_tag.unwrap_or(false);
    let branch = params
        .branch
        .as_deref()
        .or(source.branch.as_deref())
        .map(str::trim)
        .filter(|b| !b.is_empty());
    if branch.is_none() && !only_tag {
        return Err(InvalidRequest::new(
            "source.branch: required to push (or set params.branch, or params.only_tag)",
        )
        .into());
    }
    let rebase = params.rebase.unwrap_or(false);
    let merge = params.merge.unwrap_or(false);
    if rebase && merge {
        return Err(
            InvalidRequest::new("params.rebase and params.merge: set at most one of them").into(),
        );
    }
    let returning = params.returning.as_deref().unwrap_or("merged");
    if !matches!(returning, "merged" | "unmerged") {
        return Err(InvalidRequest::new(format!(
            "params.returning: {returning:?} is not one of merged, unmerged"
        ))
        .into());
    }
    if params
        .rebase_strategy
        .as_deref()
        .is_some_and(|s| !s.is_empty() && s != "ort" && s != "recursive")
    {
        return Err(NotImplemented::new("params.rebase_strategy other than ort/recursive").into());
    }
    let merge_options = strategy_options(params)?;
    let tag_name = match &params.tag {
        Some(file) => {
            let path = src.join(file);
            let name = std::fs::read_to_string(&path).map_err(|_| {
                InvalidRequest::new(format!("params.tag: tag file {file:?} does not exist"))
            })?;
            Some(format!(
                "{}{}",
                params.tag_prefix.as_deref().unwrap_or_default(),
                name.trim()
            ))
        }
        None => None,
    };
    let annotation = match &params.annotate {
        Some(file) => Some(std::fs::read_to_string(src.join(file)).map_err(|_| {
            InvalidRequest::new(format!(
                "params.annotate: annotation file {file:?} does not exist"
            ))
        })?),
        None => None,
    };
    let notes = match &params.notes {
        Some(file) => Some(std::fs::read_to_string(src.join(file)).map_err(|_| {
            InvalidRequest::new(format!("params.notes: notes file {file:?} does not exist"))
        })?),
        None => None,
    };
    let repo_dir: PathBuf = src.join(repository);
    let repo = Repository::open(&repo_dir).map_err(|err| {
        InvalidRequest::new(format!(
            "params.repository: {} is not a git repository: {}",
            repo_dir.display(),
            describe_git_error(&err)
        ))
    })?;
    apply_git_config(&repo, source)?;
    crate::transport::probe_reachable(source.uri.trim())?;
    if let Some(branch) = params.branch.as_deref() {
        tracing::info!(
            "override {} with {branch}",
            source.branch.as_deref().unwrap_or_default()
        );
    }
    let pusher = Pusher {
        repo: &repo,
        source,
        auth: &auth,
        force: params.force.unwrap_or(false),
        push_options: &params.push_options,
    };
    let commit_to_push = repo.head()?.peel_to_commit()?.id();
    let refs_prefix = params
        .refs_prefix
        .as_deref()
        .unwrap_or("refs/heads")
        .trim_end_matches('/');

    if only_tag {
        let tag_ref = create_tag(&repo, tag_name.as_deref(), annotation.as_deref())?;
        if let Some(tag_ref) = tag_ref {
            expect_pushed(pusher.push(&[tag_ref])?, branch.unwrap_or_default())?;
        }
    } else if let Some(branch) = branch {
        let target = format!("{refs_prefix}/{branch}");
        let mut attempts = 0;
        loop {
            attempts += 1;
            if merge {
                tracing::info!("merging...");
                reset_hard(&repo, commit_to_push)?;
                let upstream = pusher.fetch_branch(branch)?;
                merge_into_head(&repo, upstream, branch, source.uri.trim())?;
            } else if rebase {
                tracing::info!("rebasing onto {branch}...");
                let upstream = pusher.fetch_branch(branch)?;
                rebase_head(&repo, upstream, &merge_options)?;
            }
            let mut refspecs = vec![format!("HEAD:{target}")];
            if let Some(tag_ref) = create_tag(&repo, tag_name.as_deref(), annotation.as_deref())? {
                refspecs.push(tag_ref);
            }
            match pusher.push(&refspecs)? {
                PushOutcome::Pushed => break,
                PushOutcome::Rejected(reason)
                    if (rebase || merge) && attempts < MAX_PUSH_ATTEMPTS =>
                {
                    tracing::info!(
                        "push rejected ({reason}); {} and trying again...",
                        if rebase { "rebasing" } else { "merging" }
                    );
                }
                PushOutcome::Rejected(reason) => {
                    bail!(
                        "push to {target} of {} rejected: {reason} (non-fast-forward: the branch moved; set params.rebase or params.merge to retry on top of it, or params.force to overwrite)",
                        redact_url(source.uri.trim())
                    );
                }
            }
        }
        if let Some(notes) = &notes {
            add_and_push_notes(&repo, &pusher, notes)?;
        }
        tracing::info!("pushed");
    }

    let head = repo.head()?.peel_to_commit()?;
    let version_ref = if merge && returning == "unmerged" {
        commit_to_push
    } else {
        head.id()
    };
    let origin = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().map(str::to_owned));
    let metadata = commit_metadata(&repo, &head, origin.as_deref());
    let mut version = resource_protocol::wire::version([("ref", version_ref.to_string())]);
    if let Some(branch) = params.branch.as_deref().filter(|b| !b.is_empty()) {
        version.insert("branch".into(), branch.to_owned());
    }
    Ok(Response { version, metadata })
}

fn expect_pushed(outcome: PushOutcome, what: &str) -> anyhow::Result<()> {
    match outcome {
        PushOutcome::Pushed => Ok(()),
        PushOutcome::Rejected(reason) => bail!("push rejected: {reason} {what}"),
    }
}

/// The signature for tags, notes and merge commits: the repository's configured identity, or
/// a neutral one (a build has no human behind it).
fn signature(repo: &Repository) -> anyhow::Result<Signature<'static>> {
    match repo.signature() {
        Ok(sig) => Ok(sig.to_owned()),
        Err(_) => Ok(Signature::now("git-resource", "git-resource@localhost")?),
    }
}

/// `rebase_strategy_option` (`git pull -X…`) as libgit2 merge options.
#[derive(Debug, Clone, Default)]
struct StrategyOptions {
    favor: Option<git2::FileFavor>,
    ignore_space_change: bool,
    ignore_all_space: bool,
    ignore_space_at_eol: bool,
    patience: bool,
}

impl StrategyOptions {
    fn apply(&self, options: &mut MergeOptions) {
        if let Some(favor) = self.favor {
            options.file_favor(favor);
        }
        options
            .ignore_whitespace_change(self.ignore_space_change)
            .ignore_whitespace(self.ignore_all_space)
            .ignore_whitespace_eol(self.ignore_space_at_eol)
            .patience(self.patience);
    }
}

fn strategy_options(params: &PutParams) -> Result<StrategyOptions, InvalidRequest> {
    let mut options = StrategyOptions::default();
    let words = params
        .rebase_strategy_option
        .as_ref()
        .map(crate::config::StringOrList::words)
        .unwrap_or_default();
    for word in words {
        match word.trim_start_matches("-X") {
            "ours" => options.favor = Some(git2::FileFavor::Ours),
            "theirs" => options.favor = Some(git2::FileFavor::Theirs),
            "ignore-space-change" => options.ignore_space_change = true,
            "ignore-all-space" => options.ignore_all_space = true,
            "ignore-space-at-eol" => options.ignore_space_at_eol = true,
            "patience" | "diff-algorithm=patience" => options.patience = true,
            other => {
                return Err(InvalidRequest::new(format!(
                    "params.rebase_strategy_option: {other:?} is not supported (use ours, theirs, ignore-space-change, ignore-all-space, ignore-space-at-eol, patience)"
                )));
            }
        }
    }
    Ok(options)
}

/// Creates (or moves) the tag on HEAD; returns its refspec for the push.
fn create_tag(
    repo: &Repository,
    name: Option<&str>,
    annotation: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let head = repo.head()?.peel(git2::ObjectType::Commit)?;
    match annotation {
        Some(message) => {
            repo.tag(name, &head, &signature(repo)?, message, true)?;
        }
        None => {
            repo.tag_lightweight(name, &head, true)?;
        }
    }
    Ok(Some(format!("refs/tags/{name}:refs/tags/{name}")))
}

fn reset_hard(repo: &Repository, oid: Oid) -> anyhow::Result<()> {
    let object = repo.find_object(oid, None)?;
    repo.reset(&object, git2::ResetType::Hard, None)?;
    Ok(())
}

/// `git pull --no-edit <uri> <branch>`: fast-forward, or a merge commit with both parents.
fn merge_into_head(
    repo: &Repository,
    upstream: Oid,
    branch: &str,
    uri: &str,
) -> anyhow::Result<()> {
    let head = repo.head()?.peel_to_commit()?;
    if head.id() == upstream || repo.graph_descendant_of(head.id(), upstream)? {
        return Ok(());
    }
    if repo.graph_descendant_of(upstream, head.id())? {
        repo.set_head_detached(upstream)?;
        return reset_hard(repo, upstream);
    }
    let theirs = repo.find_commit(upstream)?;
    let mut index = repo.merge_commits(&head, &theirs, Some(&MergeOptions::new()))?;
    if index.has_conflicts() {
        bail!(
            "merging {branch} of {} into the repository conflicts; resolve it in the build",
            redact_url(uri)
        );
    }
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;
    let sig = signature(repo)?;
    let message = format!("Merge branch '{branch}' of {}", redact_url(uri));
    let merged = repo.commit(None, &sig, &sig, &message, &tree, &[&head, &theirs])?;
    repo.set_head_detached(merged)?;
    reset_hard(repo, merged)
}

/// `git pull --rebase`: replays HEAD's commits missing upstream, oldest first, on top of
/// `upstream` by cherry-picking (merge commits against their first parent). Like git, a commit
/// that was empty to begin with is kept and one whose changes are already upstream is dropped.
fn rebase_head(repo: &Repository, upstream: Oid, strategy: &StrategyOptions) -> anyhow::Result<()> {
    let head = repo.head()?.peel_to_commit()?;
    if repo.graph_descendant_of(head.id(), upstream)? || head.id() == upstream {
        return Ok(());
    }
    let mut walk = repo.revwalk()?;
    walk.simplify_first_parent()?;
    walk.push(head.id())?;
    walk.hide(upstream)?;
    let mut commits: Vec<Oid> = walk.collect::<Result<_, _>>()?;
    commits.reverse();
    let sig = signature(repo)?;
    let mut onto = repo.find_commit(upstream)?;
    for oid in commits {
        let original = repo.find_commit(oid)?;
        let started_empty = original
            .parent(0)
            .map(|p| p.tree_id() == original.tree_id())
            .unwrap_or(false);
        let mut merge_options = MergeOptions::new();
        strategy.apply(&mut merge_options);
        let mainline = if original.parent_count() > 1 { 1 } else { 0 };
        let mut index = repo.cherrypick_commit(&original, &onto, mainline, Some(&merge_options))?;
        if index.has_conflicts() {
            bail!(
                "rebasing commit {oid} onto the remote branch conflicts; resolve it in the build"
            );
        }
        let tree = repo.find_tree(index.write_tree_to(repo)?)?;
        if tree.id() == onto.tree_id() && !started_empty {
            tracing::info!("dropping {oid}: its changes are already upstream");
            continue;
        }
        let message = crate::metadata::commit_message(&original);
        let new = repo.commit(None, &original.author(), &sig, &message, &tree, &[&onto])?;
        onto = repo.find_commit(new)?;
    }
    let last = onto.id();
    repo.set_head_detached(last)?;
    reset_hard(repo, last)?;
    Ok(())
}

fn add_and_push_notes(repo: &Repository, pusher: &Pusher<'_>, notes: &str) -> anyhow::Result<()> {
    let head = repo.head()?.peel_to_commit()?.id();
    let sig = signature(repo)?;
    repo.note(&sig, &sig, None, head, notes, true)?;
    let mut refspecs = Vec::new();
    for reference in repo.references_glob("refs/notes/*")? {
        if let Some(name) = reference?.name() {
            refspecs.push(format!("{name}:{name}"));
        }
    }
    expect_pushed(pusher.push(&refspecs)?, "(notes)")
}

/// Pushes and fetches against `source.uri`.
struct Pusher<'a> {
    repo: &'a Repository,
    source: &'a Source,
    auth: &'a Auth,
    force: bool,
    push_options: &'a [String],
}

impl Pusher<'_> {
    fn uri(&self) -> &str {
        self.source.uri.trim()
    }

    /// Fetches the remote branch (and notes) and returns its tip.
    fn fetch_branch(&self, branch: &str) -> anyhow::Result<Oid> {
        let tracking = format!("refs/remotes/push-target/{branch}");
        let spec = format!("+refs/heads/{branch}:{tracking}");
        let mut remote = self.repo.remote_anonymous(self.uri())?;
        let mut options = self.auth.fetch_options();
        remote
            .fetch(
                &[spec.as_str(), "+refs/notes/*:refs/notes/*"],
                Some(&mut options),
                None,
            )
            .map_err(|err| {
                anyhow::anyhow!(
                    "fetching {branch} from {}: {}",
                    redact_url(self.uri()),
                    describe_git_error(&err)
                )
            })?;
        self.repo
            .refname_to_id(&tracking)
            .with_context(|| format!("branch {branch:?} not found in {}", redact_url(self.uri())))
    }

    fn push(&self, refspecs: &[String]) -> anyhow::Result<PushOutcome> {
        let specs: Vec<String> = refspecs
            .iter()
            .map(|s| {
                if self.force {
                    format!("+{s}")
                } else {
                    s.clone()
                }
            })
            .collect();
        let mut remote = self.repo.remote_anonymous(self.uri())?;
        let rejected = std::cell::RefCell::new(Vec::new());
        let mut callbacks = self.auth.callbacks();
        callbacks.push_update_reference(|name, status| {
            if let Some(status) = status {
                rejected.borrow_mut().push(format!("{name}: {status}"));
            }
            Ok(())
        });
        let force = self.force;
        callbacks.push_negotiation(move |updates| {
            // Like git, never move an existing tag on the remote without force.
            for update in updates {
                let name = update.dst_refname().unwrap_or_default();
                if !force
                    && name.starts_with("refs/tags/")
                    && !update.src().is_zero()
                    && update.src() != update.dst()
                {
                    return Err(git2::Error::from_str(&format!(
                        "tag {} already exists on the remote at another commit (set params.force to move it)",
                        name.trim_start_matches("refs/tags/")
                    )));
                }
            }
            Ok(())
        });
        let mut options = git2::PushOptions::new();
        options.proxy_options(crate::transport::proxy());
        options.remote_callbacks(callbacks);
        let push_options: Vec<&str> = self.push_options.iter().map(String::as_str).collect();
        if !push_options.is_empty() {
            options.remote_push_options(&push_options);
        }
        tracing::info!("pushing {} to {}", specs.join(" "), redact_url(self.uri()));
        match remote.push(&specs, Some(&mut options)) {
            Ok(()) => {}
            Err(err) if err.code() == ErrorCode::NotFastForward => {
                return Ok(PushOutcome::Rejected(describe_git_error(&err)));
            }
            Err(err) => bail!(
                "pushing to {}: {}",
                redact_url(self.uri()),
                describe_git_error(&err)
            ),
        }
        drop(options);
        let rejected = rejected.into_inner();
        if rejected.is_empty() {
            return Ok(PushOutcome::Pushed);
        }
        let reason = rejected.join("; ");
        if reason.contains("non-fast-forward")
            || reason.contains("fetch first")
            || reason.contains("cannot lock ref")
        {
            Ok(PushOutcome::Rejected(reason))
        } else {
            bail!(
                "push to {} rejected by the server: {reason}",
                redact_url(self.uri())
            )
        }
    }
}
