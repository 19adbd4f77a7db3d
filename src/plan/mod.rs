//! The planner: a snapshot of one repository, a policy and a moment in, every decision out.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. The same input gives the same
//! plan in the same order, so it can be tested exhaustively and previewed safely.
//!
//! The safety model (README, "Apply" and "How the code reads"), in the order it is applied here:
//! 1. Each manifest gets its own verdict: kept (protected, locked, a tag that stays, too
//!    young...), a candidate (every user tag selected, or untagged and selected by the
//!    untagged rule), or dependent (an untagged child or referrer: it follows its parents).
//! 2. Everything reachable from a kept manifest is kept, with the reason naming what keeps it.
//! 3. Everything reachable from a candidate and not kept is deleted: children of a deleted
//!    index, referrers of a deleted subject.
//! 4. Selected tags on kept manifests become untag decisions.
//! 5. A repository whose picture is incomplete deletes nothing.
//! 6. A repository whose plan deletes more than the policy's `limits` allow deletes nothing
//!    (`limits`): it is held.
//!
//! A trash index (`crate::trash`) is the janitor's own: its tag is no user tag, it keeps what
//! it holds until it expires, and then it goes with what nothing else reaches. With the
//! policy's `trash`, what the plan deletes carries `Delete::trash_until`: apply sets it aside.

pub mod age;
pub mod decision;
pub mod graph;
pub mod limits;
pub mod manual;
pub mod select;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::policy::{Policy, Rule};
use crate::registry::Digest;
use age::Age;
pub use decision::{Delete, Keep, KeepKind, RepositoryPlan, Status, Untag};
use graph::{Graph, TagKinds};
use select::{judge, Item, Verdict};
pub use snapshot::{Cause, ManifestFacts, Problem, Snapshot, TagRef};

/// The reason given for finishing the removal of a tag left dangling.
pub const DANGLING: &str = "an earlier run removed what this tag named, but the registry still lists it, naming nothing: the untag is finished";

/// A manifest's own verdict, before the graph has its say.
pub(crate) enum Own {
    Keep(KeepKind, String),
    Candidate(String),
    /// A trash index past its time: it goes, with what nothing else reaches, and that is
    /// emptying (decided by the run that trashed it), not a new deletion.
    Expired(String),
    /// Untagged, but a present index or subject keeps it: it follows them.
    Dependent,
}

pub fn plan(snapshot: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> RepositoryPlan {
    plan_keeping(snapshot, policy, now, &BTreeSet::new())
}

/// Why `digest` is in use, if a provider names it or one of its tags (resolved from the
/// snapshot, now).
pub(crate) fn in_use(
    snapshot: &Snapshot,
    running: &crate::in_use::InUse,
    tags: &TagKinds,
    digest: &Digest,
) -> Option<String> {
    let repo = snapshot.repository.as_str();
    if let Some(source) = running.digest(repo, digest) {
        return Some(format!("in use: {source} names {}", digest.short()));
    }
    tags.user.get(digest)?.iter().find_map(|t| {
        running
            .tag(repo, t)
            .map(|source| format!("in use: {source} names {repo}:{t}"))
    })
}

/// The planner, with `needed` kept because a referrer that stays needs them
/// (`manifest delete --older-than` never orphans a recent SBOM).
pub(crate) fn plan_keeping(
    snapshot: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    needed: &BTreeSet<Digest>,
) -> RepositoryPlan {
    let tags = TagKinds::of(snapshot);
    if !snapshot.problems.is_empty() {
        return incomplete(snapshot, &tags, Problem::join(&snapshot.problems));
    }
    if let Some(why) = &snapshot.absent {
        let mut plan = RepositoryPlan::empty(&snapshot.repository);
        plan.status = Status::Absent(format!(
            "nothing there: the registry knows no such repository ({why})"
        ));
        return plan;
    }
    // An in-use provider that could not be read might have named anything here.
    if let Some(why) = &policy.protect.running.failure {
        let problem = Problem::new(Cause::Read, format!("in use: {why}"));
        return incomplete(snapshot, &tags, problem);
    }
    // A pattern that cannot tell whether it matches a name (its backtracking ran away)
    // leaves the owner of that name unknown: nothing is decided here.
    if let Err(e) = policy.check(&snapshot.repository, snapshot.tags.keys()) {
        let problem = Problem::new(Cause::Read, format!("policy: {e}"));
        return incomplete(snapshot, &tags, problem);
    }
    let graph = Graph::build(snapshot, &tags);
    let tag_verdicts = judge_tags(snapshot, policy, now, &tags);
    let untagged_verdicts = judge_untagged(snapshot, policy, now, &tags, &graph);

    let mut own: BTreeMap<&Digest, Own> = BTreeMap::new();
    for (digest, facts) in &snapshot.manifests {
        let user_tags = tags.user.get(digest).map(Vec::as_slice).unwrap_or(&[]);
        // Any tag counts, a signature's `sha256-<hex>.sig` too: a lock is the owner's word.
        let locked_tag = tags
            .all
            .get(digest)
            .and_then(|all| all.iter().find(|t| snapshot.tags[*t].locked));
        let verdict = if policy.protect.digests.contains(digest) {
            Own::Keep(KeepKind::Pinned, "pinned by protect.digests".into())
        } else if let Some(why) = in_use(snapshot, &policy.protect.running, &tags, digest) {
            Own::Keep(KeepKind::InUse, why)
        } else if needed.contains(digest) {
            Own::Keep(
                KeepKind::Referred,
                "a referrer that stays (an SBOM, a signature) needs it".into(),
            )
        } else if facts.locked && !policy.protect.include_locked {
            Own::Keep(
                KeepKind::Locked,
                "locked in the registry (protect.include_locked is false)".into(),
            )
        } else if let Some(tag) = locked_tag.filter(|_| !policy.protect.include_locked) {
            Own::Keep(
                KeepKind::Locked,
                format!("tag {tag:?} is locked in the registry"),
            )
        } else if let Some((tag, pattern)) = protected_link_tag(&tags, policy, digest) {
            // Protection wins over everything, link tags (signatures...) included.
            Own::Keep(
                KeepKind::Protected,
                format!("tag {tag:?} is protected by protect.tags {pattern:?}"),
            )
        } else if let Some(mark) = facts.trash.filter(|_| user_tags.is_empty()) {
            trash_verdict(&mark, now)
        } else if !user_tags.is_empty() {
            let repo = snapshot.repository.as_str();
            let untag_only = user_tags.iter().find_map(|t| {
                policy
                    .tag_owner(repo, t)
                    .filter(|r| r.untag_only)
                    .map(|r| (t, &r.name))
            });
            match (
                user_tags.iter().find(|t| !tag_verdicts[*t].selected),
                untag_only,
            ) {
                (Some(t), _) => Own::Keep(
                    if policy.protecting_pattern(t).is_some() {
                        KeepKind::Protected
                    } else {
                        KeepKind::Tagged
                    },
                    format!("tag {t:?} stays: {}", tag_verdicts[t].reason),
                ),
                // Every tag goes, but a rule that only untags leaves the manifest.
                (None, Some((t, rule))) => Own::Keep(
                    KeepKind::UntagOnly,
                    format!(
                        "tag {t:?}: rule {rule:?} removes tags and leaves manifests (untag_only)"
                    ),
                ),
                (None, None) => Own::Candidate(
                    user_tags
                        .iter()
                        .map(|t| format!("tag {t:?}: {}", tag_verdicts[t].reason))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        } else if graph.has_parent(digest) {
            Own::Dependent
        } else {
            match untagged_verdicts.get(digest) {
                Some(v) if v.selected => Own::Candidate(v.reason.clone()),
                Some(v) => Own::Keep(KeepKind::Untagged, v.reason.clone()),
                None => Own::Keep(KeepKind::Untagged, "untagged; no rule judged it".into()),
            }
        };
        own.insert(digest, verdict);
    }

    // A locked tag is the registry owner's decision: it is not untagged either.
    let selected_tag = |t: &str| {
        let locked = snapshot.tags.get(t).is_some_and(|r| r.locked);
        tag_verdicts
            .get(t)
            .filter(|v| v.selected && (!locked || policy.protect.include_locked))
            .map(|v| v.reason.clone())
    };
    let mut plan = settle(snapshot, &tags, &graph, own, selected_tag, now);
    // Tags an earlier run set out to remove and the registry left behind, naming nothing:
    // the removal is finished, whatever the rules say (no rule can keep a tag that pulls
    // nothing). Only sweeps do this; a manual operation changes only what it shows.
    for (tag, digest) in &snapshot.dangling {
        plan.untag.push(Untag {
            tag: tag.clone(),
            digest: digest.clone(),
            reason: DANGLING.into(),
            error: None,
        });
    }
    plan.untag.sort_by(|a, b| a.tag.cmp(&b.tag));
    // With a trash, what this run decides to delete goes into the trash instead, until then.
    if let Some(trash) = &policy.trash {
        let until = chrono::Duration::from_std(trash.keep_for)
            .ok()
            .and_then(|d| now.checked_add_signed(d));
        for d in plan.delete.iter_mut().filter(|d| !d.empties_trash) {
            d.trash_until = until;
        }
    }
    limits::hold(plan, &policy.limits)
}

/// A trash index's own verdict: kept until it expires, then emptied.
fn trash_verdict(mark: &crate::trash::Mark, now: DateTime<Utc>) -> Own {
    let (run, expires) = (
        crate::trash::rfc3339(mark.run),
        crate::trash::rfc3339(mark.expires),
    );
    if mark.expired(now) {
        Own::Expired(format!(
            "the trash of the run at {run} expired at {expires}: emptied"
        ))
    } else {
        Own::Keep(
            KeepKind::Trash,
            format!("in the trash until {expires} (run at {run})"),
        )
    }
}

/// From each manifest's own verdict to the plan: what a kept manifest reaches stays, what a
/// candidate reaches otherwise goes. `selected_tag` gives the reason a user tag is selected;
/// such a tag on a manifest that stays becomes an untag.
pub(crate) fn settle(
    snapshot: &Snapshot,
    tags: &TagKinds,
    graph: &Graph,
    mut own: BTreeMap<&Digest, Own>,
    selected_tag: impl Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> RepositoryPlan {
    let repo = snapshot.repository.as_str();
    let tags_of = |d: &Digest| tags.all.get(d).cloned().unwrap_or_default();
    let doomed = graph.reach(
        own.iter()
            .filter(|(_, o)| matches!(o, Own::Candidate(_) | Own::Expired(_)))
            .map(|(d, _)| *d),
    );
    // What this run decides to delete; the rest of `doomed` empties an expired trash.
    let decided = graph.reach(
        own.iter()
            .filter(|(_, o)| matches!(o, Own::Candidate(_)))
            .map(|(d, _)| *d),
    );
    // A dependent that neither a kept nor a doomed manifest reaches stays too (only a cycle
    // of links makes one). Whatever stays keeps everything it reaches, so no survivor is
    // left pointing at a deleted manifest.
    let kept_first = graph.reach(
        own.iter()
            .filter(|(_, o)| matches!(o, Own::Keep(..)))
            .map(|(d, _)| *d),
    );
    for (d, o) in own.iter_mut() {
        if matches!(o, Own::Dependent) && !doomed.contains_key(*d) && !kept_first.contains_key(*d) {
            *o = Own::Keep(
                KeepKind::Linked,
                "only linked from manifests that nothing selects".into(),
            );
        }
    }
    let own_reason = |d: &Digest| match &own[d] {
        Own::Keep(_, r) | Own::Candidate(r) | Own::Expired(r) => r.clone(),
        Own::Dependent => String::new(),
    };
    // Every kept manifest's root is kept for a reason of its own.
    let own_kind = |d: &Digest| match &own[d] {
        Own::Keep(k, _) => *k,
        Own::Candidate(_) | Own::Expired(_) | Own::Dependent => KeepKind::Linked,
    };
    let kept = graph.reach(
        own.iter()
            .filter(|(_, o)| matches!(o, Own::Keep(..)))
            .map(|(d, _)| *d),
    );
    let deleted: BTreeSet<Digest> = doomed
        .keys()
        .filter(|d| !kept.contains_key(*d))
        .cloned()
        .collect();

    let since = |d: &Digest| manifest_since(snapshot, tags, d, now);
    let mut keep = Vec::new();
    let mut untag = Vec::new();
    for digest in snapshot.manifests.keys() {
        if deleted.contains(digest) {
            continue;
        }
        // Everything not deleted is in `kept`: it is a root of it or reached from one.
        let (kind, reason) = match kept
            .get(digest)
            .and_then(|r| r.via.as_ref().map(|v| (v, &r.root)))
        {
            None => (own_kind(digest), own_reason(digest)),
            // What a trash index holds is in the trash, whatever path reaches it there.
            Some((_, root)) if own_kind(root) == KeepKind::Trash => {
                (KeepKind::Trash, own_reason(root))
            }
            Some(((parent, edge), root)) => (
                own_kind(root),
                format!(
                    "{} of {}, which stays: {}",
                    edge.noun(),
                    parent.short(),
                    own_reason(root)
                ),
            ),
        };
        for t in tags.user.get(digest).into_iter().flatten() {
            if let Some(why) = selected_tag(t) {
                untag.push(Untag {
                    tag: t.clone(),
                    digest: digest.clone(),
                    reason: format!("{why}; the manifest stays because {reason}"),
                    error: None,
                });
            }
        }
        keep.push(Keep {
            digest: digest.clone(),
            tags: tags_of(digest),
            reason,
            kind,
            since: since(digest),
        });
    }
    untag.sort_by(|a, b| a.tag.cmp(&b.tag));

    // Bytes: blobs (and manifest bodies) that no surviving manifest uses, each counted once.
    let survivors: BTreeSet<&Digest> = snapshot
        .manifests
        .iter()
        .filter(|(d, _)| !deleted.contains(*d))
        .flat_map(|(_, f)| f.blobs.iter().map(|(b, _)| b))
        .collect();
    let mut counted: BTreeSet<&Digest> = BTreeSet::new();
    let delete = graph
        .parents_first(&deleted)
        .into_iter()
        .map(|digest| {
            let facts = &snapshot.manifests[&digest];
            let blob_bytes: u64 = facts
                .blobs
                .iter()
                .filter(|(b, _)| !survivors.contains(b) && counted.insert(b))
                .map(|(_, size)| size)
                .sum();
            let reached = &doomed[&digest];
            let (reason, parent) = match &reached.via {
                None => (own_reason(&digest), None),
                Some((parent, edge)) => (
                    format!("{} of {}, which is deleted", edge.noun(), parent.short()),
                    Some(parent.clone()),
                ),
            };
            Delete {
                tags: tags_of(&digest),
                reason,
                bytes: facts.size + blob_bytes,
                since: since(&digest),
                parent,
                empties_trash: !decided.contains_key(&digest),
                trash_until: None,
                trash: None,
                digest,
                error: None,
            }
        })
        .collect();
    RepositoryPlan {
        name: repo.to_owned(),
        status: Status::Complete,
        delete,
        untag,
        keep,
    }
}

/// The reason added where a registry cannot untag: removing a manifest's last tag deletes it.
pub const LAST_TAG: &str = "its tags stay too: on this registry removing a manifest's last tag deletes the manifest, and this one must stay";

/// `plan` for a registry where removing a manifest's last tag deletes it (ECR): no untag
/// that would take the last tags of a manifest that stays is sent; they stay, and the
/// manifest's reason says why. A manifest that keeps another tag loses only the selected
/// ones, as anywhere. Pure.
pub fn hold_last_tags(mut plan: RepositoryPlan, snapshot: &Snapshot) -> RepositoryPlan {
    let mut untagging: BTreeMap<&Digest, BTreeSet<&str>> = BTreeMap::new();
    for u in &plan.untag {
        if snapshot.manifests.contains_key(&u.digest) {
            untagging
                .entry(&u.digest)
                .or_default()
                .insert(u.tag.as_str());
        }
    }
    let held: BTreeSet<Digest> = untagging
        .into_iter()
        .filter(|(d, going)| {
            snapshot
                .tags
                .iter()
                .filter(|(_, t)| &t.digest == *d)
                .all(|(name, _)| going.contains(name.as_str()))
        })
        .map(|(d, _)| d.clone())
        .collect();
    if held.is_empty() {
        return plan;
    }
    plan.untag.retain(|u| !held.contains(&u.digest));
    for k in plan.keep.iter_mut().filter(|k| held.contains(&k.digest)) {
        k.reason = format!("{}; {LAST_TAG}", k.reason);
    }
    plan
}

/// A tag on `digest` that is not a user tag (a link or an orphan link) but that a
/// `protect.tags` pattern matches. User tags are judged with their verdicts.
fn protected_link_tag<'a>(
    tags: &'a TagKinds,
    policy: &'a Policy,
    digest: &Digest,
) -> Option<(&'a str, &'a str)> {
    let user = tags.user.get(digest);
    tags.all.get(digest)?.iter().find_map(|t| {
        if user.is_some_and(|u| u.contains(t)) {
            return None;
        }
        policy.protecting_pattern(t).map(|p| (t.as_str(), p))
    })
}

/// Verdicts for every user tag: protection first, then the owning rule.
fn judge_tags(
    snapshot: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    tags: &TagKinds,
) -> BTreeMap<String, Verdict> {
    let repo = snapshot.repository.as_str();
    let mut verdicts = BTreeMap::new();
    let mut owned: Vec<(&Rule, Vec<Item<String>>)> = Vec::new();
    for (digest, names) in &tags.user {
        for tag in names {
            // A pod that restarts pulls its tag again: the tag stays as well as its digest.
            if let Some(source) = policy.protect.running.tag(repo, tag) {
                verdicts.insert(tag.clone(), Verdict::keep(format!("in use: {source}")));
                continue;
            }
            if let Some(pattern) = policy.protecting_pattern(tag) {
                verdicts.insert(
                    tag.clone(),
                    Verdict::keep(format!("protected by protect.tags {pattern:?}")),
                );
                continue;
            }
            let Some(rule) = policy.tag_owner(repo, tag) else {
                verdicts.insert(tag.clone(), Verdict::keep("no rule selects this tag"));
                continue;
            };
            let facts = snapshot.manifests.get(digest);
            let item = Item {
                key: tag.clone(),
                image: digest.clone(),
                age: Age::of_tag(&snapshot.tags[tag], facts, now),
                used: facts.and_then(|f| f.pulled.or(f.updated)),
            };
            match owned.iter_mut().find(|(r, _)| r.name == rule.name) {
                Some((_, items)) => items.push(item),
                None => owned.push((rule, vec![item])),
            }
        }
    }
    for (rule, items) in owned {
        verdicts.extend(judge(rule, &items, now, "tag"));
    }
    verdicts
}

/// Verdicts for untagged manifests that nothing keeps alive (the roots of what is untagged).
/// Their age counts from the registry's own timestamp, else from when we first saw them
/// untagged.
fn judge_untagged(
    snapshot: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    tags: &TagKinds,
    graph: &Graph,
) -> BTreeMap<Digest, Verdict> {
    let roots: Vec<Item<Digest>> = snapshot
        .manifests
        .iter()
        // A trash index is the janitor's own: no rule judges it, or counts it toward `keep`.
        .filter(|(d, f)| !tags.user.contains_key(*d) && !graph.has_parent(d) && f.trash.is_none())
        .map(|(d, f)| Item {
            key: d.clone(),
            image: d.clone(),
            age: Age::plain(f.updated.or(f.untagged_since)),
            used: f.pulled.or(f.updated),
        })
        .collect();
    match policy.untagged_owner(&snapshot.repository) {
        Some(rule) => judge(rule, &roots, now, "untagged manifest")
            .into_iter()
            .collect(),
        None => roots
            .into_iter()
            .map(|i| {
                (
                    i.key,
                    Verdict::keep("untagged, but no untagged rule covers this repository"),
                )
            })
            .collect(),
    }
}

/// When a manifest's age counts from, for people: its newest tag (`Age::of_tag`), else
/// since untagged, else its own date if that is a build time.
pub fn manifest_since(
    snapshot: &Snapshot,
    tags: &TagKinds,
    d: &Digest,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let facts = snapshot.manifests.get(d)?;
    match tags.user.get(d) {
        Some(names) => names
            .iter()
            .filter_map(|t| Age::of_tag(&snapshot.tags[t], Some(facts), now).since)
            .max(),
        None => facts
            .updated
            .or(facts.untagged_since)
            .or(facts.created.filter(|c| age::is_build_time(*c, now))),
    }
}

/// A plan that deletes nothing, for `why`: a repository that cannot be planned safely.
pub fn refuse(snapshot: &Snapshot, why: Problem) -> RepositoryPlan {
    incomplete(snapshot, &TagKinds::of(snapshot), why)
}

/// A plan that deletes nothing, for `why`.
pub(crate) fn incomplete(snapshot: &Snapshot, tags: &TagKinds, why: Problem) -> RepositoryPlan {
    RepositoryPlan {
        name: snapshot.repository.clone(),
        status: Status::Incomplete(why),
        delete: Vec::new(),
        untag: Vec::new(),
        keep: snapshot
            .manifests
            .keys()
            .map(|d| Keep {
                digest: d.clone(),
                tags: tags.all.get(d).cloned().unwrap_or_default(),
                reason: "repository incomplete: nothing is deleted this run".into(),
                kind: KeepKind::Incomplete,
                since: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
