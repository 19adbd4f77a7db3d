//! Two ways a sound policy used to break an image it meant to keep, replayed on a real
//! registry through the CLI: `keep` counted tags (ghcr-cleanup-action #101, gcr-cleaner #143),
//! and a reproducible build's 1970 date was taken as its age (gcr-cleaner #79).

mod support;

use chrono::{Duration, Utc};
use support::janitor::{Janitor, Outcome};
use support::{Image, TestRegistry};

const KEEP_1: &str = r#"{"rules":[{"name":"k","select":"tagged","keep":1}]}"#;
const KEEP_2: &str = r#"{"rules":[{"name":"k","select":"tagged","keep":2}]}"#;
const OLD_PR: &str =
    r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d"}]}"#;

fn days_ago(n: i64) -> String {
    (Utc::now() - Duration::days(n)).to_rfc3339()
}

/// An image of `app` built `days` ago, with `tags`.
async fn built(registry: &TestRegistry, days: i64, tags: &[&str]) -> support::Pushed {
    let mut image = Image::oci("app").created(&days_ago(days));
    for t in tags {
        image = image.tag(t);
    }
    image.push(registry).await
}

/// An image of `app` whose config and annotation both say `date`, tagged `tag`.
async fn dated(registry: &TestRegistry, date: &str, tag: &str) -> support::Pushed {
    Image::oci("app")
        .created(date)
        .annotated_created(date)
        .tag(tag)
        .push(registry)
        .await
}

fn untagged(out: &Outcome) -> Vec<String> {
    out.entries("app", "untag")
        .iter()
        .map(|u| u["tag"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn keep_1_keeps_every_tag_of_the_newest_image() {
    let registry = TestRegistry::start().await;
    let x = built(&registry, 40, &["1.2.0", "1.2"]).await;
    let y = built(&registry, 60, &["1.1.0"]).await;
    let janitor = Janitor::new(&registry);

    let plan = janitor.plan(KEEP_1, &["--no-state"]).await;
    assert!(untagged(&plan).is_empty(), "{}", plan.stdout);
    assert_eq!(plan.deleted("app"), vec![y.digest.clone()]);
    let reason = plan.kept_reason("app", &x.digest).unwrap();
    assert!(reason.contains("newest image"), "{reason}");

    let done = janitor.apply(KEEP_1, &["--no-state"]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["1.2", "1.2.0"]
    );
    assert!(!registry.has_manifest("app", &y.digest).await);
}

#[tokio::test]
async fn keep_2_keeps_the_two_newest_images_whole() {
    let registry = TestRegistry::start().await;
    let a = built(&registry, 10, &["v3", "v3.0", "stable"]).await;
    let b = built(&registry, 20, &["v2"]).await;
    let c = built(&registry, 30, &["v1"]).await;
    let janitor = Janitor::new(&registry);

    let done = janitor.apply(KEEP_2, &["--no-state"]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(untagged(&done).is_empty(), "{}", done.stdout);
    assert_eq!(done.deleted("app"), vec![c.digest.clone()]);
    assert_eq!(
        registry.assert_every_tag_pulls("app").await,
        vec!["stable", "v2", "v3", "v3.0"]
    );
    assert!(registry.has_manifest("app", &a.digest).await);
    assert!(registry.has_manifest("app", &b.digest).await);
}

/// A build dated `date` is not aged by it: kept at once (by when it was first seen, or, with
/// no inventory, as of unknown age), and deleted only once it was first seen 30 days before.
async fn a_build_dated(date: &str) {
    let registry = TestRegistry::start().await;
    let build = dated(&registry, date, "pr-42").await;
    let janitor = Janitor::new(&registry);

    let blind = janitor.plan(OLD_PR, &["--no-state"]).await;
    assert!(blind.deleted("app").is_empty(), "{}", blind.stdout);
    let reason = blind.kept_reason("app", &build.digest).unwrap();
    assert!(
        reason.contains("unknown age") && reason.contains("is not a build time"),
        "{reason}"
    );

    let first = janitor.plan(OLD_PR, &[]).await;
    assert!(first.deleted("app").is_empty(), "{}", first.stdout);
    let reason = first.kept_reason("app", &build.digest).unwrap();
    let day = &date[..10];
    assert!(
        reason.contains("first seen")
            && reason.contains(&format!("the image's date {day} is not a build time"))
            && reason.contains("waits 30d"),
        "{reason}"
    );

    // 29 days on it still waits; 31 days on it goes, with the reason saying why.
    let soon = (Utc::now() + Duration::days(29)).to_rfc3339();
    let later = janitor.plan(OLD_PR, &["--now", &soon]).await;
    assert!(later.deleted("app").is_empty(), "{}", later.stdout);
    let month = (Utc::now() + Duration::days(31)).to_rfc3339();
    let due = janitor.apply(OLD_PR, &["--now", &month]).await;
    assert_eq!(
        due.deleted("app"),
        vec![build.digest.clone()],
        "{}",
        due.stdout
    );
    let entry = &due.entries("app", "delete")[0];
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains("is 31d old (first seen 31d ago;"),
        "{reason}"
    );
    assert!(!registry.has_manifest("app", &build.digest).await);
}

#[tokio::test]
async fn a_1970_build_is_not_56_years_old() {
    a_build_dated("1970-01-01T00:00:00Z").await;
}

#[tokio::test]
async fn a_1980_buildpacks_build_is_not_46_years_old() {
    a_build_dated("1980-01-01T00:00:00Z").await;
}

#[tokio::test]
async fn a_build_dated_next_year_ages_from_when_it_was_first_seen() {
    let next_year = (Utc::now() + Duration::days(365)).format("%Y-%m-%dT00:00:00Z");
    a_build_dated(&next_year.to_string()).await;
}
