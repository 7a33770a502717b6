//! The typed pipeline: what `tributary` runs. Built by `load`, checked by `validate`, drawn by
//! `graph`, run by the engine.
//!
//! Steps are nested the way Concourse parses them: modifiers wrap what follows in the order
//! `ensure` > `on_error` > `on_abort` > `on_failure` > `on_success` > `across` > `attempts` >
//! `timeout` > core step (Concourse's `atc/steps.go`). Free-form values (`source`, `params`,
//! `vars`) are JSON and may still hold `((vars))` resolved at run time.
//! `to_json` writes the pipeline back in Concourse's own shape.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use crate::diag::Loc;
use crate::duration;

/// A JSON object (`source`, `params`).
pub type Object = Map<String, Json>;

/// A whole pipeline.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    /// The start of the file (where pipeline-wide problems are reported).
    pub loc: Loc,
    /// Custom resource types.
    pub resource_types: Vec<ResourceType>,
    /// Resources.
    pub resources: Vec<Resource>,
    /// Jobs.
    pub jobs: Vec<Job>,
    /// Groups (kept for display).
    pub groups: Vec<Group>,
    /// `display` (kept as given).
    pub display: Option<Json>,
    /// `var_sources`: `dummy` ones resolve `((name:path))` at build time; other types error.
    pub var_sources: Vec<VarSource>,
}

/// A `resource_types` entry.
#[derive(Clone, Debug)]
pub struct ResourceType {
    /// Where it is declared.
    pub loc: Loc,
    /// Its name (may shadow a base type).
    pub name: String,
    /// The type of the resource that provides its image.
    pub type_: String,
    /// That resource's source.
    pub source: Object,
    /// Params for fetching the image.
    pub params: Option<Object>,
    /// Run its containers privileged.
    pub privileged: bool,
    /// How often to check the type's image.
    pub check_every: Option<CheckEvery>,
    /// Shallow-merged under the `source` of every resource of this type.
    pub defaults: Option<Object>,
    /// Worker tags.
    pub tags: Vec<String>,
}

/// How often a resource is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckEvery {
    /// Never checked automatically.
    Never,
    /// Every interval.
    Every(Duration),
}

impl CheckEvery {
    /// Concourse's default: one minute.
    pub const DEFAULT: CheckEvery = CheckEvery::Every(Duration::from_secs(60));
}

/// A resource.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Where it is declared.
    pub loc: Loc,
    /// Its name.
    pub name: String,
    /// Its type (a base type or a `resource_types` name).
    pub type_: String,
    /// Its source configuration.
    pub source: Object,
    /// `check_every` (`None`: the default, one minute).
    pub check_every: Option<CheckEvery>,
    /// `check_timeout`.
    pub check_timeout: Option<Duration>,
    /// A pinned version (a subset of fields matches).
    pub version: Option<BTreeMap<String, String>>,
    /// Icon name.
    pub icon: Option<String>,
    /// Whether its metadata is public.
    pub public: bool,
    /// Worker tags.
    pub tags: Vec<String>,
    /// Webhook token.
    pub webhook_token: Option<String>,
    /// A previous name whose history it keeps.
    pub old_name: Option<String>,
}

/// A job.
#[derive(Clone, Debug)]
pub struct Job {
    /// Where it is declared.
    pub loc: Loc,
    /// Its name.
    pub name: String,
    /// A previous name whose history it keeps.
    pub old_name: Option<String>,
    /// Its plan.
    pub plan: Vec<Step>,
    /// At most one build at a time.
    pub serial: bool,
    /// Jobs sharing a group run one build at a time between them.
    pub serial_groups: Vec<String>,
    /// At most this many builds at a time.
    pub max_in_flight: Option<u32>,
    /// How many build logs to keep.
    pub build_log_retention: Option<BuildLogRetention>,
    /// Whether build logs are public.
    pub public: bool,
    /// Refuse manual triggers.
    pub disable_manual_trigger: bool,
    /// Its running builds abort at once when `tributary run` gets its first SIGINT/SIGTERM
    /// (as Concourse aborts them when their worker lands); other jobs' builds finish first.
    pub interruptible: bool,
    /// Job-level hooks.
    pub hooks: JobHooks,
}

/// Job-level hooks (run after the whole plan).
#[derive(Clone, Debug, Default)]
pub struct JobHooks {
    /// On success.
    pub on_success: Option<Box<Step>>,
    /// On failure.
    pub on_failure: Option<Box<Step>>,
    /// On error.
    pub on_error: Option<Box<Step>>,
    /// On abort.
    pub on_abort: Option<Box<Step>>,
    /// Always.
    pub ensure: Option<Box<Step>>,
}

/// `build_log_retention`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildLogRetention {
    /// Keep logs of this many builds.
    pub builds: Option<u32>,
    /// Keep logs for this many days.
    pub days: Option<u32>,
    /// Keep at least this many succeeded builds.
    pub minimum_succeeded_builds: Option<u32>,
}

/// A group of jobs in the UI.
#[derive(Clone, Debug)]
pub struct Group {
    /// Where it is declared.
    pub loc: Loc,
    /// Its name.
    pub name: String,
    /// Job names (globs allowed).
    pub jobs: Vec<String>,
    /// Resource names.
    pub resources: Vec<String>,
}

/// A `var_sources` entry.
#[derive(Clone, Debug)]
pub struct VarSource {
    /// Where it is declared.
    pub loc: Loc,
    /// Its name, used as `((name:path))`.
    pub name: String,
    /// Its type (`vault`, `dummy`, …).
    pub type_: String,
    /// Its config.
    pub config: Object,
}

/// A step with its location.
#[derive(Clone, Debug)]
pub struct Step {
    /// Where the step's mapping starts.
    pub loc: Loc,
    /// What it does.
    pub kind: StepKind,
}

/// What a step does: a core step, or a modifier wrapping another step.
#[derive(Clone, Debug)]
pub enum StepKind {
    /// Fetch a resource version.
    Get(GetStep),
    /// Push to a resource.
    Put(PutStep),
    /// Run a task.
    Task(Box<TaskStep>),
    /// Set a pipeline.
    SetPipeline(SetPipelineStep),
    /// Load a file into a local var.
    LoadVar(LoadVarStep),
    /// Run steps in parallel (`aggregate` is loaded as this).
    InParallel(InParallelStep),
    /// Run steps in order.
    Do(Vec<Step>),
    /// Run a step; its failure does not fail the build.
    Try(Box<Step>),
    /// Run a step for every combination of values.
    Across(AcrossStep),
    /// Retry a step.
    Attempts {
        /// Total attempts (≥ 1).
        attempts: u32,
        /// The retried step.
        step: Box<Step>,
    },
    /// Limit a step's duration; a timeout fails the step.
    Timeout {
        /// The limit.
        duration: Duration,
        /// The limited step.
        step: Box<Step>,
    },
    /// Run `hook` after `step` depending on its result.
    Hook {
        /// When the hook runs.
        when: HookKind,
        /// The wrapped step.
        step: Box<Step>,
        /// The hook.
        hook: Box<Step>,
    },
}

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// `ensure`: always.
    Ensure,
    /// `on_error`.
    OnError,
    /// `on_abort`.
    OnAbort,
    /// `on_failure`.
    OnFailure,
    /// `on_success`.
    OnSuccess,
}

impl HookKind {
    /// The step key.
    pub fn key(self) -> &'static str {
        match self {
            HookKind::Ensure => "ensure",
            HookKind::OnError => "on_error",
            HookKind::OnAbort => "on_abort",
            HookKind::OnFailure => "on_failure",
            HookKind::OnSuccess => "on_success",
        }
    }
}

/// A `get` step.
#[derive(Clone, Debug)]
pub struct GetStep {
    /// The artifact name.
    pub name: String,
    /// The resource (defaults to `name`).
    pub resource: Option<String>,
    /// Jobs the version must have passed.
    pub passed: Vec<String>,
    /// New versions trigger the job.
    pub trigger: bool,
    /// Which versions to use.
    pub version: Option<VersionSpec>,
    /// Params for `in`.
    pub params: Option<Object>,
    /// Worker tags.
    pub tags: Vec<String>,
}

impl GetStep {
    /// The resource this step fetches.
    pub fn resource_name(&self) -> &str {
        self.resource.as_deref().unwrap_or(&self.name)
    }
}

/// `version:` of a get step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest version.
    Latest,
    /// Every version in order.
    Every,
    /// A pinned version (a subset of fields).
    Pinned(BTreeMap<String, String>),
}

/// A `put` step.
#[derive(Clone, Debug)]
pub struct PutStep {
    /// The step name.
    pub name: String,
    /// The resource (defaults to `name`).
    pub resource: Option<String>,
    /// Which artifacts are passed to `out`.
    pub inputs: PutInputs,
    /// Params for `out`.
    pub params: Option<Object>,
    /// Params for the implicit get.
    pub get_params: Option<Object>,
    /// Skip the implicit get.
    pub no_get: bool,
    /// Worker tags.
    pub tags: Vec<String>,
}

impl PutStep {
    /// The resource this step pushes to.
    pub fn resource_name(&self) -> &str {
        self.resource.as_deref().unwrap_or(&self.name)
    }

    /// The artifacts `out` receives, out of those the build has: for `detect`, the ones named
    /// as the first path segment of any string in `params` (at any depth).
    pub fn input_artifacts(&self, available: &[String]) -> Vec<String> {
        match &self.inputs {
            PutInputs::All => available.to_vec(),
            PutInputs::Only(names) => names.clone(),
            PutInputs::Detect => match &self.params {
                Some(params) => detect_put_inputs(params, available),
                None => Vec::new(),
            },
        }
    }
}

/// `inputs: detect`: the artifacts out of `available` named as the first path segment of any
/// string in `params` (at any depth), in `available`'s order. The engine calls it with the
/// params after interpolation.
pub fn detect_put_inputs(params: &Object, available: &[String]) -> Vec<String> {
    let mut mentioned = Vec::new();
    params
        .values()
        .for_each(|v| first_segments(v, &mut mentioned));
    available
        .iter()
        .filter(|a| mentioned.contains(a))
        .cloned()
        .collect()
}

fn first_segments(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => {
            let first = s
                .trim_start_matches("./")
                .split('/')
                .next()
                .unwrap_or_default();
            if !first.is_empty() {
                out.push(first.to_string());
            }
        }
        Json::Array(items) => items.iter().for_each(|v| first_segments(v, out)),
        Json::Object(map) => map.values().for_each(|v| first_segments(v, out)),
        _ => {}
    }
}

impl LoadVarStep {
    /// The format to read the file with: `format:`, else from the extension, else `trim`.
    pub fn effective_format(&self) -> LoadVarFormat {
        self.format.unwrap_or_else(|| {
            if self.file.ends_with(".json") {
                LoadVarFormat::Json
            } else if self.file.ends_with(".yml") || self.file.ends_with(".yaml") {
                LoadVarFormat::Yaml
            } else {
                LoadVarFormat::Trim
            }
        })
    }
}

impl Resource {
    /// How often to check (the default is one minute).
    pub fn check_interval(&self) -> CheckEvery {
        self.check_every.unwrap_or(CheckEvery::DEFAULT)
    }
}

/// `inputs:` of a put step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PutInputs {
    /// Artifacts named as the first path segment of strings in params (the default).
    #[default]
    Detect,
    /// Every artifact.
    All,
    /// These artifacts.
    Only(Vec<String>),
}

/// A `task` step.
#[derive(Clone, Debug)]
pub struct TaskStep {
    /// The task name.
    pub name: String,
    /// Inline config.
    pub config: Option<TaskConfig>,
    /// Config file `artifact/path.yml`.
    pub file: Option<String>,
    /// An artifact to use as the rootfs.
    pub image: Option<String>,
    /// Run privileged.
    pub privileged: bool,
    /// Vars for the task file's `((vars))`.
    pub vars: Option<Object>,
    /// Env overrides.
    pub params: Option<Object>,
    /// Task input name ⇒ artifact name.
    pub input_mapping: BTreeMap<String, String>,
    /// Task output name ⇒ artifact name.
    pub output_mapping: BTreeMap<String, String>,
    /// Container limits override.
    pub container_limits: Option<ContainerLimits>,
    /// Worker tags.
    pub tags: Vec<String>,
}

/// A task's config (inline, or loaded from `file:` at run time).
#[derive(Clone, Debug, Default)]
pub struct TaskConfig {
    /// Where it is declared.
    pub loc: Option<Loc>,
    /// `linux`, `darwin`, `windows`.
    pub platform: Option<String>,
    /// The image to run in.
    pub image_resource: Option<ImageResource>,
    /// A rootfs URI (legacy).
    pub rootfs_uri: Option<String>,
    /// Inputs.
    pub inputs: Vec<TaskInput>,
    /// Outputs.
    pub outputs: Vec<TaskOutput>,
    /// Cached paths.
    pub caches: Vec<String>,
    /// Env defaults.
    pub params: Option<Object>,
    /// What to run.
    pub run: Option<TaskRun>,
    /// Limits.
    pub container_limits: Option<ContainerLimits>,
}

/// A task's `image_resource`.
#[derive(Clone, Debug)]
pub struct ImageResource {
    /// Resource type (after `docker-image` mapping).
    pub type_: String,
    /// Source.
    pub source: Object,
    /// Params for `in`.
    pub params: Option<Object>,
    /// Pinned version.
    pub version: Option<BTreeMap<String, String>>,
}

/// A task input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInput {
    /// Artifact name.
    pub name: String,
    /// Path in the task dir (default: name).
    pub path: Option<String>,
    /// The task runs even if absent.
    pub optional: bool,
}

/// A task output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskOutput {
    /// Artifact name.
    pub name: String,
    /// Path in the task dir (default: name).
    pub path: Option<String>,
}

/// A task's `run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRun {
    /// The program.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working dir relative to the task dir.
    pub dir: Option<String>,
    /// User to run as.
    pub user: Option<String>,
}

/// `container_limits`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerLimits {
    /// CPU shares.
    pub cpu: Option<u64>,
    /// Memory in bytes.
    pub memory: Option<u64>,
}

/// A `set_pipeline` step.
#[derive(Clone, Debug)]
pub struct SetPipelineStep {
    /// Pipeline name, or `self`.
    pub name: String,
    /// Config file.
    pub file: String,
    /// Vars.
    pub vars: Option<Object>,
    /// Var files.
    pub var_files: Vec<String>,
    /// Instance vars.
    pub instance_vars: Option<Object>,
    /// Team.
    pub team: Option<String>,
}

/// A `load_var` step.
#[derive(Clone, Debug)]
pub struct LoadVarStep {
    /// The local var's name.
    pub name: String,
    /// The file `artifact/path`.
    pub file: String,
    /// How to read it (default: from the extension, else `trim`).
    pub format: Option<LoadVarFormat>,
    /// Do not redact the value.
    pub reveal: bool,
}

/// `format:` of load_var.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadVarFormat {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Trimmed text.
    Trim,
    /// Raw text.
    Raw,
}

impl LoadVarFormat {
    /// The format name.
    pub fn name(self) -> &'static str {
        match self {
            LoadVarFormat::Json => "json",
            LoadVarFormat::Yaml => "yaml",
            LoadVarFormat::Trim => "trim",
            LoadVarFormat::Raw => "raw",
        }
    }
}

/// An `in_parallel` step.
#[derive(Clone, Debug)]
pub struct InParallelStep {
    /// The steps.
    pub steps: Vec<Step>,
    /// At most this many at once.
    pub limit: Option<u32>,
    /// Stop at the first failure.
    pub fail_fast: bool,
}

/// An `across` modifier.
#[derive(Clone, Debug)]
pub struct AcrossStep {
    /// The vars and their values.
    pub vars: Vec<AcrossVar>,
    /// Stop at the first failure.
    pub fail_fast: bool,
    /// The step run for each combination.
    pub step: Box<Step>,
}

/// One var of an `across` step.
#[derive(Clone, Debug)]
pub struct AcrossVar {
    /// The local var's name.
    pub var: String,
    /// Its values (a list, or a `((var))` string resolved at run time).
    pub values: Json,
    /// How many run at once.
    pub max_in_flight: MaxInFlight,
}

/// `max_in_flight` of an across var.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxInFlight {
    /// All at once.
    All,
    /// At most this many (default 1).
    Limit(u32),
}

impl Step {
    /// Calls `f` on this step and every step nested in it (hooks included), depth first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Step)) {
        f(self);
        match &self.kind {
            StepKind::Get(_)
            | StepKind::Put(_)
            | StepKind::Task(_)
            | StepKind::SetPipeline(_)
            | StepKind::LoadVar(_) => {}
            StepKind::InParallel(p) => p.steps.iter().for_each(|s| s.walk(f)),
            StepKind::Do(steps) => steps.iter().for_each(|s| s.walk(f)),
            StepKind::Try(step)
            | StepKind::Attempts { step, .. }
            | StepKind::Timeout { step, .. } => step.walk(f),
            StepKind::Across(a) => a.step.walk(f),
            StepKind::Hook { step, hook, .. } => {
                step.walk(f);
                hook.walk(f);
            }
        }
    }
}

impl Job {
    /// Calls `f` on every step of the plan and the job's hooks.
    pub fn walk_steps<'a>(&'a self, f: &mut dyn FnMut(&'a Step)) {
        self.plan.iter().for_each(|s| s.walk(f));
        let h = &self.hooks;
        for hook in [
            &h.on_success,
            &h.on_failure,
            &h.on_error,
            &h.on_abort,
            &h.ensure,
        ]
        .into_iter()
        .flatten()
        {
            hook.walk(f);
        }
    }

    /// The job's get steps (anywhere in the plan).
    pub fn gets(&self) -> Vec<(&Step, &GetStep)> {
        let mut out = Vec::new();
        self.walk_steps(&mut |s| {
            if let StepKind::Get(g) = &s.kind {
                out.push((s, g));
            }
        });
        out
    }

    /// The job's put steps (anywhere in the plan).
    pub fn puts(&self) -> Vec<(&Step, &PutStep)> {
        let mut out = Vec::new();
        self.walk_steps(&mut |s| {
            if let StepKind::Put(p) = &s.kind {
                out.push((s, p));
            }
        });
        out
    }
}

impl Pipeline {
    /// A resource by name.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// A job by name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// A custom resource type by name.
    pub fn resource_type(&self, name: &str) -> Option<&ResourceType> {
        self.resource_types.iter().find(|t| t.name == name)
    }

    /// The base type a resource type name finally runs as: custom types are followed through
    /// their `type:` (a type that shadows a base type resolves to that base type).
    pub fn base_type<'a>(&'a self, mut name: &'a str) -> Option<&'a str> {
        for _ in 0..=self.resource_types.len() {
            match self.resource_type(name) {
                Some(t) if t.type_ == t.name => return Some(&t.type_),
                Some(t) => name = &t.type_,
                None => return Some(name),
            }
        }
        None
    }

    /// The worker tags a step asks for: its own `tags`, then its resource's, then those of the
    /// resource's custom type and the types that type runs on; each once, in that order.
    pub fn worker_tags(&self, step_tags: &[String], resource: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |tags: &[String]| {
            for tag in tags {
                if !out.contains(tag) {
                    out.push(tag.clone());
                }
            }
        };
        add(step_tags);
        if let Some(r) = resource.and_then(|name| self.resource(name)) {
            add(&r.tags);
            let mut name = r.type_.as_str();
            for _ in 0..self.resource_types.len() {
                let Some(t) = self.resource_type(name) else {
                    break;
                };
                add(&t.tags);
                if t.type_ == t.name {
                    break;
                }
                name = &t.type_;
            }
        }
        out
    }

    /// A resource's `source` with its type's `defaults` shallow-merged underneath.
    pub fn source_with_defaults(&self, resource: &Resource) -> Object {
        with_defaults(self.resource_type(&resource.type_), &resource.source)
    }

    /// A task image's `source` with its type's `defaults` shallow-merged underneath.
    pub fn image_source_with_defaults(&self, image: &ImageResource) -> Object {
        with_defaults(self.resource_type(&image.type_), &image.source)
    }

    /// The pipeline in Concourse's own YAML/JSON shape (vars that were interpolated stay so).
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        if !self.resource_types.is_empty() {
            out.insert(
                "resource_types".into(),
                self.resource_types
                    .iter()
                    .map(ResourceType::to_json)
                    .collect(),
            );
        }
        out.insert(
            "resources".into(),
            self.resources.iter().map(Resource::to_json).collect(),
        );
        out.insert("jobs".into(), self.jobs.iter().map(Job::to_json).collect());
        if !self.groups.is_empty() {
            let groups = self
                .groups
                .iter()
                .map(|g| json!({"name": g.name, "jobs": g.jobs, "resources": g.resources}))
                .collect();
            out.insert("groups".into(), groups);
        }
        if let Some(display) = &self.display {
            out.insert("display".into(), display.clone());
        }
        if !self.var_sources.is_empty() {
            let sources = self
                .var_sources
                .iter()
                .map(|v| json!({"name": v.name, "type": v.type_, "config": v.config}))
                .collect();
            out.insert("var_sources".into(), sources);
        }
        Json::Object(out)
    }
}

fn with_defaults(t: Option<&ResourceType>, source: &Object) -> Object {
    let mut merged = t.and_then(|t| t.defaults.clone()).unwrap_or_default();
    for (k, v) in source {
        merged.insert(k.clone(), v.clone());
    }
    merged
}

fn put(out: &mut Object, key: &str, value: Option<Json>) {
    if let Some(v) = value {
        out.insert(key.to_string(), v);
    }
}

fn flag(out: &mut Object, key: &str, value: bool) {
    if value {
        out.insert(key.to_string(), Json::Bool(true));
    }
}

fn list(out: &mut Object, key: &str, values: &[String]) {
    if !values.is_empty() {
        out.insert(key.to_string(), json!(values));
    }
}

fn obj(value: &Option<Object>) -> Option<Json> {
    value.clone().map(Json::Object)
}

fn check_every_json(c: Option<CheckEvery>) -> Option<Json> {
    c.map(|c| match c {
        CheckEvery::Never => json!("never"),
        CheckEvery::Every(d) => json!(duration::format(d)),
    })
}

impl ResourceType {
    fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(self.type_));
        out.insert("source".into(), Json::Object(self.source.clone()));
        put(&mut out, "params", obj(&self.params));
        flag(&mut out, "privileged", self.privileged);
        put(&mut out, "check_every", check_every_json(self.check_every));
        put(&mut out, "defaults", obj(&self.defaults));
        list(&mut out, "tags", &self.tags);
        Json::Object(out)
    }
}

impl Resource {
    fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        put(
            &mut out,
            "old_name",
            self.old_name.as_ref().map(|s| json!(s)),
        );
        out.insert("type".into(), json!(self.type_));
        out.insert("source".into(), Json::Object(self.source.clone()));
        put(&mut out, "check_every", check_every_json(self.check_every));
        put(
            &mut out,
            "check_timeout",
            self.check_timeout.map(|d| json!(duration::format(d))),
        );
        put(&mut out, "version", self.version.as_ref().map(|v| json!(v)));
        put(&mut out, "icon", self.icon.as_ref().map(|s| json!(s)));
        flag(&mut out, "public", self.public);
        list(&mut out, "tags", &self.tags);
        put(
            &mut out,
            "webhook_token",
            self.webhook_token.as_ref().map(|s| json!(s)),
        );
        Json::Object(out)
    }
}

impl Job {
    fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        put(
            &mut out,
            "old_name",
            self.old_name.as_ref().map(|s| json!(s)),
        );
        flag(&mut out, "serial", self.serial);
        list(&mut out, "serial_groups", &self.serial_groups);
        put(
            &mut out,
            "max_in_flight",
            self.max_in_flight.map(|n| json!(n)),
        );
        if let Some(r) = &self.build_log_retention {
            let mut m = Map::new();
            put(&mut m, "builds", r.builds.map(|n| json!(n)));
            put(&mut m, "days", r.days.map(|n| json!(n)));
            put(
                &mut m,
                "minimum_succeeded_builds",
                r.minimum_succeeded_builds.map(|n| json!(n)),
            );
            out.insert("build_log_retention".into(), Json::Object(m));
        }
        flag(&mut out, "public", self.public);
        flag(
            &mut out,
            "disable_manual_trigger",
            self.disable_manual_trigger,
        );
        flag(&mut out, "interruptible", self.interruptible);
        out.insert("plan".into(), self.plan.iter().map(Step::to_json).collect());
        let h = &self.hooks;
        for (key, hook) in [
            ("on_success", &h.on_success),
            ("on_failure", &h.on_failure),
            ("on_error", &h.on_error),
            ("on_abort", &h.on_abort),
            ("ensure", &h.ensure),
        ] {
            put(&mut out, key, hook.as_ref().map(|s| s.to_json()));
        }
        Json::Object(out)
    }
}

impl Step {
    /// The step in Concourse's flat shape (modifiers become keys of one mapping).
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        self.fill(&mut out);
        Json::Object(out)
    }

    fn fill(&self, out: &mut Object) {
        match &self.kind {
            StepKind::Get(g) => {
                out.insert("get".into(), json!(g.name));
                put(out, "resource", g.resource.as_ref().map(|s| json!(s)));
                list(out, "passed", &g.passed);
                flag(out, "trigger", g.trigger);
                put(
                    out,
                    "version",
                    g.version.as_ref().map(|v| match v {
                        VersionSpec::Latest => json!("latest"),
                        VersionSpec::Every => json!("every"),
                        VersionSpec::Pinned(p) => json!(p),
                    }),
                );
                put(out, "params", obj(&g.params));
                list(out, "tags", &g.tags);
            }
            StepKind::Put(p) => {
                out.insert("put".into(), json!(p.name));
                put(out, "resource", p.resource.as_ref().map(|s| json!(s)));
                match &p.inputs {
                    PutInputs::Detect => {}
                    PutInputs::All => {
                        out.insert("inputs".into(), json!("all"));
                    }
                    PutInputs::Only(names) => {
                        out.insert("inputs".into(), json!(names));
                    }
                }
                put(out, "params", obj(&p.params));
                put(out, "get_params", obj(&p.get_params));
                flag(out, "no_get", p.no_get);
                list(out, "tags", &p.tags);
            }
            StepKind::Task(t) => {
                out.insert("task".into(), json!(t.name));
                put(out, "config", t.config.as_ref().map(TaskConfig::to_json));
                put(out, "file", t.file.as_ref().map(|s| json!(s)));
                put(out, "image", t.image.as_ref().map(|s| json!(s)));
                flag(out, "privileged", t.privileged);
                put(out, "vars", obj(&t.vars));
                put(out, "params", obj(&t.params));
                if !t.input_mapping.is_empty() {
                    out.insert("input_mapping".into(), json!(t.input_mapping));
                }
                if !t.output_mapping.is_empty() {
                    out.insert("output_mapping".into(), json!(t.output_mapping));
                }
                put(
                    out,
                    "container_limits",
                    t.container_limits.as_ref().map(limits_json),
                );
                list(out, "tags", &t.tags);
            }
            StepKind::SetPipeline(s) => {
                out.insert("set_pipeline".into(), json!(s.name));
                out.insert("file".into(), json!(s.file));
                put(out, "vars", obj(&s.vars));
                list(out, "var_files", &s.var_files);
                put(out, "instance_vars", obj(&s.instance_vars));
                put(out, "team", s.team.as_ref().map(|t| json!(t)));
            }
            StepKind::LoadVar(l) => {
                out.insert("load_var".into(), json!(l.name));
                out.insert("file".into(), json!(l.file));
                put(out, "format", l.format.map(|f| json!(f.name())));
                flag(out, "reveal", l.reveal);
            }
            StepKind::InParallel(p) => {
                let steps: Vec<Json> = p.steps.iter().map(Step::to_json).collect();
                if p.limit.is_none() && !p.fail_fast {
                    out.insert("in_parallel".into(), Json::Array(steps));
                } else {
                    let mut m = Map::new();
                    m.insert("steps".into(), Json::Array(steps));
                    put(&mut m, "limit", p.limit.map(|n| json!(n)));
                    flag(&mut m, "fail_fast", p.fail_fast);
                    out.insert("in_parallel".into(), Json::Object(m));
                }
            }
            StepKind::Do(steps) => {
                out.insert("do".into(), steps.iter().map(Step::to_json).collect());
            }
            StepKind::Try(step) => {
                out.insert("try".into(), step.to_json());
            }
            StepKind::Across(a) => {
                let vars = a
                    .vars
                    .iter()
                    .map(|v| {
                        let mut m = Map::new();
                        m.insert("var".into(), json!(v.var));
                        m.insert("values".into(), v.values.clone());
                        match v.max_in_flight {
                            MaxInFlight::All => {
                                m.insert("max_in_flight".into(), json!("all"));
                            }
                            MaxInFlight::Limit(1) => {}
                            MaxInFlight::Limit(n) => {
                                m.insert("max_in_flight".into(), json!(n));
                            }
                        }
                        Json::Object(m)
                    })
                    .collect();
                out.insert("across".into(), vars);
                flag(out, "fail_fast", a.fail_fast);
                a.step.fill(out);
            }
            StepKind::Attempts { attempts, step } => {
                out.insert("attempts".into(), json!(attempts));
                step.fill(out);
            }
            StepKind::Timeout { duration: d, step } => {
                out.insert("timeout".into(), json!(duration::format(*d)));
                step.fill(out);
            }
            StepKind::Hook { when, step, hook } => {
                out.insert(when.key().into(), hook.to_json());
                step.fill(out);
            }
        }
    }
}

fn limits_json(l: &ContainerLimits) -> Json {
    let mut m = Map::new();
    put(&mut m, "cpu", l.cpu.map(|n| json!(n)));
    put(&mut m, "memory", l.memory.map(|n| json!(n)));
    Json::Object(m)
}

impl TaskConfig {
    /// The config in Concourse's shape.
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        put(
            &mut out,
            "platform",
            self.platform.as_ref().map(|s| json!(s)),
        );
        if let Some(image) = &self.image_resource {
            let mut m = Map::new();
            m.insert("type".into(), json!(image.type_));
            m.insert("source".into(), Json::Object(image.source.clone()));
            put(&mut m, "params", obj(&image.params));
            put(&mut m, "version", image.version.as_ref().map(|v| json!(v)));
            out.insert("image_resource".into(), Json::Object(m));
        }
        put(
            &mut out,
            "rootfs_uri",
            self.rootfs_uri.as_ref().map(|s| json!(s)),
        );
        if !self.inputs.is_empty() {
            let inputs = self
                .inputs
                .iter()
                .map(|i| {
                    let mut m = Map::new();
                    m.insert("name".into(), json!(i.name));
                    put(&mut m, "path", i.path.as_ref().map(|s| json!(s)));
                    flag(&mut m, "optional", i.optional);
                    Json::Object(m)
                })
                .collect();
            out.insert("inputs".into(), inputs);
        }
        if !self.outputs.is_empty() {
            let outputs = self
                .outputs
                .iter()
                .map(|o| {
                    let mut m = Map::new();
                    m.insert("name".into(), json!(o.name));
                    put(&mut m, "path", o.path.as_ref().map(|s| json!(s)));
                    Json::Object(m)
                })
                .collect();
            out.insert("outputs".into(), outputs);
        }
        if !self.caches.is_empty() {
            let caches = self.caches.iter().map(|p| json!({ "path": p })).collect();
            out.insert("caches".into(), caches);
        }
        put(&mut out, "params", obj(&self.params));
        if let Some(run) = &self.run {
            let mut m = Map::new();
            m.insert("path".into(), json!(run.path));
            if !run.args.is_empty() {
                m.insert("args".into(), json!(run.args));
            }
            put(&mut m, "dir", run.dir.as_ref().map(|s| json!(s)));
            put(&mut m, "user", run.user.as_ref().map(|s| json!(s)));
            out.insert("run".into(), Json::Object(m));
        }
        put(
            &mut out,
            "container_limits",
            self.container_limits.as_ref().map(limits_json),
        );
        Json::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(inputs: PutInputs, params: Json) -> PutStep {
        PutStep {
            name: "img".into(),
            resource: None,
            inputs,
            params: params.as_object().cloned(),
            get_params: None,
            no_get: false,
            tags: Vec::new(),
        }
    }

    #[test]
    fn put_inputs_detect_first_path_segments() {
        let available: Vec<String> = ["image", "src", "version", "unused"]
            .map(String::from)
            .to_vec();
        let params = json!({"image": "image/image.tar", "tags": ["./version/tag"], "deep": {"x": "src"}, "n": 1});
        let cases = [
            (PutInputs::Detect, vec!["image", "src", "version"]),
            (PutInputs::All, vec!["image", "src", "version", "unused"]),
            (PutInputs::Only(vec!["src".into()]), vec!["src"]),
        ];
        for (inputs, want) in cases {
            assert_eq!(
                put(inputs.clone(), params.clone()).input_artifacts(&available),
                want,
                "{inputs:?}"
            );
        }
    }

    #[test]
    fn worker_tags_come_from_the_step_its_resource_and_its_types() {
        let yaml = r#"
resource_types:
- name: mine
  type: other
  source: {repository: x}
  tags: [gpu, arm]
- name: other
  type: registry-image
  source: {repository: y}
  tags: [dc1]
resources:
- name: plain
  type: git
  source: {uri: /r}
- name: tagged
  type: mine
  tags: [arm, big]
jobs:
- name: j
  plan:
  - get: plain
  - get: tagged
"#;
        let loaded = crate::load::load_str(yaml, "p.yml", &crate::vars::StaticVars::default());
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let p = &loaded.pipeline;
        let tags = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], Option<&str>, &[&str])] = &[
            (&[], None, &[]),
            (&["fast"], None, &["fast"]),
            (&[], Some("plain"), &[]),
            (
                &["fast"],
                Some("tagged"),
                &["fast", "arm", "big", "gpu", "dc1"],
            ),
            (&[], Some("nowhere"), &[]),
        ];
        for (step, resource, want) in cases {
            assert_eq!(
                p.worker_tags(&tags(step), *resource),
                tags(want),
                "{step:?} {resource:?}"
            );
        }
    }

    #[test]
    fn load_var_format_defaults_from_the_extension() {
        let cases = [
            ("a/v.json", None, LoadVarFormat::Json),
            ("a/v.yml", None, LoadVarFormat::Yaml),
            ("a/v.yaml", None, LoadVarFormat::Yaml),
            ("a/tag", None, LoadVarFormat::Trim),
            ("a/v.json", Some(LoadVarFormat::Raw), LoadVarFormat::Raw),
        ];
        for (file, format, want) in cases {
            let step = LoadVarStep {
                name: "v".into(),
                file: file.into(),
                format,
                reveal: false,
            };
            assert_eq!(step.effective_format(), want, "{file}");
        }
    }
}
