//! SHA-256 hashes as Nix writes them: `sha256:<nix32>` on output; on input also
//! `sha256:<hex>`, `sha256:<base64>` and SRI `sha256-<base64>`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::nix32;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hash(pub [u8; 32]);

/// Why a hash string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hash {input:?}: {reason}")]
pub struct HashError {
    input: String,
    reason: String,
}

impl Sha256Hash {
    /// Parses `sha256:<nix32|hex|base64>` or `sha256-<base64>` (SRI).
    pub fn parse(input: &str) -> Result<Self, HashError> {
        let fail = |reason: &str| HashError {
            input: input.chars().take(100).collect(),
            reason: reason.to_owned(),
        };
        let (algo, digest, sri) = match (input.split_once(':'), input.split_once('-')) {
            (Some((algo, digest)), _) => (algo, digest, false),
            (None, Some((algo, digest))) => (algo, digest, true),
            (None, None) => return Err(fail("expected sha256:<digest> or sha256-<base64>")),
        };
        if algo != "sha256" {
            return Err(fail(&format!(
                "unsupported algorithm {algo:?}, only sha256"
            )));
        }
        let bytes = match (sri, digest.len()) {
            (false, 64) => hex::decode(digest).map_err(|e| fail(&format!("bad hex: {e}")))?,
            (false, 52) => nix32::decode(digest, 32).map_err(|e| fail(&e.to_string()))?,
            (_, 44) => STANDARD
                .decode(digest)
                .map_err(|e| fail(&format!("bad base64: {e}")))?,
            (true, _) => return Err(fail("SRI digest must be 44 base64 characters")),
            (false, n) => {
                return Err(fail(&format!(
                    "digest has {n} characters, expected 52 (nix32), 64 (hex) or 44 (base64)"
                )));
            }
        };
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| fail("digest is not 32 bytes"))?;
        Ok(Self(array))
    }

    /// `sha256:<nix32>`, the form narinfos and fingerprints use.
    pub fn to_nix32_string(&self) -> String {
        format!("sha256:{}", nix32::encode(&self.0))
    }

    /// `sha256:<hex>`, the form attic's API uses.
    pub fn to_hex_string(&self) -> String {
        format!("sha256:{}", hex::encode(self.0))
    }

    /// The bare nix32 digest (used in file names).
    pub fn nix32(&self) -> String {
        nix32::encode(&self.0)
    }

    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(data).into())
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nix32_string())
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nix32_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIX32: &str = "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";

    fn check(input: &str, expect: Result<&str, &str>) {
        let got = Sha256Hash::parse(input)
            .map(|h| h.to_nix32_string())
            .map_err(|e| e.to_string());
        match expect {
            Ok(e) => assert_eq!(got.as_deref(), Ok(e), "{input}"),
            Err(e) => {
                let msg = got.expect_err(input);
                assert!(msg.contains(e), "{input}: {msg}");
            }
        }
    }

    #[test]
    fn parses_every_spelling() {
        check(NIX32, Ok(NIX32));
        check(
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            Ok(NIX32),
        );
        check(
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            Ok(NIX32),
        );
        check(
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            Ok(NIX32),
        );
        check("sha1:abc", Err("unsupported algorithm \"sha1\""));
        check("sha256:abc", Err("digest has 3 characters"));
        check("sha256-abc", Err("SRI digest must be 44"));
        check("nothing", Err("expected sha256:<digest>"));
        check(
            "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e",
            Err("invalid nix32 character 'e'"),
        );
        assert_eq!(
            Sha256Hash::of(b"").to_hex_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
