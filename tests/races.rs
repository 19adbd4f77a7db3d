//! A registry that lies or races: the real binary against a real `docker-registry` behind a
//! proxy that loses pages, answers 404 for what exists, or holds a request while the test
//! pushes. Each test is one way a kept image broke, or a repository stalled, before apply
//! learned to fail closed; after every run, every tag that should remain must still pull.

mod support;

use std::path::Path;

use support::janitor::Janitor;
use support::proxy::{Fault, FlakyProxy};
use support::{Image, TestRegistry};

const NOW: &str = "2030-06-01T00:00:00Z";
const OLD: &str = "2030-01-01T00:00:00Z";
const NEW: &str = "2030-05-31T00:00:00Z";

/// The policy of issue 12's findings: old `pr-*` builds, untagged manifests a day after they
/// are first seen untagged, and `latest` and `v<n>` protected.
const POLICY: &str = r#"{"rules":[
    {"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d"},
    {"name":"dangling","select":"untagged","older_than":"1d"}],
    "protect":{"tags":["latest","v\\d+"]}}"#;

/// Every `drop-*` tag.
const DROP: &str = r#"{"rules":[{"name":"t","select":"tagged","tags":"drop-.*"}]}"#;

/// Two builds at `OLD`, each with a `pr-*` tag and a tag no rule selects.
async fn two_shared_builds(registry: &TestRegistry) -> (support::Pushed, support::Pushed) {
    let m = Image::oci("app")
        .created(OLD)
        .tag("pr-4")
        .tag("stable")
        .push(registry)
        .await;
    let m2 = Image::oci("app")
        .created(OLD)
        .tag("pr-5")
        .tag("zz-keep")
        .push(registry)
        .await;
    (m, m2)
}

#[tokio::test]
async fn a_lost_tags_page_stops_the_repository_instead_of_deleting_what_it_hid() {
    let registry = TestRegistry::start().await;
    let (m, m2) = two_shared_builds(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    // Two tags a page, and the link to the second page is lost on every listing: the
    // janitor sees pr-4 and pr-5, never stable and zz-keep.
    proxy.always("GET", "/tags/list", Fault::PagesWithoutLink(2));
    let janitor = Janitor::for_url(&proxy.url);

    let done = janitor.apply(POLICY, &["--now", NOW]).await;
    assert!(
        registry.has_manifest("app", &m.digest).await,
        "stable broke"
    );
    assert!(
        registry.has_manifest("app", &m2.digest).await,
        "zz-keep broke"
    );
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["pr-4", "pr-5", "stable", "zz-keep"]
    );
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert_eq!(done.code, 1, "{}", done.stdout);
    assert_eq!(done.json()["summary"]["repositories_incomplete"], 1);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("a page was lost"), "{error}");
}

#[tokio::test]
async fn a_child_whose_get_answers_404_while_head_finds_it_keeps_its_signature() {
    let registry = TestRegistry::start().await;
    let (x, _, _) = registry.multi_arch("app", Some(OLD), &["latest"]).await;
    let signature = registry.cosign_signature(&x).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    // Every GET of X by digest answers 404; its HEAD, and the tag, still work.
    proxy.always(
        "GET",
        &format!("/manifests/{}", x.digest),
        Fault::Status(404, None),
    );
    let janitor = Janitor::for_url(&proxy.url);

    let first = janitor.apply(POLICY, &["--now", NOW]).await;
    let later = janitor
        .apply(POLICY, &["--now", "2030-06-04T00:00:00Z"])
        .await;
    assert!(
        registry.has_manifest("app", &signature.digest).await,
        "the signature of a live image was deleted"
    );
    for run in [&first, &later] {
        assert!(run.deleted("app").is_empty(), "{}", run.stdout);
        assert_eq!(run.code, 1, "{}", run.stdout);
        let error = run.json()["repositories"][0]["error"].to_string();
        assert!(error.contains("contradicts itself"), "{error}");
    }
    registry
        .assert_pulls_completely("app", &format!("{}.sig", x.fallback_tag()))
        .await;
    registry.assert_pulls_completely("app", "latest").await;
}

#[tokio::test]
async fn a_build_pushed_while_the_parents_are_deleted_keeps_the_child_it_reuses() {
    let registry = TestRegistry::start().await;
    let c = Image::oci("app").created(OLD).push(&registry).await;
    let x = Image::oci("app").created(OLD).push(&registry).await;
    let y = Image::oci("app").created(OLD).push(&registry).await;
    let p2 = registry.index("app", &[&c, &y], &["pr-2"]).await;
    registry.index("app", &[&x, &y], &["latest"]).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let held = proxy.hold("DELETE", &format!("/manifests/{}", p2.digest));
    let janitor = Janitor::for_url(&proxy.url);

    let run = janitor.apply(POLICY, &["--now", NOW]);
    let push = async {
        held.arrived().await;
        // While the DELETE of pr-2 is in flight, a new build reuses its child C.
        registry.index("app", &[&c, &x], &["hotfix"]).await;
        held.release();
    };
    let (done, ()) = tokio::join!(run, push);

    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.deleted("app"), vec![p2.digest.clone()]);
    let reason = done.kept_reason("app", &c.digest).unwrap_or_default();
    assert!(
        reason.contains("changed while deleting") && reason.contains("hotfix"),
        "{reason}"
    );
    assert!(!registry.has_manifest("app", &p2.digest).await);
    registry.assert_pulls_completely("app", "hotfix").await;
    registry.assert_pulls_completely("app", "latest").await;
}

#[tokio::test]
async fn an_untag_reads_the_tag_again_after_probing_for_tag_delete() {
    let registry = TestRegistry::start().await;
    let m = Image::oci("app")
        .created(OLD)
        .tag("pr-4")
        .tag("stable")
        .push(&registry)
        .await;
    let proxy = FlakyProxy::start(&registry.url).await;
    // The first untag asks the registry to delete the tag alone (2.8 answers 400). Hold
    // that request, and push a new build as pr-4 meanwhile.
    let held = proxy.hold("DELETE", "/manifests/pr-4");
    let janitor = Janitor::for_url(&proxy.url);

    let run = janitor.apply(POLICY, &["--now", NOW]);
    let push = async {
        held.arrived().await;
        let build = Image::oci("app")
            .created(NEW)
            .tag("pr-4")
            .push(&registry)
            .await;
        held.release();
        build
    };
    let (done, build) = tokio::join!(run, push);

    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert!(
        registry.has_manifest("app", "pr-4").await,
        "the new build's tag was overwritten by the placeholder and deleted"
    );
    assert_eq!(
        registry.head_digest("app", "pr-4").await.as_deref(),
        Some(build.digest.as_str())
    );
    assert!(registry.has_manifest("app", &m.digest).await);
    registry.assert_pulls_completely("app", "pr-4").await;
    registry.assert_pulls_completely("app", "stable").await;
}

#[tokio::test]
async fn untagging_120_tags_at_concurrency_8_leaves_no_tag_naming_nothing() {
    let registry = TestRegistry::start().await;
    let mut image = Image::oci("app").tag("keep");
    for n in 0..120 {
        image = image.tag(&format!("drop-{n}"));
    }
    let image = image.push(&registry).await;
    let janitor = Janitor::new(&registry);

    let done = janitor.apply(DROP, &["--concurrency", "8"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let untags = done.entries("app", "untag");
    assert_eq!(untags.len(), 120);
    assert!(
        untags.iter().all(|u| u.get("error").is_none()),
        "{untags:?}"
    );
    // Every tag the registry lists resolves, and only `keep` is left.
    assert_eq!(registry.assert_every_tag_pulls("app").await, vec!["keep"]);
    assert!(registry.has_manifest("app", &image.digest).await);
    // A second sweep reads the repository whole.
    let again = janitor.plan(DROP, &[]).await;
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert_eq!(again.json()["repositories"][0]["complete"], true);
    assert!(again.entries("app", "untag").is_empty());
    assert!(
        done.stderr.contains("untagging by pushing a placeholder"),
        "no warning about the placeholder technique: {}",
        done.stderr
    );
}

#[tokio::test]
async fn a_tag_left_naming_nothing_is_finished_only_when_this_janitor_was_removing_it() {
    let registry = TestRegistry::start().await;
    let image = Image::oci("app")
        .tag("keep")
        .tag("drop-1")
        .push(&registry)
        .await;
    // What distribution 2.8 leaves when a manifest DELETE fails halfway: the manifest is
    // gone, and the tag still names it.
    let placeholder = Image::oci("app").tag("drop-1").push(&registry).await;
    forget_manifest(&registry.storage(), "app", &placeholder.digest);
    assert!(registry.tags("app").await.contains(&"drop-1".to_owned()));
    assert!(!registry.has_manifest("app", "drop-1").await);
    let janitor = Janitor::new(&registry);

    // Nobody recorded removing it: an unreadable tag stops the repository, as ever.
    let stalled = janitor.apply(DROP, &[]).await;
    assert_eq!(stalled.code, 1, "{}", stalled.stdout);
    assert_eq!(stalled.json()["repositories"][0]["complete"], false);
    assert!(stalled.entries("app", "untag").is_empty());

    // An earlier run recorded that it was removing drop-1 (and was cut short).
    remember_removing(&janitor, &registry, "app", "drop-1", &placeholder.digest).await;
    let plan = janitor.plan(DROP, &[]).await;
    let untags = plan.entries("app", "untag");
    assert_eq!(untags.len(), 1, "{}", plan.stdout);
    assert_eq!(untags[0]["tag"], "drop-1");
    assert!(
        untags[0]["reason"]
            .as_str()
            .unwrap()
            .contains("naming nothing"),
        "{untags:?}"
    );
    let done = janitor.apply(DROP, &[]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(registry.assert_every_tag_pulls("app").await, vec!["keep"]);
    assert!(registry.has_manifest("app", &image.digest).await);
    let again = janitor.plan(DROP, &[]).await;
    assert_eq!(again.json()["repositories"][0]["complete"], true);
    let state = std::fs::read_to_string(janitor.state()).unwrap();
    assert!(
        !state.contains("drop-1"),
        "the record outlived the tag: {state}"
    );
}

#[tokio::test]
async fn a_delete_answered_404_while_the_manifest_stays_keeps_its_children() {
    let registry = TestRegistry::start().await;
    let child = Image::oci("app").created(OLD).push(&registry).await;
    let index = registry.index("app", &[&child], &["pr-1"]).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    proxy.inject_on(
        "DELETE",
        &format!("/manifests/{}", index.digest),
        Fault::Status(404, None),
    );
    let janitor = Janitor::for_url(&proxy.url);

    let done = janitor.apply(POLICY, &["--now", NOW]).await;
    assert!(
        registry.has_manifest("app", &child.digest).await,
        "the child of an index that is still there was deleted"
    );
    registry.assert_pulls_completely("app", "pr-1").await;
    assert_eq!(done.code, 1, "{}", done.stdout);
    let deletes = done.entries("app", "delete");
    let of = |d: &str| deletes.iter().find(|e| e["digest"] == d).cloned().unwrap();
    assert!(
        of(&index.digest)["error"]
            .as_str()
            .unwrap()
            .contains("still finds the manifest"),
        "{deletes:?}"
    );
    assert!(of(&child.digest)["error"].is_string(), "{deletes:?}");
}

#[tokio::test]
async fn a_tag_whose_head_answers_404_at_the_recheck_stops_the_apply() {
    use registry_janitor::policy::Policy;
    use registry_janitor::registry::{ClientOptions, OciClient};
    use registry_janitor::state::NoState;
    use registry_janitor::sweep::Sweeper;

    let registry = TestRegistry::start().await;
    let child = Image::oci("app").created(OLD).push(&registry).await;
    let old_index = registry.index("app", &[&child], &["pr-1"]).await;
    Image::oci("app")
        .created(OLD)
        .tag("latest")
        .push(&registry)
        .await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = OciClient::new(&proxy.url, ClientOptions::default()).unwrap();
    let policy = Policy::from_json(POLICY).unwrap();
    let mut store = NoState;
    let mut sweeper =
        Sweeper::new(&client, &policy, &mut store, NOW.parse().unwrap()).concurrency(4);
    let planned = sweeper.plan("app").await.unwrap();
    assert_eq!(planned.plan.delete.len(), 2);

    // `latest` is re-pushed as an index reusing the planned child, and the registry hides
    // it from the re-check: a HEAD of latest answers 404.
    let other = Image::oci("app").created(NEW).push(&registry).await;
    registry.index("app", &[&child, &other], &["latest"]).await;
    proxy.always("HEAD", "/manifests/latest", Fault::Status(404, None));

    let done = sweeper.apply(planned).await.unwrap();
    registry.assert_pulls_completely("app", "latest").await;
    assert!(done.delete.is_empty(), "{:?}", done.delete);
    assert!(!done.complete());
    assert!(
        done.error().unwrap_or_default().contains("latest"),
        "{:?}",
        done.error()
    );
    assert!(registry.has_manifest("app", &old_index.digest).await);
}

/// Remove a manifest from the registry's storage and leave its tags, as distribution 2.8
/// does when a DELETE fails between the two.
fn forget_manifest(storage: &Path, repository: &str, digest: &str) {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let revision = storage.join(format!(
        "docker/registry/v2/repositories/{repository}/_manifests/revisions/sha256/{hex}"
    ));
    std::fs::remove_dir_all(&revision)
        .unwrap_or_else(|e| panic!("remove {}: {e}", revision.display()));
}

/// Write into the janitor's state file that it was removing `tag` (which named `digest`).
async fn remember_removing(
    janitor: &Janitor,
    registry: &TestRegistry,
    repository: &str,
    tag: &str,
    digest: &str,
) {
    use registry_janitor::state::{FileState, StateStore};
    let digest: registry_janitor::registry::Digest = digest.parse().unwrap();
    let mut store = FileState::open(&janitor.state(), &registry.host()).unwrap();
    let mut inventory = store.load(repository).await.unwrap();
    inventory.removing([(tag, &digest)], chrono::Utc::now());
    store.save(repository, inventory).await.unwrap();
    store.flush().await.unwrap();
}

#[tokio::test]
async fn a_tag_pushed_back_onto_an_index_just_deleted_keeps_its_children() {
    let registry = TestRegistry::start().await;
    let child = Image::oci("app").created(OLD).push(&registry).await;
    let index = registry.index("app", &[&child], &["pr-1"]).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let deleting = proxy.hold("DELETE", &format!("/manifests/{}", index.digest));
    let janitor = Janitor::for_url(&proxy.url);

    let run = janitor.apply(POLICY, &["--now", NOW]);
    let push = async {
        deleting.arrived().await;
        // Registered before the DELETE goes on: the next tag listing is the re-check's.
        let relisting = proxy.hold("GET", "/tags/list");
        deleting.release();
        relisting.arrived().await;
        // pr-1 is pushed again, the same index as before: the registry takes it, since its
        // child is still there.
        registry.tag(&index, "pr-1").await;
        relisting.release();
    };
    let (done, ()) = tokio::join!(run, push);

    registry.assert_pulls_completely("app", "pr-1").await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let reason = done.kept_reason("app", &child.digest).unwrap_or_default();
    assert!(reason.contains("tag pr-1 now reaches it"), "{reason}");
}

#[tokio::test]
async fn a_rollback_during_the_untags_keeps_the_manifest_it_lands_on() {
    let registry = TestRegistry::start().await;
    let doomed = Image::oci("app")
        .created(OLD)
        .tag("pr-1")
        .push(&registry)
        .await;
    Image::oci("app")
        .created(OLD)
        .tag("pr-2")
        .tag("stable")
        .push(&registry)
        .await;
    let proxy = FlakyProxy::start(&registry.url).await;
    // The placeholder that untags pr-2 goes up; meanwhile v1 is rolled back onto pr-1's build.
    let untagging = proxy.hold("PUT", "/manifests/pr-2");
    let janitor = Janitor::for_url(&proxy.url);

    let run = janitor.apply(POLICY, &["--now", NOW]);
    let push = async {
        untagging.arrived().await;
        registry.tag(&doomed, "v1").await;
        untagging.release();
    };
    let (done, ()) = tokio::join!(run, push);

    assert!(
        registry.has_manifest("app", &doomed.digest).await,
        "the build v1 was rolled back onto was deleted"
    );
    registry.assert_pulls_completely("app", "v1").await;
    registry.assert_pulls_completely("app", "stable").await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert_eq!(registry.tags("app").await, vec!["pr-1", "stable", "v1"]);
}
