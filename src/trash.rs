//! The trash: where apply puts what a plan deletes when the policy has `trash`, and where
//! `restore` takes it back from.
//!
//! A trash index is an OCI image index that the janitor pushes under a tag of its own,
//! `janitor-trash-<UTC time>`. Its `manifests` are the descriptors of everything one run
//! trashed in one repository, and each descriptor's annotations record the tags that manifest
//! had and why it went. The index records the run's time and when it expires. While it
//! exists, every registry keeps what it names: it is tagged, and everything in it is its
//! child. A later run deletes it once it has expired, with what nothing else reaches.
//!
//! This file is pure: it builds an index and reads one back. Apply pushes it
//! (`apply/trash.rs`), the planner reads its `Mark` from the snapshot, and `restore` reads its
//! entries.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::manifest::{Descriptor, Manifest};
use crate::registry::media_type::OCI_INDEX;
use crate::registry::{Digest, MediaType};

/// Every trash tag starts so; the rest is the run's UTC time.
pub const TAG_PREFIX: &str = "janitor-trash-";
/// The `artifactType` of a trash index: what tells it from an index someone else pushed.
pub const ARTIFACT_TYPE: &str = "application/vnd.registry-janitor.trash.v1+json";
/// Annotations of the index: the run's time, and when the trash expires (RFC 3339, UTC).
const RUN: &str = "dev.registry-janitor.trash.run";
const EXPIRES: &str = "dev.registry-janitor.trash.expires";
/// Annotations of each entry: its tags (a JSON array) and why the plan deleted it.
const TAGS: &str = "dev.registry-janitor.trash.tags";
const REASON: &str = "dev.registry-janitor.trash.reason";

/// What the planner knows of a trash index: when it was filled, and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub run: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

impl Mark {
    /// The mark of `manifest`, if it is a trash index: an index of our artifact type whose
    /// run and expiry both read.
    pub fn of(manifest: &Manifest) -> Option<Mark> {
        if manifest.media_type != MediaType::OciIndex
            || manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE)
        {
            return None;
        }
        let time = |key: &str| {
            DateTime::parse_from_rfc3339(manifest.annotations.get(key)?)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        Some(Mark {
            run: time(RUN)?,
            expires: time(EXPIRES)?,
        })
    }

    /// Whether the trash has expired at `now`: a run then empties it.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires
    }
}

/// One manifest in the trash: its descriptor, the tags it had, and why it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub descriptor: Descriptor,
    pub tags: Vec<String>,
    pub reason: String,
}

impl Entry {
    pub fn new(
        digest: Digest,
        media_type: &str,
        size: u64,
        tags: Vec<String>,
        reason: &str,
    ) -> Entry {
        Entry {
            descriptor: Descriptor {
                media_type: media_type.to_owned(),
                digest,
                size,
                artifact_type: None,
                platform: None,
                annotations: BTreeMap::new(),
            },
            tags,
            reason: reason.to_owned(),
        }
    }

    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }
}

/// A trash index: its mark and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashIndex {
    pub mark: Mark,
    pub entries: Vec<Entry>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    schema_version: u32,
    media_type: &'a str,
    artifact_type: &'a str,
    manifests: Vec<Descriptor>,
    annotations: BTreeMap<&'a str, String>,
}

impl TrashIndex {
    /// Read a trash index back; `None` if `manifest` is not one.
    pub fn read(manifest: &Manifest) -> Option<TrashIndex> {
        let mark = Mark::of(manifest)?;
        let entries = manifest
            .children()
            .iter()
            .map(|d| {
                let mut descriptor = d.clone();
                let tags = descriptor
                    .annotations
                    .remove(TAGS)
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                let reason = descriptor.annotations.remove(REASON).unwrap_or_default();
                Entry {
                    descriptor,
                    tags,
                    reason,
                }
            })
            .collect();
        Some(TrashIndex { mark, entries })
    }

    /// The index's bytes, as pushed: the same entries always give the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifests = self
            .entries
            .iter()
            .map(|e| {
                let mut d = e.descriptor.clone();
                if !e.tags.is_empty() {
                    d.annotations.insert(
                        TAGS.to_owned(),
                        serde_json::to_string(&e.tags).unwrap_or_default(),
                    );
                }
                d.annotations.insert(REASON.to_owned(), e.reason.clone());
                d
            })
            .collect();
        let wire = Wire {
            schema_version: 2,
            media_type: OCI_INDEX,
            artifact_type: ARTIFACT_TYPE,
            manifests,
            annotations: BTreeMap::from([
                (RUN, rfc3339(self.mark.run)),
                (EXPIRES, rfc3339(self.mark.expires)),
            ]),
        };
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

/// The trash tag of a run at `run`: `janitor-trash-20261203T182538Z`.
pub fn tag_for(run: DateTime<Utc>) -> String {
    format!("{TAG_PREFIX}{}", run.format("%Y%m%dT%H%M%SZ"))
}

/// Whether `tag` has the form of a trash tag (the planner also asks that its manifest is a
/// trash index before it treats the tag as the janitor's own).
pub fn is_trash_tag(tag: &str) -> bool {
    tag.starts_with(TAG_PREFIX)
}

/// A time as the trash writes and shows it: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn index() -> TrashIndex {
        TrashIndex {
            mark: Mark {
                run: at("2026-12-03T10:00:00Z"),
                expires: at("2026-12-10T10:00:00Z"),
            },
            entries: vec![
                Entry::new(
                    Digest::sha256_of(b"image"),
                    "application/vnd.oci.image.manifest.v1+json",
                    512,
                    vec!["v1".into(), "sha256-abc.sig".into()],
                    "tag \"v1\": rule \"old\" selects this tag",
                ),
                Entry::new(
                    Digest::sha256_of(b"child"),
                    "application/vnd.oci.image.manifest.v1+json",
                    300,
                    Vec::new(),
                    "child of sha256:1234, which is deleted",
                ),
            ],
        }
    }

    #[test]
    fn a_trash_index_reads_back_its_entries_tags_reasons_and_times() {
        let bytes = index().to_bytes();
        let m = Manifest::parse(Digest::sha256_of(&bytes), Some(OCI_INDEX), &bytes).unwrap();
        assert_eq!(TrashIndex::read(&m), Some(index()));
        assert_eq!(
            Mark::of(&m).map(|m| m.expires),
            Some(at("2026-12-10T10:00:00Z"))
        );
        assert_eq!(
            index().to_bytes(),
            bytes,
            "the same entries, the same bytes"
        );
    }

    #[test]
    fn an_index_without_the_trash_artifact_type_or_times_is_not_trash() {
        let plain = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"dev.registry-janitor.trash.run":"2026-12-03T10:00:00Z","dev.registry-janitor.trash.expires":"2026-12-10T10:00:00Z"}}"#;
        let m = Manifest::parse(Digest::sha256_of(plain), Some(OCI_INDEX), plain).unwrap();
        assert_eq!(Mark::of(&m), None);
        let no_time = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","artifactType":"application/vnd.registry-janitor.trash.v1+json","manifests":[],"annotations":{"dev.registry-janitor.trash.run":"yesterday"}}"#;
        let m = Manifest::parse(Digest::sha256_of(no_time), Some(OCI_INDEX), no_time).unwrap();
        assert_eq!(Mark::of(&m), None);
    }

    #[test]
    fn a_trash_tag_names_the_run_in_utc_and_expiry_is_inclusive() {
        assert_eq!(
            tag_for(at("2026-12-03T18:25:38.9Z")),
            "janitor-trash-20261203T182538Z"
        );
        assert!(is_trash_tag("janitor-trash-20261203T182538Z"));
        assert!(!is_trash_tag("v1"));
        let mark = index().mark;
        assert!(!mark.expired(at("2026-12-10T09:59:59Z")));
        assert!(mark.expired(at("2026-12-10T10:00:00Z")));
    }
}
