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
