//! Line-oriented progress for long transfers: one stderr line at most every few seconds and
//! one at the end, so build logs stay readable whether or not stderr is a terminal.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a progress line may be written.
const INTERVAL: Duration = Duration::from_secs(3);

/// Counts finished items and their bytes.
pub struct Progress {
    verb: &'static str,
    total: usize,
    start: Instant,
    state: Mutex<State>,
}

struct State {
    done: usize,
    bytes: u64,
    last_line: Instant,
}

impl Progress {
    /// Progress of `total` items, reported as `<verb> N/total paths`.
    pub fn new(verb: &'static str, total: usize) -> Self {
        let now = Instant::now();
        Self {
            verb,
            total,
            start: now,
            state: Mutex::new(State {
                done: 0,
                bytes: 0,
                last_line: now,
            }),
        }
    }

    /// One item finished with `bytes` transferred.
    pub fn item_done(&self, bytes: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.done += 1;
        state.bytes += bytes;
        let now = Instant::now();
        if state.done == self.total || now.duration_since(state.last_line) >= INTERVAL {
            state.last_line = now;
            tracing::info!(
                "{} {}/{} paths, {:.1} MiB in {:.1} s",
                self.verb,
                state.done,
                self.total,
                state.bytes as f64 / 1_048_576.0,
                now.duration_since(self.start).as_secs_f64()
            );
        }
    }
}
