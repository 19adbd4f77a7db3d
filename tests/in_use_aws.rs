//! In-use protection from ECS and Lambda, end to end through the CLI: moto serves the ECS
//! and Lambda APIs, and what moto's ECS lacks (service revisions, the digest a task pulled)
//! comes from recorded responses (`tests/fixtures/ecs/`), through the same stand-in as ECR's.
//! The images live in a real `docker-registry`, or, for Lambda, in moto's ECR, since Lambda
//! resolves an image function's tag there.

mod support;

use std::collections::BTreeMap;

use support::acr::Recorded;
use support::ecr::{Ecr, REGISTRY};
use support::ecs::Ecs;
use support::janitor::{Janitor, Outcome};
use support::moto::Moto;
use support::recorded_ecr::{moto_container_numbers, recorded, Answer, RecordedEcr};
use support::{Image, TestRegistry};

/// Untagged manifests, and `pr-` tags, go at once: what stays, stays for a reason.
fn policy(in_use: &str) -> String {
    format!(
        r#"{{"rules":[
        {{"name":"dangling","select":"untagged","older_than":"0s"}},
        {{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}}],
        "protect":{{"in_use":[{in_use}]}}}}"#
    )
}

/// The janitor with the AWS chain pointed at `endpoint` (moto, or the stand-in before it).
fn aws(mut janitor: Janitor, moto: &Moto, endpoint: &str) -> Janitor {
    for (k, v) in moto.env() {
        janitor = janitor.with_env(&k, &v);
    }
    janitor.with_env("AWS_ENDPOINT_URL", endpoint)
}

fn reason(out: &Outcome, repository: &str, digest: &str) -> String {
    out.kept_reason(repository, digest)
        .unwrap_or_else(|| panic!("{digest} is not kept:\n{}", out.stdout))
}

#[tokio::test]
async fn ecs_services_and_live_tasks_keep_their_images_and_unmatched_clusters_do_not() {
    let registry = TestRegistry::start().await;
    let host = registry.host();
    let deployed = Image::oci("app").tag("pr-1").push(&registry).await;
    let running = Image::oci("app")
        .layers(&[b"a one-off job"])
        .tag("pr-2")
        .push(&registry)
        .await;
    let staging = Image::oci("app")
        .layers(&[b"staging"])
        .tag("pr-3")
        .push(&registry)
        .await;
    let unused = Image::oci("app")
        .layers(&[b"nobody runs this"])
        .tag("pr-4")
        .push(&registry)
        .await;
    let moto = Moto::start().await;
    let ecs = Ecs::on(&moto).await;
    ecs.cluster("prod").await;
    ecs.cluster("staging").await;
    // The service names its image by tag; the job's tasks run one by digest.
    let checkout = ecs
        .definition("checkout", &format!("{host}/app:pr-1"))
        .await;
    ecs.service("prod", "checkout", &checkout).await;
    let job = ecs
        .definition("job", &format!("{host}/app@{}", running.digest))
        .await;
    ecs.run("prod", &job, 3).await;
    let tasks = ecs.tasks("prod").await;
    assert_eq!(tasks.len(), 3);
    let stage = ecs
        .definition("stage", &format!("{host}/app@{}", staging.digest))
        .await;
    ecs.service("staging", "checkout", &stage).await;

    let stand_in = RecordedEcr::start(&moto.url).await;
    stand_in.on("DescribeTasks", "", Answer::Amended(moto_container_numbers));
    let janitor = aws(Janitor::new(&registry), &moto, &stand_in.url);
    let done = janitor
        .apply(&policy(r#"{"ecs":{"clusters":"prod"}}"#), &["--no-state"])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let why = reason(&done, "app", &deployed.digest);
    assert!(
        why.starts_with("in use: ECS service prod/checkout, task definition checkout:1"),
        "{why}"
    );
    let why = reason(&done, "app", &running.digest);
    assert!(why.starts_with("in use: ECS task prod/"), "{why}");
    assert!(why.contains("(family:job)"), "{why}");
    let mut deleted = done.deleted("app");
    deleted.sort();
    let mut expected = vec![staging.digest.clone(), unused.digest.clone()];
    expected.sort();
    assert_eq!(deleted, expected, "the staging cluster is not read");
    assert!(registry.has_manifest("app", &deployed.digest).await);
    assert_eq!(
        registry.head_digest("app", "pr-1").await.as_deref(),
        Some(deployed.digest.as_str()),
        "a tag the service names stays"
    );
    let provider = &done.json()["in_use"]["providers"][0];
    assert_eq!(provider["name"], r#"ECS clusters "prod""#, "{provider}");
    assert_eq!(provider["references"], 4, "one service and three tasks");
    assert!(provider["error"].is_null(), "{provider}");
}

#[tokio::test]
async fn the_digest_an_ecs_revision_resolved_stays_after_its_tag_moved() {
    let registry = TestRegistry::start().await;
    let host = registry.host();
    let first = Image::oci("app").tag("prod").push(&registry).await;
    let janitor = Janitor::new(&registry);
    // The inventory sees `prod` on each digest before `prod` moves on.
    assert_eq!(janitor.plan(&policy(""), &[]).await.code, 0);
    let deployed = Image::oci("app")
        .layers(&[b"release 12"])
        .tag("prod")
        .push(&registry)
        .await;
    assert_eq!(janitor.plan(&policy(""), &[]).await.code, 0);
    let newest = Image::oci("app")
        .layers(&[b"release 13"])
        .tag("prod")
        .push(&registry)
        .await;
    let moto = Moto::start().await;
    let ecs = Ecs::on(&moto).await;
    let cluster = ecs.cluster("prod").await;
    let definition = ecs
        .definition("checkout", &format!("{host}/app:prod"))
        .await;
    let service = ecs.service("prod", "checkout", &definition).await;
    ecs.run("prod", &definition, 1).await;
    let task = ecs.tasks("prod").await.remove(0);
    let task_id = task.rsplit('/').next().unwrap().to_owned();

    // moto's ECS has no service revisions and no pulled digests: those calls are recorded.
    let stand_in = RecordedEcr::start(&moto.url).await;
    let revision = format!(
        "{}/4980306466373577095",
        service.replacen(":service/", ":service-revision/", 1)
    );
    let vars = BTreeMap::from([
        ("cluster_arn", cluster.clone()),
        ("service_arn", service.clone()),
        ("task_definition", definition.clone()),
        ("revision_arn", revision.clone()),
        ("deployment_arn", format!("{service}/ecs-svc")),
        ("image", format!("{host}/app:prod")),
        ("digest", deployed.digest.clone()),
        ("task_arn", task.clone()),
        ("task_id", task_id.clone()),
    ]);
    let answer = |name: &str, vars: &BTreeMap<&str, String>| {
        Answer::Recorded(recorded("ecs", 200, name, vars))
    };
    stand_in.on(
        "DescribeServices",
        "",
        answer("DescribeServices.revisions.json", &vars),
    );
    stand_in.on(
        "DescribeServiceRevisions",
        "",
        answer("DescribeServiceRevisions.json", &vars),
    );
    // A task started before the deploy still runs the first release.
    let mut older = vars.clone();
    older.insert("digest", first.digest.clone());
    stand_in.on(
        "DescribeTasks",
        "",
        answer("DescribeTasks.digests.json", &older),
    );

    let without = janitor.plan(&policy(""), &[]).await;
    let mut would = without.deleted("app");
    would.sort();
    let mut both = vec![first.digest.clone(), deployed.digest.clone()];
    both.sort();
    assert_eq!(would, both, "without the provider, both go");

    let janitor = aws(janitor, &moto, &stand_in.url);
    let done = janitor
        .apply(&policy(r#"{"ecs":{"clusters":"prod"}}"#), &[])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    assert_eq!(
        reason(&done, "app", &deployed.digest),
        format!(
            "in use: ECS service prod/checkout, revision 4980306466373577095 names {}",
            &deployed.digest[7..19]
        )
    );
    let why = reason(&done, "app", &first.digest);
    assert!(
        why.starts_with(&format!(
            "in use: ECS task prod/{task_id} (family:checkout)"
        )),
        "{why}"
    );
    for kept in [&first, &deployed, &newest] {
        assert!(registry.has_manifest("app", &kept.digest).await);
    }
    let asked = stand_in.calls("DescribeServiceRevisions");
    assert_eq!(asked.len(), 1, "one call for the one current revision");
    assert_eq!(asked[0]["serviceRevisionArns"][0], revision.as_str());
}

#[tokio::test]
async fn ecs_throttled_past_its_retries_deletes_nothing_and_fails_the_run() {
    let registry = TestRegistry::start().await;
    let build = Image::oci("app").tag("pr-1").push(&registry).await;
    let moto = Moto::start().await;
    let stand_in = RecordedEcr::start(&moto.url).await;
    let throttled = recorded(
        "ecs",
        400,
        "Error.ThrottlingException.json",
        &BTreeMap::new(),
    );
    stand_in.on("ListClusters", "", Answer::Recorded(throttled));
    let janitor = aws(Janitor::new(&registry), &moto, &stand_in.url);
    let done = janitor
        .apply(&policy(r#"{"ecs":{}}"#), &["--no-state"])
        .await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").is_empty(), "{}", done.stdout);
    let error = done.json()["in_use"]["providers"][0]["error"].to_string();
    assert!(
        error.contains("ListClusters: ThrottlingException"),
        "{error}"
    );
    assert!(
        stand_in.calls("ListClusters").len() > 1,
        "the SDK retries throttling before it gives up"
    );
    assert!(registry.has_manifest("app", &build.digest).await);
}

/// moto's ECR image `api:{tag}` as an image function's code.
fn api_image(tag: &str) -> aws_sdk_lambda::types::FunctionCode {
    let uri = format!("{}/api:{tag}", REGISTRY.trim_start_matches("https://"));
    aws_sdk_lambda::types::FunctionCode::builder()
        .image_uri(uri)
        .build()
}

/// The image function `api` from `api:v1`, with its version 1 published; its client.
async fn api_function(moto: &Moto) -> aws_sdk_lambda::Client {
    let role = moto.lambda_role().await;
    let lambda = aws_sdk_lambda::Client::new(&moto.sdk().await);
    lambda
        .create_function()
        .function_name("api")
        .role(&role)
        .package_type(aws_sdk_lambda::types::PackageType::Image)
        .code(api_image("v1"))
        .publish(true)
        .send()
        .await
        .expect("create function");
    lambda
}

#[tokio::test]
async fn lambda_versions_keep_the_digests_they_resolved_after_their_tag_moved() {
    // With the stub off, moto's Lambda resolves an image tag in moto's ECR, as Lambda does.
    let moto = Moto::start_with(&[("MOTO_LAMBDA_STUB_ECR", "false")]).await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("api").await;
    let v1 = ecr.image("api", Some("v1")).await;
    // A second tag, that the `pr` rule selects: moto's ECR drops an image when its last tag
    // moves (real ECR leaves it untagged), and this one must outlive `v1` moving.
    ecr.put("api", &v1.media_type, v1.body.clone(), Some("pr-1"))
        .await;
    let lambda = api_function(&moto).await;
    lambda
        .create_alias()
        .function_name("api")
        .name("live")
        .function_version("1")
        .send()
        .await
        .expect("create alias");
    // `$LATEST` moves to `v2`; then `v1` moves on, and what version 1 runs has only `pr-1`.
    let v2 = ecr.image("api", Some("v2")).await;
    lambda
        .update_function_code()
        .function_name("api")
        .image_uri(format!(
            "{}/api:v2",
            REGISTRY.trim_start_matches("https://")
        ))
        .send()
        .await
        .expect("update function code");
    let rebuilt = ecr.image("api", Some("v1")).await;
    let stray = ecr.image("api", None).await;

    let janitor = aws(Janitor::for_url(REGISTRY), &moto, &moto.url);
    let done = janitor
        .apply(&policy(r#"{"lambda":{}}"#), &["--no-state"])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(
        done.deleted("api"),
        vec![stray.digest.clone()],
        "{}",
        done.stdout
    );
    let why = reason(&done, "api", &v1.digest);
    let expected = format!(
        "in use: Lambda function api, version 1 (alias live) names {}",
        &v1.digest[7..19]
    );
    assert!(why.starts_with(&expected), "{why}");
    for kept in [&v1, &v2, &rebuilt] {
        assert!(ecr.has("api", &kept.digest).await);
    }
    let provider = &done.json()["in_use"]["providers"][0];
    assert_eq!(provider["name"], "Lambda functions", "{provider}");
    assert_eq!(
        provider["references"], 2,
        "$LATEST and version 1: {provider}"
    );
}

#[tokio::test]
async fn a_lambda_version_whose_resolved_image_is_unknown_deletes_nothing_and_fails_the_run() {
    let moto = Moto::start_with(&[("MOTO_LAMBDA_STUB_ECR", "false")]).await;
    let ecr = Ecr::on(&moto).await;
    ecr.create_repository("api").await;
    let v1 = ecr.image("api", Some("v1")).await;
    let stray = ecr.image("api", None).await;
    api_function(&moto).await;
    let image_uri = format!("{}/api:v1", REGISTRY.trim_start_matches("https://"));
    // Version 1's answer has no `ResolvedImageUri`: what it runs cannot be known.
    let stand_in = RecordedEcr::start(&moto.url).await;
    let vars = BTreeMap::from([
        ("image_uri", image_uri.clone()),
        ("code_sha256", v1.digest[7..].to_owned()),
    ]);
    // Lambda's REST answers are plain JSON.
    let unresolved = Recorded::from_dir("lambda", 200, "GetFunction.unresolved.json", &vars);
    stand_in.on_request(
        "GET /2015-03-31/functions/api?Qualifier=1",
        Answer::Recorded(unresolved),
    );
    let janitor = aws(Janitor::for_url(REGISTRY), &moto, &stand_in.url);
    let done = janitor
        .apply(&policy(r#"{"lambda":{}}"#), &["--no-state"])
        .await;
    assert_eq!(done.code, 1, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("api").is_empty(), "{}", done.stdout);
    let error = done.json()["in_use"]["providers"][0]["error"].to_string();
    assert!(
        error.contains("GetFunction api:1: an image function without Code.ResolvedImageUri"),
        "{error}"
    );
    assert!(ecr.has("api", &stray.digest).await, "nothing is deleted");
    assert!(
        stand_in
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /2015-03-31/functions/api?Qualifier=1")),
        "{:?}",
        stand_in.requests()
    );
}
