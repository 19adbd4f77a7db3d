//! Restore from the journal (`restore --from-journal`): put back manifests that apply
//! deleted for good, from the bytes it recorded first (`crate::journal`).
//!
//! 1. `choose` (pure) picks records: a repository's, one run's, or one digest with what it
//!    brings along among them (the children of an index, a subject's referrers); the last
//!    record of a digest counts.
//! 2. `restore` asks the registry what is missing, and checks, with a HEAD each, that every
//!    blob a missing manifest uses is still there, and that every child it names is there or
//!    put back with it. If anything is missing, nothing is put back, and the error names it:
//!    all or nothing. Distribution keeps blobs until its garbage collector runs.
//! 3. It pushes the missing manifests by digest, children before parents and subjects
//!    before referrers, then puts their tags back as the trash restore does (a tag that
//!    names something else now is left alone and reported).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{put_back, put_tags, Back, Conflict, RestoreError};
use crate::journal::Record;
use crate::registry::{Backend, Digest, Manifest, Reference, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum JournalRestoreError {
    #[error("{repository}: the journal records nothing to restore{}", what(.run, .digest))]
    NothingRecorded {
        repository: String,
        run: Option<String>,
        digest: Option<Digest>,
    },
    #[error(
        "{repository}@{digest}: the journal's record does not read: {reason}; nothing was put back"
    )]
    BadRecord {
        repository: String,
        digest: Digest,
        reason: String,
    },
    #[error("{repository}: {} missing from the registry, so nothing was put back (its garbage collector ran since the delete?): {}", if .missing.len() == 1 { "a blob or manifest is" } else { "blobs or manifests are" }, list(.missing))]
    Missing {
        repository: String,
        /// What is missing, and the manifest that needs it.
        missing: Vec<(Digest, Digest)>,
    },
    #[error("{repository}: {source}")]
    Registry {
        repository: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

fn what(run: &Option<String>, digest: &Option<Digest>) -> String {
    match (run, digest) {
        (Some(r), _) => format!(" from a run at {r}"),
        (None, Some(d)) => format!(" for {d}"),
        (None, None) => String::new(),
    }
}

fn list(missing: &[(Digest, Digest)]) -> String {
    missing
        .iter()
        .map(|(what, by)| format!("{what} (needed by {})", by.short()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a journal restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    pub repository: String,
    /// Manifests pushed back by digest, in the order pushed.
    pub pushed: Vec<Digest>,
    /// Each chosen manifest with its tags: put back, or already there.
    pub restored: Vec<Back>,
    /// Tags left alone because they name something else now.
    pub conflicts: Vec<Conflict>,
}

impl Restored {
    pub fn needs_attention(&self) -> bool {
        !self.conflicts.is_empty()
    }
}

/// The records to restore for `repository` of `registry` (`host[:port]`): each digest's
/// last record, of the run at `run` if given, and only `digest` with what it brings along if
/// given. Pure.
pub fn choose<'a>(
    records: &'a [Record],
    registry: &str,
    repository: &str,
    run: Option<DateTime<Utc>>,
    digest: Option<&Digest>,
) -> Result<Vec<&'a Record>, JournalRestoreError> {
    let nothing = || JournalRestoreError::NothingRecorded {
        repository: repository.to_owned(),
        run: run.map(crate::trash::rfc3339),
        digest: digest.cloned(),
    };
    let mut last: BTreeMap<&Digest, &Record> = BTreeMap::new();
    for r in records.iter().filter(|r| {
        r.registry == registry && r.repository == repository && run.is_none_or(|t| r.time == t)
    }) {
        last.insert(&r.digest, r);
    }
    let Some(start) = digest else {
        return match last.is_empty() {
            true => Err(nothing()),
            false => Ok(last.into_values().collect()),
        };
    };
    if !last.contains_key(start) {
        return Err(nothing());
    }
    // What each record brings along: its children, and its referrers.
    let parsed = parse_all(repository, last.values().copied())?;
    let mut edges: BTreeMap<&Digest, Vec<&Digest>> = BTreeMap::new();
    for (d, m) in &parsed {
        edges
            .entry(*d)
            .or_default()
            .extend(m.children().iter().map(|c| &c.digest));
        if let Some(s) = &m.subject {
            edges.entry(&s.digest).or_default().push(*d);
        }
    }
    for r in last.values() {
        for t in &r.tags {
            if let Some((s, _)) = Digest::from_link_tag(t).and_then(|s| last.get_key_value(&s)) {
                edges.entry(*s).or_default().push(&r.digest);
            }
        }
    }
    let mut chosen: BTreeSet<&Digest> = BTreeSet::new();
    let mut queue = vec![start];
    while let Some(d) = queue.pop() {
        if last.contains_key(d) && chosen.insert(d) {
            queue.extend(edges.get(d).into_iter().flatten().copied());
        }
    }
    Ok(chosen.into_iter().map(|d| last[d]).collect())
}

/// Each record's manifest, parsed from its bytes and checked against its digest.
fn parse_all<'a>(
    repository: &str,
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<BTreeMap<&'a Digest, Manifest>, JournalRestoreError> {
    let mut parsed = BTreeMap::new();
    for r in records {
        let bad = |reason: String| JournalRestoreError::BadRecord {
            repository: repository.to_owned(),
            digest: r.digest.clone(),
            reason,
        };
        let bytes = r.bytes().map_err(|e| bad(e.to_string()))?;
        if !r.digest.verifies(&bytes) {
            return Err(bad("its bytes do not have its digest".into()));
        }
        let m = Manifest::parse(r.digest.clone(), Some(&r.media_type), &bytes)
            .map_err(|e| bad(e.to_string()))?;
        parsed.insert(&r.digest, m);
    }
    Ok(parsed)
}

/// Put `chosen` back: check everything first, then push what is missing (dependencies
/// first), then the tags.
pub async fn restore(
    client: &dyn Backend,
    repository: &str,
    chosen: &[&Record],
) -> Result<Restored, JournalRestoreError> {
    let registry_error = |source| JournalRestoreError::Registry {
        repository: repository.to_owned(),
        source: Box::new(source),
    };
    let parsed = parse_all(repository, chosen.iter().copied())?;
    let mut missing_manifests: BTreeSet<&Digest> = BTreeSet::new();
    for d in parsed.keys() {
        if !client
            .manifest_exists(repository, d)
            .await
            .map_err(registry_error)?
        {
            missing_manifests.insert(*d);
        }
    }
    // Every blob and child that a manifest to push needs, once each.
    let mut missing: Vec<(Digest, Digest)> = Vec::new();
    let mut checked: BTreeMap<Digest, bool> = BTreeMap::new();
    for d in &missing_manifests {
        let m = &parsed[*d];
        for blob in m.blobs() {
            let there = match checked.get(&blob.digest) {
                Some(there) => *there,
                None => {
                    let there = client
                        .blob_exists(repository, &blob.digest)
                        .await
                        .map_err(registry_error)?;
                    checked.insert(blob.digest.clone(), there);
                    there
                }
            };
            if !there {
                missing.push((blob.digest.clone(), (*d).clone()));
            }
        }
        for child in m.children() {
            if missing_manifests.contains(&child.digest) {
                continue;
            }
            if !client
                .manifest_exists(repository, &child.digest)
                .await
                .map_err(registry_error)?
            {
                missing.push((child.digest.clone(), (*d).clone()));
            }
        }
    }
    if !missing.is_empty() {
        return Err(JournalRestoreError::Missing {
            repository: repository.to_owned(),
            missing,
        });
    }
    let mut done = Restored {
        repository: repository.to_owned(),
        ..Restored::default()
    };
    // A referrer by link tag (`sha256-<hex>.sig`) comes after its subject too.
    let subjects: BTreeMap<&Digest, Digest> = chosen
        .iter()
        .filter_map(|r| {
            let subject = r.tags.iter().find_map(|t| Digest::from_link_tag(t))?;
            Some((&r.digest, subject))
        })
        .collect();
    for d in dependencies_first(&parsed, &subjects, &missing_manifests) {
        let m = &parsed[d];
        put_back(client, repository, &Reference::Digest(d.clone()), m)
            .await
            .map_err(registry_error)?;
        tracing::info!(action = "restore", repository, digest = %d, "manifest put back from the journal");
        done.pushed.push(d.clone());
    }
    for r in chosen {
        let (entry, conflicts) = put_tags(
            client,
            repository,
            &parsed[&r.digest],
            r.tags.iter().map(String::as_str),
        )
        .await?;
        done.conflicts.extend(conflicts);
        done.restored.push(entry);
    }
    Ok(done)
}

/// `pushing` in an order where each manifest's children and subject (its `subject`, or the
/// one its link tag names, in `subjects`), among them, come before it. Pure.
fn dependencies_first<'a>(
    parsed: &BTreeMap<&'a Digest, Manifest>,
    subjects: &BTreeMap<&Digest, Digest>,
    pushing: &BTreeSet<&'a Digest>,
) -> Vec<&'a Digest> {
    let needs = |d: &Digest| -> Vec<&Digest> {
        let m = &parsed[d];
        m.children()
            .iter()
            .map(|c| &c.digest)
            .chain(m.subject.iter().map(|s| &s.digest))
            .chain(subjects.get(d))
            .filter(|n| pushing.contains(n))
            .collect()
    };
    let mut order: Vec<&'a Digest> = Vec::new();
    let mut done: BTreeSet<&Digest> = BTreeSet::new();
    while order.len() < pushing.len() {
        let before = order.len();
        for d in pushing {
            if !done.contains(*d) && needs(d).iter().all(|n| done.contains(n)) {
                done.insert(*d);
                order.push(*d);
            }
        }
        // A cycle cannot be pushed in any order; push the rest as they come.
        if order.len() == before {
            order.extend(pushing.iter().filter(|d| !done.contains(**d)));
            break;
        }
    }
    order
}
