//! `check`: the versions of a branch (commit mode) or of matching tags (tag mode).
//!
//! A bare cache repository under `$TMPDIR/git-resource-repo-cache/<key>` survives between
//! checks. Each check lists the remote's refs once and fetches only when a ref moved to an
//! object the cache lacks, so an incremental check transfers only new objects. Versions are
//! computed from the cache by a first-parent walk, never by commit date.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use git2::{
    AutotagOption, Commit, Direction, FetchPrune, ObjectType, Oid, Remote, RemoteConnection,
    Repository, Sort,
};
use resource_protocol::Version;
use sha2::{Digest, Sha256};

use crate::config::Source;
use crate::filter::{MessageFilter, PathFilter, TagFilter};
use crate::transport::{Auth, describe_git_error, redact_url};

/// Commits fetched by a cold check beyond `version_depth`, so that a few skipped commits
/// (ci-skip, paths) do not force a second fetch.
const SHALLOW_MARGIN: usize = 20;

/// libgit2's "fetch everything" depth (`GIT_FETCH_DEPTH_UNSHALLOW`).
const UNSHALLOW: i32 = i32::MAX;

/// The settings of one check, resolved from `source`.
struct Filters {
    paths: PathFilter,
    messages: MessageFilter,
    depth: usize,
}

impl Filters {
    fn commit_counts(&self, repo: &Repository, commit: &Commit<'_>) -> anyhow::Result<bool> {
        if !self
            .messages
            .matches(&String::from_utf8_lossy(commit.message_bytes()))
        {
            return Ok(false);
        }
        Ok(self.paths.commit_matches(repo, commit)?)
    }
}

/// Runs `check`.
pub fn check(source: &Source, version: Option<&Version>) -> anyhow::Result<Vec<Version>> {
    source.validate()?;
    let auth = Auth::from_source(source);
    auth.validate()?;
    let tag_filter = TagFilter::from_source(source)?;
    let filters = Filters {
        paths: PathFilter::from_source(source)?,
        messages: MessageFilter::from_source(source)?,
        depth: usize::try_from(source.version_depth.unwrap_or(1)).unwrap_or(usize::MAX),
    };
    let cursor = version.and_then(|v| v.get("ref")).map(String::as_str);
    let tag_mode = tag_filter.is_some();
    let _lock = lock_cache(source, tag_mode)?;
    let versions = check_cached(source, &auth, tag_filter.as_ref(), &filters, cursor)?;
    // Each incremental fetch adds a pack: merge the small ones now and then, as `git gc
    // --auto` does for the official resource, so that lookups stay fast on a long-lived cache.
    let dir = cache_dir(source, tag_mode);
    if let Err(err) = consolidate_packs(&dir, MAX_PACKS) {
        tracing::warn!("merging the packs of {}: {err:#}", dir.display());
    }
    Ok(versions)
}

/// The body of [`check`], with the cache locked.
fn check_cached(
    source: &Source,
    auth: &Auth,
    tag_filter: Option<&TagFilter>,
    filters: &Filters,
    cursor: Option<&str>,
) -> anyhow::Result<Vec<Version>> {
    let repo = open_cache(source, tag_filter.is_some())?;
    crate::config::apply_git_config(&repo, source)?;
    let uri = source.uri.trim();
    let mut remote = open_remote(&repo, uri)?;
    let (mut connection, remote_refs) = connect(&mut remote, auth, uri)?;
    match tag_filter {
        None => {
            let shallow_depth =
                i32::try_from(filters.depth.saturating_add(SHALLOW_MARGIN)).unwrap_or(i32::MAX);
            let synced = sync_branch(
                &repo,
                source,
                auth,
                &mut connection,
                &remote_refs,
                shallow_depth,
            )?;
            drop(connection);
            let Some((branch, tip)) = synced else {
                return Ok(Vec::new());
            };
            tracing::debug!("branch {branch} is at {tip}");
            match commit_versions(&repo, tip, cursor, filters)? {
                Walk::Complete(versions) => Ok(versions),
                Walk::NeedsHistory => {
                    tracing::info!("fetching the rest of the history of {branch}");
                    let refname = format!("refs/heads/{branch}");
                    let spec = format!("+{refname}:{refname}");
                    let mut remote = open_remote(&repo, uri)?;
                    let (mut connection, _) = connect(&mut remote, auth, uri)?;
                    let refspecs = [spec.as_str()];
                    let mut fetch = branch_fetch(&refspecs);
                    fetch.depth = UNSHALLOW;
                    fetch_connected(&mut connection, auth, uri, fetch)?;
                    drop(connection);
                    drop(remote);
                    // libgit2 keeps the old shallow grafts in memory: read the cache afresh.
                    let repo = Repository::open_bare(repo.path())?;
                    match commit_versions(&repo, tip, cursor, filters)? {
                        Walk::Complete(versions) => Ok(versions),
                        Walk::NeedsHistory => {
                            anyhow::bail!(
                                "the cache of {} is still shallow after fetching the whole history",
                                redact_url(uri)
                            )
                        }
                    }
                }
            }
        }
        Some(tag_filter) => {
            sync_all(&repo, source, auth, &mut connection, &remote_refs)?;
            drop(connection);
            tag_versions(&repo, source, tag_filter, cursor, filters)
        }
    }
}

/// How many packs the cache may hold before the small ones are merged into one.
const MAX_PACKS: usize = 16;

/// Merges every pack of the bare repository at `dir` but the largest into one new pack when
/// there are more than `max` of them. Costs what the small packs hold (the objects fetched
/// since the last merge), never a repack of the whole history.
pub fn consolidate_packs(dir: &std::path::Path, max: usize) -> anyhow::Result<()> {
    let pack_dir = dir.join("objects/pack");
    let mut packs = Vec::new();
    for entry in std::fs::read_dir(&pack_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "idx") {
            let size = std::fs::metadata(path.with_extension("pack"))
                .map(|m| m.len())
                .unwrap_or(0);
            packs.push((size, path));
        }
    }
    if packs.len() <= max {
        return Ok(());
    }
    packs.sort();
    packs.pop(); // the largest stays as it is
    let repo = Repository::open_bare(dir)?;
    let mut builder = repo.packbuilder()?;
    for (_, idx) in &packs {
        for oid in pack_index_oids(&std::fs::read(idx)?)
            .with_context(|| format!("reading {}", idx.display()))?
        {
            builder.insert_object(oid, None)?;
        }
    }
    builder.write(&pack_dir, 0)?;
    let merged = builder
        .name()
        .map(|name| format!("pack-{name}.idx"))
        .unwrap_or_default();
    tracing::debug!(
        "merged {} packs into {merged} ({} objects)",
        packs.len(),
        builder.object_count()
    );
    for (_, idx) in &packs {
        if idx.file_name().is_some_and(|n| *n == *merged) {
            continue;
        }
        for ext in ["pack", "rev", "keep", "idx"] {
            let _ = std::fs::remove_file(idx.with_extension(ext));
        }
    }
    Ok(())
}

/// The object ids listed in a version 2 pack index (`.idx`).
fn pack_index_oids(idx: &[u8]) -> anyhow::Result<Vec<Oid>> {
    const HEADER: usize = 8 + 256 * 4;
    anyhow::ensure!(
        idx.len() >= HEADER && idx.starts_with(b"\xfftOc\0\0\0\x02"),
        "not a version 2 pack index"
    );
    let count = u32::from_be_bytes([
        idx[HEADER - 4],
        idx[HEADER - 3],
        idx[HEADER - 2],
        idx[HEADER - 1],
    ]) as usize;
    let ids = idx
        .get(HEADER..HEADER + count * 20)
        .context("truncated pack index")?;
    Ok(ids
        .chunks_exact(20)
        .filter_map(|id| Oid::from_bytes(id).ok())
        .collect())
}

/// The cache directory for this source: one bare repository per uri, branch and mode.
pub fn cache_dir(source: &Source, tag_mode: bool) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(
        source
            .original_uri
            .as_deref()
            .unwrap_or(&source.uri)
            .trim()
            .as_bytes(),
    );
    hasher.update([0]);
    hasher.update(
        source
            .branch
            .as_deref()
            .unwrap_or_default()
            .trim()
            .as_bytes(),
    );
    hasher.update([0, u8::from(tag_mode)]);
    let key = hex::encode(&hasher.finalize()[..12]);
    std::env::temp_dir()
        .join("git-resource-repo-cache")
        .join(key)
}

/// Serialises checks sharing a cache (an orchestrator may run them at once); released when
/// the returned file is dropped.
fn lock_cache(source: &Source, tag_mode: bool) -> anyhow::Result<std::fs::File> {
    let dir = cache_dir(source, tag_mode);
    let path = dir.with_extension("lock");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

fn open_cache(source: &Source, tag_mode: bool) -> anyhow::Result<Repository> {
    let dir = cache_dir(source, tag_mode);
    if dir.exists() {
        match Repository::open_bare(&dir) {
            Ok(repo) => return Ok(repo),
            Err(err) => {
                tracing::warn!(
                    "discarding unreadable cache {}: {}",
                    dir.display(),
                    describe_git_error(&err)
                );
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing cache {}", dir.display()))?;
            }
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating cache {}", dir.display()))?;
    Repository::init_bare(&dir).map_err(|err| {
        anyhow::anyhow!(
            "creating cache {}: {}",
            dir.display(),
            describe_git_error(&err)
        )
    })
}

/// The remote's refs as `ls-remote` shows them, plus the branch its HEAD points to.
pub struct RemoteRefs {
    /// `refs/...` name to object id (peeled `^{}` entries excluded).
    pub refs: BTreeMap<String, Oid>,
    /// The branch HEAD points to (`refs/heads/…`), when the server says.
    pub head_branch: Option<String>,
    /// HEAD's object id.
    pub head: Option<Oid>,
    /// Whether the refs were listed; `false` when the remote advertises no HEAD (an empty
    /// repository, or one whose HEAD names a missing branch), and then `refs` is empty.
    pub listed: bool,
}

impl RemoteRefs {
    /// The branch to track: `source.branch`, else the remote HEAD's branch.
    pub fn tracked_branch(&self, source: &Source) -> Option<String> {
        if let Some(branch) = source
            .branch
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
        {
            return Some(branch.trim_start_matches("refs/heads/").to_owned());
        }
        if let Some(head) = &self.head_branch {
            return Some(head.trim_start_matches("refs/heads/").to_owned());
        }
        // Old servers do not advertise HEAD's target: pick the branch HEAD points at.
        let head = self.head?;
        self.refs
            .iter()
            .find(|(name, oid)| name.starts_with("refs/heads/") && **oid == head)
            .map(|(name, _)| name.trim_start_matches("refs/heads/").to_owned())
    }
}

/// An anonymous remote for `source.uri`, after checking that its server answers.
pub fn open_remote<'r>(repo: &'r Repository, uri: &str) -> anyhow::Result<Remote<'r>> {
    crate::transport::probe_reachable(uri)?;
    repo.remote_anonymous(uri).map_err(|err| {
        anyhow::anyhow!(
            "source.uri: {}: {}",
            redact_url(uri),
            describe_git_error(&err)
        )
    })
}

/// Connects to `remote` and lists its refs; later fetches reuse the connection.
pub fn connect<'r, 'c, 'a>(
    remote: &'c mut Remote<'r>,
    auth: &'a Auth,
    uri: &str,
) -> anyhow::Result<(RemoteConnection<'r, 'c, 'a>, RemoteRefs)> {
    let connection = remote
        .connect_auth(
            Direction::Fetch,
            Some(auth.callbacks()),
            Some(crate::transport::proxy()),
        )
        .map_err(|err| {
            anyhow::anyhow!(
                "connecting to {}: {}",
                redact_url(uri),
                describe_git_error(&err)
            )
        })?;
    let mut refs = BTreeMap::new();
    let mut head = None;
    let mut head_branch = None;
    // git2 reads an empty ref list through a null pointer (undefined behaviour), so list only
    // when HEAD is advertised, which proves the list is not empty.
    let listed = connection.default_branch().is_ok();
    if listed {
        for remote_head in connection.list().map_err(|err| {
            anyhow::anyhow!(
                "listing refs of {}: {}",
                redact_url(uri),
                describe_git_error(&err)
            )
        })? {
            let name = remote_head.name();
            if name == "HEAD" {
                head = Some(remote_head.oid());
                head_branch = remote_head.symref_target().map(str::to_owned);
            } else if name.starts_with("refs/") && !name.ends_with("^{}") {
                refs.insert(name.to_owned(), remote_head.oid());
            }
        }
        if head_branch.is_none()
            && let Ok(branch) = connection.default_branch()
            && let Some(branch) = branch.as_str()
        {
            head_branch = Some(branch.to_owned());
        }
    }
    let refs = RemoteRefs {
        refs,
        head_branch,
        head,
        listed,
    };
    Ok((connection, refs))
}

/// Lists the remote's refs (one connection, closed afterwards).
pub fn list_remote(repo: &Repository, source: &Source, auth: &Auth) -> anyhow::Result<RemoteRefs> {
    let uri = source.uri.trim();
    let mut remote = open_remote(repo, uri)?;
    let (_connection, refs) = connect(&mut remote, auth, uri)?;
    Ok(refs)
}

/// What to fetch over an open connection.
#[derive(Debug, Clone, Copy)]
pub struct FetchSpec<'a> {
    /// Refspecs to fetch.
    pub refspecs: &'a [&'a str],
    /// Delete local refs the remote no longer has (within the refspecs).
    pub prune: bool,
    /// Shallow depth (0 = full history).
    pub depth: i32,
    /// Which tags to fetch besides the refspecs.
    pub tags: AutotagOption,
}

/// Fetches over `connection`, which stays open for more.
pub fn fetch_connected(
    connection: &mut RemoteConnection<'_, '_, '_>,
    auth: &Auth,
    uri: &str,
    spec: FetchSpec<'_>,
) -> anyhow::Result<()> {
    let mut options = auth.fetch_options();
    options.download_tags(spec.tags);
    if spec.prune {
        options.prune(FetchPrune::On);
    }
    if spec.depth > 0 {
        options.depth(spec.depth);
    }
    connection
        .remote()
        .fetch(spec.refspecs, Some(&mut options), None)
        .map_err(|err| {
            anyhow::anyhow!(
                "fetching from {}: {}",
                redact_url(uri),
                describe_git_error(&err)
            )
        })
}

/// Fetching one branch, nothing else.
fn branch_fetch<'a>(refspecs: &'a [&'a str]) -> FetchSpec<'a> {
    FetchSpec {
        refspecs,
        prune: false,
        depth: 0,
        tags: AutotagOption::None,
    }
}

/// Brings the tracked branch into the cache; `None` when the remote has no branches at all.
fn sync_branch(
    repo: &Repository,
    source: &Source,
    auth: &Auth,
    connection: &mut RemoteConnection<'_, '_, '_>,
    remote: &RemoteRefs,
    shallow_depth: i32,
) -> anyhow::Result<Option<(String, Oid)>> {
    let Some(branch) = remote.tracked_branch(source) else {
        if remote.refs.keys().any(|r| r.starts_with("refs/heads/")) {
            anyhow::bail!(
                "source.branch: the remote HEAD of {} names no branch; set source.branch",
                redact_url(source.uri.trim())
            );
        }
        return Ok(None);
    };
    let refname = format!("refs/heads/{branch}");
    let spec = format!("+{refname}:{refname}");
    if !remote.listed {
        fetch_connected(connection, auth, source.uri.trim(), branch_fetch(&[&spec]))
            .with_context(|| format!("source.branch: fetching branch {branch:?}"))?;
        let tip = repo.refname_to_id(&refname)?;
        repo.set_head(&refname)?;
        return Ok(Some((branch, tip)));
    }
    let Some(&tip) = remote.refs.get(&refname) else {
        anyhow::bail!(
            "source.branch: branch {branch:?} not found in {}",
            redact_url(source.uri.trim())
        );
    };
    if repo.find_commit(tip).is_err() {
        tracing::info!("fetching {branch} from {}", redact_url(source.uri.trim()));
        let refspecs = [spec.as_str()];
        let mut fetch = branch_fetch(&refspecs);
        if repo.find_reference(&refname).is_err() && crate::transport::is_network(source.uri.trim())
        {
            // A new cache: the newest commits usually answer the check; the rest of the
            // history is fetched only if the walk reaches the shallow boundary.
            fetch.depth = shallow_depth;
        }
        fetch_connected(connection, auth, source.uri.trim(), fetch)?;
    }
    repo.reference(&refname, tip, true, "check")?;
    repo.set_head(&refname)?;
    Ok(Some((branch, tip)))
}

/// Mirrors all branches and tags into the cache (tag mode), skipping the fetch when nothing
/// moved.
fn sync_all(
    repo: &Repository,
    source: &Source,
    auth: &Auth,
    connection: &mut RemoteConnection<'_, '_, '_>,
    remote: &RemoteRefs,
) -> anyhow::Result<()> {
    let wanted: BTreeMap<&str, Oid> = remote
        .refs
        .iter()
        .filter(|(name, _)| name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
        .map(|(name, oid)| (name.as_str(), *oid))
        .collect();
    let mut local = BTreeMap::new();
    for reference in repo.references()? {
        let reference = reference?;
        if let (Some(name), Some(target)) = (reference.name(), reference.target())
            && (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
        {
            local.insert(name.to_owned(), target);
        }
    }
    let unchanged = remote.listed
        && wanted.len() == local.len()
        && wanted
            .iter()
            .all(|(name, oid)| local.get(*name) == Some(oid));
    if !unchanged {
        tracing::info!(
            "fetching branches and tags from {}",
            redact_url(source.uri.trim())
        );
        let refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
        let spec = FetchSpec {
            refspecs: &refspecs,
            prune: true,
            depth: 0,
            tags: AutotagOption::None,
        };
        fetch_connected(connection, auth, source.uri.trim(), spec)?;
    }
    if let Some(branch) = remote.tracked_branch(source) {
        let refname = format!("refs/heads/{branch}");
        if repo.find_reference(&refname).is_ok() {
            repo.set_head(&refname)?;
        }
    }
    Ok(())
}

/// Commit mode: from the cursor (inclusive) to the tip, or the newest `depth` commits.
fn commit_versions(
    repo: &Repository,
    tip: Oid,
    cursor: Option<&str>,
    filters: &Filters,
) -> anyhow::Result<Walk> {
    let boundary = shallow_boundary(repo);
    let cursor_oid = cursor.and_then(|r| Oid::from_str(r).ok());
    let cursor = cursor_oid.and_then(|oid| repo.find_commit(oid).ok());
    if cursor_oid.is_some() && cursor.is_none() && !boundary.is_empty() {
        // The cursor may lie beyond the shallow boundary.
        return Ok(Walk::NeedsHistory);
    }
    let mut walk = repo.revwalk()?;
    walk.simplify_first_parent()?;
    walk.push(tip)?;
    let limit = match &cursor {
        Some(commit) => {
            if let Ok(parent) = commit.parent_id(0) {
                walk.hide(parent)?;
            }
            usize::MAX
        }
        None => filters.depth,
    };
    let mut found = Vec::new();
    for oid in walk {
        let oid = oid?;
        if boundary.contains(&oid) {
            return Ok(Walk::NeedsHistory);
        }
        let commit = repo.find_commit(oid)?;
        if filters.commit_counts(repo, &commit)? {
            found.push(commit.id());
            if found.len() >= limit {
                break;
            }
        }
    }
    Ok(Walk::Complete(
        found
            .into_iter()
            .rev()
            .map(|oid| resource_protocol::wire::version([("ref", oid.to_string())]))
            .collect(),
    ))
}

/// The outcome of a walk over a possibly shallow cache.
enum Walk {
    /// The versions, oldest first.
    Complete(Vec<Version>),
    /// The walk reached the shallow boundary (or the cursor may lie beyond it).
    NeedsHistory,
}

/// The commits at the shallow boundary of `repo` (their parents were not fetched).
fn shallow_boundary(repo: &Repository) -> HashSet<Oid> {
    std::fs::read_to_string(repo.path().join("shallow"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| Oid::from_str(line.trim()).ok())
        .collect()
}

/// A tag that matched the filter.
struct Tag {
    name: String,
    commit: Oid,
    created: i64,
}

/// The tags matching `filter`, oldest first (by tagger date, or commit date for lightweight
/// tags; ties by name, as `git tag --sort=creatordate` orders them).
fn matching_tags(repo: &Repository, filter: &TagFilter) -> anyhow::Result<Vec<Tag>> {
    let mut tags = Vec::new();
    for name in repo.tag_names(None)?.iter().flatten() {
        if !filter.matches(name) {
            continue;
        }
        let object = repo.revparse_single(&format!("refs/tags/{name}"))?;
        let Ok(commit) = object.peel_to_commit() else {
            continue;
        };
        let created = match object.as_tag().and_then(|t| t.tagger()) {
            Some(tagger) if object.kind() == Some(ObjectType::Tag) => tagger.when().seconds(),
            _ => commit.committer().when().seconds(),
        };
        tags.push(Tag {
            name: name.to_owned(),
            commit: commit.id(),
            created,
        });
    }
    tags.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    Ok(tags)
}

fn is_ancestor(repo: &Repository, ancestor: Oid, of: Oid) -> anyhow::Result<bool> {
    Ok(ancestor == of || repo.graph_descendant_of(of, ancestor)?)
}

/// Tag mode: matching tags (`match_tagged`) or commits contained in them
/// (`match_tag_ancestors`), the newest `depth` of them.
fn tag_versions(
    repo: &Repository,
    source: &Source,
    filter: &TagFilter,
    cursor: Option<&str>,
    filters: &Filters,
) -> anyhow::Result<Vec<Version>> {
    let branch_tip = match source
        .branch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        Some(branch) => Some(
            repo.find_reference(&format!(
                "refs/heads/{}",
                branch.trim_start_matches("refs/heads/")
            ))
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id())
            .with_context(|| format!("source.branch: branch {branch:?} not found"))?,
        ),
        None => None,
    };
    let cursor = cursor.and_then(|name| {
        let commit = repo.revparse_single(name).ok()?.peel_to_commit().ok()?;
        Some((name.to_owned(), commit))
    });
    let all = matching_tags(repo, filter)?;
    let mut tags = Vec::new();
    match (&cursor, branch_tip) {
        (Some((_, commit)), Some(tip)) => {
            for tag in all {
                if is_ancestor(repo, commit.id(), tag.commit)?
                    && is_ancestor(repo, tag.commit, tip)?
                {
                    tags.push(tag);
                }
            }
        }
        (Some((name, _)), None) => {
            tags.extend(all.into_iter().skip_while(|t| &t.name != name));
        }
        (None, Some(tip)) => {
            for tag in all {
                if is_ancestor(repo, tag.commit, tip)? {
                    tags.push(tag);
                }
            }
        }
        (None, None) => tags = all,
    }
    // Commits at or before the cursor's first parent are outside the range, as in
    // `git rev-list --all <cursor>~1..`.
    let hidden = cursor.as_ref().and_then(|(_, c)| c.parent_id(0).ok());
    let in_range = |oid: Oid| -> anyhow::Result<bool> {
        match hidden {
            Some(hidden) => Ok(!is_ancestor(repo, oid, hidden)?),
            None => Ok(true),
        }
    };
    let behaviour = source.tag_behaviour.as_deref().unwrap_or("match_tagged");
    let mut versions = Vec::new();
    if behaviour == "match_tag_ancestors" {
        let mut eligible = repo.revwalk()?;
        for tag in &tags {
            eligible.push(tag.commit)?;
        }
        let contained: HashSet<Oid> = eligible.collect::<Result<_, _>>()?;
        let mut walk = repo.revwalk()?;
        walk.set_sorting(Sort::TIME)?;
        walk.simplify_first_parent()?;
        walk.push_glob("*")?;
        if let Some(hidden) = hidden {
            walk.hide(hidden)?;
        }
        let mut commits = Vec::new();
        for oid in walk {
            let oid = oid?;
            if contained.contains(&oid) && filters.commit_counts(repo, &repo.find_commit(oid)?)? {
                commits.push(oid);
            }
        }
        for oid in commits.into_iter().rev() {
            versions.push(resource_protocol::wire::version([("ref", oid.to_string())]));
        }
    } else {
        for tag in tags {
            if in_range(tag.commit)?
                && filters.commit_counts(repo, &repo.find_commit(tag.commit)?)?
            {
                versions.push(resource_protocol::wire::version([
                    ("ref", tag.name),
                    ("commit", tag.commit.to_string()),
                ]));
            }
        }
    }
    let skip = versions.len().saturating_sub(filters.depth);
    Ok(versions.split_off(skip))
}
