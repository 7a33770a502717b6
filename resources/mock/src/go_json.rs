//! JSON as Go's `json.Marshal` writes a decoded `any`: map keys sorted, `<`, `>`, `&`, U+2028
//! and U+2029 escaped, every number a float64 in Go's shortest form. `create_files` contents
//! that are not strings are written this way, so files match the official resource's bytes.

use std::fmt::Write as _;

use serde_json::Value;

/// Encodes `value` compactly, exactly as Go would.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&float(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, &map[key.as_str()]);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Go's float64 encoding: shortest round-trip digits, plain notation between 1e-6 and 1e21,
/// else `1e+21` / `1e-7` style.
fn float(f: f64) -> String {
    let magnitude = f.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        return format!("{f}");
    }
    let scientific = format!("{f:e}");
    match scientific.split_once('e') {
        Some((mantissa, exponent)) => match exponent.strip_prefix('-') {
            Some(negative) => format!("{mantissa}e-{negative}"),
            None => format!("{mantissa}e+{exponent:0>2}"),
        },
        None => scientific,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_go() {
        let cases = [
            (
                r#"{"b":1,"a":[true,null,"x"]}"#,
                r#"{"a":[true,null,"x"],"b":1}"#,
            ),
            (r#"{"n":1.0}"#, r#"{"n":1}"#),
            (r#"{"n":1.5}"#, r#"{"n":1.5}"#),
            (r#"{"n":-0.000001}"#, r#"{"n":-0.000001}"#),
            (r#"{"n":0.0000001}"#, r#"{"n":1e-7}"#),
            (r#"{"n":1e21}"#, r#"{"n":1e+21}"#),
            (r#"{"n":1.5e300}"#, r#"{"n":1.5e+300}"#),
            (r#"{"n":1e-10}"#, r#"{"n":1e-10}"#),
            (
                r#"{"n":100000000000000000000}"#,
                r#"{"n":100000000000000000000}"#,
            ),
            (
                r#"{"n":12345678901234567890}"#,
                r#"{"n":12345678901234567000}"#,
            ),
            (r#""a<b>&c""#, r#""a\u003cb\u003e\u0026c""#),
            (
                "\"tab\\t nl\\n bs\\b ff\\f nul\\u0000 ls\\u2028\"",
                "\"tab\\t nl\\n bs\\b ff\\f nul\\u0000 ls\\u2028\"",
            ),
            (r#""quote\" slash\\ é""#, r#""quote\" slash\\ é""#),
            ("[]", "[]"),
            ("{}", "{}"),
        ];
        for (input, expected) in cases {
            let value: Value = serde_json::from_str(input).unwrap();
            assert_eq!(to_string(&value), expected, "{input}");
        }
    }
}
