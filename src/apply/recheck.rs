//! Phase 1, the re-check: what is left of a plan once the tags are read again just before
//! changing the repository (`reconcile`, pure).

use std::collections::{BTreeMap, BTreeSet};

use super::{tags_by_digest, tags_on};
use crate::plan::graph::Graph;
use crate::plan::{Keep, KeepKind, RepositoryPlan, Snapshot, Untag};
use crate::registry::Digest;

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
