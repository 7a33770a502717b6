//! Nix's base-32 encoding ("nix32"): the alphabet without `e o u t`, least significant bits
//! first, as used in store path hashes and `sha256:` hashes in narinfos.

/// The 32 digits, in value order.
const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Why a nix32 string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nix32Error {
    /// The string has the wrong length for the expected byte count.
    #[error("nix32 string has {actual} characters, expected {expected}")]
    Length {
        /// Characters found.
        actual: usize,
        /// Characters expected.
        expected: usize,
    },
    /// A character outside the alphabet.
    #[error("invalid nix32 character {0:?}")]
    Character(char),
    /// The leading digit carries bits beyond the byte count.
    #[error("nix32 string has excess bits")]
    ExcessBits,
}

/// Length of the nix32 encoding of `bytes` bytes.
pub fn encoded_len(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes * 8 - 1) / 5 + 1
    }
}

/// Encodes `bytes` in nix32.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let bit = n * 5;
        let i = bit / 8;
        let j = bit % 8;
        let low = u16::from(bytes[i]) >> j;
        let high = bytes.get(i + 1).map_or(0, |b| u16::from(*b) << (8 - j));
        out.push(char::from(ALPHABET[usize::from((low | high) & 0x1f)]));
    }
    out
}

/// Decodes a nix32 string into exactly `bytes` bytes.
pub fn decode(s: &str, bytes: usize) -> Result<Vec<u8>, Nix32Error> {
    let expected = encoded_len(bytes);
    if s.len() != expected {
        return Err(Nix32Error::Length {
            actual: s.chars().count(),
            expected,
        });
    }
    let mut out = vec![0u8; bytes];
    for (n, c) in s.bytes().rev().enumerate() {
        let digit = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or(Nix32Error::Character(char::from(c)))? as u16;
        let bit = n * 5;
        let i = bit / 8;
        let j = bit % 8;
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if carry != 0 {
            match out.get_mut(i + 1) {
                Some(next) => *next |= carry as u8,
                None => return Err(Nix32Error::ExcessBits),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // sha256("") as Nix prints it (`nix hash to-base32`).
        let empty = hex::decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .unwrap();
        assert_eq!(
            encode(&empty),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
        assert_eq!(decode(&encode(&empty), 32).unwrap(), empty);
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0xff]), "7z");
    }

    #[test]
    fn round_trips_every_length() {
        for len in 1..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&bytes), len).unwrap(), bytes, "len {len}");
        }
    }

    #[test]
    fn rejects_bad_strings() {
        let cases = [
            ("abc", 20, "nix32 string has 3 characters, expected 32"),
            (
                "e0000000000000000000000000000000",
                20,
                "invalid nix32 character 'e'",
            ),
            ("zz", 1, "nix32 string has excess bits"),
        ];
        for (input, bytes, expect) in cases {
            assert_eq!(
                decode(input, bytes).unwrap_err().to_string(),
                expect,
                "{input}"
            );
        }
    }
}
