//! Locations and diagnostics: every error and warning about a pipeline says `file:line:column`.
//!
//! Diagnostics are values collected while loading, so one run reports every problem at once.

use std::fmt;
use std::sync::Arc;

/// A position in a pipeline file (line and column are 1-based).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    /// The file as the user named it.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub col: u32,
}

impl Loc {
    /// A location in `file`.
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Loc {
        Loc {
            file: Arc::clone(file),
            line,
            col,
        }
    }

    /// The location of things that come from no file (flags, defaults).
    pub fn none() -> Loc {
        Loc {
            file: Arc::from("-"),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

impl Default for Loc {
    fn default() -> Loc {
        Loc::none()
    }
}

// Locations are noise in model dumps: print `line:col` only.
impl fmt::Debug for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}:{}", self.line, self.col)
    }
}

/// Whether a diagnostic stops the pipeline from being used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The pipeline cannot be used.
    Error,
    /// Deprecated or suspicious, but usable.
    Warning,
}

/// One problem found in a pipeline, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where the problem is.
    pub loc: Loc,
    /// Lowercase, one line, names the field.
    pub message: String,
}

impl Diagnostic {
    /// An error at `loc`.
    pub fn error(loc: &Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            loc: loc.clone(),
            message: message.into(),
        }
    }

    /// A warning at `loc`.
    pub fn warning(loc: &Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            loc: loc.clone(),
            message: message.into(),
        }
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {kind}: {}", self.loc, self.message)
    }
}

/// Several diagnostics, at least one of them an error: the pipeline could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    match diags.iter().find(|d| d.is_error()) {
        Some(first) if errors == 1 => first.to_string(),
        Some(first) => format!("{first} (and {} more errors)", errors - 1),
        None => "no errors".to_string(),
    }
}
