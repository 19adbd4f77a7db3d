//! Before any change: every manifest the plan deletes or trashes is written to the journal
//! (`crate::journal`) with its exact bytes: those collect read this run, else read now (the
//! inventory knew the rest). A manifest that cannot be read, or a journal that cannot be
//! written, stops the repository before anything changes.

use std::collections::BTreeMap;

use super::{tags_on, Run};
use crate::journal::{Action, Journal, Record};
use crate::plan::{Cause, Delete, Problem, Snapshot};
use crate::registry::Digest;

impl Run<'_> {
    /// `snapshot` is the plan's (its `bodies` are the manifests read this run, which are
    /// not read again), `fresh` the re-check's (the tags as they are now).
    pub(super) async fn journal(
        &self,
        journal: &dyn Journal,
        snapshot: &Snapshot,
        fresh: &Snapshot,
        going: &[&Delete],
    ) -> Result<(), Problem> {
        if going.is_empty() {
            return Ok(());
        }
        let mut read: BTreeMap<Digest, (String, &[u8])> = BTreeMap::new();
        let mut fetched = Vec::new();
        let unread: Vec<Digest> = going
            .iter()
            .filter(|d| !snapshot.bodies.contains_key(&d.digest))
            .map(|d| d.digest.clone())
            .collect();
        if !unread.is_empty() {
            for (digest, result) in self
                .client
                .manifests_by_digest(&self.repo, unread, self.reads())
                .await
            {
                match result {
                    Ok(m) => fetched.push(m),
                    Err(e) => {
                        return Err(Problem::of(
                            format!(
                                "journal: cannot read {digest} to record it before deleting it"
                            ),
                            &e,
                        ))
                    }
                }
            }
        }
        for m in &fetched {
            read.insert(m.digest.clone(), (m.media_type.to_string(), &m.bytes));
        }
        for d in going {
            if let (Some(bytes), Some(facts)) = (
                snapshot.bodies.get(&d.digest),
                snapshot.manifests.get(&d.digest),
            ) {
                read.insert(d.digest.clone(), (facts.media_type.clone(), bytes));
            }
        }
        let records: Vec<Record> = going
            .iter()
            .filter_map(|d| {
                let (media_type, bytes) = read.get(&d.digest)?;
                Some(Record {
                    time: self.now,
                    registry: self.client.host().to_owned(),
                    repository: self.repo.clone(),
                    digest: d.digest.clone(),
                    media_type: media_type.clone(),
                    manifest: Record::encode(bytes),
                    tags: tags_on(fresh, &d.digest),
                    reason: d.reason.clone(),
                    action: match d.trash_until {
                        Some(_) => Action::Trash,
                        None => Action::Delete,
                    },
                })
            })
            .collect();
        if records.len() != going.len() {
            return Err(Problem::new(
                Cause::Read,
                "journal: the registry did not answer for every manifest to record",
            ));
        }
        journal.append(&records).await.map_err(|e| {
            Problem::new(
                Cause::Read,
                format!("journal: {e}; nothing is deleted without its record"),
            )
        })?;
        tracing::info!(action = "journal", repository = %self.repo, journal = %journal.name(), records = records.len(), "recorded before the changes");
        Ok(())
    }
}
