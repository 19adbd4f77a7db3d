//! The registry-level benchmark (issue 7): one real registry shape, three ways to clean it.
//!
//! 1. It seeds a real `docker-registry` on loopback (not timed): `SWEEP_REPOS` repositories
//!    of `SWEEP_TAGS` user tags each, with multi-arch indexes, cosign `.sig` signatures, OCI
//!    referrers behind `sha256-<hex>` fallback indexes, a second tag on some images, and
//!    untagged leftovers. About a fifth of the builds are `pr-*` builds: those, their index
//!    children, signatures and referrers are the manifests to delete.
//! 2. It copies the storage folder. Before each run it restores a fresh copy, starts a registry
//!    on it and a counting (optionally delaying) loopback proxy in front of it.
//! 3. Contenders, each a separate process under `/usr/bin/time -f %M` (peak RSS):
//!    - baseline: the Azure guide's script shape, a listing piped to `xargs -I% -P1` running
//!      one `skopeo delete` per digest;
//!    - floor: the same DELETEs as raw concurrent HTTP, digests known in advance;
//!    - janitor: `registry-janitor apply --yes --no-state` with a policy selecting the same
//!      manifests;
//!    - before (only when asked): the same command with another build of the janitor
//!      (`SWEEP_BEFORE_BIN`, such as one built from an earlier commit), to compare the two in
//!      one run;
//!    - trash (only when asked): the janitor's command with the policy plus
//!      `"trash":{"keep_for":"7d"}`, which deletes nothing: it pushes one trash index per
//!      repository and removes the trashed manifests' tags (issue 23: what the trash costs).
//! 4. After each run it reads the registry directly (not through the proxy) and fails unless
//!    every tag names the expected digest and exactly the expected seeded manifests remain
//!    (for the trash: every seeded manifest, and one trash tag per repository whose index
//!    holds exactly what the janitor deletes).
//! 5. It runs everything directly and again with `SWEEP_LATENCY_MS` added to every request.
//! 6. Cold start: the janitor binary (`JANITOR_RELEASE_BIN`, else the one this bench built)
//!    under a minimal Lambda runtime API emulator, from process start to the runtime's first
//!    poll and to the first event's response.
//!
//! `cargo bench --bench registry_sweep`; see BENCHMARKS.md for the knobs and the figures.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;

use support::proxy::FlakyProxy;
use support::server::{response, serve, Handler};
use support::{env_usize, Image, Pushed, TestRegistry};

const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// The policy the janitor runs: every `pr-*` tag, whatever its age.
const POLICY: &str = r#"{"rules":[{"name":"pr-builds","repositories":".*","select":"tagged","tags":"pr-.*","older_than":"0s","keep":0}]}"#;

/// The trash contender's policy: `POLICY` plus this key.
const TRASH: &str = r#"{"keep_for":"7d"}"#;

/// The trash index's tag prefix and `artifactType` (README, "Trash and restore").
const TRASH_TAG_PREFIX: &str = "janitor-trash-";
const TRASH_ARTIFACT_TYPE: &str = "application/vnd.registry-janitor.trash.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The baseline: the shape of the Azure guide's script. The guide's listing is an
/// `az acr manifest list-metadata` query; this registry has no such query, so the listing is
/// the file of digests recorded at seeding (free for the baseline).
const BASELINE_SCRIPT: &str = r#"#!/usr/bin/env bash
# usage: baseline.sh HOST LISTING   (LISTING: one REPOSITORY@DIGEST per line)
set -euo pipefail
HOST="$1"
LISTING="$2"
cat "$LISTING" | xargs -I% -P1 skopeo delete --tls-verify=false "docker://$HOST/%"
"#;

struct Settings {
    repos: usize,
    tags: usize,
    untagged: usize,
    latency: Duration,
    concurrency: usize,
    contenders: Vec<Contender>,
    cold_runs: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let tags = env_usize("SWEEP_TAGS", 100);
        let contenders = std::env::var("SWEEP_CONTENDERS")
            .unwrap_or_else(|_| "baseline,floor,janitor".into())
            .split(',')
            .map(|c| match c.trim() {
                "baseline" => Contender::Baseline,
                "floor" => Contender::Floor,
                "janitor" => Contender::Janitor,
                "before" => Contender::Before,
                "trash" => Contender::Trash,
                other => panic!("SWEEP_CONTENDERS: unknown contender {other:?}"),
            })
            .collect();
        Settings {
            repos: env_usize("SWEEP_REPOS", 20),
            tags,
            untagged: env_usize("SWEEP_UNTAGGED", tags / 20),
            latency: Duration::from_millis(env_usize("SWEEP_LATENCY_MS", 20) as u64),
            concurrency: env_usize("SWEEP_CONCURRENCY", 8),
            contenders,
            cold_runs: env_usize("SWEEP_COLD_RUNS", 10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    Baseline,
    Floor,
    Janitor,
    /// The janitor built from something else (`SWEEP_BEFORE_BIN`).
    Before,
    /// The janitor's command with the policy's `trash` (issue 23).
    Trash,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Baseline => "baseline (xargs + skopeo delete)",
            Contender::Floor => "floor (raw concurrent DELETE)",
            Contender::Janitor => "registry-janitor apply",
            Contender::Before => "registry-janitor apply (SWEEP_BEFORE_BIN)",
            Contender::Trash => "registry-janitor apply, with trash 7d",
        }
    }
}

/// What seeding put in one repository.
#[derive(Default)]
struct RepoSeed {
    name: String,
    /// Every tag (user tags, `.sig` and `sha256-<hex>` link tags) and the digest it names.
    tags: BTreeMap<String, String>,
    /// Every manifest pushed.
    manifests: BTreeSet<String>,
    /// Manifests the `pr-*` policy deletes, parents first.
    delete: Vec<String>,
    user_tags: usize,
    indexes: usize,
    signatures: usize,
    referrers: usize,
    untagged: usize,
}

impl RepoSeed {
    fn expected_tags(&self) -> BTreeMap<String, String> {
        let gone: BTreeSet<&String> = self.delete.iter().collect();
        self.tags
            .iter()
            .filter(|(_, d)| !gone.contains(d))
            .map(|(t, d)| (t.clone(), d.clone()))
            .collect()
    }

    fn expected_present(&self) -> BTreeSet<String> {
        let gone: BTreeSet<&String> = self.delete.iter().collect();
        self.manifests
            .iter()
            .filter(|d| !gone.contains(d))
            .cloned()
            .collect()
    }
}

fn main() -> ExitCode {
    support::init();
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if args.get(1).map(String::as_str) == Some("floor") {
        return runtime.block_on(floor_main(&args[2..]));
    }
    runtime.block_on(bench());
    ExitCode::SUCCESS
}

/// The floor contender, run as its own process: `floor BASE_URL LISTING CONCURRENCY`.
async fn floor_main(args: &[String]) -> ExitCode {
    let [base, listing, concurrency] = args else {
        eprintln!("usage: registry_sweep floor BASE_URL LISTING CONCURRENCY");
        return ExitCode::from(2);
    };
    let concurrency: usize = concurrency.parse().expect("concurrency");
    let listing = std::fs::read_to_string(listing).expect("read listing");
    let http = reqwest::Client::new();
    let results: Vec<(String, Result<u16, String>)> = stream::iter(listing.lines())
        .map(|line| {
            let http = http.clone();
            async move {
                let (repo, digest) = line.split_once('@').expect("REPOSITORY@DIGEST");
                let r = http
                    .delete(format!("{base}/v2/{repo}/manifests/{digest}"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string());
                (line.to_owned(), r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(202)))
        .collect();
    println!("{} deletes, {} failed", results.len(), failed.len());
    for (line, r) in failed.iter().take(10) {
        eprintln!("DELETE {line}: {r:?}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One contender run.
struct Run {
    contender: Contender,
    latency: Duration,
    wall: Duration,
    requests: usize,
    breakdown: BTreeMap<String, usize>,
    rss_kib: Option<u64>,
    /// User plus system CPU time of the contender's process (the largest one for the
    /// baseline's `xargs`, as `wait4` reports it).
    cpu: Option<Duration>,
    /// When deleting started and ended, and when the last read was answered.
    timeline: String,
    /// CPU time the registry process spent while the contender ran.
    registry_cpu: Option<Duration>,
    /// CPU time this bench process (the counting proxy) spent while the contender ran.
    proxy_cpu: Option<Duration>,
    deleted: usize,
}

/// Seconds from the contender's start: first and last DELETE answered, last read answered,
/// and how many reads were answered before the first DELETE.
fn timeline(log: &[(String, String, u16)], answered: &[Instant], t0: Instant) -> String {
    let at = |i: usize| {
        answered
            .get(i)
            .map_or(0.0, |t| t.duration_since(t0).as_secs_f64())
    };
    let deletes: Vec<usize> = (0..log.len()).filter(|i| log[*i].0 == "DELETE").collect();
    let reads: Vec<usize> = (0..log.len())
        .filter(|i| matches!(log[*i].0.as_str(), "GET" | "HEAD"))
        .collect();
    let (Some(&first), Some(&last)) = (deletes.first(), deletes.last()) else {
        return "no DELETE".into();
    };
    let reads_before = reads.iter().filter(|i| **i < first).count();
    let last_read = reads.last().map_or(0.0, |i| at(*i));
    format!(
        "deletes answered from {:.2} s to {:.2} s; last read answered at {:.2} s; {reads_before} of {} reads before the first delete",
        at(first),
        at(last),
        last_read,
        reads.len()
    )
}

/// How long a push could race the deletion of a planned child unseen (issue 12, finding 3).
/// Per repository whose tags were read again (HEADs by tag) after its first DELETE: from the
/// last of those HEADs to the first DELETE after them (the least window: a push to a tag read
/// last), and from the first of those HEADs to the last DELETE (the most: a push to the tag
/// read first, racing the child deleted last). `None` when no repository was read again.
fn race_window(log: &[(String, String, u16)], answered: &[Instant]) -> Option<String> {
    let repo_of = |path: &str| {
        path.strip_prefix("/v2/")
            .and_then(|p| p.split_once("/manifests/"))
            .map(|(r, reference)| (r.to_owned(), reference.to_owned()))
    };
    let mut least = Vec::new();
    let mut most = Vec::new();
    let mut repos: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, path, _)) in log.iter().enumerate() {
        if let Some((repo, _)) = repo_of(path) {
            repos.entry(repo).or_default().push(i);
        }
    }
    for requests in repos.values() {
        let Some(first_delete) = requests.iter().position(|i| log[*i].0 == "DELETE") else {
            continue;
        };
        let after = &requests[first_delete..];
        let heads: Vec<usize> = after
            .iter()
            .copied()
            .filter(|i| {
                log[*i].0 == "HEAD"
                    && repo_of(&log[*i].1).is_some_and(|(_, r)| !r.starts_with("sha256:"))
            })
            .collect();
        let (Some(&first_head), Some(&last_head)) = (heads.first(), heads.last()) else {
            continue;
        };
        let deletes: Vec<usize> = after
            .iter()
            .copied()
            .filter(|i| *i > last_head && log[*i].0 == "DELETE")
            .collect();
        let (Some(&first_del), Some(&last_del)) = (deletes.first(), deletes.last()) else {
            continue;
        };
        least.push(answered[first_del].duration_since(answered[last_head]));
        most.push(answered[last_del].duration_since(answered[first_head]));
    }
    if least.is_empty() {
        return None;
    }
    least.sort();
    let median = least[least.len() / 2];
    let max = most.iter().max().copied().unwrap_or_default();
    Some(format!(
        "tags read again before deleting children in {} repositories: last HEAD to first child DELETE answered, median {:.1} ms; first HEAD to last child DELETE, at most {:.1} ms",
        least.len(),
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    ))
}

/// User plus system CPU time of a process so far, from /proc/<pid>/stat (Linux).
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

async fn bench() {
    let settings = Settings::from_env();
    let work = tempfile::tempdir().expect("work folder");
    let time_bin = Path::new("/usr/bin/time").exists();
    if !time_bin {
        println!("note: /usr/bin/time is missing (Debian package `time`): no peak RSS figures");
    }

    println!(
        "# registry sweep: {} repositories x {} tags, {} untagged each, concurrency {}, added latency {} ms",
        settings.repos,
        settings.tags,
        settings.untagged,
        settings.concurrency,
        settings.latency.as_millis()
    );
    let started = Instant::now();
    let registry = TestRegistry::start().await;
    let seeds: Vec<RepoSeed> = stream::iter(0..settings.repos)
        .map(|r| seed_repository(&registry, r, settings.tags, settings.untagged))
        .buffer_unordered(4)
        .collect()
        .await;
    let mut seeds = seeds;
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    let golden = work.path().join("golden");
    copy_dir(&registry.storage(), &golden);
    drop(registry);
    let total = |f: fn(&RepoSeed) -> usize| seeds.iter().map(f).sum::<usize>();
    let to_delete = total(|s| s.delete.len());
    let manifests = total(|s| s.manifests.len());
    let untagged = total(|s| s.untagged);
    println!(
        "seeded in {:.1} s (not timed below): {} manifests ({} user tags, {} link tags, {} indexes, {} signatures, {} referrers, {} untagged); {} to delete",
        started.elapsed().as_secs_f64(),
        manifests,
        total(|s| s.user_tags),
        total(|s| s.tags.len()) - total(|s| s.user_tags),
        total(|s| s.indexes),
        total(|s| s.signatures),
        total(|s| s.referrers),
        untagged,
        to_delete
    );
    // What issue 7 allows a full sweep: one request per catalog page, one per tag-list page,
    // one manifest GET per distinct digest, and one re-check and one DELETE per deleted
    // manifest (no inventory here, so no HEADs of untagged ones; no ages needed).
    let budget = 1 + settings.repos + (manifests - untagged) + 2 * to_delete;
    println!(
        "issue 7 request budget for the janitor: 1 catalog + {} tag lists + {} distinct digests + 2 x {} deleted = {} ({:.2} per deleted manifest)",
        settings.repos,
        manifests - untagged,
        to_delete,
        budget,
        budget as f64 / to_delete as f64
    );

    let listing = work.path().join("listing.txt");
    let mut lines = String::new();
    for s in &seeds {
        for d in &s.delete {
            lines.push_str(&format!("{}@{}\n", s.name, d));
        }
    }
    std::fs::write(&listing, lines).expect("write listing");
    let script = work.path().join("baseline.sh");
    std::fs::write(&script, BASELINE_SCRIPT).expect("write baseline script");
    let policy = work.path().join("policy.json");
    std::fs::write(&policy, POLICY).expect("write policy");
    let trash_policy = work.path().join("policy-trash.json");
    let mut with_trash: Value = serde_json::from_str(POLICY).expect("POLICY is JSON");
    with_trash["trash"] = serde_json::from_str(TRASH).expect("TRASH is JSON");
    std::fs::write(&trash_policy, with_trash.to_string()).expect("write the trash policy");

    let mut latencies = vec![Duration::ZERO];
    if !settings.latency.is_zero() {
        latencies.push(settings.latency);
    }
    let ctx = RunContext {
        work: work.path().to_path_buf(),
        golden,
        listing,
        script,
        policy,
        trash_policy,
        time_bin,
        concurrency: settings.concurrency,
    };
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for &latency in &latencies {
        for &contender in &settings.contenders {
            let (run, problems) = run_contender(&ctx, contender, latency, &seeds).await;
            print_run(&run, to_delete);
            for p in problems {
                failures.push(format!(
                    "{} at +{} ms: {p}",
                    contender.name(),
                    latency.as_millis()
                ));
            }
            runs.push(run);
        }
    }
    summary(&runs, to_delete, budget, settings.concurrency);
    by_method(&runs);

    cold_start(&settings, work.path()).await;

    if !failures.is_empty() {
        eprintln!("\nFAILED: the contenders did not leave the registry as expected:");
        for f in failures.iter().take(40) {
            eprintln!("  {f}");
        }
        panic!("{} state mismatches (see above)", failures.len());
    }
    println!(
        "\nevery contender left the registry in the expected state (tags and manifests checked)"
    );
}

/// Push one repository's shape. Build `b` gets one user tag (`latest`, `v1.<b>` or
/// `pr-<b>`), every 10th a second one; every 5th build is a two-platform index, every 4th is
/// signed (cosign `.sig` tag), every 10th has an OCI referrer (SBOM) behind a `sha256-<hex>`
/// fallback index. Builds 5 and 15 (mod 20), 3 and 7 (mod 20) are `pr-*`: about 11 manifests
/// to delete per 20 builds.
async fn seed_repository(
    registry: &TestRegistry,
    r: usize,
    tags: usize,
    untagged: usize,
) -> RepoSeed {
    let name = format!("team{}/app{r}", r % 4);
    let mut seed = RepoSeed {
        name: name.clone(),
        ..RepoSeed::default()
    };
    let http = reqwest::Client::new();
    let mut b = 0;
    while seed.user_tags < tags {
        let pr = b % 10 == 5 || b % 20 == 3 || b % 20 == 7;
        let first = if b == 0 {
            "latest".to_owned()
        } else if pr {
            format!("pr-{b}")
        } else {
            format!("v1.{b}")
        };
        let mut names = vec![first.clone()];
        if b % 10 == 7 && seed.user_tags + 2 <= tags {
            names.push(format!("{first}-alias"));
        }
        seed.user_tags += names.len();
        let mut doomed = Vec::new();
        let top: Pushed = if b % 5 == 0 {
            let amd = Image::oci(&name)
                .platform("linux", "amd64")
                .push(registry)
                .await;
            let arm = Image::oci(&name)
                .platform("linux", "arm64")
                .push(registry)
                .await;
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let index = registry.index(&name, &[&amd, &arm], &refs).await;
            seed.indexes += 1;
            doomed.extend([index.digest.clone(), amd.digest.clone(), arm.digest.clone()]);
            seed.manifests.extend([amd.digest, arm.digest]);
            index
        } else {
            let mut image = Image::oci(&name);
            for t in &names {
                image = image.tag(t);
            }
            let image = image.push(registry).await;
            doomed.push(image.digest.clone());
            image
        };
        seed.manifests.insert(top.digest.clone());
        for t in &names {
            seed.tags.insert(t.clone(), top.digest.clone());
        }
        if b % 4 == 1 {
            let sig = registry.cosign_signature(&top).await;
            seed.signatures += 1;
            seed.tags
                .insert(format!("{}.sig", top.fallback_tag()), sig.digest.clone());
            seed.manifests.insert(sig.digest.clone());
            doomed.push(sig.digest);
        }
        if b % 10 == 3 {
            let sbom = Image::oci(&name)
                .referrer_of(&top, "application/spdx+json")
                .push(registry)
                .await;
            let fallback = head_digest(&http, &registry.url, &name, &top.fallback_tag())
                .await
                .expect("the fallback index just pushed");
            seed.referrers += 1;
            seed.tags.insert(top.fallback_tag(), fallback.clone());
            seed.manifests.insert(fallback.clone());
            seed.manifests.insert(sbom.digest.clone());
            doomed.extend([fallback, sbom.digest]);
        }
        if pr {
            seed.delete.extend(doomed);
        }
        b += 1;
    }
    for _ in 0..untagged {
        let leftover = Image::oci(&name).push(registry).await;
        seed.manifests.insert(leftover.digest);
        seed.untagged += 1;
    }
    seed
}

/// The digest a tag or digest names (HEAD), `None` on 404.
async fn head_digest(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
) -> Option<String> {
    let r = http
        .head(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT_ALL)
        .send()
        .await
        .expect("manifest HEAD");
    match r.status().as_u16() {
        200 => Some(
            r.headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .expect("Docker-Content-Digest on a manifest HEAD")
                .to_owned(),
        ),
        404 => None,
        s => panic!("HEAD {repo}:{reference}: HTTP {s}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

struct RunContext {
    work: PathBuf,
    golden: PathBuf,
    listing: PathBuf,
    script: PathBuf,
    policy: PathBuf,
    /// `policy` plus `"trash":{"keep_for":"7d"}`, for the trash contender.
    trash_policy: PathBuf,
    time_bin: bool,
    concurrency: usize,
}

/// Restore a fresh copy, start a registry and a proxy on it, run the contender, check.
async fn run_contender(
    ctx: &RunContext,
    contender: Contender,
    latency: Duration,
    seeds: &[RepoSeed],
) -> (Run, Vec<String>) {
    let tag = format!("{contender:?}-{}ms", latency.as_millis()).to_lowercase();
    let storage = ctx.work.join(format!("storage-{tag}"));
    copy_dir(&ctx.golden, &storage);
    let registry = TestRegistry::start_on(&storage).await;
    let proxy = FlakyProxy::start_delayed(&registry.url, latency).await;
    let host = proxy.url.trim_start_matches("http://").to_owned();
    let out = ctx.work.join(format!("{tag}.out"));
    let err = ctx.work.join(format!("{tag}.err"));
    let rss_file = ctx.work.join(format!("{tag}.rss"));
    let concurrency = ctx.concurrency.to_string();
    let (program, args): (PathBuf, Vec<String>) = match contender {
        Contender::Baseline => (
            "bash".into(),
            vec![
                ctx.script.display().to_string(),
                host.clone(),
                ctx.listing.display().to_string(),
            ],
        ),
        Contender::Floor => (
            std::env::current_exe().expect("this bench's path"),
            vec![
                "floor".into(),
                proxy.url.clone(),
                ctx.listing.display().to_string(),
                concurrency.clone(),
            ],
        ),
        Contender::Janitor | Contender::Before | Contender::Trash => (
            if contender == Contender::Before {
                std::env::var_os("SWEEP_BEFORE_BIN")
                    .map(PathBuf::from)
                    .expect("the `before` contender needs SWEEP_BEFORE_BIN: another registry-janitor binary")
            } else {
                support::janitor::binary()
            },
            vec![
                "apply".into(),
                "--yes".into(),
                "--no-state".into(),
                "--format".into(),
                "json".into(),
                "--concurrency".into(),
                concurrency.clone(),
                "--registry".into(),
                proxy.url.clone(),
                "--policy".into(),
                if contender == Contender::Trash {
                    ctx.trash_policy.display().to_string()
                } else {
                    ctx.policy.display().to_string()
                },
            ],
        ),
    };
    let mut cmd = if ctx.time_bin {
        let mut c = tokio::process::Command::new("/usr/bin/time");
        c.arg("-f")
            .arg("%M %U %S")
            .arg("-o")
            .arg(&rss_file)
            .arg(&program);
        c
    } else {
        tokio::process::Command::new(&program)
    };
    cmd.args(&args)
        .env("HOME", &ctx.work)
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    let (registry_cpu0, proxy_cpu0) = (cpu_of(registry.pid()), cpu_of(std::process::id()));
    let t0 = Instant::now();
    let status = cmd
        .status()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let wall = t0.elapsed();
    let answered = proxy.answered();
    // Before the checks below, which read the registry too.
    let registry_cpu = cpu_of(registry.pid())
        .zip(registry_cpu0)
        .map(|(a, b)| a.saturating_sub(b));
    let proxy_cpu = cpu_of(std::process::id())
        .zip(proxy_cpu0)
        .map(|(a, b)| a.saturating_sub(b));
    let log = proxy.log();
    let mut timeline = timeline(&log, &answered, t0);
    if let Some(w) = race_window(&log, &answered) {
        timeline.push_str("; ");
        timeline.push_str(&w);
    }
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!(
            "exit status {status}; stderr (tail): {}",
            tail(&std::fs::read_to_string(&err).unwrap_or_default(), 1500)
        ));
    }
    let expected_deleted: usize = seeds.iter().map(|s| s.delete.len()).sum();
    let mut deleted = expected_deleted;
    if matches!(contender, Contender::Janitor | Contender::Before) {
        let (n, p) = check_janitor_report(&out, seeds, false);
        deleted = n;
        problems.extend(p);
    }
    if contender == Contender::Trash {
        let (n, p) = check_janitor_report(&out, seeds, true);
        deleted = n;
        problems.extend(p);
        problems.extend(check_trash_state(&registry.url, seeds).await);
    } else {
        problems.extend(check_state(&registry.url, seeds).await);
    }
    // `/usr/bin/time -f "%M %U %S"`: peak RSS in KiB, user and system seconds.
    let timed: Vec<String> = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| {
            s.lines()
                .last()
                .map(|l| l.split_whitespace().map(String::from).collect())
        })
        .unwrap_or_default();
    let rss_kib = timed.first().and_then(|v| v.parse().ok());
    let cpu = match (timed.get(1), timed.get(2)) {
        (Some(u), Some(s)) => match (u.parse::<f64>(), s.parse::<f64>()) {
            (Ok(u), Ok(s)) => Some(Duration::from_secs_f64(u + s)),
            _ => None,
        },
        _ => None,
    };
    drop(registry);
    let _ = std::fs::remove_dir_all(&storage);
    let mut breakdown = BTreeMap::new();
    for (method, path, _) in &log {
        *breakdown.entry(classify(method, path)).or_default() += 1;
    }
    (
        Run {
            contender,
            latency,
            wall,
            requests: log.len(),
            breakdown,
            timeline,
            rss_kib,
            cpu,
            registry_cpu,
            proxy_cpu,
            deleted,
        },
        problems,
    )
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..=s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}

/// What kind of request the proxy saw.
fn classify(method: &str, path: &str) -> String {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path == "/v2/" || path == "/v2" {
        return format!("{method} /v2/ (ping)");
    }
    if path.ends_with("/_catalog") {
        return format!("{method} catalog");
    }
    if path.ends_with("/tags/list") {
        return if query.contains("last=") {
            format!("{method} tags list (past the last tag)")
        } else {
            format!("{method} tags list")
        };
    }
    if path.contains("/referrers/") {
        return format!("{method} referrers");
    }
    if path.contains("/blobs/") {
        return format!("{method} blob");
    }
    if let Some((_, reference)) = path.rsplit_once("/manifests/") {
        let by = if reference.starts_with("sha256:") {
            "by digest"
        } else {
            "by tag"
        };
        return format!("{method} manifest {by}");
    }
    format!("{method} other")
}

/// The janitor's JSON report must delete exactly the expected manifests, without errors.
/// With `trash` (the trash contender), each must have gone to the trash instead (a `trash`
/// field), and the summary must count them as trashed, none deleted. Returns how many
/// entries succeeded.
fn check_janitor_report(out: &Path, seeds: &[RepoSeed], trash: bool) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let json: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return (
                0,
                vec![format!("report is not JSON ({e}): {}", tail(&text, 500))],
            )
        }
    };
    let verb = if trash { "trash" } else { "delete" };
    let mut problems = Vec::new();
    let mut done = 0;
    let repos = json["repositories"].as_array().cloned().unwrap_or_default();
    for seed in seeds {
        let Some(r) = repos.iter().find(|r| r["name"] == seed.name.as_str()) else {
            problems.push(format!("{}: not in the report", seed.name));
            continue;
        };
        if r["complete"] != Value::Bool(true) {
            problems.push(format!("{}: incomplete: {}", seed.name, r["error"]));
        }
        let mut got = BTreeSet::new();
        for d in r["delete"].as_array().into_iter().flatten() {
            let digest = d["digest"].as_str().unwrap_or_default().to_owned();
            let trash_tag = d["trash"]
                .as_str()
                .filter(|t| t.starts_with(TRASH_TAG_PREFIX));
            if !d["error"].is_null() {
                problems.push(format!(
                    "{}: {verb} of {digest} failed: {}",
                    seed.name, d["error"]
                ));
            } else if trash && trash_tag.is_none() {
                problems.push(format!(
                    "{}: delete entry {digest} has no trash tag: trash = {}",
                    seed.name, d["trash"]
                ));
            } else {
                done += 1;
            }
            got.insert(digest);
        }
        let want: BTreeSet<String> = seed.delete.iter().cloned().collect();
        for d in want.difference(&got) {
            problems.push(format!("{}: report does not {verb} {d}", seed.name));
        }
        for d in got.difference(&want) {
            problems.push(format!("{}: report {verb}s unexpected {d}", seed.name));
        }
    }
    if trash {
        let expected: usize = seeds.iter().map(|s| s.delete.len()).sum();
        let summary = &json["summary"];
        if summary["manifests_trashed"].as_u64() != Some(expected as u64) {
            problems.push(format!(
                "summary.manifests_trashed is {}, not {expected}",
                summary["manifests_trashed"]
            ));
        }
        if summary["manifests_deleted"].as_u64() != Some(0) {
            problems.push(format!(
                "summary.manifests_deleted is {}, not 0",
                summary["manifests_deleted"]
            ));
        }
    }
    (done, problems)
}

/// How `found` (tag -> digest) differs from `want`, in words.
fn tag_differences(
    repository: &str,
    found: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (t, d) in want {
        match found.get(t) {
            None => problems.push(format!("{repository}: tag {t} is missing")),
            Some(f) if f != d => problems.push(format!("{repository}: tag {t} names {f}, not {d}")),
            _ => {}
        }
    }
    for t in found.keys().filter(|t| !want.contains_key(*t)) {
        problems.push(format!("{repository}: tag {t} should be gone"));
    }
    problems
}

/// Every tag of `repository` and the digest it names (a HEAD each, 16 at once).
async fn tag_map(http: &reqwest::Client, base: &str, repository: &str) -> BTreeMap<String, String> {
    let tags = list_tags(http, base, repository).await;
    let found: Vec<(String, Option<String>)> = stream::iter(tags)
        .map(|t| async move {
            let d = head_digest(http, base, repository, &t).await;
            (t, d)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    found
        .into_iter()
        .filter_map(|(t, d)| d.map(|d| (t, d)))
        .collect()
}

/// Read the registry directly: every repository's tag -> digest map and which seeded
/// manifests still answer a HEAD; compare with what the policy should leave.
async fn check_state(base: &str, seeds: &[RepoSeed]) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut problems = Vec::new();
    for seed in seeds {
        let found = tag_map(&http, base, &seed.name).await;
        problems.extend(tag_differences(&seed.name, &found, &seed.expected_tags()));
        let present: Vec<(String, bool)> = stream::iter(seed.manifests.iter().cloned())
            .map(|d| {
                let http = &http;
                async move {
                    let here = head_digest(http, base, &seed.name, &d).await.is_some();
                    (d, here)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let present: BTreeSet<String> = present
            .into_iter()
            .filter(|(_, here)| *here)
            .map(|(d, _)| d)
            .collect();
        let want = seed.expected_present();
        for d in want.difference(&present) {
            problems.push(format!("{}: manifest {d} should still be there", seed.name));
        }
        for d in present.difference(&want) {
            problems.push(format!("{}: manifest {d} should be deleted", seed.name));
        }
    }
    problems
}

/// After the trash contender, read the registry directly: every seeded manifest is still
/// there; every repository's tags are the seeded ones minus those of the manifests the
/// janitor deletes, plus exactly one trash tag where there was something to delete; and that
/// trash index lists exactly those manifests.
async fn check_trash_state(base: &str, seeds: &[RepoSeed]) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut problems = Vec::new();
    for seed in seeds {
        let mut found = tag_map(&http, base, &seed.name).await;
        let trash_tags: Vec<String> = found
            .keys()
            .filter(|t| t.starts_with(TRASH_TAG_PREFIX))
            .cloned()
            .collect();
        let trash: Vec<(String, String)> = trash_tags
            .iter()
            .filter_map(|t| found.remove_entry(t))
            .collect();
        problems.extend(tag_differences(&seed.name, &found, &seed.expected_tags()));
        let expected: BTreeSet<String> = seed.delete.iter().cloned().collect();
        match (expected.is_empty(), trash.as_slice()) {
            (true, []) => {}
            (true, t) => problems.push(format!(
                "{}: nothing to trash, but trash tags {t:?}",
                seed.name
            )),
            (false, [(tag, digest)]) => {
                let r = http
                    .get(format!("{base}/v2/{}/manifests/{tag}", seed.name))
                    .header("accept", OCI_INDEX)
                    .send()
                    .await
                    .expect("trash index GET");
                let status = r.status();
                let body = r.bytes().await.expect("trash index body");
                let index: Value = if status == 200 {
                    serde_json::from_slice(&body).unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                if index.is_null() {
                    problems.push(format!(
                        "{}: trash index {tag} ({digest}): HTTP {status}, not an index: {}",
                        seed.name,
                        tail(&String::from_utf8_lossy(&body), 300)
                    ));
                    continue;
                }
                if index["artifactType"] != TRASH_ARTIFACT_TYPE {
                    problems.push(format!(
                        "{}: trash index {tag}: artifactType {}",
                        seed.name, index["artifactType"]
                    ));
                }
                let held: BTreeSet<String> = index["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["digest"].as_str().map(str::to_owned))
                    .collect();
                for d in expected.difference(&held) {
                    problems.push(format!("{}: trash {tag} does not hold {d}", seed.name));
                }
                for d in held.difference(&expected) {
                    problems.push(format!("{}: trash {tag} holds unexpected {d}", seed.name));
                }
            }
            (false, t) => problems.push(format!(
                "{}: {} trash tags, not exactly one: {t:?}",
                seed.name,
                t.len()
            )),
        }
        let present: Vec<(String, bool)> = stream::iter(seed.manifests.iter().cloned())
            .map(|d| {
                let http = &http;
                async move {
                    let here = head_digest(http, base, &seed.name, &d).await.is_some();
                    (d, here)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (d, here) in present {
            if !here {
                problems.push(format!(
                    "{}: manifest {d} was deleted (the trash deletes nothing)",
                    seed.name
                ));
            }
        }
    }
    problems
}

/// Requests by method of the janitor-like contenders, so the writes (PUT + DELETE) of the
/// janitor and of the trash can be compared, then the trash/janitor ratios.
fn by_method(runs: &[Run]) {
    const METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "DELETE", "POST"];
    let count = |r: &Run, m: &str| -> usize {
        r.breakdown
            .iter()
            .filter(|(k, _)| k.split_whitespace().next() == Some(m))
            .map(|(_, v)| v)
            .sum()
    };
    let writes = |r: &Run| count(r, "PUT") + count(r, "DELETE");
    let shown: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            matches!(
                r.contender,
                Contender::Janitor | Contender::Before | Contender::Trash
            )
        })
        .collect();
    if shown.is_empty() {
        return;
    }
    println!("\n# requests by method\n");
    println!("| added latency | contender | wall s | requests | GET | HEAD | PUT | DELETE | POST | other | writes (PUT + DELETE) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &shown {
        let known: usize = METHODS.iter().map(|m| count(r, m)).sum();
        println!(
            "| {} ms | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.latency.as_millis(),
            r.contender.name(),
            r.wall.as_secs_f64(),
            r.requests,
            count(r, "GET"),
            count(r, "HEAD"),
            count(r, "PUT"),
            count(r, "DELETE"),
            count(r, "POST"),
            r.requests - known,
            writes(r)
        );
    }
    let latencies: BTreeSet<Duration> = shown.iter().map(|r| r.latency).collect();
    for l in latencies {
        let find = |c: Contender| shown.iter().find(|r| r.latency == l && r.contender == c);
        let (Some(j), Some(t)) = (find(Contender::Janitor), find(Contender::Trash)) else {
            continue;
        };
        let ratio = |a: f64, b: f64| if b == 0.0 { f64::NAN } else { a / b };
        println!(
            "+{} ms: trash/janitor writes {}/{} = {:.3}, requests {}/{} = {:.3}, wall {:.2}/{:.2} s = {:.3}",
            l.as_millis(),
            writes(t),
            writes(j),
            ratio(writes(t) as f64, writes(j) as f64),
            t.requests,
            j.requests,
            ratio(t.requests as f64, j.requests as f64),
            t.wall.as_secs_f64(),
            j.wall.as_secs_f64(),
            ratio(t.wall.as_secs_f64(), j.wall.as_secs_f64())
        );
    }
}

/// Every tag of a repository (following `Link`), empty when it has none.
async fn list_tags(http: &reqwest::Client, base: &str, repo: &str) -> Vec<String> {
    let mut url = format!("{base}/v2/{repo}/tags/list");
    let mut tags = Vec::new();
    loop {
        let r = http.get(&url).send().await.expect("tags list");
        if r.status() == 404 {
            return tags;
        }
        assert_eq!(r.status(), 200, "GET {url}");
        let next = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.split(';').next())
            .map(|l| {
                format!(
                    "{base}{}",
                    l.trim().trim_start_matches('<').trim_end_matches('>')
                )
            });
        let v: Value = serde_json::from_slice(&r.bytes().await.expect("tags body"))
            .expect("tags list is JSON");
        tags.extend(
            v["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned)),
        );
        match next {
            Some(n) => url = n,
            None => return tags,
        }
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}", d.as_secs_f64()))
        .unwrap_or_else(|| "n/a".into())
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

fn print_run(run: &Run, to_delete: usize) {
    println!(
        "\n## {} at +{} ms per request: {:.2} s wall, {} requests ({:.2} per deleted manifest), peak RSS {} MiB, CPU {} s (registry {} s, proxy {} s), {} {} of {}",
        run.contender.name(),
        run.latency.as_millis(),
        run.wall.as_secs_f64(),
        run.requests,
        run.requests as f64 / to_delete as f64,
        mib(run.rss_kib),
        secs(run.cpu),
        secs(run.registry_cpu),
        secs(run.proxy_cpu),
        run.deleted,
        if run.contender == Contender::Trash {
            "trashed (none deleted)"
        } else {
            "deleted"
        },
        to_delete
    );
    let parts: Vec<String> = run
        .breakdown
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("   requests: {}", parts.join(", "));
    println!("   timeline: {}", run.timeline);
}

fn summary(runs: &[Run], to_delete: usize, budget: usize, concurrency: usize) {
    let trash_note = if runs.iter().any(|r| r.contender == Contender::Trash) {
        "; the trash contender moves them to the trash instead"
    } else {
        ""
    };
    println!("\n# summary ({to_delete} manifests deleted by each contender{trash_note})\n");
    println!(
        "| added latency | contender | wall s | requests | requests / deleted | peak RSS MiB | CPU s | registry CPU s | proxy CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        println!(
            "| {} ms | {} | {:.2} | {} | {:.2} | {} | {} | {} | {} |",
            r.latency.as_millis(),
            r.contender.name(),
            r.wall.as_secs_f64(),
            r.requests,
            r.requests as f64 / to_delete as f64,
            mib(r.rss_kib),
            secs(r.cpu),
            secs(r.registry_cpu),
            secs(r.proxy_cpu)
        );
    }
    let latencies: BTreeSet<Duration> = runs.iter().map(|r| r.latency).collect();
    println!();
    for l in latencies {
        let find = |c: Contender| runs.iter().find(|r| r.latency == l && r.contender == c);
        let Some(j) = find(Contender::Janitor) else {
            continue;
        };
        let mut line = format!("+{} ms:", l.as_millis());
        for (c, label) in [
            (Contender::Baseline, "baseline"),
            (Contender::Floor, "floor"),
        ] {
            if let Some(o) = find(c) {
                line.push_str(&format!(
                    " janitor/{label} wall {:.3} ({:.1}x {}), requests {:.2};",
                    j.wall.as_secs_f64() / o.wall.as_secs_f64(),
                    if j.wall <= o.wall {
                        o.wall.as_secs_f64() / j.wall.as_secs_f64()
                    } else {
                        j.wall.as_secs_f64() / o.wall.as_secs_f64()
                    },
                    if j.wall <= o.wall { "faster" } else { "slower" },
                    j.requests as f64 / o.requests as f64
                ));
            }
        }
        if let Some(b) = find(Contender::Before) {
            line.push_str(&format!(
                " janitor/before wall {:.3}, requests {}/{} = {:.3};",
                j.wall.as_secs_f64() / b.wall.as_secs_f64(),
                j.requests,
                b.requests,
                j.requests as f64 / b.requests as f64
            ));
        }
        line.push_str(&format!(
            " janitor requests vs issue budget {}/{budget} = {:.2}",
            j.requests,
            j.requests as f64 / budget as f64
        ));
        println!("{line}");
        if !l.is_zero() {
            // The added latency alone, with every request slot always busy: the baseline
            // sends one request at a time, the floor `concurrency`, and the janitor
            // `concurrency` changes and READS_PER_WRITE times as many reads side by side.
            let bound = |r: &Run| {
                let rounds = match r.contender {
                    Contender::Baseline => r.requests,
                    Contender::Floor => r.requests.div_ceil(concurrency),
                    Contender::Janitor | Contender::Before | Contender::Trash => {
                        let reads: usize = r
                            .breakdown
                            .iter()
                            .filter(|(k, _)| k.starts_with("GET") || k.starts_with("HEAD"))
                            .map(|(_, v)| v)
                            .sum();
                        let writes = r.requests - reads;
                        let read_slots = concurrency * registry_janitor::registry::READS_PER_WRITE;
                        reads.div_ceil(read_slots).max(writes.div_ceil(concurrency))
                    }
                };
                rounds as f64 * l.as_secs_f64()
            };
            let parts: Vec<String> = runs
                .iter()
                .filter(|r| r.latency == l)
                .map(|r| {
                    format!(
                        "{} {:.1} s (measured {:.1} s)",
                        r.contender.name(),
                        bound(r),
                        r.wall.as_secs_f64()
                    )
                })
                .collect();
            println!(
                "   +{} ms, least time the added latency alone costs: {}",
                l.as_millis(),
                parts.join("; ")
            );
        }
    }
}

/// The binary's size, and cold start under a minimal Lambda runtime API emulator: from
/// spawning the process to (a) its first `GET .../invocation/next` (init done) and (b) the
/// response to its first event, a dry-run sweep of a 3-tag repository on a loopback registry.
async fn cold_start(settings: &Settings, work: &Path) {
    let (bin, label) = match std::env::var_os("JANITOR_RELEASE_BIN") {
        Some(p) => (PathBuf::from(p), "release binary (JANITOR_RELEASE_BIN)"),
        None => (
            support::janitor::binary(),
            "bench-profile binary (set JANITOR_RELEASE_BIN for the release one)",
        ),
    };
    let size = std::fs::metadata(&bin)
        .map(|m| m.len())
        .unwrap_or_else(|e| {
            panic!("{}: {e}", bin.display());
        });
    println!(
        "\n# binary and cold start\n{label}: {} ({size} bytes, {:.2} MiB)",
        bin.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    if settings.cold_runs == 0 {
        return;
    }
    let registry = TestRegistry::start().await;
    let repo = "bench/cold";
    let amd = Image::oci(repo)
        .platform("linux", "amd64")
        .push(&registry)
        .await;
    let arm = Image::oci(repo)
        .platform("linux", "arm64")
        .push(&registry)
        .await;
    let index = registry.index(repo, &[&amd, &arm], &["latest"]).await;
    registry.cosign_signature(&index).await;
    Image::oci(repo).tag("pr-1").push(&registry).await;

    let mut ready = Vec::new();
    let mut handled = Vec::new();
    for i in 0..settings.cold_runs {
        let (r, h) = cold_start_once(&bin, &registry.url, repo, work, i).await;
        ready.push(r);
        handled.push(h);
    }
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        format!(
            "min {:.1} ms, median {:.1} ms, max {:.1} ms",
            v[0].as_secs_f64() * 1e3,
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3
        )
    };
    println!(
        "cold start over {} runs: process start -> first poll of the runtime API (init done): {}",
        settings.cold_runs,
        stats(&mut ready)
    );
    println!(
        "cold start over {} runs: process start -> response to the first event (a dry-run sweep of a 3-tag repository on loopback): {}",
        settings.cold_runs,
        stats(&mut handled)
    );
}

#[derive(Default)]
struct Emulated {
    ready: Option<Instant>,
    handled: Option<Instant>,
    answer: Option<(String, Vec<u8>)>,
    polls: usize,
}

async fn cold_start_once(
    bin: &Path,
    registry: &str,
    repo: &str,
    work: &Path,
    i: usize,
) -> (Duration, Duration) {
    let state: Arc<Mutex<Emulated>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let event = serde_json::json!({ "repository": repo }).to_string();
    let (shared, notify) = (state.clone(), done.clone());
    let handler: Handler = Arc::new(move |req| {
        let state = shared.clone();
        let done = notify.clone();
        let event = event.clone();
        Box::pin(async move {
            let now = Instant::now();
            let path = req.uri().path().to_owned();
            if req.method() == "GET" && path == "/2018-06-01/runtime/invocation/next" {
                let first = {
                    let mut s = state.lock().expect("emulator state");
                    s.polls += 1;
                    s.ready.get_or_insert(now);
                    s.polls == 1
                };
                if !first {
                    // The process is killed before this answers.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return Ok(response(204, &[], ""));
                }
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis()
                    + 900_000;
                let deadline = deadline.to_string();
                return Ok(response(
                    200,
                    &[
                        ("content-type", "application/json"),
                        ("lambda-runtime-aws-request-id", "cold-start-1"),
                        ("lambda-runtime-deadline-ms", deadline.as_str()),
                        (
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:000000000000:function:registry-janitor",
                        ),
                    ],
                    event,
                ));
            }
            if req.method() == "POST" && path.starts_with("/2018-06-01/runtime/invocation/") {
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_default();
                {
                    let mut s = state.lock().expect("emulator state");
                    s.handled.get_or_insert(now);
                    s.answer = Some((path, body));
                }
                done.notify_one();
                return Ok(response(202, &[], "{}"));
            }
            Ok(response(404, &[], "{}"))
        })
    });
    let addr = serve(handler).await;
    let home = work.join(format!("cold-{i}"));
    std::fs::create_dir_all(&home).expect("cold start home");
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "registry-janitor")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("JANITOR_REGISTRY", registry)
        .env("JANITOR_POLICY", POLICY)
        .env("JANITOR_DRY_RUN", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let waited = tokio::time::timeout(Duration::from_secs(60), done.notified()).await;
    let _ = child.kill().await;
    assert!(
        waited.is_ok(),
        "cold start: no response to the first event within 60 s"
    );
    let s = state.lock().expect("emulator state");
    let (path, body) = s.answer.clone().expect("an answer");
    assert!(
        path.ends_with("/response"),
        "cold start: the function reported an error at {path}: {}",
        String::from_utf8_lossy(&body)
    );
    let report: Value = serde_json::from_slice(&body).expect("the answer is JSON");
    assert!(
        report["repositories"].is_array(),
        "cold start: the answer is not a report: {report}"
    );
    let ready = s.ready.expect("a poll") - t0;
    let handled = s.handled.expect("an answer") - t0;
    (ready, handled)
}
