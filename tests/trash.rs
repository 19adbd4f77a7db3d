//! The trash (issue 23, part 2), end to end through the CLI on a real `docker-registry`:
//! with `trash` in the policy, apply moves what it selects into a trash index instead of
//! deleting it (everything still pulls by digest, nothing by its old tag), no rule sees the
//! trash, and a run past `keep_for` empties it, except what was tagged again meanwhile.

mod support;

use support::janitor::Janitor;
use support::{Image, Pushed, TestRegistry};

/// Every `old-*` tag goes; `v1` stays. With a trash that holds things for a week.
const TRASH: &str = r#"{"rules":[{"name":"old","select":"tagged","tags":"old-.*","older_than":"0s"}],
    "trash":{"keep_for":"7d"}}"#;

/// A moment well past a week from now, for the run that empties the trash.
fn in_eight_days() -> String {
    (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339()
}

/// `app`: `v1`, a multi-arch `old-1` with a cosign signature, and a plain `old-2`.
/// Returns (v1, amd64, arm64, index, signature, old-2).
async fn seed(registry: &TestRegistry) -> [Pushed; 6] {
    let v1 = Image::oci("app").tag("v1").push(registry).await;
    let (amd, arm, index) = registry.multi_arch("app", None, &["old-1"]).await;
    let sig = registry.cosign_signature(&index).await;
    let old2 = Image::oci("app")
        .layers(&[b"old two"])
        .tag("old-2")
        .push(registry)
        .await;
    [v1, amd, arm, index, sig, old2]
}

fn trash_tags(tags: &[String]) -> Vec<&String> {
    tags.iter()
        .filter(|t| t.starts_with("janitor-trash-"))
        .collect()
}

#[tokio::test]
async fn trashed_manifests_still_pull_by_digest_and_no_longer_by_tag() {
    let registry = TestRegistry::start().await;
    let [v1, amd, arm, index, sig, old2] = seed(&registry).await;
    let janitor = Janitor::new(&registry);

    let done = janitor.apply(TRASH, &["--no-state"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let summary = &done.json()["summary"];
    assert_eq!(summary["manifests_trashed"], 5, "{}", done.stdout);
    assert_eq!(summary["manifests_deleted"], 0, "{}", done.stdout);
    for d in done.entries("app", "delete") {
        assert!(
            d["trash"]
                .as_str()
                .is_some_and(|t| t.starts_with("janitor-trash-")),
            "{d}"
        );
        assert!(d["trash_until"].is_string(), "{d}");
    }

    let tags = registry.tags("app").await;
    let trash = trash_tags(&tags);
    assert_eq!(trash.len(), 1, "one trash index for the run: {tags:?}");
    let mut left: Vec<&String> = tags.iter().filter(|t| !trash.contains(t)).collect();
    left.sort();
    assert_eq!(
        left,
        ["v1"],
        "every trashed tag is gone, the signature's too"
    );
    for p in [&amd, &arm, &index, &sig, &old2, &v1] {
        assert!(
            registry.has_manifest("app", &p.digest).await,
            "{} went",
            p.digest
        );
    }
    // The trash index pulls whole: everything it holds, with every blob.
    registry.assert_every_tag_pulls("app").await;
}

#[tokio::test]
async fn no_rule_sees_the_trash_and_what_it_holds_is_reported_in_the_trash() {
    let registry = TestRegistry::start().await;
    let [_, amd, _, index, _, old2] = seed(&registry).await;
    let janitor = Janitor::new(&registry);
    janitor.apply(TRASH, &["--no-state"]).await;

    // A rule that selects every tag and every untagged manifest at once, keeping none.
    let everything = r#"{"rules":[
        {"name":"all","select":"tagged","older_than":"0s"},
        {"name":"loose","select":"untagged","older_than":"0s"}]}"#;
    let plan = janitor.plan(everything, &["--no-state"]).await;
    let deleted = plan.deleted("app");
    assert_eq!(deleted.len(), 1, "only v1 goes: {}", plan.stdout);
    for p in [&amd, &index, &old2] {
        let why = plan.kept_reason("app", &p.digest).unwrap_or_default();
        assert!(
            why.starts_with("in the trash until "),
            "{}: {why}",
            p.digest
        );
    }
}

#[tokio::test]
async fn a_run_past_keep_for_empties_the_trash_but_keeps_what_was_tagged_again() {
    let registry = TestRegistry::start().await;
    let [v1, amd, arm, index, sig, old2] = seed(&registry).await;
    let janitor = Janitor::new(&registry);
    janitor.apply(TRASH, &["--no-state"]).await;
    let trash = registry
        .head_digest("app", trash_tags(&registry.tags("app").await)[0])
        .await;
    // Someone wants old-2 back under another name before the week is out.
    registry.tag(&old2, "rescued").await;

    let later = in_eight_days();
    let done = janitor
        .apply(TRASH, &["--no-state", "--now", later.as_str()])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let summary = &done.json()["summary"];
    assert!(
        summary["manifests_trashed"].is_null(),
        "none: {}",
        done.stdout
    );
    assert_eq!(summary["manifests_deleted"], 5, "{}", done.stdout);
    assert!(summary["bytes_reclaimable"].as_u64().unwrap() > 0);
    let mut deleted = done.deleted("app");
    deleted.sort();
    let mut expected = vec![
        trash.unwrap(),
        amd.digest,
        arm.digest,
        index.digest,
        sig.digest,
    ];
    expected.sort();
    assert_eq!(deleted, expected, "{}", done.stdout);
    for d in done.entries("app", "delete") {
        assert_eq!(d["empties_trash"], true, "{d}");
    }
    assert!(registry.has_manifest("app", &old2.digest).await);
    assert!(registry.has_manifest("app", &v1.digest).await);
    assert_eq!(registry.tags("app").await, ["rescued", "v1"]);
    registry.assert_every_tag_pulls("app").await;
}

#[tokio::test]
async fn emptying_an_expired_trash_does_not_count_toward_the_limits() {
    let registry = TestRegistry::start().await;
    seed(&registry).await;
    let janitor = Janitor::new(&registry);
    janitor.apply(TRASH, &["--no-state"]).await;
    // Past the week, with a cap of one deletion a run: the trash index and the five it held
    // all go.
    let capped = r#"{"rules":[{"name":"old","select":"tagged","tags":"old-.*","older_than":"0s"}],
        "trash":{"keep_for":"7d"},"limits":{"max_delete":1}}"#;
    let later = in_eight_days();
    let done = janitor
        .apply(capped, &["--no-state", "--now", later.as_str()])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(done.json()["repositories"][0]["held"].is_null());
    assert_eq!(
        done.json()["summary"]["manifests_deleted"],
        6,
        "{}",
        done.stdout
    );
}
