//! Image references and the list format: docker's host rule, pure parsing.

use crate::registry::name::{check_repository, check_tag};
use crate::registry::Digest;

/// One image reference, as a provider wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry it names, if it names one (`None`: the swept registry).
    pub host: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a provider's list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InUseError {
    #[error("{provider}: cannot be read: {reason}")]
    Read { provider: String, reason: String },
    #[error("{provider}: entry {entry} ({text:?}) is not an image reference: {reason}")]
    Entry {
        provider: String,
        entry: usize,
        text: String,
        reason: String,
    },
    #[error("{provider}: not a JSON array of strings: {reason}")]
    Json { provider: String, reason: String },
}

/// Parse one reference (`[host/]repository[:tag][@digest]`), docker's way.
pub fn parse_reference(text: &str) -> Result<ImageRef, String> {
    let text = text.trim();
    let text = text.strip_prefix("docker-pullable://").unwrap_or(text);
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let (name, digest) = match text.split_once('@') {
        Some((name, digest)) => (
            name,
            Some(
                digest
                    .parse::<Digest>()
                    .map_err(|e| format!("digest {digest:?}: {e}"))?,
            ),
        ),
        None => (text, None),
    };
    let (host, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_ascii_lowercase()), rest)
        }
        _ => (None, name),
    };
    // A tag follows the last `:` after the last `/`.
    let last = path.rsplit('/').next().unwrap_or(path);
    let (repository, tag) = match last.rsplit_once(':') {
        Some((_, tag)) => (&path[..path.len() - tag.len() - 1], Some(tag.to_owned())),
        None => (path, None),
    };
    check_repository(repository).map_err(|e| e.to_string())?;
    if let Some(t) = &tag {
        check_tag(t).map_err(|e| e.to_string())?;
    }
    let tag = match (&tag, &digest) {
        (None, None) => Some("latest".to_owned()),
        _ => tag,
    };
    Ok(ImageRef {
        host,
        repository: repository.to_owned(),
        tag,
        digest,
    })
}

/// The references of a list (see the module for the format); `provider` names it in errors.
pub fn parse_list(provider: &str, text: &str) -> Result<Vec<ImageRef>, InUseError> {
    let entry_error = |entry: usize, text: &str, reason: String| InUseError::Entry {
        provider: provider.to_owned(),
        entry,
        text: text.to_owned(),
        reason,
    };
    if text.trim_start().starts_with('[') {
        let entries: Vec<String> = serde_json::from_str(text).map_err(|e| InUseError::Json {
            provider: provider.to_owned(),
            reason: e.to_string(),
        })?;
        return entries
            .iter()
            .enumerate()
            .map(|(i, e)| parse_reference(e).map_err(|why| entry_error(i + 1, e, why)))
            .collect();
    }
    let mut refs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        refs.push(parse_reference(entry).map_err(|why| entry_error(i + 1, entry, why))?);
    }
    Ok(refs)
}

/// A registry host as references are compared: lowercase, without `default_port`.
pub fn comparable_host(host: &str, default_port: u16) -> String {
    let host = host.to_ascii_lowercase();
    match host.strip_suffix(&format!(":{default_port}")) {
        Some(bare) => bare.to_owned(),
        None => host,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A digest for the in-use tests.
    pub(in crate::in_use) const D: &str =
        "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    pub(in crate::in_use) fn d() -> Digest {
        D.parse().unwrap()
    }

    #[test]
    fn a_host_is_a_first_component_with_a_dot_a_colon_or_localhost() {
        let r = parse_reference(&format!("registry.example:5000/team/app@{D}")).unwrap();
        assert_eq!(r.host.as_deref(), Some("registry.example:5000"));
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.digest, Some(d()));
        assert_eq!(r.tag, None);
        let r = parse_reference("localhost/app:v1").unwrap();
        assert_eq!(
            (r.host.as_deref(), r.repository.as_str()),
            (Some("localhost"), "app")
        );
        let r = parse_reference("team/app:v1").unwrap();
        assert_eq!(
            (r.host, r.repository.as_str(), r.tag.as_deref()),
            (None, "team/app", Some("v1"))
        );
    }

    #[test]
    fn a_bare_name_means_latest_and_a_pod_image_id_loses_its_prefix() {
        let r = parse_reference("app").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = parse_reference(&format!("docker-pullable://host.example/app@{D}")).unwrap();
        assert_eq!(r.host.as_deref(), Some("host.example"));
        assert_eq!(r.digest, Some(d()));
        let both = parse_reference(&format!("app:v2@{D}")).unwrap();
        assert_eq!((both.tag.as_deref(), both.digest), (Some("v2"), Some(d())));
    }

    #[test]
    fn what_is_no_reference_is_refused_with_its_entry() {
        for bad in ["App", "app@sha256:zz", "app:bad tag", "a//b", ""] {
            assert!(parse_reference(bad).is_err(), "{bad:?}");
        }
        let e = parse_list("file in-use.txt", "app:v1\n\nBad/Name\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("file in-use.txt: entry 3 (\"Bad/Name\")"),
            "{e}"
        );
    }

    #[test]
    fn lists_are_lines_with_comments_or_a_json_array() {
        let lines = parse_list(
            "f",
            "# running pods\napp:v1  # the web tier\n\n  other:v2\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].repository, "other");
        let json = parse_list("f", &format!("  [\"app:v1\", \"app@{D}\"]")).unwrap();
        assert_eq!(json.len(), 2);
        assert_eq!(json[1].digest, Some(d()));
        assert!(parse_list("f", "[1, 2]").is_err());
    }
}
