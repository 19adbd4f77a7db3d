//! The inventory in one local JSON file: the CLI's default.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{RepoInventory, StateError, StateStore};

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
        if inventory.manifests.is_empty() && inventory.removing.is_empty() {
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
    use crate::state::tests::{d, t};
    use crate::state::Remembered;

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
