//! `registry-janitor purge`: `acr purge`'s flags against a real registry. Each test checks the
//! registry afterwards, and that every tag left still pulls.

mod support;

use support::janitor::{Janitor, Outcome};
use support::{Image, TestRegistry};

/// Long before any `--ago` these tests use.
const OLD: &str = "2025-01-01T00:00:00Z";

/// A day ago: younger than `--ago 30d`.
fn yesterday() -> String {
    (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339()
}

/// `purge` with these flags (split at spaces) and a JSON report.
async fn purge(janitor: &Janitor, flags: &str) -> Outcome {
    let mut args: Vec<&str> = flags.split_whitespace().collect();
    args.extend(["--format", "json"]);
    janitor.op(&["purge"], &args).await
}

/// An image of `repository` built at `OLD`, with these tags.
async fn old(registry: &TestRegistry, repository: &str, tags: &[&str]) -> support::Pushed {
    let mut image = Image::oci(repository).created(OLD);
    for t in tags {
        image = image.tag(t);
    }
    image.push(registry).await
}

#[tokio::test]
async fn filters_across_two_repositories_remove_old_tags_and_leave_their_manifests() {
    let registry = TestRegistry::start().await;
    let a = old(&registry, "app", &["pr-1"]).await;
    let b = old(&registry, "app", &["pr-2", "stable"]).await;
    let young = Image::oci("app")
        .created(&yesterday())
        .tag("pr-3")
        .push(&registry)
        .await;
    let d = old(&registry, "tool", &["pr-1"]).await;
    let other = old(&registry, "other", &["pr-1"]).await;
    let janitor = Janitor::new(&registry);

    let out = purge(
        &janitor,
        "--filter app:pr-.* --filter tool:pr-.* --ago 30d --yes",
    )
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("purge runs this policy")
            && out.stderr.contains("\"untag_only\": true"),
        "{}",
        out.stderr
    );
    assert!(out.deleted("app").is_empty(), "{}", out.stdout);
    assert!(out.deleted("tool").is_empty(), "{}", out.stdout);
    // Without --untagged only the tags go; the manifests stay, untagged.
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["pr-3", "stable"]
    );
    assert!(registry.tags("tool").await.is_empty());
    for (repo, m) in [("app", &a), ("app", &b), ("app", &young), ("tool", &d)] {
        assert!(
            registry.has_manifest(repo, &m.digest).await,
            "{repo} {}",
            m.digest
        );
    }
    assert_eq!(registry.assert_every_tag_pulls("other").await, vec!["pr-1"]);
    assert!(registry.has_manifest("other", &other.digest).await);
}

#[tokio::test]
async fn untagged_deletes_what_loses_every_tag_and_what_was_untagged_but_keeps_a_tagged_index_whole(
) {
    let registry = TestRegistry::start().await;
    let (amd, arm, _) = registry.multi_arch("app", Some(OLD), &["latest"]).await;
    let build = old(&registry, "app", &["pr-1"]).await;
    let before = old(&registry, "app", &["main"]).await;
    let janitor = Janitor::new(&registry);
    // A first look remembers `before` while `main` still names it; then main moves on.
    let look = purge(&janitor, "--filter app:pr-.* --ago 0d --untagged --dry-run").await;
    assert_eq!(look.code, 0, "{}", look.stderr);
    let after = old(&registry, "app", &["main"]).await;

    let out = purge(&janitor, "--filter app:pr-.* --ago 0d --untagged --yes").await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut deleted = out.deleted("app");
    deleted.sort();
    let mut expected = vec![build.digest.clone(), before.digest.clone()];
    expected.sort();
    assert_eq!(deleted, expected, "{}", out.stdout);
    assert!(
        registry.has_manifest("app", &amd.digest).await
            && registry.has_manifest("app", &arm.digest).await,
        "a platform image of a tagged index was purged as untagged"
    );
    assert!(registry.has_manifest("app", &after.digest).await);
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["latest", "main"]
    );
}

#[tokio::test]
async fn keep_spares_the_newest_matching_tags() {
    let registry = TestRegistry::start().await;
    let mut builds = Vec::new();
    for (i, created) in [
        "2025-01-01T00:00:00Z",
        "2025-02-01T00:00:00Z",
        "2025-03-01T00:00:00Z",
        "2025-04-01T00:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        let tag = format!("pr-{i}");
        builds.push(
            Image::oci("app")
                .created(created)
                .tag(&tag)
                .push(&registry)
                .await,
        );
    }
    let janitor = Janitor::new(&registry);

    let out = purge(
        &janitor,
        "--filter app:pr-.* --ago 1d --keep 2 --untagged --yes",
    )
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut deleted = out.deleted("app");
    deleted.sort();
    let mut expected = vec![builds[0].digest.clone(), builds[1].digest.clone()];
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["pr-2", "pr-3"]
    );
}

#[tokio::test]
async fn dry_run_changes_nothing_and_says_what_would_go() {
    let registry = TestRegistry::start().await;
    let a = old(&registry, "app", &["pr-1"]).await;
    let janitor = Janitor::new(&registry);

    let out = purge(&janitor, "--filter app:.* --ago 1d --untagged --dry-run").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["dry_run"], true);
    assert_eq!(out.deleted("app"), vec![a.digest.clone()]);
    assert!(registry.has_manifest("app", &a.digest).await);
    assert_eq!(registry.tags("app").await, vec!["pr-1"]);
}

#[tokio::test]
async fn bad_flags_exit_2_with_a_clear_message_and_change_nothing() {
    let registry = TestRegistry::start().await;
    let a = old(&registry, "app", &["pr-1"]).await;
    let janitor = Janitor::new(&registry);
    for (flags, says) in [
        (
            vec!["--filter", "app", "--ago", "1d", "--yes"],
            "<repository regex>:<tag regex>",
        ),
        (
            vec!["--filter", "app:pr-(", "--ago", "1d", "--yes"],
            "not a valid regex",
        ),
        (
            vec!["--filter", "app:.*", "--ago", "5x", "--yes"],
            "invalid value '5x' for '--ago",
        ),
        (vec!["--filter", "app:.*", "--yes"], "--ago"),
        // Off a terminal, deleting needs --yes (or --dry-run).
        (vec!["--filter", "app:.*", "--ago", "1d"], "--yes"),
    ] {
        let out = janitor.op(&["purge"], &flags).await;
        assert_eq!(out.code, 2, "{flags:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{flags:?}: {}", out.stderr);
    }
    assert!(registry.has_manifest("app", &a.digest).await);
    assert_eq!(registry.tags("app").await, vec!["pr-1"]);
}

/// Push `tags` onto new images, one at a time, and look (a dry run) after each: each image
/// but the last becomes untagged at its own sweep, so the untagged clocks differ. The
/// images, oldest first; the last one keeps the tag.
async fn untagged_one_by_one(
    registry: &TestRegistry,
    janitor: &Janitor,
    repository: &str,
    count: usize,
) -> Vec<support::Pushed> {
    let mut images = Vec::new();
    for _ in 0..=count {
        images.push(old(registry, repository, &["t"]).await);
        let look = purge(
            janitor,
            &format!("--filter {repository}:none --ago 0d --untagged --dry-run"),
        )
        .await;
        assert_eq!(look.code, 0, "{}", look.stderr);
    }
    images
}

/// acr-cli cmd/acr/purge_untagged_only_test.go, TestPurgeDanglingManifestsWithAgoAndKeep:
/// "KeepFunctionalityPreservesRecentManifests" (five, keep 2: delete 3) and
/// "KeepExceedsManifestCount" (keep 10: delete none).
#[tokio::test]
async fn keep_spares_the_newest_untagged_manifests_as_acr_does() {
    let registry = TestRegistry::start().await;
    let janitor = Janitor::new(&registry);
    let images = untagged_one_by_one(&registry, &janitor, "app", 5).await;

    let none = purge(
        &janitor,
        "--filter app:none --untagged --ago 0d --keep 10 --yes",
    )
    .await;
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert!(none.deleted("app").is_empty(), "{}", none.stdout);

    let out = purge(
        &janitor,
        "--filter app:none --untagged --ago 0d --keep 2 --yes",
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut deleted = out.deleted("app");
    deleted.sort();
    let mut oldest: Vec<String> = images[..3].iter().map(|i| i.digest.clone()).collect();
    oldest.sort();
    assert_eq!(deleted, oldest, "{}", out.stdout);
    for kept in &images[3..] {
        assert!(registry.has_manifest("app", &kept.digest).await);
    }
    assert_eq!(registry.assert_every_tag_pulls("app").await, vec!["t"]);
}

/// acr-cli TestPurgeUntaggedOnly "UntaggedOnlyNoFilterAllRepos" and "UntaggedOnlyWithFilter",
/// and TestPurgeCommandUntaggedOnlyValidation ("UntaggedOnlyMakesAgoOptional",
/// "UntaggedOnlyAndUntaggedMutuallyExclusive").
#[tokio::test]
async fn untagged_only_deletes_untagged_manifests_and_no_tag() {
    let registry = TestRegistry::start().await;
    let janitor = Janitor::new(&registry);
    let app = untagged_one_by_one(&registry, &janitor, "app", 1).await;
    let tool = untagged_one_by_one(&registry, &janitor, "tool", 1).await;
    let pr = old(&registry, "app", &["pr-1"]).await;

    let both = janitor
        .op(&["purge"], &["--untagged", "--untagged-only", "--yes"])
        .await;
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );

    // With a filter, only its repositories; its tag part is not used.
    let out = purge(&janitor, "--filter app:.* --untagged-only --yes").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.deleted("app"), vec![app[0].digest.clone()]);
    assert!(out.deleted("tool").is_empty());
    assert!(out.entries("app", "untag").is_empty(), "{}", out.stdout);
    // No filter and no --ago: every repository, any age.
    let out = purge(&janitor, "--untagged-only --yes").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.deleted("tool"), vec![tool[0].digest.clone()]);
    assert!(out.deleted("app").is_empty());
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["pr-1", "t"]
    );
    assert_eq!(registry.assert_every_tag_pulls("tool").await, vec!["t"]);
    assert!(registry.has_manifest("app", &pr.digest).await);
}

/// acr-cli cmd/acr/purge_test.go, TestPurgeTags "Delete 2 with negative lookahead" and
/// "Delete 2 with negative lookbehind", over its tags v1-a, v1-b, v1-c and v2. Our regexes
/// match whole names, so the look-ahead filter ends in `.*` here.
#[tokio::test]
async fn look_around_filters_select_what_acr_selects() {
    for filter in ["app:v1(?!-a).*", "app:v1-*[abc]+(?<!-[a])"] {
        let registry = TestRegistry::start().await;
        for tag in ["v1-a", "v1-b", "v1-c", "v2"] {
            old(&registry, "app", &[tag]).await;
        }
        let janitor = Janitor::new(&registry);
        let out = purge(&janitor, &format!("--filter {filter} --ago 0m --yes")).await;
        assert_eq!(out.code, 0, "{filter}: {}", out.stderr);
        let mut untagged: Vec<String> = out
            .entries("app", "untag")
            .iter()
            .map(|u| u["tag"].as_str().unwrap().to_owned())
            .collect();
        untagged.sort();
        assert_eq!(untagged, vec!["v1-b", "v1-c"], "{filter}");
        assert_eq!(
            registry.assert_every_tag_pulls("app").await,
            vec!["v1-a", "v2"]
        );
    }
}

#[tokio::test]
async fn a_runaway_filter_is_an_error_that_names_it_and_changes_nothing() {
    let registry = TestRegistry::start().await;
    let long = "a".repeat(60);
    old(&registry, "app", &[&long, "pr-1"]).await;
    let janitor = Janitor::new(&registry);
    let filter = "app:(?=x?)(a|aa)+b|pr-.*";
    let out = purge(
        &janitor,
        &format!("--filter {filter} --ago 0d --untagged --yes"),
    )
    .await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let json = out.json();
    let app = &json["repositories"][0];
    assert_eq!(app["complete"], false, "{}", out.stdout);
    let error = app["error"].as_str().unwrap();
    assert!(
        error.contains("(?=x?)(a|aa)+b|pr-.*") && error.contains("backtracking limit"),
        "{error}"
    );
    assert!(out.deleted("app").is_empty());
    let mut expected = vec![long.clone(), "pr-1".to_owned()];
    expected.sort();
    assert_eq!(registry.assert_every_tag_pulls("app").await, expected);
}

/// acr-cli TestCollectTagFilters "NameWithSlashAndTwoNonCaptureGroupInRepoAndCharacterClasses"
/// and TestGetRepositoryAndTagRegex "TwoColonsTest".
#[tokio::test]
async fn a_filter_splits_at_its_one_colon_outside_brackets() {
    let registry = TestRegistry::start().await;
    old(&registry, "foo/bar", &["v1"]).await;
    old(&registry, "foo/b4r", &["v1"]).await;
    let janitor = Janitor::new(&registry);

    let out = purge(
        &janitor,
        "--filter foo/b[[:alpha:]]r(?:.*):.(?:.*) --ago 0d --yes",
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(registry.tags("foo/bar").await.is_empty(), "{}", out.stdout);
    assert_eq!(registry.tags("foo/b4r").await, vec!["v1"]);

    let two = janitor
        .op(
            &["purge"],
            &["--filter", "foo:bar:zzz", "--ago", "0d", "--yes"],
        )
        .await;
    assert_eq!(two.code, 2, "{}", two.stderr);
    assert!(
        two.stderr.contains("'foo:bar:zzz'") && two.stderr.contains("2 ':'"),
        "{}",
        two.stderr
    );
    assert_eq!(registry.tags("foo/b4r").await, vec!["v1"]);
}

/// acr-cli TestPurgeTags "RepositoryNotFoundTest": a repository the catalog lists but whose
/// tag listing answers NAME_UNKNOWN (on distribution, one that holds only blobs) is not
/// there: acr goes on and exits 0, and so do `purge` and `apply`.
#[tokio::test]
async fn a_repository_the_registry_does_not_know_is_nothing_there_not_a_failure() {
    let registry = TestRegistry::start().await;
    registry
        .push_blob("halfway", b"a layer of a push that stopped")
        .await;
    let doomed = old(&registry, "app", &["pr-1"]).await;
    let janitor = Janitor::new(&registry);

    let out = purge(&janitor, "--filter .*:pr-.* --ago 1d --untagged --yes").await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.deleted("app"), vec![doomed.digest.clone()]);
    let json = out.json();
    let halfway = json["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "halfway")
        .expect("halfway is reported")
        .clone();
    assert_eq!(halfway["complete"], true, "{halfway}");
    assert!(
        halfway["absent"].as_str().unwrap().contains("NAME_UNKNOWN"),
        "{halfway}"
    );
    assert_eq!(json["summary"]["repositories_incomplete"], 0);
    assert_eq!(json["summary"]["repositories_absent"], 1);

    let policy = r#"{"rules":[{"name":"u","select":"untagged"}]}"#;
    let swept = janitor.apply(policy, &[]).await;
    assert_eq!(swept.code, 0, "{}", swept.stderr);
}

/// The fail-closed half: a NAME_UNKNOWN listing is never read as "no tags" while a manifest
/// the inventory remembers there is still served (distribution answers NAME_UNKNOWN for a
/// repository whose manifests were only ever pushed by digest). Nothing is deleted.
#[tokio::test]
async fn a_name_unknown_repository_that_still_serves_a_remembered_manifest_deletes_nothing() {
    use registry_janitor::state::{FileState, Remembered, StateStore};
    let registry = TestRegistry::start().await;
    let by_digest = Image::oci("pushed").created(OLD).push(&registry).await;
    let janitor = Janitor::new(&registry);
    {
        // What a push webhook records: the digest, before any sweep.
        let mut store = FileState::open(&janitor.state(), &registry.host()).unwrap();
        let mut inventory = store.load("pushed").await.unwrap();
        let now: chrono::DateTime<chrono::Utc> = OLD.parse().unwrap();
        inventory
            .manifests
            .insert(by_digest.digest.parse().unwrap(), Remembered::new(now));
        store.save("pushed", inventory).await.unwrap();
        store.flush().await.unwrap();
    }
    let policy = r#"{"rules":[{"name":"u","select":"untagged"}]}"#;
    let out = janitor.apply(policy, &["--repository", "pushed"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let json = out.json();
    let error = json["repositories"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("yet it serves 1 manifest"), "{error}");
    assert!(out.deleted("pushed").is_empty());
    assert!(registry.has_manifest("pushed", &by_digest.digest).await);
}
