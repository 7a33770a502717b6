//! Semantic checks on a loaded pipeline, all reported at once with locations: no jobs, unknown
//! resources and types, unused resources, repeated get names, bad or cyclic `passed:`, tasks
//! with both or neither of `file`/`config`, duplicate names, groups naming unknown jobs.
//!
//! Validation only reads the model; it never changes it.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::diag::{Diagnostic, Loc};
use crate::load::{BASE_TYPES, suggest};
use crate::model::{Pipeline, Step, StepKind};
use crate::vars;

/// Every problem in `pipeline`.
pub fn validate(pipeline: &Pipeline) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let top = pipeline.loc.clone();
    if pipeline.jobs.is_empty() {
        out.push(Diagnostic::error(&top, "pipeline has no jobs"));
    }
    duplicates(
        pipeline.resource_types.iter().map(|t| (&t.name, &t.loc)),
        "resource type",
        &mut out,
    );
    duplicates(
        pipeline.resources.iter().map(|r| (&r.name, &r.loc)),
        "resource",
        &mut out,
    );
    duplicates(
        pipeline.jobs.iter().map(|j| (&j.name, &j.loc)),
        "job",
        &mut out,
    );

    let type_names: HashSet<&str> = pipeline
        .resource_types
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let known_type = |t: &str| BASE_TYPES.contains(&t) || type_names.contains(t);
    for t in &pipeline.resource_types {
        // A type may shadow a base type; its own `type:` then names the base type.
        let ok = BASE_TYPES.contains(&t.type_.as_str())
            || (t.type_ != t.name && type_names.contains(t.type_.as_str()));
        if !ok {
            out.push(Diagnostic::error(
                &t.loc,
                format!(
                    "resource type `{}`: unknown resource type `{}`",
                    t.name, t.type_
                ),
            ));
        }
    }
    for t in &pipeline.resource_types {
        if pipeline.base_type(&t.name).is_none() {
            out.push(Diagnostic::error(
                &t.loc,
                format!(
                    "resource type `{}`: its `type:` chain loops and never reaches a base type",
                    t.name
                ),
            ));
        }
    }
    for r in &pipeline.resources {
        if !known_type(&r.type_) {
            out.push(Diagnostic::error(
                &r.loc,
                format!("resource `{}`: unknown resource type `{}`", r.name, r.type_),
            ));
        }
    }

    let resource_names: HashSet<&str> =
        pipeline.resources.iter().map(|r| r.name.as_str()).collect();
    let resource_list: Vec<&str> = pipeline.resources.iter().map(|r| r.name.as_str()).collect();
    let job_list: Vec<&str> = pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    let hint = |name: &str, among: &[&str]| {
        suggest(name, among)
            .map(|near| format!(" (did you mean `{near}`?)"))
            .unwrap_or_default()
    };
    // Which jobs get or put which resources (for `passed:`).
    let mut uses: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut used: HashSet<&str> = HashSet::new();
    for job in &pipeline.jobs {
        let entry = uses.entry(job.name.as_str()).or_default();
        for (_, g) in job.gets() {
            entry.insert(g.resource_name());
            used.insert(g.resource_name());
        }
        for (_, p) in job.puts() {
            entry.insert(p.resource_name());
            used.insert(p.resource_name());
        }
    }

    let mut upstream: BTreeMap<&str, Vec<(&str, Loc)>> = BTreeMap::new();
    for job in &pipeline.jobs {
        let mut get_names: HashMap<&str, ()> = HashMap::new();
        job.walk_steps(&mut |step| match &step.kind {
            StepKind::Get(g) => {
                let resource = g.resource_name();
                if !resource_names.contains(resource) {
                    out.push(Diagnostic::error(
                        &step.loc,
                        format!(
                            "job `{}`: get `{}`: unknown resource `{resource}`{}",
                            job.name,
                            g.name,
                            hint(resource, &resource_list)
                        ),
                    ));
                }
                if get_names.insert(&g.name, ()).is_some() {
                    out.push(Diagnostic::error(
                        &step.loc,
                        format!("job `{}`: get `{}` appears more than once", job.name, g.name),
                    ));
                }
                for up in &g.passed {
                    match uses.get(up.as_str()) {
                        None => out.push(Diagnostic::error(
                            &step.loc,
                            format!(
                                "job `{}`: get `{}`: passed job `{up}` does not exist{}",
                                job.name,
                                g.name,
                                hint(up, &job_list)
                            ),
                        )),
                        Some(resources) if !resources.contains(resource) => {
                            out.push(Diagnostic::error(
                                &step.loc,
                                format!(
                                    "job `{}`: get `{}`: passed job `{up}` does not get or put resource `{resource}`",
                                    job.name, g.name
                                ),
                            ))
                        }
                        Some(_) => upstream.entry(&job.name).or_default().push((up, step.loc.clone())),
                    }
                }
            }
            StepKind::Put(p) => {
                let resource = p.resource_name();
                if !resource_names.contains(resource) {
                    out.push(Diagnostic::error(
                        &step.loc,
                        format!(
                            "job `{}`: put `{}`: unknown resource `{resource}`{}",
                            job.name,
                            p.name,
                            hint(resource, &resource_list)
                        ),
                    ));
                }
            }
            StepKind::Task(t) => {
                let what = format!("job `{}`: task `{}`", job.name, t.name);
                match (&t.config, &t.file) {
                    (Some(_), Some(_)) => out.push(Diagnostic::error(
                        &step.loc,
                        format!("{what}: has both `file` and `config`; give one"),
                    )),
                    (None, None) => out.push(Diagnostic::error(
                        &step.loc,
                        format!("{what}: needs `file` or `config`"),
                    )),
                    (Some(config), None) => {
                        if config.run.is_none() {
                            let loc = config.loc.clone().unwrap_or_else(|| step.loc.clone());
                            out.push(Diagnostic::error(&loc, format!("{what}: config has no `run`")));
                        }
                        if let Some(image) = &config.image_resource
                            && !known_type(&image.type_)
                        {
                            let loc = config.loc.clone().unwrap_or_else(|| step.loc.clone());
                            out.push(Diagnostic::error(
                                &loc,
                                format!("{what}: image_resource: unknown resource type `{}`", image.type_),
                            ));
                        }
                    }
                    (None, Some(_)) => {}
                }
            }
            _ => {}
        });
    }

    for job in &pipeline.jobs {
        local_vars(job, &mut out);
    }
    identifiers(pipeline, &mut out);
    var_sources(pipeline, &mut out);
    undeclared_var_sources(pipeline, &mut out);

    for r in &pipeline.resources {
        if !used.contains(r.name.as_str()) {
            out.push(Diagnostic::error(
                &r.loc,
                format!("resource `{}` is not used by any job", r.name),
            ));
        }
    }

    if let Some(cycle) = find_cycle(&upstream) {
        let loc = pipeline
            .job(cycle[0])
            .map_or_else(|| top.clone(), |j| j.loc.clone());
        out.push(Diagnostic::error(
            &loc,
            format!("`passed:` constraints form a cycle: {}", cycle.join(" -> ")),
        ));
    }

    let job_names: HashSet<&str> = pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    for g in &pipeline.groups {
        for j in &g.jobs {
            let glob = j.contains('*') || j.contains('?') || j.contains('[');
            if !glob && !job_names.contains(j.as_str()) {
                out.push(Diagnostic::error(
                    &g.loc,
                    format!("group `{}`: unknown job `{j}`", g.name),
                ));
            }
        }
    }
    out
}

/// Warns about `((.:name))` vars that no load_var, across or get step of the job sets.
fn local_vars(job: &crate::model::Job, out: &mut Vec<Diagnostic>) {
    let mut defined: HashSet<&str> = HashSet::new();
    let mut used: Vec<(&Step, String)> = Vec::new();
    job.walk_steps(&mut |step| {
        let scanned = match &step.kind {
            StepKind::LoadVar(l) => {
                defined.insert(&l.name);
                None
            }
            StepKind::Get(g) => {
                defined.insert(&g.name);
                Some(step.to_json())
            }
            StepKind::Across(a) => {
                defined.extend(a.vars.iter().map(|v| v.var.as_str()));
                Some(serde_json::Value::Array(
                    a.vars.iter().map(|v| v.values.clone()).collect(),
                ))
            }
            StepKind::Put(_) | StepKind::Task(_) | StepKind::SetPipeline(_) => Some(step.to_json()),
            _ => None,
        };
        let mut strings = Vec::new();
        if let Some(value) = &scanned {
            collect_strings(value, &mut strings);
        }
        for text in strings {
            for found in vars::find_refs(&text) {
                if found.var.is_local() {
                    used.push((step, found.var.path.clone()));
                }
            }
        }
    });
    let mut warned = HashSet::new();
    for (step, name) in used {
        if !defined.contains(name.as_str()) && warned.insert(name.clone()) {
            out.push(Diagnostic::warning(
                &step.loc,
                format!(
                    "job `{}`: local var ((.:{name})) is never set in this job (by load_var, across or get)",
                    job.name
                ),
            ));
        }
    }
}

/// `var_sources`: unique names; `dummy` needs `config.vars`; other types are not supported
/// (a warning: only builds that use them fail); a config may use static vars but no var
/// source, as in Concourse.
fn var_sources(pipeline: &Pipeline, out: &mut Vec<Diagnostic>) {
    duplicates(
        pipeline.var_sources.iter().map(|v| (&v.name, &v.loc)),
        "var source",
        out,
    );
    for source in &pipeline.var_sources {
        let name = &source.name;
        if source.type_ != vars::DUMMY {
            out.push(Diagnostic::warning(
                &source.loc,
                format!(
                    "var_sources {name}: type {} is not supported by tributary; builds that use (({name}:…)) will error",
                    source.type_
                ),
            ));
        } else if !source.config.get("vars").is_some_and(|v| v.is_object()) {
            out.push(Diagnostic::error(
                &source.loc,
                format!("var_sources {name}: a dummy var source needs `config.vars`, a mapping"),
            ));
        }
        let mut strings = Vec::new();
        collect_strings(
            &serde_json::Value::Object(source.config.clone()),
            &mut strings,
        );
        let used = strings
            .iter()
            .flat_map(|s| vars::find_refs(s))
            .find(|f| f.var.source.is_some());
        if let Some(found) = used {
            out.push(Diagnostic::error(
                &source.loc,
                format!(
                    "var_sources {name}: config uses {}; a var source's config may use static vars but not var sources",
                    found.var
                ),
            ));
        }
    }
}

/// Warns (once per name) about `((source:path))` vars in resources, resource types and steps
/// whose source `var_sources` does not declare: builds that use them error.
fn undeclared_var_sources(pipeline: &Pipeline, out: &mut Vec<Diagnostic>) {
    let declared: HashSet<&str> = pipeline
        .var_sources
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    let mut scanned: Vec<(Loc, serde_json::Value)> = Vec::new();
    for t in &pipeline.resource_types {
        scanned.push((t.loc.clone(), serde_json::Value::Object(t.source.clone())));
    }
    for r in &pipeline.resources {
        scanned.push((r.loc.clone(), serde_json::Value::Object(r.source.clone())));
    }
    for job in &pipeline.jobs {
        job.walk_steps(&mut |step| match &step.kind {
            StepKind::Get(_) | StepKind::Put(_) | StepKind::Task(_) | StepKind::SetPipeline(_) => {
                scanned.push((step.loc.clone(), step.to_json()));
            }
            StepKind::Across(a) => scanned.push((
                step.loc.clone(),
                serde_json::Value::Array(a.vars.iter().map(|v| v.values.clone()).collect()),
            )),
            _ => {}
        });
    }
    let mut warned = HashSet::new();
    for (loc, value) in scanned {
        let mut strings = Vec::new();
        collect_strings(&value, &mut strings);
        for found in strings.iter().flat_map(|s| vars::find_refs(s)) {
            let Some(source) = found.var.source.as_deref() else {
                continue;
            };
            if source != "." && !declared.contains(source) && warned.insert(source.to_owned()) {
                out.push(Diagnostic::warning(
                    &loc,
                    format!(
                        "{} uses var source `{source}`, which var_sources does not declare; builds that use it will error",
                        found.var
                    ),
                ));
            }
        }
    }
}

/// Concourse 7 warns about names that are not identifiers: they must start with a lowercase
/// letter and go on with lowercase letters, digits, `-`, `_` and `.`.
fn identifiers(pipeline: &Pipeline, out: &mut Vec<Diagnostic>) {
    let mut check = |kind: &str, name: &str, loc: &Loc| {
        if name.is_empty() || name.contains("((") || is_identifier(name) {
            return;
        }
        out.push(Diagnostic::warning(
            loc,
            format!(
                "{kind} `{name}` is not a valid identifier: start with a lowercase letter, then use lowercase letters, digits, `-`, `_` or `.`"
            ),
        ));
    };
    for t in &pipeline.resource_types {
        check("resource type", &t.name, &t.loc);
    }
    for r in &pipeline.resources {
        check("resource", &r.name, &r.loc);
    }
    for job in &pipeline.jobs {
        check("job", &job.name, &job.loc);
        job.walk_steps(&mut |step| match &step.kind {
            StepKind::Get(g) => check("get step", &g.name, &step.loc),
            StepKind::Put(p) => check("put step", &p.name, &step.loc),
            StepKind::Task(t) => check("task step", &t.name, &step.loc),
            StepKind::LoadVar(l) => check("load_var step", &l.name, &step.loc),
            StepKind::SetPipeline(p) => check("set_pipeline step", &p.name, &step.loc),
            StepKind::Across(a) => {
                for v in &a.vars {
                    check("across var", &v.var, &step.loc);
                }
            }
            _ => {}
        });
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let valid_rest = |c: char| {
        (c.is_alphabetic() && !c.is_uppercase())
            || c.is_ascii_digit()
            || matches!(c, '-' | '_' | '.')
    };
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() && !c.is_uppercase())
        && chars.all(valid_rest)
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.contains("((") => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => {
            map.iter().for_each(|(k, v)| {
                if k.contains("((") {
                    out.push(k.clone());
                }
                collect_strings(v, out);
            });
        }
        _ => {}
    }
}

fn duplicates<'a>(
    items: impl Iterator<Item = (&'a String, &'a Loc)>,
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen = HashSet::new();
    for (name, loc) in items {
        if !name.is_empty() && !seen.insert(name) {
            out.push(Diagnostic::error(
                loc,
                format!("{what} `{name}` is declared more than once"),
            ));
        }
    }
}

/// A cycle among `job -> upstream jobs` edges, as a path that starts and ends with one job.
fn find_cycle<'a>(upstream: &BTreeMap<&'a str, Vec<(&'a str, Loc)>>) -> Option<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    for &start in upstream.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative DFS: (node, next edge index), with the path on the stack.
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Visiting);
        while let Some(&mut (node, ref mut idx)) = stack.last_mut() {
            let edges = upstream.get(node).map(Vec::as_slice).unwrap_or_default();
            if *idx < edges.len() {
                let next = edges[*idx].0;
                *idx += 1;
                match marks.get(next) {
                    Some(Mark::Visiting) => {
                        let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut path: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                        path.push(next);
                        path.reverse();
                        return Some(path);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(next, Mark::Visiting);
                        stack.push((next, 0));
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    None
}
