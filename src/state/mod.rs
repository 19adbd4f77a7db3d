//! The inventory: what the janitor remembers between sweeps.
//!
//! The OCI API lists tags, not manifests, so a manifest that loses its last tag vanishes from
//! view. The inventory remembers every digest a sweep (or a webhook) saw, what it is (its
//! facts never change, since a digest names its content), and since when no tag reaches it.
//! That clock gives untagged manifests a real grace period: it starts when the janitor first
//! sees a manifest untagged, is never moved later, and stops when a tag reaches it again.
//! It also remembers since when each tag has named each digest: a tag's age counts from
//! that when the image's own date is not a build time (`plan/age.rs`).
//!
//! Stores sit behind `StateStore`: a JSON file for the CLI (`file`), a DynamoDB table for the
//! function (`dynamo`), or nothing at all (`NoState`).

pub mod dynamo;
pub mod file;

pub use dynamo::DynamoState;
pub use file::FileState;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::graph::reached_by_user_tags;
use crate::plan::{ManifestFacts, Snapshot};
use crate::registry::Digest;

/// What the janitor remembers about one repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoInventory {
    pub manifests: BTreeMap<Digest, Remembered>,
    /// Tags this janitor set out to remove and has not yet seen gone, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub removing: BTreeMap<String, Removing>,
}

/// A tag an apply is removing (an untag, or a tag on a manifest it deletes).
///
/// Written before the apply changes anything, and kept only while the registry still lists
/// the tag but can serve nothing under it. Distribution 2.8 leaves exactly that behind when a
/// manifest DELETE fails halfway (it answers 500 after removing the manifest, before removing
/// its tags; the retry then finds nothing). A listed tag that answers 404 otherwise stops the
/// repository, as a registry that hides a live tag must; one this record names is finished
/// instead: nobody can pull anything through it, and this janitor decided it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removing {
    /// What the tag named when the janitor decided to remove it.
    pub digest: Digest,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    pub first_seen: DateTime<Utc>,
    /// Since when no tag has reached it; `None` while one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged_since: Option<DateTime<Utc>>,
    /// What it is, once read (content-addressed, so it never goes stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<ManifestFacts>,
    /// The tags seen naming it, each since when it has (link tags are not kept here). A tag
    /// seen elsewhere, or gone, is dropped, so one moved back starts again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, DateTime<Utc>>,
}

impl Remembered {
    pub fn new(now: DateTime<Utc>) -> Remembered {
        Remembered {
            first_seen: now,
            untagged_since: None,
            facts: None,
            tags: BTreeMap::new(),
        }
    }
}

impl RepoInventory {
    /// Record what a sweep saw, start or stop untagged clocks, note since when each tag names
    /// its digest, and copy each clock into the snapshot for the planner. `gone` are digests
    /// the registry says no longer exist.
    ///
    /// An incomplete snapshot starts no untagged clock, and drops the record of no tag it
    /// did not read: a manifest may only look untagged, or a tag gone, because a tag could
    /// not be read. What it did read is true: a tag read on one digest no longer names any
    /// other, so its record elsewhere goes, and it starts again if it moves back.
    pub fn observe(&mut self, snapshot: &mut Snapshot, gone: &[Digest], now: DateTime<Utc>) {
        for digest in gone {
            self.manifests.remove(digest);
        }
        let complete = snapshot.problems.is_empty();
        // A removal record outlives the tag only while the tag dangles; a tag seen gone, or
        // naming something readable again, is nobody's leftover any more. An incomplete read
        // shows only the second.
        if complete {
            self.removing
                .retain(|tag, _| snapshot.dangling.contains_key(tag));
        } else {
            self.removing
                .retain(|tag, _| !snapshot.tags.contains_key(tag));
        }
        let reached = reached_by_user_tags(snapshot);
        // Each tag read, and the digest it names (link tags are not dated).
        let read: BTreeMap<String, Digest> = snapshot
            .tags
            .iter()
            .filter(|(tag, _)| Digest::from_link_tag(tag).is_none())
            .map(|(tag, tref)| (tag.clone(), tref.digest.clone()))
            .collect();
        for (digest, entry) in self.manifests.iter_mut() {
            entry.tags.retain(|t, _| match read.get(t) {
                Some(on) => on == digest,
                None => !complete,
            });
        }
        for (digest, facts) in snapshot.manifests.iter_mut() {
            let entry = self
                .manifests
                .entry(digest.clone())
                .or_insert_with(|| Remembered::new(now));
            if reached.contains(digest) {
                entry.untagged_since = None;
            } else if complete && entry.untagged_since.is_none() {
                entry.untagged_since = Some(now);
            }
            facts.untagged_since = if reached.contains(digest) {
                None
            } else {
                entry.untagged_since
            };
            let mut stored = facts.clone();
            stored.untagged_since = None;
            stored.updated = None;
            stored.pulled = None;
            stored.locked = false;
            // An index's age is derived from its children each sweep, never remembered: a
            // child read later may change it.
            if !stored.children.is_empty() {
                stored.created = None;
            }
            entry.facts = Some(stored);
        }
        for (tag, tref) in snapshot.tags.iter_mut() {
            if !read.contains_key(tag) {
                continue;
            }
            if let Some(entry) = self.manifests.get_mut(&tref.digest) {
                let since = *entry.tags.entry(tag.clone()).or_insert(now);
                tref.first_seen = Some(since);
            }
        }
    }

    /// Forget that these tags name these digests: this janitor removed them. Pushed back
    /// later, a tag is first seen again.
    pub fn untagged<'a>(&mut self, tags: impl IntoIterator<Item = (&'a str, &'a Digest)>) {
        for (tag, digest) in tags {
            if let Some(entry) = self.manifests.get_mut(digest) {
                entry.tags.remove(tag);
            }
        }
    }

    /// Note that these tags are about to be removed (see `Removing`); a record already
    /// there keeps its time.
    pub fn removing<'a>(
        &mut self,
        tags: impl IntoIterator<Item = (&'a str, &'a Digest)>,
        now: DateTime<Utc>,
    ) {
        for (tag, digest) in tags {
            self.removing
                .entry(tag.to_owned())
                .or_insert_with(|| Removing {
                    digest: digest.clone(),
                    since: now,
                });
        }
    }

    /// Forget digests that were deleted.
    pub fn forget<'a>(&mut self, digests: impl IntoIterator<Item = &'a Digest>) {
        for d in digests {
            self.manifests.remove(d);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("state file {path} is locked by another registry-janitor run; wait for it to finish")]
    Locked { path: PathBuf },
    #[error("DynamoDB table {table}: {operation} failed: {reason}")]
    Dynamo {
        table: String,
        operation: String,
        reason: String,
    },
}

/// Where the inventory lives.
pub trait StateStore: Send {
    fn load(
        &mut self,
        repository: &str,
    ) -> impl Future<Output = Result<RepoInventory, StateError>> + Send;
    fn save(
        &mut self,
        repository: &str,
        inventory: RepoInventory,
    ) -> impl Future<Output = Result<(), StateError>> + Send;
    /// Make every save durable.
    fn flush(&mut self) -> impl Future<Output = Result<(), StateError>> + Send;
    /// Whether what is saved is there at the next load. Without that, "first seen" is always
    /// this very sweep, which says nothing about how old a tag is.
    fn remembers(&self) -> bool {
        true
    }
}

/// Whichever store the configuration chose.
pub enum AnyState {
    None(NoState),
    File(FileState),
    Dynamo(DynamoState),
}

impl StateStore for AnyState {
    async fn load(&mut self, repository: &str) -> Result<RepoInventory, StateError> {
        match self {
            AnyState::None(s) => s.load(repository).await,
            AnyState::File(s) => s.load(repository).await,
            AnyState::Dynamo(s) => s.load(repository).await,
        }
    }
    async fn save(&mut self, repository: &str, inventory: RepoInventory) -> Result<(), StateError> {
        match self {
            AnyState::None(s) => s.save(repository, inventory).await,
            AnyState::File(s) => s.save(repository, inventory).await,
            AnyState::Dynamo(s) => s.save(repository, inventory).await,
        }
    }
    async fn flush(&mut self) -> Result<(), StateError> {
        match self {
            AnyState::None(s) => s.flush().await,
            AnyState::File(s) => s.flush().await,
            AnyState::Dynamo(s) => s.flush().await,
        }
    }
    fn remembers(&self) -> bool {
        match self {
            AnyState::None(s) => s.remembers(),
            AnyState::File(s) => s.remembers(),
            AnyState::Dynamo(s) => s.remembers(),
        }
    }
}

/// No memory (`--no-state`): every sweep starts from nothing.
pub struct NoState;

impl StateStore for NoState {
    async fn load(&mut self, _: &str) -> Result<RepoInventory, StateError> {
        Ok(RepoInventory::default())
    }
    async fn save(&mut self, _: &str, _: RepoInventory) -> Result<(), StateError> {
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), StateError> {
        Ok(())
    }
    fn remembers(&self) -> bool {
        false
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::TagRef;

    pub(in crate::state) fn d(n: u32) -> Digest {
        format!("sha256:{n:064x}").parse().unwrap()
    }

    pub(in crate::state) fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn snapshot(tagged: bool) -> Snapshot {
        let mut s = Snapshot {
            repository: "app".into(),
            ..Snapshot::default()
        };
        s.manifests.insert(d(1), ManifestFacts::default());
        if tagged {
            s.tags.insert("v1".into(), TagRef::new(d(1)));
        }
        s
    }

    #[test]
    fn untagged_since_is_set_once_and_cleared_by_a_tag() {
        let mut inv = RepoInventory::default();
        let mut s = snapshot(true);
        inv.observe(&mut s, &[], t("2026-01-01T00:00:00Z"));
        assert_eq!(inv.manifests[&d(1)].untagged_since, None);

        let mut s = snapshot(false);
        inv.observe(&mut s, &[], t("2026-01-02T00:00:00Z"));
        let mut s = snapshot(false);
        inv.observe(&mut s, &[], t("2026-01-05T00:00:00Z"));
        assert_eq!(
            inv.manifests[&d(1)].untagged_since,
            Some(t("2026-01-02T00:00:00Z"))
        );
        assert_eq!(
            s.manifests[&d(1)].untagged_since,
            Some(t("2026-01-02T00:00:00Z"))
        );

        let mut s = snapshot(true);
        inv.observe(&mut s, &[], t("2026-01-06T00:00:00Z"));
        assert_eq!(inv.manifests[&d(1)].untagged_since, None);
    }

    #[test]
    fn a_tag_is_dated_from_the_first_sweep_that_saw_it_on_its_digest() {
        let mut inv = RepoInventory::default();
        let mut s = snapshot(true);
        s.tags.insert(d(1).fallback_tag(), TagRef::new(d(1)));
        inv.observe(&mut s, &[], t("2026-01-01T00:00:00Z"));
        assert_eq!(s.tags["v1"].first_seen, Some(t("2026-01-01T00:00:00Z")));
        let link = d(1).fallback_tag();
        assert!(
            !inv.manifests[&d(1)].tags.contains_key(&link),
            "a link tag was dated"
        );

        // Seen again: the time stays. A read that failed drops nothing.
        let mut s = snapshot(true);
        inv.observe(&mut s, &[], t("2026-01-05T00:00:00Z"));
        assert_eq!(s.tags["v1"].first_seen, Some(t("2026-01-01T00:00:00Z")));
        let mut broken = snapshot(false);
        broken.problems.push("tag v1: HTTP 500".into());
        inv.observe(&mut broken, &[], t("2026-01-06T00:00:00Z"));
        assert!(inv.manifests[&d(1)].tags.contains_key("v1"));

        // Gone from the digest (moved, or removed), then back: it starts again.
        let mut s = snapshot(false);
        inv.observe(&mut s, &[], t("2026-01-07T00:00:00Z"));
        assert!(inv.manifests[&d(1)].tags.is_empty());
        let mut s = snapshot(true);
        inv.observe(&mut s, &[], t("2026-01-08T00:00:00Z"));
        assert_eq!(s.tags["v1"].first_seen, Some(t("2026-01-08T00:00:00Z")));

        // Read on another digest by a sweep that failed elsewhere: moved all the same.
        let mut moved = snapshot(true);
        moved.manifests.insert(d(2), ManifestFacts::default());
        moved.tags.insert("v1".into(), TagRef::new(d(2)));
        moved.problems.push("manifest sha256:…: HTTP 500".into());
        inv.observe(&mut moved, &[], t("2026-01-09T00:00:00Z"));
        assert!(!inv.manifests[&d(1)].tags.contains_key("v1"));
        let mut back = snapshot(true);
        inv.observe(&mut back, &[], t("2026-01-10T00:00:00Z"));
        assert_eq!(back.tags["v1"].first_seen, Some(t("2026-01-10T00:00:00Z")));

        // Removed by this janitor: pushed back onto the same digest, it starts again.
        inv.untagged([("v1", &d(1))]);
        let mut again = snapshot(true);
        inv.observe(&mut again, &[], t("2026-01-11T00:00:00Z"));
        assert_eq!(again.tags["v1"].first_seen, Some(t("2026-01-11T00:00:00Z")));
    }

    #[test]
    fn a_removal_record_outlives_its_tag_only_while_the_tag_dangles() {
        let mut inv = RepoInventory::default();
        inv.removing(
            [("gone", &d(7)), ("dangling", &d(8))],
            t("2026-01-01T00:00:00Z"),
        );
        // A later record of the same tag keeps the first time.
        inv.removing([("dangling", &d(9))], t("2026-01-03T00:00:00Z"));
        assert_eq!(inv.removing["dangling"].since, t("2026-01-01T00:00:00Z"));

        let mut broken = snapshot(false);
        broken.problems.push("tags listing failed".into());
        inv.observe(&mut broken, &[], t("2026-01-02T00:00:00Z"));
        assert_eq!(inv.removing.len(), 2, "an incomplete read settles nothing");
        // ... but a tag it read names something: not a leftover.
        inv.removing([("v1", &d(1))], t("2026-01-02T00:00:00Z"));
        let mut partly = snapshot(true);
        partly.problems.push("a manifest failed".into());
        inv.observe(&mut partly, &[], t("2026-01-02T00:00:00Z"));
        assert!(!inv.removing.contains_key("v1"));
        assert_eq!(inv.removing.len(), 2);

        let mut s = snapshot(true);
        s.dangling.insert("dangling".into(), d(8));
        inv.observe(&mut s, &[], t("2026-01-02T00:00:00Z"));
        let left: Vec<&str> = inv.removing.keys().map(String::as_str).collect();
        assert_eq!(left, vec!["dangling"]);
    }

    #[test]
    fn an_incomplete_sweep_starts_no_clock_and_gone_digests_are_forgotten() {
        let mut inv = RepoInventory::default();
        let mut s = snapshot(false);
        s.problems.push("tags listing failed".into());
        inv.observe(&mut s, &[], t("2026-01-01T00:00:00Z"));
        assert_eq!(inv.manifests[&d(1)].untagged_since, None);
        let mut empty = Snapshot::default();
        inv.observe(&mut empty, &[d(1)], t("2026-01-02T00:00:00Z"));
        assert!(inv.manifests.is_empty());
    }
}
