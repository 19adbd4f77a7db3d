//! Restore: put back what a trash holds (`registry-janitor restore`).
//!
//! 1. `trashes` reads a repository's trash indexes (`src/trash.rs`): the tags of the
//!    janitor's form whose manifest is one.
//! 2. `choose` (pure) picks the entries to put back: all of them, those of one run, or one
//!    digest with what it reaches among them (the children of an index, the signatures and
//!    other referrers of a subject), so a multi-arch image comes back whole with its
//!    signature.
//! 3. `restore` puts each chosen entry's tags back, pushing its own bytes to each tag. A tag
//!    that names something else now was pushed by someone since: it is left alone and
//!    reported. Then each trash it touched is pushed again without what came back (or
//!    deleted, once empty), and the trash index it replaced is deleted.
//!
//! Every change comes after every read, and in an order where a stop at any point loses
//! nothing: a tag is back before its entry leaves the trash, and a new trash index is served
//! before the one it replaces goes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::registry::{Backend, Digest, Manifest, MediaType, Reference, RegistryError};
use crate::trash::{self, TrashIndex};

pub mod journal;

/// One trash index of a repository: its tag, its digest and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trash {
    pub tag: String,
    pub digest: Digest,
    pub index: TrashIndex,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{repository}: cannot list the tags: {source}")]
    Tags {
        repository: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{repository}:{tag}: cannot read the trash index: {source}")]
    Index {
        repository: String,
        tag: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{repository}@{digest}: the trash holds it, but it cannot be read: {source}; nothing was changed")]
    Entry {
        repository: String,
        digest: Digest,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{repository}: no trash of a run at {run} (`restore --list` shows them)")]
    NoRun { repository: String, run: String },
    #[error("{repository}@{digest}: no trash holds it (`restore --list` shows what they hold)")]
    NotInTrash { repository: String, digest: Digest },
    #[error("{repository}:{tag}: could not put the tag back on {digest}: {source}")]
    Retag {
        repository: String,
        tag: String,
        digest: Digest,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{repository}:{tag}: the tags are back, but the trash could not be rewritten without them: {source}; the next restore or the trash's expiry finishes it")]
    Rewrite {
        repository: String,
        tag: String,
        #[source]
        source: Box<RegistryError>,
    },
}

/// The repository's trash indexes, oldest run first.
pub async fn trashes(client: &dyn Backend, repository: &str) -> Result<Vec<Trash>, RestoreError> {
    let listing = client
        .tags(repository)
        .await
        .map_err(|source| RestoreError::Tags {
            repository: repository.to_owned(),
            source: Box::new(source),
        })?;
    let mut found = Vec::new();
    for tag in listing
        .names()
        .into_iter()
        .filter(|t| trash::is_trash_tag(t))
    {
        let index_error = |source| RestoreError::Index {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            source: Box::new(source),
        };
        let reference = Reference::tag(tag).map_err(|e| index_error(e.into()))?;
        let manifest = match client.manifest(repository, &reference).await {
            Ok(m) => m,
            // Removed since the listing: nothing to restore from it.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(index_error(e)),
        };
        // A tag of our form on someone else's manifest is theirs.
        if let Some(index) = TrashIndex::read(&manifest) {
            found.push(Trash {
                tag: tag.to_owned(),
                digest: manifest.digest,
                index,
            });
        }
    }
    found.sort_by(|a, b| (a.index.mark.run, &a.tag).cmp(&(b.index.mark.run, &b.tag)));
    Ok(found)
}

/// The trashes of the run at `run` (all with `None`).
pub fn of_run<'a>(
    repository: &str,
    trashes: &'a [Trash],
    run: Option<DateTime<Utc>>,
) -> Result<Vec<&'a Trash>, RestoreError> {
    let chosen: Vec<&Trash> = trashes
        .iter()
        .filter(|t| run.is_none_or(|r| t.index.mark.run == r))
        .collect();
    match (run, chosen.is_empty()) {
        (Some(r), true) => Err(RestoreError::NoRun {
            repository: repository.to_owned(),
            run: trash::rfc3339(r),
        }),
        _ => Ok(chosen),
    }
}

/// Which entries of `trashes` to put back: every one, or `digest` with what it reaches among
/// them, through `manifests` (each entry's manifest, read) and the link tags they had. Pure.
pub fn choose(
    repository: &str,
    trashes: &[&Trash],
    manifests: &BTreeMap<Digest, Manifest>,
    digest: Option<&Digest>,
) -> Result<BTreeSet<Digest>, RestoreError> {
    let entries: BTreeMap<&Digest, &trash::Entry> = trashes
        .iter()
        .flat_map(|t| &t.index.entries)
        .map(|e| (e.digest(), e))
        .collect();
    let Some(start) = digest else {
        return Ok(entries.keys().map(|d| (*d).clone()).collect());
    };
    if !entries.contains_key(start) {
        return Err(RestoreError::NotInTrash {
            repository: repository.to_owned(),
            digest: start.clone(),
        });
    }
    // What each entry brings back with it: its children, and its referrers (by `subject`,
    // or by a `sha256-<hex>` link tag it had).
    let mut edges: BTreeMap<&Digest, Vec<&Digest>> = BTreeMap::new();
    for (d, e) in &entries {
        if let Some(m) = manifests.get(*d) {
            edges
                .entry(*d)
                .or_default()
                .extend(m.children().iter().map(|c| &c.digest));
            if let Some(s) = &m.subject {
                edges.entry(&s.digest).or_default().push(*d);
            }
        }
        for t in &e.tags {
            if let Some(subject) = Digest::from_link_tag(t) {
                if let Some((s, _)) = entries.get_key_value(&subject) {
                    edges.entry(*s).or_default().push(*d);
                }
            }
        }
    }
    let mut chosen = BTreeSet::new();
    let mut queue = vec![start];
    while let Some(d) = queue.pop() {
        if entries.contains_key(d) && chosen.insert(d.clone()) {
            queue.extend(edges.get(d).into_iter().flatten().copied());
        }
    }
    Ok(chosen)
}

/// Read the manifest of every entry of `trashes`: what putting one back pushes, and what
/// `choose` follows. Any that cannot be read stops the restore before anything changes.
pub async fn read_entries(
    client: &dyn Backend,
    repository: &str,
    trashes: &[&Trash],
    limit: usize,
) -> Result<BTreeMap<Digest, Manifest>, RestoreError> {
    let digests: BTreeSet<Digest> = trashes
        .iter()
        .flat_map(|t| t.index.entries.iter().map(|e| e.digest().clone()))
        .collect();
    let mut read = BTreeMap::new();
    for (digest, result) in client
        .manifests_by_digest(repository, digests.into_iter().collect(), limit)
        .await
    {
        match result {
            Ok(m) => {
                read.insert(digest, m);
            }
            Err(source) => {
                return Err(RestoreError::Entry {
                    repository: repository.to_owned(),
                    digest,
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(read)
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    pub repository: String,
    /// Each entry that came back, with its tags: put back, or already there.
    pub restored: Vec<Back>,
    /// Tags left alone because they name something else now.
    pub conflicts: Vec<Conflict>,
    /// Trash indexes pushed again without what came back.
    pub rewritten: Vec<String>,
    /// Trash indexes deleted because nothing was left in them.
    pub emptied: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Back {
    pub digest: Digest,
    /// Tags pushed back onto it.
    pub tags: Vec<String>,
    /// Tags that already named it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub digest: Digest,
    pub tag: String,
    /// What the tag names now.
    pub names: Digest,
}

impl Restored {
    /// A tag was left alone: the command says so and exits 1.
    pub fn needs_attention(&self) -> bool {
        !self.conflicts.is_empty()
    }
}

/// Put `chosen` back: their tags first, then the trashes without them.
pub async fn restore(
    client: &dyn Backend,
    repository: &str,
    trashes: &[&Trash],
    manifests: &BTreeMap<Digest, Manifest>,
    chosen: &BTreeSet<Digest>,
) -> Result<Restored, RestoreError> {
    let mut done = Restored {
        repository: repository.to_owned(),
        ..Restored::default()
    };
    // Each entry's tags, from every trash that holds it (a run stopped before its untags
    // trashes a manifest again in the next run).
    let mut tags: BTreeMap<&Digest, BTreeSet<&str>> = BTreeMap::new();
    for e in trashes.iter().flat_map(|t| &t.index.entries) {
        if chosen.contains(e.digest()) {
            tags.entry(e.digest())
                .or_default()
                .extend(e.tags.iter().map(String::as_str));
        }
    }
    let mut back: BTreeSet<Digest> = BTreeSet::new();
    for (digest, names) in tags {
        let manifest = &manifests[digest];
        let (entry, conflicts) = put_tags(client, repository, manifest, names).await?;
        // It leaves the trash once something names it again, or when it had no tag.
        let all_conflicted =
            !conflicts.is_empty() && entry.tags.is_empty() && entry.already.is_empty();
        done.conflicts.extend(conflicts);
        if !all_conflicted {
            back.insert(digest.clone());
            done.restored.push(entry);
        }
    }
    for t in trashes {
        let left: Vec<trash::Entry> = t
            .index
            .entries
            .iter()
            .filter(|e| !back.contains(e.digest()))
            .cloned()
            .collect();
        if left.len() == t.index.entries.len() {
            continue;
        }
        rewrite(client, repository, t, left, &mut done)
            .await
            .map_err(|source| RestoreError::Rewrite {
                repository: repository.to_owned(),
                tag: t.tag.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(done)
}

/// Put `names` back on `manifest`, each unless it names something else now (a conflict,
/// left alone). Shared by both restores.
pub(crate) async fn put_tags<'a>(
    client: &dyn Backend,
    repository: &str,
    manifest: &Manifest,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(Back, Vec<Conflict>), RestoreError> {
    let digest = &manifest.digest;
    let mut entry = Back {
        digest: digest.clone(),
        tags: Vec::new(),
        already: Vec::new(),
    };
    let mut conflicts = Vec::new();
    for tag in names {
        let retag_error = |source| RestoreError::Retag {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: digest.clone(),
            source: Box::new(source),
        };
        let reference = Reference::tag(tag).map_err(|e| retag_error(e.into()))?;
        match client
            .resolve(repository, &reference)
            .await
            .map_err(retag_error)?
        {
            Some(now) if &now == digest => entry.already.push(tag.to_owned()),
            Some(now) => conflicts.push(Conflict {
                digest: digest.clone(),
                tag: tag.to_owned(),
                names: now,
            }),
            None => {
                put_back(client, repository, &reference, manifest)
                    .await
                    .map_err(retag_error)?;
                tracing::info!(action = "restore", repository, tag, digest = %digest, "tag put back");
                entry.tags.push(tag.to_owned());
            }
        }
    }
    Ok((entry, conflicts))
}

/// Push `manifest`'s own bytes to `reference`, and check that the digest is the same.
pub(crate) async fn put_back(
    client: &dyn Backend,
    repository: &str,
    reference: &Reference,
    manifest: &Manifest,
) -> Result<(), RegistryError> {
    let pushed = client
        .put_manifest(
            repository,
            reference,
            &manifest.media_type,
            manifest.bytes.clone(),
        )
        .await?;
    if pushed != manifest.digest {
        return Err(RegistryError::Contradiction {
            repository: repository.to_owned(),
            digest: manifest.digest.clone(),
            detail: format!("pushing its bytes to {reference} gave {pushed}"),
        });
    }
    Ok(())
}

/// `trash` with only `left` in it: deleted when nothing is left, else pushed again under its
/// tag, and the index it replaces deleted once the new one is served.
async fn rewrite(
    client: &dyn Backend,
    repository: &str,
    trash: &Trash,
    left: Vec<trash::Entry>,
    done: &mut Restored,
) -> Result<(), RegistryError> {
    if left.is_empty() {
        client.delete_manifest(repository, &trash.digest).await?;
        done.emptied.push(trash.tag.clone());
        return Ok(());
    }
    let reference = Reference::tag(&trash.tag)?;
    let index = TrashIndex {
        mark: trash.index.mark,
        entries: left,
    };
    let pushed = client
        .put_manifest(
            repository,
            &reference,
            &MediaType::OciIndex,
            index.to_bytes(),
        )
        .await?;
    if client.resolve(repository, &reference).await?.as_ref() != Some(&pushed) {
        return Err(RegistryError::InvalidResponse {
            method: "HEAD".into(),
            path: format!("/v2/{repository}/manifests/{}", trash.tag),
            reason: format!("the rewritten trash index {pushed} was accepted but is not served"),
        });
    }
    client.delete_manifest(repository, &trash.digest).await?;
    done.rewritten.push(trash.tag.clone());
    Ok(())
}
