//! The resource types we ship images for, and the names their binaries and images carry.

/// One resource type: its pipeline name (`git`) and what its image is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// The name pipelines use (`type: git`).
    pub name: &'static str,
    /// One line for the image's `org.opencontainers.image.description` label.
    pub description: &'static str,
}

impl ResourceType {
    /// The multi-call binary's file name (`git-resource`), in the build and in the image.
    pub fn binary_name(&self) -> String {
        format!("{}-resource", self.name)
    }
}

/// Every resource type, in build order.
pub const ALL: &[ResourceType] = &[
    ResourceType {
        name: "git",
        description: "Concourse git resource: check, in and out over libgit2",
    },
    ResourceType {
        name: "registry-image",
        description: "Concourse registry-image resource: OCI images from and to registries",
    },
    ResourceType {
        name: "registry-tag",
        description: "Concourse registry-tag resource: tracks tags of a registry repository",
    },
    ResourceType {
        name: "nix-cache",
        description: "Concourse nix-cache resource: Nix store paths from and to binary caches",
    },
    ResourceType {
        name: "time",
        description: "Concourse time resource: versions on an interval or inside a daily window",
    },
    ResourceType {
        name: "mock",
        description: "Concourse mock resource: versions and files without an outside world",
    },
];

/// The type called `name`, if we ship it.
pub fn by_name(name: &str) -> Option<ResourceType> {
    ALL.iter().copied().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        assert_eq!(by_name("git").unwrap().binary_name(), "git-resource");
        assert_eq!(
            by_name("registry-image").unwrap().binary_name(),
            "registry-image-resource"
        );
        assert!(by_name("s3").is_none());
    }
}
