//! `images`: the command line of the image builder (see images/README.md).
//!
//! `images build --out target/images [--binaries DIR] [--types git,…] [--push REGISTRY/NS]`.
//! Progress and the summary go to stderr; `OUT/images.json` is the machine-readable result.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use images::push::{PushOptions, push_image};
use images::{BuildOptions, build_images, types};
use resource_protocol::Secret;

/// The registry password for `--push`, read only from the environment so that it never
/// appears in a process list or shell history.
const PUSH_PASSWORD_ENV: &str = "IMAGES_PUSH_PASSWORD";

/// The default binaries directory: the documented static release build.
const DEFAULT_BINARIES: &str = "target/x86_64-unknown-linux-gnu/release";

#[derive(Debug, Parser)]
#[command(
    name = "images",
    version,
    about = "Builds reproducible OCI images of Tributary's resource types"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Builds (and optionally pushes) one image per resource type.
    Build(BuildArgs),
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// Output directory: `<type>/` layouts, `<type>.oci-archive.tar`, `<type>.docker-archive.tar`.
    #[arg(long, default_value = "target/images")]
    out: PathBuf,
    /// Directory holding the `<type>-resource` binaries.
    #[arg(long, default_value = DEFAULT_BINARIES)]
    binaries: PathBuf,
    /// Comma-separated resource types (default: all).
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Every file's mtime and the config's `created`, in seconds since the epoch.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    source_date_epoch: u64,
    /// `org.opencontainers.image.revision` (default: `git rev-parse HEAD`).
    #[arg(long)]
    revision: Option<String>,
    /// `org.opencontainers.image.version` and the tag (default: the workspace version).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    version: String,
    /// The CA bundle copied into every image.
    #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
    ca_bundle: PathBuf,
    /// Pack the binaries as they are, without stripping symbols.
    #[arg(long)]
    no_strip: bool,
    /// Name prefix in the docker archive's tag: `<prefix>/<type>-resource:<version>`.
    #[arg(long, default_value = "tributary")]
    repo_prefix: String,
    /// Push every image to `REGISTRY/NAMESPACE/<type>-resource` (tags: version, `latest`) with
    /// our registry-image resource's `out`.
    #[arg(long, value_name = "REGISTRY/NAMESPACE")]
    push: Option<String>,
    /// Push over plain HTTP.
    #[arg(long, requires = "push")]
    push_insecure: bool,
    /// Registry user name for --push (the password comes from `IMAGES_PUSH_PASSWORD`).
    #[arg(long, requires = "push")]
    push_username: Option<String>,
    /// A PEM file of CA certificates the registry's TLS certificate may chain to (repeatable).
    #[arg(long, requires = "push", value_name = "FILE")]
    push_ca_cert: Vec<PathBuf>,
    /// The registry-image resource binary that pushes (default: the one in --binaries).
    #[arg(long, requires = "push")]
    push_with: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", format!("{err:#}").replace(['\n', '\r'], " "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Build(args) = cli.command;
    let selected = if args.types.is_empty() {
        types::ALL.to_vec()
    } else {
        args.types
            .iter()
            .map(|name| {
                types::by_name(name).with_context(|| {
                    let known: Vec<_> = types::ALL.iter().map(|t| t.name).collect();
                    format!(
                        "--types: unknown type {name:?} (known: {})",
                        known.join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let revision = match args.revision {
        Some(revision) => revision,
        None => images::build::git_revision(&std::env::current_dir()?)
            .context("--revision: cannot read the git revision of the current directory")?,
    };
    let options = BuildOptions {
        out: std::path::absolute(&args.out).context("--out")?,
        binaries: std::path::absolute(&args.binaries).context("--binaries")?,
        types: selected,
        source_date_epoch: args.source_date_epoch,
        version: args.version,
        revision,
        source: env!("CARGO_PKG_REPOSITORY").to_owned(),
        licenses: env!("CARGO_PKG_LICENSE").to_owned(),
        repo_prefix: args.repo_prefix,
        ca_bundle: std::path::absolute(&args.ca_bundle).context("--ca-bundle")?,
        strip: !args.no_strip,
    };
    // Read before building, so that a typo fails in a second, not after the build.
    // Read before building: a wrong path fails at once, not after the build.
    let ca_certs = args
        .push_ca_cert
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("--push-ca-cert: cannot read {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let built = build_images(&options)?;
    for image in &built {
        eprintln!(
            "{}: {} {:.1} MB compressed, {:.1} MB unpacked, {} ms -> {}",
            image.type_name,
            image.manifest_digest,
            image.compressed_size as f64 / 1e6,
            image.uncompressed_size as f64 / 1e6,
            image.millis,
            image.layout.display()
        );
    }
    eprintln!(
        "built {} image(s) in {} ms",
        built.len(),
        started.elapsed().as_millis()
    );

    let Some(prefix) = args.push else {
        return Ok(());
    };
    let push = PushOptions {
        prefix,
        extra_tags: vec!["latest".to_owned()],
        insecure: args.push_insecure,
        username: args.push_username,
        password: std::env::var(PUSH_PASSWORD_ENV).ok().map(Secret::new),
        ca_certs,
        resource_binary: args
            .push_with
            .unwrap_or_else(|| options.binaries.join("registry-image-resource")),
    };
    for image in &built {
        let pushed = push_image(image, &push)?;
        if pushed.digest != image.manifest_digest {
            bail!(
                "push {}: the registry holds {} but we built {}",
                pushed.repository,
                pushed.digest,
                image.manifest_digest
            );
        }
        eprintln!(
            "pushed {}:{}@{}",
            pushed.repository, pushed.tag, pushed.digest
        );
    }
    Ok(())
}
