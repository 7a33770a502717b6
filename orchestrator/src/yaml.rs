//! A located YAML tree: every node knows its `file:line:column`.
//!
//! Built from `saphyr-parser`'s event stream (the parser keeps spans; the tree is ours), so we
//! decide the rules Concourse users rely on: anchors and aliases (expanded under a size budget so
//! an alias bomb is refused quickly with bounded memory), `<<` merge keys, duplicate keys as
//! errors, and YAML 1.1 scalars (`yes`/`no`/`on`/`off`). Scalars keep their source text and
//! whether they were plain; the loader resolves types where it knows what a field expects.
//! This module never interprets pipeline semantics.
//!
//! Why saphyr-parser: serde_yaml is archived and keeps no positions; its forks (serde_yml,
//! serde_yaml_ng) inherit both problems. saphyr-parser is the maintained successor of
//! yaml-rust2, a pure-Rust YAML 1.2 parser whose events carry spans, with an iterative state
//! machine and its own nesting limit; it leaves anchors and merge keys to the caller, which is
//! what lets us bound alias expansion and apply YAML 1.1 merge and scalar rules ourselves.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diag::{Diagnostic, Loc};

/// How deep collections may nest; deeper input is refused (it would only exhaust the stack).
pub const MAX_DEPTH: usize = 256;

/// Bytes that anchors and alias expansion may copy (an estimate: 64 per node plus text).
pub const ALIAS_BUDGET: usize = 64 * 1024 * 1024;

/// A YAML node with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub loc: Loc,
    /// What the node holds.
    pub value: Value,
}

/// The three kinds of YAML node.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar, with its text.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order, merge keys resolved, keys unique.
    Map(Vec<(Node, Node)>),
}

/// A scalar's text and whether it was plain (unquoted, untagged), which decides its type.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The scalar's text.
    pub text: String,
    /// Plain scalars are typed by their text (null, bool, int, float); others are strings.
    pub plain: bool,
}

/// A scalar's resolved type under YAML 1.1 rules (what go-yaml v2, and so Concourse, does).
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    /// `~`, `null`, empty.
    Null,
    /// `true`/`false`/`yes`/`no`/`on`/`off`/`y`/`n`.
    Bool(bool),
    /// A decimal, hex (`0x`) or octal (`0o`) integer.
    Int(i64),
    /// A float, including `.inf` and `.nan`.
    Float(f64),
    /// Anything else.
    Str,
}

impl Scalar {
    /// The type this scalar's text resolves to.
    pub fn typed(&self) -> Typed {
        if !self.plain {
            return Typed::Str;
        }
        resolve_plain(&self.text)
    }
}

/// Resolves a plain scalar's text as YAML 1.1 does.
pub fn resolve_plain(text: &str) -> Typed {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Typed::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
            return Typed::Bool(true);
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => {
            return Typed::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Typed::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Typed::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Typed::Float(f64::NAN),
        _ => {}
    }
    let digits = text.replace('_', "");
    let (neg, body) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, digits.strip_prefix('+').unwrap_or(&digits)),
    };
    let int = if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = body.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else if let Some(bin) = body.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()
    } else if body.len() > 1
        && body.starts_with('0')
        && body.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        // YAML 1.1 octal: `mode: 0755` is 493, as go-yaml (and so Concourse) reads it.
        i64::from_str_radix(&body[1..], 8).ok()
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Typed::Int(if neg { -i } else { i });
    }
    let looks_numeric = body
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && body.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Ok(f) = digits.parse::<f64>() {
        return Typed::Float(f);
    }
    Typed::Str
}

impl Node {
    /// The node as a mapping, if it is one.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The node as a sequence, if it is one.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The node as a scalar, if it is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the node is a null scalar.
    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(|s| s.typed() == Typed::Null)
    }

    /// A short name of the node's type for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar(s) => match s.typed() {
                Typed::Null => "null",
                Typed::Bool(_) => "a bool",
                Typed::Int(_) => "an integer",
                Typed::Float(_) => "a number",
                Typed::Str => "a string",
            },
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| key_text(k) == Some(key))
            .map(|(_, v)| v)
    }

    /// Converts to JSON, resolving scalar types (YAML 1.1). Mapping keys become strings.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Scalar(s) => match s.typed() {
                Typed::Null => serde_json::Value::Null,
                Typed::Bool(b) => serde_json::Value::Bool(b),
                Typed::Int(i) => serde_json::Value::from(i),
                Typed::Float(f) => serde_json::Number::from_f64(f)
                    .map_or_else(|| serde_json::Value::String(s.text.clone()), Into::into),
                Typed::Str => serde_json::Value::String(s.text.clone()),
            },
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (key_text(k).unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Builds a located tree from JSON (used for var values, which come from no file position).
    pub fn from_json(value: &serde_json::Value, loc: &Loc) -> Node {
        let value = match value {
            serde_json::Value::Null => Value::Scalar(Scalar {
                text: "null".into(),
                plain: true,
            }),
            serde_json::Value::Bool(b) => Value::Scalar(Scalar {
                text: b.to_string(),
                plain: true,
            }),
            serde_json::Value::Number(n) => Value::Scalar(Scalar {
                text: n.to_string(),
                plain: true,
            }),
            serde_json::Value::String(s) => Value::Scalar(Scalar {
                text: s.clone(),
                plain: false,
            }),
            serde_json::Value::Array(items) => {
                Value::Seq(items.iter().map(|v| Node::from_json(v, loc)).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| {
                        let key = Node {
                            loc: loc.clone(),
                            value: Value::Scalar(Scalar {
                                text: k.clone(),
                                plain: false,
                            }),
                        };
                        (key, Node::from_json(v, loc))
                    })
                    .collect(),
            ),
        };
        Node {
            loc: loc.clone(),
            value,
        }
    }
}

/// The text of a mapping key (keys are always scalars in our trees).
pub fn key_text(key: &Node) -> Option<&str> {
    key.as_scalar().map(|s| s.text.as_str())
}

enum Frame {
    Seq {
        loc: Loc,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        loc: Loc,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize, usize)>,
    alias_bytes: usize,
    done: Option<Node>,
}

/// Parses one YAML document into a located tree.
pub fn parse(text: &str, file: &Arc<str>) -> Result<Node, Diagnostic> {
    let mut builder = Builder {
        file: Arc::clone(file),
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_bytes: 0,
        done: None,
    };
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            let loc = Loc::new(file, m.line() as u32, m.col() as u32 + 1);
            Diagnostic::error(&loc, format!("invalid yaml: {}", e.info()))
        })?;
        let loc = builder.loc(&span);
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::error(
                        &loc,
                        "a pipeline is one yaml document; found a second one",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let quoted =
                    !matches!(style, ScalarStyle::Plain) || tag.is_some_and(|t| t.suffix == "str");
                let node = Node {
                    loc,
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: !quoted,
                    }),
                };
                builder.finish(node, anchor)?;
            }
            Event::Alias(id) => {
                let Some((node, size, depth)) = builder.anchors.get(&id) else {
                    return Err(Diagnostic::error(&loc, "alias to an unknown anchor"));
                };
                if builder.stack.len() + depth > MAX_DEPTH {
                    return Err(Diagnostic::error(
                        &loc,
                        format!("yaml nests deeper than {MAX_DEPTH} levels"),
                    ));
                }
                builder.alias_bytes = builder.alias_bytes.saturating_add(*size);
                if builder.alias_bytes > ALIAS_BUDGET {
                    return Err(Diagnostic::error(
                        &loc,
                        format!(
                            "anchors and aliases copy more than {} MiB; refusing (an alias bomb?)",
                            ALIAS_BUDGET / 1024 / 1024
                        ),
                    ));
                }
                let mut node = node.clone();
                node.loc = loc;
                builder.finish(node, 0)?;
            }
            Event::SequenceStart(anchor, _) => {
                builder.push(Frame::Seq {
                    loc,
                    anchor,
                    items: Vec::new(),
                })?;
            }
            Event::MappingStart(anchor, _) => {
                builder.push(Frame::Map {
                    loc,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                })?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match builder.stack.pop() {
                    Some(Frame::Seq { loc, anchor, items }) => (
                        Node {
                            loc,
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        loc,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(resolve_merges(entries)?),
                            loc,
                        },
                        anchor,
                    ),
                    None => {
                        return Err(Diagnostic::error(
                            &loc,
                            "invalid yaml: unbalanced collection",
                        ));
                    }
                };
                builder.finish(node, anchor)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    Ok(builder.done.unwrap_or_else(|| Node {
        loc: Loc::new(file, 1, 1),
        value: Value::Scalar(Scalar {
            text: String::new(),
            plain: true,
        }),
    }))
}

impl Builder {
    fn loc(&self, span: &Span) -> Loc {
        Loc::new(
            &self.file,
            span.start.line() as u32,
            span.start.col() as u32 + 1,
        )
    }

    fn push(&mut self, frame: Frame) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            let loc = match &frame {
                Frame::Seq { loc, .. } | Frame::Map { loc, .. } => loc.clone(),
            };
            return Err(Diagnostic::error(
                &loc,
                format!("yaml nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Hands a completed node to its parent (or makes it the document).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            // Keeping a copy costs as much as expanding an alias: anchors nested in anchors
            // would otherwise copy the same content once per level.
            let size = weight(&node);
            self.alias_bytes = self.alias_bytes.saturating_add(size);
            if self.alias_bytes > ALIAS_BUDGET {
                return Err(Diagnostic::error(
                    &node.loc,
                    format!(
                        "anchors and aliases copy more than {} MiB; refusing (an alias bomb?)",
                        ALIAS_BUDGET / 1024 / 1024
                    ),
                ));
            }
            self.anchors
                .insert(anchor, (node.clone(), size, depth(&node)));
        }
        match self.stack.last_mut() {
            None => self.done = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if node.as_scalar().is_none() {
                        return Err(Diagnostic::error(&node.loc, "mapping keys must be scalars"));
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Estimated bytes a copy of `node` costs.
fn weight(node: &Node) -> usize {
    64 + match &node.value {
        Value::Scalar(s) => s.text.len(),
        Value::Seq(items) => items.iter().map(weight).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| weight(k) + weight(v)).sum(),
    }
}

/// How many collection levels `node` has.
fn depth(node: &Node) -> usize {
    match &node.value {
        Value::Scalar(_) => 0,
        Value::Seq(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
    }
}

fn is_merge_key(key: &Node) -> bool {
    key.as_scalar().is_some_and(|s| s.plain && s.text == "<<")
}

/// Applies `<<` merge keys (explicit keys win; earlier merged maps win over later ones) and
/// refuses duplicate explicit keys.
fn resolve_merges(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, Diagnostic> {
    let mut out: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut merges = Vec::new();
    for (k, v) in entries {
        if is_merge_key(&k) {
            merges.push(v);
            continue;
        }
        let text = key_text(&k).unwrap_or_default().to_string();
        if seen.contains_key(&text) {
            return Err(Diagnostic::error(&k.loc, format!("duplicate key `{text}`")));
        }
        seen.insert(text, out.len());
        out.push((k, v));
    }
    for merge in merges {
        let sources: Vec<&Node> = match &merge.value {
            Value::Map(_) => vec![&merge],
            Value::Seq(items) => items.iter().collect(),
            Value::Scalar(_) => {
                return Err(Diagnostic::error(
                    &merge.loc,
                    "`<<` merge value must be a mapping or a list of mappings",
                ));
            }
        };
        for source in sources {
            let Some(map) = source.as_map() else {
                return Err(Diagnostic::error(
                    &source.loc,
                    "`<<` merge value must be a mapping or a list of mappings",
                ));
            };
            for (k, v) in map {
                let text = key_text(k).unwrap_or_default().to_string();
                if let std::collections::hash_map::Entry::Vacant(slot) = seen.entry(text) {
                    slot.insert(out.len());
                    out.push((k.clone(), v.clone()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        parse(text, &Arc::from("t.yml")).unwrap()
    }

    #[test]
    fn resolves_yaml_1_1_scalars() {
        let cases = [
            ("yes", Typed::Bool(true)),
            ("off", Typed::Bool(false)),
            ("~", Typed::Null),
            ("", Typed::Null),
            ("0x1f", Typed::Int(31)),
            ("-12", Typed::Int(-12)),
            ("1_000", Typed::Int(1000)),
            ("0755", Typed::Int(493)),
            ("0b101", Typed::Int(5)),
            ("0o17", Typed::Int(15)),
            ("089", Typed::Int(89)),
            ("0", Typed::Int(0)),
            ("1.5", Typed::Float(1.5)),
            ("1e3", Typed::Float(1000.0)),
            ("1.2.3", Typed::Str),
            ("15m", Typed::Str),
            ("hello", Typed::Str),
            ("2.7-alpine", Typed::Str),
        ];
        for (text, want) in cases {
            assert_eq!(resolve_plain(text), want, "{text}");
        }
    }

    #[test]
    fn quoted_scalars_are_strings() {
        let node = parse_ok("a: 'yes'\nb: yes\nc: !!str 12\n");
        assert_eq!(node.get("a").unwrap().to_json(), serde_json::json!("yes"));
        assert_eq!(node.get("b").unwrap().to_json(), serde_json::json!(true));
        assert_eq!(node.get("c").unwrap().to_json(), serde_json::json!("12"));
    }

    #[test]
    fn merges_keys_with_explicit_keys_winning() {
        let node =
            parse_ok("base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nm:\n  <<: [*b, *o]\n  x: 9\n");
        assert_eq!(
            node.get("m").unwrap().to_json(),
            serde_json::json!({"x": 9, "y": 2, "z": 4})
        );
    }

    #[test]
    fn locations_are_one_based() {
        let node = parse_ok("a:\n  b: c\n");
        let b = node.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.loc.line, b.loc.col), (2, 6));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n", &Arc::from("t.yml")).unwrap_err();
        assert_eq!(err.to_string(), "t.yml:2:1: error: duplicate key `a`");
    }
}
