//! Git fixtures: hermetic `git` commands, bare repos, commits and big histories made with
//! `git fast-import`, and the servers git talks to (`git daemon`, sshd, nginx + `git
//! http-backend`, a Git LFS batch-API server).
//!
//! Every `git` run here ignores the machine's configuration (`GIT_CONFIG_NOSYSTEM=1`, `HOME` and
//! `GIT_CONFIG_GLOBAL` pointing at a testbed-owned config) and commits as
//! [`AUTHOR_NAME`] <[`AUTHOR_EMAIL`]>.
//!
//! ```no_run
//! use testbed::git::{CommitSpec, commit, init_bare, GitDaemon};
//! let root = testbed::tools::temp_dir("repos");
//! let repo = root.path().join("r.git");
//! init_bare(&repo);
//! let sha = commit(&repo, &CommitSpec { files: &[("README", "hello\n")], ..CommitSpec::default() });
//! let daemon = GitDaemon::start(root.path());
//! let url = daemon.url_for("r.git"); // git://127.0.0.1:PORT/r.git
//! ```

mod daemon;
mod http;
mod lfs;
mod ssh;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::tools::{require, run_command};
pub use daemon::GitDaemon;
pub use http::GitHttp;
pub use lfs::{LFS_MEDIA_TYPE, LfsBatch, LfsServer, pointer as lfs_pointer};
pub use ssh::{KEY_PASSPHRASE, SshKey, Sshd};

/// The author and committer name of every fixture commit.
pub const AUTHOR_NAME: &str = "Testbed";
/// The author and committer email of every fixture commit.
pub const AUTHOR_EMAIL: &str = "testbed@example.com";
/// The commit time (seconds since the epoch, UTC) of fixture commits that do not name one.
pub const DEFAULT_TIME: i64 = 1_700_000_000;
/// The branch fixture repos start with.
pub const DEFAULT_BRANCH: &str = "main";

/// The absolute path of the `git` program.
pub fn git_program() -> PathBuf {
    require("git", "git")
}

/// A `HOME` for git shared by all fixtures of this process's user: an empty dir with a
/// `.gitconfig` that only sets what tests need. Written once, never modified after.
fn git_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let home = std::env::temp_dir().join("testbed-git-home");
        std::fs::create_dir_all(&home).expect("create testbed git home");
        let config = "[init]\n\tdefaultBranch = main\n\
                      [protocol \"file\"]\n\tallow = always\n\
                      [safe]\n\tdirectory = *\n\
                      [advice]\n\tdetachedHead = false\n";
        let path = home.join(".gitconfig");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(config) {
            // Write-then-rename: parallel test processes never see a half-written file.
            let partial = home.join(format!(".gitconfig.{}", std::process::id()));
            std::fs::write(&partial, config).expect("write testbed gitconfig");
            std::fs::rename(&partial, &path).expect("install testbed gitconfig");
        }
        home
    })
}

/// The environment every fixture `git` (and git server) runs with.
pub fn hermetic_env() -> Vec<(&'static str, String)> {
    let home = git_home();
    vec![
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("HOME", home.display().to_string()),
        (
            "XDG_CONFIG_HOME",
            home.join(".config").display().to_string(),
        ),
        (
            "GIT_CONFIG_GLOBAL",
            home.join(".gitconfig").display().to_string(),
        ),
        ("GIT_AUTHOR_NAME", AUTHOR_NAME.into()),
        ("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL.into()),
        ("GIT_COMMITTER_NAME", AUTHOR_NAME.into()),
        ("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL.into()),
        ("GIT_TERMINAL_PROMPT", "0".into()),
        ("LC_ALL", "C".into()),
    ]
}

/// `GIT_AUTHOR_DATE` and `GIT_COMMITTER_DATE` for `time` (seconds since the epoch, UTC): add
/// them to a [`git_command`] that commits, for reproducible SHAs.
pub fn date_env(time: i64) -> [(&'static str, String); 2] {
    let date = format!("{time} +0000");
    [
        ("GIT_AUTHOR_DATE", date.clone()),
        ("GIT_COMMITTER_DATE", date),
    ]
}

/// A hermetic `git` command run in `cwd` (see the module docs).
pub fn git_command(cwd: &Path) -> Command {
    let mut command = resource_protocol::process::command(git_program(), cwd);
    command.envs(hermetic_env());
    command
}

/// Runs hermetic `git args` in `cwd` and returns its trimmed stdout; panics with git's stderr
/// when it fails.
pub fn git(cwd: &Path, args: &[&str]) -> String {
    let mut command = git_command(cwd);
    command.args(args);
    String::from_utf8_lossy(&run_command(&mut command))
        .trim()
        .to_owned()
}

/// Creates a bare repository at `path` whose `HEAD` is [`DEFAULT_BRANCH`].
pub fn init_bare(path: &Path) {
    std::fs::create_dir_all(path).expect("create bare repo dir");
    git(
        path,
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch",
            DEFAULT_BRANCH,
        ],
    );
}

/// Creates a non-bare repository at `path` (work tree included) on [`DEFAULT_BRANCH`].
pub fn init(path: &Path) {
    std::fs::create_dir_all(path).expect("create repo dir");
    git(
        path,
        &["init", "--quiet", "--initial-branch", DEFAULT_BRANCH],
    );
}

/// One commit for [`commit`]. Paths are relative to the repo root; content is text.
#[derive(Debug, Clone)]
pub struct CommitSpec<'a> {
    /// The branch to commit on (created from nothing if missing).
    pub branch: &'a str,
    /// The commit message.
    pub message: &'a str,
    /// Files to write (added or replaced), `(path, content)`.
    pub files: &'a [(&'a str, &'a str)],
    /// Files to delete.
    pub deletes: &'a [&'a str],
    /// Author and committer time, seconds since the epoch (UTC).
    pub time: i64,
}

impl Default for CommitSpec<'_> {
    fn default() -> Self {
        CommitSpec {
            branch: DEFAULT_BRANCH,
            message: "commit",
            files: &[],
            deletes: &[],
            time: DEFAULT_TIME,
        }
    }
}

/// Makes one commit in `repo` (bare or not; the work tree is not touched) with `git
/// fast-import` on top of the branch's current tip, and returns its SHA.
pub fn commit(repo: &Path, spec: &CommitSpec<'_>) -> String {
    let reference = format!("refs/heads/{}", spec.branch);
    let parent = tip(repo, &reference);
    let mut stream = Vec::new();
    write_commit(
        &mut stream,
        &reference,
        1,
        parent.as_deref().map(Parent::Sha),
        spec,
    );
    fast_import(repo, &stream);
    tip(repo, &reference).expect("fast-import created the commit")
}

/// Commits `files` on [`DEFAULT_BRANCH`] of `repo` with `message` (see [`commit`]).
pub fn commit_files(repo: &Path, files: &[(&str, &str)], message: &str) -> String {
    commit(
        repo,
        &CommitSpec {
            files,
            message,
            ..CommitSpec::default()
        },
    )
}

/// Appends `n_commits` commits to [`DEFAULT_BRANCH`] of `repo` in one `git fast-import` run
/// (20,000 take about a second) and returns the new tip.
///
/// Commit `i` (from 1) writes `counter.txt` = `i`, has message `commit i` and time
/// [`DEFAULT_TIME`] + 60·i, so the SHAs are the same on every run.
pub fn fast_import_history(repo: &Path, n_commits: usize) -> String {
    let reference = format!("refs/heads/{DEFAULT_BRANCH}");
    let mut parent = tip(repo, &reference);
    let mut stream = Vec::with_capacity(n_commits * 200);
    for i in 1..=n_commits {
        let content = format!("{i}\n");
        let message = format!("commit {i}");
        let spec = CommitSpec {
            message: &message,
            files: &[("counter.txt", &content)],
            time: DEFAULT_TIME + 60 * i as i64,
            ..CommitSpec::default()
        };
        let from = match (i, &parent) {
            (1, Some(sha)) => Some(Parent::Sha(sha)),
            (1, None) => None,
            _ => Some(Parent::Mark(i - 1)),
        };
        write_commit(&mut stream, &reference, i, from, &spec);
    }
    fast_import(repo, &stream);
    parent = tip(repo, &reference);
    parent.expect("fast-import created the history")
}

/// Where a fast-import commit continues from.
enum Parent<'a> {
    Sha(&'a str),
    Mark(usize),
}

/// Appends one `commit` command to a fast-import stream.
fn write_commit(
    out: &mut Vec<u8>,
    reference: &str,
    mark: usize,
    from: Option<Parent<'_>>,
    spec: &CommitSpec<'_>,
) {
    let who = format!("{AUTHOR_NAME} <{AUTHOR_EMAIL}> {} +0000", spec.time);
    let _ = write!(
        out,
        "commit {reference}\nmark :{mark}\nauthor {who}\ncommitter {who}\ndata {}\n{}\n",
        spec.message.len(),
        spec.message
    );
    match from {
        Some(Parent::Sha(sha)) => {
            let _ = writeln!(out, "from {sha}");
        }
        Some(Parent::Mark(mark)) => {
            let _ = writeln!(out, "from :{mark}");
        }
        None => {}
    }
    for path in spec.deletes {
        let _ = writeln!(out, "D {path}");
    }
    for (path, content) in spec.files {
        let _ = write!(
            out,
            "M 100644 inline {path}\ndata {}\n{content}\n",
            content.len()
        );
    }
    out.push(b'\n');
}

/// Feeds `stream` to `git fast-import` in `repo`.
fn fast_import(repo: &Path, stream: &[u8]) {
    let mut command = git_command(repo);
    // Continuing from an existing commit makes fast-import grow and trim its heap around every
    // commit (10 brk calls each, 20,000 commits: 3 s instead of 0.5 s); padding the heap avoids it.
    command
        .env("MALLOC_TOP_PAD_", "16777216")
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run git fast-import");
    {
        let mut stdin = child.stdin.take().expect("fast-import stdin");
        stdin.write_all(stream).expect("write fast-import stream");
        stdin
            .write_all(b"done\n")
            .expect("finish fast-import stream");
    }
    let output = child.wait_with_output().expect("wait for git fast-import");
    assert!(
        output.status.success(),
        "git fast-import failed in {}: {}",
        repo.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The SHA `reference` points at in `repo`, if it exists.
pub fn tip(repo: &Path, reference: &str) -> Option<String> {
    let mut command = git_command(repo);
    command.args([
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{reference}^{{commit}}"),
    ]);
    let output = command.output().expect("run git rev-parse");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
