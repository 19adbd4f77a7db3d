//! In-use protection from a list (`--in-use FILE`, `protect.in_use`), end to end through the
//! CLI on a real `docker-registry`: what a list names stays with everything it reaches, a
//! list that cannot be read deletes nothing, and other registries' references change nothing.

mod support;

use support::janitor::Janitor;
use support::{Image, TestRegistry};

const PR_BUILDS: &str = r#"{"rules":[
    {"name":"dangling","select":"untagged","older_than":"0s"},
    {"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}]}"#;

fn reason(out: &support::janitor::Outcome, digest: &str) -> String {
    out.kept_reason("app", digest)
        .unwrap_or_else(|| panic!("{digest} is not kept:\n{}", out.stdout))
}

#[tokio::test]
async fn the_digest_a_service_resolved_stays_after_its_tag_moved() {
    let registry = TestRegistry::start().await;
    let deployed = Image::oci("app").tag("prod").push(&registry).await;
    let janitor = Janitor::new(&registry);
    // The inventory sees `prod` on the deployed digest; then `prod` moves on.
    let seen = janitor.plan(PR_BUILDS, &[]).await;
    assert_eq!(seen.code, 0, "{}", seen.stderr);
    let newer = Image::oci("app")
        .layers(&[b"the next release"])
        .tag("prod")
        .push(&registry)
        .await;
    let list = janitor.dir_file(
        "in-use.txt",
        &format!(
            "# what ECS resolved at deploy time\n{}/app@{}  # checkout, revision 12\n",
            registry.host(),
            deployed.digest
        ),
    );
    let done = janitor
        .apply(PR_BUILDS, &["--in-use", list.to_str().unwrap()])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    let why = reason(&done, &deployed.digest);
    assert!(
        why.starts_with(&format!("in use: file {}", list.display())),
        "{why}"
    );
    assert!(registry.has_manifest("app", &deployed.digest).await);
    assert!(registry.has_manifest("app", &newer.digest).await);
}

#[tokio::test]
async fn a_multi_arch_index_in_use_keeps_its_tag_children_and_signature() {
    let registry = TestRegistry::start().await;
    let (amd, arm, index) = registry.multi_arch("app", None, &["pr-7"]).await;
    let signature = registry.cosign_signature(&index).await;
    let janitor = Janitor::new(&registry);
    let list = janitor.dir_file("in-use.json", r#"["app:pr-7"]"#);
    let done = janitor
        .apply(
            PR_BUILDS,
            &["--no-state", "--in-use", list.to_str().unwrap()],
        )
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert!(done.entries("app", "untag").is_empty(), "{}", done.stdout);
    assert!(reason(&done, &index.digest).contains("names app:pr-7"));
    for kept in [&amd, &arm, &signature] {
        assert!(registry.has_manifest("app", &kept.digest).await);
    }
    assert_eq!(
        registry.head_digest("app", "pr-7").await.as_deref(),
        Some(index.digest.as_str())
    );
}

#[tokio::test]
async fn a_list_that_cannot_be_read_deletes_nothing_and_fails_the_run() {
    let registry = TestRegistry::start().await;
    let build = Image::oci("app").tag("pr-1").push(&registry).await;
    let janitor = Janitor::new(&registry);
    let missing = janitor.dir.path().join("not-exported-yet.txt");
    let done = janitor
        .apply(
            PR_BUILDS,
            &["--no-state", "--in-use", missing.to_str().unwrap()],
        )
        .await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(
        error.contains("not-exported-yet.txt: cannot be read"),
        "{error}"
    );
    let provider = &done.json()["in_use"]["providers"][0];
    assert!(
        provider["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be read")),
        "{provider}"
    );
    assert!(registry.has_manifest("app", &build.digest).await);
    // A list with an entry that is no image reference fails the same way.
    let broken = janitor.dir_file("broken.txt", "app:pr-1\nNot A Reference\n");
    let done = janitor
        .apply(
            PR_BUILDS,
            &["--no-state", "--in-use", broken.to_str().unwrap()],
        )
        .await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert!(registry.has_manifest("app", &build.digest).await);
}

#[tokio::test]
async fn a_reference_to_another_registry_changes_nothing_here() {
    let registry = TestRegistry::start().await;
    let build = Image::oci("app").tag("pr-1").push(&registry).await;
    let janitor = Janitor::new(&registry);
    let list = janitor.dir_file(
        "in-use.txt",
        &format!(
            "elsewhere.example/app@{}\nelsewhere.example/app:pr-1\n",
            build.digest
        ),
    );
    let done = janitor
        .apply(
            PR_BUILDS,
            &["--no-state", "--in-use", list.to_str().unwrap()],
        )
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.deleted("app"), vec![build.digest.clone()]);
    assert!(!registry.has_manifest("app", &build.digest).await);
    let in_use = &done.json()["in_use"];
    assert_eq!(in_use["other_registries"], 2, "{in_use}");
    assert_eq!(in_use["providers"][0]["references"], 2, "{in_use}");
    assert!(in_use["providers"][0]["error"].is_null(), "{in_use}");
}

#[tokio::test]
async fn image_delete_refuses_an_image_in_use_unless_forced() {
    let registry = TestRegistry::start().await;
    let image = Image::oci("app").tag("v1").push(&registry).await;
    let janitor = Janitor::new(&registry);
    let list = janitor.dir_file("in-use.txt", &format!("app@{}\n", image.digest));
    let list = list.to_str().unwrap();
    let refused = janitor
        .op(&["image", "delete"], &["app:v1", "--yes", "--in-use", list])
        .await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("Refusing to delete")
            && refused.stderr.contains(&format!("in use: file {list}")),
        "{}",
        refused.stderr
    );
    assert!(registry.has_manifest("app", &image.digest).await);
    let forced = janitor
        .op(
            &["image", "delete"],
            &["app:v1", "--yes", "--force", "--in-use", list],
        )
        .await;
    assert_eq!(forced.code, 0, "{}\n{}", forced.stdout, forced.stderr);
    assert!(!registry.has_manifest("app", &image.digest).await);
}

#[tokio::test]
async fn manifest_delete_older_than_keeps_what_is_in_use() {
    let registry = TestRegistry::start().await;
    let old = Image::oci("app")
        .created("2020-01-01T00:00:00Z")
        .tag("a")
        .push(&registry)
        .await;
    let running = Image::oci("app")
        .created("2020-01-02T00:00:00Z")
        .tag("b")
        .push(&registry)
        .await;
    let janitor = Janitor::new(&registry);
    let list = janitor.dir_file("in-use.txt", "app:b\n");
    let done = janitor
        .op(
            &["manifest", "delete"],
            &[
                "--repository",
                "app",
                "--older-than",
                "2025-06-01",
                "--yes",
                "--in-use",
                list.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(!registry.has_manifest("app", &old.digest).await);
    assert!(registry.has_manifest("app", &running.digest).await);
    assert_eq!(
        registry.head_digest("app", "b").await.as_deref(),
        Some(running.digest.as_str())
    );
}

#[tokio::test]
async fn an_s3_list_protects_what_it_names_and_a_missing_object_deletes_nothing() {
    let registry = TestRegistry::start().await;
    let running = Image::oci("app").tag("pr-1").push(&registry).await;
    let done_with = Image::oci("app")
        .layers(&[b"another build"])
        .tag("pr-2")
        .push(&registry)
        .await;
    let moto = support::moto::Moto::start().await;
    moto.put_object("exports", "in-use/pods.txt", "docker-pullable://app:pr-1\n")
        .await;
    let mut janitor = Janitor::new(&registry);
    for (k, v) in moto.env() {
        janitor = janitor.with_env(&k, &v);
    }
    let policy = |key: &str| {
        format!(
            r#"{{"rules":[{{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}}],
                "protect":{{"in_use":[{{"s3":"s3://exports/{key}"}}]}}}}"#
        )
    };
    let missing = janitor
        .apply(&policy("in-use/nodes.txt"), &["--no-state"])
        .await;
    assert_eq!(missing.code, 1, "{}\n{}", missing.stdout, missing.stderr);
    let error = missing.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("s3://exports/in-use/nodes.txt"), "{error}");
    assert!(registry.has_manifest("app", &done_with.digest).await);

    let done = janitor
        .apply(&policy("in-use/pods.txt"), &["--no-state"])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.deleted("app"), vec![done_with.digest.clone()]);
    let why = done.kept_reason("app", &running.digest).unwrap();
    assert_eq!(why, "in use: s3://exports/in-use/pods.txt names app:pr-1");
    assert!(registry.has_manifest("app", &running.digest).await);
}
