//! Phase 5, verify: one tag listing shows whether every tag this run removed is gone, and a
//! tag the registry left behind naming nothing is removed again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use super::{Expect, Run, Untagged};
use crate::registry::Digest;

impl Run<'_> {
    /// Phase 5: are the tags this run removed gone? One listing. A tag still listed that names
    /// something readable was pushed again (or its removal failed, and its entry says so): it
    /// is left alone. One that names nothing was left behind by the registry: its removal is
    /// finished with a placeholder, and a second listing confirms it. Returns the tags still
    /// not settled, and an error for each one that could not be finished.
    pub(super) async fn verify(
        &self,
        removed: &BTreeMap<String, Digest>,
    ) -> (BTreeMap<String, Digest>, Vec<(String, String)>) {
        let mut unsettled = BTreeMap::new();
        let mut failures = Vec::new();
        // What is checked is distribution's tag store, which the OCI API lists by name and
        // which fails a manifest DELETE halfway under concurrent writes. A backend whose own
        // API lists tags with their digests (ACR) keeps tags in its own index and removes them
        // itself (a manifest delete, its tag delete); it is not checked, which saves a listing
        // per repository.
        if removed.is_empty() || self.client.capabilities().tags_with_digests {
            return (unsettled, failures);
        }
        // Past the deadline nothing is checked, and every removed tag stays unsettled: the
        // next sweep sees which are gone.
        if self.out_of_time() {
            self.ran_out.store(true, Ordering::Relaxed);
            return (removed.clone(), failures);
        }
        let repo = self.repo.as_str();
        let listed = match self.client.tags(repo).await {
            Ok(l) => l
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect::<BTreeSet<String>>(),
            Err(e) => {
                tracing::warn!(repository = repo, error = %e, "cannot list the tags to check that the removed ones are gone; the next run checks");
                return (removed.clone(), failures);
            }
        };
        let mut finished = BTreeMap::new();
        for (tag, digest) in removed.iter().filter(|(t, _)| listed.contains(*t)) {
            match self.untag(tag, Expect::Nothing, false).await {
                Ok(Untagged::Done) => {
                    tracing::warn!(action = "untag", repository = repo, tag = %tag, digest = %digest, "the registry still listed this removed tag, naming nothing; removed it again");
                    finished.insert(tag.clone(), digest.clone());
                }
                // It names something readable: pushed again, or its removal failed (and its
                // entry says so). Either way it is not a leftover.
                Ok(Untagged::Moved) => {}
                Ok(Untagged::OutOfTime) => {
                    unsettled.insert(tag.clone(), digest.clone());
                }
                Err(e) if e.is_out_of_time() => {
                    self.ran_out.store(true, Ordering::Relaxed);
                    unsettled.insert(tag.clone(), digest.clone());
                }
                Err(e) => {
                    unsettled.insert(tag.clone(), digest.clone());
                    failures.push((
                        tag.clone(),
                        format!("the registry still lists tag {tag}, naming nothing, and removing it again failed: {e}; the next run tries again"),
                    ));
                }
            }
        }
        if finished.is_empty() {
            return (unsettled, failures);
        }
        // A registry whose listing lags still lists what it removed a moment ago: not a
        // failure; the next sweep settles it either way (gone, or finished).
        match self.client.tags(repo).await {
            Ok(l) => {
                let listed: BTreeSet<String> = l.names().into_iter().map(str::to_owned).collect();
                for (tag, digest) in finished.into_iter().filter(|(t, _)| listed.contains(t)) {
                    tracing::warn!(repository = repo, tag = %tag, "the registry still lists this tag after removing it twice; the next sweep finishes it");
                    unsettled.insert(tag, digest);
                }
            }
            Err(_) => unsettled.extend(finished),
        }
        (unsettled, failures)
    }
}
