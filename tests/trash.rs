//! The trash (issue 23, part 2), end to end through the CLI on a real `docker-registry`:
//! with `trash` in the policy, apply moves what it selects into a trash index instead of
//! deleting it (everything still pulls by digest, nothing by its old tag), no rule sees the
//! trash, and a run past `keep_for` empties it, except what was tagged again meanwhile.

mod support;

use std::collections::BTreeMap;

use support::janitor::{Janitor, Outcome};
use support::proxy::FlakyProxy;
use support::{Image, TestRegistry};

/// Every `old-*` tag goes; `v1` stays. With a trash that holds things for a week.
const TRASH: &str = r#"{"rules":[{"name":"old","select":"tagged","tags":"old-.*","older_than":"0s"}],
    "trash":{"keep_for":"7d"}}"#;

/// A moment well past a week from now, for the run that empties the trash.
fn in_eight_days() -> String {
    (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339()
}

fn trash_tags(tags: &[String]) -> Vec<&String> {
    tags.iter()
        .filter(|t| t.starts_with("janitor-trash-"))
        .collect()
}

/// Every `app:tag` and the digest it names, the janitor's trash tags left out.
async fn user_picture(registry: &TestRegistry) -> BTreeMap<String, String> {
    let mut picture = registry.picture(&["app"]).await;
    picture.retain(|t, _| !t.starts_with("app:janitor-trash-"));
    picture
}

/// An apply with the trash, killed (SIGKILL) once its trash index is pushed, as its first
/// untag reaches the registry (distribution's tag-delete probe, held at a proxy).
async fn kill_between_the_trash_and_the_untags(registry: &TestRegistry) {
    let proxy = FlakyProxy::start(&registry.url).await;
    let untag = proxy.hold("DELETE", "/manifests/old-");
    let janitor = Janitor::for_url(&proxy.url);
    let policy = janitor.policy(TRASH);
    let args = [
        "apply",
        "--registry",
        &proxy.url,
        "--policy",
        policy.to_str().unwrap(),
        "--no-state",
        "--yes",
    ];
    let mut run = janitor
        .command(&args)
        .kill_on_drop(true)
        .spawn()
        .expect("start registry-janitor");
    untag.arrived().await;
    run.kill().await.expect("kill -9");
}

/// `restore --repository app`, then `extra` (`--yes`, `--list`...), as JSON.
async fn restore(janitor: &Janitor, extra: &[&str]) -> Outcome {
    let mut args = vec!["--repository", "app", "--no-state", "--format", "json"];
    args.extend_from_slice(extra);
    janitor.op(&["restore"], &args).await
}

#[tokio::test]
async fn trashed_manifests_still_pull_by_digest_and_no_longer_by_tag() {
    let registry = TestRegistry::start().await;
    let [v1, amd, arm, index, sig, old2] = registry.v1_and_old_builds("app").await;
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
    let [_, amd, _, index, _, old2] = registry.v1_and_old_builds("app").await;
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
    let [v1, amd, arm, index, sig, old2] = registry.v1_and_old_builds("app").await;
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
    registry.v1_and_old_builds("app").await;
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

#[tokio::test]
async fn restore_puts_every_tag_back_on_the_digest_it_named_and_empties_the_trash() {
    let registry = TestRegistry::start().await;
    registry.v1_and_old_builds("app").await;
    let before = user_picture(&registry).await;
    let janitor = Janitor::new(&registry);
    janitor.apply(TRASH, &["--no-state"]).await;
    assert_ne!(
        user_picture(&registry).await,
        before,
        "the apply trashed something"
    );

    let done = restore(&janitor, &["--yes"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(user_picture(&registry).await, before);
    assert!(trash_tags(&registry.tags("app").await).is_empty());
    assert_eq!(done.json()["emptied"].as_array().unwrap().len(), 1);
    registry.assert_every_tag_pulls("app").await;
    // Nothing is left to restore, and the policy trashes the same again.
    let again = janitor.apply(TRASH, &["--no-state"]).await;
    assert_eq!(again.json()["summary"]["manifests_trashed"], 5);
}

#[tokio::test]
async fn restore_of_one_digest_brings_its_children_and_signature_and_leaves_the_rest() {
    let registry = TestRegistry::start().await;
    let [_, amd, arm, index, sig, old2] = registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    janitor.apply(TRASH, &["--no-state"]).await;

    let done = restore(&janitor, &["--yes", "--digest", &index.digest]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let tags = registry.tags("app").await;
    assert!(tags.contains(&"old-1".to_owned()), "{tags:?}");
    let sig_tag = format!("{}.sig", index.fallback_tag());
    assert_eq!(
        registry.head_digest("app", &sig_tag).await.as_deref(),
        Some(sig.digest.as_str()),
        "the signature's link tag comes back with its subject"
    );
    assert!(!tags.contains(&"old-2".to_owned()));
    assert_eq!(done.json()["rewritten"].as_array().unwrap().len(), 1);
    registry.assert_pulls_completely("app", "old-1").await;

    // What is left in the trash is old-2 alone.
    let list = restore(&janitor, &["--list"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    let trashes = list.json();
    let entries = trashes[0]["entries"].as_array().unwrap();
    let held: Vec<&str> = entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(held, [old2.digest.as_str()], "{}", list.stdout);
    assert_eq!(entries[0]["tags"][0], "old-2");
    assert!(entries[0]["reason"]
        .as_str()
        .unwrap()
        .contains("rule \"old\""));
    for p in [&amd, &arm, &index, &sig] {
        assert!(registry.has_manifest("app", &p.digest).await);
    }
}

#[tokio::test]
async fn restore_leaves_a_tag_pushed_elsewhere_since_and_says_so() {
    let registry = TestRegistry::start().await;
    let [_, _, _, _, _, old2] = registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    janitor.apply(TRASH, &["--no-state"]).await;
    let newer = Image::oci("app")
        .layers(&[b"a new old-2"])
        .tag("old-2")
        .push(&registry)
        .await;

    let done = restore(&janitor, &["--yes"]).await;
    assert_eq!(
        done.code, 1,
        "a tag left alone: {}\n{}",
        done.stdout, done.stderr
    );
    let conflicts = done.json()["conflicts"].clone();
    assert_eq!(conflicts[0]["tag"], "old-2", "{}", done.stdout);
    assert_eq!(conflicts[0]["digest"], old2.digest.as_str());
    assert_eq!(conflicts[0]["names"], newer.digest.as_str());
    assert_eq!(
        registry.head_digest("app", "old-2").await.as_deref(),
        Some(newer.digest.as_str()),
        "the newer push keeps its tag"
    );
    assert!(registry.tags("app").await.contains(&"old-1".to_owned()));
    // The old old-2 has no tag back, so it stays in the trash rather than go untagged.
    let list = restore(&janitor, &["--list"]).await;
    let held: Vec<String> = list.json()[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(held, [old2.digest.as_str()]);
}

#[tokio::test]
async fn restore_changes_nothing_off_a_terminal_without_yes_or_for_an_unknown_run() {
    let registry = TestRegistry::start().await;
    registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    janitor.apply(TRASH, &["--no-state"]).await;
    let trashed = registry.picture(&["app"]).await;

    let refused = restore(&janitor, &[]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let unknown = restore(&janitor, &["--yes", "--run", "2020-01-01T00:00:00Z"]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("no trash of a run at 2020-01-01T00:00:00Z"),
        "{}",
        unknown.stderr
    );
    let bad = restore(&janitor, &["--yes", "--digest", "sha256:nothex"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(registry.picture(&["app"]).await, trashed, "nothing changed");
}

#[tokio::test]
async fn a_run_killed_between_the_trash_push_and_the_untags_loses_nothing() {
    let registry = TestRegistry::start().await;
    let pushed = registry.v1_and_old_builds("app").await;
    let before = user_picture(&registry).await;
    kill_between_the_trash_and_the_untags(&registry).await;

    // The trash is there, and every tag still names what it did.
    assert_eq!(trash_tags(&registry.tags("app").await).len(), 1);
    assert_eq!(user_picture(&registry).await, before);

    // Restore undoes it: the tags are already there, and the trash goes.
    let janitor = Janitor::new(&registry);
    let undone = restore(&janitor, &["--yes"]).await;
    assert_eq!(undone.code, 0, "{}\n{}", undone.stdout, undone.stderr);
    assert_eq!(user_picture(&registry).await, before);
    assert!(trash_tags(&registry.tags("app").await).is_empty());
    for p in &pushed {
        assert!(registry.has_manifest("app", &p.digest).await);
    }
}

#[tokio::test]
async fn the_run_after_a_killed_one_finishes_the_trash() {
    let registry = TestRegistry::start().await;
    let pushed = registry.v1_and_old_builds("app").await;
    let before = user_picture(&registry).await;
    kill_between_the_trash_and_the_untags(&registry).await;

    let janitor = Janitor::new(&registry);
    let done = janitor.apply(TRASH, &["--no-state"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    // What the killed run put in the trash stays there; this run only takes the tags it
    // did not get to.
    assert!(
        done.json()["summary"]["manifests_trashed"].is_null(),
        "{}",
        done.stdout
    );
    let untagged: Vec<String> = done
        .entries("app", "untag")
        .iter()
        .map(|u| u["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(untagged, ["old-1", "old-2"], "{}", done.stdout);
    for p in &pushed[1..] {
        let why = done.kept_reason("app", &p.digest).unwrap_or_default();
        assert!(
            why.starts_with("in the trash until "),
            "{}: {why}",
            p.digest
        );
    }
    let tags = registry.tags("app").await;
    assert_eq!(trash_tags(&tags).len(), 1, "{tags:?}");
    assert!(!tags.contains(&"old-1".to_owned()) && !tags.contains(&"old-2".to_owned()));
    for p in &pushed {
        assert!(registry.has_manifest("app", &p.digest).await);
    }
    // And restore puts each tag back.
    let undone = restore(&janitor, &["--yes"]).await;
    assert_eq!(undone.code, 0, "{}\n{}", undone.stdout, undone.stderr);
    assert_eq!(user_picture(&registry).await, before);
    registry.assert_every_tag_pulls("app").await;
}

#[tokio::test]
async fn the_inventory_keeps_knowing_what_went_to_the_trash() {
    let registry = TestRegistry::start().await;
    let [v1, amd, arm, index, sig, old2] = registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(TRASH, &[]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let state = std::fs::read_to_string(janitor.state()).expect("state file");
    for p in [&v1, &amd, &arm, &index, &sig, &old2] {
        assert!(state.contains(&p.digest), "{} forgotten", p.digest);
    }
}
