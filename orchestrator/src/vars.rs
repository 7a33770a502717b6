//! Pipeline vars: `((name))`, `((name.field))`, `((source:path))`, quoted segments and local
//! `((.:name))`; static values from `-l` files, `-v k=v` and `-y k=yaml`; the old `{{name}}`
//! form; and the set of values that must be redacted from logs.
//!
//! Static interpolation happens on the located YAML tree before typing, so a value that is
//! exactly `((x))` takes the var's type and errors keep their positions. Vars without a static
//! value (and every local or var-source var) are left in place for run time.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::diag::{Diagnostic, Loc};
use crate::yaml::{self, Node, Scalar, Value};

/// A reference to a var: `((source:path.field.sub))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarRef {
    /// The var source (`.` for local vars), if any.
    pub source: Option<String>,
    /// The var's name (or path in the source).
    pub path: String,
    /// Fields to walk into the value.
    pub fields: Vec<String>,
}

impl VarRef {
    /// Parses what is between `((` and `))`; `None` if it is not a var reference.
    pub fn parse(inner: &str) -> Option<VarRef> {
        let inner = inner.trim();
        let (source, rest) = match inner.find(':') {
            Some(i) if !inner[..i].contains('"') => {
                let source = &inner[..i];
                if source.is_empty() || !source.chars().all(is_name_char) {
                    return None;
                }
                (Some(source.to_string()), &inner[i + 1..])
            }
            _ => (None, inner),
        };
        let mut segments = split_segments(rest)?;
        if segments.is_empty() {
            return None;
        }
        let path = segments.remove(0);
        Some(VarRef {
            source,
            path,
            fields: segments,
        })
    }

    /// Whether this is a local var (`((.:name))`) set at run time by load_var, across or get.
    pub fn is_local(&self) -> bool {
        self.source.as_deref() == Some(".")
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | '.')
}

/// Splits `a."b.c".d` into segments; quoted segments may hold any character but `"`.
fn split_segments(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut seg = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => seg.push(c),
                    None => return None,
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if !(c.is_alphanumeric() || matches!(c, '-' | '_' | '/')) {
                    return None;
                }
                seg.push(c);
                chars.next();
            }
            if seg.is_empty() {
                return None;
            }
        }
        out.push(seg);
        match chars.next() {
            None => return Some(out),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

fn quote_segment(seg: &str) -> String {
    if !seg.is_empty()
        && seg
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '/'))
    {
        seg.to_string()
    } else {
        format!("\"{seg}\"")
    }
}

impl fmt::Display for VarRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("((")?;
        if let Some(source) = &self.source {
            write!(f, "{source}:")?;
        }
        f.write_str(&quote_segment(&self.path))?;
        for field in &self.fields {
            write!(f, ".{}", quote_segment(field))?;
        }
        f.write_str("))")
    }
}

/// A var reference found in a string, with its byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Byte range of `((…))` in the string.
    pub range: std::ops::Range<usize>,
    /// The reference.
    pub var: VarRef,
}

/// The longest `((…))` body recognised as a var reference.
const MAX_VAR_LEN: usize = 512;

/// Every `((…))` var reference in `text`, in order. Linear in the text's length: the next
/// `))` is found once and reused, and bodies longer than `MAX_VAR_LEN` are skipped unread.
pub fn find_refs(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut from = 0;
    let mut next_close: Option<usize> = None;
    while let Some(start) = text[from..].find("((").map(|i| i + from) {
        let body_start = start + 2;
        let close = match next_close {
            Some(c) if c >= body_start => Some(c),
            _ => text[body_start..].find("))").map(|i| i + body_start),
        };
        next_close = close;
        let Some(mut end) = close else { break };
        if end - body_start > MAX_VAR_LEN {
            from = body_start - 1;
            continue;
        }
        if text[body_start..end].contains('"') {
            match quoted_close(text, body_start) {
                Some(e) => end = e,
                None => {
                    from = body_start - 1;
                    continue;
                }
            }
        }
        let body = &text[body_start..end];
        match VarRef::parse(body).filter(|_| !body.contains('\n')) {
            Some(var) => {
                out.push(Found {
                    range: start..end + 2,
                    var,
                });
                from = end + 2;
            }
            None => from = body_start - 1,
        }
    }
    out
}

/// The `))` that closes a body with quoted segments (a `))` inside quotes does not count).
fn quoted_close(text: &str, body_start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut in_quotes = false;
    let limit = (body_start + MAX_VAR_LEN).min(bytes.len());
    let mut i = body_start;
    while i < limit {
        match bytes[i] {
            b'"' => in_quotes = !in_quotes,
            b')' if !in_quotes && bytes.get(i + 1) == Some(&b')') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where static vars come from: `-l FILE` (repeatable, later wins), `-v k=v`, `-y k=yaml`.
#[derive(Clone, Debug, Default)]
pub struct VarOptions {
    /// Var files, in command-line order.
    pub files: Vec<PathBuf>,
    /// `k=v` string vars.
    pub vars: Vec<String>,
    /// `k=yaml` vars.
    pub yaml_vars: Vec<String>,
}

/// Static var values, with the documented precedence already applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StaticVars {
    values: Map<String, Json>,
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    /// The value.
    Found(&'a Json),
    /// No static var of that name: leave it for run time.
    Missing,
    /// The var exists but a field is missing or not a mapping.
    NoField(String),
}

impl StaticVars {
    /// Loads vars: files first (later files win), then `-v`, then `-y` (flags win over files).
    pub fn load(options: &VarOptions) -> Result<StaticVars, Diagnostic> {
        let mut vars = StaticVars::default();
        for file in &options.files {
            vars.load_file(file)?;
        }
        for (flag, list) in [("-v", &options.vars), ("-y", &options.yaml_vars)] {
            for item in list {
                let flag_loc = Loc::new(&Arc::from(flag), 1, 1);
                let Some((key, raw)) = item.split_once('=') else {
                    return Err(Diagnostic::error(
                        &flag_loc,
                        format!("{flag} {item}: expected name=value"),
                    ));
                };
                let value = if flag == "-v" {
                    Json::String(raw.to_string())
                } else {
                    let file: Arc<str> = Arc::from(format!("{flag} {key}"));
                    yaml::parse(raw, &file)?.to_json()
                };
                let Some(path) = split_segments(key.trim()) else {
                    return Err(Diagnostic::error(
                        &flag_loc,
                        format!("{flag} {item}: invalid var name"),
                    ));
                };
                vars.set(&path, value);
            }
        }
        Ok(vars)
    }

    /// Vars from a list of `(name, value)` pairs (for tests and callers without files).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Json)>) -> StaticVars {
        let mut vars = StaticVars::default();
        for (k, v) in pairs {
            vars.values.insert(k.to_string(), v);
        }
        vars
    }

    fn load_file(&mut self, path: &Path) -> Result<(), Diagnostic> {
        let file: Arc<str> = Arc::from(path.display().to_string());
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostic::error(&Loc::new(&file, 0, 0), format!("cannot read var file: {e}"))
        })?;
        let node = yaml::parse(&text, &file)?;
        if node.is_null() {
            return Ok(());
        }
        let Some(entries) = node.as_map() else {
            return Err(Diagnostic::error(
                &node.loc,
                "a var file must be a mapping of names to values",
            ));
        };
        for (k, v) in entries {
            let key = yaml::key_text(k).unwrap_or_default().to_string();
            self.values.insert(key, v.to_json());
        }
        Ok(())
    }

    fn set(&mut self, path: &[String], value: Json) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let mut slot = self.values.entry(first.clone()).or_insert(Json::Null);
        for seg in rest {
            if !slot.is_object() {
                *slot = Json::Object(Map::new());
            }
            let Json::Object(map) = slot else { return };
            slot = map.entry(seg.clone()).or_insert(Json::Null);
        }
        *slot = value;
    }

    /// Whether no vars were given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Looks up a var without a source; local and var-source vars are always `Missing`.
    pub fn lookup(&self, var: &VarRef) -> Lookup<'_> {
        if var.source.is_some() {
            return Lookup::Missing;
        }
        let Some(mut value) = self.values.get(&var.path) else {
            return Lookup::Missing;
        };
        for field in &var.fields {
            match value.get(field) {
                Some(v) => value = v,
                None => return Lookup::NoField(field.clone()),
            }
        }
        Lookup::Found(value)
    }

    /// Every string (and number) among the var values: what logs must hide.
    pub fn redaction_set(&self) -> BTreeSet<String> {
        fn walk(value: &Json, out: &mut BTreeSet<String>) {
            match value {
                Json::String(s) if !s.is_empty() => {
                    out.insert(s.clone());
                }
                Json::Number(n) => {
                    out.insert(n.to_string());
                }
                Json::Array(items) => items.iter().for_each(|v| walk(v, out)),
                Json::Object(map) => map.values().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut out = BTreeSet::new();
        self.values.values().for_each(|v| walk(v, &mut out));
        out
    }

    /// The value of a var by name (for `{{name}}` substitution).
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.values.get(name)
    }
}

/// What redacted values are replaced with.
pub const REDACTED: &str = "((redacted))";

/// Hides every value of `secrets` in `text` (longest first, so a value containing another is
/// hidden whole).
pub fn redact(text: &str, secrets: &BTreeSet<String>) -> String {
    let mut ordered: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in ordered {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// Replaces the old `{{name}}` form textually (the JSON-encoded value, as old `fly` did), with a
/// deprecation warning each. A missing var becomes `((name))`, to be resolved at run time.
pub fn substitute_old_style<'t>(
    text: &'t str,
    vars: &StaticVars,
    file: &Arc<str>,
    diags: &mut Vec<Diagnostic>,
) -> std::borrow::Cow<'t, str> {
    if !text.contains("{{") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 0;
        // Whole-line comments are left alone: old fly replaced there too, to no effect.
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let name_len = after
                .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(after.len());
            if name_len == 0 || !after[name_len..].starts_with("}}") {
                out.push_str(&rest[..start + 2]);
                col += rest[..start + 2].chars().count();
                rest = after;
                continue;
            }
            let name = &after[..name_len];
            out.push_str(&rest[..start]);
            let at = col + rest[..start].chars().count() + 1;
            let loc = Loc::new(file, line_no as u32 + 1, at as u32);
            diags.push(Diagnostic::warning(
                &loc,
                format!("`{{{{{name}}}}}` is deprecated; write `(({name}))`"),
            ));
            match vars.get(name) {
                Some(value) => out.push_str(&value.to_string()),
                None => out.push_str(&format!("(({name}))")),
            }
            col = at - 1 + name_len + 4;
            rest = &after[name_len + 2..];
        }
        out.push_str(rest);
    }
    std::borrow::Cow::Owned(out)
}

/// Interpolates static vars in place; missing ones stay for run time. Errors (a field missing
/// from a var, a structured value embedded in a string) go to `diags`.
pub fn interpolate(node: &mut Node, vars: &StaticVars, diags: &mut Vec<Diagnostic>) {
    if vars.is_empty() {
        return;
    }
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| interpolate(n, vars, diags)),
        Value::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, v)| interpolate(v, vars, diags)),
        Value::Scalar(scalar) => {
            if !scalar.text.contains("((") {
                return;
            }
            let refs = find_refs(&scalar.text);
            if refs.is_empty() {
                return;
            }
            let trimmed = scalar.text.trim();
            if refs.len() == 1 && refs[0].range.len() == trimmed.len() {
                match vars.lookup(&refs[0].var) {
                    Lookup::Found(value) => {
                        let loc = node.loc.clone();
                        *node = Node::from_json(value, &loc);
                    }
                    Lookup::Missing => {}
                    Lookup::NoField(field) => diags.push(no_field(&node.loc, &refs[0].var, &field)),
                }
                return;
            }
            let mut out = String::with_capacity(scalar.text.len());
            let mut last = 0;
            for found in &refs {
                out.push_str(&scalar.text[last..found.range.start]);
                last = found.range.end;
                let original = &scalar.text[found.range.clone()];
                match vars.lookup(&found.var) {
                    Lookup::Found(Json::String(s)) => out.push_str(s),
                    Lookup::Found(Json::Number(n)) => out.push_str(&n.to_string()),
                    Lookup::Found(other) => {
                        let kind = match other {
                            Json::Array(_) => "a list",
                            Json::Object(_) => "a mapping",
                            Json::Bool(_) => "a bool",
                            _ => "null",
                        };
                        diags.push(Diagnostic::error(
                            &node.loc,
                            format!(
                                "var {} is {kind}; only strings and numbers can be embedded in a string",
                                found.var
                            ),
                        ));
                        out.push_str(original);
                    }
                    Lookup::Missing => out.push_str(original),
                    Lookup::NoField(field) => {
                        diags.push(no_field(&node.loc, &found.var, &field));
                        out.push_str(original);
                    }
                }
            }
            out.push_str(&scalar.text[last..]);
            *scalar = Scalar {
                text: out,
                plain: false,
            };
        }
    }
}

/// Why a var could not be resolved at run time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    /// No value for the var.
    #[error("undefined var {0}")]
    Missing(String),
    /// The var has no such field.
    #[error("var {var}: field `{field}` not found")]
    NoField {
        /// The var, as written.
        var: String,
        /// The missing field.
        field: String,
    },
    /// A structured value cannot be embedded in a string.
    #[error("var {0} is not a string or number and cannot be embedded in a string")]
    NotEmbeddable(String),
}

/// Resolves every `((var))` in `value` (the engine's run-time interpolation of `params`,
/// `source`, `vars`…). `lookup` gets the var's source and path and returns its whole value;
/// fields are walked here. A value that is exactly `((x))` takes the var's type. The first
/// var that cannot be resolved is the error.
pub fn resolve_json(
    value: &Json,
    lookup: &mut dyn FnMut(Option<&str>, &str) -> Option<Json>,
) -> Result<Json, VarError> {
    match value {
        Json::String(text) => resolve_string(text, lookup),
        Json::Array(items) => items.iter().map(|v| resolve_json(v, lookup)).collect(),
        Json::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), resolve_json(v, lookup)?);
            }
            Ok(Json::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn resolve_one(
    var: &VarRef,
    lookup: &mut dyn FnMut(Option<&str>, &str) -> Option<Json>,
) -> Result<Json, VarError> {
    let mut value = lookup(var.source.as_deref(), &var.path)
        .ok_or_else(|| VarError::Missing(var.to_string()))?;
    for field in &var.fields {
        value = value.get(field).cloned().ok_or_else(|| VarError::NoField {
            var: var.to_string(),
            field: field.clone(),
        })?;
    }
    Ok(value)
}

fn resolve_string(
    text: &str,
    lookup: &mut dyn FnMut(Option<&str>, &str) -> Option<Json>,
) -> Result<Json, VarError> {
    if !text.contains("((") {
        return Ok(Json::String(text.to_string()));
    }
    let refs = find_refs(text);
    if refs.len() == 1 && refs[0].range.len() == text.trim().len() {
        return resolve_one(&refs[0].var, lookup);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for found in &refs {
        out.push_str(&text[last..found.range.start]);
        last = found.range.end;
        match resolve_one(&found.var, lookup)? {
            Json::String(s) => out.push_str(&s),
            Json::Number(n) => out.push_str(&n.to_string()),
            _ => return Err(VarError::NotEmbeddable(found.var.to_string())),
        }
    }
    out.push_str(&text[last..]);
    Ok(Json::String(out))
}

/// The one var source type tributary resolves itself: `dummy`, whose `config.vars` holds the
/// values. Every other type (`vault`, `ssm`, `secretsmanager`, `idtoken`, …) needs a service
/// tributary does not talk to.
pub const DUMMY: &str = "dummy";

/// A pipeline's `var_sources`, resolving `((source:path.field))` at build time as Concourse
/// does: a `dummy` source answers from its `config.vars`; any other type errors naming the
/// source and its type; an undeclared source errors naming it.
#[derive(Clone, Debug, Default)]
pub struct VarSources {
    sources: Vec<(String, String, Map<String, Json>)>,
}

impl VarSources {
    /// The var sources of a pipeline: `(name, type, config)`, with static vars already
    /// interpolated into each config.
    pub fn new(sources: impl IntoIterator<Item = (String, String, Map<String, Json>)>) -> Self {
        VarSources {
            sources: sources.into_iter().collect(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The whole value at `path` in var source `source` (fields are walked by the caller).
    pub fn lookup(&self, source: &str, path: &str) -> Result<Json, String> {
        let Some((name, type_, config)) = self.sources.iter().find(|(n, _, _)| n == source) else {
            let known: Vec<&str> = self.sources.iter().map(|(n, _, _)| n.as_str()).collect();
            let near = crate::load::suggest(source, &known)
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown var source `{source}` in (({source}:{})){near}",
                quote_segment(path)
            ));
        };
        if type_ != DUMMY {
            return Err(format!(
                "var_sources {name}: type {type_} is not supported by tributary"
            ));
        }
        // Static vars were interpolated at load time: what is left has no value.
        if let Some(found) = config.values().find_map(first_ref) {
            return Err(format!("var_sources {name}: config: undefined var {found}"));
        }
        let vars = config
            .get("vars")
            .and_then(Json::as_object)
            .ok_or_else(|| format!("var_sources {name}: config.vars must be a mapping"))?;
        vars.get(path).cloned().ok_or_else(|| {
            format!(
                "undefined var (({name}:{})) (not in var_sources {name} config.vars)",
                quote_segment(path)
            )
        })
    }

    /// Every string and number a `dummy` source holds: what logs must hide.
    pub fn redaction_set(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (_, type_, config) in &self.sources {
            if type_ == DUMMY
                && let Some(vars) = config.get("vars")
            {
                let vars = StaticVars {
                    values: vars.as_object().cloned().unwrap_or_default(),
                };
                out.extend(vars.redaction_set());
            }
        }
        out
    }
}

/// The first `((var))` left anywhere in `value`.
pub fn first_ref(value: &Json) -> Option<VarRef> {
    match value {
        Json::String(s) => find_refs(s).into_iter().next().map(|f| f.var),
        Json::Array(items) => items.iter().find_map(first_ref),
        Json::Object(map) => map.values().find_map(first_ref),
        _ => None,
    }
}

fn no_field(loc: &Loc, var: &VarRef, field: &str) -> Diagnostic {
    Diagnostic::error(loc, format!("var {var}: field `{field}` not found"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn var(source: Option<&str>, path: &str, fields: &[&str]) -> VarRef {
        VarRef {
            source: source.map(str::to_string),
            path: path.to_string(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn parses_var_references() {
        let cases = [
            ("name", Some(var(None, "name", &[]))),
            (" name ", Some(var(None, "name", &[]))),
            ("name.field.sub", Some(var(None, "name", &["field", "sub"]))),
            (
                "vault:secret/path.key",
                Some(var(Some("vault"), "secret/path", &["key"])),
            ),
            (".:ruby_version", Some(var(Some("."), "ruby_version", &[]))),
            (".:meta.version", Some(var(Some("."), "meta", &["version"]))),
            ("\"a.b\".c", Some(var(None, "a.b", &["c"]))),
            ("src:\"x y\"", Some(var(Some("src"), "x y", &[]))),
            ("", None),
            ("a..b", None),
            ("a b", None),
            ("\"open", None),
        ];
        for (text, want) in cases {
            assert_eq!(VarRef::parse(text), want, "{text}");
        }
    }

    #[test]
    fn displays_canonically() {
        for text in ["((a))", "((a.b))", "((.:x))", "((s:p.\"a.b\"))"] {
            let found = find_refs(text);
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].var.to_string(), text);
        }
    }

    #[test]
    fn finds_embedded_references() {
        let cases: &[(&str, &[&str])] = &[
            ("a-((x))-((y.z))-(not)-((bad var))", &["((x))", "((y.z))"]),
            ("((a ((b))", &["((b))"]),
            ("(((x)))", &["((x))"]),
            ("((\"a))b\".c))", &["((\"a))b\".c))"]),
            ("((a\nb)) ((c))", &["((c))"]),
            ("$((1+2)) ((", &[]),
            ("no vars", &[]),
        ];
        for (text, want) in cases {
            let names: Vec<String> = find_refs(text).iter().map(|f| f.var.to_string()).collect();
            assert_eq!(&names, want, "{text:?}");
        }
    }

    fn interpolated(text: &str, vars: &StaticVars) -> (serde_json::Value, Vec<String>) {
        let file: Arc<str> = Arc::from("p.yml");
        let mut node = yaml::parse(text, &file).unwrap();
        let mut diags = Vec::new();
        interpolate(&mut node, vars, &mut diags);
        (
            node.to_json(),
            diags.iter().map(|d| d.to_string()).collect(),
        )
    }

    #[test]
    fn whole_values_keep_their_type_embedded_values_are_strings() {
        let vars = StaticVars::from_pairs([
            ("n", json!(3)),
            ("list", json!(["a", "b"])),
            ("s", json!("str")),
            ("creds", json!({"user": "u"})),
        ]);
        let cases = [
            ("v: ((n))", json!({"v": 3}), vec![]),
            ("v: ((list))", json!({"v": ["a", "b"]}), vec![]),
            ("v: x-((n))-((s))", json!({"v": "x-3-str"}), vec![]),
            ("v: ((creds.user))", json!({"v": "u"}), vec![]),
            ("v: ((missing))", json!({"v": "((missing))"}), vec![]),
            ("v: ((.:local))", json!({"v": "((.:local))"}), vec![]),
            (
                "v: ((creds.pass))",
                json!({"v": "((creds.pass))"}),
                vec!["p.yml:1:4: error: var ((creds.pass)): field `pass` not found"],
            ),
            (
                "v: a-((list))",
                json!({"v": "a-((list))"}),
                vec![
                    "p.yml:1:4: error: var ((list)) is a list; only strings and numbers can be embedded in a string",
                ],
            ),
        ];
        for (text, want, want_diags) in cases {
            let (got, diags) = interpolated(text, &vars);
            assert_eq!(got, want, "{text}");
            assert_eq!(diags, want_diags, "{text}");
        }
    }

    #[test]
    fn flags_win_over_files_and_later_files_win() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yml");
        let b = dir.path().join("b.yml");
        std::fs::write(&a, "x: from-a\ny: from-a\nz: from-a\nw: a\n").unwrap();
        std::fs::write(&b, "y: from-b\nz: from-b\n").unwrap();
        let vars = StaticVars::load(&VarOptions {
            files: vec![a, b],
            vars: vec![
                "z=from-v".into(),
                "w=from-v".into(),
                "nested.key=deep".into(),
            ],
            yaml_vars: vec!["w=[1, 2]".into()],
        })
        .unwrap();
        let get = |name: &str| vars.get(name).cloned().unwrap();
        assert_eq!(get("x"), json!("from-a"));
        assert_eq!(get("y"), json!("from-b"));
        assert_eq!(get("z"), json!("from-v"));
        assert_eq!(get("w"), json!([1, 2]));
        assert_eq!(get("nested"), json!({"key": "deep"}));
        let redact = vars.redaction_set();
        assert!(redact.contains("from-b") && redact.contains("deep") && redact.contains("2"));
    }

    #[test]
    fn resolves_vars_at_run_time() {
        let mut lookup = |source: Option<&str>, path: &str| match (source, path) {
            (Some("."), "tag") => Some(json!("3.12.1")),
            (Some("."), "meta") => Some(json!({"version": {"ref": "abc"}})),
            (None, "n") => Some(json!(2)),
            (None, "list") => Some(json!([1])),
            _ => None,
        };
        let ok = [
            (json!("((.:tag))"), json!("3.12.1")),
            (
                json!({"A": "py-((.:tag))", "N": "((n))", "L": ["((list))"]}),
                json!({"A": "py-3.12.1", "N": 2, "L": [[1]]}),
            ),
            (json!("((.:meta.version.ref))"), json!("abc")),
            (
                json!({"plain": true, "x": null}),
                json!({"plain": true, "x": null}),
            ),
        ];
        for (input, want) in ok {
            assert_eq!(resolve_json(&input, &mut lookup), Ok(want), "{input}");
        }
        let errors = [
            (json!({"a": ["((missing))"]}), "undefined var ((missing))"),
            (
                json!("((.:meta.nope))"),
                "var ((.:meta.nope)): field `nope` not found",
            ),
            (
                json!("x-((list))"),
                "var ((list)) is not a string or number and cannot be embedded in a string",
            ),
        ];
        for (input, want) in errors {
            let err = resolve_json(&input, &mut lookup).unwrap_err();
            assert_eq!(err.to_string(), want, "{input}");
        }
    }

    #[test]
    fn var_sources_resolve_dummy_vars_and_name_what_is_missing() {
        let config = |v: Json| v.as_object().cloned().unwrap();
        let sources = VarSources::new([
            (
                "dumb".to_string(),
                DUMMY.to_string(),
                config(
                    json!({"vars": {"simple": "hello!", "user": {"password": "sekrit"}, "n": 42}}),
                ),
            ),
            (
                "vault".to_string(),
                "vault".to_string(),
                config(json!({"url": "https://vault.example.com"})),
            ),
            (
                "half".to_string(),
                DUMMY.to_string(),
                config(json!({"vars": {"a": "x-((missing))"}})),
            ),
        ]);
        let ok = [
            ("dumb", "simple", json!("hello!")),
            ("dumb", "user", json!({"password": "sekrit"})),
        ];
        for (source, path, want) in ok {
            assert_eq!(sources.lookup(source, path), Ok(want), "{source}:{path}");
        }
        let errors = [
            (
                "dumb",
                "nope",
                "undefined var ((dumb:nope)) (not in var_sources dumb config.vars)",
            ),
            (
                "vault",
                "secret/x",
                "var_sources vault: type vault is not supported by tributary",
            ),
            (
                "dumbb",
                "simple",
                "unknown var source `dumbb` in ((dumbb:simple)) (did you mean `dumb`?)",
            ),
            ("other", "x", "unknown var source `other` in ((other:x))"),
            (
                "half",
                "a",
                "var_sources half: config: undefined var ((missing))",
            ),
        ];
        for (source, path, want) in errors {
            assert_eq!(
                sources.lookup(source, path),
                Err(want.to_string()),
                "{source}:{path}"
            );
        }
        let hidden = sources.redaction_set();
        for value in ["hello!", "sekrit", "42"] {
            assert!(hidden.contains(value), "{value}");
        }
        assert!(!hidden.iter().any(|v| v.contains("vault.example")));
    }

    #[test]
    fn redacts_longest_values_first() {
        let secrets: BTreeSet<String> = ["pass", "password123", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cases = [
            ("login with password123 now", "login with ((redacted)) now"),
            ("pass=pass", "((redacted))=((redacted))"),
            ("nothing here", "nothing here"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text, &secrets), want, "{text}");
        }
    }

    #[test]
    fn old_style_vars_are_substituted_with_warnings() {
        let vars = StaticVars::from_pairs([("key", json!("line1\nline2"))]);
        let file: Arc<str> = Arc::from("p.yml");
        let mut diags = Vec::new();
        let out = substitute_old_style(
            "a: {{key}}\nb: x {{missing}} {{not a var}}\n",
            &vars,
            &file,
            &mut diags,
        );
        assert_eq!(
            out,
            "a: \"line1\\nline2\"\nb: x ((missing)) {{not a var}}\n"
        );
        let msgs: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "p.yml:1:4: warning: `{{key}}` is deprecated; write `((key))`",
                "p.yml:2:6: warning: `{{missing}}` is deprecated; write `((missing))`",
            ]
        );
    }
}
