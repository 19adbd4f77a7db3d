//! The reachability graph of one repository: which manifests keep which alive.
//!
//! An edge `a -> b` means "b lives while a lives": an index keeps its children, a subject
//! keeps its referrers (by the OCI `subject` field, or by a `sha256-<hex>[.suffix]` link tag
//! naming the subject). Edges only join manifests that are present in the repository.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::snapshot::Snapshot;
use crate::registry::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Child,
    Referrer,
}

impl Edge {
    pub fn noun(self) -> &'static str {
        match self {
            Edge::Child => "child",
            Edge::Referrer => "referrer",
        }
    }
}

/// Tags sorted by what they mean.
#[derive(Debug, Default)]
pub struct TagKinds {
    /// Tags people gave, by the digest they point at (not links, not the janitor's trash tags).
    pub user: BTreeMap<Digest, Vec<String>>,
    /// `sha256-<hex>[.suffix]` tags naming a digest in the repository: (tag, subject, target).
    pub links: Vec<(String, Digest, Digest)>,
    /// Every tag by digest, for reports (deleting a digest removes all of them).
    pub all: BTreeMap<Digest, Vec<String>>,
}

impl TagKinds {
    pub fn of(snapshot: &Snapshot) -> TagKinds {
        let mut kinds = TagKinds::default();
        for (tag, tref) in &snapshot.tags {
            kinds
                .all
                .entry(tref.digest.clone())
                .or_default()
                .push(tag.clone());
            match Digest::from_link_tag(tag) {
                Some(subject) if snapshot.manifests.contains_key(&subject) => {
                    kinds
                        .links
                        .push((tag.clone(), subject, tref.digest.clone()))
                }
                // A link tag naming a missing digest is an orphan: neither a link nor a
                // name a person gave, so its manifest counts as untagged.
                Some(_) => {}
                // The janitor's own tag on its trash index: no rule sees it.
                None if crate::trash::is_trash_tag(tag)
                    && snapshot
                        .manifests
                        .get(&tref.digest)
                        .is_some_and(|f| f.trash.is_some()) => {}
                None => kinds
                    .user
                    .entry(tref.digest.clone())
                    .or_default()
                    .push(tag.clone()),
            }
        }
        kinds
    }
}

#[derive(Debug, Default)]
pub struct Graph {
    out: BTreeMap<Digest, Vec<(Digest, Edge)>>,
    has_parent: BTreeSet<Digest>,
}

/// How a manifest was reached: from which root, through which parent and edge.
#[derive(Debug, Clone)]
pub struct Reached {
    pub root: Digest,
    pub via: Option<(Digest, Edge)>,
}

impl Graph {
    pub fn build(snapshot: &Snapshot, tags: &TagKinds) -> Graph {
        let mut g = Graph::default();
        let present = |d: &Digest| snapshot.manifests.contains_key(d);
        for (digest, facts) in &snapshot.manifests {
            for child in facts.children.iter().filter(|c| present(c)) {
                g.add(digest, child, Edge::Child);
            }
            if let Some(subject) = facts.subject.as_ref().filter(|s| present(s)) {
                g.add(subject, digest, Edge::Referrer);
            }
        }
        for (_, subject, target) in &tags.links {
            if present(target) {
                g.add(subject, target, Edge::Referrer);
            }
        }
        for edges in g.out.values_mut() {
            edges.sort_by(|a, b| a.0.cmp(&b.0));
            edges.dedup_by(|a, b| a.0 == b.0);
        }
        g
    }

    fn add(&mut self, from: &Digest, to: &Digest, edge: Edge) {
        if from == to {
            return;
        }
        self.out
            .entry(from.clone())
            .or_default()
            .push((to.clone(), edge));
        self.has_parent.insert(to.clone());
    }

    /// Whether some present manifest keeps this one alive.
    pub fn has_parent(&self, d: &Digest) -> bool {
        self.has_parent.contains(d)
    }

    pub fn edges(&self, d: &Digest) -> &[(Digest, Edge)] {
        self.out.get(d).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Everything reachable from `roots` (roots included), breadth first in digest order.
    pub fn reach<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a Digest>,
    ) -> BTreeMap<Digest, Reached> {
        let mut seen: BTreeMap<Digest, Reached> = BTreeMap::new();
        let mut queue = VecDeque::new();
        for root in roots {
            if !seen.contains_key(root) {
                seen.insert(
                    root.clone(),
                    Reached {
                        root: root.clone(),
                        via: None,
                    },
                );
                queue.push_back(root.clone());
            }
        }
        while let Some(d) = queue.pop_front() {
            let root = seen[&d].root.clone();
            for (next, edge) in self.edges(&d) {
                if !seen.contains_key(next) {
                    seen.insert(
                        next.clone(),
                        Reached {
                            root: root.clone(),
                            via: Some((d.clone(), *edge)),
                        },
                    );
                    queue.push_back(next.clone());
                }
            }
        }
        seen
    }

    /// `set` ordered so that every parent comes before its children and referrers (ties in
    /// digest order). Content addressing forbids cycles, but an index whose child is also its
    /// referrer, or link tags, can fake one: then the cycle is broken at its smallest digest,
    /// and whatever hangs below it still comes after it.
    pub fn parents_first(&self, set: &BTreeSet<Digest>) -> Vec<Digest> {
        let mut indegree: BTreeMap<&Digest, usize> = set.iter().map(|d| (d, 0)).collect();
        for d in set {
            for (next, _) in self.edges(d) {
                if let Some(n) = indegree.get_mut(next) {
                    *n += 1;
                }
            }
        }
        let mut ready: BTreeSet<&Digest> = indegree
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(d, _)| *d)
            .collect();
        let mut out = Vec::with_capacity(set.len());
        loop {
            while let Some(d) = ready.pop_first() {
                indegree.remove(d);
                out.push(d.clone());
                for (next, _) in self.edges(d) {
                    if let Some(n) = indegree.get_mut(next) {
                        *n -= 1;
                        if *n == 0 {
                            ready.insert(next);
                        }
                    }
                }
            }
            if indegree.is_empty() {
                return out;
            }
            // Stuck on a cycle: release the smallest digest of a cycle that nothing outside
            // it points at, so what hangs below the cycle still waits for it.
            let remaining: BTreeSet<&Digest> = indegree.keys().copied().collect();
            let start = remaining
                .iter()
                .copied()
                .find(|d| self.heads_a_source_cycle(d, &remaining))
                .or_else(|| remaining.first().copied());
            if let Some(d) = start {
                ready.insert(d);
            }
        }
    }

    /// Nodes reachable from `start` within `within` (`start` itself only through a cycle).
    fn reach_within<'a>(
        &'a self,
        start: &'a Digest,
        within: &BTreeSet<&Digest>,
    ) -> BTreeSet<&'a Digest> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(d) = stack.pop() {
            for (next, _) in self.edges(d) {
                if within.contains(next) && seen.insert(next) {
                    stack.push(next);
                }
            }
        }
        seen
    }

    /// Whether `d` lies on a cycle that no other node of `within` points into.
    fn heads_a_source_cycle(&self, d: &Digest, within: &BTreeSet<&Digest>) -> bool {
        let forward = self.reach_within(d, within);
        if !forward.contains(d) {
            return false;
        }
        let cycle: BTreeSet<&Digest> = forward
            .iter()
            .copied()
            .filter(|v| self.reach_within(v, within).contains(d))
            .collect();
        within
            .iter()
            .filter(|u| !cycle.contains(*u))
            .all(|u| self.edges(u).iter().all(|(v, _)| !cycle.contains(v)))
    }
}

impl Graph {
    /// The graph of a snapshot.
    pub fn of(snapshot: &Snapshot) -> Graph {
        Graph::build(snapshot, &TagKinds::of(snapshot))
    }

    /// The part of `deletes` that no surviving manifest reaches: what can go without
    /// leaving a dangling index or an orphaned referrer behind.
    pub fn safe_subset(
        &self,
        all: impl IntoIterator<Item = Digest>,
        deletes: &BTreeSet<Digest>,
    ) -> BTreeSet<Digest> {
        let survivors: Vec<Digest> = all.into_iter().filter(|d| !deletes.contains(d)).collect();
        let reached = self.reach(survivors.iter());
        deletes
            .iter()
            .filter(|d| !reached.contains_key(*d))
            .cloned()
            .collect()
    }

    /// `set` in waves: each wave holds manifests whose parents within `set` are all in
    /// earlier waves, with those parents. Deleting wave by wave never leaves an index without
    /// its children while it still exists.
    pub fn waves(&self, set: &BTreeSet<Digest>) -> Vec<Vec<(Digest, Vec<Digest>)>> {
        let mut parents: BTreeMap<&Digest, Vec<Digest>> = BTreeMap::new();
        for d in set {
            for (next, _) in self.edges(d) {
                if set.contains(next) {
                    parents.entry(next).or_default().push(d.clone());
                }
            }
        }
        let mut level: BTreeMap<Digest, usize> = BTreeMap::new();
        let mut waves: Vec<Vec<(Digest, Vec<Digest>)>> = Vec::new();
        for d in self.parents_first(set) {
            let ps = parents.get(&d).cloned().unwrap_or_default();
            let l = ps
                .iter()
                .filter_map(|p| level.get(p))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            level.insert(d.clone(), l);
            if waves.len() <= l {
                waves.resize_with(l + 1, Vec::new);
            }
            waves[l].push((d, ps));
        }
        waves
    }
}

/// Manifests that some user tag reaches. The rest are untagged; the inventory starts their
/// clock.
pub fn reached_by_user_tags(snapshot: &Snapshot) -> BTreeSet<Digest> {
    let tags = TagKinds::of(snapshot);
    let graph = Graph::build(snapshot, &tags);
    graph.reach(tags.user.keys()).into_keys().collect()
}
