//! Invariants of the planner over random repository graphs and random policies.
//!
//! The reachability here is computed independently of the planner's own graph code, so a
//! bug there cannot hide itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use registry_janitor::plan::{plan, ManifestFacts, RepositoryPlan, Snapshot, TagRef};
use registry_janitor::policy::Policy;
use registry_janitor::registry::Digest;

fn d(n: usize) -> Digest {
    format!("sha256:{n:064x}").parse().unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-06-30T00:00:00Z".parse().unwrap()
}

const TAG_NAMES: &[&str] = &[
    "latest", "stable", "v1.2.3", "main", "pr-1", "pr-2", "pr-3", "pr-4", "dev-a", "dev-b",
];

/// One random manifest: index children and subject point at lower numbers (a DAG, as
/// content addressing makes it), ages are random or unknown.
#[derive(Debug, Clone)]
struct Spec {
    children: Vec<usize>,
    subject: Option<usize>,
    created_days: Option<i64>,
    untagged_days: Option<i64>,
    locked: bool,
}

fn spec(i: usize) -> impl Strategy<Value = Spec> {
    let below = if i == 0 { 0..1 } else { 0..i };
    (
        prop::collection::vec(below.clone(), 0..if i == 0 { 1 } else { 4 }),
        prop::option::weighted(0.2, below),
        prop::option::weighted(0.8, 0i64..400),
        prop::option::weighted(0.7, 0i64..60),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            move |(children, subject, created_days, untagged_days, locked)| Spec {
                children: if i == 0 { vec![] } else { children },
                subject: if i == 0 { None } else { subject },
                created_days,
                untagged_days,
                locked,
            },
        )
}

fn repository() -> impl Strategy<Value = Snapshot> {
    (1usize..25)
        .prop_flat_map(|n| {
            let specs: Vec<_> = (0..n).map(spec).collect();
            (
                specs,
                prop::collection::vec((0..TAG_NAMES.len(), 0..n), 0..12),
                prop::collection::vec((0..n, 0..n + 3, prop::bool::ANY), 0..4),
            )
        })
        .prop_map(|(specs, tags, links)| {
            let mut s = Snapshot {
                repository: "ci/app".into(),
                ..Snapshot::default()
            };
            for (i, sp) in specs.iter().enumerate() {
                s.manifests.insert(
                    d(i),
                    ManifestFacts {
                        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                        size: 10,
                        children: sp.children.iter().map(|c| d(*c)).collect(),
                        subject: sp.subject.map(d),
                        blobs: vec![(d(1000 + i), 100), (d(2000), 5)],
                        created: sp.created_days.map(|n| now() - Duration::days(n)),
                        untagged_since: sp.untagged_days.map(|n| now() - Duration::days(n)),
                        locked: sp.locked,
                        ..ManifestFacts::default()
                    },
                );
            }
            for (name, target) in tags {
                s.tags
                    .insert(TAG_NAMES[name].into(), TagRef::new(d(target)));
            }
            // Link tags: on `target`, naming `subject` (which may be missing: an orphan).
            for (target, subject, sig) in links {
                let suffix = if sig { ".sig" } else { "" };
                s.tags.insert(
                    format!("{}{suffix}", d(subject).fallback_tag()),
                    TagRef::new(d(target)),
                );
            }
            s
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    let rules = prop::collection::vec(
        prop_oneof![
            Just(r#"{"name":"N","select":"untagged"}"#.to_owned()),
            Just(r#"{"name":"N","select":"untagged","older_than":"7d","keep":1}"#.to_owned()),
            Just(r#"{"name":"N","select":"tagged","tags":"pr-.*","older_than":"30d"}"#.to_owned()),
            Just(r#"{"name":"N","select":"tagged","tags":"pr-.*","keep":2}"#.to_owned()),
            Just(r#"{"name":"N","select":"tagged"}"#.to_owned()),
            Just(
                r#"{"name":"N","select":"tagged","tags":"dev-.*|main","older_than":"1d"}"#
                    .to_owned()
            ),
            Just(r#"{"name":"N","repositories":"other/.*","select":"tagged"}"#.to_owned()),
        ],
        1..4,
    );
    let protect_tags = prop::collection::vec(
        prop_oneof![
            Just("latest"),
            Just("v\\\\d+\\\\.\\\\d+\\\\.\\\\d+"),
            Just("stable")
        ],
        0..3,
    );
    let pinned = prop::collection::vec(0usize..25, 0..2);
    (rules, protect_tags, pinned, prop::bool::weighted(0.2)).prop_map(|(rules, tags, pinned, include_locked)| {
        let rules: Vec<String> = rules.iter().enumerate().map(|(i, r)| r.replace("\"N\"", &format!("\"r{i}\""))).collect();
        let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
        let digests: Vec<String> = pinned.iter().map(|n| format!("\"{}\"", d(*n))).collect();
        let doc = format!(
            r#"{{"rules":[{}],"protect":{{"tags":[{}],"digests":[{}],"include_locked":{include_locked}}}}}"#,
            rules.join(","),
            tags.join(","),
            digests.join(",")
        );
        Policy::from_json(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
    })
}

/// Everything that `from` keeps alive, computed from first principles.
fn reachable(s: &Snapshot, from: &BTreeSet<Digest>) -> BTreeSet<Digest> {
    let mut edges: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    for (digest, f) in &s.manifests {
        for c in &f.children {
            edges.entry(digest.clone()).or_default().push(c.clone());
        }
        if let Some(subject) = &f.subject {
            edges
                .entry(subject.clone())
                .or_default()
                .push(digest.clone());
        }
    }
    for (tag, t) in &s.tags {
        if let Some(subject) = Digest::from_link_tag(tag) {
            edges.entry(subject).or_default().push(t.digest.clone());
        }
    }
    let mut seen: BTreeSet<Digest> = from
        .iter()
        .filter(|x| s.manifests.contains_key(*x))
        .cloned()
        .collect();
    let mut stack: Vec<Digest> = seen.iter().cloned().collect();
    while let Some(x) = stack.pop() {
        for y in edges.get(&x).into_iter().flatten() {
            if s.manifests.contains_key(y) && seen.insert(y.clone()) {
                stack.push(y.clone());
            }
        }
    }
    seen
}

fn deleted(p: &RepositoryPlan) -> BTreeSet<Digest> {
    p.delete.iter().map(|x| x.digest.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nothing_reachable_from_a_kept_tag_or_a_protected_digest_is_deleted(s in repository(), p in policy()) {
        let result = plan(&s, &p, now());
        let gone = deleted(&result);
        let untagged: BTreeSet<&str> = result.untag.iter().map(|u| u.tag.as_str()).collect();
        // Tags that still name something after the plan: not untagged, on a surviving manifest.
        let mut roots: BTreeSet<Digest> = s
            .tags
            .iter()
            .filter(|(name, t)| !untagged.contains(name.as_str()) && !gone.contains(&t.digest))
            .map(|(_, t)| t.digest.clone())
            .collect();
        roots.extend(p.protect.digests.iter().cloned());
        let must_live = reachable(&s, &roots);
        let broken: Vec<&Digest> = must_live.intersection(&gone).collect();
        prop_assert!(broken.is_empty(), "deleted but still reachable: {:?}\n{:#?}", broken, result);
        for (name, t) in &s.tags {
            if p.protecting_pattern(name).is_some() && Digest::from_link_tag(name).is_none() {
                prop_assert!(!gone.contains(&t.digest), "protected tag {} lost its manifest", name);
                prop_assert!(!untagged.contains(name.as_str()), "protected tag {} untagged", name);
            }
        }
    }

    #[test]
    fn no_survivor_is_left_pointing_at_a_deleted_manifest(s in repository(), p in policy()) {
        let result = plan(&s, &p, now());
        let gone = deleted(&result);
        let survivors: BTreeSet<Digest> = s.manifests.keys().filter(|x| !gone.contains(*x)).cloned().collect();
        let reach = reachable(&s, &survivors);
        prop_assert!(reach.is_disjoint(&gone));
    }

    #[test]
    fn every_manifest_is_decided_once_and_parents_go_first(s in repository(), p in policy()) {
        let result = plan(&s, &p, now());
        let mut all: Vec<Digest> = result.delete.iter().map(|x| x.digest.clone()).collect();
        all.extend(result.keep.iter().map(|k| k.digest.clone()));
        all.sort();
        let expected: Vec<Digest> = s.manifests.keys().cloned().collect();
        prop_assert_eq!(all, expected);
        for k in &result.keep {
            prop_assert!(!k.reason.is_empty());
        }
        let position: BTreeMap<&Digest, usize> = result.delete.iter().enumerate().map(|(i, x)| (&x.digest, i)).collect();
        for (i, x) in result.delete.iter().enumerate() {
            prop_assert!(!x.reason.is_empty());
            for c in &s.manifests[&x.digest].children {
                if let Some(j) = position.get(c) {
                    // Only a cycle (a child that is also a referrer of its index) has no order.
                    let cycle = reachable(&s, &BTreeSet::from([c.clone()])).contains(&x.digest);
                    prop_assert!(*j > i || cycle, "child {} deleted before its index", c);
                }
            }
        }
    }

    #[test]
    fn the_plan_is_deterministic(s in repository(), p in policy()) {
        let a = plan(&s, &p, now());
        let b = plan(&s.clone(), &p, now());
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }

    #[test]
    fn a_repository_with_a_read_error_deletes_nothing(mut s in repository(), p in policy()) {
        s.problems.push("GET /v2/ci/app/manifests/pr-9: HTTP 500".into());
        let result = plan(&s, &p, now());
        prop_assert!(!result.complete());
        prop_assert!(result.delete.is_empty());
        prop_assert!(result.untag.is_empty());
        prop_assert_eq!(result.keep.len(), s.manifests.len());
    }
}
