//! Phase 2 with the policy's `trash`: what the plan deletes goes into one trash index for
//! this run (`src/trash.rs`), pushed under the janitor's own tag before any tag is removed.
//! The untags that follow take the trashed manifests' tags; nothing is deleted, so nothing
//! is lost until a later run empties the trash.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{tags_on, Run};
use crate::plan::{Delete, Snapshot, Untag};
use crate::registry::{Digest, MediaType, Reference, RegistryError};
use crate::trash::{self, Entry, Mark, TrashIndex};

impl Run<'_> {
    /// Push the trash index that holds `entries`, and check that its tag names it. Returns
    /// its tag, and the untags that take the entries' tags (signatures' link tags too).
    pub(super) async fn trash(
        &self,
        fresh: &Snapshot,
        entries: &BTreeMap<Digest, Delete>,
        until: DateTime<Utc>,
    ) -> Result<(String, Vec<Untag>), RegistryError> {
        let (client, repo) = (self.client, self.repo.as_str());
        let index = TrashIndex {
            mark: Mark {
                run: self.now,
                expires: until,
            },
            entries: entries
                .values()
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
        let tag = free_tag(fresh, self.now);
        let reference = Reference::tag(&tag)?;
        let bytes = index.to_bytes();
        let pushed = client
            .put_manifest(repo, &reference, &MediaType::OciIndex, bytes)
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
        Ok((tag, untags))
    }
}

/// The run's trash tag, with `-2`, `-3`... when an earlier run at the same time has it.
fn free_tag(fresh: &Snapshot, now: DateTime<Utc>) -> String {
    let base = trash::tag_for(now);
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|t| !fresh.tags.contains_key(t))
        .unwrap_or(base)
}
