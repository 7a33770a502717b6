//! Runs a private nginx (in the foreground, as root) for one `server` block, with every path it
//! writes (pid, logs, temp files) inside its own temp dir so parallel tests never collide.
//!
//! Used by [`crate::git::GitHttp`] and [`crate::nix::WebDavCache`]; it must never touch
//! `/etc/nginx` or `/var/lib/nginx`.

use std::net::SocketAddr;
use std::path::Path;

use crate::tls::TestCa;
use crate::tools::{START_TIMEOUT, ServerProcess, require, retry_start, run};

/// A running nginx; killed with its workers when dropped.
pub struct Nginx {
    process: ServerProcess,
    addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx in `dir` with the `server { … }` body that `server_body(addr)` returns for
    /// the listening address (`listen` is added here). Panics with nginx's log if it fails.
    pub fn start(dir: &Path, server_body: impl Fn(SocketAddr) -> String) -> Nginx {
        Self::start_with(dir, None, server_body)
    }

    /// [`Nginx::start`] serving HTTPS with the server certificate of `ca`.
    pub fn start_tls(dir: &Path, ca: &TestCa, server_body: impl Fn(SocketAddr) -> String) -> Nginx {
        Self::start_with(dir, Some(ca), server_body)
    }

    fn start_with(
        dir: &Path,
        ca: Option<&TestCa>,
        server_body: impl Fn(SocketAddr) -> String,
    ) -> Nginx {
        let tls = ca.map_or(String::new(), |ca| {
            format!(
                "ssl_certificate {};\nssl_certificate_key {};\n",
                ca.server_cert.display(),
                ca.server_key.display()
            )
        });
        let listen_suffix = if ca.is_some() { " ssl" } else { "" };
        let nginx = require("nginx", "nginx-light");
        let temp = dir.join("nginx-temp");
        std::fs::create_dir_all(&temp).expect("create nginx temp dir");
        let conf = dir.join("nginx.conf");
        let log = dir.join("nginx.log");
        let (process, addr) = retry_start("nginx", |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let temp = temp.display();
            let config = format!(
                "daemon off;\n\
                 worker_processes 1;\n\
                 user root root;\n\
                 pid {dir}/nginx.pid;\n\
                 error_log {log} info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 access_log {dir}/access.log;\n\
                 client_body_temp_path {temp}/body;\n\
                 fastcgi_temp_path {temp}/fastcgi;\n\
                 proxy_temp_path {temp}/proxy;\n\
                 scgi_temp_path {temp}/scgi;\n\
                 uwsgi_temp_path {temp}/uwsgi;\n\
                 server {{\n\
                 listen {addr}{listen_suffix};\n\
                 {tls}\
                 {body}\n\
                 }}\n\
                 }}\n",
                dir = dir.display(),
                log = log.display(),
                body = server_body(addr),
            );
            std::fs::write(&conf, config).map_err(|e| format!("write nginx.conf: {e}"))?;
            let mut command = resource_protocol::process::command(&nginx, dir);
            command
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&log);
            let mut process = ServerProcess::spawn("nginx", command, &log)?;
            process.wait_listening(addr, START_TIMEOUT)?;
            Ok((process, addr))
        });
        Nginx { process, addr }
    }

    /// The address nginx listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last few KB of nginx's error log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// An nginx `auth_basic_user_file` line for `user`/`pass` (apr1 hash, which nginx accepts).
pub fn htpasswd_line(dir: &Path, user: &str, pass: &str) -> String {
    let openssl = require("openssl", "openssl");
    let hash = run(&openssl, ["passwd", "-apr1", pass], dir);
    format!("{user}:{}\n", String::from_utf8_lossy(&hash).trim())
}
