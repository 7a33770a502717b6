//! Version ranges: `>= 3.0, < 4`, `^1.2`, `~1.2`, `~> 1.5`, `= 1.2.3`, `1.x`, `*`,
//! `1.2 - 1.4`, `!= 1.3`, and alternatives joined by `||`.
//!
//! Comparators within an alternative are separated by `,` or whitespace (`>= 1.2, < 2` and
//! `>=1.2 <2` are the same); a space between an operator and its version is allowed. A version
//! may be partial (`1`, `1.2`) or hold wildcards (`1.x`, `1.2.*`) and may start with `v`.
//!
//! **Prerelease rule.** A comparator written without a prerelease compares only the candidate's
//! `major.minor.patch`: `>= 2.7` keeps `2.7.0-alpine`, `< 3` drops `3.0.0-rc.1`, `~1.2` keeps
//! `1.2.5-alpine`. Registries use the `-suffix` for variants as often as for prereleases, and
//! whether prereleases are wanted at all is decided by the caller, not by the range. A
//! comparator with a prerelease (`>= 1.2.3-rc.1`) compares full versions by semver precedence.

use std::cmp::Ordering;

use semver::{Prerelease, Version};

use crate::FilterError;

/// A parsed range; see the module docs for the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    text: String,
    alternatives: Vec<Vec<Check>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    /// `candidate op bound`.
    Cmp {
        op: CheckOp,
        bound: Version,
        /// Compare full versions (the comparator named a prerelease) rather than release
        /// numbers.
        full: bool,
    },
    /// Release numbers outside `[low, high)` (a partial `!=`).
    Outside { low: Version, high: Version },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

/// A version as written in a range: missing or wildcard parts are `None`.
#[derive(Debug, Clone)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

impl Range {
    /// Parses a range; the error names the range and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let invalid = |message: String| FilterError::InvalidRange {
            range: text.to_owned(),
            message,
        };
        if text.trim().is_empty() {
            return Err(invalid("must not be empty".into()));
        }
        let mut alternatives = Vec::new();
        for alternative in text.split("||") {
            let checks = parse_alternative(alternative).map_err(invalid)?;
            alternatives.push(checks);
        }
        Ok(Self {
            text: text.to_owned(),
            alternatives,
        })
    }

    /// Whether `version` is in the range.
    pub fn matches(&self, version: &Version) -> bool {
        let release = Version::new(version.major, version.minor, version.patch);
        self.alternatives.iter().any(|checks| {
            checks.iter().all(|check| match check {
                Check::Cmp { op, bound, full } => {
                    let candidate = if *full { version } else { &release };
                    let ordering = candidate.cmp_precedence(bound);
                    match op {
                        CheckOp::Ge => ordering != Ordering::Less,
                        CheckOp::Gt => ordering == Ordering::Greater,
                        CheckOp::Le => ordering != Ordering::Greater,
                        CheckOp::Lt => ordering == Ordering::Less,
                        CheckOp::Eq => ordering == Ordering::Equal,
                        CheckOp::Ne => ordering != Ordering::Equal,
                    }
                }
                Check::Outside { low, high } => release < *low || release >= *high,
            })
        })
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

const OPERATORS: [&str; 10] = [">=", "<=", "~>", "==", "!=", ">", "<", "=", "~", "^"];

fn parse_alternative(text: &str) -> Result<Vec<Check>, String> {
    let tokens: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Err("empty alternative (nothing between `||` or around a `,`)".into());
    }
    let mut checks = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let mut token = tokens[i].to_owned();
        i += 1;
        // An operator on its own takes the next token as its version: `>= 1.2`.
        if OPERATORS.contains(&token.as_str()) {
            let Some(next) = tokens.get(i) else {
                return Err(format!("operator `{token}` without a version"));
            };
            token.push_str(next);
            i += 1;
        }
        // Hyphen range: `1.2 - 1.4`.
        if tokens.get(i) == Some(&"-") {
            let Some(upper) = tokens.get(i + 1) else {
                return Err(format!("hyphen range `{token} -` without an upper end"));
            };
            i += 2;
            let lower = parse_partial(&token)?;
            let upper = parse_partial(upper)?;
            checks.extend(expand("=", &lower, true)?);
            checks.extend(expand("<=", &upper, false)?);
            continue;
        }
        let (op, version) = split_operator(&token);
        let partial = parse_partial(version)?;
        checks.extend(expand(op, &partial, false)?);
    }
    Ok(checks)
}

fn split_operator(token: &str) -> (&str, &str) {
    for op in OPERATORS {
        if let Some(rest) = token.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", token)
}

fn parse_partial(text: &str) -> Result<Partial, String> {
    let bad = || format!("`{text}` is not a version (expected e.g. 1, 1.2, 1.2.3, 1.x)");
    let body = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let body = body.split_once('+').map_or(body, |(b, _)| b);
    let (numbers, pre) = match body.split_once('-') {
        Some((_, "")) => return Err(format!("`{text}`: empty prerelease")),
        Some((n, p)) => (n, Prerelease::new(p).map_err(|e| format!("`{text}`: {e}"))?),
        None => (body, Prerelease::EMPTY),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(bad());
    }
    let mut values = [None, None, None];
    let mut wildcard_seen = false;
    for (slot, part) in values.iter_mut().zip(&parts) {
        if matches!(*part, "x" | "X" | "*") {
            wildcard_seen = true;
            continue;
        }
        if wildcard_seen {
            return Err(format!("`{text}`: a number after a wildcard"));
        }
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if part.len() > 1 && part.starts_with('0') {
            return Err(format!("`{text}`: leading zero in `{part}`"));
        }
        *slot = Some(part.parse::<u64>().map_err(|_| bad())?);
    }
    if !pre.is_empty() && values[2].is_none() {
        return Err(format!("`{text}`: a prerelease needs major.minor.patch"));
    }
    Ok(Partial {
        major: values[0],
        minor: values[1],
        patch: values[2],
        pre,
    })
}

fn check(op: CheckOp, major: u64, minor: u64, patch: u64) -> Check {
    Check::Cmp {
        op,
        bound: Version::new(major, minor, patch),
        full: false,
    }
}

/// Expands one comparator into primitive checks. `hyphen_lower` turns `=` into `>=` (the lower
/// end of a hyphen range).
fn expand(op: &str, p: &Partial, hyphen_lower: bool) -> Result<Vec<Check>, String> {
    use CheckOp::{Eq, Ge, Gt, Le, Lt, Ne};
    let bump = |n: u64| {
        n.checked_add(1)
            .ok_or_else(|| "version number too large".to_owned())
    };
    // The exact version (all three parts given).
    if let (Some(ma), Some(mi), Some(pa)) = (p.major, p.minor, p.patch) {
        let full = !p.pre.is_empty();
        let mut bound = Version::new(ma, mi, pa);
        bound.pre = p.pre.clone();
        let one = |op: CheckOp| {
            vec![Check::Cmp {
                op,
                bound: bound.clone(),
                full,
            }]
        };
        let lower = || Check::Cmp {
            op: Ge,
            bound: bound.clone(),
            full,
        };
        return Ok(match op {
            "" | "=" | "==" if hyphen_lower => one(Ge),
            "" | "=" | "==" => one(Eq),
            "!=" => one(Ne),
            ">=" => one(Ge),
            ">" => one(Gt),
            "<=" => one(Le),
            "<" => one(Lt),
            "~" => vec![lower(), check(Lt, ma, bump(mi)?, 0)],
            "~>" => vec![lower(), check(Lt, ma, bump(mi)?, 0)],
            "^" if ma > 0 => vec![lower(), check(Lt, bump(ma)?, 0, 0)],
            "^" if mi > 0 => vec![lower(), check(Lt, 0, bump(mi)?, 0)],
            "^" => vec![lower(), check(Lt, 0, 0, bump(pa)?)],
            _ => return Err(format!("unknown operator `{op}`")),
        });
    }
    // Partial: [lo, hi) is the set the partial version names.
    let (lo, hi) = match (p.major, p.minor) {
        (None, _) => {
            return match op {
                "" | "=" | "==" | ">=" | "<=" | "~" | "^" | "~>" => Ok(Vec::new()),
                _ => Err(format!("`{op}*` matches nothing")),
            };
        }
        (Some(ma), None) => ((ma, 0), (bump(ma)?, 0)),
        (Some(ma), Some(mi)) => ((ma, mi), (ma, bump(mi)?)),
    };
    let lo_check = |op| check(op, lo.0, lo.1, 0);
    let hi_check = |op| check(op, hi.0, hi.1, 0);
    Ok(match op {
        "" | "=" | "==" if hyphen_lower => vec![lo_check(Ge)],
        "" | "=" | "==" | "~" => vec![lo_check(Ge), hi_check(Lt)],
        "!=" => vec![Check::Outside {
            low: Version::new(lo.0, lo.1, 0),
            high: Version::new(hi.0, hi.1, 0),
        }],
        ">=" => vec![lo_check(Ge)],
        ">" => vec![hi_check(Ge)],
        "<" => vec![lo_check(Lt)],
        "<=" => vec![hi_check(Lt)],
        // Ruby's pessimistic operator: `~> 1.5` is `>= 1.5, < 2`; `~> 1` is `>= 1, < 2`.
        "~>" => vec![lo_check(Ge), check(Lt, bump(lo.0)?, 0, 0)],
        "^" => match (p.major, p.minor) {
            (Some(0), Some(mi)) => vec![lo_check(Ge), check(Lt, 0, bump(mi)?, 0)],
            (Some(ma), _) => vec![lo_check(Ge), check(Lt, bump(ma)?, 0, 0)],
            (None, _) => Vec::new(),
        },
        _ => return Err(format!("unknown operator `{op}`")),
    })
}
