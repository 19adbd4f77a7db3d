//! Phase 4, the delete waves: parents first, the tags read again before a wave that deletes
//! the children of an index (`newly_reached`, pure), a failed delete holding back what is
//! below it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{
    kept_for_lock, kept_stopped, log_action, stopped_for_time, tags_by_digest, tags_on, Decider,
    Run, CUT_IN_FLIGHT, CUT_OFF,
};
use crate::bounded;
use crate::collect::refresh_tags;
use crate::plan::graph::{Edge, Graph};
use crate::plan::{Cause, Delete, Keep, KeepKind, Problem, RepositoryPlan, Snapshot, Status};
use crate::registry::{Deleted, Digest, RegistryError};

/// Planned manifests that a tag new or moved since `basis` reaches in `view`, each with the
/// first such tag (by name). Pure. A tag that names what it named in `basis` changes
/// nothing, and tags removed since are not in `view`.
pub fn newly_reached(
    basis: &BTreeMap<String, Digest>,
    view: &Snapshot,
    planned: &BTreeSet<Digest>,
) -> BTreeMap<Digest, String> {
    let graph = Graph::of(view);
    let mut reached = BTreeMap::new();
    for (tag, t) in &view.tags {
        if basis.get(tag) == Some(&t.digest) {
            continue;
        }
        for d in graph.reach([&t.digest]).into_keys() {
            if planned.contains(&d) {
                reached.entry(d).or_insert_with(|| tag.clone());
            }
        }
    }
    reached
}

/// Whether a wave needs the tags read again before it: when it deletes a manifest that a
/// build could reuse, the child of an index. A wave of referrers only (signatures, SBOMs,
/// attestations, the children of a referrers fallback index) is not re-read: builds never
/// reuse another image's referrers, and what they refer to went in an earlier wave.
/// `referrers` collects, wave by wave, the planned manifests that are such referrers.
pub(super) fn wave_needs_recheck(
    graph: &Graph,
    wave: &[(Digest, Vec<Digest>)],
    referrers: &mut BTreeSet<Digest>,
) -> bool {
    let mut needs = false;
    for (digest, parents) in wave {
        let is_referrer = !parents.is_empty()
            && parents.iter().all(|p| {
                referrers.contains(p)
                    || graph
                        .edges(p)
                        .iter()
                        .any(|(n, e)| n == digest && *e == Edge::Referrer)
            });
        if is_referrer {
            referrers.insert(digest.clone());
        } else if !parents.is_empty() {
            needs = true;
        }
    }
    needs
}

impl Run<'_> {
    /// Phase 4: delete `entries` in waves, parents first. Adds the tags of what it deletes
    /// (or tries to) to `removed`, and its entries and keeps to `done`.
    pub(super) async fn delete_waves(
        &self,
        fresh: &Snapshot,
        entries: BTreeMap<Digest, Delete>,
        decider: &Decider<'_>,
        after_untags: bool,
        removed: &mut BTreeMap<String, Digest>,
        done: &mut RepositoryPlan,
    ) {
        let (client, repo) = (self.client, self.repo.as_str());
        let graph = Graph::of(fresh);
        let go: BTreeSet<Digest> = entries.keys().cloned().collect();
        let basis: BTreeMap<String, Digest> = fresh
            .tags
            .iter()
            .map(|(n, t)| (n.clone(), t.digest.clone()))
            .collect();
        // The tags as last read; a wave's re-check replaces it.
        let mut view: Option<Snapshot> = None;
        let mut referrers = BTreeSet::new();
        // Tags this run has taken away so far: untagged, or on a manifest it deleted.
        let mut taken: BTreeSet<String> = done
            .untag
            .iter()
            .filter(|u| u.error.is_none())
            .map(|u| u.tag.clone())
            .collect();
        let mut failed: BTreeSet<Digest> = BTreeSet::new();
        let mut locked: BTreeSet<Digest> = BTreeSet::new();
        // Stopped by the run's cutoff: kept for the next run, not failed.
        let mut cut: BTreeSet<Digest> = BTreeSet::new();
        // Reached by a tag pushed while deleting: kept, with that tag.
        let mut held: BTreeMap<Digest, String> = BTreeMap::new();
        // Why the rest is not deleted, once the tags cannot be read again.
        let mut unreadable: Option<String> = None;
        let waves = graph.waves(&go);
        for (i, wave) in waves.iter().cloned().enumerate() {
            let recheck = wave_needs_recheck(&graph, &wave, &mut referrers);
            let wave: Vec<_> = wave
                .into_iter()
                .filter(|(d, _)| !held.contains_key(d))
                .collect();
            if wave.is_empty() {
                continue;
            }
            // The tags could not be read again: no new delete starts, and each says why.
            if let Some(why) = &unreadable {
                for (digest, _) in wave {
                    let mut entry = entries[&digest].clone();
                    entry.error = Some(why.clone());
                    failed.insert(digest);
                    done.delete.push(entry);
                }
                continue;
            }
            // Out of time: what is left was not tried; it is kept for the next run.
            if self.out_of_time() {
                stopped_for_time(&waves[i..], &entries, &held, &mut failed, done);
                break;
            }
            // The first wave is read again too when untags came first: placeholder untags go
            // one at a time, and a rollback may land meanwhile.
            if (i > 0 && recheck) || (i == 0 && after_untags) {
                let base = view.as_ref().unwrap_or(fresh);
                let gone: BTreeSet<String> = removed.keys().cloned().collect();
                let started = Instant::now();
                let now = refresh_tags(client, base, &gone, true, self.reads()).await;
                tracing::debug!(
                    repository = repo,
                    wave = i + 1,
                    tags = now.tags.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "tags read again before deleting children"
                );
                if !now.problems.is_empty() {
                    let problem = Problem::join(&now.problems);
                    // Cut off by the run's time: the rest waits for the next run.
                    if problem.cause == Cause::Deadline {
                        stopped_for_time(&waves[i..], &entries, &held, &mut failed, done);
                        break;
                    }
                    let why = format!(
                        "not deleted: the tags could not be read again before this wave: {problem}"
                    );
                    tracing::warn!(repository = repo, error = %why, "stopping this repository's deletes");
                    for (digest, _) in wave {
                        let mut entry = entries[&digest].clone();
                        entry.error = Some(why.clone());
                        failed.insert(digest);
                        done.delete.push(entry);
                    }
                    unreadable = Some(why);
                    continue;
                }
                // This wave and the ones after it.
                let left: BTreeSet<Digest> = waves[i..]
                    .iter()
                    .flatten()
                    .map(|(d, _)| d)
                    .filter(|d| !failed.contains(*d) && !held.contains_key(*d))
                    .cloned()
                    .collect();
                // A tag this run removed that is listed again was pushed again: new, even
                // when it names what it named before (a rollback onto a deleted index).
                let basis: BTreeMap<String, Digest> = basis
                    .iter()
                    .filter(|(t, _)| !taken.contains(*t))
                    .map(|(t, d)| (t.clone(), d.clone()))
                    .collect();
                for (digest, tag) in newly_reached(&basis, &now, &left) {
                    let entry = &entries[&digest];
                    let reason = format!("changed while deleting: tag {tag} now reaches it");
                    tracing::info!(action = "keep", repository = repo, digest = %digest, reason = %reason, "kept");
                    done.keep.push(Keep {
                        digest: digest.clone(),
                        tags: tags_on(&now, &digest),
                        reason,
                        kind: KeepKind::Changed,
                        since: entry.since,
                    });
                    held.insert(digest, tag);
                }
                view = Some(now);
            }
            let current = view.as_ref().unwrap_or(fresh);
            let (blocked, ready): (Vec<_>, Vec<_>) = wave
                .into_iter()
                .filter(|(d, _)| !held.contains_key(d))
                .partition(|(_, parents)| parents.iter().any(|p| failed.contains(p)));
            for (digest, parents) in blocked {
                let parent = parents.iter().find(|p| failed.contains(*p));
                let entry = entries[&digest].clone();
                failed.insert(digest.clone());
                match parent {
                    Some(p) if cut.contains(p) => {
                        cut.insert(digest);
                        done.keep.push(kept_stopped(entry, CUT_OFF));
                    }
                    Some(p) if locked.contains(p) => {
                        locked.insert(digest);
                        done.keep.push(kept_for_lock(
                            entry,
                            format!("its parent {} is locked in the registry", p.short()),
                        ));
                    }
                    _ => {
                        let mut entry = entry;
                        entry.error = Some(format!(
                            "not deleted: its parent {} could not be deleted",
                            parent.map(|p| p.short()).unwrap_or_default()
                        ));
                        done.delete.push(entry);
                    }
                }
            }
            let results = self.delete_ready(current, ready, decider).await;
            for (digest, result) in results {
                let mut entry = entries[&digest].clone();
                log_action("delete", repo, &digest, &entry.tags, &entry.reason, &result);
                match result {
                    // A lock is the registry owner's decision, not a failure of the run.
                    Err(e) if e.is_locked() => {
                        failed.insert(digest.clone());
                        locked.insert(digest);
                        done.keep
                            .push(kept_for_lock(entry, "the registry refused: locked".into()));
                        continue;
                    }
                    // The run's cutoff stopped it (maybe mid-flight): the next run finishes
                    // it, and phase 5 or the next sweep sees whether its tags are gone.
                    Err(e) if e.is_out_of_time() => {
                        failed.insert(digest.clone());
                        cut.insert(digest.clone());
                        done.status = Status::Unfinished;
                        for tag in tags_on(current, &digest) {
                            removed.insert(tag, digest.clone());
                        }
                        let why = if e.was_sent() { CUT_IN_FLIGHT } else { CUT_OFF };
                        done.keep.push(kept_stopped(entry, why));
                        continue;
                    }
                    Err(e) => {
                        entry.error = Some(e.to_string());
                        failed.insert(digest.clone());
                    }
                    Ok(_) => taken.extend(tags_on(current, &digest)),
                }
                // Deleting by digest removes every tag on it, or should: phase 5 checks,
                // failed deletes too (a 500 may come after the manifest is gone).
                for tag in tags_on(current, &digest) {
                    removed.insert(tag, digest.clone());
                }
                done.delete.push(entry);
            }
        }
    }

    /// Delete one wave's ready manifests: one `delete_manifests` call, which the backend
    /// sends as one batch or one request each. With `--unlock`, the locks of a manifest (and
    /// of its tags) are lifted first; one whose lock cannot be lifted is not sent.
    pub(super) async fn delete_ready(
        &self,
        current: &Snapshot,
        ready: Vec<(Digest, Vec<Digest>)>,
        decider: &Decider<'_>,
    ) -> Vec<(Digest, Result<Deleted, RegistryError>)> {
        let by_digest = tags_by_digest(current);
        let (client, repo) = (self.client, self.repo.as_str());
        let unlocked: Vec<(Digest, Result<bool, RegistryError>)> =
            bounded::each(self.concurrency, ready, |(digest, _)| {
                let by_digest = &by_digest;
                async move {
                    let r = self
                        .unlock_first(current, by_digest, decider, &digest)
                        .await;
                    (digest, r)
                }
            })
            .await;
        let mut results = Vec::new();
        let mut send = Vec::new();
        let mut lifted = BTreeSet::new();
        for (digest, r) in unlocked {
            match r {
                Ok(true) => {
                    lifted.insert(digest.clone());
                    send.push(digest);
                }
                Ok(false) => send.push(digest),
                Err(e) => results.push((digest, Err(e))),
            }
        }
        for (digest, r) in client.delete_manifests(repo, send, self.concurrency).await {
            let r = match r {
                // Say so: the lock is not put back.
                Err(e) if lifted.contains(&digest) => Err(RegistryError::InvalidResponse {
                    method: "DELETE".into(),
                    path: format!("/v2/{repo}/manifests/{digest}"),
                    reason: format!(
                        "unlocked it, then the delete failed, so it stays unlocked: {e}"
                    ),
                }),
                other => other,
            };
            results.push((digest, r));
        }
        results.sort_by(|a, b| a.0.cmp(&b.0));
        results
    }

    /// With `--unlock`, lift the locks of `digest` and its locked tags, and say whether any
    /// were lifted.
    pub(super) async fn unlock_first(
        &self,
        current: &Snapshot,
        by_digest: &BTreeMap<&Digest, Vec<&str>>,
        decider: &Decider<'_>,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        if !decider.unlock {
            return Ok(false);
        }
        let (client, repo) = (self.client, self.repo.as_str());
        let locked_tags: Vec<&str> = by_digest
            .get(digest)
            .into_iter()
            .flatten()
            .copied()
            .filter(|n| current.tags.get(*n).is_some_and(|t| t.locked))
            .collect();
        let locked = current.manifests.get(digest).is_some_and(|f| f.locked);
        if !locked && locked_tags.is_empty() {
            return Ok(false);
        }
        client.unlock(repo, Some(digest), &locked_tags).await?;
        tracing::warn!(action = "unlock", repository = repo, digest = %digest, tags = ?locked_tags, "lifted the registry's lock to delete it (--unlock)");
        Ok(true)
    }
}
