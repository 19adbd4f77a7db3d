//! The `ecr` backend on what moto's ECR cannot show: pull times, `subjectManifestDigest`,
//! listings in pages, and ECR's per-item `ImageReferencedByManifestList`. The images live in
//! moto (pushed with `PutImage`, so `BatchGetImage` reads real bodies); the calls named in
//! `tests/fixtures/ecr/README.md` are answered with recorded responses shaped like the ECR API
//! reference's examples (`support/recorded_ecr.rs`).

mod support;

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use support::ecr::{Ecr, Pushed, ACCOUNT, REGISTRY};
use support::janitor::Janitor;
use support::moto::Moto;
use support::recorded_ecr::{epoch, fixture, Answer, RecordedEcr};

/// The janitor for moto's ECR, reached through the stand-in.
fn janitor(moto: &Moto, ecr: &RecordedEcr) -> Janitor {
    let mut janitor = Janitor::for_url(REGISTRY);
    for (k, v) in moto.env() {
        janitor = janitor.with_env(&k, &v);
    }
    janitor.with_env("AWS_ENDPOINT_URL", &ecr.url)
}

fn days_ago(n: i64) -> String {
    epoch(Utc::now() - Duration::days(n))
}

fn vars(pairs: &[(&'static str, String)]) -> BTreeMap<&'static str, String> {
    let mut v: BTreeMap<&str, String> = pairs.iter().cloned().collect();
    v.insert("registry_id", ACCOUNT.to_owned());
    v.insert("repository", "app".to_owned());
    v
}

fn sig_tag(subject: &Pushed) -> String {
    format!("{}.sig", subject.digest.replacen(':', "-", 1))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn unpulled_for_selects_by_the_last_recorded_pull_or_else_the_push() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let hot = ecr.image("app", Some("v1")).await;
    let hot_sig = ecr.signature("app", &hot).await;
    let cold = ecr.image("app", Some("v2")).await;
    let cold_sig = ecr.signature("app", &cold).await;
    let never = ecr.image("app", Some("v3")).await;
    let fresh = ecr.image("app", Some("v4")).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    stand_in.on(
        "DescribeImages",
        "",
        Answer::Recorded(fixture(
            200,
            "DescribeImages.pulled.json",
            &vars(&[
                ("hot", hot.digest.clone()),
                ("hot_sig", hot_sig.digest.clone()),
                ("hot_sig_tag", sig_tag(&hot)),
                ("cold", cold.digest.clone()),
                ("cold_sig", cold_sig.digest.clone()),
                ("cold_sig_tag", sig_tag(&cold)),
                ("never", never.digest.clone()),
                ("fresh", fresh.digest.clone()),
                ("long_ago", days_ago(200)),
                ("recently", days_ago(10)),
            ]),
        )),
    );
    let policy =
        r#"{"rules":[{"name":"cold","select":"tagged","tags":"v.*","unpulled_for":"90d"}]}"#;
    let plan = janitor(&moto, &stand_in).plan(policy, &[]).await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    // Pulled 200 days ago, and never pulled since a push 200 days ago: both cold. The
    // signature goes with its image.
    assert_eq!(
        sorted(plan.deleted("app")),
        sorted(vec![cold.digest, cold_sig.digest, never.digest]),
        "{}",
        plan.stdout
    );
    for kept in [&hot, &fresh, &hot_sig] {
        assert!(
            plan.kept_reason("app", &kept.digest).is_some(),
            "{} has no keep entry:\n{}",
            kept.digest,
            plan.stdout
        );
    }
    let hot_reason = plan.kept_reason("app", &hot.digest).unwrap();
    assert!(hot_reason.contains("pulled"), "{hot_reason}");
}

#[tokio::test]
async fn a_listing_in_pages_is_read_to_the_last_page() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let tagged = ecr.image("app", Some("v1")).await;
    let first = ecr.image("app", None).await;
    let second = ecr.image("app", None).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    let pages = vars(&[
        ("tagged", tagged.digest.clone()),
        ("first_untagged", first.digest.clone()),
        ("second_untagged", second.digest.clone()),
        ("pushed", days_ago(30)),
        ("next_token", "page-2-of-app".to_owned()),
    ]);
    stand_in.on(
        "DescribeImages",
        "page-2-of-app",
        Answer::Recorded(fixture(200, "DescribeImages.page2.json", &pages)),
    );
    stand_in.on(
        "DescribeImages",
        "",
        Answer::Recorded(fixture(200, "DescribeImages.page1.json", &pages)),
    );
    let policy = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;
    let plan = janitor(&moto, &stand_in).plan(policy, &[]).await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert_eq!(
        sorted(plan.deleted("app")),
        sorted(vec![first.digest, second.digest]),
        "{}",
        plan.stdout
    );
    let listings = stand_in.calls("DescribeImages");
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert_eq!(listings[1]["nextToken"], "page-2-of-app", "{listings:?}");
}

#[tokio::test]
async fn a_listing_page_that_fails_leaves_the_repository_unswept() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let tagged = ecr.image("app", Some("v1")).await;
    let first = ecr.image("app", None).await;
    let second = ecr.image("app", None).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    let pages = vars(&[
        ("tagged", tagged.digest.clone()),
        ("first_untagged", first.digest.clone()),
        ("pushed", days_ago(30)),
        ("next_token", "page-2-of-app".to_owned()),
    ]);
    // The second page fails every time it is asked for (the SDK retries it).
    stand_in.on(
        "DescribeImages",
        "page-2-of-app",
        Answer::Recorded(fixture(500, "Error.ServerException.json", &pages)),
    );
    stand_in.on(
        "DescribeImages",
        "",
        Answer::Recorded(fixture(200, "DescribeImages.page1.json", &pages)),
    );
    let policy = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;
    let done = janitor(&moto, &stand_in).apply(policy, &[]).await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.json()["summary"]["repositories_incomplete"], 1);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("ServerException"), "{error}");
    assert!(ecr.has("app", &first.digest).await);
    assert!(ecr.has("app", &second.digest).await);
    assert!(stand_in.calls("BatchDeleteImage").is_empty());
}

#[tokio::test]
async fn a_refused_index_delete_keeps_its_children_while_the_rest_of_its_batch_goes() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let amd = ecr.image("app", None).await;
    let arm = ecr.image("app", None).await;
    let index = ecr.index("app", &[&amd, &arm], None).await;
    let leftover = ecr.image("app", None).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    // Between our listing and our delete, someone pushed a tagged index that holds this one:
    // ECR refuses that one item and deletes the rest of the call.
    stand_in.on(
        "BatchDeleteImage",
        "",
        Answer::Refusing(fixture(
            200,
            "BatchDeleteImage.ImageReferencedByManifestList.json",
            &vars(&[
                ("digest", index.digest.clone()),
                ("parent", format!("sha256:{:064x}", 7)),
            ]),
        )),
    );
    let policy = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;
    let later = (Utc::now() + Duration::days(60)).to_rfc3339();
    let done = janitor(&moto, &stand_in)
        .apply(policy, &["--now", &later])
        .await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    let entries = done.entries("app", "delete");
    let error_of = |digest: &str| {
        entries
            .iter()
            .find(|e| e["digest"] == digest)
            .map(|e| e["error"].clone())
            .unwrap_or_else(|| panic!("{digest} has no delete entry:\n{}", done.stdout))
    };
    assert!(error_of(&leftover.digest).is_null(), "{}", done.stdout);
    let refused = error_of(&index.digest).to_string();
    assert!(
        refused.contains("ImageReferencedByManifestList"),
        "{refused}"
    );
    for child in [&amd, &arm] {
        let held = error_of(&child.digest).to_string();
        assert!(held.contains("its parent"), "{held}");
    }
    assert!(!ecr.has("app", &leftover.digest).await);
    for stays in [&index, &amd, &arm] {
        assert!(ecr.has("app", &stays.digest).await, "{} went", stays.digest);
    }
    // The children of the refused index were never asked for.
    let asked: Vec<String> = stand_in
        .calls("BatchDeleteImage")
        .iter()
        .flat_map(|c| c["imageIds"].as_array().cloned().unwrap_or_default())
        .filter_map(|id| id["imageDigest"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        sorted(asked),
        sorted(vec![index.digest.clone(), leftover.digest.clone()])
    );
}

#[tokio::test]
async fn a_listing_that_names_another_subject_than_the_manifest_is_not_trusted() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let image = ecr.image("app", Some("v1")).await;
    let other = ecr.image("app", Some("old")).await;
    let signature = ecr.signature("app", &image).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    stand_in.on(
        "DescribeImages",
        "",
        Answer::Recorded(fixture(
            200,
            "DescribeImages.subject.json",
            &vars(&[
                ("image", image.digest.clone()),
                ("other", other.digest.clone()),
                ("signature", signature.digest.clone()),
                ("signature_tag", sig_tag(&image)),
                ("pushed", days_ago(30)),
            ]),
        )),
    );
    let policy = r#"{"rules":[{"name":"old","select":"tagged","tags":"old","older_than":"1d"}]}"#;
    let done = janitor(&moto, &stand_in).apply(policy, &[]).await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.json()["summary"]["repositories_incomplete"], 1);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("as the subject of"), "{error}");
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert!(stand_in.calls("BatchDeleteImage").is_empty());
    assert!(ecr.has("app", &other.digest).await);
}

#[tokio::test]
async fn a_listing_whose_next_page_token_repeats_is_an_error_not_a_loop() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let tagged = ecr.image("app", Some("v1")).await;
    let first = ecr.image("app", None).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    // Every page names the same next page.
    stand_in.on(
        "DescribeImages",
        "",
        Answer::Recorded(fixture(
            200,
            "DescribeImages.page1.json",
            &vars(&[
                ("tagged", tagged.digest.clone()),
                ("first_untagged", first.digest.clone()),
                ("pushed", days_ago(30)),
                ("next_token", "page-2-of-app".to_owned()),
            ]),
        )),
    );
    let policy = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;
    let done = janitor(&moto, &stand_in).apply(policy, &[]).await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.json()["summary"]["repositories_incomplete"], 1);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("token repeats"), "{error}");
    assert_eq!(stand_in.calls("DescribeImages").len(), 2);
    assert!(ecr.has("app", &first.digest).await);
}

#[tokio::test]
async fn a_repository_with_archived_images_is_not_swept() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let child = ecr.image("app", None).await;
    let index = ecr.index("app", &[&child], Some("v0")).await;
    let leftover = ecr.image("app", None).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    // ECR lists archived images only when asked for every status; the index is archived, so
    // its child would look like a leftover if the index were not listed.
    stand_in.on(
        "DescribeImages",
        "",
        Answer::Recorded(fixture(
            200,
            "DescribeImages.archived.json",
            &vars(&[
                ("index", index.digest.clone()),
                ("child", child.digest.clone()),
                ("leftover", leftover.digest.clone()),
                ("pushed", days_ago(30)),
                ("archived", days_ago(10)),
            ]),
        )),
    );
    let policy = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;
    let done = janitor(&moto, &stand_in).apply(policy, &[]).await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.json()["summary"]["repositories_incomplete"], 1);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(
        error.contains("not ACTIVE") && error.contains("ARCHIVED"),
        "{error}"
    );
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert!(stand_in.calls("BatchDeleteImage").is_empty());
    let asked = stand_in.calls("DescribeImages");
    assert!(
        asked
            .iter()
            .all(|body| body["filter"]["imageStatus"] == "ANY"),
        "{asked:?}"
    );
    assert!(ecr.has("app", &child.digest).await && ecr.has("app", &leftover.digest).await);
}

#[tokio::test]
async fn a_listing_whose_subject_is_no_digest_is_not_trusted() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let image = ecr.image("app", Some("v1")).await;
    let other = ecr.image("app", Some("old")).await;
    let signature = ecr.signature("app", &image).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    stand_in.on(
        "DescribeImages",
        "",
        Answer::Recorded(fixture(
            200,
            "DescribeImages.bad-subject.json",
            &vars(&[
                ("image", image.digest.clone()),
                ("other", other.digest.clone()),
                ("signature", signature.digest.clone()),
                ("signature_tag", sig_tag(&image)),
                ("bad_subject", "sha256:not-hex".to_owned()),
                ("pushed", days_ago(30)),
            ]),
        )),
    );
    let policy = r#"{"rules":[{"name":"old","select":"tagged","tags":"old","older_than":"1d"}]}"#;
    let done = janitor(&moto, &stand_in).apply(policy, &[]).await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    let error = done.json()["repositories"][0]["error"].to_string();
    assert!(error.contains("subjectManifestDigest"), "{error}");
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert!(stand_in.calls("BatchDeleteImage").is_empty());
}

#[tokio::test]
async fn a_delete_answered_neither_way_that_the_listing_still_shows_has_failed() {
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    let child = ecr.image("app", None).await;
    let index = ecr.index("app", &[&child], None).await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    // ECR names each item in `imageIds` or `failures`; this answer names neither, and deletes
    // nothing: the next listing (moto's) still shows the index.
    stand_in.on(
        "BatchDeleteImage",
        "",
        Answer::Recorded(fixture(
            200,
            "BatchDeleteImage.unanswered.json",
            &BTreeMap::new(),
        )),
    );
    let policy = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;
    let later = (Utc::now() + Duration::days(2)).to_rfc3339();
    let done = janitor(&moto, &stand_in)
        .apply(policy, &["--now", &later])
        .await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(done.json()["summary"]["manifests_deleted"], 0);
    let error_of = |digest: &str| {
        done.entries("app", "delete")
            .iter()
            .find(|e| e["digest"] == digest)
            .and_then(|e| e["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let index_error = error_of(&index.digest);
    assert!(
        index_error.contains("the listing still has it"),
        "{index_error}"
    );
    let child_error = error_of(&child.digest);
    assert!(
        child_error.contains("could not be deleted"),
        "{child_error}"
    );
    // The index went first, alone; its child was never asked for.
    let asked = stand_in.calls("BatchDeleteImage");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(!asked[0].to_string().contains(&child.digest), "{asked:?}");
    assert!(ecr.has("app", &index.digest).await && ecr.has("app", &child.digest).await);
}
