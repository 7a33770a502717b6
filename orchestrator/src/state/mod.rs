//! The run state in SQLite: resource versions in check order, builds with their inputs,
//! outputs, status and log, pins and task caches.
//!
//! The database is opened in WAL mode and migrated forward on open; every change is one
//! transaction, so a crash leaves it consistent. Opening also recovers from a crash: builds still
//! `pending` or `started` belong to a process that is gone and become `errored` ("interrupted").
//! This module stores and answers; it never decides what to run (that is `schedule`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use resource_protocol::Version;
use rusqlite::{Connection, OptionalExtension, params};

/// A version's row id.
pub type VersionId = i64;
/// A build's row id.
pub type BuildId = i64;
/// Version ids per resource name.
pub type VersionsByResource = BTreeMap<String, BTreeSet<VersionId>>;

/// A failure reading or writing the state database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite failed.
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored JSON value did not parse.
    #[error("state database: corrupt {what}: {source}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// The database is newer than this program.
    #[error("state database: schema version {0} is newer than this tributary understands")]
    TooNew(i64),
}

type Result<T> = std::result::Result<T, StateError>;

/// A build's status, ordered by severity for the status of a whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuildStatus {
    /// Created, not yet running.
    Pending,
    /// Running.
    Started,
    /// Finished successfully.
    Succeeded,
    /// A step failed.
    Failed,
    /// Something went wrong that is not a step's failure.
    Errored,
    /// Cancelled.
    Aborted,
}

impl BuildStatus {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Pending => "pending",
            BuildStatus::Started => "started",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Errored => "errored",
            BuildStatus::Aborted => "aborted",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => BuildStatus::Pending,
            "started" => BuildStatus::Started,
            "succeeded" => BuildStatus::Succeeded,
            "failed" => BuildStatus::Failed,
            "errored" => BuildStatus::Errored,
            "aborted" => BuildStatus::Aborted,
            _ => return None,
        })
    }

    /// Whether the build has finished.
    pub fn is_finished(self) -> bool {
        !matches!(self, BuildStatus::Pending | BuildStatus::Started)
    }
}

/// A stored version of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    /// Its row id.
    pub id: VersionId,
    /// The version.
    pub version: Version,
    /// Its position; larger is newer.
    pub check_order: i64,
    /// Metadata from the last `in`/`out` that reported it, as JSON.
    pub metadata: serde_json::Value,
}

/// One input or output of a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildVersion {
    /// The get/put step name.
    pub name: String,
    /// The resource.
    pub resource: String,
    /// The version's row id.
    pub version_id: VersionId,
}

/// A build row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// Its row id.
    pub id: BuildId,
    /// The job.
    pub job: String,
    /// Its number within the job (1, 2, …).
    pub name: i64,
    /// Its status.
    pub status: BuildStatus,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When it started running.
    pub started_at: Option<i64>,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// Why it errored, when it did.
    pub error: Option<String>,
}

/// One log line of a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// The step that wrote it (empty for the build itself).
    pub step: String,
    /// `stdout`, `stderr` or `event`.
    pub stream: String,
    /// The text, already redacted.
    pub text: String,
}

/// The migrations, applied in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE resource_versions (
    id INTEGER PRIMARY KEY,
    resource TEXT NOT NULL,
    version TEXT NOT NULL,
    check_order INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '[]',
    UNIQUE (resource, version)
);
CREATE INDEX resource_versions_order ON resource_versions (resource, check_order);
CREATE TABLE builds (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    name INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    error TEXT,
    UNIQUE (job, name)
);
CREATE TABLE build_inputs (
    build_id INTEGER NOT NULL REFERENCES builds (id),
    name TEXT NOT NULL,
    resource TEXT NOT NULL,
    version_id INTEGER NOT NULL REFERENCES resource_versions (id),
    PRIMARY KEY (build_id, name)
);
CREATE TABLE build_outputs (
    build_id INTEGER NOT NULL REFERENCES builds (id),
    name TEXT NOT NULL,
    resource TEXT NOT NULL,
    version_id INTEGER NOT NULL REFERENCES resource_versions (id),
    PRIMARY KEY (build_id, name, version_id)
);
CREATE TABLE build_logs (
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL REFERENCES builds (id),
    time_ms INTEGER NOT NULL,
    step TEXT NOT NULL,
    stream TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX build_logs_build ON build_logs (build_id, id);
CREATE TABLE pins (
    resource TEXT PRIMARY KEY,
    version_id INTEGER NOT NULL REFERENCES resource_versions (id),
    comment TEXT NOT NULL DEFAULT ''
);
CREATE TABLE task_caches (
    job TEXT NOT NULL,
    step TEXT NOT NULL,
    path TEXT NOT NULL,
    dir TEXT NOT NULL,
    PRIMARY KEY (job, step, path)
);
"#,
    r#"
CREATE TABLE resource_configs (
    resource TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE builds ADD COLUMN logs_reaped_at INTEGER;
"#,
];

/// The open state database.
#[derive(Debug)]
pub struct State {
    conn: Connection,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn version_key(version: &Version) -> String {
    // A BTreeMap serialises with sorted keys: equal versions give equal text.
    serde_json::to_string(version).unwrap_or_default()
}

fn parse_version(text: &str) -> Result<Version> {
    serde_json::from_str(text).map_err(|source| StateError::Corrupt {
        what: "version",
        source,
    })
}

impl State {
    /// Opens (creating and migrating) the database at `path`, then recovers interrupted builds.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// Opens an existing database read-only (`builds`, `logs`, `versions`): no migration and no
    /// recovery, so reading while a run is in progress changes nothing.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current > MIGRATIONS.len() as i64 {
            return Err(StateError::TooNew(current));
        }
        Ok(State { conn })
    }

    /// An in-memory database (tests, `execute`).
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut state = State { conn };
        state.migrate()?;
        state.recover_interrupted()?;
        Ok(state)
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StateError::TooNew(current));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Marks builds left `pending`/`started` by a dead process as errored; returns their ids.
    pub fn recover_interrupted(&mut self) -> Result<Vec<BuildId>> {
        let tx = self.conn.transaction()?;
        let ids: Vec<BuildId> = {
            let mut stmt =
                tx.prepare("SELECT id FROM builds WHERE status IN ('pending', 'started')")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?
        };
        let now = now_ms();
        for id in &ids {
            tx.execute(
                "UPDATE builds SET status = 'errored', error = 'interrupted', finished_at = ?2 \
                 WHERE id = ?1",
                params![id, now / 1000],
            )?;
            tx.execute(
                "INSERT INTO build_logs (build_id, time_ms, step, stream, text) \
                 VALUES (?1, ?2, '', 'event', 'build interrupted: tributary stopped while it ran')",
                params![id, now],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    // ---- versions ----

    /// Saves the versions a check returned, oldest first. When at least one is new, all the
    /// returned versions are re-ordered in output order after every known one (last = newest);
    /// when none is new nothing changes. Returns the ids in the given order.
    pub fn save_checked_versions(
        &mut self,
        resource: &str,
        versions: &[Version],
    ) -> Result<Vec<VersionId>> {
        let tx = self.conn.transaction()?;
        let mut any_new = false;
        let mut ids = Vec::with_capacity(versions.len());
        for version in versions {
            let key = version_key(version);
            let existing: Option<VersionId> = tx
                .query_row(
                    "SELECT id FROM resource_versions WHERE resource = ?1 AND version = ?2",
                    params![resource, key],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match existing {
                Some(id) => id,
                None => {
                    any_new = true;
                    tx.execute(
                        "INSERT INTO resource_versions (resource, version, check_order) \
                         VALUES (?1, ?2, 0)",
                        params![resource, key],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            ids.push(id);
        }
        if any_new {
            let mut next = max_order(&tx, resource)? + 1;
            let mut seen = BTreeSet::new();
            for id in &ids {
                if seen.insert(*id) {
                    tx.execute(
                        "UPDATE resource_versions SET check_order = ?2 WHERE id = ?1",
                        params![id, next],
                    )?;
                    next += 1;
                }
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Saves the version a put reported; it becomes the newest.
    pub fn save_put_version(
        &mut self,
        resource: &str,
        version: &Version,
        metadata: &serde_json::Value,
    ) -> Result<VersionId> {
        let tx = self.conn.transaction()?;
        let next = max_order(&tx, resource)? + 1;
        let key = version_key(version);
        tx.execute(
            "INSERT INTO resource_versions (resource, version, check_order, metadata) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (resource, version) DO UPDATE SET check_order = ?3, metadata = ?4",
            params![resource, key, next, metadata.to_string()],
        )?;
        let id = tx.query_row(
            "SELECT id FROM resource_versions WHERE resource = ?1 AND version = ?2",
            params![resource, key],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Records a version's metadata (from `in`).
    pub fn set_version_metadata(&self, id: VersionId, metadata: &serde_json::Value) -> Result<()> {
        self.conn.execute(
            "UPDATE resource_versions SET metadata = ?2 WHERE id = ?1",
            params![id, metadata.to_string()],
        )?;
        Ok(())
    }

    /// A resource's versions, oldest first.
    pub fn versions(&self, resource: &str) -> Result<Vec<StoredVersion>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, version, check_order, metadata FROM resource_versions \
             WHERE resource = ?1 ORDER BY check_order, id",
        )?;
        let rows = stmt
            .query_map(params![resource], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, version, check_order, metadata)| {
                Ok(StoredVersion {
                    id,
                    version: parse_version(&version)?,
                    check_order,
                    metadata: serde_json::from_str(&metadata).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The newest version of a resource.
    pub fn newest_version(&self, resource: &str) -> Result<Option<StoredVersion>> {
        Ok(self.versions(resource)?.pop())
    }

    /// One version by id.
    pub fn version(&self, id: VersionId) -> Result<Option<(String, Version)>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT resource, version FROM resource_versions WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(resource, v)| Ok((resource, parse_version(&v)?)))
            .transpose()
    }

    /// The id of a stored version of `resource`.
    pub fn version_id(&self, resource: &str, version: &Version) -> Result<Option<VersionId>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM resource_versions WHERE resource = ?1 AND version = ?2",
                params![resource, version_key(version)],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records a resource's configuration (a hash of its type and source). When it changed,
    /// the old versions belong to the old configuration, as in Concourse: they are archived
    /// under `NAME@OLDHASH` (builds keep pointing at them) and the pin is dropped. Returns
    /// whether an earlier, different configuration was replaced.
    pub fn set_resource_config(&mut self, resource: &str, config_hash: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let old: Option<String> = tx
            .query_row(
                "SELECT config_hash FROM resource_configs WHERE resource = ?1",
                params![resource],
                |r| r.get(0),
            )
            .optional()?;
        let changed = old.as_deref().is_some_and(|old| old != config_hash);
        if let Some(old) = old.as_deref().filter(|_| changed) {
            tx.execute(
                "UPDATE resource_versions SET resource = ?2 WHERE resource = ?1",
                params![resource, format!("{resource}@{old}")],
            )?;
            tx.execute("DELETE FROM pins WHERE resource = ?1", params![resource])?;
        }
        tx.execute(
            "INSERT INTO resource_configs (resource, config_hash) VALUES (?1, ?2) \
             ON CONFLICT (resource) DO UPDATE SET config_hash = ?2",
            params![resource, config_hash],
        )?;
        tx.commit()?;
        Ok(changed)
    }

    // ---- pins ----

    /// Pins a resource to a version.
    pub fn pin(&self, resource: &str, version_id: VersionId, comment: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO pins (resource, version_id, comment) VALUES (?1, ?2, ?3) \
             ON CONFLICT (resource) DO UPDATE SET version_id = ?2, comment = ?3",
            params![resource, version_id, comment],
        )?;
        Ok(())
    }

    /// Removes a resource's pin.
    pub fn unpin(&self, resource: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM pins WHERE resource = ?1", params![resource])?;
        Ok(())
    }

    /// The version a resource is pinned to.
    pub fn pinned(&self, resource: &str) -> Result<Option<VersionId>> {
        Ok(self
            .conn
            .query_row(
                "SELECT version_id FROM pins WHERE resource = ?1",
                params![resource],
                |r| r.get(0),
            )
            .optional()?)
    }

    // ---- builds ----

    /// Creates a pending build of `job` with its inputs; numbers it after the job's last build.
    pub fn create_build(&mut self, job: &str, inputs: &[BuildVersion]) -> Result<Build> {
        let tx = self.conn.transaction()?;
        let name: i64 = tx.query_row(
            "SELECT COALESCE(MAX(name), 0) + 1 FROM builds WHERE job = ?1",
            params![job],
            |r| r.get(0),
        )?;
        let created_at = now_ms() / 1000;
        tx.execute(
            "INSERT INTO builds (job, name, status, created_at) VALUES (?1, ?2, 'pending', ?3)",
            params![job, name, created_at],
        )?;
        let id = tx.last_insert_rowid();
        for input in inputs {
            tx.execute(
                "INSERT OR REPLACE INTO build_inputs (build_id, name, resource, version_id) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, input.name, input.resource, input.version_id],
            )?;
        }
        tx.commit()?;
        Ok(Build {
            id,
            job: job.to_owned(),
            name,
            status: BuildStatus::Pending,
            created_at,
            started_at: None,
            finished_at: None,
            error: None,
        })
    }

    /// Adds an input found while the build runs (a get without a scheduled version).
    pub fn add_input(&self, build: BuildId, input: &BuildVersion) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO build_inputs (build_id, name, resource, version_id) \
             VALUES (?1, ?2, ?3, ?4)",
            params![build, input.name, input.resource, input.version_id],
        )?;
        Ok(())
    }

    /// Marks a build started.
    pub fn start_build(&self, id: BuildId) -> Result<()> {
        self.conn.execute(
            "UPDATE builds SET status = 'started', started_at = ?2 WHERE id = ?1",
            params![id, now_ms() / 1000],
        )?;
        Ok(())
    }

    /// Records a build's final status (and error message).
    pub fn finish_build(
        &self,
        id: BuildId,
        status: BuildStatus,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE builds SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, status.as_str(), error, now_ms() / 1000],
        )?;
        Ok(())
    }

    /// Records an output (a put's version) of a build.
    pub fn add_output(&self, build: BuildId, output: &BuildVersion) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO build_outputs (build_id, name, resource, version_id) \
             VALUES (?1, ?2, ?3, ?4)",
            params![build, output.name, output.resource, output.version_id],
        )?;
        Ok(())
    }

    /// Appends log lines to a build.
    pub fn append_log(&mut self, build: BuildId, lines: &[LogLine]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO build_logs (build_id, time_ms, step, stream, text) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for line in lines {
                stmt.execute(params![
                    build,
                    line.time_ms,
                    line.step,
                    line.stream,
                    line.text
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A build's log.
    pub fn log(&self, build: BuildId) -> Result<Vec<LogLine>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT time_ms, step, stream, text FROM build_logs WHERE build_id = ?1 ORDER BY id",
        )?;
        let lines = stmt
            .query_map(params![build], |r| {
                Ok(LogLine {
                    time_ms: r.get(0)?,
                    step: r.get(1)?,
                    stream: r.get(2)?,
                    text: r.get(3)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(lines)
    }

    /// The builds of `job` whose logs are still there, newest first (for `build_log_retention`).
    pub fn logged_builds(&self, job: &str) -> Result<Vec<crate::schedule::retention::LoggedBuild>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, status, finished_at FROM builds \
             WHERE job = ?1 AND logs_reaped_at IS NULL ORDER BY id DESC",
        )?;
        let builds = stmt
            .query_map(params![job], |r| {
                let status: String = r.get(1)?;
                Ok(crate::schedule::retention::LoggedBuild {
                    id: r.get(0)?,
                    status: BuildStatus::parse(&status).unwrap_or(BuildStatus::Errored),
                    finished_at: r.get(2)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(builds)
    }

    /// Deletes the logs of `builds` (their rows, statuses, inputs and outputs stay) and
    /// remembers when, so `logs` can say why a log is gone.
    pub fn reap_logs(&mut self, builds: &[BuildId]) -> Result<()> {
        let tx = self.conn.transaction()?;
        let now = now_ms() / 1000;
        for id in builds {
            tx.execute("DELETE FROM build_logs WHERE build_id = ?1", params![id])?;
            tx.execute(
                "UPDATE builds SET logs_reaped_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// When a build's log was removed by `build_log_retention` (Unix seconds), if it was.
    pub fn logs_reaped_at(&self, build: BuildId) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT logs_reaped_at FROM builds WHERE id = ?1",
                params![build],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    fn build_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Build> {
        let status: String = r.get(3)?;
        Ok(Build {
            id: r.get(0)?,
            job: r.get(1)?,
            name: r.get(2)?,
            status: BuildStatus::parse(&status).unwrap_or(BuildStatus::Errored),
            created_at: r.get(4)?,
            started_at: r.get(5)?,
            finished_at: r.get(6)?,
            error: r.get(7)?,
        })
    }

    /// Builds, newest first; only `job`'s when given.
    pub fn builds(&self, job: Option<&str>) -> Result<Vec<Build>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, job, name, status, created_at, started_at, finished_at, error FROM builds \
             WHERE ?1 IS NULL OR job = ?1 ORDER BY id DESC",
        )?;
        let builds = stmt
            .query_map(params![job], Self::build_from_row)?
            .collect::<std::result::Result<_, _>>()?;
        Ok(builds)
    }

    /// One build by id.
    pub fn build(&self, id: BuildId) -> Result<Option<Build>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, job, name, status, created_at, started_at, finished_at, error \
                 FROM builds WHERE id = ?1",
                params![id],
                Self::build_from_row,
            )
            .optional()?)
    }

    /// One build by job and number.
    pub fn build_by_name(&self, job: &str, name: i64) -> Result<Option<Build>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, job, name, status, created_at, started_at, finished_at, error \
                 FROM builds WHERE job = ?1 AND name = ?2",
                params![job, name],
                Self::build_from_row,
            )
            .optional()?)
    }

    fn build_versions(&self, table: &str, build: BuildId) -> Result<Vec<BuildVersion>> {
        let sql = format!(
            "SELECT name, resource, version_id FROM {table} WHERE build_id = ?1 ORDER BY name"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![build], |r| {
                Ok(BuildVersion {
                    name: r.get(0)?,
                    resource: r.get(1)?,
                    version_id: r.get(2)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// A build's inputs.
    pub fn build_inputs(&self, build: BuildId) -> Result<Vec<BuildVersion>> {
        self.build_versions("build_inputs", build)
    }

    /// A build's outputs.
    pub fn build_outputs(&self, build: BuildId) -> Result<Vec<BuildVersion>> {
        self.build_versions("build_outputs", build)
    }

    /// Per input name, every version id any build of `job` used for it.
    pub fn job_input_history(&self, job: &str) -> Result<BTreeMap<String, BTreeSet<VersionId>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.name, i.version_id FROM build_inputs i JOIN builds b ON b.id = i.build_id \
             WHERE b.job = ?1",
        )?;
        let mut out: BTreeMap<String, BTreeSet<VersionId>> = BTreeMap::new();
        let rows = stmt.query_map(params![job], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, VersionId>(1)?))
        })?;
        for row in rows {
            let (name, id) = row?;
            out.entry(name).or_default().insert(id);
        }
        Ok(out)
    }

    /// The successful builds of `job`, newest first, each with the versions it had per resource
    /// (inputs and outputs both count).
    pub fn successful_builds(&self, job: &str) -> Result<Vec<(BuildId, VersionsByResource)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.id, v.resource, v.version_id FROM builds b \
             JOIN (SELECT build_id, resource, version_id FROM build_inputs \
                   UNION SELECT build_id, resource, version_id FROM build_outputs) v \
               ON v.build_id = b.id \
             WHERE b.job = ?1 AND b.status = 'succeeded' ORDER BY b.id DESC",
        )?;
        let mut out: Vec<(BuildId, VersionsByResource)> = Vec::new();
        let rows = stmt.query_map(params![job], |r| {
            Ok((
                r.get::<_, BuildId>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, VersionId>(2)?,
            ))
        })?;
        for row in rows {
            let (id, resource, version) = row?;
            if out.last().map(|(last, _)| *last) != Some(id) {
                out.push((id, BTreeMap::new()));
            }
            if let Some((_, map)) = out.last_mut() {
                map.entry(resource).or_default().insert(version);
            }
        }
        Ok(out)
    }

    /// Builds of `job` that have not finished.
    pub fn running_builds(&self, job: &str) -> Result<Vec<Build>> {
        Ok(self
            .builds(Some(job))?
            .into_iter()
            .filter(|b| !b.status.is_finished())
            .collect())
    }

    // ---- task caches ----

    /// The directory that holds a task cache, recording `dir` for it the first time.
    pub fn task_cache(&self, job: &str, step: &str, path: &str, dir: &str) -> Result<String> {
        self.conn.execute(
            "INSERT OR IGNORE INTO task_caches (job, step, path, dir) VALUES (?1, ?2, ?3, ?4)",
            params![job, step, path, dir],
        )?;
        Ok(self.conn.query_row(
            "SELECT dir FROM task_caches WHERE job = ?1 AND step = ?2 AND path = ?3",
            params![job, step, path],
            |r| r.get(0),
        )?)
    }
}

fn max_order(tx: &rusqlite::Transaction<'_>, resource: &str) -> Result<i64> {
    Ok(tx.query_row(
        "SELECT COALESCE(MAX(check_order), 0) FROM resource_versions WHERE resource = ?1",
        params![resource],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests;
