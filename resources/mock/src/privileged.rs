//! Whether the resource runs privileged, decided as upstream decides it: some line of
//! `/proc/self/uid_map` maps uid 0 inside to uid 0 outside (no user namespace remaps root).

use std::path::Path;

/// Reads `uid_map` (normally `/proc/self/uid_map`) and applies [`root_is_host_root`].
pub fn is_privileged(uid_map: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(uid_map)
        .map_err(|e| anyhow::anyhow!("could not check privilege: {}: {e}", uid_map.display()))?;
    root_is_host_root(&text).map_err(|e| anyhow::anyhow!("could not check privilege: {e}"))
}

/// `uid_map` lines are `inside outside length`; privileged when one maps 0 to 0.
pub fn root_is_host_root(uid_map: &str) -> Result<bool, String> {
    for line in uid_map.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<i64> = line
            .split_whitespace()
            .map(|f| f.parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("malformed uid_map line {line:?}"))?;
        if fields.len() < 3 {
            return Err(format!(
                "too few fields in uid_map line {line:?}: {} (want 3)",
                fields.len()
            ));
        }
        if fields[0] == 0 && fields[1] == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uid_maps() {
        let cases: [(&str, Result<bool, &str>); 7] = [
            ("         0          0 4294967295\n", Ok(true)),
            ("         0       1000          1\n", Ok(false)),
            ("      1000       1000          1\n", Ok(false)),
            ("0 100000 65536\n0 0 1\n", Ok(true)),
            ("", Ok(false)),
            ("0 0\n", Err("too few fields")),
            ("zero 0 1\n", Err("malformed")),
        ];
        for (input, expected) in cases {
            let got = root_is_host_root(input);
            match expected {
                Ok(b) => assert_eq!(got, Ok(b), "{input:?}"),
                Err(fragment) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(fragment)),
                    "{input:?}: {got:?}"
                ),
            }
        }
    }
}
