//! Apply: carry a plan out, safely, in five phases.
//!
//! 1. **Re-check.** Just before changing a repository it reads the tags again, and
//!    `reconcile` (pure) keeps whatever changed since planning: only what both plans delete,
//!    and what no surviving manifest still reaches, is deleted. So a manifest that gained a
//!    tag stays, and so do the children of an index pushed meanwhile.
//! 2. **Trash,** with the policy's `trash`: what the plan deletes is pushed into one trash
//!    index under the janitor's own tag, and its tags join the untags; it is not deleted
//!    (`trash.rs`). What an expired trash held is deleted in the waves.
//! 3. **Untags.** Tag DELETE where the registry has one; otherwise a placeholder is pushed to
//!    the tag and deleted, one tag at a time in a repository (`untag`).
//! 4. **Delete waves,** parents first, so a run cut short never leaves an index without its
//!    children; when a delete fails, everything below it stays. Before a wave that deletes
//!    the children of an index, the tags are read once more: a build pushed while the parents
//!    were being deleted may reuse one of those children (`newly_reached`).
//! 5. **Verify.** One more tag listing shows whether every tag this run removed is gone.
//!    Distribution 2.8 can answer a manifest DELETE with 500 after removing the manifest but
//!    not its tags (and the retry then finds nothing); such a tag, listed and naming nothing,
//!    is removed with a placeholder before the run reports success.
//!
//! The OCI API has no conditional delete or put, so phases 1 and 4 narrow the time in which a
//! push can race a change to a round trip or so; they cannot close it (README, "Apply").
//!
//! `apply` below runs the phases in order; each has its own file: `recheck.rs`, `trash.rs`,
//! `untags.rs`, `waves.rs` and `verify.rs`, with the state they share in `Run`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::collect::refresh_tags;
use crate::journal::Journal;
use crate::plan::{plan, Delete, Keep, KeepKind, Problem, RepositoryPlan, Snapshot, Status};
use crate::policy::Policy;
use crate::registry::{Backend, Capabilities, Digest, READS_PER_WRITE};

mod journal;
mod recheck;
mod trash;
mod untags;
mod verify;
mod waves;

pub use recheck::{reconcile, Reconciled};
use untags::{Expect, Untagged};
pub use waves::newly_reached;
#[cfg(test)]
use waves::wave_needs_recheck;

/// Why a plan with a trash deletes nothing where removing a manifest's last tag deletes it.
pub const NO_TRASH_HERE: &str = "trash: on this registry removing a manifest's last tag deletes the manifest, so nothing can wait in a trash; nothing is deleted (remove `trash` from the policy to delete for good)";
const OUT_OF_TIME: &str = "not started: the run's time ran out; the next run finishes it";
const CUT_OFF: &str = "stopped at the run's cutoff; the next run finishes it";
const CUT_IN_FLIGHT: &str = "stopped at the run's cutoff while the registry had the delete: it may be done; the next sweep sees which, and finishes it if not";

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

    /// The plan for `snapshot` on a backend that can do `can`: where removing a manifest's
    /// last tag deletes it, no such untag of a manifest that stays (`plan::hold_last_tags`).
    pub fn decide_on(&self, snapshot: &Snapshot, can: &Capabilities) -> RepositoryPlan {
        let plan = self.decide(snapshot);
        if can.untag_keeps_manifest {
            plan
        } else if plan.delete.iter().any(|d| d.trash_until.is_some()) {
            // Removing the trashed manifests' last tags would delete them here.
            crate::plan::refuse(snapshot, crate::plan::Problem::from(NO_TRASH_HERE))
        } else {
            crate::plan::hold_last_tags(plan, snapshot)
        }
    }

    pub fn decide(&self, snapshot: &Snapshot) -> RepositoryPlan {
        (self.decide)(snapshot)
    }
}

/// What an apply did.
pub struct Applied {
    /// The entries of the plan, with an `error` on those that failed and, among the kept,
    /// what changed since planning.
    pub done: RepositoryPlan,
    /// Tags whose removal is not settled: removed (or being removed) by this janitor, and
    /// not yet seen gone, with the digest each named. Their removal records stay in the
    /// inventory (`state::Removing`).
    pub unsettled: BTreeMap<String, Digest>,
}

/// How one apply runs.
#[derive(Clone, Copy)]
pub struct Conditions<'a> {
    /// The run's time: the plan's `now`, which the trash and the journal record.
    pub now: DateTime<Utc>,
    /// Changes in flight at once.
    pub concurrency: usize,
    /// No untag or delete starts after this.
    pub deadline: Option<Instant>,
    /// Where each manifest is recorded before it is deleted or trashed.
    pub journal: Option<&'a dyn Journal>,
}

/// Carry out `planned`, made from `snapshot`.
pub async fn apply(
    client: &dyn Backend,
    snapshot: &Snapshot,
    planned: RepositoryPlan,
    decider: &Decider<'_>,
    conditions: Conditions<'_>,
) -> Applied {
    let Conditions {
        now,
        concurrency,
        deadline,
        journal,
    } = conditions;
    let untouched = |done: RepositoryPlan| Applied {
        done,
        unsettled: snapshot.dangling.clone(),
    };
    if !planned.complete() || (planned.delete.is_empty() && planned.untag.is_empty()) {
        return untouched(planned);
    }
    let run = Run {
        client,
        repo: planned.name.clone(),
        concurrency: concurrency.max(1),
        now,
        deadline,
        serial: tokio::sync::Mutex::new(()),
        warned: AtomicBool::new(false),
        ran_out: AtomicBool::new(false),
    };
    if run.out_of_time() {
        let mut left = abandon(planned, OUT_OF_TIME.into());
        left.status = Status::Unfinished;
        return untouched(left);
    }

    // 1. Re-check.
    let fresh = refresh_tags(client, snapshot, &BTreeSet::new(), false, run.reads()).await;
    if !fresh.problems.is_empty() {
        return untouched(abandon(planned, Problem::join(&fresh.problems)));
    }
    let again = decider.decide_on(&fresh, &client.capabilities());
    if let Status::Incomplete(why) = again.status {
        return untouched(abandon(planned, why));
    }
    let Reconciled {
        go,
        kept,
        untags,
        skipped,
    } = reconcile(&planned, &fresh, &again, &decider.forced);
    // The journal: every manifest that goes, deleted or trashed, is written down first. If
    // it cannot be, nothing changes here.
    if let Some(journal) = journal {
        let going: Vec<&Delete> = planned
            .delete
            .iter()
            .filter(|d| go.contains(&d.digest))
            .collect();
        if let Err(why) = run.journal(journal, snapshot, &fresh, &going).await {
            return untouched(abandon(planned, why));
        }
    }
    for k in &kept {
        tracing::info!(action = "keep", repository = %run.repo, digest = %k.digest, reason = %k.reason, "changed since planning; kept");
    }
    for tag in &skipped {
        tracing::info!(action = "skip-untag", repository = %run.repo, tag = %tag, "tag changed since planning; left alone");
    }
    let mut done = RepositoryPlan {
        delete: Vec::new(),
        untag: Vec::new(),
        ..planned.clone()
    };
    done.keep.extend(kept);
    // Tags this run set out to remove, with the digest each named: phase 5 checks them.
    let mut removed: BTreeMap<String, Digest> = BTreeMap::new();

    let mut entries: BTreeMap<Digest, Delete> = planned
        .delete
        .into_iter()
        .filter(|d| go.contains(&d.digest))
        .map(|d| (d.digest.clone(), d))
        .collect();

    // 2. Trash (with the policy's `trash`): what goes is pushed into a trash index, and its
    //    tags are removed with the untags; it is not deleted.
    let mut untags = untags;
    let trashing: BTreeMap<Digest, Delete> = {
        let (trashing, rest) = std::mem::take(&mut entries)
            .into_iter()
            .partition(|(_, d)| d.trash_until.is_some());
        entries = rest;
        trashing
    };
    if let Some(until) = trashing.values().find_map(|d| d.trash_until) {
        if run.out_of_time() {
            done.keep
                .extend(trashing.into_values().map(|d| kept_stopped(d, OUT_OF_TIME)));
            done.status = Status::Unfinished;
        } else {
            let mut trashing = trashing;
            for (digests, pushed) in run.trash(&fresh, &trashing, until).await {
                let (tag, error) = match pushed {
                    Ok(p) => {
                        untags.extend(p.untags);
                        (Some(p.tag), None)
                    }
                    // Nothing of these is untagged or deleted: each entry says why.
                    Err(e) => {
                        tracing::warn!(action = "trash", repository = %run.repo, error = %e, "could not push the trash index; nothing in it goes");
                        (None, Some(format!("not trashed: {e}")))
                    }
                };
                for d in digests {
                    if let Some(mut entry) = trashing.remove(&d) {
                        entry.trash = tag.clone();
                        entry.error = error.clone();
                        done.delete.push(entry);
                    }
                }
            }
        }
    }

    // 3. Untags.
    let untagging = !untags.is_empty();
    if run.out_of_time() {
        done.status = Status::Unfinished;
    } else {
        let (untagged, kept) = run.untags(untags, &fresh, decider.unlock).await;
        for u in &untagged {
            removed.insert(u.tag.clone(), u.digest.clone());
        }
        done.untag = untagged;
        done.keep.extend(kept);
    }

    // 4. Delete waves.
    run.delete_waves(&fresh, entries, decider, untagging, &mut removed, &mut done)
        .await;

    // 5. Verify.
    let (mut unsettled, failures) = run.verify(&removed).await;
    if run.ran_out.load(Ordering::Relaxed) {
        done.status = Status::Unfinished;
    }
    for (tag, error) in failures {
        if let Some(u) = done.untag.iter_mut().find(|u| u.tag == tag) {
            u.error.get_or_insert(error);
        } else if let Some(d) = removed
            .get(&tag)
            .and_then(|digest| done.delete.iter_mut().find(|d| &d.digest == digest))
        {
            d.error.get_or_insert(format!("deleted, but {error}"));
        }
    }
    // Dangling tags this run did not get to stay dangling, and stay remembered.
    for (tag, digest) in &fresh.dangling {
        if !removed.contains_key(tag) {
            unsettled.insert(tag.clone(), digest.clone());
        }
    }
    done.keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    done.untag.sort_by(|a, b| a.tag.cmp(&b.tag));
    Applied { done, unsettled }
}

/// Which digest each tag of `snapshot` names, inverted.
fn tags_by_digest(snapshot: &Snapshot) -> BTreeMap<&Digest, Vec<&str>> {
    let mut by_digest: BTreeMap<&Digest, Vec<&str>> = BTreeMap::new();
    for (name, t) in &snapshot.tags {
        by_digest.entry(&t.digest).or_default().push(name);
    }
    by_digest
}

/// The tags on `digest` in `snapshot`.
fn tags_on(snapshot: &Snapshot, digest: &Digest) -> Vec<String> {
    snapshot
        .tags
        .iter()
        .filter(|(_, t)| &t.digest == digest)
        .map(|(n, _)| n.clone())
        .collect()
}

/// One repository's apply: what every phase shares.
struct Run<'a> {
    client: &'a dyn Backend,
    repo: String,
    /// Changes in flight at once.
    concurrency: usize,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
    /// Held by a placeholder untag from its last check of the tag to the placeholder's
    /// delete. Distribution 2.8 reads every tag of a repository while it deletes a manifest,
    /// and fails halfway (500, the tag left behind) when another write changes a tag under
    /// it; one placeholder at a time in a repository keeps this run out of its own way.
    serial: tokio::sync::Mutex<()>,
    /// The warning about the placeholder technique was logged.
    warned: AtomicBool,
    /// An untag was not started because the time was up.
    ran_out: AtomicBool,
}

impl Run<'_> {
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn reads(&self) -> usize {
        self.concurrency * READS_PER_WRITE
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

/// A planned delete the run's time stopped, as a keep.
fn kept_stopped(entry: Delete, why: &str) -> Keep {
    Keep {
        digest: entry.digest,
        tags: entry.tags,
        reason: why.to_owned(),
        kind: KeepKind::Stopped,
        since: entry.since,
    }
}

/// Everything of `waves` not yet decided, stopped for time: kept, and the repository is
/// unfinished.
fn stopped_for_time(
    waves: &[Vec<(Digest, Vec<Digest>)>],
    entries: &BTreeMap<Digest, Delete>,
    held: &BTreeMap<Digest, String>,
    failed: &mut BTreeSet<Digest>,
    done: &mut RepositoryPlan,
) {
    for (digest, _) in waves.iter().flatten() {
        if held.contains_key(digest) || !failed.insert(digest.clone()) {
            continue;
        }
        done.keep
            .push(kept_stopped(entries[digest].clone(), OUT_OF_TIME));
    }
    done.status = Status::Unfinished;
}

/// A planned delete the registry refused because of a lock, as a keep.
fn kept_for_lock(entry: Delete, why: String) -> Keep {
    Keep {
        digest: entry.digest,
        tags: entry.tags,
        reason: format!("not deleted: {why}"),
        kind: KeepKind::Refused,
        since: entry.since,
    }
}

/// Nothing is done: everything planned is kept, and the repository reports why.
fn abandon(planned: RepositoryPlan, why: Problem) -> RepositoryPlan {
    let mut keep = planned.keep;
    for d in planned.delete {
        keep.push(Keep {
            digest: d.digest,
            tags: d.tags,
            reason: format!("not deleted: {why}"),
            kind: KeepKind::Stopped,
            since: d.since,
        });
    }
    keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    RepositoryPlan {
        status: Status::Incomplete(Problem::new(why.cause, format!("changed nothing: {why}"))),
        delete: Vec::new(),
        untag: Vec::new(),
        keep,
        name: planned.name,
    }
}

#[cfg(test)]
mod tests;
