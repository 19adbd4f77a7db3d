//! AWS API calls per deleted manifest when registry-janitor cleans an Amazon ECR repository,
//! against a per-digest delete loop on the same data. Counts, not times: nothing is asserted
//! about speed.
//!
//! 1. Seeds (not counted) a `moto_server` with two repositories of the same shape,
//!    `bench/janitor` and `bench/loop`: `ECR_STALE` (1,000) images tagged `pr-1`..`pr-N`, each
//!    a unique OCI manifest pushed with `PutImage` and its digest, and three that stay (`v1`,
//!    `main`, `latest`).
//! 2. Each contender talks to moto through its own counting loopback proxy
//!    (`support::recorded_ecr::RecordedEcr` with no recorded answers: it forwards every call
//!    and logs the operation of its `X-Amz-Target` header). moto checks no SigV4 signature,
//!    so a client signing for the proxy's host is answered.
//! 3. **janitor**: the bench-profile binary, `registry-janitor apply --yes --no-state --format
//!    json --registry https://123456789012.dkr.ecr.us-east-1.amazonaws.com --repository
//!    bench/janitor --policy FILE` with
//!    `{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}]}`, moto's
//!    credentials and region, and `AWS_ENDPOINT_URL` set to its proxy.
//! 4. **per-digest loop**: the shape of the ACR guide's shell script, list then one delete per
//!    digest, as `aws ecr batch-delete-image` would do it: in this process with aws-sdk-ecr,
//!    one `DescribeImages` listing of `bench/loop` (`maxResults` 1000, following `nextToken`),
//!    then one `BatchDeleteImage` per digest with a `pr-*` tag (one `imageDigest` a call),
//!    one after another.
//! 5. Checks each repository directly against moto (not through a proxy): exactly the `pr-*`
//!    images gone, the kept ones there with their tags; and that the janitor left
//!    `bench/loop` alone and its report lists exactly the `pr-*` digests as deleted. Any
//!    mismatch fails the bench after the table is printed.
//!
//! `cargo bench --locked --bench ecr_calls`; knob: `ECR_STALE` (images to delete per
//! repository, default 1000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_ecr::types::{ImageDetail, ImageIdentifier};
use futures_util::stream::{self, StreamExt};

use support::ecr::{Ecr, REGISTRY};
use support::env_usize;
use support::janitor::Janitor;
use support::moto::Moto;
use support::recorded_ecr::RecordedEcr;

const JANITOR_REPO: &str = "bench/janitor";
const LOOP_REPO: &str = "bench/loop";
/// Tags the policy leaves alone, one image each.
const KEPT: &[&str] = &["v1", "main", "latest"];
const POLICY: &str =
    r#"{"rules":[{"name":"pr","select":"tagged","tags":"pr-.*","older_than":"0s"}]}"#;
/// The operations given a column of their own; any other lands in "other".
const COLUMNS: &[&str] = &[
    "DescribeRepositories",
    "DescribeImages",
    "BatchGetImage",
    "BatchDeleteImage",
    "ListImages",
];
/// `PutImage` calls in flight while seeding.
const SEED_CONCURRENCY: usize = 8;

/// What seeding put in one repository.
struct Seeded {
    repo: &'static str,
    /// Digests of the `pr-*` images.
    stale: BTreeSet<String>,
    /// tag -> digest of the images that stay.
    kept: BTreeMap<String, String>,
}

/// One contender's run.
struct Run {
    name: &'static str,
    /// operation -> calls.
    calls: BTreeMap<String, usize>,
    /// `pr-*` manifests gone afterwards (read from moto directly).
    deleted: usize,
    wall: Duration,
}

impl Run {
    fn total(&self) -> usize {
        self.calls.values().sum()
    }

    fn per_deleted(&self) -> f64 {
        if self.deleted == 0 {
            f64::NAN
        } else {
            self.total() as f64 / self.deleted as f64
        }
    }

    fn column(&self, operation: &str) -> usize {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// "Op: n, ..." for the operations without a column ("0" when none).
    fn other(&self) -> String {
        support::recorded_ecr::others(&self.calls, COLUMNS)
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

fn tally(operations: Vec<String>) -> BTreeMap<String, usize> {
    let mut calls = BTreeMap::new();
    for op in operations {
        let op = if op.is_empty() {
            "(no X-Amz-Target)".to_owned()
        } else {
            op
        };
        *calls.entry(op).or_default() += 1;
    }
    calls
}

async fn seed(ecr: &Ecr, repo: &'static str, stale: usize) -> Seeded {
    ecr.create_repository(repo).await;
    let mut kept = BTreeMap::new();
    for tag in KEPT {
        kept.insert((*tag).to_owned(), ecr.image(repo, Some(tag)).await.digest);
    }
    let stale: BTreeSet<String> = stream::iter(1..=stale)
        .map(|n| async move { ecr.image(repo, Some(&format!("pr-{n}"))).await.digest })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect()
        .await;
    Seeded { repo, stale, kept }
}

/// Every image of `repo` (`maxResults` 1000, following `nextToken`), and how many pages.
async fn list(client: &aws_sdk_ecr::Client, repo: &str) -> (Vec<ImageDetail>, usize) {
    let mut images = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .describe_images()
            .repository_name(repo)
            .max_results(1000)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "DescribeImages {repo}: {}",
                    aws_sdk_ecr::error::DisplayErrorContext(e)
                )
            });
        pages += 1;
        images.extend(page.image_details().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return (images, pages),
        }
    }
}

/// digest -> sorted tags of every image in `repo`, read from moto directly.
async fn picture(client: &aws_sdk_ecr::Client, repo: &str) -> BTreeMap<String, Vec<String>> {
    list(client, repo)
        .await
        .0
        .into_iter()
        .map(|i| {
            let mut tags = i.image_tags().to_vec();
            tags.sort();
            (i.image_digest().unwrap_or_default().to_owned(), tags)
        })
        .collect()
}

/// What is wrong with `repo` after a contender, if anything, and how many `pr-*` images went.
async fn check(
    client: &aws_sdk_ecr::Client,
    seeded: &Seeded,
    cleaned: bool,
) -> (usize, Vec<String>) {
    let now = picture(client, seeded.repo).await;
    let mut problems = Vec::new();
    let gone = seeded
        .stale
        .iter()
        .filter(|d| !now.contains_key(*d))
        .count();
    let left = seeded.stale.len() - gone;
    if cleaned && left > 0 {
        problems.push(format!(
            "{}: {left} of {} pr-* images are still there",
            seeded.repo,
            seeded.stale.len()
        ));
    }
    if !cleaned && gone > 0 {
        problems.push(format!(
            "{}: {gone} pr-* images went before its contender ran",
            seeded.repo
        ));
    }
    for (tag, digest) in &seeded.kept {
        match now.get(digest) {
            None => problems.push(format!("{}: kept {tag} ({digest}) is gone", seeded.repo)),
            Some(tags) if tags != &vec![tag.clone()] => problems.push(format!(
                "{}: kept {digest} has tags {tags:?}, not [{tag}]",
                seeded.repo
            )),
            _ => {}
        }
    }
    let known: BTreeSet<&String> = seeded.stale.iter().chain(seeded.kept.values()).collect();
    for digest in now.keys().filter(|d| !known.contains(d)) {
        problems.push(format!("{}: an image nobody pushed: {digest}", seeded.repo));
    }
    (gone, problems)
}

/// The janitor binary, limited to `bench/janitor`, through its own proxy.
async fn janitor(moto: &Moto, seeded: &Seeded, problems: &mut Vec<String>) -> Run {
    let proxy = RecordedEcr::start(&moto.url).await;
    let mut janitor = Janitor::for_url(REGISTRY);
    for (k, v) in moto.env() {
        if k != "AWS_ENDPOINT_URL" {
            janitor = janitor.with_env(&k, &v);
        }
    }
    let janitor = janitor.with_env("AWS_ENDPOINT_URL", &proxy.url);
    let t0 = Instant::now();
    let out = janitor
        .apply(POLICY, &["--no-state", "--repository", seeded.repo])
        .await;
    let wall = t0.elapsed();
    if out.code != 0 {
        problems.push(format!(
            "janitor: exit code {}\nstderr:\n{}",
            out.code, out.stderr
        ));
    }
    let reported: BTreeSet<String> = out.deleted(seeded.repo).into_iter().collect();
    if reported != seeded.stale {
        problems.push(format!(
            "janitor: the report lists {} deletes in {}, {} of them pr-* digests, of {} pr-* images",
            reported.len(),
            seeded.repo,
            reported.intersection(&seeded.stale).count(),
            seeded.stale.len()
        ));
    }
    let failed: Vec<_> = out
        .entries(seeded.repo, "delete")
        .into_iter()
        .filter(|d| !d["error"].is_null())
        .collect();
    if !failed.is_empty() {
        problems.push(format!(
            "janitor: {} deletes failed, first: {}",
            failed.len(),
            failed[0]
        ));
    }
    let summary = &out.json()["summary"];
    if summary["manifests_deleted"] != seeded.stale.len() || summary["repositories_incomplete"] != 0
    {
        problems.push(format!("janitor: the report's summary is {summary}"));
    }
    Run {
        name: "registry-janitor apply",
        calls: tally(proxy.operations()),
        deleted: 0,
        wall,
    }
}

/// The per-digest loop: one listing, then one `BatchDeleteImage` per `pr-*` digest.
async fn per_digest_loop(moto: &Moto, seeded: &Seeded, problems: &mut Vec<String>) -> Run {
    let proxy = RecordedEcr::start(&moto.url).await;
    let config = aws_sdk_ecr::config::Builder::from(&moto.sdk().await)
        .endpoint_url(&proxy.url)
        .build();
    let client = aws_sdk_ecr::Client::from_conf(config);
    let t0 = Instant::now();
    let (images, pages) = list(&client, seeded.repo).await;
    let stale: Vec<String> = images
        .iter()
        .filter(|i| i.image_tags().iter().any(|t| t.starts_with("pr-")))
        .filter_map(|i| i.image_digest().map(str::to_owned))
        .collect();
    let (mut named, mut refused, mut neither) = (0, 0, 0);
    for digest in &stale {
        let out = client
            .batch_delete_image()
            .repository_name(seeded.repo)
            .image_ids(ImageIdentifier::builder().image_digest(digest).build())
            .send()
            .await;
        match out {
            Ok(o) if !o.image_ids().is_empty() => named += 1,
            Ok(o) if !o.failures().is_empty() => refused += 1,
            Ok(_) => neither += 1,
            Err(e) => problems.push(format!(
                "loop: BatchDeleteImage {digest}: {}",
                aws_sdk_ecr::error::DisplayErrorContext(e)
            )),
        }
    }
    let wall = t0.elapsed();
    println!(
        "per-digest loop: listing in {pages} page(s), {} images, {} with a pr-* tag; BatchDeleteImage answers: {named} named the image deleted, {refused} a failure, {neither} neither",
        images.len(),
        stale.len()
    );
    if refused > 0 {
        problems.push(format!("loop: {refused} deletes answered with a failure"));
    }
    Run {
        name: "per-digest loop (list + BatchDeleteImage per digest)",
        calls: tally(proxy.operations()),
        deleted: 0,
        wall,
    }
}

async fn bench() -> ExitCode {
    let stale = env_usize("ECR_STALE", 1000);
    assert!(stale > 0, "ECR_STALE: at least 1");
    println!(
        "# ECR API calls per deleted manifest: 2 repositories x ({stale} pr-* images + {} kept) on moto_server",
        KEPT.len()
    );
    let moto = Moto::start().await;
    let ecr = Ecr::on(&moto).await;
    let t = Instant::now();
    let janitor_seed = seed(&ecr, JANITOR_REPO, stale).await;
    let loop_seed = seed(&ecr, LOOP_REPO, stale).await;
    println!(
        "seeded in {:.1} s (not counted): {} images per repository",
        t.elapsed().as_secs_f64(),
        stale + KEPT.len()
    );
    let mut problems = Vec::new();
    for s in [&janitor_seed, &loop_seed] {
        let (_, p) = check(&ecr.client, s, false).await;
        problems.extend(p);
        let n = picture(&ecr.client, s.repo).await.len();
        if n != stale + KEPT.len() {
            problems.push(format!(
                "{}: seeded {n} images, not {}",
                s.repo,
                stale + KEPT.len()
            ));
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("SEEDING FAILED: {p}");
        }
        return ExitCode::FAILURE;
    }

    let mut runs = Vec::new();

    let mut run = janitor(&moto, &janitor_seed, &mut problems).await;
    let (gone, p) = check(&ecr.client, &janitor_seed, true).await;
    run.deleted = gone;
    problems.extend(p);
    // The janitor was limited to its repository: the loop's must be untouched.
    let (_, p) = check(&ecr.client, &loop_seed, false).await;
    problems.extend(p);
    runs.push(run);

    let mut run = per_digest_loop(&moto, &loop_seed, &mut problems).await;
    let (gone, p) = check(&ecr.client, &loop_seed, true).await;
    run.deleted = gone;
    problems.extend(p);
    runs.push(run);

    println!();
    println!(
        "| contender | {} | other | total calls | manifests deleted | calls / deleted manifest | wall s |",
        COLUMNS.join(" | ")
    );
    println!("|---|{}---|---|---|---|---|", "---|".repeat(COLUMNS.len()));
    for r in &runs {
        let columns: Vec<String> = COLUMNS.iter().map(|c| r.column(c).to_string()).collect();
        println!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.2} |",
            r.name,
            columns.join(" | "),
            r.other(),
            r.total(),
            r.deleted,
            r.per_deleted(),
            r.wall.as_secs_f64()
        );
    }
    let (j, l) = (&runs[0], &runs[1]);
    println!(
        "\nsummary: janitor {} calls for {} manifests = {:.3} per deleted manifest (target under 0.1: {}); per-digest loop {} calls = {:.3} per deleted manifest; loop/janitor calls {:.1}x",
        j.total(),
        j.deleted,
        j.per_deleted(),
        if j.per_deleted() < 0.1 { "met" } else { "NOT met" },
        l.total(),
        l.per_deleted(),
        l.total() as f64 / j.total() as f64
    );
    println!("(wall times are moto's on loopback, not ECR's; the janitor paces its writes to 600 a minute)");

    if problems.is_empty() {
        println!("checks: both repositories hold exactly the kept images, read from moto directly");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("CHECK FAILED: {p}");
        }
        ExitCode::FAILURE
    }
}
