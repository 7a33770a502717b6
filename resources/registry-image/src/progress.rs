//! Transfer progress on stderr: bars (indicatif) when stderr is a terminal, otherwise one plain
//! line per finished blob, so build logs stay line-oriented.
//!
//! [`download_with_progress`] feeds the client's blob download into a bar.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use registry_client::{RegistryClient, RegistryError};

/// Progress of a set of transfers.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
    total: usize,
}

/// Progress of one blob.
#[derive(Debug, Clone)]
pub struct BlobProgress {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    /// Progress for `total` transfers; bars only when stderr is a terminal.
    pub fn new(total: usize) -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { bars, total }
    }

    /// A bar (or a line to come) for blob number `index` (0-based) of `size` bytes.
    pub fn blob(&self, index: usize, digest: &str, size: u64) -> BlobProgress {
        let label = format!("[{}/{}] {}", index + 1, self.total, short(digest));
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(label.clone());
            bar
        });
        BlobProgress { bar, label }
    }
}

impl BlobProgress {
    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// Marks the blob done with a note (`downloaded`, `applied (…)`).
    pub fn finish(&self, note: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(note.to_owned()),
            None => eprintln!("  {} {note}", self.label),
        }
    }
}

/// `sha256:0123456789ab`.
pub fn short(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |i| i + 1) + 12;
    &digest[..end.min(digest.len())]
}

/// `12.3 MB`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// Downloads blob `digest` to `path` through the client's verified, atomic download, advancing
/// `progress` as bytes arrive.
pub async fn download_with_progress(
    client: &RegistryClient,
    digest: &str,
    path: &Path,
    progress: &BlobProgress,
) -> Result<u64, RegistryError> {
    client
        .download_blob_with_progress(digest, path, |bytes| progress.advance(bytes))
        .await
}
