//! The commands that run or read a pipeline's state: `run`, `trigger`, `execute`, `check`,
//! `builds`, `logs`, `versions`. `cli` parses the command line and calls these; each returns
//! the exit code (0 ok, 1 a build failed, 2 a build errored or aborted, 3 bad input).
//!
//! Answers (version lists, build tables, logs) go to stdout; the live event log to stderr
//! (or JSON lines on stdout with `--json`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::cli::VarFlags;
use crate::load::{self, Loaded};
use crate::model::{
    GetStep, InParallelStep, Job, JobHooks, Pipeline, Step, StepKind, TaskConfig, TaskStep,
};
use crate::runner::Runtime;
use crate::state::{BuildStatus, BuildVersion, State};
use crate::vars::{StaticVars, VarOptions};

use super::{Engine, EngineConfig, OutputMode, RunOptions};

const EXIT_BAD_INPUT: u8 = 3;

/// Flags shared by the commands that run things.
#[derive(Debug, Args, Clone, Default)]
pub struct EngineFlags {
    /// The state database (default: `.tributary/state.db` beside the pipeline).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Use a local directory instead of fetching a resource (repeatable).
    #[arg(long = "override", value_name = "RESOURCE=DIR")]
    pub overrides: Vec<String>,
    /// Container runtime (default: the best available).
    #[arg(long, value_name = "runc|bwrap|host")]
    pub runtime: Option<String>,
    /// Machine-readable event log (JSON lines on stdout).
    #[arg(long)]
    pub json: bool,
    /// Where the base types' OCI images are (`images build --out DIR`).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
}

/// `tributary run`. The first SIGINT/SIGTERM stops scheduling, aborts the builds of
/// `interruptible: true` jobs and lets the others finish; a second aborts them all.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Only schedule this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Stop when nothing more triggers (the default).
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Keep running, checking resources per `check_every`.
    #[arg(long)]
    pub watch: bool,
    /// Static vars.
    #[command(flatten)]
    pub vars: VarFlags,
    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineFlags,
}

/// `tributary trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The job.
    pub job: String,
    /// Static vars.
    #[command(flatten)]
    pub vars: VarFlags,
    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineFlags,
}

/// `tributary execute`.
#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// The task config file.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// An input directory `name=dir` (repeatable; default: `.` for a single input).
    #[arg(short = 'i', long = "input", value_name = "NAME=DIR")]
    pub inputs: Vec<String>,
    /// Where to copy an output `name=dir` (repeatable).
    #[arg(short = 'o', long = "output", value_name = "NAME=DIR")]
    pub outputs: Vec<String>,
    /// A rootfs directory to run in (instead of the config's image_resource); with `-j`, the
    /// name of one of the job's inputs may be given instead, fetched and used as the rootfs.
    #[arg(long, value_name = "DIR|INPUT")]
    pub image: Option<PathBuf>,
    /// Fetch the task's inputs not given with `-i` like the get steps of the same name in
    /// `JOB` of the pipeline file `PIPELINE`, with the versions its next build would use
    /// (fly's `--inputs-from`).
    #[arg(short = 'j', long = "inputs-from", value_name = "PIPELINE/JOB")]
    pub inputs_from: Option<String>,
    /// Run privileged.
    #[arg(long)]
    pub privileged: bool,
    /// Static vars.
    #[command(flatten)]
    pub vars: VarFlags,
    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineFlags,
}

/// `tributary check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The resource.
    pub resource: String,
    /// Check from this version (`k=v`, repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub from: Vec<String>,
    /// Static vars.
    #[command(flatten)]
    pub vars: VarFlags,
    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineFlags,
}

/// `tributary builds`.
#[derive(Debug, Args)]
pub struct BuildsArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Only this job's builds.
    #[arg(long)]
    pub job: Option<String>,
    /// The state database.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

/// `tributary logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The job.
    pub job: String,
    /// The build number (default: the newest).
    pub build: Option<i64>,
    /// The state database.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

/// `tributary versions`.
#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The resource.
    pub resource: String,
    /// The state database.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

fn static_vars(flags: &VarFlags) -> Option<StaticVars> {
    let options = VarOptions {
        files: flags.files.clone(),
        vars: flags.vars.clone(),
        yaml_vars: flags.yaml_vars.clone(),
    };
    match StaticVars::load(&options) {
        Ok(vars) => Some(vars),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn load_pipeline(path: &Path, flags: &VarFlags) -> Option<Loaded> {
    let vars = static_vars(flags)?;
    let loaded = load::load_file(path, &vars);
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    if loaded.has_errors() {
        eprintln!("{}: invalid pipeline", path.display());
        return None;
    }
    Some(loaded)
}

fn pairs(items: &[String], what: &str) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{what} {item}: expected NAME=VALUE"))
        })
        .collect()
}

fn config_for(path: &Path, flags: &EngineFlags) -> Result<EngineConfig, String> {
    let mut config = EngineConfig::for_pipeline(path);
    config.db = flags.db.clone();
    config.overrides = pairs(&flags.overrides, "--override")?
        .into_iter()
        .map(|(k, v)| {
            let dir = PathBuf::from(v);
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            (k, dir)
        })
        .collect();
    config.runtime = match &flags.runtime {
        Some(name) => Runtime::parse(name)
            .ok_or_else(|| format!("--runtime {name}: expected runc, bwrap or host"))?,
        None => Runtime::detect(),
    };
    if flags.json {
        config.output = OutputMode::Json;
    }
    config.image_dir = flags.images.clone();
    Ok(config)
}

fn engine_for(path: &Path, loaded: Loaded, flags: &EngineFlags) -> Result<Arc<Engine>, String> {
    let config = config_for(path, flags)?;
    for resource in config.overrides.keys() {
        if loaded.pipeline.resource(resource).is_none() {
            return Err(format!("--override {resource}: no such resource"));
        }
    }
    Engine::new(loaded.pipeline, &loaded.redact, config).map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

fn status_code(status: BuildStatus) -> u8 {
    match status {
        BuildStatus::Failed => 1,
        BuildStatus::Errored | BuildStatus::Aborted => 2,
        _ => 0,
    }
}

fn fail(message: &str) -> u8 {
    eprintln!("error: {message}");
    EXIT_BAD_INPUT
}

/// `tributary run`.
pub fn run(args: RunArgs) -> u8 {
    let Some(loaded) = load_pipeline(&args.pipeline, &args.vars) else {
        return EXIT_BAD_INPUT;
    };
    if let Some(job) = &args.job
        && loaded.pipeline.job(job).is_none()
    {
        return fail(&format!("--job {job}: no such job"));
    }
    let engine = match engine_for(&args.pipeline, loaded, &args.engine) {
        Ok(engine) => engine,
        Err(e) => return fail(&e),
    };
    engine.note(&format!("runtime: {}", engine.config.runtime.name()));
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let options = RunOptions {
        watch: args.watch,
        job: args.job.clone(),
    };
    let summary = rt.block_on(engine.run(&options));
    crate::runner::rootfs::finish_cleanups();
    let failed_checks = engine
        .check_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    if summary.builds.is_empty() && failed_checks > 0 {
        engine.note(&format!("nothing built: {failed_checks} checks failed"));
        return 2;
    }
    if summary.builds.is_empty() {
        engine.note("nothing to build: no job has new inputs");
    }
    for (job, name, status) in &summary.builds {
        engine.note(&format!("{job} #{name}: {}", status.as_str()));
    }
    summary.exit_code()
}

/// `tributary trigger`.
pub fn trigger(args: TriggerArgs) -> u8 {
    let Some(loaded) = load_pipeline(&args.pipeline, &args.vars) else {
        return EXIT_BAD_INPUT;
    };
    match loaded.pipeline.job(&args.job) {
        None => return fail(&format!("no such job {}", args.job)),
        Some(job) if job.disable_manual_trigger => {
            return fail(&format!("job {} has disable_manual_trigger", args.job));
        }
        Some(_) => {}
    }
    let engine = match engine_for(&args.pipeline, loaded, &args.engine) {
        Ok(engine) => engine,
        Err(e) => return fail(&e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let result = rt.block_on(engine.trigger(&args.job));
    crate::runner::rootfs::finish_cleanups();
    match result {
        Ok((build, status)) => {
            engine.note(&format!(
                "{} #{}: {}",
                build.job,
                build.name,
                status.as_str()
            ));
            status_code(status)
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// `tributary execute`: one task, like `fly execute`, with state in memory.
pub fn execute(args: ExecuteArgs) -> u8 {
    let Some(vars) = static_vars(&args.vars) else {
        return EXIT_BAD_INPUT;
    };
    let text = match std::fs::read_to_string(&args.config) {
        Ok(text) => text,
        Err(e) => return fail(&format!("{}: {e}", args.config.display())),
    };
    let file = args.config.display().to_string();
    let config = match load::load_task_config(&text, &file, &vars) {
        Ok((config, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            config
        }
        Err(e) => return fail(&e.to_string()),
    };
    let (inputs, outputs) = match (pairs(&args.inputs, "-i"), pairs(&args.outputs, "-o")) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    let mut preset: BTreeMap<String, PathBuf> = inputs
        .into_iter()
        .map(|(k, v)| {
            let dir = PathBuf::from(v);
            (k, std::fs::canonicalize(&dir).unwrap_or(dir))
        })
        .collect();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let from_job = match &args.inputs_from {
        Some(spec) => match rt.block_on(inputs_from(spec, &args, &config, &preset)) {
            Ok(from) => Some(from),
            Err(e) => return fail(&e),
        },
        None => None,
    };
    // Like fly: a task with one input and no -i (nor -j) gets the current directory.
    if preset.is_empty()
        && from_job.is_none()
        && let [only] = config.inputs.as_slice()
    {
        let here = PathBuf::from(".");
        preset.insert(
            only.name.clone(),
            std::path::absolute(&here).unwrap_or(here),
        );
    }
    let from_job = from_job.unwrap_or_default();
    let image = match (&from_job.image, &args.image) {
        (Some(input), _) => Some(input.clone()),
        (None, Some(dir)) => {
            preset.insert(
                "image".into(),
                std::path::absolute(dir).unwrap_or(dir.clone()),
            );
            Some("image".to_string())
        }
        (None, None) => None,
    };
    let exports: BTreeMap<String, PathBuf> = outputs
        .into_iter()
        .map(|(k, v)| {
            let dir = PathBuf::from(v);
            (k, std::path::absolute(&dir).unwrap_or(dir))
        })
        .collect();
    let loc = config.loc.clone().unwrap_or_else(crate::diag::Loc::none);
    let task = Step {
        loc: loc.clone(),
        kind: StepKind::Task(Box::new(TaskStep {
            name: "execute".into(),
            config: Some(config),
            file: None,
            image,
            privileged: args.privileged,
            vars: None,
            params: None,
            input_mapping: BTreeMap::new(),
            output_mapping: BTreeMap::new(),
            container_limits: None,
            tags: Vec::new(),
        })),
    };
    let mut plan = Vec::new();
    if !from_job.gets.is_empty() {
        plan.push(Step {
            loc: loc.clone(),
            kind: StepKind::InParallel(InParallelStep {
                steps: from_job.gets.clone(),
                limit: None,
                fail_fast: false,
            }),
        });
    }
    plan.push(task);
    let job = Job {
        loc,
        name: "execute".into(),
        old_name: None,
        plan,
        serial: false,
        serial_groups: Vec::new(),
        max_in_flight: None,
        build_log_retention: None,
        public: false,
        disable_manual_trigger: false,
        interruptible: false,
        hooks: JobHooks::default(),
    };
    let pipeline = Pipeline {
        jobs: vec![job],
        ..from_job.pipeline
    };
    // Builds live in `.tributary` beside the task file (removed after); images stay cached.
    let engine_config = match config_for(&args.config, &args.engine) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut state = match State::open_in_memory() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    // The versions chosen from the job's state become this build's scheduled inputs.
    let mut scheduled = Vec::new();
    for (name, resource, version) in &from_job.versions {
        match state.save_checked_versions(resource, std::slice::from_ref(version)) {
            Ok(ids) => scheduled.push(BuildVersion {
                name: name.clone(),
                resource: resource.clone(),
                version_id: ids[0],
            }),
            Err(e) => return fail(&e.to_string()),
        }
    }
    let build = match state.create_build("execute", &scheduled) {
        Ok(b) => b,
        Err(e) => return fail(&e.to_string()),
    };
    let mut redact = vars.redaction_set();
    redact.extend(from_job.redact);
    let engine = Engine::with_state(pipeline, &redact, engine_config, state);
    let status = rt.block_on(engine.run_build_with(&build, preset, &exports));
    crate::runner::rootfs::finish_cleanups();
    status_code(status)
}

/// What `execute -j PIPELINE/JOB` takes from the job.
#[derive(Default)]
struct FromJob {
    /// The pipeline's resources, resource types and var sources (no jobs).
    pipeline: Pipeline,
    /// Values to hide (the pipeline's vars).
    redact: BTreeSet<String>,
    /// The job's get steps to run (no `passed:`, no trigger).
    gets: Vec<Step>,
    /// The version of each get (name, resource, version); overridden resources have none.
    versions: Vec<(String, String, resource_protocol::Version)>,
    /// `--image INPUT`: the get whose artifact is the task's rootfs.
    image: Option<String>,
}

/// `execute -j PIPELINE/JOB`: the job's get steps named like the task's inputs (those not
/// given with `-i`, and `--image INPUT`), with the versions the job's next build would get,
/// else the resource's newest; a resource without versions is checked first.
async fn inputs_from(
    spec: &str,
    args: &ExecuteArgs,
    config: &TaskConfig,
    preset: &BTreeMap<String, PathBuf>,
) -> Result<FromJob, String> {
    let (path, job_name) = spec
        .rsplit_once('/')
        .filter(|(p, j)| !p.is_empty() && !j.is_empty())
        .ok_or_else(|| format!("-j {spec}: expected PIPELINE/JOB"))?;
    let path = PathBuf::from(path);
    let loaded =
        load_pipeline(&path, &args.vars).ok_or_else(|| format!("-j {spec}: invalid pipeline"))?;
    let job = loaded
        .pipeline
        .job(job_name)
        .ok_or_else(|| format!("-j {spec}: no job {job_name} in {}", path.display()))?;
    let gets: BTreeMap<String, (Step, GetStep)> = job
        .gets()
        .into_iter()
        .map(|(step, get)| (get.name.clone(), (step.clone(), get.clone())))
        .collect();
    let image = args
        .image
        .as_ref()
        .and_then(|p| p.to_str())
        .filter(|name| gets.contains_key(*name))
        .map(str::to_owned);
    let mut wanted: Vec<String> = config
        .inputs
        .iter()
        .filter(|i| !preset.contains_key(&i.name) && gets.contains_key(&i.name))
        .map(|i| i.name.clone())
        .collect();
    if let Some(name) = &image
        && !wanted.contains(name)
    {
        wanted.push(name.clone());
    }
    let redact = loaded.redact.clone();
    let engine = engine_for(&path, loaded, &args.engine)?;
    let mut steps = Vec::new();
    let mut versions = Vec::new();
    let mut pending = Vec::new();
    for name in &wanted {
        let (step, get) = &gets[name];
        let resource = get.resource_name().to_owned();
        // The get alone: no `passed:`, no trigger; the version is scheduled below.
        let mut only = get.clone();
        only.passed.clear();
        only.trigger = false;
        only.version = None;
        steps.push(Step {
            loc: step.loc.clone(),
            kind: StepKind::Get(only),
        });
        if engine.config.overrides.contains_key(&resource) {
            continue;
        }
        let known = engine
            .state()
            .versions(&resource)
            .map_err(|e| e.to_string())?;
        if known.is_empty() {
            engine
                .check_resource(&resource)
                .await
                .map_err(|e| format!("-j {spec}: check of {resource}: {e}"))?;
        }
        pending.push((name.clone(), resource));
    }
    let next = engine.next_inputs(job_name).unwrap_or_default();
    for (name, resource) in pending {
        let state = engine.state();
        let stored = match next.get(&name) {
            Some(id) => state.version(*id).map_err(|e| e.to_string())?.map(|v| v.1),
            None => state
                .newest_version(&resource)
                .map_err(|e| e.to_string())?
                .map(|v| v.version),
        };
        let version = stored.ok_or_else(|| {
            format!("-j {spec}: input {name}: resource {resource} has no versions")
        })?;
        versions.push((name, resource, version));
    }
    let pipeline = Pipeline {
        loc: engine.pipeline.loc.clone(),
        resource_types: engine.pipeline.resource_types.clone(),
        resources: engine.pipeline.resources.clone(),
        var_sources: engine.pipeline.var_sources.clone(),
        ..Pipeline::default()
    };
    Ok(FromJob {
        pipeline,
        redact,
        gets: steps,
        versions,
        image,
    })
}

/// `tributary check`: one check; prints the versions it answered.
pub fn check(args: CheckArgs) -> u8 {
    let Some(loaded) = load_pipeline(&args.pipeline, &args.vars) else {
        return EXIT_BAD_INPUT;
    };
    if loaded.pipeline.resource(&args.resource).is_none() {
        return fail(&format!("no such resource {}", args.resource));
    }
    let from = match pairs(&args.from, "--from") {
        Ok(p) if p.is_empty() => None,
        Ok(p) => Some(p),
        Err(e) => return fail(&e),
    };
    let engine = match engine_for(&args.pipeline, loaded, &args.engine) {
        Ok(engine) => engine,
        Err(e) => return fail(&e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match rt.block_on(engine.check_resource_from(&args.resource, from)) {
        Ok((_, versions)) => answer(&format!("{}\n", serde_json::json!(versions))),
        Err(e) => {
            eprintln!("error: check of {}: {e}", args.resource);
            1
        }
    }
}

fn open_state(pipeline: &Path, db: Option<&Path>) -> Result<State, String> {
    let db = db.map(Path::to_owned).unwrap_or_else(|| {
        EngineConfig::for_pipeline(pipeline)
            .state_dir
            .join("state.db")
    });
    if !db.exists() {
        return Err(format!(
            "{}: no state yet (run the pipeline first)",
            db.display()
        ));
    }
    State::open_read_only(&db).map_err(|e| e.to_string())
}

fn answer(text: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => fail(&format!("writing the answer: {e}")),
    }
}

fn time(secs: Option<i64>) -> String {
    secs.map(|s| {
        let day = s % 86_400;
        format!("{:02}:{:02}:{:02}", day / 3600, (day / 60) % 60, day % 60)
    })
    .unwrap_or_else(|| "-".into())
}

/// `tributary builds`.
pub fn builds(args: BuildsArgs) -> u8 {
    let state = match open_state(&args.pipeline, args.db.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let builds = match state.builds(args.job.as_deref()) {
        Ok(b) => b,
        Err(e) => return fail(&e.to_string()),
    };
    let mut text = String::from("id\tjob\tbuild\tstatus\tstarted\tfinished\tlog\terror\n");
    for b in builds {
        // `reaped`: build_log_retention removed the log; the build itself stays.
        let log = match state.logs_reaped_at(b.id) {
            Ok(Some(_)) => "reaped",
            _ => "kept",
        };
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{log}\t{}\n",
            b.id,
            b.job,
            b.name,
            b.status.as_str(),
            time(b.started_at),
            time(b.finished_at),
            b.error.unwrap_or_default()
        ));
    }
    answer(&text)
}

/// `tributary logs`.
pub fn logs(args: LogsArgs) -> u8 {
    let state = match open_state(&args.pipeline, args.db.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let build = match args.build {
        Some(n) => state.build_by_name(&args.job, n).ok().flatten(),
        None => state
            .builds(Some(&args.job))
            .ok()
            .and_then(|b| b.into_iter().next()),
    };
    let Some(build) = build else {
        return fail(&format!("no such build of job {}", args.job));
    };
    let lines = match state.log(build.id) {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string()),
    };
    if lines.is_empty()
        && let Ok(Some(_)) = state.logs_reaped_at(build.id)
    {
        eprintln!(
            "{} #{}: its log was removed by build_log_retention",
            build.job, build.name
        );
        return 0;
    }
    let mut text = String::new();
    for line in lines {
        if line.step.is_empty() {
            text.push_str(&format!("{}\n", line.text));
        } else {
            text.push_str(&format!("{}: {}\n", line.step, line.text));
        }
    }
    answer(&text)
}

/// `tributary versions`.
pub fn versions(args: VersionsArgs) -> u8 {
    let state = match open_state(&args.pipeline, args.db.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let versions = match state.versions(&args.resource) {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let pinned: BTreeSet<i64> = state
        .pinned(&args.resource)
        .ok()
        .flatten()
        .into_iter()
        .collect();
    let mut text = String::new();
    for v in versions.iter().rev() {
        let pin = if pinned.contains(&v.id) {
            " (pinned)"
        } else {
            ""
        };
        text.push_str(&format!("{}{pin}\n", serde_json::json!(v.version)));
    }
    answer(&text)
}
