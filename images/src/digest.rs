//! Content digests computed while bytes are written, and canonical JSON for blobs.
//!
//! `oci-spec` keeps labels and annotations in `HashMap`s, whose iteration order changes from run
//! to run; every JSON blob therefore goes through [`canonical_json`], which sorts object keys, so
//! the same content always has the same digest.

use std::io::{self, Write};

use sha2::{Digest as _, Sha256};

/// A `Write` adapter that hashes (SHA-256) and counts everything written through it.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Flushes and returns the inner writer, the digest (`sha256:<hex>`) and the byte count.
    pub fn finish(mut self) -> io::Result<(W, String, u64)> {
        self.inner.flush()?;
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok((self.inner, digest, self.written))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `value` as compact JSON with every object's keys sorted.
pub fn canonical_json(value: &impl serde::Serialize) -> serde_json::Result<Vec<u8>> {
    let mut value = serde_json::to_value(value)?;
    sort_keys(&mut value);
    serde_json::to_vec(&value)
}

fn sort_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn writer_hashes_what_passes_through() {
        let mut writer = DigestWriter::new(Vec::new());
        writer.write_all(b"hello").unwrap();
        let (bytes, digest, size) = writer.finish().unwrap();
        assert_eq!(bytes, b"hello");
        assert_eq!(size, 5);
        assert_eq!(
            digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(digest, sha256_digest(b"hello"));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let map: HashMap<&str, serde_json::Value> = [
            ("z", serde_json::json!({"b": 1, "a": [{"d": 1, "c": 2}]})),
            ("a", serde_json::json!(null)),
            ("m", serde_json::json!("x")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            String::from_utf8(canonical_json(&map).unwrap()).unwrap(),
            r#"{"a":null,"m":"x","z":{"a":[{"c":2,"d":1}],"b":1}}"#
        );
    }
}
