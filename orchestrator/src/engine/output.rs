//! The live event log: one line per event on stderr (colours and timestamps on a terminal,
//! plain lines otherwise), or JSON lines on stdout with `--json`. Text arrives redacted.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

/// How events are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// Human lines on stderr (colour when stderr is a terminal).
    Human,
    /// One JSON object per line on stdout, shape version 1:
    /// `{"v":1,"time_ms","build","step","stream","text"}`.
    Json,
    /// Nothing (tests, benchmarks).
    Quiet,
}

/// Shows events as they happen.
#[derive(Debug)]
pub struct Output {
    mode: OutputMode,
    colour: bool,
    lock: Mutex<()>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Output {
    /// An output in `mode`.
    pub fn new(mode: OutputMode) -> Self {
        Output {
            mode,
            colour: mode == OutputMode::Human && std::io::stderr().is_terminal(),
            lock: Mutex::new(()),
        }
    }

    /// Shows one event; `build` is `job #n` or empty, `stream` is stdout/stderr/event.
    pub fn event(&self, time_ms: i64, build: &str, step: &str, stream: &str, text: &str) {
        let _guard = self.lock.lock();
        match self.mode {
            OutputMode::Quiet => {}
            OutputMode::Json => {
                let line = json!({
                    "v": 1, "time_ms": time_ms, "build": build, "step": step,
                    "stream": stream, "text": text,
                });
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            OutputMode::Human => {
                let mut err = std::io::stderr().lock();
                let place = match (build.is_empty(), step.is_empty()) {
                    (true, _) => String::new(),
                    (false, true) => format!("[{build}] "),
                    (false, false) => format!("[{build}] {step}: "),
                };
                if self.colour {
                    let secs = (time_ms / 1000) % 86_400;
                    let stamp = format!(
                        "{:02}:{:02}:{:02}",
                        secs / 3600,
                        (secs / 60) % 60,
                        secs % 60
                    );
                    let colour = match stream {
                        "event" => "\x1b[1;36m",
                        "stderr" => "\x1b[33m",
                        _ => "",
                    };
                    let _ = writeln!(
                        err,
                        "\x1b[2m{stamp}\x1b[0m \x1b[1m{place}\x1b[0m{colour}{text}\x1b[0m"
                    );
                } else {
                    let _ = writeln!(err, "{place}{text}");
                }
            }
        }
    }
}
