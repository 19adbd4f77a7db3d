//! The function end to end on this machine, with no AWS: `cargo lambda watch` serves it, the
//! real registry sends it push webhooks, `cargo lambda invoke` sends it a schedule, and a
//! `moto` server stands in for Secrets Manager and DynamoDB.
//!
//! The tests run one at a time: each starts its own `cargo lambda watch`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::lambda_watch::{function_env, push_notification, scheduled_event, Watch};
use support::moto::Moto;
use support::{Image, RegistryAuth, TestRegistry};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET: &str = "webhook-s3cret";
const PURGE_UNTAGGED: &str =
    r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"0s"}]}"#;

/// Wait until `check` holds, or fail with `what` and the function's log.
async fn eventually<F: std::future::Future<Output = bool>>(
    watch: &Watch,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "timed out waiting until {what}; function log:\n{}",
        watch.log()
    );
}

fn state_mentions(dir: &Path, digest: &str) -> bool {
    std::fs::read_to_string(dir.join("state.json")).is_ok_and(|s| s.contains(digest))
}

fn untagged_in_state(dir: &Path, digest: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("state.json")) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["repositories"]["app"]["manifests"][digest]["untagged_since"].is_string()
}

/// A registry whose webhooks reach the function with `header_secret`, and a function that
/// expects `SECRET`. Returns after the first image's push was recorded (or refused).
async fn webhook_setup(
    dry_run: &str,
    header_secret: &str,
) -> (Watch, TestRegistry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    // The function must know the registry's address before the registry starts, and the
    // registry the function's URL: pick the registry's port first.
    let url = format!("http://127.0.0.1:{}", support::registry::free_port());
    let env = function_env(
        &url,
        dir.path(),
        PURGE_UNTAGGED,
        &[
            ("JANITOR_DRY_RUN", dry_run),
            ("JANITOR_WEBHOOK_SECRET", SECRET),
        ],
    );
    let watch = Watch::start(&env).await;
    let auth = format!("Bearer {header_secret}");
    let registry = TestRegistry::start_notifying_on(
        &url,
        RegistryAuth::None,
        &watch.url(),
        &[("Authorization", &auth)],
    )
    .await;
    (watch, registry, dir)
}

#[tokio::test]
async fn a_push_over_a_tag_makes_the_function_delete_the_untagged_manifest() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (watch, registry, dir) = webhook_setup("false", SECRET).await;
    let first = Image::oci("app").tag("v1").push(&registry).await;
    eventually(&watch, "the first push is recorded", || async {
        state_mentions(dir.path(), &first.digest)
    })
    .await;

    let second = Image::oci("app").tag("v1").push(&registry).await;
    eventually(&watch, "the untagged manifest is deleted", || async {
        !registry.has_manifest("app", &first.digest).await
    })
    .await;
    assert!(registry.has_manifest("app", &second.digest).await);
    registry.assert_every_tag_pulls("app").await;
}

#[tokio::test]
async fn dry_run_keeps_the_untagged_manifest() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (watch, registry, dir) = webhook_setup("true", SECRET).await;
    let first = Image::oci("app").tag("v1").push(&registry).await;
    eventually(&watch, "the first push is recorded", || async {
        state_mentions(dir.path(), &first.digest)
    })
    .await;
    Image::oci("app").tag("v1").push(&registry).await;
    // The sweep ran (it started the untagged clock) and deleted nothing.
    eventually(&watch, "the sweep sees the manifest untagged", || async {
        untagged_in_state(dir.path(), &first.digest)
    })
    .await;
    assert!(registry.has_manifest("app", &first.digest).await);
}

#[tokio::test]
async fn a_wrong_secret_changes_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (watch, registry, dir) = webhook_setup("false", "not-the-secret").await;
    let first = Image::oci("app").tag("v1").push(&registry).await;
    Image::oci("app").tag("v1").push(&registry).await;
    eventually(&watch, "the function refuses the webhooks", || async {
        watch.log().matches("webhook refused").count() >= 2
    })
    .await;
    assert!(registry.has_manifest("app", &first.digest).await);
    assert!(
        !dir.path().join("state.json").exists(),
        "a refused webhook ran a sweep"
    );
}

#[tokio::test]
async fn a_scheduled_event_sweeps_the_registry() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    let doomed = Image::oci("ci/app")
        .created("2020-01-01T00:00:00Z")
        .tag("pr-1")
        .push(&registry)
        .await;
    let kept = Image::oci("ci/app")
        .created("2020-01-01T00:00:00Z")
        .tag("main")
        .push(&registry)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let policy = r#"{"rules":[{"name":"pr","repositories":"ci/.*","select":"tagged","tags":"pr-.*","older_than":"30d"}]}"#;
    let watch = Watch::start(&function_env(
        &registry.url,
        dir.path(),
        policy,
        &[("JANITOR_DRY_RUN", "false")],
    ))
    .await;
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/schedule-eventbridge-scheduler.json"
    ))
    .unwrap();
    let report = watch.invoke(&event).await;
    assert_eq!(report["dry_run"], false, "{report}");
    assert_eq!(report["summary"]["manifests_deleted"], 1, "{report}");
    assert!(!registry.has_manifest("ci/app", &doomed.digest).await);
    assert!(registry.has_manifest("ci/app", &kept.digest).await);
    registry.assert_every_tag_pulls("ci/app").await;
}

#[tokio::test]
async fn credentials_come_from_secrets_manager_and_the_inventory_from_dynamodb() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start().await;
    moto.create_secret(
        "janitor/registry",
        r#"{"username":"janitor","password":"from-moto","webhook_secret":"w"}"#,
    )
    .await;
    moto.create_inventory_table("janitor-inventory").await;
    let registry = TestRegistry::start_with(RegistryAuth::Basic {
        username: "janitor".into(),
        password: "from-moto".into(),
    })
    .await;
    let image = Image::oci("app").tag("v1").push(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = function_env(
        &registry.url,
        dir.path(),
        PURGE_UNTAGGED,
        &[
            ("JANITOR_SECRET_ID", "janitor/registry"),
            ("JANITOR_STATE", "dynamodb:janitor-inventory"),
        ],
    );
    env.retain(|(k, _)| k != "JANITOR_STATE");
    env.push(("JANITOR_STATE".into(), "dynamodb:janitor-inventory".into()));
    env.extend(moto.env());
    let watch = Watch::start(&env).await;

    let report = watch.invoke(r#"{"repository":"app"}"#).await;
    assert_eq!(
        report["repositories"][0]["complete"],
        true,
        "{report}\n{}",
        watch.log()
    );
    assert_eq!(report["dry_run"], true);

    let dynamo = aws_sdk_dynamodb::Client::new(&moto.sdk().await);
    let items = dynamo
        .query()
        .table_name("janitor-inventory")
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{}/app", registry.host())),
        )
        .send()
        .await
        .unwrap();
    let digests: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| i.get("digest")?.as_s().ok().cloned())
        .collect();
    assert_eq!(
        digests,
        vec![image.digest.clone()],
        "the sweep was not remembered in DynamoDB"
    );
}

#[tokio::test]
async fn a_warm_function_reads_a_rotated_secret_when_the_registry_refuses_its_credentials() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start().await;
    moto.create_secret(
        "janitor/registry",
        r#"{"username":"janitor","password":"before-rotation"}"#,
    )
    .await;
    let registry = TestRegistry::start_with(RegistryAuth::Basic {
        username: "janitor".into(),
        password: "after-rotation".into(),
    })
    .await;
    Image::oci("app").tag("v1").push(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = function_env(
        &registry.url,
        dir.path(),
        PURGE_UNTAGGED,
        &[("JANITOR_SECRET_ID", "janitor/registry")],
    );
    env.extend(moto.env());
    let watch = Watch::start(&env).await;

    // The registry refuses the stored password: the repository cannot be read.
    let refused = watch.invoke(r#"{"repository":"app"}"#).await;
    assert_eq!(refused["repositories"][0]["complete"], false, "{refused}");

    // The secret is rotated; the warm instance still holds the old one, is refused once,
    // reads the secret again, and sweeps.
    moto.rotate_secret(
        "janitor/registry",
        r#"{"username":"janitor","password":"after-rotation"}"#,
    )
    .await;
    let report = watch.invoke(r#"{"repository":"app"}"#).await;
    assert_eq!(
        report["repositories"][0]["complete"],
        true,
        "{report}\n{}",
        watch.log()
    );
}

#[tokio::test]
async fn a_warm_function_accepts_a_rotated_webhook_secret_without_a_redeploy() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start().await;
    moto.create_secret("janitor/registry", r#"{"webhook_secret":"before"}"#)
        .await;
    let registry = TestRegistry::start().await;
    let image = Image::oci("app").tag("v1").push(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = function_env(
        &registry.url,
        dir.path(),
        PURGE_UNTAGGED,
        &[("JANITOR_SECRET_ID", "janitor/registry")],
    );
    env.extend(moto.env());
    // Starting the watcher invokes the function once: it is warm, holding "before".
    let watch = Watch::start(&env).await;
    moto.rotate_secret("janitor/registry", r#"{"webhook_secret":"after"}"#)
        .await;
    let body = push_notification("ev-1", "app", &image.digest, "v1");
    let post = |secret: &'static str| {
        let (watch, body) = (&watch, body.clone());
        async move { watch.post_webhook(secret, &body).await.0 }
    };
    assert_eq!(post("after").await, 200, "{}", watch.log());
    assert_eq!(post("before").await, 401, "the old secret is refused now");
    assert_eq!(post("wrong").await, 401);
}

#[tokio::test]
async fn a_webhook_whose_sweep_fails_answers_500_so_the_registry_delivers_it_again() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    let image = Image::oci("app").tag("v1").push(&registry).await;
    let proxy = support::proxy::FlakyProxy::start(&registry.url).await;
    proxy.always(
        "GET",
        "/v2/app/tags/list",
        support::proxy::Fault::Status(500, None),
    );
    let dir = tempfile::tempdir().unwrap();
    let env = function_env(
        &proxy.url,
        dir.path(),
        PURGE_UNTAGGED,
        &[("JANITOR_WEBHOOK_SECRET", SECRET)],
    );
    let watch = Watch::start(&env).await;
    let body = push_notification("ev-1", "app", &image.digest, "v1");
    let (status, text) = watch.post_webhook(SECRET, &body).await;
    assert_eq!(status, 500, "{}", watch.log());
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["repositories"][0]["complete"], false, "{report}");
    // One summary line for the run, saying what happened.
    let log = watch.log();
    let summary = log
        .lines()
        .find(|l| l.contains("run summary"))
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    assert!(summary.contains(r#""incomplete":1"#), "{summary}");
    assert!(summary.contains(r#""failed":true"#), "{summary}");
}

/// Amazon ECR straight to the function (no queue): EventBridge hands it an `ECR Image Action`
/// event, and the function sweeps the pushed repository, and only that one, with the `ecr`
/// backend on moto's ECR. A `DELETE` event (ours cause them) sweeps nothing.
#[tokio::test]
async fn an_ecr_push_event_sweeps_its_repository_through_the_function() {
    use support::ecr::{Ecr, REGISTRY};
    let _serial = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("app").await;
    ecr.create_repository("other").await;
    let leftover = ecr.image("app", None).await;
    let elsewhere = ecr.image("other", None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = function_env(
        REGISTRY,
        dir.path(),
        PURGE_UNTAGGED,
        &[("JANITOR_DRY_RUN", "false")],
    );
    env.extend(moto.env());
    let watch = Watch::start(&env).await;

    let pushed = ecr.image("app", Some("v1")).await;
    let mut event = support::ecr::push_event("app", &pushed.digest, "v1");
    event["detail"]["action-type"] = "DELETE".into();
    let ignored = watch.invoke(&event.to_string()).await;
    assert!(
        ignored["ignored"]
            .as_str()
            .is_some_and(|why| why.contains("DELETE")),
        "{ignored}"
    );
    assert!(
        ecr.has("app", &leftover.digest).await,
        "a DELETE event swept"
    );

    event["detail"]["action-type"] = "PUSH".into();
    let report = watch.invoke(&event.to_string()).await;
    assert_eq!(report["dry_run"], false, "{report}\n{}", watch.log());
    assert_eq!(report["summary"]["manifests_deleted"], 1, "{report}");
    assert_eq!(
        ecr.picture("app").await,
        vec![(pushed.digest.clone(), vec!["v1".to_owned()])]
    );
    assert!(
        ecr.has("other", &elsewhere.digest).await,
        "a push to app swept other"
    );
}

#[tokio::test]
async fn a_schedule_holds_a_repository_past_half_and_a_direct_invocation_may_go_ahead_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    Image::oci("ci/app").tag("main").push(&registry).await;
    let mut builds = Vec::new();
    for n in 1..=12 {
        let build = Image::oci("ci/app")
            .layers(&[format!("build {n}").as_bytes()])
            .tag(&format!("pr-{n}"))
            .push(&registry)
            .await;
        builds.push(build.digest);
    }
    let dir = tempfile::tempdir().unwrap();
    // The policy sets no limits: the function holds past half a repository all the same.
    let policy =
        r#"{"rules":[{"name":"pr","repositories":"ci/.*","select":"tagged","tags":"pr-.*"}]}"#;
    let env = function_env(
        &registry.url,
        dir.path(),
        policy,
        &[("JANITOR_DRY_RUN", "false")],
    );
    let watch = Watch::start(&env).await;
    let report = watch.invoke(&scheduled_event("e-held")).await;
    assert_eq!(report["summary"]["manifests_deleted"], 0, "{report}");
    assert_eq!(report["summary"]["repositories_held"], 1, "{report}");
    let held = report["repositories"][0]["held"]
        .as_str()
        .unwrap_or_default();
    assert!(
        held.starts_with("held: plan deletes 92% of ci/app (12 of 13 manifests); limit 50%"),
        "{report}"
    );
    let log = watch.log();
    assert!(log.contains(r#""RepositoriesHeld":1"#), "the metric: {log}");
    for d in &builds {
        assert!(registry.has_manifest("ci/app", d).await);
    }
    // A direct invocation says this once is meant.
    let report = watch
        .invoke(r#"{"repository":"ci/app","allow_over_limit":true}"#)
        .await;
    assert_eq!(report["summary"]["manifests_deleted"], 12, "{report}");
    for d in &builds {
        assert!(!registry.has_manifest("ci/app", d).await);
    }
    registry.assert_every_tag_pulls("ci/app").await;
}
