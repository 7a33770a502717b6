//! Booleans and numbers that may arrive as JSON strings.
//!
//! Pipelines written for the official resources send `"true"`, `"1"` or `3` interchangeably
//! (their bash implementations never cared), so fields documented as booleans or numbers accept
//! both forms. Use with `#[serde(default, deserialize_with = "lenient::option_bool")]`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

#[derive(Clone, Copy)]
struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean or one of the strings \"true\", \"false\", \"1\", \"0\"")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
        Ok(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
        match value {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::invalid_value(de::Unexpected::Unsigned(value), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<bool, E> {
        match value {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
        }
    }
}

#[derive(Clone, Copy)]
struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a string holding one")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
        if value.fract() == 0.0 && value >= 0.0 && value < u64::MAX as f64 {
            Ok(value as u64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(value), &self))
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        value
            .trim()
            .parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(value), &self))
    }
}

/// A boolean given as `true`, `"true"`, `1` or `"1"` (and the false forms).
pub fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    deserializer.deserialize_any(BoolVisitor)
}

/// An optional lenient boolean; `null` is `None`.
pub fn option_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    deserializer.deserialize_option(OptionOf(BoolVisitor))
}

/// A non-negative integer given as a number or a string.
pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(U64Visitor)
}

/// An optional lenient integer; `null` is `None`.
pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_option(OptionOf(U64Visitor))
}

struct OptionOf<V>(V);

impl<'de, V: Visitor<'de> + Copy> Visitor<'de> for OptionOf<V> {
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self.0).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "super::option_bool")]
        flag: Option<bool>,
        #[serde(default, deserialize_with = "super::option_u64")]
        count: Option<u64>,
    }

    fn check(input: &str) -> Result<(Option<bool>, Option<u64>), String> {
        serde_json::from_str::<Fields>(input)
            .map(|f| (f.flag, f.count))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_values_and_strings() {
        let cases = [
            (r#"{}"#, (None, None)),
            (r#"{"flag":null,"count":null}"#, (None, None)),
            (r#"{"flag":true,"count":3}"#, (Some(true), Some(3))),
            (r#"{"flag":"true","count":"3"}"#, (Some(true), Some(3))),
            (
                r#"{"flag":"False","count":" 12 "}"#,
                (Some(false), Some(12)),
            ),
            (r#"{"flag":"1","count":3.0}"#, (Some(true), Some(3))),
            (r#"{"flag":0}"#, (Some(false), None)),
        ];
        for (input, expected) in cases {
            assert_eq!(check(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for input in [
            r#"{"flag":"maybe"}"#,
            r#"{"count":-1}"#,
            r#"{"count":"many"}"#,
            r#"{"flag":[]}"#,
        ] {
            assert!(check(input).is_err(), "{input} was accepted");
        }
    }
}
