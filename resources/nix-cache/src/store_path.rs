//! Store paths (`/nix/store/<hash>-<name>`): validation, the hash part that names narinfos, and
//! the computation of content-addressed paths (so a `CA` claim can be checked, not trusted).

use std::fmt;

use sha2::{Digest, Sha256};

use crate::hash::Sha256Hash;
use crate::nix32;

/// The store directory every path must live in.
pub const STORE_DIR: &str = "/nix/store";

/// A validated store path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath(String);

/// Why a store path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store path {path:?}: {reason}")]
pub struct StorePathError {
    path: String,
    reason: &'static str,
}

impl StorePath {
    /// Parses a full path under `/nix/store`.
    pub fn parse(path: &str) -> Result<Self, StorePathError> {
        let fail = |reason| StorePathError {
            path: path.chars().take(300).collect(),
            reason,
        };
        let base = path
            .strip_prefix(STORE_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| fail("not under /nix/store/"))?;
        Self::from_base_name(base).map_err(|e| fail(e.reason))
    }

    /// Parses a base name `<hash>-<name>` (as narinfo `References` hold).
    pub fn from_base_name(base: &str) -> Result<Self, StorePathError> {
        let fail = |reason| StorePathError {
            path: base.chars().take(300).collect(),
            reason,
        };
        let (hash, name) = base
            .split_at_checked(32)
            .ok_or_else(|| fail("too short for a 32-character hash"))?;
        if nix32::decode(hash, 20).is_err() {
            return Err(fail("hash part is not 32 nix32 characters"));
        }
        let name = name
            .strip_prefix('-')
            .ok_or_else(|| fail("expected '-' after the hash"))?;
        if name.is_empty() || name.len() > 211 {
            return Err(fail("name must have 1 to 211 characters"));
        }
        if name.starts_with('.') {
            return Err(fail("name must not start with '.'"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
        {
            return Err(fail("name has a character outside [A-Za-z0-9+-._?=]"));
        }
        Ok(Self(format!("{STORE_DIR}/{base}")))
    }

    /// The full path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.0[STORE_DIR.len() + 1..]
    }

    /// The 32-character hash part, which names the narinfo.
    pub fn hash_part(&self) -> &str {
        &self.base_name()[..32]
    }

    /// The name after the hash.
    pub fn name(&self) -> &str {
        &self.base_name()[33..]
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Nix's `makeStorePath`: the path for a typed fingerprint of `hash` named `name`.
fn make_store_path(kind: &str, hash: &Sha256Hash, name: &str) -> Result<StorePath, StorePathError> {
    let fingerprint = format!("{kind}:sha256:{}:{STORE_DIR}:{name}", hex::encode(hash.0));
    let digest = Sha256::digest(fingerprint.as_bytes());
    let mut compressed = [0u8; 20];
    for (i, byte) in digest.iter().enumerate() {
        compressed[i % 20] ^= byte;
    }
    StorePath::from_base_name(&format!("{}-{name}", nix32::encode(&compressed)))
}

/// Whether `ca` (a narinfo `CA` field) with these references really produces `path`, as Nix
/// checks before it exempts a content-addressed path from signature checks.
pub fn content_address_matches(
    path: &StorePath,
    ca: &str,
    nar_hash: &Sha256Hash,
    references: &[StorePath],
) -> bool {
    let self_reference = references.contains(path);
    let mut others: Vec<&StorePath> = references.iter().filter(|r| *r != path).collect();
    others.sort();
    let typed = |kind: &str| {
        let mut s = kind.to_owned();
        for r in &others {
            s.push(':');
            s.push_str(r.as_str());
        }
        if self_reference {
            s.push_str(":self");
        }
        s
    };
    let expected = if let Some(hash) = ca.strip_prefix("text:") {
        if self_reference {
            return false;
        }
        match Sha256Hash::parse(hash) {
            Ok(h) => make_store_path(&typed("text"), &h, path.name()),
            Err(_) => return false,
        }
    } else if let Some(rest) = ca.strip_prefix("fixed:") {
        let (recursive, hash) = match rest.strip_prefix("r:") {
            Some(hash) => (true, hash),
            None => (false, rest),
        };
        if recursive && hash.starts_with("sha256:") {
            match Sha256Hash::parse(hash) {
                // The recursive hash is the NAR hash; a claim that disagrees is false.
                Ok(h) if h == *nar_hash => make_store_path(&typed("source"), &h, path.name()),
                _ => return false,
            }
        } else {
            // Fixed outputs hashed another way cannot have references.
            if !references.is_empty() {
                return false;
            }
            let Some((algo, digest)) = hash.split_once(':') else {
                return false;
            };
            let hex_digest = if algo == "sha256" {
                match Sha256Hash::parse(hash) {
                    Ok(h) => hex::encode(h.0),
                    Err(_) => return false,
                }
            } else if digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                digest.to_owned()
            } else {
                // Other algorithms in nix32/base64 are too rare to be worth decoding here.
                return false;
            };
            let inner = format!(
                "fixed:out:{}{algo}:{hex_digest}:",
                if recursive { "r:" } else { "" }
            );
            let inner_hash = Sha256Hash(Sha256::digest(inner.as_bytes()).into());
            make_store_path("output:out", &inner_hash, path.name())
        }
    } else {
        return false;
    };
    expected.is_ok_and(|e| e == *path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_paths() {
        let ok = "/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-hello-2.12";
        let p = StorePath::parse(ok).unwrap();
        assert_eq!(p.hash_part(), "7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh");
        assert_eq!(p.name(), "hello-2.12");
        assert_eq!(p.base_name(), "7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-hello-2.12");
        let bad = [
            ("/usr/bin/x", "not under /nix/store/"),
            ("/nix/store/short", "too short"),
            (
                "/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvze-x",
                "not 32 nix32",
            ),
            (
                "/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh_x",
                "expected '-'",
            ),
            ("/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-", "1 to 211"),
            (
                "/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-.x",
                "start with '.'",
            ),
            ("/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-a/b", "outside"),
            (
                "/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-..",
                "start with '.'",
            ),
        ];
        for (input, reason) in bad {
            let err = StorePath::parse(input).unwrap_err().to_string();
            assert!(err.contains(reason), "{input}: {err}");
        }
    }
}
