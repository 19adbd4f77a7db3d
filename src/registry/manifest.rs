//! Manifests: images and indexes, parsed from the bytes a registry returned.
//!
//! We keep only what the janitor decides with: children, subject, annotations, and the
//! blobs with their sizes. Parsing never guesses: schema 1 and unknown media types are
//! reported as such, and a body that does not fit its media type is an error.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::media_type::MediaType;

/// The annotation the OCI image spec defines for an image's creation time.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// A pointer to content: a child manifest, a config, a layer or a referrer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// What a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// An image (or artifact): a config blob and layers.
    Image {
        /// Absent only for OCI artifact manifests, which have no config.
        config: Option<Descriptor>,
        layers: Vec<Descriptor>,
    },
    /// An index or manifest list: child manifests.
    Index { manifests: Vec<Descriptor> },
}

/// A parsed manifest, named by the digest of the exact bytes the registry served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: MediaType,
    /// Length of the manifest body in bytes.
    pub size: u64,
    pub body: Body,
    /// OCI 1.1: the manifest this one refers to (a signature, an SBOM...).
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// The exact bytes the registry served: what putting the manifest back needs (`restore`).
    pub bytes: Vec<u8>,
}

/// Why a manifest body could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Docker schema 1 manifests are not supported")]
    Schema1,
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("no media type in the response header or the body")]
    MissingMediaType,
    #[error("malformed {media_type} manifest: {reason}")]
    Malformed { media_type: String, reason: String },
}

/// The fields of every manifest shape we read; which ones must be present depends on the
/// media type, and is checked after deserializing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    schema_version: Option<u32>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    /// OCI artifact manifest (deprecated in OCI 1.1, still served by some registries).
    blobs: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parse `bytes` named by `digest`. `content_type` is the response's `Content-Type`; when
    /// it is missing or generic, the body's own `mediaType` decides.
    pub fn parse(
        digest: Digest,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<Manifest, ParseError> {
        let header_type = content_type.map(MediaType::parse).filter(
            |t| !matches!(t, MediaType::Other(s) if s == "application/json" || s.is_empty()),
        );
        if header_type == Some(MediaType::DockerSchema1) {
            return Err(ParseError::Schema1);
        }
        let malformed = |media_type: &str, reason: String| ParseError::Malformed {
            media_type: media_type.to_owned(),
            reason,
        };
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| {
            malformed(
                header_type
                    .as_ref()
                    .map(|t| t.as_str())
                    .unwrap_or("unknown"),
                e.to_string(),
            )
        })?;
        let body_type = wire.media_type.as_deref().map(MediaType::parse);
        let media_type = match (header_type, body_type) {
            (_, Some(MediaType::DockerSchema1)) => return Err(ParseError::Schema1),
            (Some(h), Some(b)) if h != b => {
                return Err(malformed(
                    h.as_str(),
                    format!("body says mediaType {b}, the response says {h}"),
                ))
            }
            (Some(h), _) => h,
            (None, Some(b)) => b,
            (None, None) if wire.schema_version == Some(1) => return Err(ParseError::Schema1),
            // An OCI manifest may omit mediaType; its shape still tells what it is.
            (None, None) if wire.manifests.is_some() => MediaType::OciIndex,
            (None, None) if wire.config.is_some() => MediaType::OciManifest,
            (None, None) => return Err(ParseError::MissingMediaType),
        };
        let need = |what: &str| malformed(media_type.as_str(), format!("missing `{what}`"));
        let body = match &media_type {
            MediaType::OciManifest | MediaType::DockerManifest => Body::Image {
                config: Some(wire.config.ok_or_else(|| need("config"))?),
                layers: wire.layers.ok_or_else(|| need("layers"))?,
            },
            MediaType::OciArtifactManifest => Body::Image {
                config: None,
                layers: wire.blobs.unwrap_or_default(),
            },
            MediaType::OciIndex | MediaType::DockerManifestList => Body::Index {
                manifests: wire.manifests.ok_or_else(|| need("manifests"))?,
            },
            MediaType::DockerSchema1 => return Err(ParseError::Schema1),
            MediaType::Other(other) => return Err(ParseError::UnsupportedMediaType(other.clone())),
        };
        Ok(Manifest {
            digest,
            media_type,
            size: bytes.len() as u64,
            body,
            subject: wire.subject,
            artifact_type: wire.artifact_type,
            annotations: wire.annotations,
            bytes: bytes.to_vec(),
        })
    }

    /// Child manifests of an index; empty for an image.
    pub fn children(&self) -> &[Descriptor] {
        match &self.body {
            Body::Index { manifests } => manifests,
            Body::Image { .. } => &[],
        }
    }

    /// The config and layer blobs of an image; empty for an index.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        let (config, layers): (Option<&Descriptor>, &[Descriptor]) = match &self.body {
            Body::Image { config, layers } => (config.as_ref(), layers),
            Body::Index { .. } => (None, &[]),
        };
        config.into_iter().chain(layers.iter())
    }

    pub fn config(&self) -> Option<&Descriptor> {
        match &self.body {
            Body::Image { config, .. } => config.as_ref(),
            Body::Index { .. } => None,
        }
    }

    /// The creation time the manifest itself states, from the OCI annotation.
    pub fn created_annotation(&self) -> Option<DateTime<Utc>> {
        parse_time(self.annotations.get(CREATED_ANNOTATION)?)
    }
}

/// The `created` field of an image config blob, if it has a usable one.
pub fn config_created(config_bytes: &[u8]) -> Option<DateTime<Utc>> {
    #[derive(Deserialize)]
    struct Config {
        created: Option<String>,
    }
    let config: Config = serde_json::from_slice(config_bytes).ok()?;
    parse_time(&config.created?)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::media_type::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn parse(ct: Option<&str>, body: &str) -> Result<Manifest, ParseError> {
        Manifest::parse(Digest::sha256_of(body.as_bytes()), ct, body.as_bytes())
    }

    #[test]
    fn parses_docker_schema2_image_with_layer_sizes() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":7}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":1000}}]}}"#,
            d(1),
            d(2)
        );
        let m = parse(Some(DOCKER_MANIFEST), &body).unwrap();
        assert_eq!(m.media_type, MediaType::DockerManifest);
        let sizes: Vec<u64> = m.blobs().map(|b| b.size).collect();
        assert_eq!(sizes, vec![7, 1000]);
        assert!(m.children().is_empty());
    }

    #[test]
    fn parses_oci_index_children_and_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}",
            "manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,
              "platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}],
            "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":3}},
            "annotations":{{"{CREATED_ANNOTATION}":"2024-01-02T03:04:05Z"}}}}"#,
            d(3),
            d(4)
        );
        let m = parse(None, &body).unwrap();
        assert_eq!(m.children().len(), 1);
        assert_eq!(
            m.children()[0].platform.as_ref().unwrap().architecture,
            "arm64"
        );
        assert_eq!(m.subject.as_ref().unwrap().digest.as_str(), d(4));
        assert_eq!(
            m.created_annotation().unwrap().to_rfc3339(),
            "2024-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn schema1_is_reported_not_guessed() {
        let body = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(parse(None, body), Err(ParseError::Schema1));
        assert_eq!(
            parse(Some(DOCKER_SCHEMA1_SIGNED), body),
            Err(ParseError::Schema1)
        );
    }

    #[test]
    fn unknown_media_type_is_reported() {
        let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#;
        assert_eq!(
            parse(None, body),
            Err(ParseError::UnsupportedMediaType(
                "application/vnd.example+json".into()
            ))
        );
    }

    #[test]
    fn non_json_and_wrong_shapes_are_malformed() {
        assert!(matches!(
            parse(Some(OCI_MANIFEST), "<html>"),
            Err(ParseError::Malformed { .. })
        ));
        let no_layers = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{}","size":1}}}}"#,
            d(1)
        );
        assert!(matches!(
            parse(None, &no_layers),
            Err(ParseError::Malformed { .. })
        ));
        let bad_digest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"x","digest":"sha256:nothex","size":1}}]}}"#
        );
        assert!(matches!(
            parse(None, &bad_digest),
            Err(ParseError::Malformed { .. })
        ));
    }

    #[test]
    fn header_and_body_types_must_agree() {
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(matches!(
            parse(Some(DOCKER_MANIFEST), &body),
            Err(ParseError::Malformed { .. })
        ));
        assert!(parse(Some(OCI_INDEX), &body).is_ok());
    }

    #[test]
    fn config_created_reads_rfc3339_and_ignores_garbage() {
        assert!(config_created(br#"{"created":"1970-01-01T00:00:00Z"}"#).is_some());
        assert!(config_created(br#"{"created":"yesterday"}"#).is_none());
        assert!(config_created(b"not json").is_none());
    }
}
