//! What the ECS and Lambda in-use providers cost in one sweep (issue 22): AWS API calls and
//! wall time of `registry-janitor plan` with both providers, against the same sweep without
//! them, at two registry sizes. The providers must add calls per sweep, never calls per
//! manifest.
//!
//! 1. Seeds (not counted) a real `docker-registry` on loopback, reached only through a
//!    counting loopback proxy (`support::proxy::FlakyProxy` with no faults): `IN_USE_REPOS`
//!    (10) repositories `app-0`.. of `IN_USE_IMAGES` (10) unique OCI images each, tagged
//!    `pr-1`..`pr-N`.
//! 2. Seeds (not counted) a `moto_server` directly through the AWS SDK:
//!    - **ECS**: 5 clusters (`bench-0`..`bench-4`) of 10 services each, 50 in all; each
//!      service has its own task definition (family `svc-<i>`) whose one container names an
//!      image of the registry by digest, as the janitor sees it (`<proxy host:port>/app-<r>@<digest>`),
//!      50 distinct digests spread over the repositories. Then 200 FARGATE tasks, 4 per task
//!      definition, each in its service's cluster (`RunTask`; its answer is ignored, since
//!      the SDK cannot read moto's container `cpu`/`memory` numbers).
//!    - **Lambda**: an IAM role (a raw form POST to moto's IAM), then 10 image functions
//!      `fn-<k>`, each created with `publish` (version 1), updated to a second image with
//!      `publish` (version 2) and given an alias `live` on version 2: 30 versions with
//!      `$LATEST`. Their `ImageUri`s name an ECR registry
//!      (`123456789012.dkr.ecr.us-east-1.amazonaws.com/fn-<k>:v1`), which moto's stub
//!      resolves to made-up digests: they count as other registries, which is fine for
//!      counting calls.
//! 3. Each janitor run is the bench-profile binary, `registry-janitor plan --no-state
//!    --format json --registry PROXY --policy FILE`, with moto's credentials and region and
//!    `AWS_ENDPOINT_URL` set to a fresh counting stand-in in front of moto
//!    (`support::recorded_ecr::RecordedEcr`, forwarding every call; ECS calls are counted by
//!    their `X-Amz-Target` operation, Lambda's REST calls by method and path). The stand-in
//!    amends moto's `DescribeTasks` answer (`moto_container_numbers`); nothing else. The
//!    policy is `{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}]}`,
//!    and with providers the same plus `"protect":{"in_use":[{"ecs":{}},{"lambda":{}}]}`.
//!    `plan` deletes nothing, so every run sees the same registry.
//! 4. At the first size, then again after pushing more images (`pr-<N+1>`.. up to
//!    `GROWTH` (4) times as many per repository), it runs `IN_USE_ROUNDS` (5) rounds of one
//!    run without the providers then one with them, and reports the median wall time of the
//!    janitor process, the AWS calls by operation, and the registry requests (the proxy's
//!    log) of each.
//! 5. Checks, which fail the bench after the tables are printed: every run exits 0; a run
//!    without providers makes no AWS call; every run with them makes the same calls,
//!    operation by operation, at both sizes; its report's `in_use.providers` are ECS and
//!    Lambda without an error; every digest an ECS task definition names is kept with a
//!    reason starting `in use: ECS` with providers, and is in `delete` without them; the
//!    other `pr-*` manifests are in `delete` in both.
//!
//! `cargo bench --locked --bench in_use_calls`; knobs: `IN_USE_REPOS` (repositories, default
//! 10), `IN_USE_IMAGES` (images per repository at the first size, default 10),
//! `IN_USE_ROUNDS` (runs of each kind per size, default 5).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{FunctionCode, FunctionVersion, PackageType};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use support::ecs::Ecs;
use support::janitor::{Janitor, Outcome};
use support::moto::Moto;
use support::proxy::FlakyProxy;
use support::recorded_ecr::{moto_container_numbers, Answer, RecordedEcr};
use support::{env_usize, Image, TestRegistry};

const CLUSTERS: usize = 5;
const SERVICES_PER_CLUSTER: usize = 10;
const TASKS: usize = 200;
const FUNCTIONS: usize = 10;
/// The second size has this many times the first's images per repository.
const GROWTH: usize = 4;
/// Where the Lambda functions' images live: another registry than the swept one.
const LAMBDA_REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const RULES: &str = r#""rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}]"#;
const PROVIDERS: &str = r#""protect":{"in_use":[{"ecs":{}},{"lambda":{}}]}"#;
/// The operations given a column of their own, ECS's then Lambda's; any other lands in
/// "other".
const COLUMNS: &[&str] = &[
    "ListClusters",
    "ListServices",
    "DescribeServices",
    "DescribeServiceRevisions",
    "DescribeTaskDefinition",
    "ListTasks",
    "DescribeTasks",
    "ListFunctions",
    "ListAliases",
    "GetFunction",
];
const LAMBDA_COLUMNS: &[&str] = &["ListFunctions", "ListAliases", "GetFunction"];
/// Repositories being pushed to at once while seeding.
const SEED_CONCURRENCY: usize = 8;

/// What one janitor run did.
struct Run {
    wall: Duration,
    /// operation -> calls, as the stand-in saw them.
    calls: BTreeMap<String, usize>,
    /// Requests the registry proxy saw.
    registry_requests: usize,
    /// `delete` entries of the report, all repositories.
    deleted: usize,
    /// Digests kept with a reason starting `in use: ECS`.
    kept_ecs: usize,
    /// `in_use` of the report (null without providers).
    in_use: Value,
}

impl Run {
    fn total(&self) -> usize {
        self.calls.values().sum()
    }

    fn column(&self, operation: &str) -> usize {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    fn lambda(&self) -> usize {
        LAMBDA_COLUMNS.iter().map(|c| self.column(c)).sum()
    }

    /// "Op: n, ..." for the operations without a column ("0" when none).
    fn other(&self) -> String {
        support::recorded_ecr::others(&self.calls, COLUMNS)
    }
}

/// The runs of one registry size.
struct Size {
    manifests: usize,
    without: Vec<Run>,
    with: Vec<Run>,
}

fn median(runs: &[Run]) -> Duration {
    let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    walls.sort();
    walls[walls.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "n" when every run saw `n`, else "min-max".
fn spread(runs: &[Run], value: impl Fn(&Run) -> usize) -> String {
    let values: Vec<usize> = runs.iter().map(value).collect();
    let (lo, hi) = (values.iter().min().unwrap(), values.iter().max().unwrap());
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

fn main() -> ExitCode {
    support::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench())
}

/// A Lambda REST call (`GET /2015-03-31/functions/fn-0?Qualifier=1`) by its operation.
fn lambda_operation(request: &str) -> String {
    let (method, target) = request.split_once(' ').unwrap_or(("", request));
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let path = path.trim_end_matches('/');
    match path.strip_prefix("/2015-03-31/functions") {
        Some("") if method == "GET" => "ListFunctions".into(),
        Some(rest) if method == "GET" && rest.ends_with("/aliases") => "ListAliases".into(),
        Some(rest) if method == "GET" && rest.matches('/').count() == 1 => "GetFunction".into(),
        _ => format!("REST {request}"),
    }
}

/// Every call the stand-in saw, by operation.
fn tally(stand_in: &RecordedEcr) -> BTreeMap<String, usize> {
    let mut calls = BTreeMap::new();
    for op in stand_in.operations().into_iter().filter(|o| !o.is_empty()) {
        *calls.entry(op).or_default() += 1;
    }
    for request in stand_in.requests() {
        *calls.entry(lambda_operation(&request)).or_default() += 1;
    }
    calls
}

/// Push `pr-<n>` for every `n` in `numbers` to every repository; (repository, n) -> digest.
/// One repository's images go one after another: they share a config blob, and the registry
/// refuses a manifest whose blob another upload of the same blob is writing.
async fn push(
    registry: &TestRegistry,
    repos: usize,
    numbers: std::ops::RangeInclusive<usize>,
) -> BTreeMap<(usize, usize), String> {
    let per_repo: Vec<Vec<((usize, usize), String)>> = stream::iter(0..repos)
        .map(|r| {
            let numbers = numbers.clone();
            async move {
                let mut pushed = Vec::new();
                for n in numbers {
                    let image = Image::oci(&format!("app-{r}"))
                        .tag(&format!("pr-{n}"))
                        .push(registry)
                        .await;
                    pushed.push(((r, n), image.digest));
                }
                pushed
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect()
        .await;
    per_repo.into_iter().flatten().collect()
}

/// The ECS shape: clusters, a task definition and a service each, FARGATE tasks. Returns
/// (repository, digest) of every image the task definitions name.
async fn seed_ecs(
    moto: &Moto,
    host: &str,
    repos: usize,
    images: usize,
    digests: &BTreeMap<(usize, usize), String>,
) -> BTreeSet<(String, String)> {
    let ecs = Ecs::on(moto).await;
    let services = CLUSTERS * SERVICES_PER_CLUSTER;
    let per_definition = TASKS / services;
    assert_eq!(per_definition * services, TASKS, "tasks spread evenly");
    let mut named = BTreeSet::new();
    for c in 0..CLUSTERS {
        let cluster = format!("bench-{c}");
        ecs.cluster(&cluster).await;
        for s in 0..SERVICES_PER_CLUSTER {
            let i = c * SERVICES_PER_CLUSTER + s;
            // Repositories first, then images: 50 distinct digests at 10 x 10.
            let (r, n) = (i % repos, (i / repos) % images + 1);
            let digest = &digests[&(r, n)];
            named.insert((format!("app-{r}"), digest.clone()));
            let image = format!("{host}/app-{r}@{digest}");
            let definition = ecs.definition(&format!("svc-{i}"), &image).await;
            ecs.service(&cluster, &format!("svc-{i}"), &definition)
                .await;
            ecs.run(&cluster, &definition, per_definition as i32).await;
        }
    }
    named
}

/// Image functions, each with two published versions and an alias `live` on the second.
async fn seed_lambda(moto: &Moto) {
    let role = moto.lambda_role().await;
    let lambda = aws_sdk_lambda::Client::new(&moto.sdk().await);
    let image = |k: usize, tag: &str| format!("{LAMBDA_REGISTRY}/fn-{k}:{tag}");
    for k in 0..FUNCTIONS {
        let name = format!("fn-{k}");
        lambda
            .create_function()
            .function_name(&name)
            .role(&role)
            .package_type(PackageType::Image)
            .code(FunctionCode::builder().image_uri(image(k, "v1")).build())
            .publish(true)
            .send()
            .await
            .expect("create function");
        lambda
            .update_function_code()
            .function_name(&name)
            .image_uri(image(k, "v2"))
            .publish(true)
            .send()
            .await
            .expect("update function code");
        lambda
            .create_alias()
            .function_name(&name)
            .name("live")
            .function_version("2")
            .send()
            .await
            .expect("create alias");
    }
}

/// What seeding left in moto, read directly: (ECS tasks running, Lambda image versions).
async fn seeded_aws(moto: &Moto) -> (usize, usize) {
    let config = moto.sdk().await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let mut tasks = 0;
    for c in 0..CLUSTERS {
        let out = ecs
            .list_tasks()
            .cluster(format!("bench-{c}"))
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .send()
            .await
            .expect("list tasks");
        tasks += out.task_arns().len();
    }
    let lambda = aws_sdk_lambda::Client::new(&config);
    let out = lambda
        .list_functions()
        .function_version(FunctionVersion::All)
        .send()
        .await
        .expect("list functions");
    let versions = out
        .functions()
        .iter()
        .filter(|f| f.package_type() == Some(&PackageType::Image))
        .count();
    (tasks, versions)
}

/// The policy, with the providers or without.
fn policy(providers: bool) -> String {
    if providers {
        format!("{{{RULES},{PROVIDERS}}}")
    } else {
        format!("{{{RULES}}}")
    }
}

/// One `plan --no-state` through the registry proxy, AWS through a fresh stand-in.
async fn run(
    moto: &Moto,
    proxy: &FlakyProxy,
    providers: bool,
    named: &BTreeSet<(String, String)>,
    label: &str,
    problems: &mut Vec<String>,
) -> Run {
    let stand_in = RecordedEcr::start(&moto.url).await;
    stand_in.on("DescribeTasks", "", Answer::Amended(moto_container_numbers));
    let mut janitor = Janitor::for_url(&proxy.url);
    for (k, v) in moto.env() {
        if k != "AWS_ENDPOINT_URL" {
            janitor = janitor.with_env(&k, &v);
        }
    }
    let janitor = janitor.with_env("AWS_ENDPOINT_URL", &stand_in.url);
    proxy.clear_log();
    let t0 = Instant::now();
    let out = janitor.plan(&policy(providers), &["--no-state"]).await;
    let wall = t0.elapsed();
    let registry_requests = proxy.log().len();
    if out.code != 0 {
        problems.push(format!(
            "{label}: exit code {}\nstderr:\n{}",
            out.code, out.stderr
        ));
    }
    let json = out.json();
    let deleted: usize = json["repositories"]
        .as_array()
        .map(|repos| {
            repos
                .iter()
                .map(|r| r["delete"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    let mut kept_ecs = 0;
    for (repo, digest) in named {
        check_named(
            &out,
            repo,
            digest,
            providers,
            label,
            problems,
            &mut kept_ecs,
        );
    }
    let in_use = json["in_use"].clone();
    if providers {
        let providers = in_use["providers"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = providers
            .iter()
            .map(|p| p["name"].as_str().unwrap_or("?"))
            .collect();
        if names != [r#"ECS clusters ".*""#, "Lambda functions"] {
            problems.push(format!("{label}: the report's providers are {names:?}"));
        }
        for p in &providers {
            if !p["error"].is_null() {
                problems.push(format!("{label}: provider error: {p}"));
            }
        }
    } else if !in_use.is_null() {
        problems.push(format!(
            "{label}: a report without providers has in_use {in_use}"
        ));
    }
    Run {
        wall,
        calls: tally(&stand_in),
        registry_requests,
        deleted,
        kept_ecs,
        in_use,
    }
}

/// An ECS-named digest is kept for ECS with the providers, and planned for deletion without.
fn check_named(
    out: &Outcome,
    repo: &str,
    digest: &str,
    providers: bool,
    label: &str,
    problems: &mut Vec<String>,
    kept_ecs: &mut usize,
) {
    let reason = out.kept_reason(repo, digest);
    let deleted = out.deleted(repo).iter().any(|d| d == digest);
    if providers {
        match reason {
            Some(r) if r.starts_with("in use: ECS") && !deleted => *kept_ecs += 1,
            other => problems.push(format!(
                "{label}: {repo}@{digest} is not kept for ECS (reason {other:?}, in delete: {deleted})"
            )),
        }
    } else if !deleted || reason.is_some() {
        problems.push(format!(
            "{label}: {repo}@{digest} is not in delete (kept: {reason:?})"
        ));
    }
}

async fn bench() -> ExitCode {
    let repos = env_usize("IN_USE_REPOS", 10);
    let images = env_usize("IN_USE_IMAGES", 10);
    let rounds = env_usize("IN_USE_ROUNDS", 5);
    assert!(
        repos > 0 && images > 0 && rounds > 0,
        "IN_USE_REPOS, IN_USE_IMAGES, IN_USE_ROUNDS: at least 1"
    );
    let services = CLUSTERS * SERVICES_PER_CLUSTER;
    println!(
        "# In-use providers' cost: {services} ECS services, {TASKS} tasks, {FUNCTIONS} Lambda functions on moto_server; {repos} repositories x {images} then {} images",
        images * GROWTH
    );
    let t = Instant::now();
    let registry = TestRegistry::start().await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let host = proxy.url.trim_start_matches("http://").to_owned();
    let mut digests = push(&registry, repos, 1..=images).await;
    let moto = Moto::start().await;
    let named = seed_ecs(&moto, &host, repos, images, &digests).await;
    seed_lambda(&moto).await;
    let (tasks, versions) = seeded_aws(&moto).await;
    println!(
        "seeded in {:.1} s (not counted): {} manifests, {tasks} ECS tasks running, {versions} Lambda image versions, {} distinct digests named by ECS",
        t.elapsed().as_secs_f64(),
        digests.len(),
        named.len()
    );
    if tasks != TASKS || versions != FUNCTIONS * 3 || digests.len() != repos * images {
        eprintln!(
            "SEEDING FAILED: {tasks} tasks (not {TASKS}), {versions} versions (not {}), {} manifests (not {})",
            FUNCTIONS * 3,
            digests.len(),
            repos * images
        );
        return ExitCode::FAILURE;
    }

    let mut problems = Vec::new();
    let mut sizes: Vec<Size> = Vec::new();
    for step in 0..2 {
        if step == 1 {
            let t = Instant::now();
            let more = push(&registry, repos, images + 1..=images * GROWTH).await;
            digests.extend(more);
            println!(
                "pushed {} more manifests in {:.1} s (not counted)",
                repos * images * (GROWTH - 1),
                t.elapsed().as_secs_f64()
            );
        }
        let manifests = digests.len();
        let mut size = Size {
            manifests,
            without: Vec::new(),
            with: Vec::new(),
        };
        for round in 1..=rounds {
            for providers in [false, true] {
                let label = format!(
                    "{manifests} manifests, round {round}, {}",
                    if providers { "with" } else { "without" }
                );
                let r = run(&moto, &proxy, providers, &named, &label, &mut problems).await;
                let expected = if providers {
                    manifests - named.len()
                } else {
                    manifests
                };
                if r.deleted != expected {
                    problems.push(format!(
                        "{label}: {} manifests in delete, not {expected}",
                        r.deleted
                    ));
                }
                if !providers && r.total() > 0 {
                    problems.push(format!(
                        "{label}: {} AWS calls without providers: {:?}",
                        r.total(),
                        r.calls
                    ));
                }
                println!(
                    "{label}: {:.0} ms, {} AWS calls, {} registry requests",
                    ms(r.wall),
                    r.total(),
                    r.registry_requests
                );
                if providers {
                    size.with.push(r);
                } else {
                    size.without.push(r);
                }
            }
        }
        sizes.push(size);
    }

    // Calls per sweep: every run with providers, at both sizes, as the first one.
    let first = &sizes[0].with[0].calls;
    for s in &sizes {
        for (i, r) in s.with.iter().enumerate() {
            if &r.calls != first {
                problems.push(format!(
                    "{} manifests, round {}: AWS calls {:?}, not {:?} as at {} manifests, round 1",
                    s.manifests,
                    i + 1,
                    r.calls,
                    first,
                    sizes[0].manifests
                ));
            }
        }
    }

    println!();
    println!("| manifests | providers | median wall ms | wall with / without | AWS calls | registry requests | in delete | kept in use: ECS |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in &sizes {
        let (without, with) = (median(&s.without), median(&s.with));
        for (name, runs, ratio) in [
            ("without", &s.without, 1.0),
            (
                "ECS + Lambda",
                &s.with,
                with.as_secs_f64() / without.as_secs_f64(),
            ),
        ] {
            println!(
                "| {} | {name} | {:.0} | {ratio:.2} | {} | {} | {} | {} |",
                s.manifests,
                ms(median(runs)),
                spread(runs, Run::total),
                spread(runs, |r| r.registry_requests),
                spread(runs, |r| r.deleted),
                spread(runs, |r| r.kept_ecs),
            );
        }
    }
    println!();
    println!(
        "AWS calls by operation with the providers (first run of each size):\n\n| manifests | {} | other | ECS | Lambda | total | calls / manifest |",
        COLUMNS.join(" | ")
    );
    println!("|---|{}---|---|---|---|---|", "---|".repeat(COLUMNS.len()));
    for s in &sizes {
        let r = &s.with[0];
        let columns: Vec<String> = COLUMNS.iter().map(|c| r.column(c).to_string()).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.3} |",
            s.manifests,
            columns.join(" | "),
            r.other(),
            r.total() - r.lambda(),
            r.lambda(),
            r.total(),
            r.total() as f64 / s.manifests as f64
        );
    }
    let in_use = &sizes[0].with[0].in_use;
    println!("\nin_use (first run with providers): {in_use}");

    let summary = json!({
        "bench": "in_use_calls",
        "ecs_services": services,
        "ecs_tasks": TASKS,
        "lambda_functions": FUNCTIONS,
        "lambda_versions": versions,
        "ecs_named_digests": named.len(),
        "rounds": rounds,
        "sizes": sizes.iter().map(|s| {
            let (without, with) = (median(&s.without), median(&s.with));
            json!({
                "manifests": s.manifests,
                "wall_ms_median": {"without": ms(without).round(), "with": ms(with).round()},
                "wall_ms": {
                    "without": s.without.iter().map(|r| ms(r.wall).round()).collect::<Vec<_>>(),
                    "with": s.with.iter().map(|r| ms(r.wall).round()).collect::<Vec<_>>(),
                },
                "wall_ratio": with.as_secs_f64() / without.as_secs_f64(),
                "aws_calls": {"without": s.without[0].total(), "with": s.with[0].total()},
                "aws_calls_by_operation": s.with[0].calls,
                "registry_requests": {
                    "without": s.without[0].registry_requests,
                    "with": s.with[0].registry_requests,
                },
            })
        }).collect::<Vec<_>>(),
    });
    println!("\nsummary: {summary}");
    let (small, big) = (&sizes[0], &sizes[1]);
    println!(
        "providers: {} AWS calls per sweep at {} and at {} manifests; wall with/without {:.2}x and {:.2}x (moto on loopback, not AWS)",
        small.with[0].total(),
        small.manifests,
        big.manifests,
        median(&small.with).as_secs_f64() / median(&small.without).as_secs_f64(),
        median(&big.with).as_secs_f64() / median(&big.without).as_secs_f64(),
    );

    if problems.is_empty() {
        println!("checks: no AWS call without providers; the same calls with them at both sizes; no provider error; every ECS-named digest kept for ECS with them and in delete without");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("CHECK FAILED: {p}");
        }
        ExitCode::FAILURE
    }
}
