//! [`Platform`]: the `platform` object (os, architecture, variant) that registry-image and
//! registry-tag accept in their `source` and `params`, declared once so both parse it alike.

use serde::Deserialize;

/// An image platform as a pipeline writes it: every field optional (each resource fills in its
/// own defaults, linux/amd64), unknown fields refused with the valid ones named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(description = "`platform`."))]
#[serde(deny_unknown_fields)]
pub struct Platform {
    /// e.g. `linux`.
    #[serde(default)]
    pub os: Option<String>,
    /// e.g. `amd64`, `arm64`.
    #[serde(default)]
    pub architecture: Option<String>,
    /// e.g. `v8`.
    #[serde(default)]
    pub variant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expect: Result<Platform, &str>) {
        let got = serde_json::from_str::<Platform>(json).map_err(|e| e.to_string());
        match (&got, &expect) {
            (Ok(got), Ok(expect)) => assert_eq!(got, expect, "{json}"),
            (Err(got), Err(expect)) => assert!(got.starts_with(expect), "{json}: {got}"),
            _ => panic!("{json}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn parses_strictly() {
        let platform = |os: Option<&str>, architecture: Option<&str>, variant: Option<&str>| {
            Ok(Platform {
                os: os.map(str::to_owned),
                architecture: architecture.map(str::to_owned),
                variant: variant.map(str::to_owned),
            })
        };
        check("{}", platform(None, None, None));
        check(
            r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#,
            platform(Some("linux"), Some("arm64"), Some("v8")),
        );
        check(
            r#"{"architecture":"arm","os":null}"#,
            platform(None, Some("arm"), None),
        );
        check(
            r#"{"arch":"arm64"}"#,
            Err("unknown field `arch`, expected one of `os`, `architecture`, `variant`"),
        );
        check(
            r#"{"os":1}"#,
            Err("invalid type: integer `1`, expected a string"),
        );
        check(r#""linux/amd64""#, Err("invalid type: string"));
    }
}
