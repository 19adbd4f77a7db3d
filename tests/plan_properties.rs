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

/// Up to 7 images with up to 12 tags among them. Each image's date comes from `dated`; each
/// tag gets a time (days ago, or none) from `timed`, which `set` puts on it.
fn images(
    dated: impl Strategy<Value = Option<DateTime<Utc>>> + Clone,
    timed: impl Strategy<Value = Option<i64>> + Clone,
    set: fn(&mut TagRef, Option<DateTime<Utc>>),
) -> impl Strategy<Value = Snapshot> {
    (1usize..8)
        .prop_flat_map(move |n| {
            (
                prop::collection::vec(dated.clone(), n),
                prop::collection::vec((0..TAG_NAMES.len(), 0..n, timed.clone()), 0..12),
            )
        })
        .prop_map(move |(dates, tags)| {
            let mut s = Snapshot {
                repository: "ci/app".into(),
                ..Snapshot::default()
            };
            for (i, created) in dates.into_iter().enumerate() {
                let facts = ManifestFacts {
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    created,
                    ..ManifestFacts::default()
                };
                s.manifests.insert(d(i), facts);
            }
            for (name, target, days) in tags {
                let mut t = TagRef::new(d(target));
                set(&mut t, days.map(|n| now() - Duration::days(n)));
                s.tags.insert(TAG_NAMES[name].into(), t);
            }
            s
        })
}

/// Images built in the last 90 days (some of unknown date), some tags with a registry time of
/// their own (as on ACR).
fn tagged_images() -> impl Strategy<Value = Snapshot> {
    let dated = prop::option::weighted(0.9, (0i64..90).prop_map(|n| now() - Duration::days(n)));
    images(dated, prop::option::weighted(0.3, 0i64..90), |t, at| {
        t.updated = at
    })
}

/// Images dated before Docker (reproducible builds) or recently, their tags first seen at
/// random times or never (no inventory).
fn reproducible_images() -> impl Strategy<Value = Snapshot> {
    let dated = prop_oneof![
        Just("1970-01-01T00:00:00Z"),
        Just("1980-01-01T00:00:00Z"),
        Just("2013-03-19T00:00:00Z"),
        Just("2026-01-01T00:00:00Z"),
    ]
    .prop_map(|d| Some(d.parse().unwrap()));
    images(dated, prop::option::weighted(0.7, 0i64..90), |t, at| {
        t.first_seen = at
    })
}

/// One tagged rule with a `keep`, over every tag or only some.
fn keep_rule() -> impl Strategy<Value = String> {
    let older = prop_oneof![Just("0"), Just("1d"), Just("30d")];
    let tags = prop_oneof![Just(".*"), Just("pr-.*|latest|stable")];
    (1usize..4, older, tags).prop_map(|(keep, older, tags)| {
        let rule = format!(
            r#"{{"name":"k","select":"tagged","tags":"{tags}","older_than":"{older}","keep":{keep}}}"#
        );
        format!(r#"{{"rules":[{rule}]}}"#)
    })
}

/// One tagged rule that needs an age: by `older_than`, by `keep`, or both.
fn age_rule() -> impl Strategy<Value = String> {
    (0usize..3, prop_oneof![Just("0"), Just("1d"), Just("30d")])
        .prop_filter("needs an age", |(keep, older)| *keep > 0 || *older != "0")
        .prop_map(|(keep, older)| {
            let rule =
                format!(r#"{{"name":"r","select":"tagged","older_than":"{older}","keep":{keep}}}"#);
            format!(r#"{{"rules":[{rule}]}}"#)
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
    fn no_manifest_that_keep_holds_ever_loses_one_of_the_rules_tags(s in tagged_images(), rule in keep_rule()) {
        let p = Policy::from_json(&rule).unwrap();
        let result = plan(&s, &p, now());
        let gone = deleted(&result);
        let untagged: BTreeSet<&str> = result.untag.iter().map(|u| u.tag.as_str()).collect();
        let r = &p.rules[0];
        let owned = |tag: &str| p.tag_owner("ci/app", tag).is_some();
        // Each tag's age, worked out here: its own time, else its image's.
        let age = |tag: &str| {
            let t = &s.tags[tag];
            t.updated.or(s.manifests[&t.digest].created).map(|at| now() - at)
        };
        let old_enough = |tag: &str| {
            age(tag).is_some_and(|a| a.to_std().unwrap_or_default() >= r.older_than)
        };
        let mut ranked: Vec<(DateTime<Utc>, &Digest)> = Vec::new();
        for digest in s.manifests.keys() {
            let tags: Vec<&str> = s.tags.iter().filter(|(n, t)| &t.digest == digest && owned(n)).map(|(n, _)| n.as_str()).collect();
            let removed: Vec<&str> = tags.iter().copied().filter(|t| gone.contains(digest) || untagged.contains(t)).collect();
            let left: Vec<&str> = tags.iter().copied().filter(|t| !removed.contains(t)).collect();
            // A tag left on a manifest that lost some of the rule's tags was left for its age.
            if !removed.is_empty() {
                for t in &left {
                    prop_assert!(!old_enough(t), "{t} on {digest} kept by keep while {removed:?} went\n{result:#?}");
                }
            }
            let newest = tags.iter().filter(|t| old_enough(t)).filter_map(|t| age(t)).min().map(|a| now() - a);
            if let Some(at) = newest {
                ranked.push((at, digest));
            }
        }
        // The `keep` newest images (strictly newer than the next one) keep all their tags.
        ranked.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (i, (at, digest)) in ranked.iter().enumerate().take(r.keep) {
            let strictly_newer = ranked.get(r.keep).is_none_or(|(next, _)| at > next);
            if strictly_newer {
                prop_assert!(!gone.contains(*digest), "image {i} of the {} newest deleted\n{result:#?}", r.keep);
                for (n, t) in &s.tags {
                    if &t.digest == *digest && owned(n) {
                        prop_assert!(!untagged.contains(n.as_str()), "{n} of a kept image removed");
                    }
                }
            }
        }
        // And no more: an image older than the `keep`th newest keeps none of its tags that
        // are old enough.
        if let Some((last, _)) = r.keep.checked_sub(1).and_then(|i| ranked.get(i)) {
            for (at, digest) in ranked.iter().filter(|(at, _)| at < last) {
                for (n, _) in s.tags.iter().filter(|(n, t)| &t.digest == *digest && owned(n)) {
                    if old_enough(n) {
                        let removed = gone.contains(*digest) || untagged.contains(n.as_str());
                        prop_assert!(removed, "{n} on an image from {at}, older than the {}th newest, stays\n{result:#?}", r.keep);
                    }
                }
            }
        }
    }

    #[test]
    fn no_image_dated_before_2013_is_older_than_since_its_tag_was_first_seen(s in reproducible_images(), rule in age_rule()) {
        let p = Policy::from_json(&rule).unwrap();
        let r = &p.rules[0];
        let result = plan(&s, &p, now());
        let gone = deleted(&result);
        let untagged: BTreeSet<&str> = result.untag.iter().map(|u| u.tag.as_str()).collect();
        let docker: DateTime<Utc> = "2013-03-20T00:00:00Z".parse().unwrap();
        for (name, t) in &s.tags {
            let created = s.manifests[&t.digest].created;
            if created.is_none_or(|c| c >= docker) {
                continue;
            }
            if gone.contains(&t.digest) || untagged.contains(name.as_str()) {
                let seen = t.first_seen;
                prop_assert!(seen.is_some(), "{name}: removed with no known age\n{result:#?}");
                let since_seen = (now() - seen.unwrap()).to_std().unwrap_or_default();
                prop_assert!(since_seen >= r.older_than, "{name}: removed {since_seen:?} after first seen, rule waits {:?}", r.older_than);
            }
        }
        // What the report says such an image's age counts from is never before Docker, nor
        // before its tags were first seen.
        let since = result.delete.iter().map(|d| (&d.digest, d.since)).chain(result.keep.iter().map(|k| (&k.digest, k.since)));
        for (digest, at) in since {
            let Some(at) = at else { continue };
            prop_assert!(at >= docker, "{digest}: dated {at}");
            if s.manifests[digest].created.is_none_or(|c| c >= docker) {
                continue;
            }
            let first = s.tags.values().filter(|t| &t.digest == digest).filter_map(|t| t.first_seen).min();
            if let Some(first) = first {
                prop_assert!(at >= first, "{digest}: dated {at}, first seen {first}");
            }
        }
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
