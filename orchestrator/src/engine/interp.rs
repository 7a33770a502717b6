//! Run-time vars: local vars (`((.:name))` from load_var, across and get metadata) in nested
//! scopes, var-source vars (`((source:path))`, from the pipeline's `var_sources`, held by the
//! root scope), resolving the `((vars))` left in step values after static interpolation, and
//! redacting var values from log text.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value as Json};

use crate::vars::{VarRef, VarSources, find_refs};

/// A scope of local vars; an `across` iteration gets a child scope. The root scope holds the
/// pipeline's var sources.
#[derive(Debug, Default)]
pub struct Scope {
    vars: Mutex<Map<String, Json>>,
    parent: Option<Arc<Scope>>,
    sources: Option<Arc<VarSources>>,
}

impl Scope {
    /// A root scope resolving `((source:path))` from `sources`.
    pub fn with_sources(sources: Arc<VarSources>) -> Scope {
        Scope {
            sources: Some(sources),
            ..Scope::default()
        }
    }

    fn var_sources(&self) -> Option<&VarSources> {
        match &self.sources {
            Some(s) => Some(s),
            None => self.parent.as_ref().and_then(|p| p.var_sources()),
        }
    }

    /// A child scope: lookups fall back to this one; sets stay in the child.
    pub fn child(self: &Arc<Self>) -> Arc<Scope> {
        Arc::new(Scope {
            vars: Mutex::new(Map::new()),
            parent: Some(self.clone()),
            sources: None,
        })
    }

    /// Sets a local var.
    pub fn set(&self, name: &str, value: Json) {
        if let Ok(mut vars) = self.vars.lock() {
            vars.insert(name.to_owned(), value);
        }
    }

    /// Looks a local var up here, then in the parents.
    pub fn get(&self, name: &str) -> Option<Json> {
        let own = self.vars.lock().ok().and_then(|v| v.get(name).cloned());
        own.or_else(|| self.parent.as_ref().and_then(|p| p.get(name)))
    }
}

fn lookup(var: &VarRef, scope: &Scope) -> Result<Json, String> {
    let mut value = match var.source.as_deref() {
        None => return Err(format!("undefined var: {var}")),
        Some(".") => scope
            .get(&var.path)
            .ok_or_else(|| format!("undefined local var: {var}"))?,
        Some(source) => scope
            .var_sources()
            .map(|s| s.lookup(source, &var.path))
            .unwrap_or_else(|| VarSources::default().lookup(source, &var.path))?,
    };
    for field in &var.fields {
        value = value
            .get(field)
            .cloned()
            .ok_or_else(|| format!("var {var}: no field {field}"))?;
    }
    Ok(value)
}

/// Replaces the vars left in `value`; a var without a value is an error naming it.
pub fn resolve(value: &Json, scope: &Scope) -> Result<Json, String> {
    Ok(match value {
        Json::String(text) => {
            let refs = find_refs(text);
            if refs.is_empty() {
                return Ok(value.clone());
            }
            if refs.len() == 1 && refs[0].range == (0..text.len()) {
                return lookup(&refs[0].var, scope);
            }
            let mut out = String::new();
            let mut last = 0;
            for found in &refs {
                out.push_str(&text[last..found.range.start]);
                match lookup(&found.var, scope)? {
                    Json::String(s) => out.push_str(&s),
                    Json::Number(n) => out.push_str(&n.to_string()),
                    Json::Bool(b) => out.push_str(&b.to_string()),
                    _ => {
                        return Err(format!(
                            "var {}: embedded in a string, it must be a string or number",
                            found.var
                        ));
                    }
                }
                last = found.range.end;
            }
            out.push_str(&text[last..]);
            Json::String(out)
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| resolve(v, scope))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(resolve_object(map, scope)?),
        other => other.clone(),
    })
}

/// [`resolve`] for an object.
pub fn resolve_object(map: &Map<String, Json>, scope: &Scope) -> Result<Map<String, Json>, String> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), resolve(v, scope)?)))
        .collect()
}

/// The values to hide in logs; grows as `load_var` loads values.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<String>>,
}

impl Redactor {
    /// A redactor for these values.
    pub fn new(values: &BTreeSet<String>) -> Self {
        let r = Redactor::default();
        for v in values {
            r.add(v);
        }
        r
    }

    /// Hides one more value (longest values are replaced first).
    pub fn add(&self, value: &str) {
        // Tiny values would blank out ordinary text.
        if value.trim().len() < 3 {
            return;
        }
        if let Ok(mut secrets) = self.secrets.write()
            && !secrets.iter().any(|s| s == value)
        {
            secrets.push(value.to_owned());
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every value replaced by `((redacted))`.
    pub fn redact(&self, text: &str) -> String {
        let Ok(secrets) = self.secrets.read() else {
            return text.to_owned();
        };
        let mut out = text.to_owned();
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "((redacted))");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_local_vars() {
        let root = Arc::new(Scope::default());
        root.set("tag", json!("1.2"));
        root.set("meta", json!({"n": 3, "list": [1]}));
        let inner = root.child();
        inner.set("tag", json!("2.0"));
        let check = |scope: &Scope, input: Json, expect: Result<Json, &str>| {
            let got = resolve(&input, scope);
            match expect {
                Ok(v) => assert_eq!(got.unwrap(), v, "{input}"),
                Err(want) => assert!(got.unwrap_err().contains(want), "{input}"),
            }
        };
        check(&root, json!("((.:tag))"), Ok(json!("1.2")));
        check(&inner, json!("v((.:tag))-x"), Ok(json!("v2.0-x")));
        check(&root, json!("((.:meta.n))"), Ok(json!(3)));
        check(
            &root,
            json!({"a": ["((.:meta.list))"]}),
            Ok(json!({"a": [[1]]})),
        );
        check(&root, json!("n=((.:meta.n))"), Ok(json!("n=3")));
        check(
            &root,
            json!("((.:nope))"),
            Err("undefined local var: ((.:nope))"),
        );
        check(
            &root,
            json!("((password))"),
            Err("undefined var: ((password))"),
        );
        check(
            &root,
            json!("x((.:meta))"),
            Err("must be a string or number"),
        );
        check(&root, json!(7), Ok(json!(7)));
    }

    #[test]
    fn redacts_longest_first() {
        let r = Redactor::new(
            &[
                "hunter2".to_string(),
                "hunter2-long".to_string(),
                "a".into(),
            ]
            .into(),
        );
        assert_eq!(
            r.redact("pw hunter2-long and hunter2 a"),
            "pw ((redacted)) and ((redacted)) a"
        );
        r.add("fresh");
        assert_eq!(r.redact("fresh"), "((redacted))");
    }
}
