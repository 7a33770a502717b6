//! The build metadata Concourse passes to `in` and `out` as environment variables.
//!
//! Every variable a resource reads from its environment is declared here, once, with what it
//! means. `check` and tasks do not receive these.

/// `BUILD_*` and `ATC_EXTERNAL_URL`, as present in the environment of `in`/`out`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildEnv {
    /// `BUILD_ID`: the build's internal id.
    pub build_id: Option<String>,
    /// `BUILD_NAME`: the build's number within its job, e.g. `42`.
    pub build_name: Option<String>,
    /// `BUILD_JOB_NAME`: the job's name.
    pub build_job_name: Option<String>,
    /// `BUILD_PIPELINE_NAME`: the pipeline's name.
    pub build_pipeline_name: Option<String>,
    /// `BUILD_TEAM_NAME`: the team's name.
    pub build_team_name: Option<String>,
    /// `ATC_EXTERNAL_URL`: the web URL of the CI server, when known.
    pub atc_external_url: Option<String>,
}

/// The names of the variables, in the order [`BuildEnv::to_pairs`] yields them.
pub const BUILD_ENV_VARS: [&str; 6] = [
    "BUILD_ID",
    "BUILD_NAME",
    "BUILD_JOB_NAME",
    "BUILD_PIPELINE_NAME",
    "BUILD_TEAM_NAME",
    "ATC_EXTERNAL_URL",
];

impl BuildEnv {
    /// Reads the variables from this process's environment; empty values count as absent.
    pub fn from_env() -> Self {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            build_id: read("BUILD_ID"),
            build_name: read("BUILD_NAME"),
            build_job_name: read("BUILD_JOB_NAME"),
            build_pipeline_name: read("BUILD_PIPELINE_NAME"),
            build_team_name: read("BUILD_TEAM_NAME"),
            atc_external_url: read("ATC_EXTERNAL_URL"),
        }
    }

    /// The variables that are set, as `(NAME, value)` pairs for a child's environment.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let values = [
            &self.build_id,
            &self.build_name,
            &self.build_job_name,
            &self.build_pipeline_name,
            &self.build_team_name,
            &self.atc_external_url,
        ];
        BUILD_ENV_VARS
            .iter()
            .zip(values)
            .filter_map(|(name, value)| value.clone().map(|v| (*name, v)))
            .collect()
    }
}
