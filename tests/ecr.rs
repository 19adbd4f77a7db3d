//! The `ecr` backend against moto's ECR through the real AWS SDK, end to end through the CLI:
//! the multi-arch and signature hazards that ECR's own lifecycle rules get wrong
//! (containers-roadmap #1466, #2613), `keep`, untagged grace periods, the last-tag untag that
//! ECR cannot do, and deletes in batches. moto's traps are listed in `support/ecr.rs`.

mod support;

use chrono::{Duration, Utc};
use support::ecr::{Ecr, REGISTRY};
use support::janitor::{Janitor, Outcome};
use support::moto::Moto;

/// The janitor for moto's ECR: the registry URL names the account and region, and the AWS
/// chain (the environment here) gives credentials and the endpoint.
fn janitor(moto: &Moto) -> Janitor {
    let mut janitor = Janitor::for_url(REGISTRY);
    for (k, v) in moto.env() {
        janitor = janitor.with_env(&k, &v);
    }
    janitor
}

fn days_on(n: i64) -> String {
    (Utc::now() + Duration::days(n)).to_rfc3339()
}

fn deleted(out: &Outcome, repository: &str) -> Vec<String> {
    let mut d = out.deleted(repository);
    d.sort();
    d
}

const POLICY: &str = r#"{"rules":[
    {"name":"dangling","select":"untagged","older_than":"1d"},
    {"name":"pr","select":"tagged","tags":"pr-.*","older_than":"30d"}]}"#;

#[tokio::test]
async fn a_sweep_deletes_old_builds_with_their_signatures_and_keeps_a_tagged_index_whole() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let amd = ecr.image("app", None).await;
    let arm = ecr.image("app", None).await;
    let index = ecr.index("app", &[&amd, &arm], Some("latest")).await;
    let index_sig = ecr.signature("app", &index).await;
    let build = ecr.image("app", Some("pr-1")).await;
    let build_sig = ecr.signature("app", &build).await;
    let leftover = ecr.image("app", None).await;
    let janitor = janitor(&moto);

    let later = days_on(60);
    let plan = janitor.plan(POLICY, &["--now", &later]).await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let mut expected = vec![
        build.digest.clone(),
        build_sig.digest.clone(),
        leftover.digest.clone(),
    ];
    expected.sort();
    assert_eq!(deleted(&plan, "app"), expected, "{}", plan.stdout);
    // The platform images are untagged, and stay: children of a kept index (#1466).
    for child in [&amd, &arm] {
        let reason = plan.kept_reason("app", &child.digest).unwrap();
        assert!(reason.starts_with("child of"), "{reason}");
    }

    let done = janitor.apply(POLICY, &["--now", &later]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(deleted(&done, "app"), expected);
    let mut left: Vec<String> = ecr
        .picture("app")
        .await
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    left.sort();
    let mut want = vec![
        amd.digest.clone(),
        arm.digest.clone(),
        index.digest.clone(),
        index_sig.digest.clone(),
    ];
    want.sort();
    // moto would have let us delete a child of the index: that we did not is the point.
    assert_eq!(left, want);
}

#[tokio::test]
async fn keep_counts_images_on_ecr_too() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let mut builds = Vec::new();
    for n in 1..=3 {
        builds.push(ecr.image("app", Some(&format!("pr-{n}"))).await);
        // moto's push times are whole seconds.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let policy = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","keep":2}]}"#;
    let done = janitor(&moto).apply(policy, &["--no-state"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(deleted(&done, "app"), vec![builds[0].digest.clone()]);
    assert!(ecr.has("app", &builds[1].digest).await && ecr.has("app", &builds[2].digest).await);
}

#[tokio::test]
async fn an_untagged_image_waits_out_its_grace_period_from_its_push() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    ecr.image("app", Some("v1")).await;
    let leftover = ecr.image("app", None).await;
    let janitor = janitor(&moto);

    let now = janitor.plan(POLICY, &[]).await;
    assert!(now.deleted("app").is_empty(), "{}", now.stdout);
    let reason = now.kept_reason("app", &leftover.digest).unwrap();
    assert!(reason.contains("waits 1d"), "{reason}");
    let due = janitor.plan(POLICY, &["--now", &days_on(2)]).await;
    assert_eq!(due.deleted("app"), vec![leftover.digest.clone()]);
}

#[tokio::test]
async fn an_untag_that_would_take_a_kept_images_last_tag_is_never_sent() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let pinned = ecr.image("app", Some("pr-1")).await;
    let shared = ecr.image("app", Some("pr-2")).await;
    ecr.client
        .put_image()
        .repository_name("app")
        .image_manifest(shared.body.clone())
        .image_manifest_media_type(&shared.media_type)
        .image_digest(&shared.digest)
        .image_tag("stable")
        .send()
        .await
        .expect("second tag");
    let policy = format!(
        r#"{{"rules":[{{"name":"pr","select":"tagged","tags":"pr-.*"}}],"protect":{{"digests":["{}"]}}}}"#,
        pinned.digest
    );
    let done = janitor(&moto).apply(&policy, &["--no-state"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    // pr-2 goes (stable stays on its image); pr-1 would take the pinned image with it.
    let untagged: Vec<String> = done
        .entries("app", "untag")
        .iter()
        .map(|u| u["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(untagged, vec!["pr-2"], "{}", done.stdout);
    let reason = done.kept_reason("app", &pinned.digest).unwrap();
    assert!(
        reason.contains("removing a manifest's last tag deletes"),
        "{reason}"
    );
    let picture = ecr.picture("app").await;
    assert!(
        picture.contains(&(pinned.digest.clone(), vec!["pr-1".to_owned()])),
        "{picture:?}"
    );
    assert!(
        picture.contains(&(shared.digest.clone(), vec!["stable".to_owned()])),
        "{picture:?}"
    );
}

#[tokio::test]
async fn deletes_go_out_in_batches_of_a_hundred() {
    use registry_janitor::registry::{Backend, ClientOptions, EcrClient};
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let mut digests = Vec::new();
    for _ in 0..150 {
        digests.push(ecr.image("app", None).await.digest.parse().unwrap());
    }
    let client = EcrClient::new(REGISTRY, &ClientOptions::default())
        .unwrap()
        .using(&moto.sdk().await);
    let results = client.delete_manifests("app", digests.clone(), 8).await;
    assert_eq!(results.len(), 150);
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    assert_eq!(failed, 0, "{failed} of 150 deletes failed");
    // Two BatchDeleteImage calls, then one listing: moto names untagged deletes neither way.
    assert_eq!(client.request_count(), 3);
    assert!(ecr.picture("app").await.is_empty());
}

/// An ECR user's lifecycle policy: keep the newest release, expire untagged images after a day.
const LIFECYCLE: &str = r#"{"rules":[
    {"rulePriority":1,"description":"keep the newest release",
     "selection":{"tagStatus":"tagged","tagPrefixList":["release-"],
                  "countType":"imageCountMoreThan","countNumber":1},
     "action":{"type":"expire"}},
    {"rulePriority":2,"description":"untagged after a day",
     "selection":{"tagStatus":"untagged","countType":"sinceImagePushed",
                  "countUnit":"days","countNumber":1},
     "action":{"type":"expire"}}]}"#;

#[tokio::test]
async fn a_translated_lifecycle_policy_keeps_what_ecr_would_have_expired_and_says_why() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let old_release = ecr.image("app", Some("release-1")).await;
    // moto's push times are whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let amd = ecr.image("app", None).await;
    let arm = ecr.image("app", None).await;
    let release = ecr.index("app", &[&amd, &arm], Some("release-2")).await;
    let signature = ecr.untagged_signature("app", &release).await;
    let leftover = ecr.image("app", None).await;
    let janitor = janitor(&moto);

    let lifecycle = janitor.dir_file("lifecycle.json", LIFECYCLE);
    let translated = janitor
        .run(&["policy", "from-ecr", lifecycle.to_str().unwrap()])
        .await;
    assert_eq!(translated.code, 0, "{}", translated.stderr);
    let policy = translated.json();
    assert_eq!(
        policy["rules"][0],
        serde_json::json!({"name":"ecr-1","select":"tagged","tags":"release\\-.*","keep":1})
    );

    let plan = janitor
        .plan(&translated.stdout, &["--no-state", "--now", &days_on(2)])
        .await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let mut expected = vec![old_release.digest.clone(), leftover.digest.clone()];
    expected.sort();
    assert_eq!(deleted(&plan, "app"), expected, "{}", plan.stdout);
    // ECR's own rule 2 would expire these three: untagged and a day old (#1466).
    for child in [&amd, &arm] {
        let reason = plan.kept_reason("app", &child.digest).unwrap();
        assert!(reason.starts_with("child of"), "{reason}");
    }
    let reason = plan.kept_reason("app", &signature.digest).unwrap();
    assert!(reason.contains("referrer of"), "{reason}");
}

#[tokio::test]
async fn a_lifecycle_rule_with_no_counterpart_is_refused_by_name() {
    let janitor = Janitor::for_url(REGISTRY);
    let lifecycle = janitor.dir_file(
        "lifecycle.json",
        r#"{"rules":[{"rulePriority":7,"description":"archive cold images",
            "selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90},
            "action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
    );
    let out = janitor
        .run(&["policy", "from-ecr", lifecycle.to_str().unwrap()])
        .await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("rule with rulePriority 7 (\"archive cold images\"): a `transition` action"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_plan_with_a_trash_deletes_nothing_on_ecr_and_says_why() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let old = ecr.image("app", Some("pr-1")).await;
    let policy = r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*"}],
        "trash":{"keep_for":"7d"}}"#;
    let done = janitor(&moto).apply(policy, &["--no-state"]).await;
    // Removing pr-1 would delete the image on ECR: nothing can wait in a trash there.
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("nothing can wait in a trash"), "{error}");
    assert!(ecr.has("app", &old.digest).await);
    assert_eq!(
        ecr.picture("app").await,
        vec![(old.digest.clone(), vec!["pr-1".to_owned()])]
    );
}
