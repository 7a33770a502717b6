//! The LFS server against the real git-lfs client: push uploads, clone downloads.

use std::path::Path;

use crate::support::http_request;
use testbed::git::{LfsServer, commit_files, git, git_command, init_bare};
use testbed::tools::{require, temp_dir};

/// Hermetic git with the LFS filters configured (as `git lfs install` would globally).
fn git_lfs(cwd: &Path, args: &[&str]) -> String {
    let lfs = require("git-lfs", "git-lfs");
    let mut command = git_command(cwd);
    let lfs = lfs.display();
    command
        .arg("-c")
        .arg(format!("filter.lfs.smudge={lfs} smudge -- %f"))
        .arg("-c")
        .arg(format!("filter.lfs.clean={lfs} clean -- %f"))
        .arg("-c")
        .arg(format!("filter.lfs.process={lfs} filter-process"))
        .arg("-c")
        .arg("filter.lfs.required=true")
        .args(args);
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn git_lfs_downloads_stored_objects_and_uploads_pushed_ones() {
    let server = LfsServer::start(None);
    let root = temp_dir("lfs-repos");
    let repo = root.path().join("r.git");
    init_bare(&repo);
    let stored: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let lfsconfig = format!("[lfs]\n\turl = {}\n", server.lfs_url("r.git"));
    commit_files(
        &repo,
        &[
            (
                ".gitattributes",
                "*.bin filter=lfs diff=lfs merge=lfs -text\n",
            ),
            (".lfsconfig", &lfsconfig),
            ("stored.bin", &server.store(&stored)),
        ],
        "lfs objects",
    );

    let work_dir = temp_dir("lfs-work");
    let work = work_dir.path().join("w");
    git_lfs(
        work_dir.path(),
        &["clone", "--quiet", repo.to_str().unwrap(), "w"],
    );
    assert_eq!(std::fs::read(work.join("stored.bin")).unwrap(), stored);

    // Push a new object: git-lfs's pre-push hook uploads it.
    git_lfs(&work, &["lfs", "install", "--local"]);
    let pushed = b"pushed through the batch API\n".repeat(1000);
    std::fs::write(work.join("pushed.bin"), &pushed).unwrap();
    git_lfs(&work, &["add", "pushed.bin"]);
    git_lfs(&work, &["commit", "--quiet", "-m", "push lfs"]);
    git_lfs(&work, &["push", "--quiet", "origin", "HEAD:main"]);
    let pointer = git(&repo, &["show", "main:pushed.bin"]);
    let oid = pointer
        .lines()
        .find_map(|line| line.strip_prefix("oid sha256:"))
        .unwrap();
    assert_eq!(server.object(oid).unwrap(), pushed);

    let batches = server.batches();
    let operations: Vec<&str> = batches.iter().map(|b| b.operation.as_str()).collect();
    assert!(
        operations.contains(&"download") && operations.contains(&"upload"),
        "{batches:?}"
    );
}

#[test]
fn lfs_server_requires_credentials_when_asked_and_reports_missing_objects() {
    let server = LfsServer::start(Some(("lfs", "pw")));
    let batch = format!("{}/objects/batch", server.lfs_url("team/r.git"));
    let request = r#"{"operation":"download","transfers":["basic"],"objects":[{"oid":"0000000000000000000000000000000000000000000000000000000000000000","size":3}]}"#;
    let accept = "Accept: application/vnd.git-lfs+json";
    let (status, _) = http_request("POST", &batch, &[accept], request);
    assert_eq!(status, 401);
    let auth = "Authorization: Basic bGZzOnB3"; // lfs:pw
    let (status, body) = http_request("POST", &batch, &[accept, auth], request);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["objects"][0]["error"]["code"], 404, "{answer}");

    let pointer = server.store(b"abc");
    let oid = pointer
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("oid sha256:");
    let request = format!(r#"{{"operation":"download","objects":[{{"oid":"{oid}","size":3}}]}}"#);
    let (_, body) = http_request("POST", &batch, &[accept, auth], &request);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let href = answer["objects"][0]["actions"]["download"]["href"]
        .as_str()
        .unwrap();
    assert!(
        href.ends_with(&format!("/team/r.git/info/lfs/objects/{oid}")),
        "{href}"
    );
    let (status, content) = http_request("GET", href, &[auth], "");
    assert_eq!((status, content.as_str()), (200, "abc"));
    assert_eq!(server.batches()[0].user.as_deref(), Some("lfs"));
}
