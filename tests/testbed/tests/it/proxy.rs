//! The HTTP proxy, used by real git: CONNECT for https://, forwarding for http://, and proxy auth.

use testbed::git::{GitHttp, commit_files, git_command, init_bare};
use testbed::proxy::HttpProxy;
use testbed::tools::temp_dir;

/// `git ls-remote` of `url` through `proxy_url` with extra environment; Ok(stdout) or
/// Err(stderr).
fn ls_remote_via(proxy_url: &str, url: &str, env: &[(&str, String)]) -> Result<String, String> {
    let dir = temp_dir("proxy-client");
    let mut command = git_command(dir.path());
    for key in [
        "NO_PROXY",
        "no_proxy",
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        command.env_remove(key);
    }
    command.arg("-c").arg(format!("http.proxy={proxy_url}"));
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.args(["ls-remote", url]);
    let output = command.output().unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn proxy_tunnels_https_forwards_http_and_checks_credentials() {
    let root = temp_dir("repos");
    let repo = root.path().join("r.git");
    init_bare(&repo);
    let sha = commit_files(&repo, &[("README", "hi\n")], "initial");
    let https = GitHttp::start_tls(root.path(), "git", "pw");
    let http = GitHttp::start(root.path(), "git", "pw");
    let proxy = HttpProxy::start(Some(("px", "secret")));
    let proxy_with_creds = format!("http://px:secret@{}", proxy.addr());
    // (`-c http.sslCAInfo=…` is ignored by this machine's git; the variable works.)
    let ca = [(
        "GIT_SSL_CAINFO",
        https.ca_cert_path().unwrap().display().to_string(),
    )];

    let tunnelled = ls_remote_via(&proxy_with_creds, &https.url_with_credentials("r.git"), &ca)
        .unwrap_or_else(|e| panic!("{e}\n{:?}", proxy.requests()));
    assert!(tunnelled.contains(&sha), "{tunnelled}");
    let forwarded = ls_remote_via(&proxy_with_creds, &http.url_with_credentials("r.git"), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(forwarded.contains(&sha), "{forwarded}");
    let err = ls_remote_via(&proxy.url(), &https.url_with_credentials("r.git"), &ca).unwrap_err();
    assert!(err.contains("407"), "{err}");

    let requests = proxy.requests();
    let https_target = https
        .url_for("")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    assert!(
        requests.iter().any(|r| r.method == "CONNECT"
            && r.target == https_target
            && r.user.as_deref() == Some("px")
            && r.allowed),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.method == "GET"
            && r.target.starts_with(&http.url_for("r.git"))
            && r.allowed),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| !r.allowed && r.user.is_none()),
        "{requests:?}"
    );
}
