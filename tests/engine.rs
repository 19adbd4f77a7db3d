//! The cleanup engine end to end: the real binary against a real registry, one test per
//! hazard that broke images for users of other tools. After every apply, every tag that
//! should remain must still pull completely.

mod support;

use support::janitor::Janitor;
use support::{Image, TestRegistry};

// In the future, so the untagged clocks the sweeps record (never earlier than the real
// time) count from these instants.
const NOW: &str = "2030-06-01T00:00:00Z";
const OLD: &str = "2030-01-01T00:00:00Z";
const NEW: &str = "2030-05-31T00:00:00Z";

const PURGE_UNTAGGED: &str = r#"{"rules":[{"name":"dangling","select":"untagged"}]}"#;
/// Every `pr-*` tag, whatever its age.
const EVERY_PR: &str = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"}]}"#;
const OLD_PR_BUILDS: &str =
    r#"{"rules":[{"name":"old-pr-builds","select":"tagged","tags":"pr-.*","older_than":"30d"}]}"#;

/// A library-level sweeper over `client`, as of `NOW`, without memory.
fn sweeper<'a>(
    client: &'a registry_janitor::registry::OciClient,
    policy: &'a registry_janitor::policy::Policy,
    store: &'a mut registry_janitor::state::NoState,
) -> registry_janitor::sweep::Sweeper<'a, registry_janitor::state::NoState> {
    registry_janitor::sweep::Sweeper::new(client, policy, store, NOW.parse().unwrap())
        .concurrency(4)
}

/// An OCI image built at `OLD`, tagged `tag`.
async fn old_build(registry: &TestRegistry, repo: &str, tag: &str) -> support::Pushed {
    Image::oci(repo).created(OLD).tag(tag).push(registry).await
}

/// Push `tag` to a fresh image so the manifest it named becomes untagged.
async fn repush(registry: &TestRegistry, repo: &str, tag: &str) -> support::Pushed {
    Image::oci(repo).created(NEW).tag(tag).push(registry).await
}

#[tokio::test]
async fn children_of_tagged_index_survive_untagged_purge() {
    let registry = TestRegistry::start().await;
    let (amd, arm, _) = registry.multi_arch("app", Some(OLD), &["latest"]).await;
    let old = old_build(&registry, "app", "v1").await;
    let janitor = Janitor::new(&registry);
    janitor.plan(PURGE_UNTAGGED, &["--now", NOW]).await;
    repush(&registry, "app", "v1").await;

    let done = janitor.apply(PURGE_UNTAGGED, &["--now", NOW]).await;
    assert_eq!(done.deleted("app"), vec![old.digest.clone()]);
    assert!(!registry.has_manifest("app", &old.digest).await);
    assert!(
        registry.has_manifest("app", &amd.digest).await,
        "an untagged child of a tagged index was deleted"
    );
    assert!(registry.has_manifest("app", &arm.digest).await);
    assert!(done
        .kept_reason("app", &amd.digest)
        .unwrap()
        .starts_with("child of"));
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["latest", "v1"]
    );
}

#[tokio::test]
async fn nested_indexes_are_deleted_parents_first_and_kept_whole() {
    let registry = TestRegistry::start().await;
    let a = Image::oci("app").created(OLD).push(&registry).await;
    let inner = registry.index("app", &[&a], &[]).await;
    let outer = registry.index("app", &[&inner], &["stable"]).await;
    let b = Image::oci("app").created(OLD).push(&registry).await;
    let doomed_inner = registry.index("app", &[&b], &[]).await;
    let doomed_outer = registry.index("app", &[&doomed_inner], &["pr-7"]).await;
    let policy = EVERY_PR;
    let janitor = Janitor::new(&registry);

    let done = janitor.apply(policy, &["--now", NOW]).await;
    assert_eq!(
        done.deleted("app"),
        vec![
            doomed_outer.digest.clone(),
            doomed_inner.digest.clone(),
            b.digest.clone()
        ]
    );
    for d in [&doomed_outer, &doomed_inner, &b] {
        assert!(!registry.has_manifest("app", &d.digest).await);
    }
    for d in [&outer, &inner, &a] {
        assert!(registry.has_manifest("app", &d.digest).await);
    }
    registry.assert_pulls_completely("app", "stable").await;
}

#[tokio::test]
async fn signatures_and_referrers_live_and_die_with_their_subject() {
    let registry = TestRegistry::start().await;
    let doomed = old_build(&registry, "app", "pr-1").await;
    let doomed_sbom = Image::oci("app")
        .referrer_of(&doomed, "application/spdx+json")
        .push(&registry)
        .await;
    let doomed_sig = registry.cosign_signature(&doomed).await;
    let kept = old_build(&registry, "app", "stable").await;
    let kept_sbom = Image::oci("app")
        .referrer_of(&kept, "application/spdx+json")
        .push(&registry)
        .await;
    let kept_sig = registry.cosign_signature(&kept).await;
    // An untagged rule must not take the referrers of a kept subject either.
    let policy = r#"{"rules":[
        {"name":"old-pr-builds","select":"tagged","tags":"pr-.*","older_than":"30d"},
        {"name":"dangling","select":"untagged"}]}"#;
    let janitor = Janitor::new(&registry);

    let done = janitor.apply(policy, &["--now", NOW]).await;
    let deleted = done.deleted("app");
    assert_eq!(
        deleted[0], doomed.digest,
        "the subject goes first: {deleted:?}"
    );
    for d in [&doomed, &doomed_sbom, &doomed_sig] {
        assert!(
            deleted.contains(&d.digest),
            "{} not deleted: {deleted:?}",
            d.digest
        );
        assert!(!registry.has_manifest("app", &d.digest).await);
    }
    for d in [&kept, &kept_sbom, &kept_sig] {
        assert!(
            registry.has_manifest("app", &d.digest).await,
            "{} of a kept subject was deleted",
            d.digest
        );
    }
    let tags = registry.tags("app").await;
    assert!(
        !tags
            .iter()
            .any(|t| t.contains(doomed.fallback_tag().as_str())),
        "orphan link tags remain: {tags:?}"
    );
    assert!(tags.contains(&kept.fallback_tag()), "{tags:?}");
    registry.assert_pulls_completely("app", "stable").await;
    registry
        .assert_pulls_completely("app", &format!("{}.sig", kept.fallback_tag()))
        .await;
}

#[tokio::test]
async fn a_digest_shared_by_pr_1_and_stable_loses_only_pr_1() {
    let registry = TestRegistry::start().await;
    let shared = Image::oci("app")
        .created(OLD)
        .tag("pr-1")
        .tag("stable")
        .push(&registry)
        .await;
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(OLD_PR_BUILDS, &["--now", NOW]).await;
    assert!(done.deleted("app").is_empty());
    let untag = done.entries("app", "untag");
    assert_eq!(untag.len(), 1);
    assert_eq!(untag[0]["tag"], "pr-1");
    assert!(untag[0].get("error").is_none(), "{untag:?}");
    assert_eq!(registry.tags("app").await, vec!["stable"]);
    assert!(registry.has_manifest("app", &shared.digest).await);
    registry.assert_pulls_completely("app", "stable").await;
}

#[tokio::test]
async fn keep_n_keeps_the_newest_of_the_selected() {
    let registry = TestRegistry::start().await;
    let mut pushed = Vec::new();
    for (i, created) in [
        "2030-01-01T00:00:00Z",
        "2030-02-01T00:00:00Z",
        "2030-03-01T00:00:00Z",
        "2030-04-01T00:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        pushed.push(
            Image::oci("app")
                .created(created)
                .tag(&format!("pr-{i}"))
                .push(&registry)
                .await,
        );
    }
    let policy =
        r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d","keep":2}]}"#;
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(policy, &["--now", NOW]).await;
    let mut deleted = done.deleted("app");
    deleted.sort();
    let mut expected = vec![pushed[0].digest.clone(), pushed[1].digest.clone()];
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(registry.tags("app").await, vec!["pr-2", "pr-3"]);
    registry.assert_pulls_completely("app", "pr-2").await;
    registry.assert_pulls_completely("app", "pr-3").await;
}

#[tokio::test]
async fn a_pinned_digest_is_kept() {
    let registry = TestRegistry::start().await;
    let pinned = old_build(&registry, "app", "pr-1").await;
    let other = old_build(&registry, "app", "pr-2").await;
    let policy = format!(
        r#"{{"rules":[{{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d"}}],
            "protect":{{"digests":["{}"]}}}}"#,
        pinned.digest
    );
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(&policy, &["--now", NOW]).await;
    assert_eq!(done.deleted("app"), vec![other.digest.clone()]);
    assert!(registry.has_manifest("app", &pinned.digest).await);
    assert_eq!(
        done.kept_reason("app", &pinned.digest).as_deref(),
        Some("pinned by protect.digests")
    );
}

#[tokio::test]
async fn unknown_age_is_kept() {
    let registry = TestRegistry::start().await;
    let ageless = Image::oci("app").tag("pr-1").push(&registry).await;
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(OLD_PR_BUILDS, &["--now", NOW]).await;
    assert!(done.deleted("app").is_empty());
    assert!(registry.has_manifest("app", &ageless.digest).await);
    assert!(done
        .kept_reason("app", &ageless.digest)
        .unwrap()
        .contains("unknown age"));
}

#[tokio::test]
async fn the_repositories_filter_is_respected() {
    let registry = TestRegistry::start().await;
    let ci = old_build(&registry, "ci/app", "pr-1").await;
    let prod = old_build(&registry, "prod/app", "pr-1").await;
    let other_ci = old_build(&registry, "ci/tool", "pr-1").await;
    let policy =
        r#"{"rules":[{"name":"pr","repositories":"ci/.*","select":"tagged","tags":"pr-.*"}]}"#;
    let janitor = Janitor::new(&registry);

    let done = janitor
        .apply(policy, &["--now", NOW, "--repository", "ci/app"])
        .await;
    let names: Vec<String> = done.json()["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["ci/app"]);
    assert!(!registry.has_manifest("ci/app", &ci.digest).await);
    assert!(
        registry.has_manifest("ci/tool", &other_ci.digest).await,
        "--repository was ignored"
    );

    let done = janitor.apply(policy, &["--now", NOW]).await;
    assert!(done.json()["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"] != "prod/app"));
    assert!(!registry.has_manifest("ci/tool", &other_ci.digest).await);
    assert!(
        registry.has_manifest("prod/app", &prod.digest).await,
        "a repository no rule matches was swept"
    );
    registry.assert_pulls_completely("prod/app", "pr-1").await;
}

#[tokio::test]
async fn a_tag_pushed_between_plan_and_apply_saves_its_manifest() {
    use registry_janitor::policy::Policy;
    use registry_janitor::registry::{ClientOptions, OciClient};
    use registry_janitor::state::NoState;

    let registry = TestRegistry::start().await;
    let doomed = old_build(&registry, "app", "pr-1").await;
    let rolled_back = old_build(&registry, "app", "pr-5").await;
    let child = Image::oci("app").created(OLD).push(&registry).await;
    let index = registry.index("app", &[&child], &["pr-2"]).await;
    let client = OciClient::new(&registry.url, ClientOptions::default()).unwrap();
    let policy = Policy::from_json(EVERY_PR).unwrap();
    let mut store = NoState;
    let mut sweeper = sweeper(&client, &policy, &mut store);
    let planned = sweeper.plan("app").await.unwrap();
    let planned_digests: Vec<String> = planned
        .plan
        .delete
        .iter()
        .map(|d| d.digest.to_string())
        .collect();
    assert_eq!(planned_digests.len(), 4, "{planned_digests:?}");

    registry.tag(&doomed, "hotfix").await;
    // A new tag the policy would select counts as a change too: nobody saw it in the plan.
    registry.tag(&rolled_back, "pr-9").await;
    // A new index, pushed meanwhile, also holds the planned child. The policy selects its
    // tag too, but it was not in the plan, so it stays, and so must the child it needs.
    let later = Image::oci("app").created(NEW).push(&registry).await;
    registry.index("app", &[&child, &later], &["pr-3"]).await;

    let done = sweeper.apply(planned).await.unwrap();
    let deleted: Vec<String> = done.delete.iter().map(|d| d.digest.to_string()).collect();
    assert_eq!(
        deleted,
        vec![index.digest.clone()],
        "only the index whose tag nobody touched goes"
    );
    assert!(registry.has_manifest("app", &doomed.digest).await);
    assert!(registry.has_manifest("app", &child.digest).await);
    let reason = done
        .keep
        .iter()
        .find(|k| k.digest.as_str() == doomed.digest)
        .unwrap()
        .reason
        .clone();
    assert!(
        reason.contains("changed since planning") && reason.contains("hotfix"),
        "{reason}"
    );
    assert!(
        registry.has_manifest("app", &rolled_back.digest).await,
        "a tag added since planning was deleted"
    );
    registry.assert_pulls_completely("app", "hotfix").await;
    registry.assert_pulls_completely("app", "pr-3").await;
}

#[tokio::test]
async fn a_tag_rolled_back_onto_a_planned_manifest_saves_it() {
    use registry_janitor::policy::Policy;
    use registry_janitor::registry::{ClientOptions, OciClient};
    use registry_janitor::state::NoState;

    let registry = TestRegistry::start().await;
    let doomed = old_build(&registry, "app", "pr-1").await;
    old_build(&registry, "app", "latest").await;
    let client = OciClient::new(&registry.url, ClientOptions::default()).unwrap();
    let policy = Policy::from_json(EVERY_PR).unwrap();
    let mut store = NoState;
    let mut sweeper = sweeper(&client, &policy, &mut store);
    let planned = sweeper.plan("app").await.unwrap();
    assert_eq!(planned.plan.delete.len(), 1);

    // A rollback: the existing tag `latest` now names the planned manifest. The tag list
    // does not show that; only reading `latest` again does, however recent the plan.
    registry.tag(&doomed, "latest").await;

    let done = sweeper.apply(planned).await.unwrap();
    assert!(done.delete.is_empty(), "{:?}", done.delete);
    let reason = &done
        .keep
        .iter()
        .find(|k| k.digest.as_str() == doomed.digest)
        .unwrap()
        .reason;
    assert!(reason.contains("gained tag latest"), "{reason}");
    registry.assert_pulls_completely("app", "latest").await;
}

#[tokio::test]
async fn an_existing_tag_re_pushed_as_an_index_keeps_the_planned_child_it_reuses() {
    use registry_janitor::policy::Policy;
    use registry_janitor::registry::{ClientOptions, OciClient};
    use registry_janitor::state::NoState;

    let registry = TestRegistry::start().await;
    let child = Image::oci("app").created(OLD).push(&registry).await;
    let old_index = registry.index("app", &[&child], &["pr-1"]).await;
    old_build(&registry, "app", "latest").await;
    let client = OciClient::new(&registry.url, ClientOptions::default()).unwrap();
    let policy = Policy::from_json(EVERY_PR).unwrap();
    let mut store = NoState;
    let mut sweeper = sweeper(&client, &policy, &mut store);
    let planned = sweeper.plan("app").await.unwrap();
    let mut planned_digests: Vec<&str> = planned
        .plan
        .delete
        .iter()
        .map(|d| d.digest.as_str())
        .collect();
    planned_digests.sort();
    let mut expected = vec![old_index.digest.as_str(), child.digest.as_str()];
    expected.sort();
    assert_eq!(planned_digests, expected);

    // The next build re-pushes `latest` as an index that reuses the unchanged platform image.
    let other = Image::oci("app").created(NEW).push(&registry).await;
    registry.index("app", &[&child, &other], &["latest"]).await;

    let done = sweeper.apply(planned).await.unwrap();
    let deleted: Vec<&str> = done.delete.iter().map(|d| d.digest.as_str()).collect();
    assert_eq!(
        deleted,
        vec![old_index.digest.as_str()],
        "only the old index goes"
    );
    assert!(registry.has_manifest("app", &child.digest).await);
    registry.assert_pulls_completely("app", "latest").await;
}

#[tokio::test]
async fn an_image_untagged_by_a_repush_waits_out_older_than_then_goes() {
    let registry = TestRegistry::start().await;
    let first = Image::oci("app")
        .created("1970-01-01T00:00:00Z")
        .tag("main")
        .push(&registry)
        .await;
    let janitor = Janitor::new(&registry);
    let policy = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;
    janitor
        .plan(policy, &["--now", "2030-06-01T00:00:00Z"])
        .await;
    repush(&registry, "app", "main").await;

    // First seen untagged now: a build from 1970 is still not old.
    let seen = janitor
        .apply(policy, &["--now", "2030-06-01T01:00:00Z"])
        .await;
    assert!(seen.deleted("app").is_empty());
    assert!(seen
        .kept_reason("app", &first.digest)
        .unwrap()
        .contains("waits 1d"));
    let half_day = janitor
        .apply(policy, &["--now", "2030-06-01T13:00:00Z"])
        .await;
    assert!(
        half_day.deleted("app").is_empty(),
        "the clock moved: {}",
        half_day.stdout
    );
    assert!(registry.has_manifest("app", &first.digest).await);

    let later = janitor
        .apply(policy, &["--now", "2030-06-02T02:00:00Z"])
        .await;
    assert_eq!(later.deleted("app"), vec![first.digest.clone()]);
    assert!(!registry.has_manifest("app", &first.digest).await);
    registry.assert_pulls_completely("app", "main").await;
}

#[tokio::test]
async fn plan_changes_nothing_and_prints_one_json_document() {
    let registry = TestRegistry::start().await;
    let doomed = old_build(&registry, "app", "pr-1").await;
    let janitor = Janitor::new(&registry);
    let plan = janitor.plan(OLD_PR_BUILDS, &["--now", NOW]).await;
    assert_eq!(plan.code, 0);
    let json = plan.json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["summary"]["manifests_deleted"], 1);
    assert_eq!(json["summary"]["tags_removed"], 1);
    assert!(json["summary"]["bytes_reclaimable"].as_u64().unwrap() > 0);
    assert_eq!(json["repositories"][0]["delete"][0]["tags"][0], "pr-1");
    assert!(
        registry.has_manifest("app", &doomed.digest).await,
        "plan deleted something"
    );
    assert_eq!(registry.tags("app").await, vec!["pr-1"]);
}

#[tokio::test]
async fn bad_input_is_a_usage_error_that_changes_nothing() {
    let registry = TestRegistry::start().await;
    let image = old_build(&registry, "app", "pr-1").await;
    let janitor = Janitor::new(&registry);
    for policy in [
        r#"{"rules":[{"name":"r","select":"tagged","tagz":"pr-.*"}]}"#,
        r#"{"rules":[{"name":"r","select":"tagged","tags":"pr-("}]}"#,
        r#"{"rules":[{"name":"r","select":"tagged","older_than":"9999999999999d"}]}"#,
        "{not json",
    ] {
        let path = janitor.policy(policy);
        let out = janitor
            .run(&[
                "apply",
                "--yes",
                "--registry",
                &registry.url,
                "--policy",
                path.to_str().unwrap(),
                "--no-state",
            ])
            .await;
        assert_eq!(out.code, 2, "{policy}: {}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    }
    let path = janitor.policy(OLD_PR_BUILDS);
    let out = janitor
        .run(&[
            "apply",
            "--registry",
            &registry.url,
            "--policy",
            path.to_str().unwrap(),
            "--no-state",
        ])
        .await;
    assert_eq!(
        out.code, 2,
        "apply without --yes and without a terminal must refuse"
    );
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(registry.has_manifest("app", &image.digest).await);
}

#[tokio::test]
async fn log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let registry = TestRegistry::start().await;
    old_build(&registry, "app", "pr-1").await;
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(OLD_PR_BUILDS, &["--now", NOW]).await;
    assert!(
        done.stderr.contains("action=\"delete\""),
        "no log line to look at: {}",
        done.stderr
    );
    assert!(!done.stderr.contains('\x1b'), "{:?}", done.stderr);
}

#[tokio::test]
async fn an_unreachable_registry_is_a_runtime_error() {
    let janitor = Janitor::for_url("http://127.0.0.1:9");
    let path = janitor.policy(OLD_PR_BUILDS);
    let out = janitor
        .run(&[
            "plan",
            "--registry",
            "http://127.0.0.1:9",
            "--policy",
            path.to_str().unwrap(),
            "--no-state",
        ])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("GET /v2/_catalog"), "{}", out.stderr);
}

#[tokio::test]
async fn the_table_groups_by_repository_and_ends_with_totals() {
    let registry = TestRegistry::start().await;
    old_build(&registry, "app", "pr-1").await;
    Image::oci("app")
        .created(NEW)
        .tag("main")
        .push(&registry)
        .await;
    let janitor = Janitor::new(&registry);
    let path = janitor.policy(OLD_PR_BUILDS);
    let out = janitor
        .run(&[
            "plan",
            "--registry",
            &registry.url,
            "--policy",
            path.to_str().unwrap(),
            "--now",
            NOW,
            "--no-state",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("app  (1 to delete, 0 to untag, 1 kept)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  delete  "), "{}", out.stdout);
    let total = lines.last().unwrap();
    assert!(
        total.starts_with("TOTAL  1 manifests would be deleted, 1 tags removed,"),
        "{total}"
    );
    assert!(
        total.contains(" B reclaimable") || total.contains("iB reclaimable"),
        "{total}"
    );
}

#[tokio::test]
async fn a_pinned_untagged_index_keeps_its_children() {
    let registry = TestRegistry::start().await;
    let child = Image::oci("app").created(OLD).push(&registry).await;
    let other = Image::oci("app").created(OLD).push(&registry).await;
    let pinned = registry.index("app", &[&child, &other], &[]).await;
    registry.index("app", &[&child], &["pr-1"]).await;
    let policy = format!(
        r#"{{"rules":[{{"name":"pr","select":"tagged","tags":"pr-.*"}}],"protect":{{"digests":["{}"]}}}}"#,
        pinned.digest
    );
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(&policy, &["--now", NOW]).await;
    assert_eq!(done.deleted("app").len(), 1, "{}", done.stdout);
    assert!(
        registry.has_manifest("app", &child.digest).await,
        "the child of a pinned index was deleted"
    );
    assert!(registry.has_manifest("app", &pinned.digest).await);
    registry
        .assert_pulls_completely("app", &pinned.digest)
        .await;
}

#[tokio::test]
async fn a_signature_on_an_untagged_image_follows_that_image() {
    let registry = TestRegistry::start().await;
    let by_digest = Image::oci("app").created(OLD).push(&registry).await;
    let signature = registry.cosign_signature(&by_digest).await;
    let janitor = Janitor::new(&registry);
    let plan = janitor.plan(PURGE_UNTAGGED, &["--now", NOW]).await;
    assert_eq!(
        plan.deleted("app"),
        vec![by_digest.digest.clone(), signature.digest.clone()]
    );
    let reason = plan.entries("app", "delete")[1]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("referrer of"),
        "the signature was judged as an orphan: {reason}"
    );
}

#[tokio::test]
async fn a_tags_page_without_tags_is_an_error_not_an_empty_repository() {
    use support::proxy::{Fault, FlakyProxy};
    let registry = TestRegistry::start().await;
    let image = old_build(&registry, "app", "v1").await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let janitor = Janitor::for_url(&proxy.url);
    janitor.plan(PURGE_UNTAGGED, &["--now", NOW]).await;
    proxy.inject(
        "/tags/list",
        Fault::ReplaceBody(b"{}".to_vec(), Some("application/json")),
    );
    let later = "2030-06-05T00:00:00Z";
    let done = janitor.apply(PURGE_UNTAGGED, &["--now", later]).await;
    assert_eq!(done.code, 1);
    assert_eq!(done.json()["summary"]["repositories_incomplete"], 1);
    assert!(registry.has_manifest("app", &image.digest).await);
    // The next sweep, with a sane answer, still sees it tagged: no clock was started.
    let again = janitor.apply(PURGE_UNTAGGED, &["--now", later]).await;
    assert!(again.deleted("app").is_empty(), "{}", again.stdout);
    registry.assert_every_tag_pulls("app").await;
}

#[tokio::test]
async fn past_its_deadline_a_run_starts_no_delete_and_lists_what_is_left() {
    use registry_janitor::policy::Policy;
    use registry_janitor::registry::{ClientOptions, OciClient};
    use registry_janitor::state::NoState;
    use std::time::Instant;

    let registry = TestRegistry::start().await;
    let a = old_build(&registry, "a", "pr-1").await;
    let b = old_build(&registry, "b", "pr-1").await;
    let client = OciClient::new(&registry.url, ClientOptions::default()).unwrap();
    let policy = Policy::from_json(OLD_PR_BUILDS).unwrap();
    let mut store = NoState;
    let mut sweeper = sweeper(&client, &policy, &mut store);
    // Planned in time, but the time runs out before the deletes start.
    let planned = sweeper.plan("a").await.unwrap();
    assert_eq!(planned.plan.delete.len(), 1);
    sweeper.deadline = Some(Instant::now());
    let done = sweeper.apply(planned).await.unwrap();
    assert!(done.unfinished());
    assert!(done.delete.is_empty(), "{done:?}");
    // A whole run past its deadline reads nothing and lists every repository as left.
    let outcome = sweeper
        .run(&["a".to_owned(), "b".to_owned()], true, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(outcome.unfinished, vec!["a", "b"]);
    assert!(registry.has_manifest("a", &a.digest).await);
    assert!(registry.has_manifest("b", &b.digest).await);
}

#[tokio::test]
async fn repositories_are_swept_side_by_side_within_the_read_and_delete_limits() {
    use registry_janitor::policy::Policy;
    use registry_janitor::registry::{ClientOptions, OciClient, READS_PER_WRITE};
    use registry_janitor::state::NoState;
    use std::time::Duration;
    use support::proxy::{FlakyProxy, READS};

    let registry = TestRegistry::start().await;
    let repos = ["a", "b", "c"];
    for repo in repos {
        for n in 0..6 {
            old_build(&registry, repo, &format!("pr-{n}")).await;
        }
        old_build(&registry, repo, "latest").await;
    }
    // A remote registry's round trip, so requests overlap when they can.
    let proxy = FlakyProxy::start_delayed(&registry.url, Duration::from_millis(30)).await;
    let client = OciClient::new(
        &proxy.url,
        ClientOptions {
            in_flight: 2,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let policy = Policy::from_json(OLD_PR_BUILDS).unwrap();
    let mut store = NoState;
    let mut sweeper = sweeper(&client, &policy, &mut store);
    sweeper.concurrency = 2;
    let names: Vec<String> = repos.iter().map(|r| r.to_string()).collect();
    let outcome = sweeper.run(&names, true, |_, _, _| {}).await.unwrap();

    let order: Vec<&str> = outcome
        .repositories
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(order, repos, "the report keeps the order asked for");
    for plan in &outcome.repositories {
        assert_eq!(plan.delete.len(), 6, "{}: {:?}", plan.name, plan.delete);
        assert!(
            plan.delete.iter().all(|d| d.error.is_none()),
            "{:?}",
            plan.delete
        );
        registry.assert_pulls_completely(&plan.name, "latest").await;
    }
    let reads = proxy.peak_in_flight(READS);
    assert!(reads <= 2 * READS_PER_WRITE, "{reads} reads at once");
    assert!(
        reads > 2,
        "reads go wider than deletes: at most {reads} at once"
    );
    assert_eq!(proxy.peak_in_flight("DELETE"), 2, "deletes use their slots");
    // The second repository is read while the first is still being changed.
    let log = proxy.log();
    let first_b = log
        .iter()
        .position(|(_, p, _)| p.starts_with("/v2/b/"))
        .unwrap();
    let last_a_delete = log
        .iter()
        .rposition(|(m, p, _)| m == "DELETE" && p.starts_with("/v2/a/"))
        .unwrap();
    assert!(
        first_b < last_a_delete,
        "repository b waited for a to finish"
    );
}

#[tokio::test]
async fn deletes_the_cutoff_stops_are_kept_for_the_next_run_not_failed() {
    use registry_janitor::policy::Policy;
    use registry_janitor::registry::{ClientOptions, OciClient};
    use registry_janitor::state::NoState;
    use std::time::{Duration, Instant};

    let registry = TestRegistry::start().await;
    let mut builds = Vec::new();
    for n in 1..=6 {
        builds.push(old_build(&registry, "app", &format!("pr-{n}")).await);
    }
    // Paced at one delete every 500 ms, with a cutoff 1.2 s away: two or three go, the rest
    // would come after the cutoff.
    let client = OciClient::new(
        &registry.url,
        ClientOptions {
            max_writes_per_minute: Some(120),
            cutoff: Some(Instant::now() + Duration::from_millis(1200)),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let policy = Policy::from_json(OLD_PR_BUILDS).unwrap();
    let mut store = NoState;
    let mut sweeper = sweeper(&client, &policy, &mut store);
    let planned = sweeper.plan("app").await.unwrap();
    assert_eq!(planned.plan.delete.len(), 6);
    let done = sweeper.apply(planned).await.unwrap();
    let deleted = done.delete.iter().filter(|d| d.error.is_none()).count();
    let stopped: Vec<_> = done
        .keep
        .iter()
        .filter(|k| k.kind == registry_janitor::plan::KeepKind::Stopped)
        .collect();
    assert!((1..6).contains(&deleted), "{done:?}");
    assert_eq!(deleted + stopped.len(), 6, "{done:?}");
    assert!(done.unfinished(), "{done:?}");
    assert!(
        !done.has_failures(),
        "stopped for time is not a failure: {done:?}"
    );
    // What was never sent is still there. A delete the cutoff stopped in flight (a loaded
    // machine) may have been done by the registry, and says so.
    for k in stopped {
        if k.reason.contains("it may be done") {
            continue;
        }
        assert!(
            registry.has_manifest("app", &k.digest.to_string()).await,
            "{}: {}",
            k.digest,
            k.reason
        );
    }
}

#[tokio::test]
async fn unpulled_for_on_a_registry_without_pull_times_is_refused_before_anything_is_read() {
    let registry = TestRegistry::start().await;
    let build = old_build(&registry, "app", "pr-1").await;
    let janitor = Janitor::new(&registry);
    let policy = janitor.policy(
        r#"{"rules":[{"name":"cold","select":"tagged","tags":"pr-.*","unpulled_for":"90d"}]}"#,
    );
    let out = janitor
        .op(
            &["apply"],
            &["--policy", policy.to_str().unwrap(), "--no-state", "--yes"],
        )
        .await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("rule \"cold\"")
            && out.stderr.contains("unpulled_for")
            && out.stderr.contains("oci backend"),
        "{}",
        out.stderr
    );
    assert!(registry.has_manifest("app", &build.digest).await);
    assert_eq!(registry.tags("app").await, vec!["pr-1"]);
}
