//! The journal (issue 23, part 3), end to end through the CLI on a real `docker-registry`:
//! apply records every manifest it deletes before deleting it, deletes nothing when it
//! cannot, and `restore --from-journal` puts a hard delete back while the blobs are there,
//! and refuses, naming the missing blob, once the garbage collector has run.

mod support;

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use support::janitor::{Janitor, Outcome};
use support::{Pushed, TestRegistry};

/// Every `old-*` tag goes, for good; `v1` stays.
const OLD: &str =
    r#"{"rules":[{"name":"old","select":"tagged","tags":"old-.*","older_than":"0s"}]}"#;

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `apply` of `OLD` without an inventory, with a journal: the janitor and its journal.
async fn hard_delete(registry: &TestRegistry) -> (Janitor, String) {
    let janitor = Janitor::new(registry);
    let journal = janitor.dir_file("journal.jsonl", "");
    let journal = journal.to_str().unwrap().to_owned();
    let done = janitor
        .apply(OLD, &["--no-state", "--journal", &journal])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    (janitor, journal)
}

/// `restore --repository app --from-journal --journal FILE`, then `extra`, as JSON.
async fn restore(janitor: &Janitor, journal: &str, extra: &[&str]) -> Outcome {
    let mut args = vec![
        "--repository",
        "app",
        "--no-state",
        "--journal",
        journal,
        "--from-journal",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    janitor.op(&["restore"], &args).await
}

#[tokio::test]
async fn apply_records_every_manifest_it_deletes_with_its_bytes_before_deleting_it() {
    let registry = TestRegistry::start().await;
    let [_, amd, arm, index, sig, old2] = registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    // With an inventory, the journal is beside it.
    let done = janitor.apply(OLD, &[]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let journal = janitor.state().with_file_name("state.journal.jsonl");
    let recorded = records(&journal);
    let by: BTreeMap<String, &Value> = recorded
        .iter()
        .map(|r| (r["digest"].as_str().unwrap().to_owned(), r))
        .collect();
    let mut want: Vec<&String> = vec![
        &amd.digest,
        &arm.digest,
        &index.digest,
        &sig.digest,
        &old2.digest,
    ];
    want.sort();
    assert_eq!(by.keys().collect::<Vec<_>>(), want);
    for p in [&amd, &arm, &index, &sig, &old2] {
        let r = by[&p.digest];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r["manifest"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, p.body, "{}: the exact bytes", p.digest);
        assert_eq!(r["media_type"], p.media_type.as_str());
        assert_eq!(r["repository"], "app");
        assert_eq!(r["action"], "delete");
        assert_eq!(r["registry"], registry.host().as_str());
        assert!(r["reason"].as_str().unwrap().len() > 10, "{r}");
        assert_eq!(r["time"], done.json()["now"]);
    }
    assert_eq!(by[&old2.digest]["tags"], serde_json::json!(["old-2"]));
    assert_eq!(
        by[&sig.digest]["tags"],
        serde_json::json!([format!("{}.sig", index.fallback_tag())])
    );
}

#[tokio::test]
async fn without_an_inventory_nothing_is_recorded_unless_a_journal_is_given() {
    let registry = TestRegistry::start().await;
    registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(OLD, &["--no-state"]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(!janitor
        .state()
        .with_file_name("state.journal.jsonl")
        .exists());

    let registry = TestRegistry::start().await;
    registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    let journal = janitor.dir_file("given.jsonl", "");
    let done = janitor
        .apply(OLD, &["--no-state", "--journal", journal.to_str().unwrap()])
        .await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(records(&journal).len(), 5);
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_deletes_nothing() {
    let registry = TestRegistry::start().await;
    let pushed = registry.v1_and_old_builds("app").await;
    let before = registry.picture(&["app"]).await;
    let janitor = Janitor::new(&registry);
    // Its folder is a file: it cannot be created.
    let blocker = janitor.dir_file("not-a-folder", "");
    let journal = blocker.join("journal.jsonl");
    let done = janitor
        .apply(OLD, &["--no-state", "--journal", journal.to_str().unwrap()])
        .await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("journal"), "{error}");
    assert!(
        error.contains("nothing is deleted without its record"),
        "{error}"
    );
    assert_eq!(registry.picture(&["app"]).await, before);
    for p in &pushed {
        assert!(registry.has_manifest("app", &p.digest).await);
    }
}

#[tokio::test]
async fn restore_from_the_journal_puts_a_hard_delete_back_before_garbage_collection() {
    let registry = TestRegistry::start().await;
    let pushed = registry.v1_and_old_builds("app").await;
    let before = registry.picture(&["app"]).await;
    let (janitor, journal) = hard_delete(&registry).await;
    let journal = journal.as_str();
    for p in &pushed[1..] {
        assert!(
            !registry.has_manifest("app", &p.digest).await,
            "not deleted"
        );
    }

    let done = restore(&janitor, journal, &["--yes"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(registry.picture(&["app"]).await, before);
    for p in &pushed {
        assert!(registry.has_manifest("app", &p.digest).await);
    }
    registry.assert_every_tag_pulls("app").await;
    // Children went back before their index (distribution refuses an index whose children
    // are missing), and the signature after its subject.
    let order: Vec<String> = done.json()["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    let at = |p: &Pushed| order.iter().position(|d| d == &p.digest).unwrap();
    let [_, amd, arm, index, sig, _] = &pushed;
    assert!(at(amd) < at(index) && at(arm) < at(index), "{order:?}");
    assert!(at(index) < at(sig), "{order:?}");
}

#[tokio::test]
async fn restore_from_the_journal_of_one_digest_brings_its_children_and_signature() {
    let registry = TestRegistry::start().await;
    let [_, amd, arm, index, sig, old2] = registry.v1_and_old_builds("app").await;
    let (janitor, journal) = hard_delete(&registry).await;
    let journal = journal.as_str();

    let done = restore(&janitor, journal, &["--yes", "--digest", &index.digest]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    for p in [&amd, &arm, &index, &sig] {
        assert!(registry.has_manifest("app", &p.digest).await);
    }
    assert!(!registry.has_manifest("app", &old2.digest).await);
    registry.assert_pulls_completely("app", "old-1").await;
    assert_eq!(
        registry
            .head_digest("app", &format!("{}.sig", index.fallback_tag()))
            .await
            .as_deref(),
        Some(sig.digest.as_str())
    );
}

#[tokio::test]
async fn restore_from_the_journal_is_refused_after_garbage_collection_naming_the_missing_blob() {
    let registry = TestRegistry::start().await;
    let [_, _, _, _, _, old2] = registry.v1_and_old_builds("app").await;
    let (janitor, journal) = hard_delete(&registry).await;
    let journal = journal.as_str();
    registry.garbage_collect();
    let after_gc = registry.picture(&["app"]).await;

    let done = restore(&janitor, journal, &["--yes"]).await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert!(
        done.stderr
            .contains("missing from the registry, so nothing was put back"),
        "{}",
        done.stderr
    );
    // old-2's own layer is gone with it: the error names it.
    let layer = old2.blobs.last().unwrap();
    assert!(
        done.stderr.contains(layer.as_str()),
        "{layer} not named: {}",
        done.stderr
    );
    // All or nothing: not even what could have gone back did.
    assert_eq!(registry.picture(&["app"]).await, after_gc);
    assert!(!registry.has_manifest("app", &old2.digest).await);
}

#[tokio::test]
async fn restore_from_the_journal_needs_a_journal_and_changes_nothing_without_yes() {
    let registry = TestRegistry::start().await;
    registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    let none = janitor
        .op(
            &["restore"],
            &[
                "--repository",
                "app",
                "--no-state",
                "--from-journal",
                "--yes",
            ],
        )
        .await;
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(
        none.stderr.contains("give --journal FILE"),
        "{}",
        none.stderr
    );

    let journal = janitor.dir_file("journal.jsonl", "");
    let journal = journal.to_str().unwrap();
    janitor
        .apply(OLD, &["--no-state", "--journal", journal])
        .await;
    let gone = registry.picture(&["app"]).await;
    let refused = restore(&janitor, journal, &[]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let unknown = restore(
        &janitor,
        journal,
        &["--yes", "--run", "2020-01-01T00:00:00Z"],
    )
    .await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("records nothing to restore from a run at 2020-01-01T00:00:00Z"),
        "{}",
        unknown.stderr
    );
    assert_eq!(registry.picture(&["app"]).await, gone);
}

#[tokio::test]
async fn what_the_inventory_already_knew_is_read_to_be_recorded() {
    let registry = TestRegistry::start().await;
    let [_, amd, arm, index, ..] = registry.v1_and_old_builds("app").await;
    let janitor = Janitor::new(&registry);
    // The plan teaches the inventory the index's children; the apply does not read them.
    janitor.plan(OLD, &[]).await;
    let done = janitor.apply(OLD, &[]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let recorded = records(&janitor.state().with_file_name("state.journal.jsonl"));
    for p in [&amd, &arm, &index] {
        let r = recorded
            .iter()
            .find(|r| r["digest"] == p.digest.as_str())
            .unwrap_or_else(|| panic!("{} not recorded", p.digest));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r["manifest"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, p.body, "{}", p.digest);
    }
}
