//! `https_tunnel`: reach an ssh remote through an HTTP proxy (`CONNECT host:port`).
//!
//! libgit2's ssh transport cannot use a proxy, so the resource listens on a local port and
//! forwards each connection through the proxy; the remote URL is rewritten to that port for
//! the duration of the operation. The first tunnel is opened before git connects, so a proxy
//! that refuses (bad credentials, forbidden host) is a clear error instead of an ssh failure.
//! The proxy password never leaves the `Proxy-Authorization` header.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use resource_protocol::InvalidRequest;

use crate::config::{HttpsTunnel, Source};

/// How long the proxy may take to answer a CONNECT.
const PROXY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running tunnel; forwarding stops when the process ends.
#[derive(Debug)]
pub struct Tunnel {
    /// The local address git connects to.
    pub port: u16,
}

/// `source` with its `uri` pointing at a fresh tunnel when `https_tunnel` is set (for ssh
/// URIs); otherwise `source` unchanged. The tunnel lives as long as the process.
pub fn route(source: &Source) -> anyhow::Result<Source> {
    let Some(tunnel) = &source.https_tunnel else {
        return Ok(source.clone());
    };
    let uri = source.uri.trim();
    let Some(target) = ssh_target(uri) else {
        return Err(InvalidRequest::new(
            "source.https_tunnel: only ssh URIs (ssh://… or user@host:path) can be tunnelled",
        )
        .into());
    };
    let local = start(tunnel, &target)?;
    let mut routed = source.clone();
    routed.uri = rewrite(uri, &target, local.port);
    routed.original_uri = Some(uri.to_owned());
    Ok(routed)
}

/// Where an ssh URI points: user (with `@`), host, port, path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SshTarget {
    user: String,
    host: String,
    port: u16,
    path: String,
}

fn ssh_target(uri: &str) -> Option<SshTarget> {
    if let Some(rest) = uri.strip_prefix("ssh://") {
        let (authority, path) = rest.split_at(rest.find('/')?);
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host),
            None => (String::new(), authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (host_port, 22),
        };
        return Some(SshTarget {
            user,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        });
    }
    if uri.contains("://") || uri.starts_with('/') {
        return None;
    }
    let (authority, path) = uri.split_once(':')?;
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Some(SshTarget {
        user,
        host: host.to_owned(),
        port: 22,
        path,
    })
}

fn rewrite(_uri: &str, target: &SshTarget, port: u16) -> String {
    format!("ssh://{}127.0.0.1:{port}{}", target.user, target.path)
}

fn start(config: &HttpsTunnel, target: &SshTarget) -> anyhow::Result<Tunnel> {
    let connect = Connect {
        proxy: format!("{}:{}", config.proxy_host, config.proxy_port),
        target: format!("{}:{}", target.host, target.port),
        authorization: match (&config.proxy_user, &config.proxy_password) {
            (Some(user), Some(password)) => Some(
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose())),
            ),
            _ => None,
        },
    };
    let first = connect.open()?;
    let listener = TcpListener::bind("127.0.0.1:0").context("https_tunnel: listening locally")?;
    let port = listener.local_addr()?.port();
    let pending = Mutex::new(Some(first));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = match pending.lock().ok().and_then(|mut p| p.take()) {
                Some(stream) => Ok(stream),
                None => connect.open(),
            };
            match upstream {
                Ok(upstream) => splice(client, upstream),
                Err(err) => {
                    tracing::warn!("{err:#}");
                    let _ = client.shutdown(Shutdown::Both);
                }
            }
        }
    });
    Ok(Tunnel { port })
}

/// How to open one tunnel through the proxy.
struct Connect {
    proxy: String,
    target: String,
    authorization: Option<String>,
}

impl Connect {
    fn open(&self) -> anyhow::Result<TcpStream> {
        let stream = TcpStream::connect(&self.proxy)
            .with_context(|| format!("source.https_tunnel: cannot reach proxy {}", self.proxy))?;
        stream.set_read_timeout(Some(PROXY_TIMEOUT))?;
        let mut request = format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n",
            target = self.target
        );
        if let Some(auth) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: Basic {auth}\r\n"));
        }
        request.push_str("\r\n");
        (&stream).write_all(request.as_bytes())?;
        // Read the answer byte by byte so nothing after the header is swallowed.
        let mut reader = BufReader::with_capacity(1, &stream);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
        }
        let code = status.split_whitespace().nth(1).unwrap_or_default();
        if code != "200" {
            bail!(
                "source.https_tunnel: proxy {} refused CONNECT {}: {}",
                self.proxy,
                self.target,
                status.trim()
            );
        }
        stream.set_read_timeout(None)?;
        Ok(stream)
    }
}

/// Copies bytes both ways until either side closes.
fn splice(client: TcpStream, upstream: TcpStream) {
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    std::thread::spawn(move || copy(client, upstream));
    std::thread::spawn(move || copy(upstream2, client2));
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_targets() {
        let target = |user: &str, host: &str, port, path: &str| SshTarget {
            user: user.into(),
            host: host.into(),
            port,
            path: path.into(),
        };
        let cases = [
            (
                "ssh://git@h:2222/srv/r.git",
                Some(target("git@", "h", 2222, "/srv/r.git")),
            ),
            ("ssh://h/r.git", Some(target("", "h", 22, "/r.git"))),
            (
                "git@github.com:org/r.git",
                Some(target("git@", "github.com", 22, "/org/r.git")),
            ),
            ("https://h/r.git", None),
            ("/local/r.git", None),
        ];
        for (uri, expect) in cases {
            assert_eq!(ssh_target(uri), expect, "{uri}");
        }
        let t = target("git@", "h", 2222, "/srv/r.git");
        assert_eq!(rewrite("", &t, 4000), "ssh://git@127.0.0.1:4000/srv/r.git");
    }
}
