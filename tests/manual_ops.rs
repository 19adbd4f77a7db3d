//! The manual operations of the ACR guide, end to end: the real binary against a real
//! registry. Each test names what the operation must do, and checks the registry afterwards,
//! not only what the command printed.

mod support;

use serde_json::Value;
use support::janitor::Janitor;
use support::{Image, TestRegistry};

const OLD: &str = "2025-01-01T00:00:00Z";
const RECENT: &str = "2026-11-20T00:00:00Z";

/// A linux/amd64 and a linux/arm64 image of `app`, and an index of both tagged `tag`.
async fn multi_arch(
    registry: &TestRegistry,
    tag: &str,
) -> (support::Pushed, support::Pushed, support::Pushed) {
    registry.multi_arch("app", None, &[tag]).await
}

#[tokio::test]
async fn image_delete_by_tag_names_every_tag_that_goes_and_removes_the_manifest() {
    let registry = TestRegistry::start().await;
    let v1 = Image::oci("app").tag("v1").push(&registry).await;
    registry.tag(&v1, "latest").await;
    let v2 = Image::oci("app").tag("v2").push(&registry).await;
    let janitor = Janitor::new(&registry);

    let out = janitor.op(&["image", "delete"], &["app:v1", "--yes"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "This operation will delete the manifest '{}' and all the following images: 'app:latest', 'app:v1'.",
            v1.digest
        )),
        "{}",
        out.stdout
    );
    assert!(!registry.has_manifest("app", &v1.digest).await);
    assert!(registry.has_manifest("app", &v2.digest).await);
    assert_eq!(registry.assert_every_tag_pulls("app").await, vec!["v2"]);
}

#[tokio::test]
async fn image_delete_of_an_index_takes_its_platform_images_and_signature_but_not_shared_ones() {
    let registry = TestRegistry::start().await;
    let (amd, arm, index) = multi_arch(&registry, "1.0").await;
    let signature = registry.cosign_signature(&index).await;
    // `arm` is shared with another tagged index, which must keep working.
    let other = registry.index("app", &[&arm], &["arm-only"]).await;
    let janitor = Janitor::new(&registry);

    let out = janitor
        .op(&["image", "delete"], &["app:1.0", "--yes"])
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("With it go 2 manifests only it uses"),
        "{}",
        out.stdout
    );
    for gone in [&index.digest, &amd.digest, &signature.digest] {
        assert!(!registry.has_manifest("app", gone).await, "{gone} survived");
    }
    assert!(registry.has_manifest("app", &arm.digest).await);
    assert!(registry.has_manifest("app", &other.digest).await);
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["arm-only"]
    );
}

#[tokio::test]
async fn image_delete_refuses_a_platform_image_a_tagged_index_uses_unless_forced() {
    let registry = TestRegistry::start().await;
    let (amd, arm, _) = multi_arch(&registry, "latest").await;
    let janitor = Janitor::new(&registry);
    let reference = format!("app@{}", amd.digest);

    let refused = janitor
        .op(&["image", "delete"], &[&reference, "--yes"])
        .await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("Refusing to delete"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("latest"), "{}", refused.stderr);
    assert!(registry.has_manifest("app", &amd.digest).await);

    let forced = janitor
        .op(&["image", "delete"], &[&reference, "--yes", "--force"])
        .await;
    assert_eq!(forced.code, 0, "{}\n{}", forced.stdout, forced.stderr);
    assert!(
        forced.stdout.contains("WARNING: --force"),
        "{}",
        forced.stdout
    );
    assert!(!registry.has_manifest("app", &amd.digest).await);
    assert!(registry.has_manifest("app", &arm.digest).await);
}

#[tokio::test]
async fn image_delete_by_digest_finds_an_untagged_manifest_nothing_links_to() {
    let registry = TestRegistry::start().await;
    let loose = Image::oci("app").push(&registry).await;
    let kept = Image::oci("app").tag("v1").push(&registry).await;
    let janitor = Janitor::new(&registry);
    let reference = format!("app@{}", loose.digest);
    let out = janitor
        .op(&["image", "delete"], &[&reference, "--yes"])
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("(it has no tags)"), "{}", out.stdout);
    assert!(!registry.has_manifest("app", &loose.digest).await);
    assert!(registry.has_manifest("app", &kept.digest).await);
    let missing = format!("app@sha256:{}", "0".repeat(64));
    let out = janitor.op(&["image", "delete"], &[&missing, "--yes"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no such manifest"), "{}", out.stderr);
}

#[tokio::test]
async fn image_delete_refuses_to_leave_a_tagged_sbom_without_its_subject() {
    let registry = TestRegistry::start().await;
    let v1 = Image::oci("app").tag("v1").push(&registry).await;
    let sbom = Image::oci("app")
        .referrer_of(&v1, "application/spdx+json")
        .tag("sbom-v1")
        .push(&registry)
        .await;
    let janitor = Janitor::new(&registry);
    let out = janitor.op(&["image", "delete"], &["app:v1", "--yes"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("sbom-v1"), "{}", out.stderr);
    assert!(registry.has_manifest("app", &v1.digest).await);
    assert!(registry.has_manifest("app", &sbom.digest).await);
}

#[tokio::test]
async fn image_delete_off_a_terminal_without_yes_changes_nothing() {
    let registry = TestRegistry::start().await;
    let v1 = Image::oci("app").tag("v1").push(&registry).await;
    let janitor = Janitor::new(&registry);
    let out = janitor.op(&["image", "delete"], &["app:v1"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(registry.has_manifest("app", &v1.digest).await);
    let bad = janitor.op(&["image", "delete"], &["app", "--yes"]).await;
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("NAME:TAG or NAME@DIGEST"),
        "{}",
        bad.stderr
    );
}

#[tokio::test]
async fn tag_delete_removes_only_the_tag_and_the_manifest_stays() {
    let registry = TestRegistry::start().await;
    let v1 = Image::oci("app").tag("v1").push(&registry).await;
    registry.tag(&v1, "stable").await;
    let janitor = Janitor::new(&registry);

    let out = janitor.op(&["tag", "delete"], &["app:v1", "--yes"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("no space is freed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("still tagged 'app:stable'"),
        "{}",
        out.stdout
    );
    assert_eq!(registry.tags("app").await, vec!["stable"]);
    assert!(registry.has_manifest("app", &v1.digest).await);
    registry.assert_pulls_completely("app", "stable").await;

    // The last tag: the manifest stays, untagged.
    let out = janitor
        .op(&["tag", "delete"], &["app:stable", "--yes"])
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("The manifest stays, untagged"),
        "{}",
        out.stdout
    );
    assert!(registry.tags("app").await.is_empty());
    assert!(registry.has_manifest("app", &v1.digest).await);
}

#[tokio::test]
async fn repository_delete_removes_every_manifest_and_leaves_other_repositories_alone() {
    let registry = TestRegistry::start().await;
    let (amd, arm, index) = multi_arch(&registry, "latest").await;
    let signature = registry.cosign_signature(&index).await;
    let v1 = Image::oci("app").tag("v1").push(&registry).await;
    let other = Image::oci("other").tag("v1").push(&registry).await;
    let janitor = Janitor::new(&registry);

    let out = janitor
        .op(&["repository", "delete"], &["--repository", "app", "--yes"])
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("delete the repository 'app': 5 manifests with 3 tags"),
        "{}",
        out.stdout
    );
    for d in [
        &amd.digest,
        &arm.digest,
        &index.digest,
        &signature.digest,
        &v1.digest,
    ] {
        assert!(!registry.has_manifest("app", d).await, "{d} survived");
    }
    assert!(registry.tags("app").await.is_empty());
    assert!(registry.has_manifest("other", &other.digest).await);
}

/// `manifest list --format json`: the rows, as an array of exactly the documented keys.
async fn list(janitor: &Janitor, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--repository", "app", "--format", "json"];
    args.extend_from_slice(extra);
    let out = janitor.op(&["manifest", "list"], &args).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let rows: Value = serde_json::from_str(&out.stdout).expect("a JSON array");
    rows.as_array().expect("an array").clone()
}

/// `app:v1` built at `OLD` and `app:v2` built at `RECENT`.
async fn old_and_recent(registry: &TestRegistry) -> (support::Pushed, support::Pushed) {
    let old = Image::oci("app")
        .created(OLD)
        .tag("v1")
        .push(registry)
        .await;
    let recent = Image::oci("app")
        .created(RECENT)
        .tag("v2")
        .push(registry)
        .await;
    (old, recent)
}

/// An untagged linux/`arch` image of `app`, built at `created`.
async fn platform_image(registry: &TestRegistry, arch: &str, created: &str) -> support::Pushed {
    Image::oci("app")
        .platform("linux", arch)
        .created(created)
        .push(registry)
        .await
}

#[tokio::test]
async fn manifest_list_shows_time_size_and_tags_in_the_order_asked() {
    let registry = TestRegistry::start().await;
    let (old, recent) = old_and_recent(&registry).await;
    let amd = platform_image(&registry, "amd64", OLD).await;
    let index = registry.index("app", &[&amd], &["multi"]).await;
    let janitor = Janitor::new(&registry);

    let rows = list(&janitor, &["--orderby", "time_desc"]).await;
    let keys: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| {
            let mut k: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
            k.sort();
            k
        })
        .collect();
    assert!(keys
        .iter()
        .all(|k| k == &["digest", "media_type", "size", "tags", "timestamp"]));
    let digests: Vec<&str> = rows.iter().map(|r| r["digest"].as_str().unwrap()).collect();
    assert_eq!(digests[0], recent.digest, "newest first");
    assert_eq!(rows[0]["timestamp"], "2026-11-20T00:00:00Z");
    assert_eq!(rows[0]["tags"], serde_json::json!(["v2"]));
    assert!(rows[0]["size"].as_u64().unwrap() > recent.size() as u64);
    assert_eq!(digests.len(), 4);

    let asc = list(&janitor, &["--orderby", "time_asc"]).await;
    assert_eq!(asc.last().unwrap()["digest"], recent.digest.as_str());

    // Untagged: the platform image, which no tag points at.
    let untagged = list(&janitor, &["--untagged"]).await;
    let untagged: Vec<&str> = untagged
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    assert_eq!(untagged, vec![amd.digest.as_str()]);

    // Older than a date: the old image, its index (as old as its newest child) and the child.
    let older = list(&janitor, &["--older-than", "2025-06-01"]).await;
    let mut older: Vec<&str> = older
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    older.sort();
    let mut want = vec![
        old.digest.as_str(),
        amd.digest.as_str(),
        index.digest.as_str(),
    ];
    want.sort();
    assert_eq!(older, want);

    let table = janitor
        .op(
            &["manifest", "list"],
            &["--repository", "app", "--untagged"],
        )
        .await;
    assert!(table.stdout.contains("1 manifests"), "{}", table.stdout);
    assert!(
        table
            .stdout
            .contains(&format!("child of {}", &index.digest[7..19])),
        "{}",
        table.stdout
    );
    assert!(
        table.stderr.contains("no API that lists every manifest"),
        "{}",
        table.stderr
    );
}

#[tokio::test]
async fn manifest_delete_older_than_is_a_dry_run_and_never_breaks_a_newer_image() {
    let registry = TestRegistry::start().await;
    let (old, recent) = old_and_recent(&registry).await;
    // An old platform image inside a recent multi-arch index.
    let old_amd = platform_image(&registry, "amd64", OLD).await;
    let new_arm = platform_image(&registry, "arm64", RECENT).await;
    registry
        .index("app", &[&old_amd, &new_arm], &["multi"])
        .await;
    let janitor = Janitor::new(&registry);
    let args = ["--repository", "app", "--older-than", "2025-06-01"];

    let dry = janitor.op(&["manifest", "delete"], &args).await;
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains("Dry run: nothing was deleted"),
        "{}",
        dry.stdout
    );
    assert!(registry.has_manifest("app", &old.digest).await);

    let mut yes = args.to_vec();
    yes.push("--yes");
    let done = janitor.op(&["manifest", "delete"], &yes).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(!registry.has_manifest("app", &old.digest).await);
    assert!(registry.has_manifest("app", &recent.digest).await);
    assert!(
        registry.has_manifest("app", &old_amd.digest).await,
        "an old child of a recent index was deleted"
    );
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["multi", "v2"]
    );
}

/// A repository pushed by digest only: distribution's catalog lists it, its tag listing
/// answers NAME_UNKNOWN, and its manifest is served. No manual operation takes that as an
/// empty repository: each stops, says so, and changes nothing.
#[tokio::test]
async fn manual_operations_on_a_repository_the_registry_does_not_know_change_nothing() {
    let registry = TestRegistry::start().await;
    let by_digest = Image::oci("pushed").push(&registry).await;
    let janitor = Janitor::new(&registry);
    let reference = format!("pushed@{}", by_digest.digest);
    for (command, args) in [
        (
            vec!["repository", "delete"],
            vec!["--repository", "pushed", "--yes"],
        ),
        (vec!["image", "delete"], vec![reference.as_str(), "--yes"]),
        (
            vec!["manifest", "list"],
            vec!["--repository", "pushed", "--format", "json"],
        ),
    ] {
        let out = janitor.op(&command, &args).await;
        assert_eq!(out.code, 1, "{command:?}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("knows no such repository") && out.stderr.contains("NAME_UNKNOWN"),
            "{command:?}: {}",
            out.stderr
        );
        assert!(registry.has_manifest("pushed", &by_digest.digest).await);
    }
}
