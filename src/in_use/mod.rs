//! What is running: image references that providers name, kept with everything they reach.
//!
//! A provider gives a list of image references (`host/repo@sha256:…`, `host/repo:tag`), each
//! with the source that names it ("ECS service prod/checkout, revision 12"). This module
//! reads the providers, applies docker's host rule, and keeps the references that name the
//! swept registry as an [`InUse`] set. The planner asks that set (pure); reading the
//! providers is the I/O here ([`read`]), done once per sweep before planning:
//! - `file` and `s3` ([`s3`]) hold a list ([`reference`] parses it);
//! - `ecs` ([`ecs`]) asks ECS for its services' current revisions and its live tasks;
//! - `lambda` ([`lambda`]) asks Lambda for the image of every version of every function.
//!
//! The rules, decided in issue 22:
//! - a reference's first component is a host when it has a `.` or a `:` or is `localhost`;
//!   without one, the reference names the swept registry. Hosts compare as `host[:port]`,
//!   lowercase, with the scheme's default port left out;
//! - `app` alone means `app:latest`; `host/app@D` protects `D` in `app` only;
//! - a reference by tag keeps the tag as well as the digest it names now;
//! - a provider that cannot be read, that answers an error (throttling past the SDK's
//!   retries too) or a truncated listing, or that names something that is no image
//!   reference, fails the whole sweep closed: [`InUse::failure`] makes every repository
//!   incomplete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::registry::Digest;

mod ecs;
mod lambda;
mod pages;
mod reference;
mod s3;

pub use reference::{comparable_host, parse_list, parse_reference, ImageRef, InUseError};

/// Where a list of references comes from (`protect.in_use` in the policy, `--in-use FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Provider {
    /// A file: one reference per line, or a JSON array.
    File(PathBuf),
    /// An S3 object in the same format, `s3://bucket/key` (a cluster's CronJob or another
    /// account's pipeline writes it). Credentials and region come from the AWS chain.
    S3(String),
    /// What ECS runs and will start: the services' current revisions and the tasks that are
    /// running or about to.
    Ecs(Ecs),
    /// The images of Lambda functions' versions (and so of their aliases).
    Lambda(Lambda),
}

/// `{"ecs": {"clusters": REGEX, "region": "eu-west-1"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ecs {
    /// The clusters to read, a regex on the whole cluster name; every cluster by default.
    #[serde(default = "every_cluster")]
    pub clusters: String,
    /// The region; the AWS chain's by default.
    #[serde(default)]
    pub region: Option<String>,
}

fn every_cluster() -> String {
    ".*".to_owned()
}

/// `{"lambda": {"region": "eu-west-1"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lambda {
    /// The region; the AWS chain's by default.
    #[serde(default)]
    pub region: Option<String>,
}

impl Provider {
    /// How reports and reasons name it.
    pub fn name(&self) -> String {
        let region = |r: &Option<String>| match r {
            Some(r) => format!(" in {r}"),
            None => String::new(),
        };
        match self {
            Provider::File(path) => format!("file {}", path.display()),
            Provider::S3(url) => url.clone(),
            Provider::Ecs(e) => format!("ECS clusters {:?}{}", e.clusters, region(&e.region)),
            Provider::Lambda(l) => format!("Lambda functions{}", region(&l.region)),
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

    /// The regex it takes, if it takes one (the policy checks it when it loads).
    pub fn pattern(&self) -> Option<(&'static str, &str)> {
        match self {
            Provider::Ecs(e) => Some(("ecs.clusters", &e.clusters)),
            _ => None,
        }
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
    /// Keep the references of `refs` that name `registry` (a [`comparable_host`]), each as
    /// said by its source; `provider` gave them all.
    pub fn add(
        &mut self,
        registry: &str,
        default_port: u16,
        provider: &str,
        refs: Vec<(ImageRef, String)>,
    ) {
        self.providers.push(ProviderReport {
            name: provider.to_owned(),
            references: refs.len(),
            error: None,
        });
        for (r, source) in refs {
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
                    .or_insert_with(|| source.clone());
            }
            if let Some(t) = r.tag {
                self.tags
                    .entry(r.repository)
                    .or_default()
                    .entry(t)
                    .or_insert(source);
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
    let mut s3_client: Option<aws_sdk_s3::Client> = None;
    for p in providers {
        let name = p.name();
        let failed = |reason: String| InUseError::Read {
            provider: name.clone(),
            reason,
        };
        let list = |text: Result<String, String>| {
            let refs = parse_list(&name, &text.map_err(failed)?)?;
            Ok(refs.into_iter().map(|r| (r, name.clone())).collect())
        };
        let read: Result<Vec<(ImageRef, String)>, InUseError> = match p {
            Provider::File(path) => list(read_file(path)),
            Provider::S3(url) => {
                let client = match &s3_client {
                    Some(c) => c.clone(),
                    None => s3_client.insert(s3::client().await).clone(),
                };
                list(s3::object(&client, url).await)
            }
            Provider::Ecs(e) => ecs::references(e).await.map_err(failed),
            Provider::Lambda(l) => lambda::references(l).await.map_err(failed),
        };
        match read {
            Ok(refs) => {
                let a_list = matches!(p, Provider::File(_) | Provider::S3(_));
                if a_list && refs.is_empty() {
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

/// The text of a list file, or why not.
fn read_file(path: &Path) -> Result<String, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_LIST_BYTES as u64 => {
            Err(format!("the file is over {MAX_LIST_BYTES} bytes"))
        }
        _ => std::fs::read_to_string(path).map_err(|e| e.to_string()),
    }
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
    use super::reference::tests::{d, D};
    use super::*;

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
        let refs = refs.into_iter().map(|r| (r, "f".to_owned())).collect();
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
