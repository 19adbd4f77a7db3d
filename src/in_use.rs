//! What is running: image references that providers name, kept with everything they reach.
//!
//! A provider gives a list of image references (`host/repo@sha256:…`, `host/repo:tag`). This
//! module reads the list format, applies docker's host rule, and keeps the references that
//! name the swept registry as an [`InUse`] set. The planner asks that set (pure); reading a
//! provider is the one piece of I/O here ([`read`]), done once per sweep before planning.
//!
//! The rules, decided in issue 22:
//! - a reference's first component is a host when it has a `.` or a `:` or is `localhost`;
//!   without one, the reference names the swept registry. Hosts compare as `host[:port]`,
//!   lowercase, with the scheme's default port left out;
//! - `app` alone means `app:latest`; `host/app@D` protects `D` in `app` only;
//! - a reference by tag keeps the tag as well as the digest it names now;
//! - a list is one reference per line (blank lines and `#` comments, inline ones too), or a
//!   JSON array of strings when its first non-blank character is `[`; a `docker-pullable://`
//!   prefix is stripped;
//! - a provider that cannot be read, or an entry that is no image reference, fails the whole
//!   sweep closed: [`InUse::failure`] makes every repository incomplete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::registry::name::{check_repository, check_tag};
use crate::registry::Digest;

/// Where a list of references comes from (`protect.in_use` in the policy, `--in-use FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Provider {
    /// A file: one reference per line, or a JSON array.
    File(PathBuf),
    /// An S3 object in the same format, `s3://bucket/key` (a cluster's CronJob or another
    /// account's pipeline writes it). Credentials and region come from the AWS chain.
    S3(String),
}

impl Provider {
    /// How reports and reasons name it.
    pub fn name(&self) -> String {
        match self {
            Provider::File(path) => format!("file {}", path.display()),
            Provider::S3(url) => url.clone(),
        }
    }

    /// `--in-use`'s argument: an `s3://` URL, else a file.
    pub fn from_arg(arg: &str) -> Provider {
        if arg.starts_with("s3://") {
            Provider::S3(arg.to_owned())
        } else {
            Provider::File(arg.into())
        }
    }

    /// The same provider, with a relative path taken from `folder`.
    pub fn relative_to(self, folder: &Path) -> Provider {
        match self {
            Provider::File(path) if path.is_relative() => Provider::File(folder.join(path)),
            other => other,
        }
    }
}

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

/// What one provider gave, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProviderReport {
    pub name: String,
    /// References it named, of every registry.
    pub references: usize,
    pub error: Option<String>,
}

/// The in-use references that name the swept registry, each with the provider that named it.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    /// Repository, then digest, to the provider that named it (looked up without allocating:
    /// the planner asks for every manifest).
    digests: BTreeMap<String, BTreeMap<Digest, String>>,
    /// Repository, then tag, to the provider that named it.
    tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Why a provider could not be read: nothing is deleted anywhere this sweep.
    pub failure: Option<String>,
    /// References to other registries, ignored.
    pub other_registries: usize,
    pub providers: Vec<ProviderReport>,
}

impl InUse {
    /// Keep the references of `refs` that name `registry` (a [`comparable_host`]), as said by
    /// `source`.
    pub fn add(&mut self, registry: &str, default_port: u16, source: &str, refs: Vec<ImageRef>) {
        self.providers.push(ProviderReport {
            name: source.to_owned(),
            references: refs.len(),
            error: None,
        });
        for r in refs {
            if r.host
                .as_deref()
                .is_some_and(|h| comparable_host(h, default_port) != registry)
            {
                self.other_registries += 1;
                continue;
            }
            if let Some(d) = r.digest {
                self.digests
                    .entry(r.repository.clone())
                    .or_default()
                    .entry(d)
                    .or_insert_with(|| source.to_owned());
            }
            if let Some(t) = r.tag {
                self.tags
                    .entry(r.repository)
                    .or_default()
                    .entry(t)
                    .or_insert_with(|| source.to_owned());
            }
        }
    }

    /// `source` could not be read: the sweep deletes nothing.
    pub fn fail(&mut self, source: &str, why: String) {
        self.providers.push(ProviderReport {
            name: source.to_owned(),
            references: 0,
            error: Some(why.clone()),
        });
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// The provider that names `digest` in `repository`, if one does.
    pub fn digest(&self, repository: &str, digest: &Digest) -> Option<&str> {
        self.digests
            .get(repository)?
            .get(digest)
            .map(String::as_str)
    }

    /// The digests named in `repository`: collect reads them even where no tag reaches
    /// them, so that what they reach is in the picture too.
    pub fn digests_in<'a>(&'a self, repository: &'a str) -> impl Iterator<Item = &'a Digest> + 'a {
        self.digests
            .get(repository)
            .into_iter()
            .flat_map(BTreeMap::keys)
    }

    /// The provider that names `repository:tag`, if one does.
    pub fn tag(&self, repository: &str, tag: &str) -> Option<&str> {
        self.tags.get(repository)?.get(tag).map(String::as_str)
    }
}

/// The most a list may hold: a broken export that writes gigabytes is a failure, not a hang.
const MAX_LIST_BYTES: usize = 16 << 20;

/// Read every provider once, keeping what names the registry at `registry` (its
/// [`comparable_host`]). A provider that fails is recorded in the set (fail closed); an empty
/// list is returned as a warning, since it is probably a broken export.
pub async fn read(
    providers: &[Provider],
    registry: &str,
    default_port: u16,
) -> (InUse, Vec<String>) {
    let mut in_use = InUse::default();
    let mut warnings = Vec::new();
    let mut s3: Option<aws_sdk_s3::Client> = None;
    for p in providers {
        let name = p.name();
        let failed = |reason: String| InUseError::Read {
            provider: name.clone(),
            reason,
        };
        let read = match p {
            Provider::File(path) => match std::fs::metadata(path) {
                Ok(m) if m.len() > MAX_LIST_BYTES as u64 => {
                    Err(failed(format!("the file is over {MAX_LIST_BYTES} bytes")))
                }
                _ => std::fs::read_to_string(path).map_err(|e| failed(e.to_string())),
            },
            Provider::S3(url) => {
                let client = match &s3 {
                    Some(c) => c.clone(),
                    None => {
                        let c = s3_client().await;
                        s3 = Some(c.clone());
                        c
                    }
                };
                s3_object(&client, url).await.map_err(failed)
            }
        };
        match read.and_then(|text| parse_list(&name, &text)) {
            Ok(refs) => {
                if refs.is_empty() {
                    warnings.push(format!(
                        "{name} names no image: is the export that writes it broken?"
                    ));
                }
                in_use.add(registry, default_port, &name, refs);
            }
            Err(e) => in_use.fail(&name, e.to_string()),
        }
    }
    (in_use, warnings)
}

/// The S3 client for the providers: the AWS chain's credentials and region, path-style
/// requests where `AWS_ENDPOINT_URL` points elsewhere than AWS (moto, MinIO).
async fn s3_client() -> aws_sdk_s3::Client {
    let config = crate::aws::sdk_config(None).await;
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style)
            .build(),
    )
}

/// The text of the object `url` names (`s3://bucket/key`), or why not.
async fn s3_object(client: &aws_sdk_s3::Client, url: &str) -> Result<String, String> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| "an S3 provider is s3://bucket/key".to_owned())?;
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| match e.code() {
            Some(code) => format!("GetObject: {code}: {}", e.message().unwrap_or_default()),
            None => format!("GetObject: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
        })?;
    let too_big = |n: usize| n > MAX_LIST_BYTES;
    if object
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, too_big))
    {
        return Err(format!("the object is over {MAX_LIST_BYTES} bytes"));
    }
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| format!("GetObject: the body could not be read: {e}"))?
        .into_bytes();
    if too_big(bytes.len()) {
        return Err(format!("the object is over {MAX_LIST_BYTES} bytes"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| "the object is not UTF-8 text".to_owned())
}

/// [`read`] for the registry at the URL `registry` (`https://host[:port]`): the host and the
/// default port come from it, and the warnings are logged. A URL without a host names
/// nothing, and no reference matches.
pub async fn read_for(providers: &[Provider], registry: &str) -> InUse {
    let url = url::Url::parse(registry).ok();
    let port = url
        .as_ref()
        .and_then(url::Url::port_or_known_default)
        .unwrap_or(443);
    let host = url
        .as_ref()
        .and_then(crate::registry::options::registry_host)
        .map(|h| comparable_host(&h, port))
        .unwrap_or_default();
    let (in_use, warnings) = read(providers, &host, port).await;
    for w in warnings {
        tracing::warn!("{w}");
    }
    in_use
}

/// `policy` with what its providers name read for the registry at the URL `registry`
/// (`Protect::running`). Both faces call it once per sweep.
pub async fn resolve(policy: &crate::policy::Policy, registry: &str) -> crate::policy::Policy {
    let mut policy = policy.clone();
    if !policy.protect.in_use.is_empty() {
        policy.protect.running = read_for(&policy.protect.in_use, registry).await;
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    fn d() -> Digest {
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

    #[test]
    fn only_references_to_the_swept_registry_count_and_the_default_port_is_left_out() {
        let mut in_use = InUse::default();
        let refs = parse_list(
            "f",
            &format!(
                "registry.example:443/app@{D}\nREGISTRY.example/app:prod\nelsewhere.example/app:v9\napp:local"
            ),
        )
        .unwrap();
        in_use.add(&comparable_host("registry.example", 443), 443, "f", refs);
        assert_eq!(in_use.digest("app", &d()), Some("f"));
        assert_eq!(
            in_use.digest("other", &d()),
            None,
            "a digest counts in its repository only"
        );
        assert_eq!(in_use.tag("app", "prod"), Some("f"));
        assert_eq!(
            in_use.tag("app", "local"),
            Some("f"),
            "no host: the swept registry"
        );
        assert_eq!(in_use.tag("app", "v9"), None);
        assert_eq!(in_use.other_registries, 1);
        assert_eq!(in_use.providers[0].references, 4);
    }

    #[tokio::test]
    async fn a_provider_that_cannot_be_read_fails_the_sweep_and_an_empty_one_warns() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "# nothing yet\n").unwrap();
        let missing = dir.path().join("missing.txt");
        let (in_use, warnings) = read(&[Provider::File(empty.clone())], "r.example", 443).await;
        assert!(in_use.failure.is_none());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let (in_use, _) = read(
            &[Provider::File(empty), Provider::File(missing)],
            "r.example",
            443,
        )
        .await;
        let why = in_use.failure.unwrap();
        assert!(why.contains("missing.txt: cannot be read"), "{why}");
        assert!(in_use.providers[1].error.is_some());
    }
}
