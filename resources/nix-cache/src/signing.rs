//! Ed25519 keys and signatures in Nix's format: secret keys `name:base64(64 bytes)`, public
//! keys `name:base64(32 bytes)`, signatures `name:base64(64 bytes)` over a narinfo's
//! fingerprint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::narinfo::NarInfo;

/// A key that cannot be parsed. The message never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

fn split_key<'a>(what: &str, text: &'a str, bytes: usize) -> Result<(&'a str, Vec<u8>), KeyError> {
    let text = text.trim();
    let (name, data) = text
        .split_once(':')
        .ok_or_else(|| KeyError(format!("{what}: expected name:base64")))?;
    if name.is_empty() {
        return Err(KeyError(format!("{what}: empty key name")));
    }
    let data = STANDARD
        .decode(data)
        .map_err(|_| KeyError(format!("{what} {name:?}: key is not valid base64")))?;
    if data.len() != bytes {
        return Err(KeyError(format!(
            "{what} {name:?}: key has {} bytes, expected {bytes}",
            data.len()
        )));
    }
    Ok((name, data))
}

/// A Nix signing (secret) key.
pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({:?}, <redacted>)", self.name)
    }
}

impl SecretKey {
    /// Parses `name:base64(seed ‖ public key)` as `nix key generate-secret` writes it.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, data) = split_key("secret key", text, 64)?;
        let bytes: [u8; 64] = data
            .try_into()
            .map_err(|_| KeyError("secret key: key has the wrong length".into()))?;
        let key = SigningKey::from_keypair_bytes(&bytes).map_err(|_| {
            KeyError(format!(
                "secret key {name:?}: public half does not match the secret half"
            ))
        })?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching public key, `name:base64`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// A `name:base64` signature of `fingerprint`.
    pub fn sign(&self, fingerprint: &str) -> String {
        let sig = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, STANDARD.encode(sig.to_bytes()))
    }

    /// Signs `info`, replacing any earlier signature by a key of the same name.
    pub fn sign_narinfo(&self, info: &mut NarInfo) {
        let prefix = format!("{}:", self.name);
        info.sigs.retain(|s| !s.starts_with(&prefix));
        info.sigs.push(self.sign(&info.fingerprint()));
    }
}

/// A trusted public key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parses `name:base64(32 bytes)`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, data) = split_key("public key", text, 32)?;
        let bytes: [u8; 32] = data
            .try_into()
            .map_err(|_| KeyError("public key: key has the wrong length".into()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError(format!("public key {name:?}: not a valid ed25519 point")))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name:base64`, as `nix key convert-secret-to-public` prints it.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, STANDARD.encode(self.key.to_bytes()))
    }

    /// Whether `sig` (`name:base64`) is this key's valid signature of `fingerprint`.
    pub fn verifies(&self, fingerprint: &str, sig: &str) -> bool {
        let Some((name, data)) = sig.split_once(':') else {
            return false;
        };
        if name != self.name {
            return false;
        }
        let Ok(bytes) = STANDARD.decode(data) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.key.verify(fingerprint.as_bytes(), &signature).is_ok()
    }
}

/// Whether any of `info`'s signatures is valid under one of `keys`.
pub fn is_signed_by_any(info: &NarInfo, keys: &[PublicKey]) -> bool {
    let fingerprint = info.fingerprint();
    info.sigs
        .iter()
        .any(|sig| keys.iter().any(|k| k.verifies(&fingerprint, sig)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by `nix key generate-secret --key-name test-1` and `convert-secret-to-public`.
    const SECRET: &str = "test-1:zHC0DZmrrXcGNS6/Ck6+sOg/OCs3glR118vlKfYhPHxND//Saz2xbZEbM6RPwdH7tjPlb/DIA35/68X/ho9oAg==";
    const PUBLIC: &str = "test-1:TQ//0ms9sW2RGzOkT8HR+7Yz5W/wyAN+f+vF/4aPaAI=";

    #[test]
    fn keys_round_trip() {
        let secret = SecretKey::parse(SECRET).unwrap();
        assert_eq!(secret.public_key().to_text(), PUBLIC);
        let public = PublicKey::parse(PUBLIC).unwrap();
        let sig = secret.sign("1;x;y;0;");
        assert!(public.verifies("1;x;y;0;", &sig));
        assert!(!public.verifies("1;x;y;1;", &sig));
        assert!(!public.verifies("1;x;y;0;", &sig.replacen("test-1", "other", 1)));
        assert!(!format!("{secret:?}").contains("zHC0"));
    }

    #[test]
    fn rejects_malformed_keys() {
        let cases = [
            ("nocolon", "expected name:base64"),
            (":AAAA", "empty key name"),
            ("k:!!!", "not valid base64"),
            ("k:AAAA", "key has 3 bytes, expected"),
        ];
        for (input, expect) in cases {
            for err in [
                SecretKey::parse(input).unwrap_err().to_string(),
                PublicKey::parse(input).unwrap_err().to_string(),
            ] {
                assert!(err.contains(expect), "{input}: {err}");
            }
        }
        // A secret key whose public half was altered.
        let mut bytes = STANDARD.decode(SECRET.split_once(':').unwrap().1).unwrap();
        bytes[63] ^= 1;
        let err = SecretKey::parse(&format!("test-1:{}", STANDARD.encode(bytes))).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(!err.to_string().contains("zHC0"));
    }
}
