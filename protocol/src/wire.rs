//! The JSON shapes of check, in and out requests and answers, parsed strictly.
//!
//! Parsing goes through [`parse_request`], which names the path of a field with a wrong type
//! (`source.depth: invalid type: …`) and, through `deny_unknown_fields` on every request and
//! configuration struct, names an unknown field and lists the valid ones.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// A version: a flat map of strings, e.g. `{"ref": "<sha>"}`. Ordered so output is stable.
pub type Version = BTreeMap<String, String>;

/// The request `check` receives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest<S> {
    /// The resource's `source` configuration.
    pub source: S,
    /// The newest version known so far; absent or `null` on the first check.
    #[serde(default)]
    pub version: Option<Version>,
}

/// The request `in` receives.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>, P: Deserialize<'de> + Default")
)]
pub struct InRequest<S, P> {
    /// The resource's `source` configuration.
    pub source: S,
    /// The version to fetch.
    pub version: Version,
    /// The step's `params`; absent and `null` both mean the defaults.
    #[serde(default, deserialize_with = "null_as_default")]
    pub params: P,
}

/// The request `out` receives.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>, P: Deserialize<'de> + Default")
)]
pub struct OutRequest<S, P> {
    /// The resource's `source` configuration.
    pub source: S,
    /// The step's `params`; absent and `null` both mean the defaults.
    #[serde(default, deserialize_with = "null_as_default")]
    pub params: P,
}

/// One metadata entry shown next to a version in the build log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataField {
    /// The entry's name, e.g. `commit`.
    pub name: String,
    /// The entry's value.
    pub value: String,
    /// An optional rendering hint used by some resources (`time`, `message`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl MetadataField {
    /// A plain metadata entry.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            kind: None,
        }
    }

    /// A metadata entry with a rendering hint (`type`).
    pub fn typed(name: impl Into<String>, value: impl Into<String>, kind: &str) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            kind: Some(kind.to_owned()),
        }
    }
}

/// The answer of `in` and `out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The version fetched or created.
    pub version: Version,
    /// Metadata about it, shown in the build log.
    #[serde(default)]
    pub metadata: Vec<MetadataField>,
}

/// Builds a [`Version`] from pairs: `version([("ref", sha)])`.
pub fn version<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Version {
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// Parses a request from raw stdin bytes, with errors that name the offending field path.
pub fn parse_request<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, crate::InvalidRequest> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(crate::InvalidRequest::new(
            "stdin is empty: expected a JSON request such as {\"source\": {...}}",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|err| {
        crate::InvalidRequest::new(format!(
            "request is not valid UTF-8 (invalid byte at offset {})",
            err.valid_up_to()
        ))
    })?;
    if !text.trim_start().starts_with('{') {
        let found: String = text.trim_start().chars().take(20).collect();
        return Err(crate::InvalidRequest::new(format!(
            "request is not valid JSON: expected an object starting with '{{', found {found:?}"
        )));
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            crate::InvalidRequest::new(format!("request is not valid JSON: {inner}"))
        } else {
            let message = inner.to_string();
            let (what, position) = message
                .rsplit_once(" at line ")
                .map_or((message.as_str(), String::new()), |(what, position)| {
                    (what, format!(" (at line {position})"))
                });
            let others = other_unknown_fields(text, &path, what);
            let location = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            crate::InvalidRequest::new(format!(
                "invalid request: {location}{what}{others}{position}"
            ))
        }
    })?;
    deserializer.end().map_err(|err| {
        crate::InvalidRequest::new(format!(
            "request has trailing data after the JSON object: {err}"
        ))
    })?;
    Ok(parsed)
}

/// serde stops at the first unknown field; users fixing a config want all of them at once.
/// Given serde's "unknown field `x`, expected `a` or `b`" at `path`, lists the object's other
/// keys that are not among the expected ones, as `"; other unknown fields: `y`, `z`"`.
fn other_unknown_fields(text: &str, path: &str, message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return String::new();
    };
    let Some((first, expected)) = rest.split_once('`') else {
        return String::new();
    };
    let expected: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let Ok(root) = serde_json::from_str::<serde_json::Value>(text) else {
        return String::new();
    };
    // The path names the unknown field itself; its parent is the object to inspect.
    let mut segments: Vec<String> = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            segments.push(key.to_owned());
        }
        segments.extend(pieces.map(|index| format!("[{}", index)));
    }
    segments.pop();
    let mut object = &root;
    for segment in &segments {
        let next = match segment.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
            Some(index) => index.parse::<usize>().ok().and_then(|i| object.get(i)),
            None => object.get(segment.as_str()),
        };
        match next {
            Some(value) => object = value,
            None => return String::new(),
        }
    }
    let Some(map) = object.as_object() else {
        return String::new();
    };
    let others: Vec<String> = map
        .keys()
        .filter(|key| key.as_str() != first && !expected.contains(&key.as_str()))
        .map(|key| format!("`{key}`"))
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!("; other unknown fields: {}", others.join(", "))
    }
}

/// Deserialises `null` as the type's default, for `params` that Concourse may send as null.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Source {
        uri: String,
        #[serde(default, deserialize_with = "crate::lenient::option_u64")]
        depth: Option<u64>,
    }

    fn check(input: &str) -> Result<CheckRequest<Source>, String> {
        parse_request(input.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_valid_requests() {
        let req = check(r#"{"source":{"uri":"x"},"version":{"ref":"abc"}}"#).unwrap();
        assert_eq!(req.source.uri, "x");
        assert_eq!(req.version.unwrap()["ref"], "abc");
        let req = check(r#"{"source":{"uri":"x","depth":"3"},"version":null}"#).unwrap();
        assert!(req.version.is_none());
        assert_eq!(req.source.depth, Some(3));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("", "stdin is empty"),
            ("not json", "request is not valid JSON"),
            ("{}", "missing field `source`"),
            (
                r#"{"source":{"uri":"x","bogus":1}}"#,
                "source.bogus: unknown field `bogus`, expected `uri` or `depth`",
            ),
            (
                r#"{"source":{"uri":"x","depth":"deep"}}"#,
                "source.depth: invalid value",
            ),
            (
                r#"{"source":{"uri":"x","depth":[]}}"#,
                "source.depth: invalid type",
            ),
            (r#"{"source":{"uri":"x"}} {}"#, "trailing data"),
            (
                r#"{"source":{"uri":"x","bogus":1,"depth":2,"also":true,"more":null}}"#,
                "source.bogus: unknown field `bogus`, expected `uri` or `depth`; other unknown fields: `also`, `more` (at line 1 column 28)",
            ),
            (
                r#"{"source":{"uri":"x"},"extra":1}"#,
                "unknown field `extra`",
            ),
        ];
        for (input, expected) in cases {
            let err = check(input).unwrap_err();
            assert!(
                err.contains(expected),
                "{input:?}: {err:?} lacks {expected:?}"
            );
            assert!(!err.contains('\n'), "{input:?}: multi-line error {err:?}");
        }
    }

    #[test]
    fn params_null_is_default() {
        #[derive(Debug, Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Params {
            #[serde(default)]
            depth: u64,
        }
        let req: InRequest<Source, Params> =
            parse_request(br#"{"source":{"uri":"x"},"version":{},"params":null}"#).unwrap();
        assert_eq!(req.params.depth, 0);
    }
}
