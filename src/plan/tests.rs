//! Scenarios the planner must get right, each a hazard that broke images for users of other
//! tools. Property tests over random graphs live in `tests/plan_properties.rs`.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::policy::Policy;

fn d(n: u32) -> Digest {
    format!("sha256:{n:064x}").parse().unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-06-30T00:00:00Z".parse().unwrap()
}

fn days_ago(n: i64) -> Option<DateTime<Utc>> {
    Some(now() - Duration::days(n))
}

struct Repo(Snapshot);

impl Repo {
    fn new() -> Repo {
        Repo(Snapshot {
            repository: "ci/app".into(),
            ..Snapshot::default()
        })
    }
    fn image(mut self, n: u32, created: Option<DateTime<Utc>>) -> Repo {
        self.0.manifests.insert(
            d(n),
            ManifestFacts {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 100,
                blobs: vec![(d(10_000 + n), 1_000)],
                created,
                ..ManifestFacts::default()
            },
        );
        self
    }
    fn untagged_since(mut self, n: u32, since: Option<DateTime<Utc>>) -> Repo {
        self.0.manifests.get_mut(&d(n)).unwrap().untagged_since = since;
        self
    }
    fn index(mut self, n: u32, children: &[u32]) -> Repo {
        self.0.manifests.insert(
            d(n),
            ManifestFacts {
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                size: 50,
                children: children.iter().map(|c| d(*c)).collect(),
                created: days_ago(400),
                ..ManifestFacts::default()
            },
        );
        self
    }
    fn referrer(mut self, n: u32, subject: u32) -> Repo {
        self = self.image(n, days_ago(400));
        self.0.manifests.get_mut(&d(n)).unwrap().subject = Some(d(subject));
        self
    }
    fn blobs(mut self, n: u32, blobs: &[(u32, u64)]) -> Repo {
        self.0.manifests.get_mut(&d(n)).unwrap().blobs =
            blobs.iter().map(|(b, s)| (d(*b), *s)).collect();
        self
    }
    /// A trash index of the run 1 day ago, holding `held`, expiring at `expires`.
    fn trash(mut self, n: u32, held: &[u32], expires: DateTime<Utc>) -> Repo {
        self = self.index(n, held);
        self.0.manifests.get_mut(&d(n)).unwrap().trash = Some(crate::trash::Mark {
            run: now() - Duration::days(1),
            expires,
        });
        self.tag(&format!("janitor-trash-{n}"), n)
    }
    fn tag(mut self, tag: &str, n: u32) -> Repo {
        self.0.tags.insert(tag.into(), TagRef::new(d(n)));
        self
    }
    fn plan(&self, policy: &str) -> RepositoryPlan {
        plan(&self.0, &Policy::from_json(policy).unwrap(), now())
    }
}

const PURGE_UNTAGGED: &str = r#"{"rules":[{"name":"dangling","select":"untagged"}]}"#;
const PR_BUILDS: &str =
    r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d"}]}"#;

fn deleted(p: &RepositoryPlan) -> Vec<Digest> {
    p.delete.iter().map(|x| x.digest.clone()).collect()
}

fn kept(p: &RepositoryPlan, digest: &Digest) -> String {
    p.keep
        .iter()
        .find(|k| &k.digest == digest)
        .map(|k| k.reason.clone())
        .unwrap_or_else(|| panic!("{digest} not kept: {p:#?}"))
}

#[test]
fn children_of_tagged_index_survive_untagged_purge() {
    let repo = Repo::new()
        .image(1, None)
        .image(2, None)
        .index(3, &[1, 2])
        .tag("latest", 3)
        .image(4, None)
        .untagged_since(4, days_ago(5));
    let p = repo.plan(PURGE_UNTAGGED);
    assert_eq!(deleted(&p), vec![d(4)]);
    assert!(
        kept(&p, &d(1)).starts_with("child of "),
        "{}",
        kept(&p, &d(1))
    );
}

#[test]
fn nested_index_children_are_kept_through_every_level() {
    let repo = Repo::new()
        .image(1, None)
        .index(2, &[1])
        .index(3, &[2])
        .tag("v1", 3);
    let p = repo.plan(PURGE_UNTAGGED);
    assert!(p.delete.is_empty(), "{p:#?}");
    assert!(kept(&p, &d(1)).contains("child of"));
}

#[test]
fn deleting_an_index_takes_only_children_nothing_else_keeps() {
    let repo = Repo::new()
        .image(1, None)
        .image(2, None)
        .index(3, &[1, 2])
        .tag("pr-1", 3)
        .index(4, &[2])
        .tag("stable", 4);
    let p = repo.plan(r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"}]}"#);
    assert_eq!(
        deleted(&p),
        vec![d(3), d(1)],
        "index first, then its own child"
    );
    assert!(kept(&p, &d(2)).contains("child of"));
    assert!(p.delete[1].reason.contains("which is deleted"));
}

#[test]
fn referrers_live_and_die_with_their_subject() {
    // 2 refers to 1 by `subject`; 3 is a cosign signature tagged sha256-<1>.sig.
    let sig_tag = format!("{}.sig", d(1).fallback_tag());
    let repo = Repo::new()
        .image(1, days_ago(40))
        .tag("pr-1", 1)
        .referrer(2, 1)
        .image(3, None)
        .tag(&sig_tag, 3);
    let p = repo.plan(PR_BUILDS);
    assert_eq!(deleted(&p), vec![d(1), d(2), d(3)]);
    assert_eq!(p.delete[2].tags, vec![sig_tag.clone()]);

    // When the subject stays, so do its referrers, whatever an untagged rule says.
    let repo = Repo::new()
        .image(1, days_ago(40))
        .tag("latest", 1)
        .referrer(2, 1)
        .untagged_since(2, days_ago(90))
        .image(3, None)
        .tag(&sig_tag, 3);
    let p = repo.plan(
        r#"{"rules":[{"name":"all","select":"tagged"},{"name":"u","select":"untagged"}],
        "protect":{"tags":["latest"]}}"#,
    );
    assert!(p.delete.is_empty(), "{p:#?}");
    assert!(kept(&p, &d(3)).starts_with("referrer of"));
    assert!(
        p.untag.is_empty(),
        "link tags are never untagged on their own"
    );
}

#[test]
fn a_digest_shared_by_a_selected_and_a_kept_tag_only_loses_the_selected_tag() {
    let repo = Repo::new()
        .image(1, days_ago(40))
        .tag("pr-1", 1)
        .tag("stable", 1);
    let p = repo.plan(PR_BUILDS);
    assert!(p.delete.is_empty());
    assert_eq!(p.untag.len(), 1);
    assert_eq!(p.untag[0].tag, "pr-1");
    assert!(kept(&p, &d(1)).contains("\"stable\""));
}

#[test]
fn keep_n_keeps_the_newest_selected_tags() {
    let repo = Repo::new()
        .image(1, days_ago(100))
        .tag("pr-1", 1)
        .image(2, days_ago(90))
        .tag("pr-2", 2)
        .image(3, days_ago(80))
        .tag("pr-3", 3);
    let p = repo.plan(
        r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d","keep":2}]}"#,
    );
    assert_eq!(deleted(&p), vec![d(1)]);
    assert!(kept(&p, &d(3)).contains("newest"));
}

#[test]
fn first_rule_owns_a_tag_so_a_narrow_keep_shields_it_from_a_broad_rule() {
    let repo = Repo::new()
        .image(1, days_ago(100))
        .tag("pr-1", 1)
        .image(2, days_ago(90))
        .tag("pr-2", 2);
    let p = repo.plan(
        r#"{"rules":[
        {"name":"narrow","repositories":"ci/app","select":"tagged","tags":"pr-.*","keep":5},
        {"name":"broad","select":"tagged","tags":".*"}]}"#,
    );
    assert!(p.delete.is_empty(), "{p:#?}");
}

#[test]
fn a_pinned_digest_keeps_itself_and_everything_it_reaches() {
    let repo = Repo::new()
        .image(1, None)
        .untagged_since(1, days_ago(9))
        .index(2, &[1])
        .tag("pr-9", 2);
    let policy = format!(
        r#"{{"rules":[{{"name":"pr","select":"tagged","tags":"pr-.*"}}],"protect":{{"digests":["{}"]}}}}"#,
        d(2)
    );
    let p = repo.plan(&policy);
    assert!(p.delete.is_empty());
    assert_eq!(kept(&p, &d(2)), "pinned by protect.digests");
    assert!(kept(&p, &d(1)).contains("pinned"));
    assert_eq!(
        p.untag.len(),
        1,
        "the selected tag on a pinned manifest is untagged"
    );
}

#[test]
fn unknown_age_is_kept() {
    let repo = Repo::new().image(1, None).tag("pr-1", 1).image(2, None);
    let p = repo.plan(
        r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"1d"},
        {"name":"u","select":"untagged","older_than":"1d"}]}"#,
    );
    assert!(p.delete.is_empty(), "{p:#?}");
    assert!(kept(&p, &d(1)).contains("unknown age"));
    assert!(kept(&p, &d(2)).contains("unknown age"));
}

#[test]
fn untagged_age_counts_from_when_it_was_first_seen_untagged() {
    let repo = Repo::new()
        .image(1, days_ago(1000))
        .untagged_since(1, days_ago(0));
    let policy = r#"{"rules":[{"name":"u","select":"untagged","older_than":"1d"}]}"#;
    let p = repo.plan(policy);
    assert!(
        p.delete.is_empty(),
        "a reproducible build from 1970 is not old the day it is untagged"
    );
    let repo = repo.untagged_since(1, days_ago(2));
    assert_eq!(deleted(&repo.plan(policy)), vec![d(1)]);
}

#[test]
fn orphan_referrers_and_orphan_link_tags_are_judged_as_untagged() {
    let ghost = d(999);
    let repo = Repo::new()
        .referrer(1, 999)
        .untagged_since(1, days_ago(3))
        .image(2, None)
        .tag(&format!("{}.sig", ghost.fallback_tag()), 2)
        .untagged_since(2, days_ago(3))
        .image(3, None)
        .tag(&format!("{}.att", ghost.fallback_tag()), 3)
        .untagged_since(3, days_ago(0));
    let p = repo.plan(r#"{"rules":[{"name":"u","select":"untagged","older_than":"1d"}]}"#);
    assert_eq!(deleted(&p), vec![d(1), d(2)]);
    assert!(kept(&p, &d(3)).contains("waits 1d"));
}

#[test]
fn protected_tags_win_over_selection() {
    let repo = Repo::new().image(1, days_ago(400)).tag("latest", 1);
    let p =
        repo.plan(r#"{"rules":[{"name":"all","select":"tagged"}],"protect":{"tags":["lat.st"]}}"#);
    assert!(p.delete.is_empty());
    assert!(kept(&p, &d(1)).contains("protected"));
}

#[test]
fn locked_manifests_are_kept_unless_locks_are_included() {
    let mut repo = Repo::new().image(1, days_ago(40)).tag("pr-1", 1);
    repo.0.manifests.get_mut(&d(1)).unwrap().locked = true;
    assert!(repo.plan(PR_BUILDS).delete.is_empty());
    let p = repo.plan(
        r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d"}],
        "protect":{"include_locked":true}}"#,
    );
    assert_eq!(deleted(&p), vec![d(1)]);
}

#[test]
fn a_locked_tag_is_neither_deleted_nor_untagged() {
    let mut repo = Repo::new()
        .image(1, days_ago(40))
        .tag("pr-1", 1)
        .tag("pr-2", 1);
    repo.0.tags.get_mut("pr-1").unwrap().locked = true;
    let p = repo.plan(PR_BUILDS);
    assert!(p.delete.is_empty());
    let untagged: Vec<&str> = p.untag.iter().map(|u| u.tag.as_str()).collect();
    assert_eq!(untagged, vec!["pr-2"], "only the unlocked tag goes");
    assert!(kept(&p, &d(1)).contains("locked"));
}

#[test]
fn an_incomplete_repository_deletes_nothing() {
    let mut repo = Repo::new().image(1, days_ago(40)).tag("pr-1", 1);
    repo.0
        .problems
        .push("GET /v2/ci/app/manifests/pr-2: HTTP 500".into());
    let p = repo.plan(PR_BUILDS);
    assert!(!p.complete());
    assert!(p.delete.is_empty() && p.untag.is_empty());
    assert!(p.error().unwrap().contains("HTTP 500"));
}

#[test]
fn bytes_count_only_blobs_no_survivor_uses() {
    let repo = Repo::new()
        .image(1, days_ago(40))
        .tag("pr-1", 1)
        .blobs(1, &[(50, 10), (51, 1000)])
        .image(2, days_ago(1))
        .tag("main", 2)
        .blobs(2, &[(50, 10), (52, 7)]);
    let p = repo.plan(PR_BUILDS);
    assert_eq!(deleted(&p), vec![d(1)]);
    assert_eq!(
        p.delete[0].bytes,
        100 + 1000,
        "the manifest and its unshared layer"
    );
}

#[test]
fn plans_are_deterministic() {
    let repo = Repo::new()
        .image(1, days_ago(40))
        .tag("pr-1", 1)
        .image(2, days_ago(50))
        .tag("pr-2", 2)
        .index(3, &[1, 2])
        .tag("pr-3", 3)
        .image(4, None)
        .untagged_since(4, days_ago(9));
    let policy = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"},{"name":"u","select":"untagged"}]}"#;
    assert_eq!(repo.plan(policy), repo.plan(policy));
}

#[test]
fn a_protected_pattern_covers_signature_tags_too() {
    let ghost = d(999);
    let sig = format!("{}.sig", ghost.fallback_tag());
    let repo = Repo::new()
        .image(1, None)
        .tag(&sig, 1)
        .untagged_since(1, days_ago(30));
    let p = repo
        .plan(r#"{"rules":[{"name":"u","select":"untagged"}],"protect":{"tags":[".*\\.sig"]}}"#);
    assert!(p.delete.is_empty(), "{p:#?}");
    assert!(kept(&p, &d(1)).contains("protected"));
}

// The manual operations' plans (`image delete`, `tag delete`): the user names what goes.

fn chosen(repo: &Repo, digests: &[u32], force: bool) -> manual::Chosen {
    let set = digests.iter().map(|n| d(*n)).collect();
    manual::delete_chosen(&repo.0, &set, "image delete", force, now())
}

#[test]
fn image_delete_takes_children_and_signatures_that_nothing_else_uses() {
    let repo = Repo::new()
        .image(2, days_ago(1))
        .image(3, days_ago(1))
        .image(6, days_ago(1))
        .index(1, &[2, 3])
        .index(5, &[3, 6])
        .referrer(4, 1)
        .tag("v1", 1)
        .tag("v2", 5);
    let c = chosen(&repo, &[1], false);
    assert!(c.refused.is_empty(), "{:?}", c.refused);
    assert_eq!(deleted(&c.plan), vec![d(1), d(2), d(4)]);
    assert!(kept(&c.plan, &d(3)).contains(&d(5).short().to_string()));
    assert_eq!(c.plan.delete[0].tags, vec!["v1".to_string()]);
}

#[test]
fn image_delete_refuses_a_child_of_a_tagged_index_unless_forced() {
    let repo = Repo::new()
        .image(2, days_ago(1))
        .image(3, days_ago(1))
        .index(1, &[2, 3])
        .tag("latest", 1)
        .tag("amd64", 2);
    let c = chosen(&repo, &[2], false);
    assert!(deleted(&c.plan).is_empty());
    assert_eq!(c.refused.len(), 1);
    assert!(c.refused[0].reason.contains("latest"), "{:?}", c.refused);
    let f = chosen(&repo, &[2], true);
    assert_eq!(deleted(&f.plan), vec![d(2)]);
    assert_eq!(f.forced, [d(2)].into_iter().collect());
}

#[test]
fn image_delete_refuses_to_orphan_a_referrer_that_stays() {
    let repo = Repo::new()
        .image(1, days_ago(1))
        .referrer(4, 1)
        .referrer(5, 1)
        .tag("v1", 1)
        .tag("sbom-v1", 4);
    let c = chosen(&repo, &[1], false);
    assert!(deleted(&c.plan).is_empty(), "{:?}", deleted(&c.plan));
    assert!(c.refused[0].reason.contains("sbom-v1"), "{:?}", c.refused);
    // The untagged signature 5 is not deleted either while its subject stays.
    assert!(kept(&c.plan, &d(5)).contains("not deleted"));
    let f = chosen(&repo, &[1], true);
    assert_eq!(deleted(&f.plan), vec![d(1), d(5)]);
    assert!(!deleted(&f.plan).contains(&d(4)));
}

#[test]
fn image_delete_never_forces_a_registry_lock() {
    let mut repo = Repo::new().image(1, days_ago(1)).tag("v1", 1);
    repo.0.manifests.get_mut(&d(1)).unwrap().locked = true;
    let f = chosen(&repo, &[1], true);
    assert!(deleted(&f.plan).is_empty());
    assert!(f.forced.is_empty());
    assert!(f.refused[0].reason.contains("locked"));
}

#[test]
fn tag_delete_removes_only_the_tag_and_keeps_the_manifest() {
    let repo = Repo::new().image(1, days_ago(1)).tag("v1", 1).tag("v2", 1);
    let p = manual::untag_only(&repo.0, "v1", "tag delete");
    assert!(p.delete.is_empty());
    assert_eq!(p.untag.len(), 1);
    assert_eq!((p.untag[0].tag.as_str(), &p.untag[0].digest), ("v1", &d(1)));
    assert_eq!(p.keep[0].tags, vec!["v2".to_string()]);
    let mut locked = repo;
    locked.0.tags.get_mut("v1").unwrap().locked = true;
    let p = manual::untag_only(&locked.0, "v1", "tag delete");
    assert!(p.untag.is_empty());
    assert!(p.keep[0].reason.contains("locked"));
}

#[test]
fn a_locked_signature_tag_keeps_the_signature() {
    let mut repo = Repo::new()
        .image(1, days_ago(40))
        .untagged_since(1, days_ago(40))
        .referrer(2, 1);
    let sig = format!("sha256-{}.sig", d(1).hex());
    repo = repo.tag(&sig, 2);
    repo.0.tags.get_mut(&sig).unwrap().locked = true;
    let p = repo.plan(r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"7d"}]}"#);
    assert!(
        !deleted(&p).contains(&d(2)),
        "a locked signature was planned for deletion"
    );
    assert!(kept(&p, &d(2)).contains("locked"));
    let c = manual::delete_chosen(
        &repo.0,
        &[d(2)].into_iter().collect(),
        "image delete",
        true,
        now(),
    );
    assert!(deleted(&c.plan).is_empty(), "forced through a lock");
}

#[test]
fn older_than_deletes_manifests_only_and_keeps_the_subject_of_a_recent_referrer() {
    // v1 is old; its SBOM (tagged, recent) stays, so v1 stays, and so does its old tag (the
    // script deletes manifests, never a tag alone). v0 is old and alone: it goes.
    let repo = Repo::new()
        .image(1, days_ago(400))
        .referrer(2, 1)
        .image(3, days_ago(400))
        .image(4, days_ago(1))
        .tag("v1", 1)
        .tag("sbom-v1", 2)
        .tag("v0", 3)
        .tag("latest", 4);
    let mut repo = repo;
    repo.0.manifests.get_mut(&d(2)).unwrap().created = days_ago(1);
    let policy = Policy::whole_repository("ci/app", std::time::Duration::from_secs(30 * 86400));
    let p = manual::older_than(&repo.0, &policy, now());
    assert_eq!(deleted(&p), vec![d(3)]);
    assert!(
        kept(&p, &d(1)).contains("a referrer that stays"),
        "{}",
        kept(&p, &d(1))
    );
    assert!(p.untag.is_empty());
    // The plain planner would have deleted v1 and left its SBOM without a subject.
    assert!(deleted(&plan(&repo.0, &policy, now())).contains(&d(1)));
}

#[test]
fn a_tag_left_dangling_by_an_earlier_run_is_untagged_whatever_the_rules_say() {
    let mut repo = Repo::new().image(1, days_ago(400)).tag("v1", 1);
    repo.0.dangling.insert("v2".into(), d(2));
    // No rule selects v2, and v1 stays: only the dangling tag goes.
    let plan = repo.plan(PURGE_UNTAGGED);
    assert!(plan.complete());
    assert!(plan.delete.is_empty());
    assert_eq!(plan.untag.len(), 1);
    assert_eq!(plan.untag[0].tag, "v2");
    assert_eq!(plan.untag[0].digest, d(2));
    assert_eq!(plan.untag[0].reason, DANGLING);
}

#[test]
fn a_manual_operation_leaves_dangling_tags_alone() {
    let mut repo = Repo::new().image(1, days_ago(400)).tag("v1", 1);
    repo.0.dangling.insert("v2".into(), d(2));
    let chosen = std::collections::BTreeSet::from([d(1)]);
    let plan = manual::delete_chosen(&repo.0, &chosen, "named", false, now()).plan;
    assert_eq!(plan.delete.len(), 1);
    assert!(plan.untag.is_empty(), "{:?}", plan.untag);
}

#[test]
fn an_untag_only_rule_removes_every_tag_and_keeps_the_manifest_and_its_children() {
    let repo = Repo::new()
        .image(1, days_ago(400))
        .image(2, days_ago(400))
        .index(10, &[1, 2])
        .tag("pr-1", 10)
        .tag("pr-1-alias", 10)
        .image(3, days_ago(400))
        .tag("pr-3", 3);
    let untag_only = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d","untag_only":true}]}"#;
    let p = repo.plan(untag_only);
    assert!(deleted(&p).is_empty(), "{:?}", p.delete);
    let tags: Vec<&str> = p.untag.iter().map(|u| u.tag.as_str()).collect();
    assert_eq!(tags, vec!["pr-1", "pr-1-alias", "pr-3"]);
    assert!(
        kept(&p, &d(10)).contains("untag_only"),
        "{}",
        kept(&p, &d(10))
    );
    assert!(kept(&p, &d(1)).starts_with("child of"));
    // The same rule without untag_only deletes them.
    assert_eq!(repo.plan(PR_BUILDS).delete.len(), 4);
}

fn kind(p: &RepositoryPlan, digest: &Digest) -> KeepKind {
    p.keep
        .iter()
        .find(|k| &k.digest == digest)
        .map(|k| k.kind)
        .unwrap_or_else(|| panic!("{digest} not kept: {p:#?}"))
}

#[test]
fn a_kept_child_carries_the_kind_of_what_keeps_its_parent() {
    let repo = Repo::new()
        .image(1, None)
        .index(2, &[1])
        .tag("stable", 2)
        .image(3, None)
        .index(4, &[3])
        .image(5, None)
        .untagged_since(5, days_ago(1));
    let policy = format!(
        r#"{{"rules":[{{"name":"u","select":"untagged","older_than":"7d"}}],"protect":{{"digests":["{}"]}}}}"#,
        d(4)
    );
    let p = repo.plan(&policy);
    assert_eq!(kind(&p, &d(2)), KeepKind::Tagged);
    assert_eq!(kind(&p, &d(1)), KeepKind::Tagged, "child of a tagged index");
    assert_eq!(kind(&p, &d(4)), KeepKind::Pinned);
    assert_eq!(kind(&p, &d(3)), KeepKind::Pinned, "child of a pinned index");
    assert_eq!(kind(&p, &d(5)), KeepKind::Untagged, "too young");
}

#[test]
fn keep_kinds_tell_protection_locks_and_untag_only_apart() {
    let mut repo = Repo::new()
        .image(1, days_ago(400))
        .tag("release-1", 1)
        .image(2, days_ago(400))
        .tag("pr-2", 2)
        .image(3, days_ago(400))
        .tag("dev-3", 3);
    repo.0.tags.get_mut("pr-2").unwrap().locked = true;
    let p = repo.plan(
        r#"{"rules":[{"name":"all","select":"tagged","tags":"(release|pr)-.*"},
                     {"name":"dev","select":"tagged","tags":"dev-.*","untag_only":true}],
            "protect":{"tags":["release-.*"]}}"#,
    );
    assert_eq!(kind(&p, &d(1)), KeepKind::Protected);
    assert_eq!(kind(&p, &d(2)), KeepKind::Locked);
    assert_eq!(kind(&p, &d(3)), KeepKind::UntagOnly);
}

#[test]
fn an_incomplete_repository_keeps_everything_as_incomplete_with_the_cause() {
    let mut repo = Repo::new().image(1, days_ago(40)).tag("pr-1", 1);
    repo.0.problems.push("tags listing failed".into());
    repo.0.problems.push(Problem::new(
        Cause::Credentials,
        "GET /v2/ci/app/tags/list: HTTP 401",
    ));
    let p = repo.plan(PR_BUILDS);
    assert_eq!(kind(&p, &d(1)), KeepKind::Incomplete);
    assert_eq!(p.cause(), Some(Cause::Credentials));
    assert_eq!(
        p.error(),
        Some("tags listing failed; GET /v2/ci/app/tags/list: HTTP 401")
    );
}

#[test]
fn older_than_keeps_the_subject_of_a_recent_referrer_as_referred() {
    // Index 1 (v1) is old, and its SBOM 2 is recent: 1 stays, and so does its child 3.
    let mut repo = Repo::new()
        .image(3, days_ago(400))
        .index(1, &[3])
        .referrer(2, 1)
        .tag("v1", 1)
        .tag("sbom-v1", 2);
    repo.0.manifests.get_mut(&d(2)).unwrap().created = days_ago(1);
    let policy = Policy::whole_repository("ci/app", std::time::Duration::from_secs(30 * 86400));
    let p = manual::older_than(&repo.0, &policy, now());
    assert!(p.delete.is_empty(), "{:?}", p.delete);
    assert_eq!(kind(&p, &d(1)), KeepKind::Referred);
    assert_eq!(
        kind(&p, &d(3)),
        KeepKind::Referred,
        "child of what a referrer needs"
    );
}

#[test]
fn the_report_keeps_its_shape_complete_error_and_unfinished_only_when_true() {
    let mut p = RepositoryPlan::empty("app");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["complete"], true);
    assert!(json["error"].is_null() && json.get("error").is_some());
    assert!(json.get("unfinished").is_none(), "{json}");
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{keys:?}");

    p.status = Status::Unfinished;
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(
        (json["complete"].clone(), json["unfinished"].clone()),
        (true.into(), true.into())
    );

    p.status = Status::Incomplete("HTTP 500".into());
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["complete"], false);
    assert_eq!(json["error"], "HTTP 500");
    assert!(json.get("unfinished").is_none());
}

#[test]
fn a_repository_the_registry_does_not_know_is_absent_complete_and_no_failure() {
    let mut repo = Repo::new();
    repo.0.absent = Some("GET /v2/app/tags/list: HTTP 404: NAME_UNKNOWN".into());
    let p = repo.plan(r#"{"rules":[{"name":"u","select":"untagged"}]}"#);
    assert!(p.absent().is_some_and(|why| why.contains("NAME_UNKNOWN")));
    assert!(p.complete() && !p.has_failures() && !p.unfinished() && !p.unreadable());
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["complete"], true);
    assert!(json["absent"]
        .as_str()
        .unwrap()
        .starts_with("nothing there"));
    // A problem wins: a registry that also failed a read is incomplete, not absent.
    repo.0.problems.push("manifest sha256:…: HTTP 500".into());
    let p = repo.plan(r#"{"rules":[{"name":"u","select":"untagged"}]}"#);
    assert!(p.absent().is_none() && !p.complete());
}

#[test]
fn a_pattern_that_runs_away_on_a_tag_stops_the_repository_and_names_itself() {
    let repo = Repo::new()
        .image(1, days_ago(100))
        .tag(&"a".repeat(60), 1)
        .image(2, days_ago(100))
        .tag("pr-1", 2);
    let p =
        repo.plan(r#"{"rules":[{"name":"r","select":"tagged","tags":"(?=x?)(a|aa)+b|pr-.*"}]}"#);
    assert!(!p.complete(), "{p:?}");
    assert!(p.delete.is_empty() && p.untag.is_empty());
    let error = p.error().unwrap();
    assert!(
        error.contains("(?=x?)(a|aa)+b|pr-.*") && error.contains("backtracking"),
        "{error}"
    );
}

#[test]
fn where_the_last_tag_takes_the_manifest_its_untags_are_held_and_said() {
    // d1: a platform image of a kept index, tagged pr-1 only; d3: pr-2 beside stable.
    let repo = Repo::new()
        .image(1, days_ago(100))
        .image(2, days_ago(100))
        .index(4, &[1, 2])
        .tag("latest", 4)
        .tag("pr-1", 1)
        .image(3, days_ago(100))
        .tag("pr-2", 3)
        .tag("stable", 3);
    let p = repo.plan(PR_BUILDS);
    let untags =
        |p: &RepositoryPlan| -> Vec<String> { p.untag.iter().map(|u| u.tag.clone()).collect() };
    assert_eq!(untags(&p), vec!["pr-1", "pr-2"], "{p:?}");
    let held = hold_last_tags(p, &repo.0);
    assert_eq!(
        untags(&held),
        vec!["pr-2"],
        "pr-2 leaves stable behind: still sent"
    );
    assert!(
        kept(&held, &d(1)).ends_with(LAST_TAG),
        "{}",
        kept(&held, &d(1))
    );
    assert!(!kept(&held, &d(3)).contains(LAST_TAG));
    assert!(held.delete.is_empty());
}

/// Every tag, every untagged manifest, none kept: the widest a policy can be.
const EVERYTHING: &str = r#"{"rules":[{"name":"all","select":"tagged","older_than":"0s"},
    {"name":"loose","select":"untagged","older_than":"0s"}]}"#;

#[test]
fn no_rule_selects_a_trash_index_or_what_it_holds_before_it_expires() {
    let repo = Repo::new()
        .image(1, days_ago(100))
        .image(2, days_ago(100))
        .trash(3, &[1, 2], now() + Duration::days(6))
        .image(4, days_ago(100))
        .tag("v1", 4);
    let p = repo.plan(EVERYTHING);
    assert_eq!(deleted(&p), vec![d(4)], "only v1's image: {p:#?}");
    for n in [1, 2, 3] {
        assert!(
            kept(&p, &d(n)).starts_with("in the trash until 2026-07-06T00:00:00Z"),
            "{}",
            kept(&p, &d(n))
        );
        let k = p.keep.iter().find(|k| k.digest == d(n)).unwrap();
        assert_eq!(k.kind, KeepKind::Trash);
    }
    assert!(p.untag.is_empty(), "the trash tag is the janitor's own");
}

#[test]
fn a_trash_index_never_counts_toward_keep() {
    // Keep the newest untagged manifest: the trash (newer than both) must not take its place.
    let repo = Repo::new()
        .image(1, None)
        .untagged_since(1, days_ago(10))
        .image(2, None)
        .untagged_since(2, days_ago(20))
        .image(5, None)
        .trash(3, &[5], now() + Duration::days(6))
        .untagged_since(3, days_ago(1));
    let p = repo.plan(r#"{"rules":[{"name":"u","select":"untagged","keep":1}]}"#);
    assert_eq!(deleted(&p), vec![d(2)], "{p:#?}");
}

#[test]
fn an_expired_trash_goes_with_what_nothing_else_reaches_as_emptying() {
    let repo = Repo::new()
        .image(1, days_ago(100))
        .image(2, days_ago(100))
        .tag("rescued", 2)
        .trash(3, &[1, 2], now());
    let p = repo.plan(r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"}]}"#);
    assert_eq!(deleted(&p), vec![d(3), d(1)], "{p:#?}");
    assert!(p
        .delete
        .iter()
        .all(|x| x.empties_trash && x.trash_until.is_none()));
    assert!(kept(&p, &d(2)).contains("rescued"), "{}", kept(&p, &d(2)));
}

#[test]
fn with_a_trash_what_a_run_decides_goes_to_the_trash_and_emptying_does_not() {
    let repo = Repo::new()
        .image(1, days_ago(100))
        .trash(3, &[1], now() - Duration::seconds(1))
        .image(4, days_ago(100))
        .tag("pr-1", 4);
    let policy = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"}],
        "trash":{"keep_for":"7d"}}"#;
    let p = repo.plan(policy);
    let by = |n: u32| p.delete.iter().find(|x| x.digest == d(n)).unwrap();
    assert_eq!(by(4).trash_until, Some(now() + Duration::days(7)));
    assert!(!by(4).empties_trash);
    assert_eq!(
        by(3).trash_until,
        None,
        "an expired trash is deleted, not trashed"
    );
    assert_eq!(by(1).trash_until, None);
}

#[test]
fn trashing_counts_toward_the_limits_and_emptying_does_not() {
    let repo = Repo::new()
        .image(1, days_ago(100))
        .image(2, days_ago(100))
        .trash(3, &[1, 2], now())
        .image(4, days_ago(100))
        .tag("pr-1", 4)
        .image(5, days_ago(100))
        .tag("v1", 5);
    let capped = |max: usize| {
        format!(
            r#"{{"rules":[{{"name":"pr","select":"tagged","tags":"pr-.*"}}],
            "trash":{{"keep_for":"7d"}},"limits":{{"max_delete":{max}}}}}"#
        )
    };
    // Three empty the trash and one is trashed: a cap of one lets that one through.
    let p = repo.plan(&capped(1));
    assert_eq!(p.status, Status::Complete, "{p:#?}");
    assert_eq!(p.delete.len(), 4);
    // Without the trash's three, the run decides two: held at one.
    let repo = repo.image(6, days_ago(100)).tag("pr-2", 6);
    let p = repo.plan(&capped(1));
    assert!(matches!(p.status, Status::Held(_)), "{p:#?}");
    assert!(
        p.delete.is_empty(),
        "a held repository empties no trash either"
    );
}
