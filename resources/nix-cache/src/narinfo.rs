//! `.narinfo` files: parsing and writing in exactly the form Nix writes them.

use std::fmt::Write as _;

use crate::hash::Sha256Hash;
use crate::store_path::StorePath;

/// How a NAR file is compressed (`Compression:`; absent means bzip2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `none`
    None,
    /// `xz`
    Xz,
    /// `zstd`
    Zstd,
    /// `bzip2`
    Bzip2,
}

impl Compression {
    /// Parses a `Compression:` value.
    pub fn parse(value: &str) -> Result<Self, NarInfoError> {
        match value {
            "none" => Ok(Self::None),
            "xz" => Ok(Self::Xz),
            "zstd" => Ok(Self::Zstd),
            "bzip2" => Ok(Self::Bzip2),
            other => Err(NarInfoError(format!(
                "unknown Compression {other:?} (expected none, xz, zstd or bzip2)"
            ))),
        }
    }

    /// The value as written in narinfos.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Bzip2 => "bzip2",
        }
    }

    /// The NAR file extension Nix uses (`.nar.zst` …).
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => ".nar",
            Self::Xz => ".nar.xz",
            Self::Zstd => ".nar.zst",
            Self::Bzip2 => ".nar.bz2",
        }
    }
}

/// A narinfo that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("narinfo: {0}")]
pub struct NarInfoError(String);

/// The metadata of one store path in a binary cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    /// `StorePath`
    pub store_path: StorePath,
    /// `URL` of the (compressed) NAR, relative to the cache.
    pub url: String,
    /// `Compression`
    pub compression: Compression,
    /// `FileHash` of the compressed file.
    pub file_hash: Option<Sha256Hash>,
    /// `FileSize` of the compressed file.
    pub file_size: Option<u64>,
    /// `NarHash`
    pub nar_hash: Sha256Hash,
    /// `NarSize`
    pub nar_size: u64,
    /// `References`, kept sorted.
    pub references: Vec<StorePath>,
    /// `Deriver` (base name in the file).
    pub deriver: Option<String>,
    /// `System`
    pub system: Option<String>,
    /// `Sig` lines, `name:base64`.
    pub sigs: Vec<String>,
    /// `CA`
    pub ca: Option<String>,
}

impl NarInfo {
    /// Parses narinfo text; unknown keys are ignored as Nix ignores them.
    pub fn parse(text: &str) -> Result<Self, NarInfoError> {
        let err = |m: String| NarInfoError(m);
        let mut store_path = None;
        let mut url = None;
        let mut compression = None;
        let mut file_hash = None;
        let mut file_size = None;
        let mut nar_hash = None;
        let mut nar_size = None;
        let mut references = Vec::new();
        let mut deriver = None;
        let mut system = None;
        let mut sigs = Vec::new();
        let mut ca = None;
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
            else {
                return Err(err(format!(
                    "line {:?} is not `Key: value`",
                    truncate(line)
                )));
            };
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| err(format!("{key}: {:?} is not a number", truncate(v))))
            };
            let hash = |v: &str| Sha256Hash::parse(v).map_err(|e| err(format!("{key}: {e}")));
            match key {
                "StorePath" => {
                    store_path =
                        Some(StorePath::parse(value).map_err(|e| err(format!("StorePath: {e}")))?)
                }
                "URL" => url = Some(value.to_owned()),
                "Compression" => compression = Some(Compression::parse(value)?),
                "FileHash" => file_hash = Some(hash(value)?),
                "FileSize" => file_size = Some(number(value)?),
                "NarHash" => nar_hash = Some(hash(value)?),
                "NarSize" => nar_size = Some(number(value)?),
                "References" => {
                    references = value
                        .split(' ')
                        .filter(|r| !r.is_empty())
                        .map(|r| {
                            StorePath::from_base_name(r)
                                .map_err(|e| err(format!("References: {e}")))
                        })
                        .collect::<Result<_, _>>()?
                }
                "Deriver" if !value.is_empty() && value != "unknown-deriver" => {
                    deriver = Some(value.to_owned())
                }
                "System" if !value.is_empty() => system = Some(value.to_owned()),
                "Sig" => sigs.push(value.to_owned()),
                "CA" if !value.is_empty() => ca = Some(value.to_owned()),
                _ => {}
            }
        }
        references.sort();
        references.dedup();
        Ok(Self {
            store_path: store_path.ok_or_else(|| err("missing StorePath".into()))?,
            url: url
                .filter(|u| !u.is_empty())
                .ok_or_else(|| err("missing URL".into()))?,
            compression: compression.unwrap_or(Compression::Bzip2),
            file_hash,
            file_size,
            nar_hash: nar_hash.ok_or_else(|| err("missing NarHash".into()))?,
            nar_size: nar_size.ok_or_else(|| err("missing NarSize".into()))?,
            references,
            deriver,
            system,
            sigs,
            ca,
        })
    }

    /// Writes the narinfo in Nix's field order, every line ending in `\n`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "StorePath: {}", self.store_path);
        let _ = writeln!(s, "URL: {}", self.url);
        let _ = writeln!(s, "Compression: {}", self.compression.as_str());
        if let Some(h) = &self.file_hash {
            let _ = writeln!(s, "FileHash: {h}");
        }
        if let Some(n) = self.file_size {
            let _ = writeln!(s, "FileSize: {n}");
        }
        let _ = writeln!(s, "NarHash: {}", self.nar_hash);
        let _ = writeln!(s, "NarSize: {}", self.nar_size);
        let refs: Vec<&str> = self.references.iter().map(StorePath::base_name).collect();
        let _ = writeln!(s, "References: {}", refs.join(" "));
        if let Some(d) = &self.deriver {
            let _ = writeln!(s, "Deriver: {d}");
        }
        if let Some(sys) = &self.system {
            let _ = writeln!(s, "System: {sys}");
        }
        for sig in &self.sigs {
            let _ = writeln!(s, "Sig: {sig}");
        }
        if let Some(ca) = &self.ca {
            let _ = writeln!(s, "CA: {ca}");
        }
        s
    }

    /// The signature fingerprint: `1;<path>;<NarHash>;<NarSize>;<sorted full references>`.
    pub fn fingerprint(&self) -> String {
        let refs: Vec<&str> = self.references.iter().map(StorePath::as_str).collect();
        format!(
            "1;{};{};{};{}",
            self.store_path,
            self.nar_hash.to_nix32_string(),
            self.nar_size,
            refs.join(",")
        )
    }

    /// The references other than the path itself.
    pub fn dependencies(&self) -> impl Iterator<Item = &StorePath> {
        self.references.iter().filter(|r| **r != self.store_path)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "StorePath: /nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-hello-2.12
URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz
Compression: xz
FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
FileSize: 54792
NarHash: sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73
NarSize: 226504
References: 7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-hello-2.12 9rx5ia0ma5v4xmz4g3ikbh0lkl1ib4js-glibc-2.35
Deriver: 9ri5x0cnlqh0n8dahwwm4gm1jddvkfyz-hello-2.12.drv
System: x86_64-linux
Sig: cache.nixos.org-1:7xd3TqSPZ/r4sOcWd+pj9lHNg0b2BKspbDqybrFMVKpf5X6uHqmpDPEJMoaTwLSSBDXzy2ntu5Jy3ZHfUs6ICw==
CA: fixed:r:sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73
";

    #[test]
    fn round_trips_exactly() {
        let info = NarInfo::parse(SAMPLE).unwrap();
        assert_eq!(info.to_text(), SAMPLE);
        assert_eq!(info.compression, Compression::Xz);
        assert_eq!(
            info.fingerprint(),
            "1;/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-hello-2.12;sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73;226504;/nix/store/7d8a2ij6y0zmyw0d7wh0sfcjgh5yrvzh-hello-2.12,/nix/store/9rx5ia0ma5v4xmz4g3ikbh0lkl1ib4js-glibc-2.35"
        );
        assert_eq!(info.dependencies().count(), 1);
    }

    fn without(key: &str) -> String {
        SAMPLE
            .lines()
            .filter(|l| !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(
            NarInfo::parse(&without("Compression:"))
                .unwrap()
                .compression,
            Compression::Bzip2
        );
        let cases = [
            (without("NarHash:"), "narinfo: missing NarHash"),
            (without("StorePath:"), "narinfo: missing StorePath"),
            (without("URL:"), "narinfo: missing URL"),
            (without("NarSize:"), "narinfo: missing NarSize"),
            (
                SAMPLE.replace("Compression: xz", "Compression: lz4"),
                "unknown Compression \"lz4\"",
            ),
            (
                SAMPLE.replace("NarSize: 226504", "NarSize: big"),
                "NarSize: \"big\" is not a number",
            ),
            (
                SAMPLE.replace("NarHash: sha256:", "NarHash: md5:"),
                "NarHash: invalid hash",
            ),
            (
                SAMPLE.replace("References: 7d8a", "References: ../"),
                "References: invalid store path",
            ),
            ("garbage line\n".to_owned(), "is not `Key: value`"),
        ];
        for (text, expect) in cases {
            let err = NarInfo::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expect), "{expect}: {err}");
        }
    }
}
