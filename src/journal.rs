//! The journal: a record of every manifest apply deletes or trashes, written before the
//! registry changes, so that `restore --from-journal` can put back what was deleted for good.
//!
//! Each record holds what pushing the manifest again needs (its media type and its exact
//! bytes) and what a person needs to decide (its repository, tags, the plan's reason, the
//! run's time). If the journal cannot be written, apply changes nothing in that repository.
//!
//! The CLI's journal is a file of JSON lines beside the inventory (`FileJournal`), appended
//! to and flushed to disk before the changes start.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::registry::Digest;

/// One manifest apply deleted or trashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The run's time (the plan's `now`).
    pub time: DateTime<Utc>,
    /// The registry's `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    /// The manifest's exact bytes, base64.
    pub manifest: String,
    /// Its tags when it went (link tags too).
    pub tags: Vec<String>,
    /// Why the plan deleted it (it names the rule).
    pub reason: String,
    /// `delete` or `trash`.
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Delete,
    Trash,
}

impl Record {
    /// The manifest's bytes, decoded.
    pub fn bytes(&self) -> Result<Vec<u8>, JournalError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.manifest)
            .map_err(|e| JournalError::Record {
                what: format!("{}@{}", self.repository, self.digest),
                reason: format!("the manifest is not base64: {e}"),
            })
    }

    pub fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {reason}")]
    File { path: String, reason: String },
    #[error("journal record {what}: {reason}")]
    Record { what: String, reason: String },
}

/// Where records go. `append` returns only once they are safely written.
pub trait Journal: Send + Sync {
    /// Where, for messages.
    fn name(&self) -> String;

    fn append<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<(), JournalError>>;
}

/// A file of JSON lines, one record a line.
pub struct FileJournal {
    path: PathBuf,
}

impl FileJournal {
    pub fn new(path: impl Into<PathBuf>) -> FileJournal {
        FileJournal { path: path.into() }
    }

    /// The journal beside an inventory file: `<host>.json` has `<host>.journal.jsonl`.
    pub fn beside(inventory: &Path) -> FileJournal {
        let stem = inventory
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "registry-janitor".into());
        FileJournal::new(inventory.with_file_name(format!("{stem}.journal.jsonl")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record in the file, in the order written. A line that does not read is an
    /// error naming it: a restore never acts on half a journal.
    pub fn read(&self) -> Result<Vec<Record>, JournalError> {
        let file = std::fs::File::open(&self.path).map_err(|e| self.error(e))?;
        let mut records = Vec::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| self.error(e))?;
            if line.trim().is_empty() {
                continue;
            }
            let record = serde_json::from_str(&line).map_err(|e| JournalError::File {
                path: self.path.display().to_string(),
                reason: format!("line {}: {e}", n + 1),
            })?;
            records.push(record);
        }
        Ok(records)
    }

    fn error(&self, e: impl std::fmt::Display) -> JournalError {
        file_error(&self.path, e)
    }
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> JournalError {
    JournalError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Append `records` to `path` as JSON lines, and flush them to disk.
fn write(path: &Path, records: &[Record]) -> Result<(), JournalError> {
    let mut text = String::new();
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| file_error(path, e))?;
        text.push_str(&line);
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(path, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| file_error(path, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(|e| file_error(path, e))
}

impl Journal for FileJournal {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn append<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<(), JournalError>> {
        let (path, records) = (self.path.clone(), records.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || write(&path, &records))
                .await
                .map_err(|e| file_error(self.path(), e))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> Record {
        Record {
            time: "2026-12-03T10:00:00Z".parse().unwrap(),
            registry: "localhost:5000".into(),
            repository: "app".into(),
            digest: Digest::sha256_of(&[n]),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            manifest: Record::encode(b"{\"schemaVersion\":2}"),
            tags: vec![format!("v{n}")],
            reason: "tag \"v1\": rule \"old\" selects every matching tag".into(),
            action: Action::Delete,
        }
    }

    #[tokio::test]
    async fn records_append_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::beside(&dir.path().join("state/localhost_5000.json"));
        assert!(journal
            .path()
            .ends_with("state/localhost_5000.journal.jsonl"));
        journal.append(&[record(1)]).await.unwrap();
        journal.append(&[record(2), record(3)]).await.unwrap();
        assert_eq!(
            journal.read().unwrap(),
            vec![record(1), record(2), record(3)]
        );
        assert_eq!(record(1).bytes().unwrap(), b"{\"schemaVersion\":2}");
    }

    #[test]
    fn a_line_that_does_not_read_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let good = serde_json::to_string(&record(1)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"time\":\n")).unwrap();
        let e = FileJournal::new(&path).read().unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
