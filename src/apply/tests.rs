//! The pure parts of apply: what the re-check keeps of a plan, and what a tag pushed while
//! deleting now reaches.

use chrono::{DateTime, Utc};

use super::*;
use crate::plan::graph::Graph;
use crate::plan::{ManifestFacts, TagRef};

fn d(n: u32) -> Digest {
    format!("sha256:{n:064x}").parse().unwrap()
}

fn now() -> DateTime<Utc> {
    "2030-06-01T00:00:00Z".parse().unwrap()
}

const OLD: &str = "2030-01-01T00:00:00Z";

/// Every `pr-*` tag, whatever its age.
const EVERY_PR: &str = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"}]}"#;

#[derive(Clone)]
struct Repo(Snapshot);

impl Repo {
    fn new() -> Repo {
        Repo(Snapshot {
            repository: "app".into(),
            ..Snapshot::default()
        })
    }
    fn image(mut self, n: u32) -> Repo {
        self.0.manifests.insert(
            d(n),
            ManifestFacts {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                created: OLD.parse().ok(),
                ..ManifestFacts::default()
            },
        );
        self
    }
    fn index(mut self, n: u32, children: &[u32]) -> Repo {
        self.0.manifests.insert(
            d(n),
            ManifestFacts {
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                children: children.iter().map(|c| d(*c)).collect(),
                created: OLD.parse().ok(),
                ..ManifestFacts::default()
            },
        );
        self
    }
    fn referrer(mut self, n: u32, subject: u32) -> Repo {
        self = self.image(n);
        self.0.manifests.get_mut(&d(n)).unwrap().subject = Some(d(subject));
        self
    }
    fn tag(mut self, tag: &str, n: u32) -> Repo {
        self.0.tags.insert(tag.into(), TagRef::new(d(n)));
        self
    }
    fn plan(&self) -> RepositoryPlan {
        let policy = Policy::from_json(EVERY_PR).unwrap();
        plan(&self.0, &policy, now())
    }
}

fn deleted(plan: &RepositoryPlan) -> BTreeSet<Digest> {
    plan.delete.iter().map(|d| d.digest.clone()).collect()
}

/// Plan `before`, then reconcile with `after` as the re-check reads it.
fn recheck(before: &Repo, after: &Repo) -> Reconciled {
    let planned = before.plan();
    reconcile(&planned, &after.0, &after.plan(), &BTreeSet::new())
}

#[test]
fn a_planned_manifest_that_gained_a_tag_stays_even_a_tag_the_rules_select() {
    let before = Repo::new().image(1).tag("pr-1", 1).image(2).tag("v1", 2);
    // pr-9 is selected too, but nobody saw it in the plan.
    let after = before.clone().tag("pr-9", 1);
    let r = recheck(&before, &after);
    assert!(r.go.is_empty(), "{:?}", r.go);
    assert_eq!(r.kept.len(), 1);
    assert!(
        r.kept[0].reason.contains("gained tag pr-9"),
        "{}",
        r.kept[0].reason
    );
}

#[test]
fn a_tag_rolled_back_onto_a_planned_manifest_saves_it() {
    let before = Repo::new()
        .image(1)
        .tag("pr-1", 1)
        .image(2)
        .tag("latest", 2);
    let after = before.clone().tag("latest", 1);
    let r = recheck(&before, &after);
    assert!(r.go.is_empty(), "{:?}", r.go);
    assert!(r.kept[0].reason.contains("gained tag latest"));
}

#[test]
fn a_tag_re_pushed_as_an_index_keeps_the_planned_child_it_reuses() {
    let before = Repo::new()
        .image(1)
        .index(10, &[1])
        .tag("pr-1", 10)
        .image(2)
        .tag("latest", 2);
    assert_eq!(deleted(&before.plan()), BTreeSet::from([d(1), d(10)]));
    let after = before.clone().image(3).index(11, &[1, 3]).tag("latest", 11);
    let r = recheck(&before, &after);
    assert_eq!(r.go, BTreeSet::from([d(10)]));
    let kept: Vec<&Digest> = r.kept.iter().map(|k| &k.digest).collect();
    assert_eq!(kept, vec![&d(1)]);
}

#[test]
fn a_child_that_an_unplanned_untagged_index_reaches_is_not_deleted() {
    // The re-plan would delete the child (its index is untagged and no rule judges it), but
    // the index stays, so its child must too: only what no survivor reaches goes.
    let before = Repo::new().image(1).index(10, &[1]).tag("pr-1", 10);
    let after = before.clone().index(12, &[1]);
    let planned = before.plan();
    let mut again = after.plan();
    // As a decider that deletes every planned manifest again would say.
    again.delete = planned.delete.clone();
    let r = reconcile(&planned, &after.0, &again, &BTreeSet::new());
    assert_eq!(r.go, BTreeSet::from([d(10)]));
}

#[test]
fn an_untag_goes_ahead_only_if_the_new_plan_untags_the_same_tag_on_the_same_digest() {
    let before = Repo::new()
        .image(1)
        .tag("pr-1", 1)
        .tag("stable", 1)
        .image(2)
        .tag("pr-2", 2)
        .tag("v2", 2);
    let planned = before.plan();
    assert_eq!(planned.untag.len(), 2);
    // pr-2 moved to another build meanwhile.
    let after = before.clone().image(3).tag("pr-2", 3);
    let r = reconcile(&planned, &after.0, &after.plan(), &BTreeSet::new());
    let tags: Vec<&str> = r.untags.iter().map(|u| u.tag.as_str()).collect();
    assert_eq!(tags, vec!["pr-1"]);
    assert_eq!(r.skipped, vec!["pr-2"]);
}

#[test]
fn newly_reached_names_what_a_new_or_moved_tag_reaches_and_nothing_else() {
    let view = Repo::new()
        .image(1)
        .image(2)
        .image(3)
        .index(10, &[1, 2])
        .index(11, &[3])
        .tag("hotfix", 10)
        .tag("latest", 11)
        .tag("v2", 2);
    let basis: BTreeMap<String, Digest> = [("latest", 11), ("v2", 5), ("gone", 3)]
        .into_iter()
        .map(|(t, n)| (t.to_owned(), d(n)))
        .collect();
    let planned = BTreeSet::from([d(1), d(2), d(3)]);
    let reached = newly_reached(&basis, &view.0, &planned);
    // hotfix is new and reaches 1 and 2; v2 moved onto 2; latest did not change, so 3,
    // which only latest reaches, is not named.
    assert_eq!(
        reached,
        BTreeMap::from([(d(1), "hotfix".to_owned()), (d(2), "hotfix".to_owned())])
    );
}

#[test]
fn only_a_wave_holding_the_child_of_an_index_is_re_read() {
    // 10 is an index with child 1; 1 has a signature 20 (a referrer); 30 is a referrers
    // fallback index linked to 10 by its tag, holding the SBOM 31.
    let repo = Repo::new()
        .image(1)
        .index(10, &[1])
        .referrer(20, 1)
        .index(30, &[31])
        .referrer(31, 10)
        .tag("pr-1", 10)
        .tag(&format!("{}", d(10)).replacen(':', "-", 1), 30);
    let graph = Graph::of(&repo.0);
    let go = BTreeSet::from([d(1), d(10), d(20), d(30), d(31)]);
    let waves = graph.waves(&go);
    let mut referrers = BTreeSet::new();
    let needs: Vec<bool> = waves
        .iter()
        .map(|w| wave_needs_recheck(&graph, w, &mut referrers))
        .collect();
    let digests: Vec<Vec<Digest>> = waves
        .iter()
        .map(|w| w.iter().map(|(d, _)| d.clone()).collect())
        .collect();
    assert_eq!(
        digests,
        vec![vec![d(10)], vec![d(1), d(30)], vec![d(20), d(31)]]
    );
    // Wave 2 holds the platform image 1: re-read. Wave 3 holds only referrers: not.
    assert_eq!(needs, vec![false, true, false]);
    assert_eq!(referrers, BTreeSet::from([d(20), d(30), d(31)]));
}
