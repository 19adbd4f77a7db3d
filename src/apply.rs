//! Apply: carry a plan out, safely, in four phases.
//!
//! 1. **Re-check.** Just before changing a repository it reads the tags again, and
//!    `reconcile` (pure) keeps whatever changed since planning: only what both plans delete,
//!    and what no surviving manifest still reaches, is deleted. So a manifest that gained a
//!    tag stays, and so do the children of an index pushed meanwhile.
//! 2. **Untags.** Tag DELETE where the registry has one; otherwise a placeholder is pushed to
//!    the tag and deleted, one tag at a time in a repository (`untag`).
//! 3. **Delete waves,** parents first, so a run cut short never leaves an index without its
//!    children; when a delete fails, everything below it stays. Before a wave that deletes
//!    the children of an index, the tags are read once more: a build pushed while the parents
//!    were being deleted may reuse one of those children (`newly_reached`).
//! 4. **Verify.** One more tag listing shows whether every tag this run removed is gone.
//!    Distribution 2.8 can answer a manifest DELETE with 500 after removing the manifest but
//!    not its tags (and the retry then finds nothing); such a tag, listed and naming nothing,
//!    is removed with a placeholder before the run reports success.
//!
//! The OCI API has no conditional delete or put, so phases 1 and 3 narrow the time in which a
//! push can race a change to a round trip or so; they cannot close it (README, "Apply").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::bounded;
use chrono::{DateTime, Utc};

use crate::collect::refresh_tags;
use crate::plan::graph::{Edge, Graph};
use crate::plan::{
    plan, Cause, Delete, Keep, KeepKind, Problem, RepositoryPlan, Snapshot, Status, Untag,
};
use crate::policy::Policy;
use crate::registry::media_type::OCI_INDEX;
use crate::registry::{
    Backend, Deleted, Digest, MediaType, Reference, RegistryError, Support, TagDeleted,
    READS_PER_WRITE,
};

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

/// Carry out `planned`, made from `snapshot`.
pub async fn apply(
    client: &dyn Backend,
    snapshot: &Snapshot,
    planned: RepositoryPlan,
    decider: &Decider<'_>,
    now: DateTime<Utc>,
    concurrency: usize,
    deadline: Option<Instant>,
) -> Applied {
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
    let again = decider.decide(&fresh);
    if let Status::Incomplete(why) = again.status {
        return untouched(abandon(planned, why));
    }
    let Reconciled {
        go,
        kept,
        untags,
        skipped,
    } = reconcile(&planned, &fresh, &again, &decider.forced);
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
    // Tags this run set out to remove, with the digest each named: phase 4 checks them.
    let mut removed: BTreeMap<String, Digest> = BTreeMap::new();

    // 2. Untags.
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

    // 3. Delete waves.
    let entries: BTreeMap<Digest, Delete> = planned
        .delete
        .into_iter()
        .filter(|d| go.contains(&d.digest))
        .map(|d| (d.digest.clone(), d))
        .collect();
    run.delete_waves(&fresh, entries, decider, untagging, &mut removed, &mut done)
        .await;

    // 4. Verify.
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

/// What the re-check leaves of a plan.
#[derive(Debug, Default, PartialEq)]
pub struct Reconciled {
    /// The planned deletes to carry out.
    pub go: BTreeSet<Digest>,
    /// The planned deletes that stay, each with what changed.
    pub kept: Vec<Keep>,
    /// The planned untags to carry out.
    pub untags: Vec<Untag>,
    /// Tags of planned untags that changed, left alone.
    pub skipped: Vec<String>,
}

/// Reconcile a plan with the tags as they are now (`fresh`) and the plan made from them
/// (`again`). Pure. A planned delete goes only when both plans delete it, it gained no tag,
/// and no manifest that stays reaches it; `forced` ones go even then. A planned untag goes
/// ahead only when the new plan untags the same tag on the same digest.
pub fn reconcile(
    planned: &RepositoryPlan,
    fresh: &Snapshot,
    again: &RepositoryPlan,
    forced: &BTreeSet<Digest>,
) -> Reconciled {
    let graph = Graph::of(fresh);
    // Tags each manifest carries now. One that gained a tag since planning stays, whatever
    // the rules would say about the new tag: nobody saw that in the plan.
    let fresh_tags = tags_by_digest(fresh);
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
    go.extend(both.intersection(forced).cloned());

    let again_keep: BTreeMap<&Digest, &Keep> = again.keep.iter().map(|k| (&k.digest, k)).collect();
    let kept = planned
        .delete
        .iter()
        .filter(|d| !go.contains(&d.digest))
        .map(|d| {
            let why = match (gained.get(&d.digest), again_keep.get(&d.digest)) {
                (Some(g), _) => g.clone(),
                (None, Some(k)) => k.reason.clone(),
                (None, None) => "something that stays still reaches it".into(),
            };
            Keep {
                digest: d.digest.clone(),
                tags: tags_on(fresh, &d.digest),
                reason: format!("changed since planning: {why}"),
                kind: KeepKind::Changed,
                since: d.since,
            }
        })
        .collect();

    let still_untag: BTreeSet<(&str, &Digest)> = again
        .untag
        .iter()
        .map(|u| (u.tag.as_str(), &u.digest))
        .collect();
    let (untags, skipped): (Vec<&Untag>, Vec<&Untag>) = planned
        .untag
        .iter()
        .partition(|u| still_untag.contains(&(u.tag.as_str(), &u.digest)));
    Reconciled {
        go,
        kept,
        untags: untags.into_iter().cloned().collect(),
        skipped: skipped.into_iter().map(|u| u.tag.clone()).collect(),
    }
}

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
fn wave_needs_recheck(
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

/// How an untag ended, when the registry did not refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Untagged {
    Done,
    /// The tag no longer names what was expected: left alone.
    Moved,
    /// Not started: the run's time is up.
    OutOfTime,
}

/// What a tag must name for an untag to go ahead.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// The digest the plan untags.
    Names(&'a Digest),
    /// Nothing: a tag left dangling, whose removal is being finished.
    Nothing,
}

impl Expect<'_> {
    fn holds(self, now: Option<&Digest>) -> bool {
        match self {
            Expect::Names(d) => now == Some(d),
            Expect::Nothing => now.is_none(),
        }
    }
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

    /// Phase 2: the untags. Returns the untag entries (with `error` on failures) and what a
    /// lock kept.
    async fn untags(
        &self,
        untags: Vec<Untag>,
        fresh: &Snapshot,
        unlock: bool,
    ) -> (Vec<Untag>, Vec<Keep>) {
        let repo = self.repo.as_str();
        let results: Vec<Result<Option<Untag>, Keep>> =
            bounded::each(self.concurrency, untags, |mut u| async move {
                let expect = if fresh.dangling.contains_key(&u.tag) {
                    Expect::Nothing
                } else {
                    Expect::Names(&u.digest)
                };
                // With --unlock (purge --include-locked), a locked tag's lock is lifted first.
                let locked = unlock && fresh.tags.get(&u.tag).is_some_and(|t| t.locked);
                let result = self.untag(&u.tag, expect, locked).await;
                log_action(
                    "untag",
                    repo,
                    &u.digest,
                    std::slice::from_ref(&u.tag),
                    &u.reason,
                    &result,
                );
                match result {
                    Ok(Untagged::Done) => Ok(Some(u)),
                    // The tag moved in the last moment: it is someone else's now.
                    Ok(Untagged::Moved) => Ok(None),
                    // Not started; the next run plans it again.
                    Ok(Untagged::OutOfTime) => Ok(None),
                    // Stopped at the run's cutoff before anything changed (the placeholder
                    // path reports a tag left on a placeholder as its own error): the same.
                    Err(e) if e.is_out_of_time() => {
                        self.ran_out.store(true, Ordering::Relaxed);
                        Ok(None)
                    }
                    // A lock is the registry owner's decision, not a failure.
                    Err(e) if e.is_locked() => Err(Keep {
                        digest: u.digest,
                        tags: vec![u.tag],
                        reason: "not untagged: the registry refused: locked".into(),
                        kind: KeepKind::Refused,
                        since: None,
                    }),
                    Err(e) => {
                        u.error = Some(e.to_string());
                        Ok(Some(u))
                    }
                }
            })
            .await;
        let mut done = Vec::new();
        let mut kept = Vec::new();
        for result in results {
            match result {
                Ok(Some(u)) => done.push(u),
                Ok(None) => {}
                Err(k) => kept.push(k),
            }
        }
        (done, kept)
    }

    /// Remove one tag and nothing else: the registry's tag delete where it has one, else push
    /// a tiny placeholder manifest to the tag and delete that placeholder by digest. The tag
    /// is read just before the change, and nothing is done when it no longer names what
    /// `expect` says (`Moved`), or when the run's time is up (`OutOfTime`).
    ///
    /// With the placeholder, a push to the same tag that lands between that read and the
    /// placeholder's PUT (one round trip) is overwritten, and the pushed manifest is left
    /// untagged: the OCI API has no conditional PUT. Nothing closes that here; it is why a
    /// warning is logged whenever the technique is used.
    async fn untag(
        &self,
        tag: &str,
        expect: Expect<'_>,
        unlock: bool,
    ) -> Result<Untagged, RegistryError> {
        let (client, repo) = (self.client, self.repo.as_str());
        let reference = Reference::tag(tag)?;
        if self.out_of_time() {
            self.ran_out.store(true, Ordering::Relaxed);
            return Ok(Untagged::OutOfTime);
        }
        if client.capabilities().tag_delete != Support::No {
            if !self.still(&reference, expect).await? {
                return Ok(Untagged::Moved);
            }
            if unlock {
                client.unlock(repo, None, &[tag]).await?;
                tracing::warn!(
                    action = "unlock",
                    repository = repo,
                    tag,
                    "lifted the registry's lock on the tag to remove it (--unlock)"
                );
            }
            match client.delete_tag(repo, tag).await? {
                TagDeleted::Removed | TagDeleted::AlreadyGone => return Ok(Untagged::Done),
                TagDeleted::Unsupported => {}
            }
        }
        let _turn = self.serial.lock().await;
        // The wait for this repository's turn can be long: the deadline is checked again.
        if self.out_of_time() {
            self.ran_out.store(true, Ordering::Relaxed);
            return Ok(Untagged::OutOfTime);
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                repository = repo,
                "the registry cannot delete a tag alone: untagging by pushing a placeholder to \
                 the tag and deleting it, one tag at a time; a push to the same tag in the round \
                 trip before the placeholder lands is overwritten (README, Apply)"
            );
        }
        // Read again right before the PUT: the tag-delete probe above took a round trip,
        // and the wait for this repository's turn may have taken longer.
        if !self.still(&reference, expect).await? {
            return Ok(Untagged::Moved);
        }
        let placeholder = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
            "annotations": {
                "dev.registry-janitor.placeholder": format!("untag {tag} at {} ({:016x})", self.now.to_rfc3339(), fastrand::u64(..)),
            },
        });
        let body = serde_json::to_vec(&placeholder).unwrap_or_default();
        let placeholder = client
            .put_manifest(repo, &reference, &MediaType::OciIndex, body)
            .await
            .map_err(|e| match e {
                // A push stopped in flight may have landed: not "nothing changed".
                RegistryError::CutOff {
                    method,
                    path,
                    sent: true,
                } => RegistryError::InvalidResponse {
                    method,
                    path,
                    reason: format!(
                        "stopped at the run's cutoff while pushing the placeholder to tag {tag}: the tag may now name it"
                    ),
                },
                e => e,
            })?;
        match client.delete_manifest(repo, &placeholder).await {
            Ok(_) => Ok(Untagged::Done),
            Err(e) => Err(RegistryError::InvalidResponse {
                method: "DELETE".into(),
                path: format!("/v2/{repo}/manifests/{placeholder}"),
                reason: format!(
                    "tag {tag} now names the empty placeholder {placeholder}, which could not be deleted: {e}"
                ),
            }),
        }
    }

    /// Whether `reference` still names what `expect` says: one HEAD, and for a tag that must
    /// name nothing, a GET that agrees (one 404 is not enough to overwrite a tag).
    async fn still(
        &self,
        reference: &Reference,
        expect: Expect<'_>,
    ) -> Result<bool, RegistryError> {
        let mut now = self.client.resolve(&self.repo, reference).await?;
        if now.is_none() && matches!(expect, Expect::Nothing) {
            now = match self.client.manifest(&self.repo, reference).await {
                Ok(m) => Some(m.digest),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            };
        }
        let holds = expect.holds(now.as_ref());
        if !holds {
            tracing::info!(
                action = "skip-untag",
                repository = %self.repo,
                tag = %reference,
                "tag no longer names what the untag expected; left alone"
            );
        }
        Ok(holds)
    }

    /// Phase 3: delete `entries` in waves, parents first. Adds the tags of what it deletes
    /// (or tries to) to `removed`, and its entries and keeps to `done`.
    async fn delete_waves(
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
                    // it, and phase 4 or the next sweep sees whether its tags are gone.
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
                // Deleting by digest removes every tag on it, or should: phase 4 checks,
                // failed deletes too (a 500 may come after the manifest is gone).
                for tag in tags_on(current, &digest) {
                    removed.insert(tag, digest.clone());
                }
                done.delete.push(entry);
            }
        }
    }

    /// Delete one wave's ready manifests side by side.
    async fn delete_ready(
        &self,
        current: &Snapshot,
        ready: Vec<(Digest, Vec<Digest>)>,
        decider: &Decider<'_>,
    ) -> Vec<(Digest, Result<Deleted, RegistryError>)> {
        let by_digest = tags_by_digest(current);
        let mut results = bounded::each(self.concurrency, ready, |(digest, _)| {
            self.delete_one(current, &by_digest, decider, digest)
        })
        .await;
        results.sort_by(|a, b| a.0.cmp(&b.0));
        results
    }

    /// Delete one manifest; with `--unlock`, lift its locks (and its tags') first.
    async fn delete_one(
        &self,
        current: &Snapshot,
        by_digest: &BTreeMap<&Digest, Vec<&str>>,
        decider: &Decider<'_>,
        digest: Digest,
    ) -> (Digest, Result<Deleted, RegistryError>) {
        let (client, repo) = (self.client, self.repo.as_str());
        let locked_tags: Vec<&str> = if decider.unlock {
            by_digest
                .get(&digest)
                .into_iter()
                .flatten()
                .copied()
                .filter(|n| current.tags.get(*n).is_some_and(|t| t.locked))
                .collect()
        } else {
            Vec::new()
        };
        let unlock = decider.unlock
            && (current.manifests.get(&digest).is_some_and(|f| f.locked)
                || !locked_tags.is_empty());
        if unlock {
            if let Err(e) = client.unlock(repo, Some(&digest), &locked_tags).await {
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

    /// Phase 4: are the tags this run removed gone? One listing. A tag still listed that names
    /// something readable was pushed again (or its removal failed, and its entry says so): it
    /// is left alone. One that names nothing was left behind by the registry: its removal is
    /// finished with a placeholder, and a second listing confirms it. Returns the tags still
    /// not settled, and an error for each one that could not be finished.
    async fn verify(
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
