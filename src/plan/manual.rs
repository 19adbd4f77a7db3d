//! Plans for the manual operations (`image delete`, `repository delete`, `tag delete`): the
//! user names what goes instead of a policy selecting it, and the safety model stays the
//! same. What a named manifest reaches goes with it unless something else still uses it, and
//! a named manifest that something kept still uses is kept, with the reason, unless forced.
//!
//! Pure, like the planner: a snapshot in, a plan out.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::{Edge, Graph, TagKinds};
use super::{
    incomplete, settle, Delete, Keep, KeepKind, Own, Problem, RepositoryPlan, Snapshot, Status,
    Untag,
};
use chrono::{DateTime, Utc};

use crate::in_use::InUse;
use crate::policy::Policy;
use crate::registry::Digest;

/// A plan that deletes `chosen` (and what only they reach), giving `reason` for each.
///
/// Without `force`, a chosen manifest that something staying still uses is kept, with a
/// reason naming it, and so is one whose referrers stay (a tagged SBOM, a locked signature):
/// deleting it would leave them orphaned. With `force`, both go anyway; `forced` on the
/// result lists them, for apply.
pub fn delete_chosen(
    snapshot: &Snapshot,
    chosen: &BTreeSet<Digest>,
    reason: &str,
    force: bool,
    now: DateTime<Utc>,
) -> Chosen {
    delete_chosen_unless_in_use(snapshot, chosen, reason, force, now, &InUse::default())
}

/// [`delete_chosen`], where what `running` names (or a tag on it) is in use: kept with
/// everything it reaches, and a chosen one refused unless forced (`image delete --in-use`).
pub fn delete_chosen_unless_in_use(
    snapshot: &Snapshot,
    chosen: &BTreeSet<Digest>,
    reason: &str,
    force: bool,
    now: DateTime<Utc>,
    running: &InUse,
) -> Chosen {
    let tags = TagKinds::of(snapshot);
    if !snapshot.problems.is_empty() {
        return Chosen {
            plan: incomplete(snapshot, &tags, Problem::join(&snapshot.problems)),
            refused: Vec::new(),
            forced: BTreeSet::new(),
        };
    }
    let graph = Graph::build(snapshot, &tags);
    let own = verdicts(snapshot, &tags, &graph, chosen, reason, running);
    let mut plan = settle(snapshot, &tags, &graph, own, |_| None, now);
    // Chosen manifests whose referrers would outlive them.
    let going: BTreeSet<Digest> = plan.delete.iter().map(|d| d.digest.clone()).collect();
    let mut orphaning: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    for d in chosen.iter().filter(|d| going.contains(*d)) {
        let staying: Vec<Digest> = graph
            .edges(d)
            .iter()
            .filter(|(r, e)| *e == Edge::Referrer && !going.contains(r))
            .map(|(r, _)| r.clone())
            .collect();
        if !staying.is_empty() {
            orphaning.insert(d.clone(), staying);
        }
    }
    // A lock is never forced: lifting one is a separate, explicit step.
    let locked = |d: &Digest| {
        snapshot.manifests.get(d).is_some_and(|f| f.locked)
            || snapshot.tags.values().any(|t| &t.digest == d && t.locked)
    };
    // Kept because of a lock, its own or that of an index or subject that keeps it.
    let under_lock = graph.reach(snapshot.manifests.keys().filter(|d| locked(d)));
    let mut refused = Vec::new();
    for k in plan.keep.iter().filter(|k| chosen.contains(&k.digest)) {
        refused.push(Refusal {
            digest: k.digest.clone(),
            reason: k.reason.clone(),
            locked: under_lock.contains_key(&k.digest),
        });
    }
    for (d, staying) in &orphaning {
        let names: Vec<String> = staying
            .iter()
            .map(|r| {
                let t = tags.all.get(r).map(|t| t.join(", ")).unwrap_or_default();
                if t.is_empty() {
                    r.short().to_owned()
                } else {
                    format!("{} ({t})", r.short())
                }
            })
            .collect();
        refused.push(Refusal {
            digest: d.clone(),
            reason: format!(
                "its referrers {} stay, and would lose their subject",
                names.join(", ")
            ),
            locked: false,
        });
    }
    refused.sort_by(|a, b| a.digest.cmp(&b.digest));
    let mut forced = BTreeSet::new();
    if force {
        // Delete what was refused anyway, with what it alone reaches.
        for r in refused.iter().filter(|r| !r.locked) {
            forced.insert(r.digest.clone());
        }
        let keep: Vec<Keep> = std::mem::take(&mut plan.keep);
        for k in keep {
            if forced.contains(&k.digest) {
                let facts = &snapshot.manifests[&k.digest];
                plan.delete.push(Delete {
                    digest: k.digest.clone(),
                    tags: k.tags,
                    reason: format!("{reason} (forced: {})", k.reason),
                    bytes: facts.size,
                    since: k.since,
                    parent: None,
                    empties_trash: false,
                    trash_until: None,
                    trash: None,
                    error: None,
                });
            } else {
                plan.keep.push(k);
            }
        }
        for d in plan
            .delete
            .iter_mut()
            .filter(|d| orphaning.contains_key(&d.digest))
        {
            d.reason = format!("{reason} (forced: its referrers stay)");
        }
    } else {
        // Nothing of a refused manifest goes: not its children, not its referrers.
        let refused_set: BTreeSet<&Digest> = refused.iter().map(|r| &r.digest).collect();
        if !refused_set.is_empty() {
            let below = graph.reach(refused_set.iter().copied());
            let (held, delete): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.delete)
                .into_iter()
                .partition(|d| below.contains_key(&d.digest));
            plan.delete = delete;
            for d in held {
                let root = &below[&d.digest].root;
                let why = match refused.iter().find(|r| &r.digest == root) {
                    Some(r) if r.digest == d.digest => r.reason.clone(),
                    Some(r) => format!("{} stays: {}", root.short(), r.reason),
                    None => format!("{} stays", root.short()),
                };
                plan.keep.push(Keep {
                    digest: d.digest,
                    tags: d.tags,
                    reason: format!("not deleted: {why}"),
                    kind: KeepKind::Held,
                    since: d.since,
                });
            }
            plan.keep.sort_by(|a, b| a.digest.cmp(&b.digest));
        }
    }
    Chosen {
        plan,
        refused,
        forced,
    }
}

/// `manifest delete --older-than`: the planner with `policy` (everything older than the date),
/// but like the guide's script it only deletes manifests, never a tag alone, and it never
/// leaves a referrer that stays (a recent SBOM) without its subject: the subject stays too.
pub fn older_than(snapshot: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> RepositoryPlan {
    let tags = TagKinds::of(snapshot);
    let graph = Graph::build(snapshot, &tags);
    let mut needed = BTreeSet::new();
    loop {
        let mut plan = super::plan_keeping(snapshot, policy, now, &needed);
        plan.untag.clear();
        let going: BTreeSet<&Digest> = plan.delete.iter().map(|d| &d.digest).collect();
        let more: Vec<Digest> = going
            .iter()
            .filter(|d| {
                graph
                    .edges(d)
                    .iter()
                    .any(|(r, e)| *e == Edge::Referrer && !going.contains(r))
            })
            .map(|d| (*d).clone())
            .collect();
        if more.is_empty() {
            return plan;
        }
        needed.extend(more);
    }
}

/// A plan that removes one tag and nothing else: the manifest stays, with its other tags.
/// A tag the registry has locked is kept.
pub fn untag_only(snapshot: &Snapshot, tag: &str, reason: &str) -> RepositoryPlan {
    let mut plan = RepositoryPlan::empty(&snapshot.repository);
    if !snapshot.problems.is_empty() {
        plan.status = Status::Incomplete(Problem::join(&snapshot.problems));
    }
    let Some(t) = snapshot.tags.get(tag) else {
        return plan;
    };
    let others: Vec<String> = snapshot
        .tags
        .iter()
        .filter(|(n, o)| o.digest == t.digest && n.as_str() != tag)
        .map(|(n, _)| n.clone())
        .collect();
    let locked = t.locked || snapshot.manifests.get(&t.digest).is_some_and(|f| f.locked);
    if locked {
        plan.keep.push(Keep {
            digest: t.digest.clone(),
            tags: vec![tag.to_owned()],
            reason: format!("tag {tag:?} is locked in the registry"),
            kind: KeepKind::Locked,
            since: t.updated,
        });
    } else if plan.complete() {
        plan.untag.push(Untag {
            tag: tag.to_owned(),
            digest: t.digest.clone(),
            reason: reason.to_owned(),
            error: None,
        });
        plan.keep.push(Keep {
            digest: t.digest.clone(),
            tags: others,
            reason: "only the tag goes; the manifest stays".into(),
            kind: KeepKind::NotChosen,
            since: t.updated,
        });
    }
    plan
}

/// What `delete_chosen` decided, and what it refused or forced.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub plan: RepositoryPlan,
    /// Chosen manifests kept because something staying still uses them.
    pub refused: Vec<Refusal>,
    /// Chosen manifests deleted although something staying uses them (`force`).
    pub forced: BTreeSet<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub digest: Digest,
    pub reason: String,
    /// Refused for a registry lock (which `force` never overrides).
    pub locked: bool,
}

fn verdicts<'s>(
    snapshot: &'s Snapshot,
    tags: &TagKinds,
    graph: &Graph,
    chosen: &BTreeSet<Digest>,
    reason: &str,
    running: &InUse,
) -> BTreeMap<&'s Digest, Own> {
    snapshot
        .manifests
        .iter()
        .map(|(digest, facts)| {
            let user = tags.user.get(digest);
            let any_tag_locked = tags
                .all
                .get(digest)
                .is_some_and(|all| all.iter().any(|t| snapshot.tags[t].locked));
            let verdict = if facts.locked || any_tag_locked {
                Own::Keep(KeepKind::Locked, "locked in the registry".into())
            } else if let Some(why) = super::in_use(snapshot, running, tags, digest) {
                Own::Keep(KeepKind::InUse, why)
            } else if chosen.contains(digest) {
                Own::Candidate(reason.to_owned())
            } else if let Some(t) = user.and_then(|u| u.first()) {
                Own::Keep(KeepKind::Tagged, format!("tag {t:?} stays"))
            } else if graph.has_parent(digest) {
                Own::Dependent
            } else {
                Own::Keep(
                    KeepKind::NotChosen,
                    "untagged, and not part of this operation".into(),
                )
            };
            (digest, verdict)
        })
        .collect()
}

/// One row of `manifest list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    pub digest: Digest,
    pub tags: Vec<String>,
    /// The registry's last update time where it has one, else the image's created time, else
    /// (untagged) when registry-janitor first saw it untagged: the age the planner uses.
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// The manifest, its blobs and, for an index, its children's.
    pub size: u64,
    pub media_type: String,
    /// For an untagged manifest that something still uses: what (`child of sha256:…`).
    #[serde(skip)]
    pub used_by: Option<String>,
}

/// Every manifest of the snapshot, as `manifest list` shows it at `now`, in digest order.
pub fn listing(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<Listed> {
    let tags = TagKinds::of(snapshot);
    let graph = Graph::build(snapshot, &tags);
    let mut parent: BTreeMap<&Digest, (&Digest, Edge)> = BTreeMap::new();
    for d in snapshot.manifests.keys() {
        for (next, edge) in graph.edges(d) {
            parent.entry(next).or_insert((d, *edge));
        }
    }
    let own_size = |d: &Digest| {
        snapshot
            .manifests
            .get(d)
            .map_or(0, |f| f.size + f.blobs.iter().map(|(_, s)| s).sum::<u64>())
    };
    snapshot
        .manifests
        .iter()
        .map(|(digest, facts)| {
            let all = tags.all.get(digest).cloned().unwrap_or_default();
            let used_by = match (all.is_empty(), parent.get(digest)) {
                (true, Some((p, e))) => Some(format!("{} of {}", e.noun(), p.short())),
                _ => None,
            };
            Listed {
                digest: digest.clone(),
                timestamp: super::manifest_since(snapshot, &tags, digest, now),
                size: own_size(digest) + facts.children.iter().map(own_size).sum::<u64>(),
                media_type: facts.media_type.clone(),
                tags: all,
                used_by,
            }
        })
        .collect()
}
