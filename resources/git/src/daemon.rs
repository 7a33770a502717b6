//! The `git://` transport, replacing libgit2's own so that negotiation does not stall.
//!
//! `git upload-pack` writes its negotiation answers (one `ACK … common` line per `have`) in
//! separate small writes with Nagle's algorithm on: after the first, the rest wait until the
//! client acknowledges it, and a client that delays its acknowledgements (Linux: 40 ms) stalls
//! every fetch that needs a negotiation round (an incremental check of a cache with more than
//! 20 commits). This transport is libgit2's `git://` transport (same request line, same smart
//! protocol on top) on a socket that acknowledges every read at once (`TCP_QUICKACK`, which
//! Linux clears after use, so it is set again before each read) and sends without delay. It
//! also bounds the connect with the same timeout and message as [`probe_reachable`], so
//! `git://` remotes need no separate probe connection (each costs the daemon a fork).
//!
//! [`probe_reachable`]: crate::transport::probe_reachable

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Once;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};

/// The port `git://` URLs default to.
const DEFAULT_PORT: u16 = 9418;

/// Replaces libgit2's `git://` transport with [`GitDaemon`] for the whole process (once).
pub fn register() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: registration must not race with the creation of other transports; it runs
        // once, from `configure_libgit2`, before any remote is opened.
        let registered = unsafe {
            git2::transport::register("git", |remote| Transport::smart(remote, false, GitDaemon))
        };
        if let Err(err) = registered {
            tracing::warn!("using libgit2's git:// transport: {}", err.message());
        }
    });
}

/// The parts of a `git://` URL the daemon needs.
#[derive(Debug, PartialEq, Eq)]
struct DaemonUrl {
    host: String,
    port: u16,
    /// `host` or `host:port` as written in the URL (the request's `host=` field).
    authority: String,
    /// The path asked for, `/r.git` (or `~user/r.git`, as libgit2 and git send it).
    path: String,
}

fn parse_url(url: &str) -> Option<DaemonUrl> {
    let rest = url
        .get(..6)?
        .eq_ignore_ascii_case("git://")
        .then(|| &url[6..])?;
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    let path = if path.starts_with("/~") {
        &path[1..]
    } else {
        path
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) if !port.is_empty() => port.parse().ok()?,
        _ => DEFAULT_PORT,
    };
    (!host.is_empty()).then(|| DaemonUrl {
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        path: path.to_owned(),
    })
}

/// The first packet: `git-upload-pack /r.git\0host=example.com\0`.
fn request_line(command: &str, url: &DaemonUrl) -> Vec<u8> {
    let body = format!("{command} {}\0host={}\0", url.path, url.authority);
    let mut line = format!("{:04x}", body.len() + 4).into_bytes();
    line.extend_from_slice(body.as_bytes());
    line
}

/// The `git://` smart subtransport.
struct GitDaemon;

impl SmartSubtransport for GitDaemon {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let command = match action {
            Service::UploadPackLs | Service::UploadPack => "git-upload-pack",
            Service::ReceivePackLs | Service::ReceivePack => "git-receive-pack",
        };
        let shown = crate::transport::redact_url(url);
        let parsed = parse_url(url)
            .ok_or_else(|| git2::Error::from_str(&format!("malformed URL {shown}")))?;
        let mut stream = connect(&parsed)
            .map_err(|err| git2::Error::from_str(&format!("cannot reach {shown}: {err}")))?;
        stream
            .write_all(&request_line(command, &parsed))
            .map_err(|err| git2::Error::from_str(&format!("sending to {shown}: {err}")))?;
        Ok(Box::new(DaemonStream { stream }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

fn connect(url: &DaemonUrl) -> Result<TcpStream, String> {
    let DaemonUrl { host, port, .. } = url;
    let addrs: Vec<_> = (host.as_str(), *port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {host}: {err}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, crate::transport::CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Requests are written whole; nothing gains from coalescing them.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last = Some(err),
        }
    }
    Err(match last {
        Some(err) => format!("connecting to {host}:{port}: {err}"),
        None => format!("{host} has no addresses"),
    })
}

/// A connection to the daemon that acknowledges what it reads at once.
struct DaemonStream {
    stream: TcpStream,
}

impl Read for DaemonStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        quickack(&self.stream);
        self.stream.read(buf)
    }
}

impl Write for DaemonStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn quickack(stream: &TcpStream) {
    #[cfg(target_os = "android")]
    use std::os::android::net::TcpStreamExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::TcpStreamExt;
    let _ = stream.set_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quickack(_stream: &TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let url = |host: &str, port, authority: &str, path: &str| {
            Some(DaemonUrl {
                host: host.into(),
                port,
                authority: authority.into(),
                path: path.into(),
            })
        };
        let cases = [
            (
                "git://127.0.0.1:9999/r.git",
                url("127.0.0.1", 9999, "127.0.0.1:9999", "/r.git"),
            ),
            (
                "git://example.com/a/b.git",
                url("example.com", 9418, "example.com", "/a/b.git"),
            ),
            (
                "GIT://example.com/~user/r",
                url("example.com", 9418, "example.com", "~user/r"),
            ),
            ("git://[::1]:9419/r", url("::1", 9419, "[::1]:9419", "/r")),
            ("git://example.com", None),
            ("git://:9418/r", None),
            ("git://h:port/r", None),
            ("ssh://h/r", None),
        ];
        for (input, expect) in cases {
            assert_eq!(parse_url(input), expect, "{input}");
        }
    }

    #[test]
    fn builds_request_lines() {
        let url = parse_url("git://127.0.0.1:9999/r.git").unwrap();
        assert_eq!(
            request_line("git-upload-pack", &url),
            b"002fgit-upload-pack /r.git\0host=127.0.0.1:9999\0".to_vec()
        );
    }
}
