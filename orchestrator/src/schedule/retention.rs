//! `build_log_retention`: which finished builds of a job lose their logs, by Concourse's build
//! log reaper (`atc/gc/build_log_collector.go`) rule for rule.
//!
//! Builds are walked newest first. With `minimum_succeeded_builds` (read only together with
//! `builds`), succeeded builds are kept first, up to that minimum, and count towards `builds`.
//! Otherwise a build is kept while fewer than `builds` are kept, or while it finished less than
//! `days` ago; else its log goes. When something goes and more than `builds` were kept, the
//! oldest of the kept builds that were not kept for the minimum go too, so `builds` logs
//! remain. Running builds are never reaped and do not count.

use crate::state::{BuildId, BuildStatus};

/// How many build logs a job keeps (`0` means "not set", as in Concourse).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the logs of this many builds.
    pub builds: u32,
    /// Keep logs younger than this many days.
    pub days: u32,
    /// Of the kept builds, at least this many succeeded ones (only with `builds`).
    pub minimum_succeeded_builds: u32,
}

/// A build whose log is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedBuild {
    /// Its id.
    pub id: BuildId,
    /// Its status.
    pub status: BuildStatus,
    /// When it finished (Unix seconds).
    pub finished_at: Option<i64>,
}

const DAY_SECS: i64 = 86_400;

/// The builds (out of `newest_first`, whose logs are still there) whose logs go, at `now`
/// (Unix seconds).
pub fn logs_to_reap(retention: Retention, newest_first: &[LoggedBuild], now: i64) -> Vec<BuildId> {
    let builds = retention.builds as usize;
    let days = i64::from(retention.days);
    let minimum = retention.minimum_succeeded_builds as usize;
    if builds == 0 && days == 0 {
        return Vec::new();
    }
    let mut reap = Vec::new();
    let mut candidates = Vec::new();
    let mut kept = 0usize;
    let mut kept_succeeded = 0usize;
    for build in newest_first {
        if !build.status.is_finished() {
            continue;
        }
        if builds != 0 {
            if minimum != 0 && build.status == BuildStatus::Succeeded && kept_succeeded < minimum {
                kept += 1;
                kept_succeeded += 1;
                continue;
            }
            if kept < builds {
                kept += 1;
                candidates.push(build.id);
                continue;
            }
        }
        if days != 0 {
            let expired = build
                .finished_at
                .is_some_and(|end| end + days * DAY_SECS < now);
            if !expired {
                kept += 1;
                candidates.push(build.id);
                continue;
            }
        }
        reap.push(build.id);
    }
    if reap.is_empty() {
        return reap;
    }
    // More kept than `builds` (succeeded builds kept for the minimum, young builds kept for
    // `days`): the oldest candidates go too.
    if builds != 0 && kept > builds {
        reap.extend(candidates.iter().rev().take(kept - builds));
    }
    reap
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildStatus::{Aborted, Errored, Failed, Started, Succeeded};

    const NOW: i64 = 100 * DAY_SECS;

    /// Builds newest first as `(id, status, age in days)`; expects the ids reaped, sorted.
    #[track_caller]
    fn check(retention: (u32, u32, u32), history: &[(BuildId, BuildStatus, i64)], want: &[i64]) {
        let retention = Retention {
            builds: retention.0,
            days: retention.1,
            minimum_succeeded_builds: retention.2,
        };
        let builds: Vec<LoggedBuild> = history
            .iter()
            .map(|&(id, status, age)| LoggedBuild {
                id,
                status,
                finished_at: status.is_finished().then_some(NOW - age * DAY_SECS - 1),
            })
            .collect();
        let mut got = logs_to_reap(retention, &builds, NOW);
        got.sort_unstable();
        assert_eq!(got, want, "{retention:?} {history:?}");
    }

    #[test]
    fn retention_table() {
        let five = [
            (5, Failed, 0),
            (4, Succeeded, 1),
            (3, Errored, 2),
            (2, Succeeded, 3),
            (1, Failed, 4),
        ];
        // Nothing set: everything stays.
        check((0, 0, 0), &five, &[]);
        // builds: the newest N stay.
        check((2, 0, 0), &five, &[1, 2, 3]);
        check((5, 0, 0), &five, &[]);
        check((1, 0, 0), &[(2, Started, 0), (1, Succeeded, 0)], &[]);
        check(
            (1, 0, 0),
            &[(3, Started, 0), (2, Failed, 0), (1, Aborted, 0)],
            &[1],
        );
        // days: builds that finished longer ago go.
        check((0, 2, 0), &five, &[1, 2, 3]);
        // builds and days: a build stays when either keeps it…
        check((4, 1, 0), &five, &[1]);
        check((1, 2, 0), &five[..2], &[]);
        // …but once something goes, only `builds` stay (Concourse's trimming of candidates).
        check((1, 2, 0), &five, &[1, 2, 3, 4]);
        // minimum_succeeded_builds: the newest succeeded builds stay and count towards builds.
        let failing = [
            (6, Failed, 0),
            (5, Failed, 0),
            (4, Failed, 0),
            (3, Failed, 0),
            (2, Succeeded, 0),
            (1, Succeeded, 0),
        ];
        check((3, 0, 0), &failing, &[1, 2, 3]);
        // Build 2 stays; the oldest kept failure (4) makes room for it.
        check((3, 0, 1), &failing, &[1, 3, 4]);
        check((3, 0, 2), &failing, &[3, 4, 5]);
        // A minimum without builds means nothing (Concourse reads it only with builds).
        check((0, 0, 2), &failing, &[]);
        // The room is only made when something else is reaped (Concourse's early return).
        let mixed = [
            (4, Failed, 0),
            (3, Failed, 0),
            (2, Failed, 0),
            (1, Succeeded, 0),
        ];
        check((2, 0, 1), &mixed, &[2, 3]);
        check((2, 0, 1), &mixed[1..], &[]);
        check(
            (2, 0, 1),
            &[(3, Succeeded, 0), (2, Failed, 0), (1, Failed, 0)],
            &[1],
        );
    }

    /// Concourse's own cases (`atc/gc/build_log_collector_test.go`).
    #[test]
    fn concourse_minimum_succeeded_cases() {
        let history = |succeeded: &[BuildId]| -> Vec<(BuildId, BuildStatus, i64)> {
            (7..=18)
                .rev()
                .map(|id| {
                    let status = if succeeded.contains(&id) {
                        Succeeded
                    } else {
                        Failed
                    };
                    (id, status, 0)
                })
                .collect()
        };
        check((5, 0, 2), &history(&[8, 13]), &[7, 9, 10, 11, 12, 14, 15]);
        check(
            (5, 0, 5),
            &history(&[8, 10, 12, 13, 15, 18]),
            &[7, 8, 9, 11, 14, 16, 17],
        );
        // Only count: the older goes; only days: nothing younger goes.
        check((1, 0, 0), &[(6, Failed, 0), (5, Failed, 2)], &[5]);
        check((0, 3, 0), &[(6, Failed, 0), (5, Failed, 2)], &[]);
        check((0, 1, 0), &[(6, Failed, 0), (5, Failed, 2)], &[5]);
    }
}
