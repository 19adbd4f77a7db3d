//! Phase 2, with the policy's `trash`: what the plan deletes goes into one trash index for
//! this run (`src/trash.rs`), pushed under the janitor's own tag before any tag is removed.
//! The untags that follow take the trashed manifests' tags; nothing is deleted, so nothing
//! is lost until a later run empties the trash.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{tags_on, Run};
use crate::plan::{Delete, Snapshot, Untag};
use crate::registry::{Digest, MediaType, Reference, RegistryError};
use crate::trash::{self, Entry, Mark, TrashIndex};

/// The most manifests one trash index holds: about 500 bytes a descriptor with its
/// annotations, so an index stays well under the 4 MiB that registries take for a manifest.
/// A run that trashes more pushes several, `-2`, `-3`... after the first tag.
pub(super) const ENTRIES_PER_INDEX: usize = 1_000;

/// One trash index this run pushed: its tag, and the untags that take its entries' tags.
pub(super) struct Pushed {
    pub tag: String,
    pub untags: Vec<Untag>,
}

impl Run<'_> {
    /// Push the trash indexes that hold `entries` (`ENTRIES_PER_INDEX` in each), each checked
    /// served by its tag. For each chunk of entries, in order: its digests, and the pushed
    /// trash or why it could not be.
    pub(super) async fn trash(
        &self,
        fresh: &Snapshot,
        entries: &BTreeMap<Digest, Delete>,
        until: DateTime<Utc>,
    ) -> Vec<(Vec<Digest>, Result<Pushed, RegistryError>)> {
        let all: Vec<&Delete> = entries.values().collect();
        let mut taken: Vec<String> = Vec::new();
        let mut pushed = Vec::new();
        for chunk in all.chunks(ENTRIES_PER_INDEX) {
            let tag = free_tag(fresh, &taken, self.now);
            taken.push(tag.clone());
            let digests = chunk.iter().map(|d| d.digest.clone()).collect();
            pushed.push((digests, self.push_trash(fresh, chunk, until, tag).await));
        }
        pushed
    }

    async fn push_trash(
        &self,
        fresh: &Snapshot,
        chunk: &[&Delete],
        until: DateTime<Utc>,
        tag: String,
    ) -> Result<Pushed, RegistryError> {
        let (client, repo) = (self.client, self.repo.as_str());
        let index = TrashIndex {
            mark: Mark {
                run: self.now,
                expires: until,
            },
            entries: chunk
                .iter()
                .map(|d| {
                    let facts = &fresh.manifests[&d.digest];
                    Entry::new(
                        d.digest.clone(),
                        &facts.media_type,
                        facts.size,
                        tags_on(fresh, &d.digest),
                        &d.reason,
                    )
                })
                .collect(),
        };
        let reference = Reference::tag(&tag)?;
        let pushed = client
            .put_manifest(repo, &reference, &MediaType::OciIndex, index.to_bytes())
            .await?;
        // The registry said yes; the tags are removed only once it serves the trash too.
        let serving = client.resolve(repo, &reference).await?;
        if serving.as_ref() != Some(&pushed) {
            return Err(RegistryError::InvalidResponse {
                method: "HEAD".into(),
                path: format!("/v2/{repo}/manifests/{tag}"),
                reason: format!(
                    "the trash index {pushed} was accepted, but the tag names {}",
                    serving.map_or("nothing".into(), |d| d.to_string())
                ),
            });
        }
        tracing::info!(action = "trash", repository = repo, tag = %tag, digest = %pushed, entries = index.entries.len(), expires = %trash::rfc3339(until), "pushed the trash index");
        let untags = index
            .entries
            .iter()
            .flat_map(|e| {
                e.tags.iter().map(|t| Untag {
                    tag: t.clone(),
                    digest: e.digest().clone(),
                    reason: format!("moved to the trash {tag}"),
                    error: None,
                })
            })
            .collect();
        Ok(Pushed { tag, untags })
    }
}

/// The run's trash tag, with `-2`, `-3`... when an earlier run at the same time, or this
/// run's earlier index (`taken`), has it.
fn free_tag(fresh: &Snapshot, taken: &[String], now: DateTime<Utc>) -> String {
    let base = trash::tag_for(now);
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|t| !fresh.tags.contains_key(t) && !taken.contains(t))
        .unwrap_or(base)
}
