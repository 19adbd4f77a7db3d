//! The queue mode end to end: the function under `cargo lambda watch` with
//! `JANITOR_QUEUE_URL` set, an SQS FIFO queue on `moto`, a real `docker-registry`, and
//! `support::sqs_driver` in the place of Lambda's event source mapping (which cannot run
//! here; see that module).
//!
//! The tests run one at a time: each starts its own `cargo lambda watch`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::lambda_watch::{function_env, push_notification, scheduled_event, Watch};
use support::moto::Moto;
use support::proxy::{Fault, FlakyProxy};
use support::recorded_ecr::RecordedEcr;
use support::sqs_driver::Driver;
use support::{Image, TestRegistry};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET: &str = "webhook-s3cret";
/// Every `pr-*` tag goes, with its manifest; other tags stay.
const PR_BUILDS: &str = r#"{"rules":[{"name":"pr","repositories":"(app|lib|r[0-9]+|bad)","select":"tagged","tags":"pr-.*"}]}"#;

/// Seed `repository` with `v1` and three PR builds; returns the PR builds' digests.
async fn seed(registry: &TestRegistry, repository: &str) -> Vec<String> {
    Image::oci(repository).tag("v1").push(registry).await;
    let mut prs = Vec::new();
    for n in 1..=3 {
        prs.push(
            Image::oci(repository)
                .tag(&format!("pr-{n}"))
                .push(registry)
                .await
                .digest,
        );
    }
    prs
}

struct Setup {
    watch: Watch,
    driver: Driver,
    moto: Moto,
    _dir: tempfile::TempDir,
}

async fn setup(registry_url: &str, visibility: Duration, extra: &[(&str, &str)]) -> Setup {
    let moto = Moto::start().await;
    let driver = Driver::fifo_queue(&moto, "janitor-work", visibility).await;
    let dir = tempfile::tempdir().unwrap();
    let mut vars = vec![
        ("JANITOR_QUEUE_URL", driver.url.as_str()),
        ("JANITOR_DRY_RUN", "false"),
        ("JANITOR_WEBHOOK_SECRET", SECRET),
    ];
    vars.extend_from_slice(extra);
    let mut env = function_env(registry_url, dir.path(), PR_BUILDS, &vars);
    env.extend(moto.env());
    let watch = Watch::start(&env).await;
    Setup {
        watch,
        driver,
        moto,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_schedule_queues_each_covered_repository_and_the_drain_leaves_what_one_sweep_leaves() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    let mut prs = Vec::new();
    for repo in ["app", "lib"] {
        prs.extend(seed(&registry, repo).await);
    }
    Image::oci("other").tag("pr-1").push(&registry).await;
    // The twin: the same storage, swept in one process by the library.
    let copy = tempfile::tempdir().unwrap();
    support::run(
        "cp",
        &[
            "-a",
            &format!("{}/.", registry.storage().display()),
            &copy.path().display().to_string(),
        ],
    );
    let twin = TestRegistry::start_on(copy.path()).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let s = setup(&proxy.url, Duration::from_secs(2), &[]).await;

    let answer = s.watch.invoke(&scheduled_event("e-1")).await;
    assert_eq!(answer["queued"], 2, "{answer}\n{}", s.watch.log());
    assert_eq!(answer["repositories"], json!(["app", "lib"]));
    let reads: Vec<String> = proxy.log().into_iter().map(|(_, p, _)| p).collect();
    assert!(
        reads
            .iter()
            .all(|p| p.starts_with("/v2/_catalog") || p == "/v2/"),
        "a dispatch reads no tags: {reads:?}"
    );

    let polls = s.driver.drain(&s.watch, 5).await;
    assert!(polls.iter().all(|p| p.failures.is_empty()), "{polls:#?}");

    let policy = registry_janitor::policy::Policy::from_json(PR_BUILDS).unwrap();
    let mut wired = registry_janitor::wiring::Settings {
        registry: twin.url.clone(),
        client: Default::default(),
        inventory: registry_janitor::wiring::Inventory::None,
        journal: None,
    }
    .wire()
    .unwrap();
    let mut sweeper = wired.sweeper(&policy, chrono::Utc::now());
    let repos = registry_janitor::sweep::scope(sweeper.client, &policy, &[])
        .await
        .unwrap();
    sweeper.run(&repos, true, |_, _, _| {}).await.unwrap();

    let all = ["app", "lib", "other"];
    assert_eq!(registry.picture(&all).await, twin.picture(&all).await);
    for d in &prs {
        for repo in ["app", "lib"] {
            assert_eq!(
                registry.has_manifest(repo, d).await,
                twin.has_manifest(repo, d).await,
                "{repo}@{d}"
            );
        }
    }
    assert!(registry.picture(&["app"]).await.contains_key("app:v1"));
    assert!(!registry.picture(&["app"]).await.contains_key("app:pr-1"));
}

/// The webhook's answer: its status and JSON body.
async fn post_webhook(watch: &Watch, body: &str) -> (u16, Value) {
    let (status, text) = watch.post_webhook(SECRET, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_webhook_answers_202_queues_once_and_the_registry_is_read_only_by_the_worker() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    let prs = seed(&registry, "app").await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let s = setup(&proxy.url, Duration::from_secs(2), &[]).await;

    let body = push_notification("ev-42", "app", &prs[0], "pr-9");
    let first = post_webhook(&s.watch, &body).await;
    assert_eq!(first, (202, json!({"queued": 1})), "{}", s.watch.log());
    // The registry delivers the same notification again (it timed out waiting, say).
    let again = post_webhook(&s.watch, &body).await;
    assert_eq!(again.0, 202);
    assert!(
        proxy.log().is_empty(),
        "the webhook touched the registry: {:?}",
        proxy.log()
    );

    // A repository no rule covers queues nothing.
    let other = post_webhook(
        &s.watch,
        &push_notification("ev-43", "elsewhere", &prs[0], "pr-9"),
    )
    .await;
    assert_eq!(other.0, 200, "{other:?}");

    let polls = s.driver.drain(&s.watch, 3).await;
    let records: usize = polls.iter().map(|p| p.records.len()).sum();
    assert_eq!(
        records, 1,
        "one message for the delivery and its redelivery: {polls:#?}"
    );
    assert_eq!(polls[0].repositories(), vec!["app"]);
    let body: Value = serde_json::from_str(&polls[0].records[0].1).unwrap();
    assert_eq!(
        body,
        json!({"repository": "app", "pushed": [prs[0]], "origin": "webhook"})
    );
    assert!(!proxy.log().is_empty(), "the worker read the registry");
    assert!(!registry.has_manifest("app", &prs[0]).await, "pr-1 swept");
    assert!(registry.tags("app").await.contains(&"v1".to_owned()));
}

#[tokio::test]
async fn a_repository_whose_registry_fails_comes_back_and_the_others_are_done() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    let good = seed(&registry, "app").await;
    seed(&registry, "bad").await;
    let proxy = FlakyProxy::start(&registry.url).await;
    proxy.always("GET", "/v2/bad/tags/list", Fault::Status(500, None));
    let s = setup(&proxy.url, Duration::from_secs(1), &[]).await;

    let answer = s.watch.invoke(&scheduled_event("e-7")).await;
    assert_eq!(answer["queued"], 2, "{answer}");
    let polled = s.driver.poll_once(&s.watch).await.expect("a batch");
    assert_eq!(polled.records.len(), 2, "{polled:#?}");
    let bad: Vec<&String> = polled
        .records
        .iter()
        .filter(|(_, b)| b.contains("\"bad\""))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        polled.failures.iter().collect::<Vec<_>>(),
        bad,
        "{}",
        s.watch.log()
    );
    assert!(
        !registry.has_manifest("app", &good[0]).await,
        "app was swept"
    );
    // Only bad's record is left, and it comes back after the visibility timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let back = s.driver.poll_once(&s.watch).await.expect("bad comes back");
    assert_eq!(back.repositories(), vec!["bad"]);
}

#[tokio::test]
async fn forty_repositories_converge_over_several_invocations_under_a_short_run_budget() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    let mut names = Vec::new();
    let mut prs = Vec::new();
    for i in 0..40 {
        let name = format!("r{i}");
        prs.push((name.clone(), seed(&registry, &name).await));
        names.push(name);
    }
    // Each request takes 25 ms more; one invocation may work 1 s, two changes at a time.
    let proxy = FlakyProxy::start_delayed(&registry.url, Duration::from_millis(25)).await;
    let s = setup(
        &proxy.url,
        Duration::from_secs(1),
        &[
            ("JANITOR_MAX_RUN_SECONDS", "1"),
            ("JANITOR_CONCURRENCY", "2"),
        ],
    )
    .await;
    let answer = s.watch.invoke(&scheduled_event("e-40")).await;
    assert_eq!(answer["queued"], 40, "{answer}");

    let polls = s.driver.drain(&s.watch, 60).await;
    // A repository not finished in time comes back as a continuation message (origin
    // "queue"), with its receive count started again.
    let continued = polls
        .iter()
        .flat_map(|p| &p.records)
        .filter(|(_, body)| body.contains(r#""origin":"queue""#))
        .map(|(id, _)| id)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let handed_over: usize = polls.iter().map(|p| p.records.len()).sum();
    // Records handed back (no progress in time) come back once each as they were.
    let returned: usize = polls.iter().map(|p| p.failures.len()).sum();
    assert!(
        continued > 0 && handed_over == 40 + continued + returned,
        "a 1 s budget should leave some repositories for a later invocation, and nothing is \
         lost or doubled: {continued} continued, {returned} handed back, {handed_over} handed over"
    );
    // No batch holds one repository twice: one continuation per unfinished repository, and
    // a FIFO group holds one repository.
    for p in &polls {
        let mut r = p.repositories();
        let n = r.len();
        r.sort();
        r.dedup();
        assert_eq!(r.len(), n, "{p:#?}");
    }
    for (name, digests) in &prs {
        for d in digests {
            assert!(!registry.has_manifest(name, d).await, "{name}@{d} left");
        }
        registry.assert_pulls_completely(name, "v1").await;
    }
    eprintln!(
        "40 repositories: {} invocations, {continued} continuations, {returned} records handed back",
        polls.len()
    );
}

/// Amazon ECR through the queue, unchanged: a schedule dispatches the catalog
/// (`DescribeRepositories`), an ECR push event (through EventBridge) is queued like a webhook,
/// and the drain sweeps with the `ecr` backend, on moto's ECR beside its SQS.
#[tokio::test]
async fn on_ecr_a_schedule_and_a_push_event_are_queued_and_the_drain_sweeps() {
    use support::ecr::{Ecr, REGISTRY};
    let _serial = ONE_AT_A_TIME.lock().await;
    let s = setup(REGISTRY, Duration::from_secs(2), &[]).await;
    let ecr = Ecr::on(&s.moto).await;
    ecr.create_repository("app").await;
    ecr.create_repository("other").await;
    let v1 = ecr.image("app", Some("v1")).await;
    let pr1 = ecr.image("app", Some("pr-1")).await;
    let elsewhere = ecr.image("other", Some("pr-1")).await;

    let answer = s.watch.invoke(&scheduled_event("ecr-1")).await;
    assert_eq!(answer["queued"], 1, "{answer}\n{}", s.watch.log());
    assert_eq!(answer["repositories"], json!(["app"]));
    let polls = s.driver.drain(&s.watch, 5).await;
    assert!(polls.iter().all(|p| p.failures.is_empty()), "{polls:#?}");
    assert!(!ecr.has("app", &pr1.digest).await, "{}", s.watch.log());
    assert!(ecr.has("app", &v1.digest).await);
    assert!(ecr.has("other", &elsewhere.digest).await);

    // A new PR build is pushed; ECR's event names it.
    let pr2 = ecr.image("app", Some("pr-2")).await;
    let event = support::ecr::push_event("app", &pr2.digest, "pr-2");
    let answer = s.watch.invoke(&event.to_string()).await;
    assert_eq!(answer["queued"], 1, "{answer}\n{}", s.watch.log());
    let polls = s.driver.drain(&s.watch, 5).await;
    assert!(polls.iter().all(|p| p.failures.is_empty()), "{polls:#?}");
    assert!(!ecr.has("app", &pr2.digest).await, "{}", s.watch.log());
    assert_eq!(
        ecr.picture("app").await,
        vec![(v1.digest.clone(), vec!["v1".to_owned()])]
    );
}

#[tokio::test]
async fn a_worker_reads_the_in_use_lists_once_per_invocation_and_the_dispatcher_none() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let registry = TestRegistry::start().await;
    let mut prs = Vec::new();
    for repo in ["app", "lib", "r1"] {
        prs.push(seed(&registry, repo).await);
    }
    let moto = Moto::start().await;
    moto.put_object("lists", "in-use.txt", "app:pr-1\n").await;
    // The function reaches AWS through a stand-in that logs every call and forwards it.
    let aws = RecordedEcr::start(&moto.url).await;
    let driver = Driver::fifo_queue(&moto, "janitor-work", Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = PR_BUILDS.replacen(
        "]}",
        r#"],"protect":{"in_use":[{"s3":"s3://lists/in-use.txt"}]}}"#,
        1,
    );
    let mut env = function_env(
        &registry.url,
        dir.path(),
        &policy,
        &[
            ("JANITOR_QUEUE_URL", driver.url.as_str()),
            ("JANITOR_DRY_RUN", "false"),
        ],
    );
    env.extend(moto.env());
    env.push(("AWS_ENDPOINT_URL".into(), aws.url.clone()));
    let watch = Watch::start(&env).await;
    let reads = || {
        aws.requests()
            .into_iter()
            .filter(|r| r.starts_with("GET /lists/in-use.txt"))
            .count()
    };

    let answer = watch.invoke(&scheduled_event("e-1")).await;
    assert_eq!(answer["queued"], 3, "{answer}\n{}", watch.log());
    assert_eq!(reads(), 0, "the dispatcher reads no list");

    let polls = driver.drain(&watch, 5).await;
    assert!(polls.iter().all(|p| p.failures.is_empty()), "{polls:#?}");
    let invocations = polls.iter().filter(|p| !p.records.is_empty()).count();
    let repositories: usize = polls.iter().map(|p| p.repositories().len()).sum();
    assert_eq!(repositories, 3, "{polls:#?}");
    assert!(
        invocations < repositories,
        "one batch holds several: {polls:#?}"
    );
    assert_eq!(
        reads(),
        invocations,
        "one read per invocation: {:?}",
        aws.requests()
    );
    // What the list names stays; the other PR builds go.
    assert!(registry.has_manifest("app", &prs[0][0]).await);
    for (repo, digests) in ["app", "lib", "r1"].iter().zip(&prs) {
        for (n, d) in digests.iter().enumerate() {
            let kept = *repo == "app" && n == 0;
            assert_eq!(registry.has_manifest(repo, d).await, kept, "{repo}@{d}");
        }
    }
}
