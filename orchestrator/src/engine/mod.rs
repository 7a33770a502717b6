//! Running a pipeline: checking resources, creating builds when inputs trigger, and running
//! their steps with Concourse's semantics.
//!
//! The [`Engine`] owns the run: the pipeline model, the state database, the runners and the
//! event log. The dispatcher ([`Engine::run`]) checks resources, asks `schedule` for each job's
//! next inputs, starts builds within the jobs' concurrency limits and waits for them; builds
//! run their steps in `steps`. Resources are only ever driven as child processes (`resource`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::model::{CheckEvery, Pipeline, VersionSpec};
use crate::runner::rootfs::RootfsCache;
use crate::runner::{Cancel, LogSink, Runner, Runtime};
use crate::schedule::{self, Concurrency, InputSpec, PassedBuild, Snapshot, VersionChoice};
use crate::state::{Build, BuildStatus, BuildVersion, State, VersionId};

pub mod commands;
pub mod interp;
pub mod output;
pub mod resource;
mod steps;
#[cfg(test)]
mod tests;

pub use output::{Output, OutputMode};
pub use steps::Outcome;

use interp::Redactor;
use resource::{Invocation, merge_defaults};

/// A boxed future (recursive steps, runtime-chosen runners).
pub type BoxFuture<'a, T> = crate::runner::BoxFuture<'a, T>;

/// Environment variable naming the directory with the resource binaries.
pub const RESOURCE_DIR_ENV: &str = "TRIBUTARY_RESOURCE_DIR";

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The container runtime for tasks with images and custom resource types.
    pub runtime: Runtime,
    /// Where state lives: `state.db`, build dirs, caches, images (`.tributary` by default).
    pub state_dir: PathBuf,
    /// Where `git-resource` etc. are.
    pub resource_dir: PathBuf,
    /// Where our base types' images are (`--images`; `None`: the default lookup in `resource`).
    pub image_dir: Option<PathBuf>,
    /// Resources replaced by local directories.
    pub overrides: BTreeMap<String, PathBuf>,
    /// How events are shown.
    pub output: OutputMode,
    /// The pipeline's name (`BUILD_PIPELINE_NAME`).
    pub pipeline_name: String,
    /// SIGTERM-to-SIGKILL grace when cancelling.
    pub grace: Duration,
    /// The state database (default: `state_dir/state.db`).
    pub db: Option<PathBuf>,
    /// The pipeline file's directory: resource binaries on the host run there.
    pub pipeline_dir: PathBuf,
}

impl EngineConfig {
    /// Defaults for a pipeline file: state in `.tributary` beside it, resources beside us.
    pub fn for_pipeline(pipeline: &Path) -> Self {
        let dir = pipeline
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Children run in other directories: every path we hand them is absolute.
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let name = pipeline
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into());
        EngineConfig {
            runtime: Runtime::Host,
            state_dir: dir.join(".tributary"),
            pipeline_dir: dir.clone(),
            resource_dir: default_resource_dir(),
            image_dir: None,
            overrides: BTreeMap::new(),
            output: OutputMode::Human,
            pipeline_name: name,
            grace: crate::runner::DEFAULT_GRACE,
            db: None,
        }
    }
}

/// `TRIBUTARY_RESOURCE_DIR`, else the directory of the running executable.
pub fn default_resource_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(RESOURCE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state database failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A directory could not be made.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
}

/// The running pipeline.
pub struct Engine {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// How it runs.
    pub config: EngineConfig,
    /// The state database.
    pub state: Mutex<State>,
    runner: Arc<dyn Runner>,
    host: Arc<dyn Runner>,
    /// Values hidden in logs.
    pub redactor: Redactor,
    /// The live event log.
    pub output: Output,
    images: RootfsCache,
    /// Cancels every build (a second Ctrl-C or SIGTERM).
    pub cancel: Cancel,
    /// Cancelled by the first signal: no new builds; builds of `interruptible` jobs abort.
    /// A child of `cancel`.
    stopping: Cancel,
    /// How many shutdown signals arrived.
    shutdowns: std::sync::atomic::AtomicUsize,
    /// How many checks failed (a run that built nothing because of them is not a success).
    pub check_failures: std::sync::atomic::AtomicUsize,
    /// The state directory's lock, held while the engine lives.
    lock: Mutex<Option<std::fs::File>>,
    /// Custom types' fetched images, with when they were fetched.
    types: Mutex<BTreeMap<String, (Instant, resource::TypeImpl)>>,
    /// Base types as resolved for this run (their image, or the binary beside us).
    pub base_types: Mutex<BTreeMap<String, resource::TypeImpl>>,
    /// The pipeline's `var_sources`, resolving `((source:path))` at build time.
    var_sources: Arc<crate::vars::VarSources>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What `run` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Every build run, in start order: (job, number, status).
    pub builds: Vec<(String, i64, BuildStatus)>,
}

impl RunSummary {
    /// The worst status (succeeded when nothing ran).
    pub fn worst(&self) -> BuildStatus {
        self.builds
            .iter()
            .map(|b| b.2)
            .max()
            .unwrap_or(BuildStatus::Succeeded)
    }

    /// The documented exit code: 0 ok, 1 a build failed, 2 a build errored or aborted.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            BuildStatus::Failed => 1,
            BuildStatus::Errored | BuildStatus::Aborted => 2,
            _ => 0,
        }
    }
}

/// Options of `run`.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Keep running, checking resources per `check_every`.
    pub watch: bool,
    /// Only schedule this job.
    pub job: Option<String>,
}

impl Engine {
    /// Opens the state and prepares runners for `pipeline`.
    pub fn new(
        pipeline: Pipeline,
        redact: &BTreeSet<String>,
        config: EngineConfig,
    ) -> Result<Arc<Engine>, EngineError> {
        let mut config = config;
        if let Ok(dir) = std::path::absolute(&config.state_dir) {
            config.state_dir = dir;
        }
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| EngineError::Io(config.state_dir.display().to_string(), e))?;
        let db = config
            .db
            .clone()
            .unwrap_or_else(|| config.state_dir.join("state.db"));
        // One process per state directory: recovery and cleanup below assume nothing runs.
        let lock = std::fs::File::create(config.state_dir.join("lock"))
            .map_err(|e| EngineError::Io(config.state_dir.display().to_string(), e))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(EngineError::NotFound(format!(
                "{}: another tributary is running with this state",
                config.state_dir.display()
            )));
        }
        let mut state = State::open(&db)?;
        // No build runs before we start: directories left by a crash are garbage.
        let _ = std::fs::remove_dir_all(config.state_dir.join("builds"));
        let _ = std::fs::remove_dir_all(config.state_dir.join("tmp"));
        for resource in &pipeline.resources {
            let config = serde_json::json!({
                "type": resource.type_,
                "source": pipeline.source_with_defaults(resource),
            });
            let hash = {
                use sha2::Digest;
                hex::encode(&sha2::Sha256::digest(config.to_string().as_bytes())[..8])
            };
            state.set_resource_config(&resource.name, &hash)?;
        }
        let engine = Self::with_state(pipeline, redact, config, state);
        if let Ok(mut held) = engine.lock.lock() {
            *held = Some(lock);
        }
        Ok(engine)
    }

    /// An engine over an already opened state (in memory for `execute`).
    pub fn with_state(
        pipeline: Pipeline,
        redact: &BTreeSet<String>,
        config: EngineConfig,
        state: State,
    ) -> Arc<Engine> {
        let runner = with_grace(config.runtime, &config.state_dir, config.grace);
        let host = with_grace(Runtime::Host, &config.state_dir, config.grace);
        let var_sources = crate::vars::VarSources::new(
            pipeline
                .var_sources
                .iter()
                .map(|v| (v.name.clone(), v.type_.clone(), v.config.clone())),
        );
        // Values from var sources are hidden like static vars.
        let mut redact = redact.clone();
        redact.extend(var_sources.redaction_set());
        let cancel = Cancel::new();
        Arc::new(Engine {
            images: RootfsCache::new(&config.state_dir.join("images")),
            output: Output::new(config.output),
            redactor: Redactor::new(&redact),
            var_sources: Arc::new(var_sources),
            state: Mutex::new(state),
            runner,
            host,
            pipeline,
            config,
            stopping: cancel.child(),
            cancel,
            shutdowns: std::sync::atomic::AtomicUsize::new(0),
            types: Mutex::new(BTreeMap::new()),
            base_types: Mutex::new(BTreeMap::new()),
            lock: Mutex::new(None),
            check_failures: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the connection usable: SQLite rolled back.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh root scope for run-time vars: no local vars yet, the pipeline's var sources.
    pub fn var_scope(&self) -> interp::Scope {
        interp::Scope::with_sources(self.var_sources.clone())
    }

    /// Logs an engine-level event (not part of a build).
    pub fn note(&self, text: &str) {
        let text = self.redactor.redact(text);
        self.output.event(output::now_ms(), "", "", "event", &text);
    }

    fn check_sink(self: &Arc<Self>, resource: &str) -> LogSink {
        let engine = self.clone();
        let label = format!("check {resource}");
        Arc::new(move |_stream, line: &str| {
            let text = engine.redactor.redact(line);
            engine
                .output
                .event(output::now_ms(), &label, "", "stderr", &text);
        })
    }

    /// The resource's source with its type's `defaults` merged under it.
    pub fn resource_source(&self, name: &str) -> Option<serde_json::Map<String, Json>> {
        let resource = self.pipeline.resource(name)?;
        let defaults = self
            .pipeline
            .resource_types
            .iter()
            .find(|t| t.name == resource.type_)
            .and_then(|t| t.defaults.as_ref());
        Some(merge_defaults(&resource.source, defaults))
    }

    /// Checks one resource; returns how many versions it now has.
    pub async fn check_resource(self: &Arc<Self>, name: &str) -> Result<usize, String> {
        self.check_resource_from(name, None).await.map(|(n, _)| n)
    }

    /// Checks one resource from `from` (default: its newest version); returns how many
    /// versions it now has and what the check answered.
    pub async fn check_resource_from(
        self: &Arc<Self>,
        name: &str,
        from: Option<resource_protocol::Version>,
    ) -> Result<(usize, Vec<resource_protocol::Version>), String> {
        let resource = self
            .pipeline
            .resource(name)
            .ok_or_else(|| format!("unknown resource {name}"))?;
        if let Some(dir) = self.config.overrides.get(name) {
            let version =
                resource_protocol::wire::version([("override", dir.display().to_string())]);
            self.state()
                .save_checked_versions(name, std::slice::from_ref(&version))
                .map_err(|e| e.to_string())?;
            return Ok((1, vec![version]));
        }
        let source = self.resource_source(name).unwrap_or_default();
        let source = interp::resolve_object(&source, &self.var_scope())
            .map_err(|e| format!("resource {name}: source: {e}"))?;
        let log = self.check_sink(name);
        let imp = self
            .type_impl(&resource.type_, log.clone(), self.cancel.child())
            .await?;
        let newest = match from {
            Some(v) => Some(v),
            None => self
                .state()
                .newest_version(name)
                .map_err(|e| e.to_string())?
                .map(|v| v.version),
        };
        let mut request = serde_json::json!({"source": source});
        if let Some(v) = newest {
            request["version"] = serde_json::json!(v);
        }
        let scratch = tempfile::Builder::new()
            .prefix("check")
            .tempdir_in({
                let dir = self.config.state_dir.join("tmp");
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                dir
            })
            .map_err(|e| e.to_string())?;
        let call = self.invoke(
            &imp,
            Invocation {
                op: "check",
                request,
                work_host: scratch.path(),
                work_dest: "/tmp/build/check",
                mounts: Vec::new(),
                env: Vec::new(),
            },
            log,
            self.cancel.child(),
        );
        let out = match resource.check_timeout {
            Some(limit) => tokio::time::timeout(limit, call)
                .await
                .map_err(|_| format!("check timed out after {limit:?}"))??,
            None => call.await?,
        };
        let versions: Vec<resource_protocol::Version> = serde_json::from_slice(&out)
            .map_err(|e| format!("check of {name} answered badly: {e}"))?;
        let mut state = self.state();
        state
            .save_checked_versions(name, &versions)
            .map_err(|e| e.to_string())?;
        let count = state.versions(name).map_err(|e| e.to_string())?.len();
        Ok((count, versions))
    }

    /// Checks every resource once, reporting failures and carrying on.
    pub async fn check_all(self: &Arc<Self>, only: Option<&BTreeSet<String>>) {
        // A few at a time: checks are mostly waiting on the network.
        let limit = Arc::new(tokio::sync::Semaphore::new(4));
        let checks = self
            .pipeline
            .resources
            .iter()
            .filter(|r| only.is_none_or(|o| o.contains(&r.name)))
            .map(|resource| {
                let limit = limit.clone();
                async move {
                    let _permit = limit.acquire().await;
                    match self.check_resource(&resource.name).await {
                        Ok(n) => self.note(&format!("checked {}: {n} versions", resource.name)),
                        Err(e) => {
                            self.check_failures
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            self.note(&format!("check of {} failed: {e}", resource.name));
                        }
                    }
                }
            });
        futures::future::join_all(checks).await;
    }

    fn matching_version(
        &self,
        resource: &str,
        subset: &BTreeMap<String, String>,
    ) -> Option<VersionId> {
        let versions = self.state().versions(resource).ok()?;
        versions
            .iter()
            .rev()
            .find(|v| subset.iter().all(|(k, val)| v.version.get(k) == Some(val)))
            .map(|v| v.id)
    }

    /// The scheduler's view of a job's inputs (its get steps).
    pub fn job_inputs(&self, job: &str) -> Result<Vec<InputSpec>, EngineError> {
        let job = self
            .pipeline
            .job(job)
            .ok_or_else(|| EngineError::NotFound(format!("unknown job {job}")))?;
        let mut inputs = Vec::new();
        let mut seen = BTreeSet::new();
        for (_, get) in job.gets() {
            if !seen.insert(get.name.clone()) {
                continue;
            }
            let resource = get.resource_name().to_owned();
            let db_pin = self.state().pinned(&resource)?;
            let config_pin = self
                .pipeline
                .resource(&resource)
                .and_then(|r| r.version.clone());
            let version = match (&get.version, config_pin, db_pin) {
                (Some(VersionSpec::Pinned(subset)), _, _) => {
                    VersionChoice::Pinned(self.matching_version(&resource, subset))
                }
                (_, Some(subset), _) => {
                    VersionChoice::Pinned(self.matching_version(&resource, &subset))
                }
                (_, None, Some(id)) => VersionChoice::Pinned(Some(id)),
                (Some(VersionSpec::Every), _, _) => VersionChoice::Every,
                _ => VersionChoice::Latest,
            };
            inputs.push(InputSpec {
                name: get.name.clone(),
                resource,
                passed: get.passed.clone(),
                trigger: get.trigger,
                version,
            });
        }
        Ok(inputs)
    }

    fn snapshot(&self, job: &str, inputs: &[InputSpec]) -> Result<Snapshot, EngineError> {
        let state = self.state();
        let mut snapshot = Snapshot {
            used: state.job_input_history(job)?,
            ..Snapshot::default()
        };
        for input in inputs {
            if !snapshot.versions.contains_key(&input.resource) {
                let ids = state
                    .versions(&input.resource)?
                    .iter()
                    .map(|v| v.id)
                    .collect();
                snapshot.versions.insert(input.resource.clone(), ids);
            }
            for upstream in &input.passed {
                if !snapshot.passed_builds.contains_key(upstream) {
                    let builds = state
                        .successful_builds(upstream)?
                        .into_iter()
                        .map(|(id, versions)| PassedBuild { id, versions })
                        .collect();
                    snapshot.passed_builds.insert(upstream.clone(), builds);
                }
            }
        }
        Ok(snapshot)
    }

    /// The versions the job's next build would get, per get name, from the state as it is
    /// (nothing is checked or created); an error when they do not resolve.
    pub fn next_inputs(&self, job: &str) -> Result<schedule::NextInputs, String> {
        let inputs = self.job_inputs(job).map_err(|e| e.to_string())?;
        let snapshot = self.snapshot(job, &inputs).map_err(|e| e.to_string())?;
        schedule::resolve_next_inputs(&inputs, &snapshot).map_err(|e| format!("job {job}: {e}"))
    }

    /// Creates the job's next build when its inputs resolve (and, unless `manual`, trigger).
    pub fn plan_build(&self, job: &str, manual: bool) -> Result<Option<Build>, String> {
        let inputs = self.job_inputs(job).map_err(|e| e.to_string())?;
        let snapshot = self.snapshot(job, &inputs).map_err(|e| e.to_string())?;
        let next = match schedule::resolve_next_inputs(&inputs, &snapshot) {
            Ok(next) => next,
            Err(e) if manual => return Err(format!("job {job}: {e}")),
            Err(_) => return Ok(None),
        };
        if !manual && !schedule::should_trigger(&inputs, &next, &snapshot) {
            return Ok(None);
        }
        let versions: Vec<BuildVersion> = inputs
            .iter()
            .filter_map(|i| {
                next.get(&i.name).map(|v| BuildVersion {
                    name: i.name.clone(),
                    resource: i.resource.clone(),
                    version_id: *v,
                })
            })
            .collect();
        let build = self
            .state()
            .create_build(job, &versions)
            .map_err(|e| e.to_string())?;
        Ok(Some(build))
    }

    fn concurrency(&self) -> BTreeMap<String, Concurrency> {
        self.pipeline
            .jobs
            .iter()
            .map(|j| {
                (
                    j.name.clone(),
                    Concurrency {
                        serial: j.serial,
                        serial_groups: j.serial_groups.clone(),
                        max_in_flight: j.max_in_flight,
                    },
                )
            })
            .collect()
    }

    /// What a SIGINT or SIGTERM to `run` does, as Concourse lands a worker: the first stops
    /// scheduling new builds, aborts the running builds of `interruptible: true` jobs at once
    /// and lets the other running builds finish; the second aborts every build.
    pub fn shutdown(&self) {
        use std::sync::atomic::Ordering;
        if self.shutdowns.fetch_add(1, Ordering::SeqCst) == 0 {
            self.note(
                "stopping: no new builds; interruptible jobs' builds abort, the others finish \
                 (signal again to abort them)",
            );
            self.stopping.cancel();
        } else {
            self.note("aborting every running build");
            self.cancel.cancel();
        }
    }

    /// Whether the run is stopping (a first signal) or aborting (a second).
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// The cancellation token of a build of `job`: builds of interruptible jobs abort on the
    /// first shutdown signal, the others only on the second.
    pub(crate) fn build_cancel(&self, job: &crate::model::Job) -> Cancel {
        if job.interruptible {
            self.stopping.child()
        } else {
            self.cancel.child()
        }
    }

    /// Calls [`Engine::shutdown`] on every SIGINT and SIGTERM while the engine lives.
    fn handle_signals(self: &Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                match engine.upgrade() {
                    Some(engine) => engine.shutdown(),
                    None => return,
                }
            }
        });
    }

    /// Checks resources, then starts builds as inputs trigger until nothing more does (or
    /// forever with `watch`). Signals stop it as [`Engine::shutdown`] says.
    pub async fn run(self: &Arc<Self>, options: &RunOptions) -> RunSummary {
        self.handle_signals();
        let jobs: Vec<String> = self
            .pipeline
            .jobs
            .iter()
            .filter(|j| options.job.as_ref().is_none_or(|only| *only == j.name))
            .map(|j| j.name.clone())
            .collect();
        let concurrency = self.concurrency();
        let mut summary = RunSummary::default();
        let mut running: BTreeMap<String, u32> = BTreeMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut last_check: BTreeMap<String, Instant> = BTreeMap::new();
        self.check_all(None).await;
        let now = Instant::now();
        for r in &self.pipeline.resources {
            last_check.insert(r.name.clone(), now);
        }
        // Only jobs whose inputs may have changed are planned again (a 50-job pipeline would
        // otherwise re-resolve every job after every build).
        let dependents = self.dependents();
        let users = self.resource_users();
        let mut dirty: BTreeSet<String> = jobs.iter().cloned().collect();
        loop {
            let mut started = false;
            if !self.is_stopping() {
                for job in &jobs {
                    if !dirty.contains(job) || !schedule::may_start(job, &concurrency, &running) {
                        continue;
                    }
                    match self.plan_build(job, false) {
                        Ok(None) => {
                            dirty.remove(job);
                        }
                        Ok(Some(build)) => {
                            *running.entry(job.clone()).or_default() += 1;
                            started = true;
                            let engine = self.clone();
                            tasks.spawn(async move {
                                let status = engine.run_build(&build).await;
                                (build, status)
                            });
                        }
                        Err(e) => {
                            dirty.remove(job);
                            self.note(&format!("job {job}: {e}"));
                        }
                    }
                }
            }
            if started {
                continue;
            }
            if tasks.is_empty() {
                if !options.watch || self.is_stopping() {
                    break;
                }
                let mut cancelled = self.stopping.clone();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancelled.cancelled() => {}
                }
            } else if let Some(Ok((build, status))) = tasks.join_next().await {
                if let Some(n) = running.get_mut(&build.job) {
                    *n = n.saturating_sub(1);
                }
                dirty.insert(build.job.clone());
                dirty.extend(dependents.get(&build.job).into_iter().flatten().cloned());
                summary.builds.push((build.job.clone(), build.name, status));
            }
            if options.watch && !self.is_stopping() {
                let due: BTreeSet<String> = self
                    .pipeline
                    .resources
                    .iter()
                    .filter(|r| {
                        let every = match r.check_every {
                            Some(CheckEvery::Never) => return false,
                            Some(CheckEvery::Every(d)) => d,
                            None => Duration::from_secs(60),
                        };
                        last_check.get(&r.name).is_none_or(|t| t.elapsed() >= every)
                    })
                    .map(|r| r.name.clone())
                    .collect();
                if !due.is_empty() {
                    self.check_all(Some(&due)).await;
                    for name in due {
                        dirty.extend(users.get(&name).into_iter().flatten().cloned());
                        last_check.insert(name, Instant::now());
                    }
                }
            }
        }
        summary.builds.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        summary
    }

    /// Per job, the jobs whose inputs its builds can change: those with it in `passed:` and
    /// those getting a resource it puts to.
    fn dependents(&self) -> BTreeMap<String, BTreeSet<String>> {
        let users = self.resource_users();
        self.pipeline
            .jobs
            .iter()
            .map(|job| {
                let mut out = BTreeSet::new();
                for other in &self.pipeline.jobs {
                    if other
                        .gets()
                        .iter()
                        .any(|(_, g)| g.passed.contains(&job.name))
                    {
                        out.insert(other.name.clone());
                    }
                }
                for (_, put) in job.puts() {
                    out.extend(
                        users
                            .get(put.resource_name())
                            .into_iter()
                            .flatten()
                            .cloned(),
                    );
                }
                (job.name.clone(), out)
            })
            .collect()
    }

    /// Per resource, the jobs that get it.
    fn resource_users(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for job in &self.pipeline.jobs {
            for (_, get) in job.gets() {
                users
                    .entry(get.resource_name().to_owned())
                    .or_default()
                    .insert(job.name.clone());
            }
        }
        users
    }

    /// One manual build of `job`: checks its inputs without `passed:`, then runs it. Signals
    /// work as in [`Engine::run`].
    pub async fn trigger(self: &Arc<Self>, job: &str) -> Result<(Build, BuildStatus), String> {
        self.handle_signals();
        let inputs = self.job_inputs(job).map_err(|e| e.to_string())?;
        let to_check: BTreeSet<String> = inputs
            .iter()
            .filter(|i| i.passed.is_empty())
            .map(|i| i.resource.clone())
            .collect();
        self.check_all(Some(&to_check)).await;
        if self.is_stopping() {
            return Err(format!("job {job}: stopped before the build started"));
        }
        let build = self
            .plan_build(job, true)?
            .ok_or_else(|| format!("job {job}: nothing to build"))?;
        let status = self.run_build(&build).await;
        Ok((build, status))
    }
}

fn with_grace(runtime: Runtime, state_dir: &Path, grace: Duration) -> Arc<dyn Runner> {
    use crate::runner::{bwrap::BwrapRunner, host::HostRunner, runc::RuncRunner};
    match runtime {
        Runtime::Host => Arc::new(HostRunner { grace }),
        Runtime::Bwrap => {
            let mut r = BwrapRunner::new(state_dir);
            r.grace = grace;
            Arc::new(r)
        }
        Runtime::Runc => {
            let mut r = RuncRunner::new(state_dir);
            r.grace = grace;
            Arc::new(r)
        }
    }
}
