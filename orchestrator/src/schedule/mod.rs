//! Deciding what runs next: a job's next input versions, whether they trigger a build, and
//! whether the job may start another build now.
//!
//! Everything here works on plain ids (resources by name, versions by row id) and history
//! snapshots read from the state database, so the rules are tested as data tables. It never
//! touches the database or the pipeline model itself.

use std::collections::{BTreeMap, BTreeSet};

use crate::state::{BuildId, VersionId};

pub mod retention;

/// How an input picks its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionChoice {
    /// The newest.
    Latest,
    /// The next after the newest this job used (the first time: the newest).
    Every,
    /// Exactly this version (a step `version:` or a resource pin); `None` when the pin matches
    /// no known version yet.
    Pinned(Option<VersionId>),
}

/// One get input of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// The get's name.
    pub name: String,
    /// The resource.
    pub resource: String,
    /// Upstream jobs the version must have passed.
    pub passed: Vec<String>,
    /// New versions trigger the job.
    pub trigger: bool,
    /// How the version is chosen.
    pub version: VersionChoice,
}

/// A successful upstream build: the versions it had per resource (inputs and outputs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassedBuild {
    /// Its id (larger is newer).
    pub id: BuildId,
    /// Versions per resource.
    pub versions: BTreeMap<String, BTreeSet<VersionId>>,
}

/// What the resolver knows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Per resource, its version ids oldest first.
    pub versions: BTreeMap<String, Vec<VersionId>>,
    /// Per upstream job, its successful builds newest first.
    pub passed_builds: BTreeMap<String, Vec<PassedBuild>>,
    /// Per input name, the versions this job has used for it (any build, any status).
    pub used: BTreeMap<String, BTreeSet<VersionId>>,
}

/// Why inputs do not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// A resource has no versions yet.
    #[error("input {0}: no versions of resource {1} yet")]
    NoVersions(String, String),
    /// A pin names a version that is not known.
    #[error("input {0}: pinned version not found")]
    PinNotFound(String),
    /// No combination satisfies every `passed:` constraint.
    #[error("inputs {0}: no versions satisfy the passed constraints")]
    NoPassedCombination(String),
}

/// The chosen version per input name.
pub type NextInputs = BTreeMap<String, VersionId>;

/// Candidates for one input, most preferred first.
fn candidates(input: &InputSpec, snapshot: &Snapshot) -> Result<Vec<VersionId>, Unresolved> {
    let all = snapshot
        .versions
        .get(&input.resource)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let unknown = || Unresolved::NoVersions(input.name.clone(), input.resource.clone());
    let mut list: Vec<VersionId> = match &input.version {
        VersionChoice::Pinned(None) => return Err(Unresolved::PinNotFound(input.name.clone())),
        VersionChoice::Pinned(Some(id)) => vec![*id],
        VersionChoice::Latest => all.iter().rev().copied().collect(),
        VersionChoice::Every => {
            let used = snapshot.used.get(&input.name);
            let last_used = used.and_then(|used| all.iter().rposition(|id| used.contains(id)));
            match last_used {
                // Oldest unused after the last used first, then back in time.
                Some(pos) => all[pos + 1..]
                    .iter()
                    .copied()
                    .chain(all[..=pos].iter().rev().copied())
                    .collect(),
                None => all.iter().rev().copied().collect(),
            }
        }
    };
    if list.is_empty() {
        return Err(unknown());
    }
    if !input.passed.is_empty() && input.version == VersionChoice::Latest {
        // Walk upstream builds newest first: a version is as new as the newest build of the
        // first upstream job that had it.
        let rank = |id: &VersionId| {
            snapshot
                .passed_builds
                .get(&input.passed[0])
                .and_then(|builds| {
                    builds.iter().find(|b| {
                        b.versions
                            .get(&input.resource)
                            .is_some_and(|vs| vs.contains(id))
                    })
                })
                .map(|b| b.id)
        };
        list.retain(|id| rank(id).is_some());
        list.sort_by_key(|id| std::cmp::Reverse(rank(id)));
    }
    Ok(list)
}

/// Resolves the next inputs of a job: every input gets a version; inputs with `passed:`
/// resolve together (for each upstream job, the versions of all inputs naming it must occur in
/// one of its successful builds), preferring newer versions, with backtracking.
pub fn resolve_next_inputs(
    inputs: &[InputSpec],
    snapshot: &Snapshot,
) -> Result<NextInputs, Unresolved> {
    let mut lists = Vec::with_capacity(inputs.len());
    for input in inputs {
        lists.push(candidates(input, snapshot)?);
    }
    let mut chosen: Vec<VersionId> = Vec::with_capacity(inputs.len());
    if assign(inputs, &lists, snapshot, &mut chosen) {
        Ok(inputs
            .iter()
            .zip(chosen)
            .map(|(i, v)| (i.name.clone(), v))
            .collect())
    } else {
        let names: Vec<&str> = inputs
            .iter()
            .filter(|i| !i.passed.is_empty())
            .map(|i| i.name.as_str())
            .collect();
        Err(Unresolved::NoPassedCombination(names.join(", ")))
    }
}

/// Depth-first assignment with backtracking; `chosen` holds versions for `inputs[..len]`.
fn assign(
    inputs: &[InputSpec],
    lists: &[Vec<VersionId>],
    snapshot: &Snapshot,
    chosen: &mut Vec<VersionId>,
) -> bool {
    let index = chosen.len();
    if index == inputs.len() {
        return true;
    }
    let input = &inputs[index];
    for candidate in &lists[index] {
        chosen.push(*candidate);
        if consistent(inputs, chosen, snapshot) && assign(inputs, lists, snapshot, chosen) {
            return true;
        }
        chosen.pop();
        if input.passed.is_empty() {
            // An unconstrained input takes part in no constraint: another of its versions
            // cannot make the rest resolve.
            return false;
        }
    }
    false
}

/// Whether the assignment so far satisfies every upstream job's co-occurrence constraint.
fn consistent(inputs: &[InputSpec], chosen: &[VersionId], snapshot: &Snapshot) -> bool {
    let mut jobs: BTreeSet<&str> = BTreeSet::new();
    for input in &inputs[..chosen.len()] {
        jobs.extend(input.passed.iter().map(String::as_str));
    }
    jobs.into_iter().all(|job| {
        let needed: Vec<(&str, VersionId)> = inputs
            .iter()
            .zip(chosen)
            .filter(|(i, _)| i.passed.iter().any(|p| p == job))
            .map(|(i, v)| (i.resource.as_str(), *v))
            .collect();
        snapshot.passed_builds.get(job).is_some_and(|builds| {
            builds.iter().any(|b| {
                needed
                    .iter()
                    .all(|(resource, v)| b.versions.get(*resource).is_some_and(|vs| vs.contains(v)))
            })
        })
    })
}

/// The trigger rule: a build is due when some `trigger: true` input has a version this job never
/// used for that input.
pub fn should_trigger(inputs: &[InputSpec], next: &NextInputs, snapshot: &Snapshot) -> bool {
    inputs.iter().filter(|i| i.trigger).any(|i| {
        next.get(&i.name).is_some_and(|v| {
            !snapshot
                .used
                .get(&i.name)
                .is_some_and(|used| used.contains(v))
        })
    })
}

/// A job's concurrency settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Concurrency {
    /// `serial: true`.
    pub serial: bool,
    /// `serial_groups`.
    pub serial_groups: Vec<String>,
    /// `max_in_flight`.
    pub max_in_flight: Option<u32>,
}

impl Concurrency {
    /// The most builds of the job that may run at once (`None`: unbounded).
    pub fn limit(&self) -> Option<u32> {
        if self.serial || !self.serial_groups.is_empty() {
            Some(1)
        } else {
            self.max_in_flight
        }
    }
}

/// Whether a job may start a build now, given the running builds per job.
pub fn may_start(
    job: &str,
    concurrency: &BTreeMap<String, Concurrency>,
    running: &BTreeMap<String, u32>,
) -> bool {
    let default = Concurrency::default();
    let own = concurrency.get(job).unwrap_or(&default);
    let mine = running.get(job).copied().unwrap_or(0);
    if own.limit().is_some_and(|limit| mine >= limit) {
        return false;
    }
    // A serial group runs one build at a time across all its jobs.
    !own.serial_groups.iter().any(|group| {
        concurrency
            .iter()
            .filter(|(_, c)| c.serial_groups.contains(group))
            .any(|(other, _)| running.get(other).copied().unwrap_or(0) > 0)
    })
}

#[cfg(test)]
mod tests;
