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
use crate::model::{Job, JobHooks, Pipeline, Step, StepKind, TaskStep};
use crate::runner::Runtime;
use crate::state::{BuildStatus, State};
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
    /// A rootfs directory to run in (instead of the config's image_resource).
    #[arg(long, value_name = "DIR")]
    pub image: Option<PathBuf>,
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
    // Like fly: a task with one input and no -i gets the current directory.
    if preset.is_empty()
        && let [only] = config.inputs.as_slice()
    {
        let here = PathBuf::from(".");
        preset.insert(
            only.name.clone(),
            std::path::absolute(&here).unwrap_or(here),
        );
    }
    let image = args.image.as_ref().map(|_| "image".to_string());
    if let Some(dir) = &args.image {
        preset.insert(
            "image".into(),
            std::path::absolute(dir).unwrap_or(dir.clone()),
        );
    }
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
    let job = Job {
        loc,
        name: "execute".into(),
        old_name: None,
        plan: vec![task],
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
        ..Pipeline::default()
    };
    // Builds live in `.tributary` beside the task file (removed after); images stay cached.
    let engine_config = match config_for(&args.config, &args.engine) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let state = match State::open_in_memory() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let engine = Engine::with_state(pipeline, &vars.redaction_set(), engine_config, state);
    let build = match engine.state().create_build("execute", &[]) {
        Ok(b) => b,
        Err(e) => return fail(&e.to_string()),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let status = rt.block_on(engine.run_build_with(&build, preset, &exports));
    crate::runner::rootfs::finish_cleanups();
    status_code(status)
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
    let mut text = String::from("id\tjob\tbuild\tstatus\tstarted\tfinished\terror\n");
    for b in builds {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
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
