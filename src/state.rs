//! The inventory: what the janitor remembers between sweeps.
//!
//! The OCI API lists tags, not manifests, so a manifest that loses its last tag vanishes from
//! view. The inventory remembers every digest a sweep (or a webhook) saw, what it is (its
//! facts never change, since a digest names its content), and since when no tag reaches it.
//! That clock gives untagged manifests a real grace period: it starts when the janitor first
//! sees a manifest untagged, is never moved later, and stops when a tag reaches it again.
//!
//! Stores sit behind `StateStore`: a JSON file for the CLI, nothing at all with `--no-state`.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::graph::reached_by_user_tags;
use crate::plan::{ManifestFacts, Snapshot};
use crate::registry::Digest;

/// What the janitor remembers about one repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoInventory {
    pub manifests: BTreeMap<Digest, Remembered>,
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
}

impl Remembered {
    pub fn new(now: DateTime<Utc>) -> Remembered {
        Remembered {
            first_seen: now,
            untagged_since: None,
            facts: None,
        }
    }
}

impl RepoInventory {
    /// Record what a sweep saw, start or stop untagged clocks, and copy each clock into the
    /// snapshot for the planner. `gone` are digests the registry says no longer exist.
    ///
    /// An incomplete snapshot starts no clocks: a manifest may only look untagged because its
    /// tag could not be read.
    pub fn observe(&mut self, snapshot: &mut Snapshot, gone: &[Digest], now: DateTime<Utc>) {
        for digest in gone {
            self.manifests.remove(digest);
        }
        let complete = snapshot.problems.is_empty();
        let reached = reached_by_user_tags(snapshot);
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
            stored.locked = false;
            // An index's age is derived from its children each sweep, never remembered: a
            // child read later may change it.
            if !stored.children.is_empty() {
                stored.created = None;
            }
            entry.facts = Some(stored);
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
}

/// The inventory in one JSON file, written atomically (temporary file, then rename) and
/// locked for the whole run so two runs cannot interleave.
pub struct FileState {
    path: PathBuf,
    registry: String,
    data: FileDocument,
    dirty: bool,
    /// Held open for the run: the advisory lock lives as long as this handle.
    _lock: File,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileDocument {
    version: u32,
    registry: String,
    repositories: BTreeMap<String, RepoInventory>,
}

impl FileState {
    /// Open (or start) the state file for `registry`, taking its lock.
    pub fn open(path: &Path, registry: &str) -> Result<FileState, StateError> {
        let fail = |reason: String| StateError::File {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create its folder: {e}")))?;
        }
        let lock_path = lock_path(path);
        let lock = File::create(&lock_path)
            .map_err(|e| fail(format!("cannot create {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    path: path.to_owned(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fail(format!("cannot lock: {e}"))),
        }
        let data = match std::fs::read(path) {
            Ok(bytes) => {
                let doc: FileDocument = serde_json::from_slice(&bytes)
                    .map_err(|e| fail(format!("not a registry-janitor state file: {e}")))?;
                if doc.registry != registry {
                    return Err(fail(format!(
                        "it belongs to registry {:?}, not {registry:?}; use another --state file",
                        doc.registry
                    )));
                }
                doc
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileDocument {
                version: 1,
                registry: registry.to_owned(),
                repositories: BTreeMap::new(),
            },
            Err(e) => return Err(fail(e.to_string())),
        };
        Ok(FileState {
            path: path.to_owned(),
            registry: registry.to_owned(),
            data,
            dirty: false,
            _lock: lock,
        })
    }

    /// `$XDG_STATE_HOME/registry-janitor/<host>.json`, else `~/.local/state/...`.
    pub fn default_path(host: &str, env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        let base = env("XDG_STATE_HOME")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
        let file = host.replace([':', '/'], "_");
        Some(base.join("registry-janitor").join(format!("{file}.json")))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    path.with_file_name(name)
}

impl StateStore for FileState {
    async fn load(&mut self, repository: &str) -> Result<RepoInventory, StateError> {
        Ok(self
            .data
            .repositories
            .get(repository)
            .cloned()
            .unwrap_or_default())
    }

    async fn save(&mut self, repository: &str, inventory: RepoInventory) -> Result<(), StateError> {
        if inventory.manifests.is_empty() {
            self.data.repositories.remove(repository);
        } else {
            self.data
                .repositories
                .insert(repository.to_owned(), inventory);
        }
        self.dirty = true;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StateError> {
        if !self.dirty {
            return Ok(());
        }
        let fail = |reason: String| StateError::File {
            path: self.path.clone(),
            reason,
        };
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = self.path.with_file_name(tmp_name);
        let bytes = serde_json::to_vec(&self.data).map_err(|e| fail(e.to_string()))?;
        let mut file = File::create(&tmp).map_err(|e| fail(format!("cannot write: {e}")))?;
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| fail(format!("cannot write: {e}")))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail(format!("cannot replace: {e}")))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TagRef;

    fn d(n: u32) -> Digest {
        format!("sha256:{n:064x}").parse().unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
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

    #[tokio::test]
    async fn file_state_round_trips_and_locks_out_a_second_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut store = FileState::open(&path, "127.0.0.1:5000").unwrap();
        assert!(matches!(
            FileState::open(&path, "127.0.0.1:5000"),
            Err(StateError::Locked { .. })
        ));
        let mut inv = RepoInventory::default();
        inv.manifests
            .insert(d(1), Remembered::new(t("2026-01-01T00:00:00Z")));
        store.save("app", inv.clone()).await.unwrap();
        store.flush().await.unwrap();
        drop(store);
        let mut again = FileState::open(&path, "127.0.0.1:5000").unwrap();
        assert_eq!(again.load("app").await.unwrap(), inv);
        drop(again);
        let err = FileState::open(&path, "other:5000").err().unwrap();
        assert!(err.to_string().contains("belongs to registry"), "{err}");
    }
}
