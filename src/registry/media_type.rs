//! The media types a registry can answer with, and the `Accept` list we always send.

use std::fmt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest type we understand. Registries answer 404 for an OCI manifest when the
/// request does not accept it, so this whole list goes out on every manifest request.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.artifact.manifest.v1+json";

/// The kind of a manifest, from its media type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaType {
    OciManifest,
    OciIndex,
    OciArtifactManifest,
    DockerManifest,
    DockerManifestList,
    /// Docker schema 1: deprecated, content-addressed differently; reported, never parsed.
    DockerSchema1,
    Other(String),
}

impl MediaType {
    pub fn parse(s: &str) -> MediaType {
        // Drop parameters such as `; charset=utf-8`.
        let s = s.split(';').next().unwrap_or("").trim();
        match s {
            OCI_MANIFEST => MediaType::OciManifest,
            OCI_INDEX => MediaType::OciIndex,
            OCI_ARTIFACT_MANIFEST => MediaType::OciArtifactManifest,
            DOCKER_MANIFEST => MediaType::DockerManifest,
            DOCKER_MANIFEST_LIST => MediaType::DockerManifestList,
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => MediaType::DockerSchema1,
            other => MediaType::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MediaType::OciManifest => OCI_MANIFEST,
            MediaType::OciIndex => OCI_INDEX,
            MediaType::OciArtifactManifest => OCI_ARTIFACT_MANIFEST,
            MediaType::DockerManifest => DOCKER_MANIFEST,
            MediaType::DockerManifestList => DOCKER_MANIFEST_LIST,
            MediaType::DockerSchema1 => DOCKER_SCHEMA1,
            MediaType::Other(s) => s,
        }
    }

    /// An index or manifest list: a manifest whose children are manifests.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_do_not_change_the_type() {
        assert_eq!(
            MediaType::parse("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            MediaType::OciIndex
        );
    }

    #[test]
    fn accept_list_names_every_parsed_manifest_type() {
        for t in [
            MediaType::OciManifest,
            MediaType::OciIndex,
            MediaType::OciArtifactManifest,
            MediaType::DockerManifest,
            MediaType::DockerManifestList,
        ] {
            assert!(MANIFEST_ACCEPT.contains(t.as_str()), "{t} missing");
        }
    }
}
