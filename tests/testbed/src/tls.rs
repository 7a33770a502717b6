//! Throw-away certificate authorities made with the `openssl` CLI, for TLS servers on 127.0.0.1.
//!
//! Keys are P-256 (fast to generate); the server certificate names `IP:127.0.0.1` and
//! `DNS:localhost`. Never used outside tests.

use std::path::{Path, PathBuf};

use crate::tools::{require, run};

/// A self-signed CA and one server certificate it signed, as files in a directory.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// PEM of the CA certificate clients must trust.
    pub ca_cert_pem: String,
    /// The CA certificate file.
    pub ca_cert: PathBuf,
    /// A directory holding only `ca.crt`, in the layout `skopeo --cert-dir` and containers'
    /// `certs.d` expect.
    pub cert_dir: PathBuf,
    /// The server certificate (PEM).
    pub server_cert: PathBuf,
    /// The server's private key (PEM, unencrypted).
    pub server_key: PathBuf,
}

/// Generates a CA and a server certificate for `127.0.0.1`/`localhost` under `dir`.
pub fn generate_ca(dir: &Path) -> TestCa {
    let openssl = require("openssl", "openssl");
    let cert_dir = dir.join("certs");
    std::fs::create_dir_all(&cert_dir).expect("create cert dir");
    let ca_cert = cert_dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let server_key = dir.join("server.key");
    let server_csr = dir.join("server.csr");
    let server_cert = dir.join("server.crt");
    let extensions = dir.join("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write certificate extensions");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let path = |p: &Path| p.display().to_string();
    run(
        &openssl,
        [
            "req",
            "-x509",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=testbed CA",
        ]
        .into_iter()
        .map(String::from)
        .chain(ec.map(String::from))
        .chain([
            "-keyout".into(),
            path(&ca_key),
            "-out".into(),
            path(&ca_cert),
        ]),
        dir,
    );
    run(
        &openssl,
        ["req", "-nodes", "-subj", "/CN=localhost"]
            .into_iter()
            .map(String::from)
            .chain(ec.map(String::from))
            .chain([
                "-keyout".into(),
                path(&server_key),
                "-out".into(),
                path(&server_csr),
            ]),
        dir,
    );
    run(
        &openssl,
        [
            "x509",
            "-req",
            "-days",
            "30",
            "-set_serial",
            "2",
            "-in",
            &path(&server_csr),
            "-CA",
            &path(&ca_cert),
            "-CAkey",
            &path(&ca_key),
            "-extfile",
            &path(&extensions),
            "-out",
            &path(&server_cert),
        ],
        dir,
    );
    TestCa {
        ca_cert_pem: std::fs::read_to_string(&ca_cert).expect("read CA certificate"),
        ca_cert,
        cert_dir,
        server_cert,
        server_key,
    }
}
