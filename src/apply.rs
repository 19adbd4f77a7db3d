//! Apply: carry a plan out, safely.
//!
//! Just before changing a repository it reads the tags again. Whatever changed since
//! planning is planned again, and only what both plans delete, and what no surviving manifest
//! still reaches, is deleted. So a manifest that gained a tag stays, and so do the children of
//! an index pushed meanwhile. Untags come first. Deletes go in waves, parents first, so a run
//! cut short never leaves an index without its children. When a delete fails, everything
//! below it stays.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};

use crate::collect::refresh_tags;
use crate::plan::graph::Graph;
use crate::plan::{plan, Keep, RepositoryPlan, Snapshot, Untag};
use crate::policy::Policy;
use crate::registry::media_type::OCI_INDEX;
use crate::registry::{
    Deleted, Digest, MediaType, OciClient, Reference, RegistryError, TagDeleted, READS_PER_WRITE,
};

const OUT_OF_TIME: &str = "not started: the run's time ran out; the next run finishes it";

/// What decides, at planning and again at the re-check: a policy, or a manual operation.
pub struct Decider<'a> {
    decide: Box<dyn Fn(&Snapshot) -> RepositoryPlan + Send + Sync + 'a>,
    /// Manifests the user forced out: deleted although something that stays reaches them.
    forced: BTreeSet<Digest>,
    /// The user allowed lifting registry locks on what is deleted (`apply --unlock`).
    unlock: bool,
    /// Digests the operation names, which collect must read even if nothing reaches them.
    named: BTreeSet<Digest>,
}

impl<'a> Decider<'a> {
    /// The planner with `policy`, evaluated at `now`.
    pub fn policy(policy: &'a Policy, now: DateTime<Utc>) -> Decider<'a> {
        Decider::new(move |s| plan(s, policy, now))
    }

    pub fn new(decide: impl Fn(&Snapshot) -> RepositoryPlan + Send + Sync + 'a) -> Decider<'a> {
        Decider {
            decide: Box::new(decide),
            forced: BTreeSet::new(),
            unlock: false,
            named: BTreeSet::new(),
        }
    }

    /// Have collect read these digests, even untagged and unlinked (`image delete NAME@DIGEST`).
    pub fn naming(mut self, named: BTreeSet<Digest>) -> Decider<'a> {
        self.named = named;
        self
    }

    pub fn named(&self) -> &BTreeSet<Digest> {
        &self.named
    }

    /// Lift the registry's lock on a manifest (and its tags) before deleting it.
    pub fn unlocking(mut self, unlock: bool) -> Decider<'a> {
        self.unlock = unlock;
        self
    }

    /// Let these go even if something that stays still reaches them (`--force`).
    pub fn forcing(mut self, forced: BTreeSet<Digest>) -> Decider<'a> {
        self.forced = forced;
        self
    }

    pub fn decide(&self, snapshot: &Snapshot) -> RepositoryPlan {
        (self.decide)(snapshot)
    }
}

/// Carry out `planned`, made from `snapshot`. Returns what was done: the entries of the plan,
/// with an `error` on those that failed and, among the kept, what changed since planning.
pub async fn apply(
    client: &OciClient,
    snapshot: &Snapshot,
    planned: RepositoryPlan,
    decider: &Decider<'_>,
    now: DateTime<Utc>,
    concurrency: usize,
    deadline: Option<Instant>,
) -> RepositoryPlan {
    if !planned.complete || (planned.delete.is_empty() && planned.untag.is_empty()) {
        return planned;
    }
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    if out_of_time() {
        let mut left = abandon(planned, OUT_OF_TIME);
        left.complete = true;
        left.error = None;
        left.unfinished = true;
        return left;
    }
    let repo = planned.name.clone();
    let fresh = refresh_tags(client, snapshot, concurrency * READS_PER_WRITE).await;
    if !fresh.problems.is_empty() {
        return abandon(planned, &fresh.problems.join("; "));
    }
    let again = decider.decide(&fresh);
    if !again.complete {
        return abandon(planned, again.error.as_deref().unwrap_or("incomplete"));
    }
    let graph = Graph::of(&fresh);
    // Tags each manifest carries now. One that gained a tag since planning stays, whatever
    // the rules would say about the new tag: nobody saw that in the plan.
    let mut fresh_tags: BTreeMap<&Digest, Vec<&str>> = BTreeMap::new();
    for (name, t) in &fresh.tags {
        fresh_tags.entry(&t.digest).or_default().push(name);
    }
    let mut gained: BTreeMap<&Digest, String> = BTreeMap::new();
    for d in &planned.delete {
        let new: Vec<&str> = fresh_tags
            .get(&d.digest)
            .into_iter()
            .flatten()
            .copied()
            .filter(|t| !d.tags.iter().any(|p| p == t))
            .collect();
        if !new.is_empty() {
            gained.insert(
                &d.digest,
                format!("gained tag {} since planning", new.join(", ")),
            );
        }
    }
    let both: BTreeSet<Digest> = {
        let now_deleted: BTreeSet<&Digest> = again.delete.iter().map(|d| &d.digest).collect();
        planned
            .delete
            .iter()
            .filter(|d| now_deleted.contains(&d.digest) && !gained.contains_key(&d.digest))
            .map(|d| d.digest.clone())
            .collect()
    };
    let mut go = graph.safe_subset(fresh.manifests.keys().cloned(), &both);
    go.extend(both.intersection(&decider.forced).cloned());
    let again_keep: BTreeMap<&Digest, &Keep> = again.keep.iter().map(|k| (&k.digest, k)).collect();

    let mut done = RepositoryPlan {
        delete: Vec::new(),
        untag: Vec::new(),
        ..planned.clone()
    };
    for d in planned.delete.iter().filter(|d| !go.contains(&d.digest)) {
        let why = match (gained.get(&d.digest), again_keep.get(&d.digest)) {
            (Some(g), _) => g.clone(),
            (None, Some(k)) => k.reason.clone(),
            (None, None) => "something that stays still reaches it".into(),
        };
        tracing::info!(action = "keep", repository = %repo, digest = %d.digest, reason = %why, "changed since planning; kept");
        done.keep.push(Keep {
            digest: d.digest.clone(),
            tags: fresh
                .tags
                .iter()
                .filter(|(_, t)| t.digest == d.digest)
                .map(|(n, _)| n.clone())
                .collect(),
            reason: format!("changed since planning: {why}"),
            since: d.since,
        });
    }

    let still_untag: BTreeSet<(&str, &Digest)> = again
        .untag
        .iter()
        .map(|u| (u.tag.as_str(), &u.digest))
        .collect();
    let untags: Vec<Untag> = planned
        .untag
        .iter()
        .filter(|u| {
            let keep = still_untag.contains(&(u.tag.as_str(), &u.digest));
            if !keep {
                tracing::info!(action = "skip-untag", repository = %repo, tag = %u.tag, "tag changed since planning; left alone");
            }
            keep
        })
        .cloned()
        .collect();
    if out_of_time() {
        done.unfinished = true;
    }
    let untags = if done.unfinished { Vec::new() } else { untags };
    let untagged: Vec<Result<Option<Untag>, Keep>> = stream::iter(untags)
        .map(|mut u| {
            let repo = repo.as_str();
            async move {
                let result = untag(client, repo, &u.tag, &u.digest, now).await;
                log_action(
                    "untag",
                    repo,
                    &u.digest,
                    std::slice::from_ref(&u.tag),
                    &u.reason,
                    &result,
                );
                match result {
                    Ok(true) => Ok(Some(u)),
                    // The tag moved in the last moment: it is someone else's now.
                    Ok(false) => Ok(None),
                    // A lock is the registry owner's decision, not a failure.
                    Err(e) if e.is_locked() => Err(Keep {
                        digest: u.digest,
                        tags: vec![u.tag],
                        reason: "not untagged: the registry refused: locked".into(),
                        since: None,
                    }),
                    Err(e) => {
                        u.error = Some(e.to_string());
                        Ok(Some(u))
                    }
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for result in untagged {
        match result {
            Ok(Some(u)) => done.untag.push(u),
            Ok(None) => {}
            Err(kept) => done.keep.push(kept),
        }
    }
    done.untag.sort_by(|a, b| a.tag.cmp(&b.tag));

    let entries: BTreeMap<Digest, crate::plan::Delete> = planned
        .delete
        .into_iter()
        .filter(|d| go.contains(&d.digest))
        .map(|d| (d.digest.clone(), d))
        .collect();
    let mut failed: BTreeSet<Digest> = BTreeSet::new();
    let mut locked: BTreeSet<Digest> = BTreeSet::new();
    for wave in graph.waves(&go) {
        if out_of_time() {
            // Start no new delete; what is left waits for the next run.
            done.unfinished = true;
            for (digest, _) in wave {
                let mut entry = entries[&digest].clone();
                entry.error = Some(OUT_OF_TIME.into());
                failed.insert(digest);
                done.delete.push(entry);
            }
            continue;
        }
        let (blocked, ready): (Vec<_>, Vec<_>) = wave
            .into_iter()
            .partition(|(_, parents)| parents.iter().any(|p| failed.contains(p)));
        for (digest, parents) in blocked {
            let parent = parents.iter().find(|p| failed.contains(*p));
            let entry = entries[&digest].clone();
            failed.insert(digest.clone());
            match parent {
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
        let results: Vec<(Digest, Result<Deleted, RegistryError>)> = stream::iter(ready)
            .map(|(digest, _)| {
                let repo = repo.as_str();
                // Only with --unlock: which of its tags (from `fresh_tags`) hold a lock.
                let locked_tags: Vec<&str> = if decider.unlock {
                    fresh_tags
                        .get(&digest)
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|n| fresh.tags.get(*n).is_some_and(|t| t.locked))
                        .collect()
                } else {
                    Vec::new()
                };
                let unlock = decider.unlock
                    && (fresh.manifests.get(&digest).is_some_and(|f| f.locked)
                        || !locked_tags.is_empty());
                async move {
                    if unlock {
                        if let Err(e) = client.unlock(repo, &digest, &locked_tags).await {
                            return (digest, Err(e));
                        }
                        tracing::warn!(action = "unlock", repository = repo, digest = %digest, tags = ?locked_tags, "lifted the registry's lock to delete it (--unlock)");
                    }
                    let r = match client.delete_manifest(repo, &digest).await {
                        // Say so: the lock is not put back.
                        Err(e) if unlock => Err(RegistryError::InvalidResponse {
                            method: "DELETE".into(),
                            path: format!("/v2/{repo}/manifests/{digest}"),
                            reason: format!("unlocked it, then the delete failed, so it stays unlocked: {e}"),
                        }),
                        other => other,
                    };
                    (digest, r)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut results: Vec<_> = results;
        results.sort_by(|a, b| a.0.cmp(&b.0));
        for (digest, result) in results {
            let mut entry = entries[&digest].clone();
            log_action(
                "delete",
                &repo,
                &digest,
                &entry.tags,
                &entry.reason,
                &result,
            );
            match result {
                // A lock is the registry owner's decision, not a failure of the run.
                Err(e) if e.is_locked() => {
                    failed.insert(digest.clone());
                    locked.insert(digest);
                    done.keep
                        .push(kept_for_lock(entry, "the registry refused: locked".into()));
                    continue;
                }
                Err(e) => {
                    entry.error = Some(e.to_string());
                    failed.insert(digest);
                }
                Ok(_) => {}
            }
            done.delete.push(entry);
        }
    }
    done.keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    done
}

/// Remove one tag and nothing else: the registry's tag delete where it has one, else push a
/// tiny placeholder manifest to the tag and delete that placeholder by digest. First checks
/// that the tag still names `digest`; `Ok(false)` when it moved (then nothing is done).
async fn untag(
    client: &OciClient,
    repo: &str,
    tag: &str,
    digest: &Digest,
    now: DateTime<Utc>,
) -> Result<bool, RegistryError> {
    let reference = Reference::tag(tag)?;
    if client.resolve(repo, &reference).await?.as_ref() != Some(digest) {
        tracing::info!(
            action = "skip-untag",
            repository = repo,
            tag,
            "tag moved since the re-check; left alone"
        );
        return Ok(false);
    }
    match client.delete_tag(repo, tag).await? {
        TagDeleted::Removed | TagDeleted::AlreadyGone => Ok(true),
        TagDeleted::Unsupported => {
            let placeholder = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [],
                "annotations": {
                    "dev.registry-janitor.placeholder": format!("untag {tag} at {} ({:016x})", now.to_rfc3339(), fastrand::u64(..)),
                },
            });
            let body = serde_json::to_vec(&placeholder).unwrap_or_default();
            let placeholder = client
                .put_manifest(repo, &reference, &MediaType::OciIndex, body)
                .await?;
            match client.delete_manifest(repo, &placeholder).await {
                Ok(_) => Ok(true),
                Err(e) => Err(RegistryError::InvalidResponse {
                    method: "DELETE".into(),
                    path: format!("/v2/{repo}/manifests/{placeholder}"),
                    reason: format!(
                        "tag {tag} now names the empty placeholder {placeholder}, which could not be deleted: {e}"
                    ),
                }),
            }
        }
    }
}

fn log_action<T, E: std::fmt::Display>(
    action: &str,
    repository: &str,
    digest: &Digest,
    tags: &[String],
    reason: &str,
    result: &Result<T, E>,
) {
    match result {
        Ok(_) => tracing::info!(action, repository, digest = %digest, tags = ?tags, reason, "done"),
        Err(e) => {
            tracing::warn!(action, repository, digest = %digest, tags = ?tags, reason, error = %e, "failed")
        }
    }
}

/// A planned delete the registry refused because of a lock, as a keep.
fn kept_for_lock(entry: crate::plan::Delete, why: String) -> Keep {
    Keep {
        digest: entry.digest,
        tags: entry.tags,
        reason: format!("not deleted: {why}"),
        since: entry.since,
    }
}

/// Nothing is done: everything planned is kept, and the repository reports why.
fn abandon(planned: RepositoryPlan, why: &str) -> RepositoryPlan {
    let mut keep = planned.keep;
    for d in planned.delete {
        keep.push(Keep {
            digest: d.digest,
            tags: d.tags,
            reason: format!("not deleted: {why}"),
            since: d.since,
        });
    }
    keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    RepositoryPlan {
        complete: false,
        error: Some(format!("changed nothing: {why}")),
        delete: Vec::new(),
        untag: Vec::new(),
        keep,
        name: planned.name,
        unfinished: false,
    }
}
