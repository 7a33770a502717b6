//! An HTTP proxy on 127.0.0.1 for proxy and tunnel tests (`https_tunnel`, `http_proxy`):
//! `CONNECT host:port` tunnels, and absolute-form requests (`GET http://host/path`) forwarded
//! to the origin. Optional Basic proxy auth (`Proxy-Authorization`, 407 otherwise). Only
//! loopback targets are allowed. Runs in-process on its own thread; stops when dropped.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest request head the proxy reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// `CONNECT`, `GET`, …
    pub method: String,
    /// `host:port` for CONNECT, the absolute URL otherwise.
    pub target: String,
    /// The user from `Proxy-Authorization`, if any.
    pub user: Option<String>,
    /// Whether the proxy let it through.
    pub allowed: bool,
}

/// A running proxy; stops when dropped.
pub struct HttpProxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<ProxyRequest>>>,
    credentials: Option<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HttpProxy {
    /// Starts a proxy; with `credentials`, every request needs them as Basic proxy auth.
    pub fn start(credentials: Option<(&str, &str)>) -> HttpProxy {
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::new(Shared {
            requests: Arc::clone(&requests),
            credentials: credentials.clone(),
        });
        std::thread::Builder::new()
            .name("http-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("proxy listener");
                    loop {
                        tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => {
                                if let Ok((client, _)) = accepted {
                                    tokio::spawn(serve(client, Arc::clone(&shared)));
                                }
                            }
                        }
                    }
                });
            })
            .expect("spawn proxy thread");
        HttpProxy {
            addr,
            requests,
            credentials,
            shutdown: Some(shutdown),
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `http_proxy`/`https_proxy`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The accepted `(user, pass)`, if the proxy needs auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, pass)| (user.as_str(), pass.as_str()))
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

struct Shared {
    requests: Arc<Mutex<Vec<ProxyRequest>>>,
    credentials: Option<(String, String)>,
}

/// Handles one client connection: reads the request head, checks auth, then tunnels.
async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let version = parts.next().unwrap_or("HTTP/1.1").to_owned();
    let headers: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    let user_pass = headers
        .iter()
        .find_map(|line| header_value(line, "proxy-authorization"))
        .and_then(|value| value.strip_prefix("Basic ").map(str::trim))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        });
    let authorized = match &shared.credentials {
        None => true,
        Some(expected) => user_pass.as_ref() == Some(expected),
    };
    let upstream_addr = if method == "CONNECT" {
        Some(target.clone())
    } else {
        origin_of(&target)
    };
    let loopback = upstream_addr.as_deref().is_some_and(is_loopback_target);
    let allowed = authorized && loopback;
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(ProxyRequest {
            method: method.clone(),
            target: target.clone(),
            user: user_pass.map(|(user, _)| user),
            allowed,
        });
    }
    if !authorized {
        let _ = client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"testbed proxy\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let upstream = match upstream_addr {
        Some(addr) if loopback => TcpStream::connect(addr).await.ok(),
        _ => None,
    };
    let Some(mut upstream) = upstream else {
        let _ = client
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    };
    if method == "CONNECT" {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    } else {
        // Forward the request in origin form, without the proxy's own headers.
        let path = path_of(&target);
        let mut forwarded = format!("{method} {path} {version}\r\n");
        for line in headers {
            if !line.to_ascii_lowercase().starts_with("proxy-") {
                forwarded.push_str(line);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("\r\n");
        if upstream.write_all(forwarded.as_bytes()).await.is_err() {
            return;
        }
    }
    if upstream.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Reads up to the end of the request head; returns the head and any bytes read past it.
async fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            return Some((buf, rest));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return None;
        }
    }
}

/// The value of header `line` if its name is `name` (case-insensitive).
fn header_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once(':')?;
    key.trim()
        .eq_ignore_ascii_case(name)
        .then_some(value.trim())
}

/// `host:port` of an absolute `http://` URL.
fn origin_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    Some(if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

/// The path (and query) of an absolute URL; `/` when it has none.
fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.find('/')
        .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned())
}

/// Whether `host:port` names a loopback host.
fn is_loopback_target(target: &str) -> bool {
    let host = target
        .rsplit_once(':')
        .map_or(target, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/a/b?c"),
            Some("127.0.0.1:8080".into())
        );
        assert_eq!(
            origin_of("http://u:p@localhost/x"),
            Some("localhost:80".into())
        );
        assert_eq!(origin_of("https://x"), None);
        assert_eq!(path_of("http://127.0.0.1:8080/a/b?c"), "/a/b?c");
        assert_eq!(path_of("http://127.0.0.1:8080"), "/");
        for (target, loopback) in [
            ("127.0.0.1:22", true),
            ("localhost:443", true),
            ("[::1]:22", true),
            ("github.com:443", false),
            ("10.0.0.1:22", false),
        ] {
            assert_eq!(is_loopback_target(target), loopback, "{target}");
        }
    }
}
