//! Loading a pipeline: text ⇒ `{{old}}` vars ⇒ located YAML ⇒ static `((vars))` ⇒ typed model,
//! then `validate`. Every problem is collected with its location, so one run reports them all.
//!
//! Unknown top-level keys are ignored (that is where `x-…` anchors live); unknown keys anywhere
//! else are errors. Deprecated forms (`aggregate`, `{{var}}`, `docker-image`,
//! `build_logs_to_retain`) load with a warning.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::duration;
use crate::model::*;
use crate::validate;
use crate::vars::{self, StaticVars};
use crate::yaml::{self, Node, Typed, Value};

/// Base resource types provided by tributary itself.
pub const BASE_TYPES: &[&str] = &[
    "git",
    "registry-image",
    "registry-tag",
    "nix-cache",
    "time",
    "mock",
];

/// A loaded pipeline with everything said about it.
#[derive(Debug)]
pub struct Loaded {
    /// The model (partial when there are errors).
    pub pipeline: Pipeline,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Values that came from vars: hide them in logs and stored output.
    pub redact: BTreeSet<String>,
}

impl Loaded {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    /// The pipeline if there are no errors, else every diagnostic.
    pub fn into_result(self) -> Result<Loaded, Diagnostics> {
        if self.has_errors() {
            Err(Diagnostics(self.diagnostics))
        } else {
            Ok(self)
        }
    }
}

/// Reads and loads a pipeline file.
pub fn load_file(path: &Path, vars: &StaticVars) -> Loaded {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &name, vars),
        Err(e) => Loaded {
            pipeline: Pipeline::default(),
            diagnostics: vec![Diagnostic::error(
                &Loc::new(&Arc::from(name.as_str()), 0, 0),
                format!("cannot read pipeline: {e}"),
            )],
            redact: BTreeSet::new(),
        },
    }
}

/// Loads and validates a pipeline from text; `file` names it in locations.
pub fn load_str(text: &str, file: &str, vars: &StaticVars) -> Loaded {
    let file: Arc<str> = Arc::from(file);
    let mut diags = Vec::new();
    let text = vars::substitute_old_style(text, vars, &file, &mut diags);
    let redact = vars.redaction_set();
    let mut node = match yaml::parse(&text, &file) {
        Ok(node) => node,
        Err(e) => {
            diags.push(e);
            return Loaded {
                pipeline: Pipeline::default(),
                diagnostics: diags,
                redact,
            };
        }
    };
    // The text and the tree are the big allocations; free each as soon as it is used up.
    drop(text);
    vars::interpolate(&mut node, vars, &mut diags);
    let mut loader = Loader { diags };
    let pipeline = loader.pipeline(&node);
    drop(node);
    let mut diags = loader.diags;
    if !diags.iter().any(Diagnostic::is_error) {
        diags.extend(validate::validate(&pipeline));
    }
    diags.sort_by_key(|d| (d.loc.line, d.loc.col));
    // An anchor merged into many places reports its problem once.
    dedup(&mut diags);
    Loaded {
        pipeline,
        diagnostics: diags,
        redact,
    }
}

/// Loads a task config file (`task: … file:` or `execute -c`), with static vars interpolated.
/// Returns the config and its warnings, or every diagnostic when there is an error.
pub fn load_task_config(
    text: &str,
    file: &str,
    vars: &StaticVars,
) -> Result<(TaskConfig, Vec<Diagnostic>), Diagnostics> {
    let file: Arc<str> = Arc::from(file);
    let mut diags = Vec::new();
    let text = vars::substitute_old_style(text, vars, &file, &mut diags);
    let mut node = yaml::parse(&text, &file).map_err(|e| Diagnostics(vec![e]))?;
    vars::interpolate(&mut node, vars, &mut diags);
    let custom_types = HashSet::new();
    let mut loader = Loader { diags };
    let config = loader.task_config(
        &node,
        &Cx {
            custom_types: &custom_types,
        },
    );
    let mut diags = loader.diags;
    if let Some(config) = &config
        && config.run.is_none()
    {
        diags.push(Diagnostic::error(&node.loc, "task config has no `run`"));
    }
    dedup(&mut diags);
    match config {
        Some(config) if !diags.iter().any(Diagnostic::is_error) => Ok((config, diags)),
        _ => Err(Diagnostics(diags)),
    }
}

/// The allowed field closest to a misspelt one (at most two edits away).
pub(crate) fn suggest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Drops repeated diagnostics (same place, same message), keeping the first of each.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = HashSet::new();
    diags.retain(|d| seen.insert((d.loc.clone(), d.message.clone())));
}

type Entries = [(Node, Node)];

fn field<'a>(entries: &'a Entries, key: &str) -> Option<&'a Node> {
    entries
        .iter()
        .find(|(k, _)| yaml::key_text(k) == Some(key))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn has(entries: &Entries, key: &str) -> bool {
    entries.iter().any(|(k, _)| yaml::key_text(k) == Some(key))
}

fn key_loc(entries: &Entries, key: &str) -> Option<Loc> {
    entries
        .iter()
        .find(|(k, _)| yaml::key_text(k) == Some(key))
        .map(|(k, _)| k.loc.clone())
}

const MODIFIERS: &[&str] = &[
    "ensure",
    "on_error",
    "on_abort",
    "on_failure",
    "on_success",
    "across",
    "attempts",
    "timeout",
];

const CORE_STEPS: &[(&str, &[&str])] = &[
    (
        "task",
        &[
            "task",
            "config",
            "file",
            "image",
            "privileged",
            "vars",
            "params",
            "input_mapping",
            "output_mapping",
            "container_limits",
            "tags",
        ],
    ),
    (
        "put",
        &[
            "put",
            "resource",
            "inputs",
            "params",
            "get_params",
            "no_get",
            "tags",
        ],
    ),
    (
        "get",
        &[
            "get", "resource", "passed", "trigger", "version", "params", "tags",
        ],
    ),
    (
        "set_pipeline",
        &[
            "set_pipeline",
            "file",
            "vars",
            "var_files",
            "instance_vars",
            "team",
        ],
    ),
    ("load_var", &["load_var", "file", "format", "reveal"]),
    ("try", &["try"]),
    ("do", &["do"]),
    ("in_parallel", &["in_parallel"]),
    ("aggregate", &["aggregate"]),
];

struct Loader {
    diags: Vec<Diagnostic>,
}

impl Loader {
    fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(loc, message));
    }

    fn warn(&mut self, loc: &Loc, message: impl Into<String>) {
        self.diags.push(Diagnostic::warning(loc, message));
    }

    /// The node as a mapping whose keys are all in `allowed`.
    fn map<'a>(&mut self, node: &'a Node, what: &str, allowed: &[&str]) -> Option<&'a Entries> {
        let Some(entries) = node.as_map() else {
            self.error(
                &node.loc,
                format!("{what}: expected a mapping, found {}", node.kind_name()),
            );
            return None;
        };
        for (k, _) in entries {
            let key = yaml::key_text(k).unwrap_or_default();
            if !allowed.contains(&key) {
                // Concourse's docs call a job's plan `steps`; its code reads `plan`.
                let near = if what == "job" && key == "steps" {
                    Some("plan")
                } else {
                    suggest(key, allowed)
                };
                let hint = match near {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("valid: {}", allowed.join(", ")),
                };
                self.error(&k.loc, format!("unknown field `{key}` in {what} ({hint})"));
            }
        }
        Some(entries)
    }

    /// A scalar that must have a static value because its field is typed.
    fn typed_scalar<'a>(&mut self, node: &'a Node, field: &str, want: &str) -> Option<&'a str> {
        let Some(scalar) = node.as_scalar() else {
            self.error(
                &node.loc,
                format!("{field}: expected {want}, found {}", node.kind_name()),
            );
            return None;
        };
        if let Some(found) = vars::find_refs(&scalar.text).first() {
            self.error(
                &node.loc,
                format!(
                    "{field}: var {} has no static value (give it with -v, -y or -l)",
                    found.var
                ),
            );
            return None;
        }
        Some(&scalar.text)
    }

    fn string(&mut self, node: Option<&Node>, field: &str) -> Option<String> {
        let node = node?;
        match &node.value {
            Value::Scalar(s) => Some(s.text.clone()),
            _ => {
                self.error(
                    &node.loc,
                    format!("{field}: expected a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn required_string(&mut self, entries: &Entries, field: &str, at: &Loc, what: &str) -> String {
        match self.string(self::field(entries, field), field) {
            Some(s) if !s.is_empty() => s,
            Some(_) | None => {
                if self::field(entries, field).is_none_or(|n| n.as_scalar().is_some()) {
                    self.error(at, format!("{what}: `{field}` is required"));
                }
                String::new()
            }
        }
    }

    fn bool(&mut self, node: Option<&Node>, field: &str) -> bool {
        let Some(node) = node else { return false };
        let Some(text) = self.typed_scalar(node, field, "a bool") else {
            return false;
        };
        let plain = node.as_scalar().is_some_and(|s| s.plain);
        match yaml::resolve_plain(text) {
            Typed::Bool(b) if plain => b,
            _ => {
                self.error(
                    &node.loc,
                    format!("{field}: expected a bool, found {}", node.kind_name()),
                );
                false
            }
        }
    }

    fn uint(&mut self, node: Option<&Node>, field: &str) -> Option<u64> {
        let node = node?;
        let text = self.typed_scalar(node, field, "a non-negative integer")?;
        match yaml::resolve_plain(text) {
            Typed::Int(i) if i >= 0 => Some(i as u64),
            _ => {
                self.error(
                    &node.loc,
                    format!("{field}: expected a non-negative integer, found `{text}`"),
                );
                None
            }
        }
    }

    fn u32(&mut self, node: Option<&Node>, field: &str) -> Option<u32> {
        let n = self.uint(node, field)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                if let Some(node) = node {
                    self.error(&node.loc, format!("{field}: {n} is too large"));
                }
                None
            }
        }
    }

    fn duration(&mut self, node: Option<&Node>, field: &str) -> Option<Duration> {
        let node = node?;
        let text = self.typed_scalar(node, field, "a duration")?;
        match duration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(&node.loc, format!("{field}: {e}"));
                None
            }
        }
    }

    fn check_every(&mut self, node: Option<&Node>) -> Option<CheckEvery> {
        let node = node?;
        if node.as_scalar().is_some_and(|s| s.text == "never") {
            return Some(CheckEvery::Never);
        }
        self.duration(Some(node), "check_every")
            .map(CheckEvery::Every)
    }

    fn strings(&mut self, node: Option<&Node>, field: &str) -> Vec<String> {
        let Some(node) = node else { return Vec::new() };
        let Some(items) = node.as_seq() else {
            self.error(
                &node.loc,
                format!("{field}: expected a list, found {}", node.kind_name()),
            );
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.string(Some(item), field))
            .collect()
    }

    fn object(&mut self, node: Option<&Node>, field: &str) -> Option<Object> {
        let node = node?;
        match node.to_json() {
            Json::Object(map) => Some(map),
            _ => {
                self.error(
                    &node.loc,
                    format!("{field}: expected a mapping, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn string_map(&mut self, node: Option<&Node>, field: &str) -> BTreeMap<String, String> {
        let Some(node) = node else {
            return BTreeMap::new();
        };
        let Some(entries) = node.as_map() else {
            self.error(
                &node.loc,
                format!("{field}: expected a mapping, found {}", node.kind_name()),
            );
            return BTreeMap::new();
        };
        entries
            .iter()
            .filter_map(|(k, v)| {
                let key = yaml::key_text(k).unwrap_or_default().to_string();
                self.string(Some(v), &format!("{field}.{key}"))
                    .map(|v| (key, v))
            })
            .collect()
    }

    fn pipeline(&mut self, node: &Node) -> Pipeline {
        let mut pipeline = Pipeline {
            loc: Loc {
                line: 1,
                col: 1,
                ..node.loc.clone()
            },
            ..Pipeline::default()
        };
        if node.is_null() {
            return pipeline;
        }
        let Some(entries) = node.as_map() else {
            self.error(
                &node.loc,
                format!("pipeline: expected a mapping, found {}", node.kind_name()),
            );
            return pipeline;
        };
        let mut custom_types = HashSet::new();
        if let Some(list) = self.list(field(entries, "resource_types"), "resource_types") {
            pipeline.resource_types = list.iter().filter_map(|n| self.resource_type(n)).collect();
            custom_types = pipeline
                .resource_types
                .iter()
                .map(|t| t.name.clone())
                .collect();
        }
        if let Some(list) = self.list(field(entries, "resources"), "resources") {
            pipeline.resources = list
                .iter()
                .filter_map(|n| self.resource(n, &custom_types))
                .collect();
        }
        if let Some(list) = self.list(field(entries, "jobs"), "jobs") {
            let cx = Cx {
                custom_types: &custom_types,
            };
            pipeline.jobs = list.iter().filter_map(|n| self.job(n, &cx)).collect();
        }
        if let Some(list) = self.list(field(entries, "groups"), "groups") {
            pipeline.groups = list.iter().filter_map(|n| self.group(n)).collect();
        }
        if let Some(display) = field(entries, "display")
            && self
                .map(
                    display,
                    "display",
                    &["background_image", "background_filter"],
                )
                .is_some()
        {
            pipeline.display = Some(display.to_json());
        }
        if let Some(list) = self.list(field(entries, "var_sources"), "var_sources") {
            pipeline.var_sources = list.iter().filter_map(|n| self.var_source(n)).collect();
        }
        pipeline
    }

    fn list<'a>(&mut self, node: Option<&'a Node>, field: &str) -> Option<&'a [Node]> {
        let node = node?;
        let items = node.as_seq();
        if items.is_none() {
            self.error(
                &node.loc,
                format!("{field}: expected a list, found {}", node.kind_name()),
            );
        }
        items
    }

    fn resource_type(&mut self, node: &Node) -> Option<ResourceType> {
        const FIELDS: &[&str] = &[
            "name",
            "type",
            "source",
            "params",
            "privileged",
            "check_every",
            "defaults",
            "tags",
        ];
        let e = self.map(node, "resource type", FIELDS)?;
        let name = self.required_string(e, "name", &node.loc, "resource type");
        let mut type_ =
            self.required_string(e, "type", &node.loc, &format!("resource type `{name}`"));
        let mut source = self
            .object(field(e, "source"), "source")
            .unwrap_or_default();
        if type_ == "docker-image" {
            let loc = key_loc(e, "type").unwrap_or_else(|| node.loc.clone());
            type_ = self.map_docker_image(&loc, &mut source);
        }
        Some(ResourceType {
            loc: node.loc.clone(),
            name,
            type_,
            source,
            params: self.object(field(e, "params"), "params"),
            privileged: self.bool(field(e, "privileged"), "privileged"),
            check_every: self.check_every(field(e, "check_every")),
            defaults: self.object(field(e, "defaults"), "defaults"),
            tags: self.strings(field(e, "tags"), "tags"),
        })
    }

    fn resource(&mut self, node: &Node, custom_types: &HashSet<String>) -> Option<Resource> {
        const FIELDS: &[&str] = &[
            "name",
            "type",
            "source",
            "check_every",
            "check_timeout",
            "version",
            "icon",
            "public",
            "tags",
            "webhook_token",
            "old_name",
        ];
        let e = self.map(node, "resource", FIELDS)?;
        let name = self.required_string(e, "name", &node.loc, "resource");
        let mut type_ = self.required_string(e, "type", &node.loc, &format!("resource `{name}`"));
        let mut source = self
            .object(field(e, "source"), "source")
            .unwrap_or_default();
        if type_ == "docker-image" && !custom_types.contains("docker-image") {
            let loc = key_loc(e, "type").unwrap_or_else(|| node.loc.clone());
            type_ = self.map_docker_image(&loc, &mut source);
        }
        Some(Resource {
            loc: node.loc.clone(),
            name,
            type_,
            source,
            check_every: self.check_every(field(e, "check_every")),
            check_timeout: self.duration(field(e, "check_timeout"), "check_timeout"),
            version: self.version_map(field(e, "version"), "version"),
            icon: self.string(field(e, "icon"), "icon"),
            public: self.bool(field(e, "public"), "public"),
            tags: self.strings(field(e, "tags"), "tags"),
            webhook_token: self.string(field(e, "webhook_token"), "webhook_token"),
            old_name: self.string(field(e, "old_name"), "old_name"),
        })
    }

    fn version_map(
        &mut self,
        node: Option<&Node>,
        field: &str,
    ) -> Option<BTreeMap<String, String>> {
        let node = node?;
        if node.as_map().is_none() {
            self.error(
                &node.loc,
                format!("{field}: expected a mapping, found {}", node.kind_name()),
            );
            return None;
        }
        Some(self.string_map(Some(node), field))
    }

    /// Maps a `docker-image` source to `registry-image` fields; returns the new type.
    fn map_docker_image(&mut self, loc: &Loc, source: &mut Object) -> String {
        self.warn(
            loc,
            "type `docker-image` is deprecated; using `registry-image` (repository, tag, username, password and insecure_registries are mapped)",
        );
        let old = std::mem::take(source);
        let repository = old
            .get("repository")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let host = repository.split('/').next().filter(|h| {
            repository.contains('/') && (h.contains('.') || h.contains(':') || *h == "localhost")
        });
        for (key, value) in old {
            match key.as_str() {
                "repository" | "username" | "password" => {
                    source.insert(key, value);
                }
                "tag" => {
                    let tag = match value {
                        Json::Number(n) => Json::String(n.to_string()),
                        other => other,
                    };
                    source.insert(key, tag);
                }
                "insecure_registries" => {
                    let listed = value.as_array().is_some_and(|l| {
                        l.iter()
                            .any(|r| r.as_str().is_some_and(|r| Some(r) == host))
                    });
                    if listed {
                        source.insert("insecure".into(), Json::Bool(true));
                    }
                }
                "ca_certs" => {
                    let certs: Vec<Json> = value
                        .as_array()
                        .map(|l| l.iter().filter_map(|c| c.get("cert").cloned()).collect())
                        .unwrap_or_default();
                    source.insert("ca_certs".into(), Json::Array(certs));
                }
                other => self.warn(
                    loc,
                    format!("source.{other}: not supported by registry-image; ignored"),
                ),
            }
        }
        "registry-image".to_string()
    }

    fn job(&mut self, node: &Node, cx: &Cx) -> Option<Job> {
        const FIELDS: &[&str] = &[
            "name",
            "old_name",
            "plan",
            "serial",
            "serial_groups",
            "max_in_flight",
            "build_log_retention",
            "build_logs_to_retain",
            "public",
            "disable_manual_trigger",
            "interruptible",
            "on_success",
            "on_failure",
            "on_error",
            "on_abort",
            "ensure",
        ];
        let e = self.map(node, "job", FIELDS)?;
        let name = self.required_string(e, "name", &node.loc, "job");
        let plan = match field(e, "plan") {
            None => {
                self.error(&node.loc, format!("job `{name}`: `plan` is required"));
                Vec::new()
            }
            Some(plan) => self.steps(plan, "plan", cx),
        };
        let mut build_log_retention = None;
        if let Some(r) = field(e, "build_log_retention")
            && let Some(re) = self.map(
                r,
                "build_log_retention",
                &["builds", "days", "minimum_succeeded_builds"],
            )
        {
            build_log_retention = Some(BuildLogRetention {
                builds: self.u32(field(re, "builds"), "builds"),
                days: self.u32(field(re, "days"), "days"),
                minimum_succeeded_builds: self.u32(
                    field(re, "minimum_succeeded_builds"),
                    "minimum_succeeded_builds",
                ),
            });
        }
        if let Some(old) = field(e, "build_logs_to_retain") {
            self.warn(
                &key_loc(e, "build_logs_to_retain").unwrap_or_else(|| old.loc.clone()),
                "`build_logs_to_retain` is deprecated; use `build_log_retention: {builds: N}`",
            );
            let builds = self.u32(Some(old), "build_logs_to_retain");
            build_log_retention
                .get_or_insert_with(BuildLogRetention::default)
                .builds
                .get_or_insert(builds.unwrap_or_default());
        }
        let hook = |this: &mut Loader, key: &str| {
            field(e, key).and_then(|n| this.step(n, cx)).map(Box::new)
        };
        let hooks = JobHooks {
            on_success: hook(self, "on_success"),
            on_failure: hook(self, "on_failure"),
            on_error: hook(self, "on_error"),
            on_abort: hook(self, "on_abort"),
            ensure: hook(self, "ensure"),
        };
        Some(Job {
            loc: node.loc.clone(),
            name,
            old_name: self.string(field(e, "old_name"), "old_name"),
            plan,
            serial: self.bool(field(e, "serial"), "serial"),
            serial_groups: self.strings(field(e, "serial_groups"), "serial_groups"),
            max_in_flight: self.u32(field(e, "max_in_flight"), "max_in_flight"),
            build_log_retention,
            public: self.bool(field(e, "public"), "public"),
            disable_manual_trigger: self
                .bool(field(e, "disable_manual_trigger"), "disable_manual_trigger"),
            interruptible: self.bool(field(e, "interruptible"), "interruptible"),
            hooks,
        })
    }

    fn steps(&mut self, node: &Node, field: &str, cx: &Cx) -> Vec<Step> {
        match self.list(Some(node), field) {
            Some(items) => items.iter().filter_map(|n| self.step(n, cx)).collect(),
            None => Vec::new(),
        }
    }

    /// Parses a step: finds its core type, then wraps it in its modifiers (innermost first).
    fn step(&mut self, node: &Node, cx: &Cx) -> Option<Step> {
        let Some(e) = node.as_map() else {
            self.error(
                &node.loc,
                format!("step: expected a mapping, found {}", node.kind_name()),
            );
            return None;
        };
        let Some((core, core_fields)) = CORE_STEPS.iter().find(|(k, _)| has(e, k)) else {
            let keys: Vec<&str> = e.iter().filter_map(|(k, _)| yaml::key_text(k)).collect();
            self.error(
                &node.loc,
                format!(
                    "unknown step (none of get, put, task, set_pipeline, load_var, in_parallel, do, try; found: {})",
                    keys.join(", ")
                ),
            );
            return None;
        };
        let mut allowed: Vec<&str> = MODIFIERS.to_vec();
        if has(e, "across") {
            allowed.push("fail_fast");
        }
        allowed.extend_from_slice(core_fields);
        let what = format!("{core} step");
        for (k, _) in e {
            let key = yaml::key_text(k).unwrap_or_default();
            if !allowed.contains(&key) {
                let hint = if CORE_STEPS.iter().any(|(k, _)| *k == key) {
                    Some(" (a step has one type)".to_string())
                } else {
                    suggest(key, &allowed).map(|near| format!(" (did you mean `{near}`?)"))
                };
                self.error(
                    &k.loc,
                    format!(
                        "unknown field `{key}` in {what}{}",
                        hint.unwrap_or_default()
                    ),
                );
            }
        }
        let loc = node.loc.clone();
        let kind = self.core_step(core, e, &loc, cx)?;
        let mut step = Step {
            loc: loc.clone(),
            kind,
        };
        if let Some(t) = field(e, "timeout") {
            let duration = self.duration(Some(t), "timeout")?;
            step = Step {
                loc: loc.clone(),
                kind: StepKind::Timeout {
                    duration,
                    step: Box::new(step),
                },
            };
        }
        if let Some(a) = field(e, "attempts") {
            let attempts = self.u32(Some(a), "attempts")?;
            if attempts == 0 {
                self.error(&a.loc, "attempts: must be at least 1");
            }
            step = Step {
                loc: loc.clone(),
                kind: StepKind::Attempts {
                    attempts,
                    step: Box::new(step),
                },
            };
        }
        if let Some(a) = field(e, "across") {
            let vars = self.across_vars(a);
            let fail_fast = self.bool(field(e, "fail_fast"), "fail_fast");
            step = Step {
                loc: loc.clone(),
                kind: StepKind::Across(AcrossStep {
                    vars,
                    fail_fast,
                    step: Box::new(step),
                }),
            };
        }
        for (key, when) in [
            ("on_success", HookKind::OnSuccess),
            ("on_failure", HookKind::OnFailure),
            ("on_abort", HookKind::OnAbort),
            ("on_error", HookKind::OnError),
            ("ensure", HookKind::Ensure),
        ] {
            if let Some(h) = field(e, key) {
                let hook = self.step(h, cx)?;
                step = Step {
                    loc: loc.clone(),
                    kind: StepKind::Hook {
                        when,
                        step: Box::new(step),
                        hook: Box::new(hook),
                    },
                };
            }
        }
        Some(step)
    }

    fn across_vars(&mut self, node: &Node) -> Vec<AcrossVar> {
        let Some(items) = self.list(Some(node), "across") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(e) = self.map(item, "across var", &["var", "values", "max_in_flight"]) else {
                continue;
            };
            let var = self.required_string(e, "var", &item.loc, "across var");
            let values = match field(e, "values") {
                Some(v)
                    if v.as_seq().is_some()
                        || v.as_scalar().is_some_and(|s| s.text.contains("((")) =>
                {
                    v.to_json()
                }
                Some(v) => {
                    self.error(
                        &v.loc,
                        format!("values: expected a list, found {}", v.kind_name()),
                    );
                    Json::Array(Vec::new())
                }
                None => {
                    self.error(&item.loc, "across var: `values` is required");
                    Json::Array(Vec::new())
                }
            };
            let max_in_flight = match field(e, "max_in_flight") {
                Some(m) if m.as_scalar().is_some_and(|s| s.text == "all") => MaxInFlight::All,
                Some(m) => MaxInFlight::Limit(self.u32(Some(m), "max_in_flight").unwrap_or(1)),
                None => MaxInFlight::Limit(1),
            };
            out.push(AcrossVar {
                var,
                values,
                max_in_flight,
            });
        }
        out
    }

    fn core_step(&mut self, core: &str, e: &Entries, loc: &Loc, cx: &Cx) -> Option<StepKind> {
        Some(match core {
            "get" => {
                let name = self.required_string(e, "get", loc, "get step");
                let version = match field(e, "version") {
                    None => None,
                    Some(v) => match v.as_scalar().map(|s| s.text.as_str()) {
                        Some("latest") => Some(VersionSpec::Latest),
                        Some("every") => Some(VersionSpec::Every),
                        Some(other) => {
                            self.error(
                                &v.loc,
                                format!("version: expected `latest`, `every` or a mapping, found `{other}`"),
                            );
                            None
                        }
                        None => self
                            .version_map(Some(v), "version")
                            .map(VersionSpec::Pinned),
                    },
                };
                StepKind::Get(GetStep {
                    name,
                    resource: self.string(field(e, "resource"), "resource"),
                    passed: self.strings(field(e, "passed"), "passed"),
                    trigger: self.bool(field(e, "trigger"), "trigger"),
                    version,
                    params: self.object(field(e, "params"), "params"),
                    tags: self.strings(field(e, "tags"), "tags"),
                })
            }
            "put" => {
                let name = self.required_string(e, "put", loc, "put step");
                let inputs = match field(e, "inputs") {
                    None => PutInputs::Detect,
                    Some(n) => {
                        match n.as_scalar().map(|s| s.text.as_str()) {
                            Some("detect") => PutInputs::Detect,
                            Some("all") => PutInputs::All,
                            Some(other) => {
                                self.error(
                                &n.loc,
                                format!("inputs: expected `detect`, `all` or a list, found `{other}`"),
                            );
                                PutInputs::Detect
                            }
                            None => PutInputs::Only(self.strings(Some(n), "inputs")),
                        }
                    }
                };
                StepKind::Put(PutStep {
                    name,
                    resource: self.string(field(e, "resource"), "resource"),
                    inputs,
                    params: self.object(field(e, "params"), "params"),
                    get_params: self.object(field(e, "get_params"), "get_params"),
                    no_get: self.bool(field(e, "no_get"), "no_get"),
                    tags: self.strings(field(e, "tags"), "tags"),
                })
            }
            "task" => {
                let name = self.required_string(e, "task", loc, "task step");
                let config = field(e, "config").and_then(|c| self.task_config(c, cx));
                StepKind::Task(Box::new(TaskStep {
                    name,
                    config,
                    file: self.string(field(e, "file"), "file"),
                    image: self.string(field(e, "image"), "image"),
                    privileged: self.bool(field(e, "privileged"), "privileged"),
                    vars: self.object(field(e, "vars"), "vars"),
                    params: self.object(field(e, "params"), "params"),
                    input_mapping: self.string_map(field(e, "input_mapping"), "input_mapping"),
                    output_mapping: self.string_map(field(e, "output_mapping"), "output_mapping"),
                    container_limits: field(e, "container_limits")
                        .and_then(|c| self.container_limits(c)),
                    tags: self.strings(field(e, "tags"), "tags"),
                }))
            }
            "set_pipeline" => StepKind::SetPipeline(SetPipelineStep {
                name: self.required_string(e, "set_pipeline", loc, "set_pipeline step"),
                file: self.required_string(e, "file", loc, "set_pipeline step"),
                vars: self.object(field(e, "vars"), "vars"),
                var_files: self.strings(field(e, "var_files"), "var_files"),
                instance_vars: self.object(field(e, "instance_vars"), "instance_vars"),
                team: self.string(field(e, "team"), "team"),
            }),
            "load_var" => {
                let format = match field(e, "format") {
                    None => None,
                    Some(f) => match f.as_scalar().map(|s| s.text.as_str()) {
                        Some("json") => Some(LoadVarFormat::Json),
                        Some("yaml" | "yml") => Some(LoadVarFormat::Yaml),
                        Some("trim") => Some(LoadVarFormat::Trim),
                        Some("raw") => Some(LoadVarFormat::Raw),
                        _ => {
                            self.error(&f.loc, "format: expected json, yaml, yml, trim or raw");
                            None
                        }
                    },
                };
                StepKind::LoadVar(LoadVarStep {
                    name: self.required_string(e, "load_var", loc, "load_var step"),
                    file: self.required_string(e, "file", loc, "load_var step"),
                    format,
                    reveal: self.bool(field(e, "reveal"), "reveal"),
                })
            }
            "try" => {
                let inner = field(e, "try");
                let Some(inner) = inner else {
                    self.error(loc, "try step: `try` needs a step");
                    return None;
                };
                StepKind::Try(Box::new(self.step(inner, cx)?))
            }
            "do" => StepKind::Do(
                field(e, "do")
                    .map(|n| self.steps(n, "do", cx))
                    .unwrap_or_default(),
            ),
            "aggregate" => {
                let at = key_loc(e, "aggregate").unwrap_or_else(|| loc.clone());
                self.warn(
                    &at,
                    "`aggregate` is deprecated (removed in Concourse 7); use `in_parallel`",
                );
                let steps = field(e, "aggregate")
                    .map(|n| self.steps(n, "aggregate", cx))
                    .unwrap_or_default();
                StepKind::InParallel(InParallelStep {
                    steps,
                    limit: None,
                    fail_fast: false,
                })
            }
            _ => {
                let Some(p) = field(e, "in_parallel") else {
                    return Some(StepKind::InParallel(InParallelStep {
                        steps: Vec::new(),
                        limit: None,
                        fail_fast: false,
                    }));
                };
                if p.as_seq().is_some() {
                    let steps = self.steps(p, "in_parallel", cx);
                    StepKind::InParallel(InParallelStep {
                        steps,
                        limit: None,
                        fail_fast: false,
                    })
                } else {
                    let pe = self.map(p, "in_parallel", &["steps", "limit", "fail_fast"])?;
                    let steps = field(pe, "steps")
                        .map(|n| self.steps(n, "steps", cx))
                        .unwrap_or_default();
                    StepKind::InParallel(InParallelStep {
                        steps,
                        limit: self.u32(field(pe, "limit"), "limit"),
                        fail_fast: self.bool(field(pe, "fail_fast"), "fail_fast"),
                    })
                }
            }
        })
    }

    fn container_limits(&mut self, node: &Node) -> Option<ContainerLimits> {
        let e = self.map(node, "container_limits", &["cpu", "memory"])?;
        let memory = field(e, "memory").and_then(|m| {
            let text = m.as_scalar().map(|s| s.text.clone()).unwrap_or_default();
            match parse_bytes(&text) {
                Some(n) => Some(n),
                None => self.uint(Some(m), "memory"),
            }
        });
        Some(ContainerLimits {
            cpu: self.uint(field(e, "cpu"), "cpu"),
            memory,
        })
    }

    fn task_config(&mut self, node: &Node, cx: &Cx) -> Option<TaskConfig> {
        const FIELDS: &[&str] = &[
            "platform",
            "image_resource",
            "rootfs_uri",
            "inputs",
            "outputs",
            "caches",
            "params",
            "run",
            "container_limits",
        ];
        let e = self.map(node, "task config", FIELDS)?;
        let image_resource = field(e, "image_resource").and_then(|n| self.image_resource(n, cx));
        let mut inputs = Vec::new();
        for item in self.list(field(e, "inputs"), "inputs").unwrap_or_default() {
            if let Some(ie) = self.map(item, "task input", &["name", "path", "optional"]) {
                inputs.push(TaskInput {
                    name: self.required_string(ie, "name", &item.loc, "task input"),
                    path: self.string(field(ie, "path"), "path"),
                    optional: self.bool(field(ie, "optional"), "optional"),
                });
            }
        }
        let mut outputs = Vec::new();
        for item in self
            .list(field(e, "outputs"), "outputs")
            .unwrap_or_default()
        {
            if let Some(oe) = self.map(item, "task output", &["name", "path"]) {
                outputs.push(TaskOutput {
                    name: self.required_string(oe, "name", &item.loc, "task output"),
                    path: self.string(field(oe, "path"), "path"),
                });
            }
        }
        let mut caches = Vec::new();
        for item in self.list(field(e, "caches"), "caches").unwrap_or_default() {
            if let Some(ce) = self.map(item, "task cache", &["path"]) {
                caches.push(self.required_string(ce, "path", &item.loc, "task cache"));
            }
        }
        let run = field(e, "run").and_then(|r| {
            let re = self.map(r, "run", &["path", "args", "dir", "user"])?;
            Some(TaskRun {
                path: self.required_string(re, "path", &r.loc, "run"),
                args: self.strings(field(re, "args"), "args"),
                dir: self.string(field(re, "dir"), "dir"),
                user: self.string(field(re, "user"), "user"),
            })
        });
        Some(TaskConfig {
            loc: Some(node.loc.clone()),
            platform: self.string(field(e, "platform"), "platform"),
            image_resource,
            rootfs_uri: self.string(field(e, "rootfs_uri"), "rootfs_uri"),
            inputs,
            outputs,
            caches,
            params: self.object(field(e, "params"), "params"),
            run,
            container_limits: field(e, "container_limits").and_then(|c| self.container_limits(c)),
        })
    }

    fn image_resource(&mut self, node: &Node, cx: &Cx) -> Option<ImageResource> {
        let e = self.map(
            node,
            "image_resource",
            &["type", "source", "params", "version"],
        )?;
        let mut type_ = self.required_string(e, "type", &node.loc, "image_resource");
        let mut source = self
            .object(field(e, "source"), "source")
            .unwrap_or_default();
        if type_ == "docker-image" && !cx.custom_types.contains("docker-image") {
            let loc = key_loc(e, "type").unwrap_or_else(|| node.loc.clone());
            type_ = self.map_docker_image(&loc, &mut source);
        }
        Some(ImageResource {
            type_,
            source,
            params: self.object(field(e, "params"), "params"),
            version: self.version_map(field(e, "version"), "version"),
        })
    }

    fn group(&mut self, node: &Node) -> Option<Group> {
        let e = self.map(node, "group", &["name", "jobs", "resources"])?;
        Some(Group {
            loc: node.loc.clone(),
            name: self.required_string(e, "name", &node.loc, "group"),
            jobs: self.strings(field(e, "jobs"), "jobs"),
            resources: self.strings(field(e, "resources"), "resources"),
        })
    }

    fn var_source(&mut self, node: &Node) -> Option<VarSource> {
        let e = self.map(node, "var source", &["name", "type", "config"])?;
        Some(VarSource {
            loc: node.loc.clone(),
            name: self.required_string(e, "name", &node.loc, "var source"),
            type_: self.required_string(e, "type", &node.loc, "var source"),
            config: self
                .object(field(e, "config"), "config")
                .unwrap_or_default(),
        })
    }
}

/// What step parsing needs to know about the rest of the pipeline.
struct Cx<'a> {
    custom_types: &'a HashSet<String>,
}

/// `1GB`, `512MB`, `64KB` (1024-based, as Concourse's container limits).
fn parse_bytes(text: &str) -> Option<u64> {
    let upper = text.trim().to_ascii_uppercase();
    let (num, scale) = [
        ("KB", 1u64 << 10),
        ("MB", 1 << 20),
        ("GB", 1 << 30),
        ("K", 1 << 10),
        ("M", 1 << 20),
        ("G", 1 << 30),
    ]
    .iter()
    .find_map(|(suffix, scale)| {
        upper
            .strip_suffix(suffix)
            .map(|n| (n.trim().to_string(), *scale))
    })?;
    num.parse::<u64>().ok()?.checked_mul(scale)
}
