//! Git fixtures and servers: histories from fast-import, and real `git ls-remote`/`clone`/`push`
//! over git://, ssh:// and http://.

use std::path::Path;
use std::time::Instant;

use testbed::git::{
    CommitSpec, GitDaemon, GitHttp, SshKey, Sshd, commit, commit_files, fast_import_history, git,
    git_command, init_bare,
};
use testbed::tools::temp_dir;

/// `git ls-remote URL refs/heads/main` with `env`; the SHA it reports, or git's stderr.
fn ls_remote_main(url: &str, env: &[(String, String)]) -> Result<String, String> {
    let dir = temp_dir("ls-remote");
    let mut command = git_command(dir.path());
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["ls-remote", url, "refs/heads/main"]);
    let output = command.output().unwrap();
    if output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Clones `url`, commits one file and pushes it back; returns the pushed SHA.
fn clone_commit_push(url: &str, env: &[(String, String)]) -> String {
    let dir = temp_dir("work");
    let work = dir.path().join("w");
    let run = |cwd: &Path, args: &[&str]| {
        let mut command = git_command(cwd);
        command.envs(env.iter().map(|(k, v)| (k, v))).args(args);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(dir.path(), &["clone", "--quiet", url, "w"]);
    std::fs::write(work.join("pushed.txt"), "pushed\n").unwrap();
    run(&work, &["add", "pushed.txt"]);
    run(&work, &["commit", "--quiet", "-m", "push test"]);
    run(&work, &["push", "--quiet", "origin", "HEAD:main"]);
    git(&work, &["rev-parse", "HEAD"])
}

/// A dir with a bare repo `r.git` holding one commit; returns (dir, repo path, sha).
fn served_repo() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let root = temp_dir("repos");
    let repo = root.path().join("r.git");
    init_bare(&repo);
    let sha = commit_files(&repo, &[("README", "hello\n")], "initial");
    (root, repo, sha)
}

#[test]
fn commits_are_deterministic_and_stack() {
    let check = |repo: &Path| {
        let first = commit_files(repo, &[("a.txt", "a\n"), ("dir/b.txt", "b\n")], "first");
        let second = commit(
            repo,
            &CommitSpec {
                message: "second",
                files: &[("c.txt", "c\n")],
                deletes: &["a.txt"],
                time: 1_700_000_100,
                ..CommitSpec::default()
            },
        );
        assert_eq!(git(repo, &["rev-parse", "main^"]), first);
        assert_eq!(
            git(repo, &["ls-tree", "-r", "--name-only", "main"]),
            "c.txt\ndir/b.txt"
        );
        assert_eq!(
            git(repo, &["log", "-1", "--format=%an <%ae> %at %s", "main"]),
            "Testbed <testbed@example.com> 1700000100 second"
        );
        second
    };
    let (one, two) = (temp_dir("a"), temp_dir("b"));
    init_bare(one.path());
    init_bare(two.path());
    assert_eq!(check(one.path()), check(two.path()));
    assert_eq!(
        git(one.path(), &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
}

#[test]
fn fast_import_builds_20k_commits_quickly() {
    let dir = temp_dir("history");
    init_bare(dir.path());
    let base = commit_files(dir.path(), &[("README", "x\n")], "base");
    let started = Instant::now();
    let tip = fast_import_history(dir.path(), 20_000);
    let took = started.elapsed();
    assert_eq!(git(dir.path(), &["rev-list", "--count", "main"]), "20001");
    assert_eq!(
        git(dir.path(), &["rev-list", "--max-parents=0", "main"]),
        base
    );
    assert_eq!(git(dir.path(), &["show", "main:counter.txt"]), "20000");
    assert_eq!(git(dir.path(), &["rev-parse", "main"]), tip);
    assert!(took.as_secs() < 10, "20,000 commits took {took:?}");
}

#[test]
fn git_daemon_serves_and_accepts_pushes() {
    let (root, repo, sha) = served_repo();
    let daemon = GitDaemon::start(root.path());
    let url = daemon.url_for("r.git");
    assert!(url.starts_with("git://127.0.0.1:"));
    assert_eq!(
        ls_remote_main(&url, &[]).unwrap_or_else(|e| panic!("{e}\n{}", daemon.log_tail())),
        sha
    );
    let pushed = clone_commit_push(&url, &[]);
    assert_eq!(git(&repo, &["rev-parse", "main"]), pushed);
}

#[test]
fn sshd_accepts_every_key_kind() {
    let (_root, repo, sha) = served_repo();
    let sshd = Sshd::start();
    let url = sshd.ssh_url(&repo);
    assert!(
        url.starts_with("ssh://") && url.ends_with("/r.git"),
        "{url}"
    );
    let keys: [(&str, &SshKey, &str); 4] = [
        ("ed25519", &sshd.key, "BEGIN OPENSSH PRIVATE KEY"),
        (
            "ed25519 with passphrase",
            &sshd.encrypted_key,
            "BEGIN OPENSSH PRIVATE KEY",
        ),
        ("rsa pem", &sshd.rsa_pem_key, "BEGIN RSA PRIVATE KEY"),
        (
            "rsa pem with passphrase",
            &sshd.encrypted_rsa_pem_key,
            "Proc-Type: 4,ENCRYPTED",
        ),
    ];
    for (name, key, marker) in keys {
        assert!(
            key.private_key.contains(marker),
            "{name}: {}",
            key.private_key
        );
        let got = ls_remote_main(&url, &key.git_env())
            .unwrap_or_else(|e| panic!("{name}: {e}\nsshd log:\n{}", sshd.log_tail()));
        assert_eq!(got, sha, "{name}");
    }
    assert!(
        sshd.known_hosts_line()
            .starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.addr().port()))
    );
    // The known_hosts line satisfies strict host key checking.
    let known_hosts = sshd.dir().join("client_known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let strict = [(
        "GIT_SSH_COMMAND".to_owned(),
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
             -o UserKnownHostsFile={} -o BatchMode=yes",
            sshd.key.path.display(),
            known_hosts.display()
        ),
    )];
    assert_eq!(ls_remote_main(&url, &strict).unwrap(), sha);
    std::fs::write(&known_hosts, "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n").unwrap();
    let err = ls_remote_main(&url, &strict).unwrap_err();
    assert!(err.contains("Host key verification failed"), "{err}");
    let pushed = clone_commit_push(&url, &sshd.key.git_env());
    assert_eq!(git(&repo, &["rev-parse", "main"]), pushed);
}

#[test]
fn git_http_needs_credentials_for_clone_and_push() {
    let (root, repo, sha) = served_repo();
    let server = GitHttp::start(root.path(), "dave", "hunter2");
    let url = server.url_for("r.git");
    let err = ls_remote_main(&url, &[]).unwrap_err();
    assert!(
        err.contains("401")
            || err.contains("Authentication failed")
            || err.contains("could not read Username"),
        "{err}"
    );
    let with_creds = server.url_with_credentials("r.git");
    assert_eq!(
        ls_remote_main(&with_creds, &[]).unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail())),
        sha
    );
    let pushed = clone_commit_push(&with_creds, &[]);
    assert_eq!(git(&repo, &["rev-parse", "main"]), pushed);
}

#[test]
fn git_https_verifies_with_the_ca_only() {
    let (root, repo, sha) = served_repo();
    let server = GitHttp::start_tls(root.path(), "erin", "pw");
    let url = server.url_with_credentials("r.git");
    assert!(url.starts_with("https://erin:pw@127.0.0.1:"), "{url}");
    let err = ls_remote_main(&url, &[]).unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    let ca = server.ca_cert_path().unwrap().display().to_string();
    let trust = [("GIT_SSL_CAINFO".to_owned(), ca)];
    assert_eq!(
        ls_remote_main(&url, &trust).unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail())),
        sha
    );
    let pushed = clone_commit_push(&url, &trust);
    assert_eq!(git(&repo, &["rev-parse", "main"]), pushed);
}
