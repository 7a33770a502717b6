//! Content digests (`sha256:<hex>`, `sha512:<hex>`): validation and incremental verification.
//!
//! Every byte the client hands out was hashed on the way in; a mismatch is an error, never a
//! silently accepted blob.

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::RegistryError;

/// Checks that `digest` is `sha256:` + 64 or `sha512:` + 128 lowercase hex digits.
pub fn validate_digest(digest: &str) -> Result<(), String> {
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => is_lower_hex(hex, 64),
        Some(("sha512", hex)) => is_lower_hex(hex, 128),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid digest {digest:?}: expected sha256:<64 hex digits>"
        ))
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The `sha256:…` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Hashes a stream of chunks with the algorithm named by an expected digest.
#[derive(Clone)]
pub struct DigestVerifier {
    expected: String,
    state: HashState,
}

#[derive(Clone)]
enum HashState {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl DigestVerifier {
    /// A verifier for `expected` (validated).
    pub fn new(expected: &str) -> Result<Self, RegistryError> {
        validate_digest(expected).map_err(RegistryError::InvalidReference)?;
        let state = if expected.starts_with("sha512:") {
            HashState::Sha512(Sha512::new())
        } else {
            HashState::Sha256(Sha256::new())
        };
        Ok(Self {
            expected: expected.to_owned(),
            state,
        })
    }

    /// Feeds bytes.
    pub fn update(&mut self, chunk: &[u8]) {
        match &mut self.state {
            HashState::Sha256(h) => h.update(chunk),
            HashState::Sha512(h) => h.update(chunk),
        }
    }

    /// Forgets everything fed so far (a download restarted from byte 0).
    pub fn reset(&mut self) {
        self.state = match self.state {
            HashState::Sha256(_) => HashState::Sha256(Sha256::new()),
            HashState::Sha512(_) => HashState::Sha512(Sha512::new()),
        };
    }

    /// The digest of what was fed.
    pub fn actual(&self) -> String {
        match self.state.clone() {
            HashState::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            HashState::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }

    /// `Ok` when what was fed has the expected digest, else [`RegistryError::DigestMismatch`].
    pub fn verify(&self) -> Result<(), RegistryError> {
        let actual = self.actual();
        if actual == self.expected {
            Ok(())
        } else {
            Err(RegistryError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_digests() {
        let cases = [
            (format!("sha256:{}", "a".repeat(64)), true),
            (format!("sha512:{}", "0".repeat(128)), true),
            (format!("sha256:{}", "A".repeat(64)), false),
            (format!("sha256:{}", "a".repeat(63)), false),
            (format!("md5:{}", "a".repeat(32)), false),
            ("sha256".to_owned(), false),
            (String::new(), false),
        ];
        for (digest, ok) in cases {
            assert_eq!(validate_digest(&digest).is_ok(), ok, "{digest}");
        }
    }

    #[test]
    fn verifies_incrementally() {
        let expected = sha256_digest(b"hello world");
        let mut v = DigestVerifier::new(&expected).unwrap();
        v.update(b"hello ");
        v.update(b"world");
        v.verify().unwrap();
        v.update(b"!");
        let err = v.verify().unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        v.reset();
        v.update(b"hello world");
        v.verify().unwrap();
    }
}
