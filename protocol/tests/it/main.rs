//! Integration tests of `resource-protocol`, including the repository rules of the workspace.

mod repo_rules;
