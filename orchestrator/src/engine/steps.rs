//! A build's steps: get, put, task, load_var, set_pipeline and the modifiers (do, try,
//! in_parallel, across, attempts, timeout, hooks), with Concourse's outcomes: a step succeeds,
//! fails, errors or is aborted, and the build's status is the worst that was not recovered.
//!
//! Artifacts live in the build's directory; inputs of a task are copies, so a task never
//! changes an artifact unless an output has the same path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json, json};

use crate::load::load_task_config;
use crate::model::{
    AcrossStep, GetStep, HookKind, InParallelStep, Job, LoadVarFormat, LoadVarStep, MaxInFlight,
    PutInputs, PutStep, SetPipelineStep, Step, StepKind, TaskConfig, TaskStep, VersionSpec,
};
use crate::runner::rootfs::{ImageMetadata, copy_tree};
use crate::runner::{Cancel, Limits, LogSink, Mount, ProcessSpec, RunError, Stream};
use crate::schedule::retention::{Retention, logs_to_reap};
use crate::state::{Build, BuildStatus, BuildVersion, LogLine};
use crate::vars::StaticVars;

use super::interp::{Scope, resolve, resolve_object};
use super::output::now_ms;
use super::resource::{Invocation, TypeImpl};
use super::{BoxFuture, Engine};

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it should.
    Succeeded,
    /// It ran and failed (a task's non-zero exit, a timeout).
    Failed,
    /// Something went wrong around it (missing input or var, a resource error).
    Errored(String),
    /// It was cancelled.
    Aborted,
}

impl Outcome {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        *self == Outcome::Succeeded
    }

    fn rank(&self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::Errored(_) => 2,
            Outcome::Aborted => 3,
        }
    }

    /// The build status this outcome gives.
    pub fn status(&self) -> BuildStatus {
        match self {
            Outcome::Succeeded => BuildStatus::Succeeded,
            Outcome::Failed => BuildStatus::Failed,
            Outcome::Errored(_) => BuildStatus::Errored,
            Outcome::Aborted => BuildStatus::Aborted,
        }
    }
}

/// One running build.
pub(crate) struct BuildCtx {
    pub engine: Arc<Engine>,
    pub build: Build,
    pub job: Job,
    label: String,
    dir: PathBuf,
    /// Scheduled inputs: get name ⇒ (resource, version).
    inputs: BTreeMap<String, (String, i64, resource_protocol::Version)>,
    artifacts: Mutex<BTreeMap<String, PathBuf>>,
    counter: AtomicU64,
}

impl BuildCtx {
    pub(crate) fn log(&self, step: &str, stream: &str, text: &str) {
        let text = self.engine.redactor.redact(text);
        let time_ms = now_ms();
        self.engine
            .output
            .event(time_ms, &self.label, step, stream, &text);
        let line = LogLine {
            time_ms,
            step: step.to_owned(),
            stream: stream.to_owned(),
            text,
        };
        let _ = self
            .engine
            .state()
            .append_log(self.build.id, std::slice::from_ref(&line));
    }

    fn sink(self: &Arc<Self>, step: &str) -> LogSink {
        let ctx = self.clone();
        let step = step.to_owned();
        Arc::new(move |stream, line: &str| {
            let stream = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            ctx.log(&step, stream, line);
        })
    }

    fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn fresh_dir(&self, kind: &str, name: &str) -> Result<PathBuf, String> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = self.dir.join(format!("{kind}-{}-{safe}", self.next_id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    fn artifact(&self, name: &str) -> Option<PathBuf> {
        self.artifacts.lock().ok()?.get(name).cloned()
    }

    fn set_artifact(&self, name: &str, dir: PathBuf) {
        if let Ok(mut artifacts) = self.artifacts.lock() {
            artifacts.insert(name.to_owned(), dir);
        }
    }

    fn build_env(&self) -> Vec<(String, String)> {
        vec![
            ("BUILD_ID".into(), self.build.id.to_string()),
            ("BUILD_NAME".into(), self.build.name.to_string()),
            ("BUILD_JOB_NAME".into(), self.build.job.clone()),
            (
                "BUILD_PIPELINE_NAME".into(),
                self.engine.config.pipeline_name.clone(),
            ),
            ("BUILD_TEAM_NAME".into(), "main".into()),
        ]
    }

    /// Reads `artifact/path` from the build's artifacts.
    fn artifact_file(&self, spec: &str) -> Result<(PathBuf, String), String> {
        let (artifact, path) = spec
            .split_once('/')
            .ok_or_else(|| format!("{spec}: expected artifact/path"))?;
        let dir = self
            .artifact(artifact)
            .ok_or_else(|| format!("{spec}: unknown artifact {artifact}"))?;
        let file = dir.join(path);
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{spec}: cannot read: {e}"))?;
        Ok((file, text))
    }
}

impl Engine {
    /// Runs a created build to its end and records its status.
    pub async fn run_build(self: &Arc<Self>, build: &Build) -> BuildStatus {
        self.run_build_with(build, BTreeMap::new(), &BTreeMap::new())
            .await
    }

    /// Runs a build with `preset` artifacts (`execute -i`), copying the artifacts named in
    /// `export` to their directories at the end (`execute -o`).
    pub async fn run_build_with(
        self: &Arc<Self>,
        build: &Build,
        preset: BTreeMap<String, PathBuf>,
        export: &BTreeMap<String, PathBuf>,
    ) -> BuildStatus {
        let Some(job) = self.pipeline.job(&build.job).cloned() else {
            let _ = self
                .state()
                .finish_build(build.id, BuildStatus::Errored, Some("unknown job"));
            return BuildStatus::Errored;
        };
        let mut inputs = BTreeMap::new();
        let scheduled = self.state().build_inputs(build.id).unwrap_or_default();
        for input in scheduled {
            if let Ok(Some((_, version))) = self.state().version(input.version_id) {
                inputs.insert(input.name, (input.resource, input.version_id, version));
            }
        }
        let dir = self
            .config
            .state_dir
            .join("builds")
            .join(format!("{}-{}", build.job, build.name));
        let ctx = Arc::new(BuildCtx {
            engine: self.clone(),
            build: build.clone(),
            label: format!("{} #{}", build.job, build.name),
            job: job.clone(),
            dir: dir.clone(),
            inputs,
            artifacts: Mutex::new(preset),
            counter: AtomicU64::new(0),
        });
        let _ = self.state().start_build(build.id);
        ctx.log("", "event", "build started");
        let cancel = self.build_cancel(&job);
        let scope = Arc::new(self.var_scope());
        let plan = Step {
            loc: job.loc.clone(),
            kind: StepKind::Do(job.plan.clone()),
        };
        let mut outcome = run_step(&ctx, &plan, scope.clone(), cancel.clone()).await;
        let hooks = &job.hooks;
        let hook = match &outcome {
            Outcome::Succeeded => hooks.on_success.as_ref(),
            Outcome::Failed => hooks.on_failure.as_ref(),
            Outcome::Errored(_) => hooks.on_error.as_ref(),
            Outcome::Aborted => hooks.on_abort.as_ref(),
        };
        if let Some(hook) = hook {
            let result = run_step(&ctx, hook, scope.clone(), Cancel::new()).await;
            if outcome.ok() {
                outcome = result;
            }
        }
        if let Some(ensure) = &hooks.ensure {
            let result = run_step(&ctx, ensure, scope, Cancel::new()).await;
            if outcome.ok() {
                outcome = result;
            }
        }
        // `execute -o`: an output that cannot be handed over errors a build that succeeded.
        for (name, dest) in export {
            let failure = match ctx.artifact(name) {
                Some(dir) => {
                    let _ = std::fs::remove_dir_all(dest);
                    copy_tree(&dir, dest)
                        .err()
                        .map(|e| format!("output {name}: {e}"))
                }
                None => Some(format!("output {name}: not produced")),
            };
            if let Some(failure) = failure {
                ctx.log("", "event", &failure);
                if outcome.ok() {
                    outcome = Outcome::Errored(failure);
                }
            }
        }
        let status = outcome.status();
        let error = match &outcome {
            Outcome::Errored(e) => Some(self.redactor.redact(e)),
            _ => None,
        };
        ctx.log("", "event", &format!("build {}", status.as_str()));
        let _ = self
            .state()
            .finish_build(build.id, status, error.as_deref());
        self.apply_log_retention(&job);
        // Artifacts are only needed while the build runs; caches live elsewhere. Deleting a
        // clone takes a while: off the scheduler's path (the runtime waits for it on exit).
        drop(ctx);
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir));
        status
    }
}

impl Engine {
    /// `build_log_retention`: after a build of `job` finishes, deletes the logs of the builds
    /// outside the retention (their rows, statuses, inputs and outputs stay).
    fn apply_log_retention(&self, job: &Job) {
        let Some(r) = &job.build_log_retention else {
            return;
        };
        let retention = Retention {
            builds: r.builds.unwrap_or(0),
            days: r.days.unwrap_or(0),
            minimum_succeeded_builds: r.minimum_succeeded_builds.unwrap_or(0),
        };
        let mut state = self.state();
        let Ok(builds) = state.logged_builds(&job.name) else {
            return;
        };
        let reap = logs_to_reap(retention, &builds, now_ms() / 1000);
        if !reap.is_empty() {
            let _ = state.reap_logs(&reap);
        }
    }
}

/// Runs one step (and everything it wraps).
pub(crate) fn run_step<'a>(
    ctx: &'a Arc<BuildCtx>,
    step: &'a Step,
    scope: Arc<Scope>,
    cancel: Cancel,
) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        if cancel.is_cancelled() {
            return Outcome::Aborted;
        }
        match &step.kind {
            StepKind::Get(get) => report(ctx, &get.name, get_step(ctx, get, &scope, cancel).await),
            StepKind::Put(put) => report(ctx, &put.name, put_step(ctx, put, &scope, cancel).await),
            StepKind::Task(task) => {
                report(ctx, &task.name, task_step(ctx, task, &scope, cancel).await)
            }
            StepKind::LoadVar(lv) => report(ctx, &lv.name, load_var(ctx, lv, &scope)),
            StepKind::SetPipeline(sp) => report(ctx, &sp.name, set_pipeline(ctx, sp)),
            StepKind::Do(steps) => {
                for s in steps {
                    let outcome = run_step(ctx, s, scope.clone(), cancel.clone()).await;
                    if !outcome.ok() {
                        return outcome;
                    }
                }
                Outcome::Succeeded
            }
            StepKind::Try(inner) => match run_step(ctx, inner, scope, cancel).await {
                Outcome::Aborted => Outcome::Aborted,
                _ => Outcome::Succeeded,
            },
            StepKind::InParallel(p) => in_parallel(ctx, p, scope, cancel).await,
            StepKind::Across(a) => across(ctx, a, scope, cancel).await,
            StepKind::Attempts { attempts, step } => {
                let mut outcome = Outcome::Succeeded;
                for attempt in 1..=*attempts {
                    outcome = run_step(ctx, step, scope.clone(), cancel.clone()).await;
                    if matches!(outcome, Outcome::Succeeded | Outcome::Aborted) {
                        break;
                    }
                    if attempt < *attempts {
                        ctx.log(
                            "",
                            "event",
                            &format!("attempt {attempt} of {attempts} did not succeed; retrying"),
                        );
                    }
                }
                outcome
            }
            StepKind::Timeout { duration, step } => {
                let child = cancel.child();
                let fut = run_step(ctx, step, scope, child.clone());
                tokio::pin!(fut);
                tokio::select! {
                    outcome = &mut fut => outcome,
                    () = tokio::time::sleep(*duration) => {
                        child.cancel();
                        let _ = fut.await;
                        if cancel.is_cancelled() {
                            Outcome::Aborted
                        } else {
                            ctx.log("", "event", &format!("timed out after {}", crate::duration::format(*duration)));
                            Outcome::Failed
                        }
                    }
                }
            }
            StepKind::Hook { when, step, hook } => {
                let outcome = run_step(ctx, step, scope.clone(), cancel.clone()).await;
                let runs = match when {
                    HookKind::Ensure => true,
                    HookKind::OnSuccess => outcome.ok(),
                    HookKind::OnFailure => outcome == Outcome::Failed,
                    HookKind::OnError => matches!(outcome, Outcome::Errored(_)),
                    HookKind::OnAbort => outcome == Outcome::Aborted,
                };
                if !runs {
                    return outcome;
                }
                // Hooks of an aborted step still run (cleanup), so not under its token.
                let hook_cancel = if outcome == Outcome::Aborted {
                    Cancel::new()
                } else {
                    cancel.clone()
                };
                let hook_outcome = run_step(ctx, hook, scope, hook_cancel).await;
                match when {
                    HookKind::OnSuccess => hook_outcome,
                    HookKind::Ensure if outcome.ok() => hook_outcome,
                    _ => match hook_outcome {
                        Outcome::Errored(e) if outcome == Outcome::Failed => Outcome::Errored(e),
                        _ => outcome,
                    },
                }
            }
        }
    })
}

/// Says once per step that its worker tags (the step's, its resource's and its resource
/// type's) were ignored: tributary has one local worker, without tags.
fn note_ignored_tags(ctx: &BuildCtx, step: &str, step_tags: &[String], resource: Option<&str>) {
    let tags = ctx.engine.pipeline.worker_tags(step_tags, resource);
    if !tags.is_empty() {
        ctx.log(
            step,
            "event",
            &format!(
                "tags [{}] ignored: tributary runs every step on its one local worker, which has no tags",
                tags.join(", ")
            ),
        );
    }
}

fn report(ctx: &BuildCtx, step: &str, result: Result<Outcome, String>) -> Outcome {
    match result {
        Ok(outcome) => {
            if outcome == Outcome::Aborted {
                ctx.log(step, "event", "aborted");
            }
            outcome
        }
        Err(e) => {
            ctx.log(step, "event", &format!("errored: {e}"));
            Outcome::Errored(format!("{step}: {e}"))
        }
    }
}

fn worst(outcomes: Vec<Outcome>, cancelled: bool) -> Outcome {
    if cancelled {
        return Outcome::Aborted;
    }
    // Siblings aborted by fail_fast do not hide the failure that stopped them.
    let real: Vec<Outcome> = outcomes
        .iter()
        .filter(|o| **o != Outcome::Aborted)
        .cloned()
        .collect();
    let pool = if real.iter().any(|o| !o.ok()) {
        real
    } else {
        outcomes
    };
    pool.into_iter()
        .max_by_key(Outcome::rank)
        .unwrap_or(Outcome::Succeeded)
}

async fn run_group<'a>(
    ctx: &'a Arc<BuildCtx>,
    jobs: Vec<(&'a Step, Arc<Scope>)>,
    limit: Option<usize>,
    fail_fast: bool,
    cancel: Cancel,
) -> Outcome {
    let group = cancel.child();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(
        limit.unwrap_or(jobs.len().max(1)).max(1),
    ));
    let futures = jobs.into_iter().map(|(step, scope)| {
        let group = group.clone();
        let semaphore = semaphore.clone();
        async move {
            let _permit = semaphore.acquire().await;
            let outcome = run_step(ctx, step, scope, group.clone()).await;
            if fail_fast && !outcome.ok() {
                group.cancel();
            }
            outcome
        }
    });
    let outcomes = futures::future::join_all(futures).await;
    worst(outcomes, cancel.is_cancelled())
}

async fn in_parallel(
    ctx: &Arc<BuildCtx>,
    p: &InParallelStep,
    scope: Arc<Scope>,
    cancel: Cancel,
) -> Outcome {
    let jobs = p.steps.iter().map(|s| (s, scope.clone())).collect();
    run_group(ctx, jobs, p.limit.map(|l| l as usize), p.fail_fast, cancel).await
}

async fn across(ctx: &Arc<BuildCtx>, a: &AcrossStep, scope: Arc<Scope>, cancel: Cancel) -> Outcome {
    let mut combos: Vec<Vec<(String, Json)>> = vec![Vec::new()];
    for var in &a.vars {
        let values = match resolve(&var.values, &scope) {
            Ok(Json::Array(values)) => values,
            Ok(other) => {
                return report(
                    ctx,
                    "across",
                    Err(format!(
                        "across var {}: values must be a list, got {other}",
                        var.var
                    )),
                );
            }
            Err(e) => return report(ctx, "across", Err(e)),
        };
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |v| {
                    let mut c = combo.clone();
                    c.push((var.var.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let limit = a.vars.first().and_then(|v| match v.max_in_flight {
        MaxInFlight::All => None,
        MaxInFlight::Limit(n) => Some(n as usize),
    });
    let jobs = combos
        .into_iter()
        .map(|combo| {
            let child = scope.child();
            for (k, v) in combo {
                child.set(&k, v);
            }
            (&*a.step, child)
        })
        .collect();
    run_group(ctx, jobs, limit, a.fail_fast, cancel).await
}

fn resolve_opt(
    obj: Option<&Map<String, Json>>,
    scope: &Scope,
    what: &str,
) -> Result<Map<String, Json>, String> {
    obj.map(|o| resolve_object(o, scope).map_err(|e| format!("{what}: {e}")))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn metadata_json(metadata: &[resource_protocol::MetadataField]) -> Json {
    json!(metadata)
}

/// Runs `in` for a version into a fresh artifact directory.
async fn fetch(
    ctx: &Arc<BuildCtx>,
    step: &str,
    resource: &str,
    version: &resource_protocol::Version,
    params: &Map<String, Json>,
    cancel: Cancel,
) -> Result<(PathBuf, resource_protocol::Response), String> {
    let engine = &ctx.engine;
    let r = engine
        .pipeline
        .resource(resource)
        .ok_or_else(|| format!("unknown resource {resource}"))?;
    let source = engine.resource_source(resource).unwrap_or_default();
    let source =
        resolve_object(&source, &engine.var_scope()).map_err(|e| format!("source: {e}"))?;
    let sink = ctx.sink(step);
    let imp: TypeImpl = engine
        .type_impl(&r.type_, sink.clone(), cancel.clone())
        .await?;
    let dir = ctx.fresh_dir("get", step)?;
    let out = engine
        .invoke(
            &imp,
            Invocation {
                op: "in",
                request: json!({"source": source, "version": version, "params": params}),
                work_host: &dir,
                work_dest: "/tmp/build/get",
                mounts: Vec::new(),
                env: ctx.build_env(),
            },
            sink,
            cancel,
        )
        .await?;
    let response: resource_protocol::Response =
        serde_json::from_slice(&out).map_err(|e| format!("in answered badly: {e}"))?;
    Ok((dir, response))
}

async fn get_step(
    ctx: &Arc<BuildCtx>,
    get: &GetStep,
    scope: &Scope,
    cancel: Cancel,
) -> Result<Outcome, String> {
    let resource = get.resource_name();
    note_ignored_tags(ctx, &get.name, &get.tags, Some(resource));
    let engine = &ctx.engine;
    if let Some(dir) = engine.config.overrides.get(resource) {
        ctx.log(
            &get.name,
            "event",
            &format!("using local directory {}", dir.display()),
        );
        ctx.set_artifact(&get.name, dir.clone());
        return Ok(Outcome::Succeeded);
    }
    let (version_id, version) = match ctx.inputs.get(&get.name) {
        Some((_, id, v)) => (Some(*id), v.clone()),
        None => {
            let versions = engine
                .state()
                .versions(resource)
                .map_err(|e| e.to_string())?;
            let found = match &get.version {
                Some(VersionSpec::Pinned(subset)) => versions
                    .iter()
                    .rev()
                    .find(|v| subset.iter().all(|(k, val)| v.version.get(k) == Some(val))),
                _ => versions.last(),
            };
            match found {
                Some(v) => (Some(v.id), v.version.clone()),
                None => return Err(format!("no version of resource {resource} to fetch")),
            }
        }
    };
    let params = resolve_opt(get.params.as_ref(), scope, "params")?;
    let (dir, response) =
        match fetch(ctx, &get.name, resource, &version, &params, cancel.clone()).await {
            Err(_) if cancel.is_cancelled() => return Ok(Outcome::Aborted),
            other => other?,
        };
    ctx.set_artifact(&get.name, dir);
    let meta: Map<String, Json> = response
        .metadata
        .iter()
        .map(|m| (m.name.clone(), Json::String(m.value.clone())))
        .collect();
    scope.set(&get.name, Json::Object(meta));
    if let Some(id) = version_id {
        let state = engine.state();
        let _ = state.set_version_metadata(id, &metadata_json(&response.metadata));
        if !ctx.inputs.contains_key(&get.name) {
            let _ = state.add_input(
                ctx.build.id,
                &BuildVersion {
                    name: get.name.clone(),
                    resource: resource.to_owned(),
                    version_id: id,
                },
            );
        }
    }
    ctx.log(
        &get.name,
        "event",
        &format!("fetched {}", json!(response.version)),
    );
    Ok(Outcome::Succeeded)
}

async fn put_step(
    ctx: &Arc<BuildCtx>,
    put: &PutStep,
    scope: &Scope,
    cancel: Cancel,
) -> Result<Outcome, String> {
    let engine = &ctx.engine;
    let resource = put.resource_name();
    note_ignored_tags(ctx, &put.name, &put.tags, Some(resource));
    let r = engine
        .pipeline
        .resource(resource)
        .ok_or_else(|| format!("unknown resource {resource}"))?;
    let params = resolve_opt(put.params.as_ref(), scope, "params")?;
    let artifacts = ctx.artifacts.lock().map(|a| a.clone()).unwrap_or_default();
    let names: Vec<String> = match &put.inputs {
        PutInputs::All => artifacts.keys().cloned().collect(),
        PutInputs::Only(list) => {
            let missing: Vec<&str> = list
                .iter()
                .filter(|n| !artifacts.contains_key(*n))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(format!("missing inputs: {}", missing.join(", ")));
            }
            list.clone()
        }
        PutInputs::Detect => {
            let available: Vec<String> = artifacts.keys().cloned().collect();
            crate::model::detect_put_inputs(&params, &available)
        }
    };
    let mounts = names
        .iter()
        .map(|n| Mount {
            host: artifacts[n].clone(),
            dest: format!("/tmp/build/put/{n}"),
            readonly: true,
        })
        .collect();
    let source = engine.resource_source(resource).unwrap_or_default();
    let source =
        resolve_object(&source, &engine.var_scope()).map_err(|e| format!("source: {e}"))?;
    let sink = ctx.sink(&put.name);
    let imp = engine
        .type_impl(&r.type_, sink.clone(), cancel.clone())
        .await?;
    let dir = ctx.fresh_dir("put", &put.name)?;
    let result = engine
        .invoke(
            &imp,
            Invocation {
                op: "out",
                request: json!({"source": source, "params": params}),
                work_host: &dir,
                work_dest: "/tmp/build/put",
                mounts,
                env: ctx.build_env(),
            },
            sink,
            cancel.clone(),
        )
        .await;
    let out = match result {
        Err(_) if cancel.is_cancelled() => return Ok(Outcome::Aborted),
        other => other?,
    };
    let response: resource_protocol::Response =
        serde_json::from_slice(&out).map_err(|e| format!("out answered badly: {e}"))?;
    let id = {
        let mut state = engine.state();
        let id = state
            .save_put_version(
                resource,
                &response.version,
                &metadata_json(&response.metadata),
            )
            .map_err(|e| e.to_string())?;
        state
            .add_output(
                ctx.build.id,
                &BuildVersion {
                    name: put.name.clone(),
                    resource: resource.to_owned(),
                    version_id: id,
                },
            )
            .map_err(|e| e.to_string())?;
        id
    };
    let _ = id;
    ctx.log(
        &put.name,
        "event",
        &format!("pushed {}", json!(response.version)),
    );
    if put.no_get {
        return Ok(Outcome::Succeeded);
    }
    let get_params = resolve_opt(put.get_params.as_ref(), scope, "get_params")?;
    let (dir, _) = match fetch(
        ctx,
        &put.name,
        resource,
        &response.version,
        &get_params,
        cancel.clone(),
    )
    .await
    {
        Err(_) if cancel.is_cancelled() => return Ok(Outcome::Aborted),
        other => other?,
    };
    ctx.set_artifact(&put.name, dir);
    Ok(Outcome::Succeeded)
}

fn env_value(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn task_config(ctx: &BuildCtx, task: &TaskStep, scope: &Scope) -> Result<TaskConfig, String> {
    let config = match (&task.config, &task.file) {
        (Some(config), _) => config.clone(),
        (None, Some(file)) => {
            let (_, text) = ctx.artifact_file(file)?;
            let vars = resolve_opt(task.vars.as_ref(), scope, "vars")?;
            let vars = StaticVars::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.clone())));
            load_task_config(&text, file, &vars)
                .map_err(|e| format!("{file}: {e}"))?
                .0
        }
        (None, None) => return Err("task has neither config nor file".into()),
    };
    let json = config.to_json();
    if !json.to_string().contains("((") {
        return Ok(config);
    }
    let resolved = resolve(&json, scope)?;
    let text = serde_json::to_string(&resolved).map_err(|e| e.to_string())?;
    load_task_config(&text, &task.name, &StaticVars::default())
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}

async fn task_step(
    ctx: &Arc<BuildCtx>,
    task: &TaskStep,
    scope: &Scope,
    cancel: Cancel,
) -> Result<Outcome, String> {
    let engine = &ctx.engine;
    note_ignored_tags(ctx, &task.name, &task.tags, None);
    let config = task_config(ctx, task, scope)?;
    let run = config.run.clone().ok_or("task config has no run")?;
    // The image: an artifact, an image_resource, or none (the host).
    let sink = ctx.sink(&task.name);
    let image_dir: Option<PathBuf> = if let Some(image) = &task.image {
        let dir = ctx
            .artifact(image)
            .ok_or_else(|| format!("image artifact {image} not found"))?;
        Some(dir)
    } else if let Some(image) = &config.image_resource {
        let source =
            resolve_object(&image.source, scope).map_err(|e| format!("image_resource: {e}"))?;
        let params = image.params.clone();
        let fetched = engine
            .fetch_image(
                &image.type_,
                &source,
                params.as_ref(),
                image.version.as_ref(),
                None,
                sink.clone(),
                cancel.clone(),
            )
            .await;
        match fetched {
            Ok(dir) => Some(dir),
            Err(_) if cancel.is_cancelled() => return Ok(Outcome::Aborted),
            Err(e) => return Err(format!("image_resource: {e}")),
        }
    } else {
        ctx.log(&task.name, "event", "no image: running on the host");
        None
    };
    let rootfs = image_dir.as_ref().map(|d| {
        let r = d.join("rootfs");
        if r.is_dir() { r } else { d.clone() }
    });
    let meta = image_dir
        .as_deref()
        .map(ImageMetadata::read)
        .unwrap_or_default();
    let hex = format!(
        "{:08x}",
        (ctx.build.id as u64).wrapping_mul(0x9e37_79b9) ^ ctx.next_id()
    );
    let hex = &hex[hex.len() - 8..];
    let work_dest = format!("/tmp/build/{hex}");
    let work = ctx.fresh_dir("task", &task.name)?;
    // Inputs (copies).
    let mut missing = Vec::new();
    for input in &config.inputs {
        let artifact_name = task.input_mapping.get(&input.name).unwrap_or(&input.name);
        let path = input.path.clone().unwrap_or_else(|| input.name.clone());
        match ctx.artifact(artifact_name) {
            Some(dir) => {
                let dest = work.join(&path);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                copy_tree(&dir, &dest).map_err(|e| format!("input {}: {e}", input.name))?;
            }
            None if input.optional => {}
            None => missing.push(artifact_name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(format!("missing inputs: {}", missing.join(", ")));
    }
    for output in &config.outputs {
        let path = output.path.clone().unwrap_or_else(|| output.name.clone());
        std::fs::create_dir_all(work.join(&path)).map_err(|e| e.to_string())?;
    }
    let mut mounts = Vec::new();
    for cache in &config.caches {
        let key = {
            use sha2::Digest;
            hex::encode(
                &sha2::Sha256::digest(format!("{}\0{}\0{cache}", ctx.job.name, task.name))[..8],
            )
        };
        let dir_name = engine
            .state()
            .task_cache(&ctx.job.name, &task.name, cache, &key)
            .map_err(|e| e.to_string())?;
        let dir = engine.config.state_dir.join("caches").join(dir_name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        mounts.push(Mount {
            host: dir,
            dest: format!("{work_dest}/{}", cache.trim_matches('/')),
            readonly: false,
        });
    }
    let mut env = meta.env.clone();
    let mut params = config.params.clone().unwrap_or_default();
    for (k, v) in resolve_opt(task.params.as_ref(), scope, "params")? {
        params.insert(k, v);
    }
    for (k, v) in &params {
        env.retain(|(key, _)| key != k);
        env.push((k.clone(), env_value(v)));
    }
    let limits = task
        .container_limits
        .clone()
        .or(config.container_limits.clone())
        .unwrap_or_default();
    let spec = ProcessSpec {
        rootfs,
        path: run.path.clone(),
        args: run.args.clone(),
        env,
        work_host: work.clone(),
        work_dest,
        dir: run.dir.clone().unwrap_or_default(),
        mounts,
        user: run.user.clone().or(meta.user),
        privileged: task.privileged,
        limits: Limits {
            cpu_shares: limits.cpu,
            memory: limits.memory,
        },
        stdin: Vec::new(),
        capture_stdout: false,
        host_cwd: None,
    };
    let runner = if spec.rootfs.is_some() {
        engine.runner.clone()
    } else {
        engine.host.clone()
    };
    let result = runner.run(&spec, sink, cancel).await;
    // Outputs are registered even when the task fails.
    for output in &config.outputs {
        let path = output.path.clone().unwrap_or_else(|| output.name.clone());
        let name = task
            .output_mapping
            .get(&output.name)
            .unwrap_or(&output.name);
        ctx.set_artifact(name, work.join(path));
    }
    match result {
        Ok(done) if done.exit_code == 0 => Ok(Outcome::Succeeded),
        Ok(done) => {
            ctx.log(
                &task.name,
                "event",
                &format!("failed: exit status {}", done.exit_code),
            );
            Ok(Outcome::Failed)
        }
        Err(RunError::Cancelled) => Ok(Outcome::Aborted),
        Err(e) => Err(e.to_string()),
    }
}

fn load_var(ctx: &BuildCtx, lv: &LoadVarStep, scope: &Scope) -> Result<Outcome, String> {
    let (file, text) = ctx.artifact_file(&lv.file)?;
    let format = lv.format.unwrap_or_else(|| {
        match Path::new(&lv.file).extension().and_then(|e| e.to_str()) {
            Some("json") => LoadVarFormat::Json,
            Some("yml" | "yaml") => LoadVarFormat::Yaml,
            _ => LoadVarFormat::Trim,
        }
    });
    let value = match format {
        LoadVarFormat::Raw => Json::String(text),
        LoadVarFormat::Trim => Json::String(text.trim().to_owned()),
        LoadVarFormat::Json => {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", lv.file))?
        }
        LoadVarFormat::Yaml => {
            let name: Arc<str> = Arc::from(file.display().to_string());
            crate::yaml::parse(&text, &name)
                .map_err(|e| e.to_string())?
                .to_json()
        }
    };
    if !lv.reveal {
        fn hide(value: &Json, ctx: &BuildCtx) {
            match value {
                Json::String(s) => ctx.engine.redactor.add(s),
                Json::Array(items) => items.iter().for_each(|v| hide(v, ctx)),
                Json::Object(map) => map.values().for_each(|v| hide(v, ctx)),
                _ => {}
            }
        }
        hide(&value, ctx);
    }
    scope.set(&lv.name, value);
    Ok(Outcome::Succeeded)
}

fn set_pipeline(ctx: &BuildCtx, sp: &SetPipelineStep) -> Result<Outcome, String> {
    if sp.name != "self" {
        return Err(format!(
            "set_pipeline {}: only `self` is supported when running locally",
            sp.name
        ));
    }
    let (file, text) = ctx.artifact_file(&sp.file)?;
    let loaded = crate::load::load_str(&text, &file.display().to_string(), &StaticVars::default());
    if loaded.has_errors() {
        return Err(crate::diag::Diagnostics(loaded.diagnostics).to_string());
    }
    ctx.log(
        &sp.name,
        "event",
        "the pipeline config is valid; the next `tributary run` uses it",
    );
    Ok(Outcome::Succeeded)
}
