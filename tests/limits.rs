//! The cap on one run (issue 23, part 1), end to end through the CLI on a real
//! `docker-registry`: a repository whose plan deletes more than the policy's `limits` (or
//! `--max-delete`) allow deletes and untags nothing, says why with the numbers, and the run
//! exits 1; `--allow-over-limit` goes ahead for that one run only.

mod support;

use support::janitor::{Janitor, Outcome};
use support::{Image, TestRegistry};

/// Every `pr-*` build goes at once; at most half of a repository per run.
const HALF: &str = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}],
    "limits":{"max_delete_fraction":0.5}}"#;

/// `app` with `v1` and `n` PR builds (from `pr-<first>`); the builds' digests.
async fn seed(registry: &TestRegistry, first: usize, n: usize) -> Vec<String> {
    let mut builds = Vec::new();
    for i in first..first + n {
        let build = Image::oci("app")
            .layers(&[format!("build {i}").as_bytes()])
            .tag(&format!("pr-{i}"))
            .push(registry)
            .await;
        builds.push(build.digest);
    }
    builds
}

/// `command` (`plan`, `apply --yes`) with `policy` and no state, then `extra`, whatever its
/// exit code (the table, and bad input, which the JSON helpers do not take).
async fn raw(janitor: &Janitor, command: &[&str], policy: &str, extra: &[&str]) -> Outcome {
    let policy = janitor.policy(policy);
    let mut args = command.to_vec();
    args.extend(["--policy", policy.to_str().unwrap(), "--no-state"]);
    args.extend_from_slice(extra);
    janitor.op(&args[..1], &args[1..]).await
}

fn held(out: &Outcome) -> String {
    out.json()["repositories"][0]["held"]
        .as_str()
        .unwrap_or_else(|| panic!("not held:\n{}", out.stdout))
        .to_owned()
}

#[tokio::test]
async fn an_over_limit_plan_deletes_and_untags_nothing_and_says_why() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let builds = seed(&registry, 1, 12).await;
    let janitor = Janitor::new(&registry);
    let done = janitor.apply(HALF, &["--no-state"]).await;
    assert_eq!(done.code, 1, "held is not success: {}", done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert!(done.entries("app", "untag").is_empty(), "{}", done.stdout);
    let why = held(&done);
    assert!(
        why.starts_with("held: plan deletes 92% of app (12 of 13 manifests); limit 50%"),
        "{why}"
    );
    assert_eq!(done.json()["summary"]["repositories_held"], 1);
    assert_eq!(done.json()["repositories"][0]["complete"], true);
    for (i, d) in builds.iter().enumerate() {
        assert!(registry.has_manifest("app", d).await);
        let tag = format!("pr-{}", i + 1);
        assert_eq!(
            registry.head_digest("app", &tag).await.as_deref(),
            Some(d.as_str())
        );
    }
    // The table says it too, on the repository's line and in the total.
    let table = raw(&janitor, &["plan"], HALF, &[]).await;
    assert_eq!(table.code, 1, "{}", table.stderr);
    assert!(
        table
            .stdout
            .contains("app  (0 to delete, 0 to untag, 13 kept, HELD)"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("1 held by limits"),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn allow_over_limit_goes_ahead_once_and_the_next_run_is_held_again() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let first = seed(&registry, 1, 12).await;
    let janitor = Janitor::new(&registry);
    let done = janitor
        .apply(HALF, &["--no-state", "--allow-over-limit"])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let mut deleted = done.deleted("app");
    deleted.sort();
    let mut expected = first.clone();
    expected.sort();
    assert_eq!(deleted, expected);
    for d in &first {
        assert!(!registry.has_manifest("app", d).await);
    }
    // The override was for that run: the next batch is held again.
    let second = seed(&registry, 13, 12).await;
    let again = janitor.apply(HALF, &["--no-state"]).await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.deleted("app").is_empty(), "{}", again.stdout);
    assert!(held(&again).contains("(12 of 13 manifests)"));
    for d in &second {
        assert!(registry.has_manifest("app", d).await);
    }
}

#[tokio::test]
async fn max_delete_takes_a_count_or_a_share_and_refuses_anything_else() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let builds = seed(&registry, 1, 6).await;
    let janitor = Janitor::new(&registry);
    const PR: &str =
        r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}]}"#;
    // Without limits the CLI deletes all six; a count of 5 holds them.
    let count = janitor
        .apply(PR, &["--no-state", "--max-delete", "5"])
        .await;
    assert_eq!(count.code, 1, "{}", count.stderr);
    assert!(held(&count).contains("plan deletes 6 of app (7 manifests); limit 5"));
    // A share is a fraction of the repository, past min_held (10) deletions only: six go.
    let share = janitor
        .plan(PR, &["--no-state", "--max-delete", "50%"])
        .await;
    assert_eq!(share.code, 0, "{}", share.stderr);
    assert_eq!(share.deleted("app").len(), 6);
    for bad in ["0", "-3", "150%", "0%", "half", "5.5"] {
        let flag = format!("--max-delete={bad}");
        let out = raw(&janitor, &["apply", "--yes"], PR, &[&flag]).await;
        assert_eq!(out.code, 2, "--max-delete {bad}: {}", out.stderr);
        assert!(out.stderr.contains("--max-delete"), "{}", out.stderr);
    }
    for d in &builds {
        assert!(
            registry.has_manifest("app", d).await,
            "bad input changed nothing"
        );
    }
    // A policy's limit out of range is refused the same way.
    let bad = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"}],"limits":{"max_delete_fraction":1.5}}"#;
    let out = raw(&janitor, &["plan"], bad, &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("limits.max_delete_fraction: 1.5"),
        "{}",
        out.stderr
    );
}
