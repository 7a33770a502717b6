//! The `run` harness every resource binary's `main` calls.
//!
//! It decides the operation from the name the binary was invoked as (`check`, `in`, `out`, as
//! `/opt/resource/*` symlinks are) or from the first argument (`git-resource check`), reads the
//! request from stdin, calls the [`Resource`], writes exactly one JSON answer to stdout and turns
//! every failure into one line on stderr plus an [`ExitCode`]. Nothing else in a resource
//! writes to stdout.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{CheckRequest, InRequest, OutRequest, Response, Version, parse_request};

/// Requests larger than this are refused before parsing: no real request comes near it.
const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// The documented exit codes of every resource binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The operation succeeded and its answer is on stdout.
    Success = 0,
    /// The operation failed (network, authentication, a missing version, a rejected push…).
    Failed = 1,
    /// The request or the command line was invalid; nothing was attempted.
    InvalidRequest = 2,
    /// The operation or a requested feature is not implemented yet.
    NotImplemented = 3,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// An error in the request itself (bad JSON, unknown field, contradictory settings).
///
/// Resources return it (through `anyhow`) for configuration they reject, so that the harness
/// exits with [`ExitCode::InvalidRequest`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(String);

impl InvalidRequest {
    /// An invalid-request error; the message should name the field, e.g.
    /// `source.version_depth: must be greater than 0`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// An operation or feature not implemented yet.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not implemented yet")]
pub struct NotImplemented {
    what: String,
}

impl NotImplemented {
    /// Names what is missing, e.g. `git check`.
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

/// A resource type: its configuration types and its three operations.
pub trait Resource {
    /// The type's name as used in pipelines and binary names (`git`, `registry-image`).
    const NAME: &'static str;
    /// The `source` configuration.
    type Source: DeserializeOwned;
    /// The `params` of a get step (`in`).
    type GetParams: DeserializeOwned + Default;
    /// The `params` of a put step (`out`).
    type PutParams: DeserializeOwned + Default;

    /// `check`: versions oldest first, including the given one if it is still valid.
    fn check(&self, request: CheckRequest<Self::Source>) -> anyhow::Result<Vec<Version>>;

    /// `in`: fetch `request.version` into `dest` (which exists, possibly non-empty).
    fn get(
        &self,
        request: InRequest<Self::Source, Self::GetParams>,
        dest: &Path,
    ) -> anyhow::Result<Response>;

    /// `out`: push from the build's artifacts under `src`.
    fn put(
        &self,
        request: OutRequest<Self::Source, Self::PutParams>,
        src: &Path,
    ) -> anyhow::Result<Response>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Check,
    In,
    Out,
}

#[derive(Debug)]
struct Invocation {
    operation: Operation,
    directory: Option<PathBuf>,
}

/// Runs `resource` as a protocol binary: parses argv and stdin, writes the answer, and returns
/// the exit code for `main` to return.
pub fn run<R: Resource>(resource: &R) -> std::process::ExitCode {
    init_logging();
    let args: Vec<OsString> = std::env::args_os().collect();
    let outcome = parse_invocation(R::NAME, &args)
        .and_then(|invocation| read_stdin().map(|stdin| (invocation, stdin)))
        .and_then(|(invocation, stdin)| dispatch(resource, &invocation, &stdin));
    match outcome {
        Ok(()) => ExitCode::Success.into(),
        Err(err) => {
            report_error(&err);
            exit_code_for(&err).into()
        }
    }
}

fn init_logging() {
    // Logs are the build log: plain lines on stderr, no timestamps (Concourse adds its own).
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

fn parse_invocation(name: &str, args: &[OsString]) -> anyhow::Result<Invocation> {
    let usage = || {
        InvalidRequest::new(format!(
            "usage: {name}-resource check | in DEST | out SRC (request JSON on stdin)"
        ))
    };
    let invoked_as = args
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let (operation_name, rest) = match operation_from_name(invoked_as) {
        Some(_) => (invoked_as.to_owned(), &args[1.min(args.len())..]),
        None => {
            let Some(first) = args.get(1) else {
                return Err(usage().into());
            };
            (
                first.to_string_lossy().into_owned(),
                &args[2.min(args.len())..],
            )
        }
    };
    let Some(operation) = operation_from_name(&operation_name) else {
        return Err(InvalidRequest::new(format!(
            "unknown command {operation_name:?}: expected check, in or out"
        ))
        .into());
    };
    let directory = match (operation, rest) {
        (Operation::Check, []) => None,
        (Operation::Check, [_, ..]) => {
            return Err(InvalidRequest::new("check takes no arguments").into());
        }
        (Operation::In, []) => {
            return Err(InvalidRequest::new(
                "missing destination directory argument: usage: in DEST",
            )
            .into());
        }
        (Operation::Out, []) => {
            return Err(
                InvalidRequest::new("missing source directory argument: usage: out SRC").into(),
            );
        }
        (_, [dir]) => Some(PathBuf::from(dir)),
        (_, [_, _, ..]) => return Err(usage().into()),
    };
    Ok(Invocation {
        operation,
        directory,
    })
}

fn operation_from_name(name: &str) -> Option<Operation> {
    match name {
        "check" => Some(Operation::Check),
        "in" => Some(Operation::In),
        "out" => Some(Operation::Out),
        _ => None,
    }
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut stdin = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_end(&mut stdin)
        .map_err(|err| InvalidRequest::new(format!("cannot read the request from stdin: {err}")))?;
    if stdin.len() as u64 > MAX_REQUEST_BYTES {
        return Err(InvalidRequest::new(format!(
            "request on stdin is larger than {} MiB",
            MAX_REQUEST_BYTES / 1024 / 1024
        ))
        .into());
    }
    Ok(stdin)
}

fn dispatch<R: Resource>(
    resource: &R,
    invocation: &Invocation,
    stdin: &[u8],
) -> anyhow::Result<()> {
    match invocation.operation {
        Operation::Check => {
            let request: CheckRequest<R::Source> = parse_request(stdin)?;
            let versions = resource.check(request)?;
            write_answer(&versions)
        }
        Operation::In => {
            let request: InRequest<R::Source, R::GetParams> = parse_request(stdin)?;
            let dest = existing_directory(invocation, true)?;
            let response = resource.get(request, &dest)?;
            write_answer(&response)
        }
        Operation::Out => {
            let request: OutRequest<R::Source, R::PutParams> = parse_request(stdin)?;
            let src = existing_directory(invocation, false)?;
            let response = resource.put(request, &src)?;
            write_answer(&response)
        }
    }
}

/// `in` creates its destination like Concourse would have; `out` needs its source to exist.
fn existing_directory(invocation: &Invocation, create: bool) -> anyhow::Result<PathBuf> {
    let Some(dir) = invocation.directory.clone() else {
        return Err(InvalidRequest::new("missing directory argument").into());
    };
    if create {
        std::fs::create_dir_all(&dir).map_err(|err| {
            InvalidRequest::new(format!(
                "cannot create destination {}: {err}",
                dir.display()
            ))
        })?;
    } else if !dir.is_dir() {
        return Err(InvalidRequest::new(format!(
            "source directory {} does not exist",
            dir.display()
        ))
        .into());
    }
    Ok(dir)
}

/// The one place that writes the protocol answer to stdout. A closed pipe is not a failure.
#[allow(clippy::print_stdout)]
fn write_answer<T: Serialize>(answer: &T) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec(answer)?;
    json.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&json).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn report_error(err: &anyhow::Error) {
    // `{:#}` joins the chain with ": "; flatten stray newlines so the log keeps one line.
    let message = format!("{err:#}").replace(['\n', '\r'], " ");
    eprintln!("error: {message}");
}

fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|cause| cause.is::<InvalidRequest>()) {
        ExitCode::InvalidRequest
    } else if err.chain().any(|cause| cause.is::<NotImplemented>()) {
        ExitCode::NotImplemented
    } else {
        ExitCode::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(args: &[&str]) -> Result<(Operation, Option<String>), String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_invocation("git", &args)
            .map(|i| (i.operation, i.directory.map(|d| d.display().to_string())))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn dispatches_on_name_or_subcommand() {
        assert_eq!(
            invocation(&["/opt/resource/check"]),
            Ok((Operation::Check, None))
        );
        assert_eq!(
            invocation(&["/opt/resource/in", "/d"]),
            Ok((Operation::In, Some("/d".into())))
        );
        assert_eq!(
            invocation(&["out", "/s"]),
            Ok((Operation::Out, Some("/s".into())))
        );
        assert_eq!(
            invocation(&["git-resource", "check"]),
            Ok((Operation::Check, None))
        );
        assert_eq!(
            invocation(&["git-resource", "in", "/d"]),
            Ok((Operation::In, Some("/d".into())))
        );
    }

    #[test]
    fn rejects_bad_command_lines() {
        let cases = [
            (&["git-resource"][..], "usage:"),
            (&["git-resource", "push"][..], "unknown command \"push\""),
            (&["git-resource", "in"][..], "missing destination directory"),
            (&["/opt/resource/out"][..], "missing source directory"),
            (&["check", "extra"][..], "check takes no arguments"),
            (&["in", "a", "b"][..], "usage:"),
        ];
        for (args, expected) in cases {
            let err = invocation(args).unwrap_err();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn exit_codes_follow_the_error_kind() {
        let invalid = anyhow::Error::from(InvalidRequest::new("x")).context("while parsing");
        assert_eq!(exit_code_for(&invalid), ExitCode::InvalidRequest);
        let missing = anyhow::Error::from(NotImplemented::new("git check"));
        assert_eq!(exit_code_for(&missing), ExitCode::NotImplemented);
        assert_eq!(missing.to_string(), "git check is not implemented yet");
        assert_eq!(exit_code_for(&anyhow::anyhow!("boom")), ExitCode::Failed);
    }
}
