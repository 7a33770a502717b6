//! `https_tunnel`: ssh through an HTTP CONNECT proxy. The proxy is a small fixture that
//! speaks RFC 9110 CONNECT with Basic proxy auth and counts the tunnels it opened.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::support::{Env, Repo, git_in, refs};

/// A CONNECT proxy on 127.0.0.1 that wants `Basic user:pass` (anything when `user` is empty);
/// returns (port, tunnels opened).
pub fn start_proxy(user: &str, pass: &str) -> (u16, Arc<AtomicUsize>) {
    let open = user.is_empty();
    use base64::Engine;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!(
        "proxy-authorization: basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
    .to_lowercase();
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = opened.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let expected = expected.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::with_capacity(1, client.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    authorized |= line.trim().to_lowercase() == expected;
                }
                let mut client = client;
                if !authorized && !open {
                    client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                        .unwrap();
                    return;
                }
                let target = request.split_whitespace().nth(1).unwrap().to_owned();
                let upstream = TcpStream::connect(target).unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let mut upstream = upstream;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut u2);
                    let _ = u2.shutdown(std::net::Shutdown::Write);
                });
                let mut buf = [0u8; 8192];
                while let Ok(n) = upstream.read(&mut buf) {
                    if n == 0 || client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, opened)
}

#[test]
fn ssh_through_an_http_proxy() {
    let bare = Repo::bare_with(2);
    let sshd = testbed::git::Sshd::start();
    let (port, opened) = start_proxy("proxy-user", "proxy-pa55");
    let env = Env::new();
    let tip = git_in(&bare.path, &["rev-parse", "main"]);
    let tunnel = json!({"proxy_host": "127.0.0.1", "proxy_port": port, "proxy_user": "proxy-user", "proxy_password": "proxy-pa55"});
    let uri = sshd.ssh_url(&bare.path);
    let source = json!({"uri": uri, "branch": "main", "private_key": sshd.key.private_key, "https_tunnel": tunnel});
    assert_eq!(env.check(&source, None).json(), refs(&[&tip]));
    assert!(opened.load(Ordering::SeqCst) >= 1);
    let dest = env.dir.path().join("dest");
    let answer = env
        .get(&dest, &source, &json!({"ref": tip}), &json!({}))
        .json();
    assert_eq!(answer["version"], json!({"ref": tip}));
    assert_eq!(git_in(&dest, &["remote", "get-url", "origin"]), uri);

    let wrong = json!({"uri": uri, "private_key": sshd.key.private_key, "https_tunnel":
        {"proxy_host": "127.0.0.1", "proxy_port": port, "proxy_user": "proxy-user", "proxy_password": "nope-secret"}});
    let run = env.check(&wrong, None);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("source.https_tunnel: proxy 127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("407"), "{}", run.stderr);
    assert!(!run.stderr.contains("nope-secret"));
    let http = json!({"uri": "http://example.com/r.git", "https_tunnel": {"proxy_host": "h", "proxy_port": 1}});
    let run = env.check(&http, None);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("source.https_tunnel: only ssh URIs"),
        "{}",
        run.stderr
    );
}

#[test]
fn https_remotes_honour_proxy_environment_variables() {
    let bare = Repo::bare_with(2);
    let http = testbed::git::GitHttp::start_tls(bare.path.parent().unwrap(), "user", "pa55");
    let (port, opened) = start_proxy("", "");
    let env = Env::new();
    let tip = git_in(&bare.path, &["rev-parse", "main"]);
    let source = json!({"uri": http.url_for("bare.git"), "branch": "main", "username": "user",
        "password": "pa55", "skip_ssl_verification": true});
    let proxy = format!("http://127.0.0.1:{port}");
    let run = env.run_with_env(
        &["check"],
        &json!({"source": source}),
        &[("https_proxy", &proxy)],
    );
    assert_eq!(run.json(), refs(&[&tip]));
    assert!(
        opened.load(Ordering::SeqCst) >= 1,
        "the proxy carried the connection"
    );
}
