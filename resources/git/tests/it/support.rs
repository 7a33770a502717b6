//! Shared test support: work-tree repositories driven by the git CLI (like the official
//! resource's `test/helpers.sh`), and running the real `git-resource` binary hermetically.

#![allow(clippy::unwrap_used, dead_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use testbed::resource_cli::ResourceCli;
use testbed::resource_cli::Run;

/// A repository with a work tree that tests commit to; it is the resource's remote.
pub struct Repo {
    _dir: Option<tempfile::TempDir>,
    pub path: PathBuf,
    clock: Cell<i64>,
}

impl Repo {
    /// An empty repository on `main`, no commits.
    pub fn new() -> Repo {
        let dir = testbed::tools::temp_dir("git-remote");
        let path = dir.path().join("repo");
        testbed::git::init(&path);
        Repo {
            _dir: Some(dir),
            path,
            clock: Cell::new(testbed::git::DEFAULT_TIME),
        }
    }

    /// A clone of `uri` at `path` (owned by the caller's temp dir), to commit in and push from.
    pub fn clone_into(uri: &str, path: &Path) -> Repo {
        let parent = path.parent().unwrap();
        std::fs::create_dir_all(parent).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        testbed::git::git(parent, &["clone", "--quiet", uri, name]);
        Repo {
            _dir: None,
            path: path.to_owned(),
            clock: Cell::new(testbed::git::DEFAULT_TIME + 500_000),
        }
    }

    /// A bare repository (a push target), with `commits` commits on `main`.
    pub fn bare_with(commits: usize) -> Repo {
        let work = Repo::new();
        for i in 0..commits {
            work.commit("file", &format!("commit {i}"));
        }
        let dir = testbed::tools::temp_dir("git-bare");
        let path = dir.path().join("bare.git");
        testbed::git::git(
            dir.path(),
            &["clone", "--quiet", "--bare", &work.uri(), "bare.git"],
        );
        Repo {
            _dir: Some(dir),
            path,
            clock: Cell::new(testbed::git::DEFAULT_TIME + 100_000),
        }
    }

    /// The URI the resource uses (a local path).
    pub fn uri(&self) -> String {
        self.path.display().to_string()
    }

    /// Runs hermetic `git args` in the repo, with the repo's clock as commit and tag date.
    pub fn git(&self, args: &[&str]) -> String {
        let time = self.clock.get() + 60;
        self.clock.set(time);
        let date = format!("@{time} +0000");
        let mut command = testbed::git::git_command(&self.path);
        command
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Changes `file` and commits it with `message` on the current branch.
    pub fn commit(&self, file: &str, message: &str) -> String {
        let path = self.path.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let previous = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, format!("{previous}x\n")).unwrap();
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.head()
    }

    /// A commit that changes nothing.
    pub fn empty_commit(&self, message: &str) -> String {
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.head()
    }

    /// Commits `file` on `branch` (created from the current HEAD if missing), then returns to
    /// `main`.
    pub fn commit_on(&self, branch: &str, file: &str, message: &str) -> String {
        let exists = !self.git(&["branch", "--list", branch]).is_empty();
        if exists {
            self.git(&["checkout", "--quiet", branch]);
        } else {
            self.git(&["checkout", "--quiet", "-b", branch]);
        }
        let sha = self.commit(file, message);
        self.git(&["checkout", "--quiet", "main"]);
        sha
    }

    /// Merges `branch` into the current branch with a merge commit.
    pub fn merge(&self, branch: &str) -> String {
        self.git(&[
            "merge",
            "--quiet",
            "--no-ff",
            "-m",
            &format!("merge {branch}"),
            branch,
        ]);
        self.head()
    }

    /// An annotated tag on HEAD (moved if it exists).
    pub fn annotated_tag(&self, name: &str) {
        self.git(&["tag", "-f", "-a", name, "-m", &format!("tag {name}")]);
    }

    /// A lightweight tag on HEAD.
    pub fn tag(&self, name: &str) {
        self.git(&["tag", "-f", name]);
    }

    /// HEAD's SHA.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }
}

/// A hermetic environment for the binary: its own TMPDIR (so its own check cache) and HOME.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: testbed::tools::temp_dir("git-resource-env"),
        }
    }

    /// Runs `git-resource <args>` with `request` on stdin.
    pub fn run(&self, args: &[&str], request: &Value) -> Run {
        self.run_with_env(args, request, &[])
    }

    /// [`Env::run`] with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], request: &Value, vars: &[(&str, &str)]) -> Run {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let tmp = self.dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        ResourceCli::new(env!("CARGO_BIN_EXE_git-resource"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(vars.iter().copied())
            .timeout(std::time::Duration::from_secs(120))
            .run(args, request)
    }

    /// Runs `check` with `source` and an optional cursor.
    pub fn check(&self, source: &Value, version: Option<Value>) -> Run {
        let mut request = json!({ "source": source });
        if let Some(version) = version {
            request["version"] = version;
        }
        self.run(&["check"], &request)
    }

    /// Runs `in` into `dest`.
    pub fn get(&self, dest: &Path, source: &Value, version: &Value, params: &Value) -> Run {
        let request = json!({ "source": source, "version": version, "params": params });
        self.run(&["in", dest.to_str().unwrap()], &request)
    }

    /// Runs `out` from `src`.
    pub fn put(&self, src: &Path, source: &Value, params: &Value) -> Run {
        let request = json!({ "source": source, "params": params });
        self.run(&["out", src.to_str().unwrap()], &request)
    }
}

/// `[{"ref": r}, …]` for commit-mode answers.
pub fn refs(shas: &[&str]) -> Value {
    Value::Array(shas.iter().map(|s| json!({ "ref": s })).collect())
}

/// Runs hermetic git in `dir` (for inspecting results).
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    testbed::git::git(dir, args)
}

/// An empty commit with `message` in `work_tree` (a clone `in` wrote, so as `t`), returning
/// the new HEAD.
pub fn empty_commit_in(work_tree: &Path, message: &str) -> String {
    git_in(
        work_tree,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ],
    );
    git_in(work_tree, &["rev-parse", "HEAD"])
}
