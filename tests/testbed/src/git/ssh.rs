//! An OpenSSH server for git over `ssh://`, with client keys of each kind tests need.
//!
//! The server accepts public keys only. Keys are made once per machine (RSA generation is slow)
//! and shared read-only by every test. Four client keys are authorized: ed25519 in OpenSSH
//! format without and with a passphrase, and RSA in PEM (`BEGIN RSA PRIVATE KEY`) format without
//! and with a passphrase. scp-style URLs (`user@host:path`) cannot name a port, so only
//! `ssh://` URLs reach this server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::tools::{START_TIMEOUT, ServerProcess, require, retry_start, run, temp_dir};

/// The passphrase of the passphrase-protected keys.
pub const KEY_PASSPHRASE: &str = "correct horse battery staple";

/// A client key pair the server authorizes.
#[derive(Debug, Clone)]
pub struct SshKey {
    /// The private key file's text (OpenSSH or PEM format).
    pub private_key: String,
    /// The `authorized_keys` line.
    pub public_key: String,
    /// The passphrase protecting the private key, if any.
    pub passphrase: Option<String>,
    /// The private key file (mode 0600).
    pub path: PathBuf,
    askpass: Option<PathBuf>,
}

impl SshKey {
    /// Environment for `git`/`ssh` to use this key against the test server: `GIT_SSH_COMMAND`
    /// (identity only this key, no host key checks) and, for protected keys, an `SSH_ASKPASS`
    /// script that answers the passphrase.
    pub fn git_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "GIT_SSH_COMMAND".to_owned(),
            format!(
                "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
                 -o UserKnownHostsFile=/dev/null -o BatchMode=no -o LogLevel=ERROR",
                self.path.display()
            ),
        )];
        if let Some(askpass) = &self.askpass {
            env.push(("SSH_ASKPASS".into(), askpass.display().to_string()));
            env.push(("SSH_ASKPASS_REQUIRE".into(), "force".into()));
            env.push(("DISPLAY".into(), ":0".into()));
        }
        env
    }
}

/// A running sshd; killed (with its connection forks) when dropped.
pub struct Sshd {
    process: ServerProcess,
    addr: SocketAddr,
    user: String,
    host_public_key: String,
    /// ed25519, OpenSSH format, no passphrase.
    pub key: SshKey,
    /// ed25519, OpenSSH format, protected by [`KEY_PASSPHRASE`].
    pub encrypted_key: SshKey,
    /// RSA 2048, PEM format, no passphrase.
    pub rsa_pem_key: SshKey,
    /// RSA 2048, PEM format, protected by [`KEY_PASSPHRASE`].
    pub encrypted_rsa_pem_key: SshKey,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Generates the host and client keys and starts sshd on `127.0.0.1:PORT` for the current
    /// user (root on CI).
    pub fn start() -> Sshd {
        let sshd = require("sshd", "openssh-server");
        let keygen = require("ssh-keygen", "openssh-client");
        require("ssh", "openssh-client");
        let dir = temp_dir("sshd");
        let path = dir.path();
        // sshd refuses to start without its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd")
            .unwrap_or_else(|e| panic!("sshd: cannot create /run/sshd: {e}"));
        let keys = crate::tools::machine_cache("ssh-keys-v1", |dir| {
            // Few KDF rounds: a protected key then decrypts in milliseconds, not half a second.
            let ed25519 = ["-t", "ed25519", "-a", "2"];
            let rsa_pem = ["-t", "rsa", "-b", "2048", "-m", "PEM"];
            for (name, kind, passphrase) in [
                ("host_ed25519", &ed25519[..], ""),
                ("id_ed25519", &ed25519[..], ""),
                ("id_ed25519_protected", &ed25519[..], KEY_PASSPHRASE),
                ("id_rsa_pem", &rsa_pem[..], ""),
                ("id_rsa_pem_protected", &rsa_pem[..], KEY_PASSPHRASE),
            ] {
                let mut args = vec!["-q", "-C", name, "-f", name, "-N", passphrase];
                args.extend_from_slice(kind);
                run(&keygen, &args, dir);
            }
        });
        let load = |name: &str, passphrase: Option<&str>| -> SshKey {
            let file = keys.join(name);
            let askpass = passphrase.map(|passphrase| {
                let script = path.join(format!("askpass-{name}"));
                std::fs::write(&script, format!("#!/bin/sh\necho '{passphrase}'\n"))
                    .expect("write askpass script");
                set_mode(&script, 0o700);
                script
            });
            SshKey {
                private_key: std::fs::read_to_string(&file).expect("read private key"),
                public_key: std::fs::read_to_string(file.with_extension("pub"))
                    .expect("read public key"),
                passphrase: passphrase.map(str::to_owned),
                path: file,
                askpass,
            }
        };
        let host = load("host_ed25519", None);
        let key = load("id_ed25519", None);
        let encrypted_key = load("id_ed25519_protected", Some(KEY_PASSPHRASE));
        let rsa_pem_key = load("id_rsa_pem", None);
        let encrypted_rsa_pem_key = load("id_rsa_pem_protected", Some(KEY_PASSPHRASE));
        let authorized = path.join("authorized_keys");
        std::fs::write(
            &authorized,
            [&key, &encrypted_key, &rsa_pem_key, &encrypted_rsa_pem_key]
                .map(|k| k.public_key.clone())
                .concat(),
        )
        .expect("write authorized_keys");
        let user = current_user(path);
        // Sessions get an empty HOME: the login shell (bash sources ~/.bashrc for ssh commands)
        // and git then read nothing from the machine's account, and start fast.
        let session_home = path.join("session-home");
        std::fs::create_dir_all(&session_home).expect("create ssh session home");
        let config = path.join("sshd_config");
        let log = path.join("sshd.log");
        let (process, addr) = retry_start("sshd", |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host}\n\
                     AuthorizedKeysFile {authorized}\nPidFile {pid}\nStrictModes no\n\
                     PubkeyAuthentication yes\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\n\
                     PermitRootLogin prohibit-password\nUseDNS no\nMaxStartups 100\n\
                     LogLevel VERBOSE\nSetEnv HOME={home} GIT_CONFIG_NOSYSTEM=1\n",
                    host = host.path.display(),
                    authorized = authorized.display(),
                    pid = path.join("sshd.pid").display(),
                    home = session_home.display(),
                ),
            )
            .map_err(|e| format!("write sshd_config: {e}"))?;
            let mut command = resource_protocol::process::command(&sshd, path);
            command.arg("-D").arg("-f").arg(&config).arg("-E").arg(&log);
            let mut process = ServerProcess::spawn("sshd", command, &log)?;
            process.wait_listening(addr, START_TIMEOUT)?;
            Ok((process, addr))
        });
        Sshd {
            process,
            addr,
            user,
            host_public_key: host.public_key,
            key,
            encrypted_key,
            rsa_pem_key,
            encrypted_rsa_pem_key,
            dir,
        }
    }

    /// `ssh://USER@127.0.0.1:PORT/abs/path` for the repo at absolute `path`.
    pub fn ssh_url(&self, path: &Path) -> String {
        format!("ssh://{}@{}{}", self.user, self.addr, path.display())
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The user clients log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// A `known_hosts` line for the server: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        let mut fields = self.host_public_key.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let key = fields.next().unwrap_or_default();
        format!("[{}]:{} {kind} {key}\n", self.addr.ip(), self.addr.port())
    }

    /// The server's config and key directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last few KB of sshd's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// The login name of the user running the tests.
fn current_user(cwd: &Path) -> String {
    let id = require("id", "coreutils");
    String::from_utf8_lossy(&run(&id, ["-un"], cwd))
        .trim()
        .to_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
