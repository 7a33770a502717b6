//! The git resource's `source` and `params`, field for field as in `shared/spec/git.md`.

use resource_protocol::{InvalidRequest, Secret, lenient};
use serde::Deserialize;

/// `source` of a git resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Repository URL: https, http, ssh, scp-style, git, file or a local path.
    pub uri: String,
    /// Branch to track; default is the remote HEAD.
    #[serde(default)]
    pub branch: Option<String>,
    /// SSH private key (PEM/OpenSSH).
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// User name for SSH, when the URI has none.
    #[serde(default)]
    pub private_key_user: Option<String>,
    /// Passphrase of `private_key`.
    #[serde(default)]
    pub private_key_passphrase: Option<Secret>,
    /// Forward the SSH agent (accepted; our SSH transport has no agent to forward).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub forward_agent: Option<bool>,
    /// HTTP(S) user name.
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP(S) password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Credentials for submodules.
    #[serde(default)]
    pub submodule_credentials: Vec<SubmoduleCredential>,
    /// Only commits touching these globs count.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Commits touching only these globs do not count.
    #[serde(default)]
    pub ignore_paths: Vec<String>,
    /// `in` checks out only these paths.
    #[serde(default)]
    pub sparse_paths: Vec<String>,
    /// Do not verify TLS certificates.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub skip_ssl_verification: Option<bool>,
    /// Tag mode: tags matching this glob.
    #[serde(default)]
    pub tag_filter: Option<String>,
    /// Tag mode: tags matching this regex (whole tag).
    #[serde(default)]
    pub tag_regex: Option<String>,
    /// `match_tagged` (default) or `match_tag_ancestors`.
    #[serde(default)]
    pub tag_behaviour: Option<String>,
    /// Default for `params.fetch_tags`.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub fetch_tags: Option<bool>,
    /// Extra git configuration.
    #[serde(default)]
    pub git_config: Vec<GitConfigEntry>,
    /// Do not skip `[ci skip]`/`[skip ci]` commits.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub disable_ci_skip: Option<bool>,
    /// Filters on commit messages.
    #[serde(default)]
    pub commit_filter: Option<CommitFilter>,
    /// GPG public keys accepted for commit signatures.
    #[serde(default)]
    pub commit_verification_keys: Vec<String>,
    /// GPG key ids accepted for commit signatures (fetched from `gpg_keyserver`).
    #[serde(default)]
    pub commit_verification_key_ids: Vec<String>,
    /// Keyserver for `commit_verification_key_ids`.
    #[serde(default)]
    pub gpg_keyserver: Option<String>,
    /// Base64 git-crypt key.
    #[serde(default)]
    pub git_crypt_key: Option<Secret>,
    /// Tunnel SSH through an HTTP proxy.
    #[serde(default)]
    pub https_tunnel: Option<HttpsTunnel>,
    /// Versions emitted without a cursor (default 1, > 0).
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub version_depth: Option<u64>,
    /// `in` may fetch refs that are not on the tracked branch.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub search_remote_refs: Option<bool>,
    /// Verbose logs.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub debug: Option<bool>,
    /// The configured `uri` when `uri` was rewritten to go through an `https_tunnel` (not part
    /// of the request).
    #[serde(skip)]
    pub original_uri: Option<String>,
}

impl Source {
    /// Checks rules that span fields; each error names the field.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        if self.uri.trim().is_empty() {
            return Err(InvalidRequest::new("source.uri: must not be empty"));
        }
        if self.tag_filter.is_some() && self.tag_regex.is_some() {
            return Err(InvalidRequest::new(
                "source.tag_filter and source.tag_regex: set at most one of them",
            ));
        }
        if self.version_depth == Some(0) {
            return Err(InvalidRequest::new(
                "source.version_depth: must be greater than 0",
            ));
        }
        if let Some(behaviour) = &self.tag_behaviour
            && !matches!(behaviour.as_str(), "match_tagged" | "match_tag_ancestors")
        {
            {
                return Err(InvalidRequest::new(format!(
                    "source.tag_behaviour: {behaviour:?} is not one of match_tagged, match_tag_ancestors"
                )));
            }
        }
        Ok(())
    }
}

/// One `submodule_credentials` entry (http form or ssh form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmoduleCredential {
    /// Host of an http submodule.
    #[serde(default)]
    pub host: Option<String>,
    /// User name for `host`.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `host`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// URL of an ssh submodule.
    #[serde(default)]
    pub url: Option<String>,
    /// Private key for `url`.
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// Passphrase of `private_key`.
    #[serde(default)]
    pub private_key_passphrase: Option<Secret>,
}

/// One `git_config` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfigEntry {
    /// Key, e.g. `core.bigFileThreshold`.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `commit_filter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitFilter {
    /// Keep commits whose message matches any (or all) of these.
    #[serde(default)]
    pub include: Vec<String>,
    /// Require all `include` patterns to match.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub include_all_match: Option<bool>,
    /// Drop commits whose message matches any (or all) of these.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Require all `exclude` patterns to match.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub exclude_all_match: Option<bool>,
}

/// `https_tunnel`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsTunnel {
    /// Proxy host.
    pub proxy_host: String,
    /// Proxy port.
    #[serde(deserialize_with = "lenient::u64")]
    pub proxy_port: u64,
    /// Proxy user.
    #[serde(default)]
    pub proxy_user: Option<String>,
    /// Proxy password.
    #[serde(default)]
    pub proxy_password: Option<Secret>,
}

/// `params` of a get step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Shallow clone depth (0 = full).
    #[serde(default, deserialize_with = "lenient::option_u64")]
    pub depth: Option<u64>,
    /// Extra branches to fetch.
    #[serde(default)]
    pub fetch: Vec<String>,
    /// Fetch all tags.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub fetch_tags: Option<bool>,
    /// `all` (default), `none`, or a list of submodule paths.
    #[serde(default)]
    pub submodules: Option<serde_json::Value>,
    /// Update submodules recursively (default true).
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub submodule_recursive: Option<bool>,
    /// Check out submodules at their remote branch tip.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub submodule_remote: Option<bool>,
    /// Do not fetch LFS objects.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub disable_git_lfs: Option<bool>,
    /// Delete all tags after cloning.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub clean_tags: Option<bool>,
    /// Format of `.git/short_ref` (default `%s`).
    #[serde(default)]
    pub short_ref_format: Option<String>,
    /// Format of `.git/commit_timestamp` (default iso8601).
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// Options of `git describe` for `.git/describe_ref`.
    #[serde(default)]
    pub describe_ref_options: Option<String>,
    /// Fetch all branches.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub all_branches: Option<bool>,
}

/// `params` of a put step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// Directory in SRC holding the repository to push (required).
    #[serde(default)]
    pub repository: Option<String>,
    /// Rebase on the remote branch and retry while the push is rejected.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub rebase: Option<bool>,
    /// Rebase strategy.
    #[serde(default)]
    pub rebase_strategy: Option<String>,
    /// Rebase strategy options (`-X`): one string (space-separated) or a list.
    #[serde(default)]
    pub rebase_strategy_option: Option<StringOrList>,
    /// Merge with the remote branch and retry while the push is rejected.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub merge: Option<bool>,
    /// `merged` (default) or `unmerged`.
    #[serde(default)]
    pub returning: Option<String>,
    /// File holding a tag name to create.
    #[serde(default)]
    pub tag: Option<String>,
    /// Prefix of the tag.
    #[serde(default)]
    pub tag_prefix: Option<String>,
    /// File holding the annotation: the tag becomes annotated.
    #[serde(default)]
    pub annotate: Option<String>,
    /// Push only the tag.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub only_tag: Option<bool>,
    /// Force push.
    #[serde(default, deserialize_with = "lenient::option_bool")]
    pub force: Option<bool>,
    /// File holding git notes for the pushed commit.
    #[serde(default)]
    pub notes: Option<String>,
    /// Branch to push to, overriding `source.branch`.
    #[serde(default)]
    pub branch: Option<String>,
    /// Ref prefix (default `refs/heads`).
    #[serde(default)]
    pub refs_prefix: Option<String>,
    /// Push options (`git push -o`).
    #[serde(default)]
    pub push_options: Vec<String>,
}

/// Writes `source.git_config` into `repo`'s own configuration (`.git/config` or the cache's
/// `config`), so libgit2 honours it for this repository and later git commands see it.
pub fn apply_git_config(repo: &git2::Repository, source: &Source) -> Result<(), InvalidRequest> {
    if source.git_config.is_empty() {
        return Ok(());
    }
    let mut config = repo
        .config()
        .map_err(|err| InvalidRequest::new(format!("source.git_config: {}", err.message())))?;
    for (i, entry) in source.git_config.iter().enumerate() {
        config.set_str(&entry.name, &entry.value).map_err(|err| {
            InvalidRequest::new(format!(
                "source.git_config[{i}]: cannot set {:?}: {}",
                entry.name,
                err.message()
            ))
        })?;
    }
    Ok(())
}

/// A field that takes one string (space-separated words) or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// `"ours ignore-space-change"`.
    String(String),
    /// `["ours", "ignore-space-change"]`.
    List(Vec<String>),
}

impl StringOrList {
    /// The words.
    pub fn words(&self) -> Vec<String> {
        match self {
            Self::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            Self::List(items) => items
                .iter()
                .map(|i| i.trim().to_owned())
                .filter(|i| !i.is_empty())
                .collect(),
        }
    }
}
