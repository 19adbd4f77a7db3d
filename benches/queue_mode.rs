//! The queue mode benchmark: what the webhook answer costs, and what converging through the
//! queue costs next to one in-process sweep.
//!
//! 1. It seeds a real `docker-registry` on loopback (not timed): `QUEUE_BENCH_REPOS`
//!    repositories `r<i>`, each with `v1` and `QUEUE_BENCH_PRS` PR builds `pr-<n>`, plus one
//!    repository no rule covers (`other`, with a `pr-1`). The policy deletes every `pr-*` tag
//!    with its manifest in the `r<i>` repositories. It copies the storage folder and starts a
//!    twin registry on the copy (`TestRegistry::start_on`), and a counting proxy delaying
//!    every request by `QUEUE_BENCH_LATENCY_MS` (`FlakyProxy::start_delayed`) in front of each.
//! 2. Webhook time to 202: the function (a debug build) under `cargo lambda watch` with
//!    `JANITOR_QUEUE_URL` set (an SQS FIFO queue on `moto_server`) gets
//!    `QUEUE_BENCH_WARMUP` deliveries to warm it, then `QUEUE_BENCH_DELIVERIES` distribution
//!    push notifications, one after another, each with its own event id, spread over the first
//!    `QUEUE_BENCH_WEBHOOK_REPOS` repositories. Each is timed at the client from send to the
//!    end of the answer. The function's own time comes from its JSON log (the `invocation`
//!    line at the start of the handler to the `queued` line after the queue answered). The
//!    webhook must not touch the registry, and the queue must hold one message per delivery.
//! 3. Convergence: a fresh queue (visibility `QUEUE_BENCH_VISIBILITY_SECONDS`) and the
//!    function restarted with `JANITOR_MAX_RUN_SECONDS` and `JANITOR_CONCURRENCY`; a schedule
//!    event dispatches, then `support::sqs_driver::Driver::drain` stands in for the event
//!    source mapping until the queue is empty. The twin is swept once in this process by the
//!    library (`wiring::Settings::wire`, `Sweeper::run`) with the same concurrency and a file
//!    inventory, as the function has. Both proxies count requests; the bench then reads both
//!    registries directly and fails unless they hold the same tags, digests and manifests,
//!    and exactly what the policy leaves.
//!
//! `cargo bench --locked --bench queue_mode`; knobs are the `QUEUE_BENCH_*` variables above
//! and `QUEUE_BENCH_CONCURRENCY`, `QUEUE_BENCH_DRAIN_LIMIT`, `QUEUE_BENCH_WATCH_RUST_LOG`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use support::lambda_watch::{function_env, push_notification, scheduled_event, Watch};
use support::moto::Moto;
use support::proxy::FlakyProxy;
use support::sqs_driver::{Driver, Polled};
use support::{env_usize, Image, TestRegistry};

const SECRET: &str = "webhook-s3cret";
/// Every `pr-*` tag in the `r<i>` repositories goes, with its manifest; other tags stay.
const POLICY: &str =
    r#"{"rules":[{"name":"pr","repositories":"r[0-9]+","select":"tagged","tags":"pr-.*"}]}"#;
/// A repository no rule covers: the dispatch skips it and it keeps its `pr-1`.
const UNCOVERED: &str = "other";

struct Settings {
    deliveries: usize,
    warmup: usize,
    webhook_repos: usize,
    repos: usize,
    prs: usize,
    latency: Duration,
    concurrency: usize,
    max_run_seconds: usize,
    visibility: Duration,
    drain_limit: usize,
    /// `RUST_LOG` for `cargo lambda watch` itself (its request log); empty: not set.
    watch_rust_log: String,
}

impl Settings {
    fn from_env() -> Settings {
        let s = Settings {
            deliveries: env_usize("QUEUE_BENCH_DELIVERIES", 200),
            warmup: env_usize("QUEUE_BENCH_WARMUP", 5),
            webhook_repos: env_usize("QUEUE_BENCH_WEBHOOK_REPOS", 20),
            repos: env_usize("QUEUE_BENCH_REPOS", 40),
            prs: env_usize("QUEUE_BENCH_PRS", 3),
            latency: Duration::from_millis(env_usize("QUEUE_BENCH_LATENCY_MS", 20) as u64),
            concurrency: env_usize("QUEUE_BENCH_CONCURRENCY", 2),
            max_run_seconds: env_usize("QUEUE_BENCH_MAX_RUN_SECONDS", 1),
            visibility: Duration::from_secs(env_usize("QUEUE_BENCH_VISIBILITY_SECONDS", 1) as u64),
            drain_limit: env_usize("QUEUE_BENCH_DRAIN_LIMIT", 200),
            watch_rust_log: std::env::var("QUEUE_BENCH_WATCH_RUST_LOG")
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        };
        assert!(
            s.repos > 0 && s.prs > 0,
            "QUEUE_BENCH_REPOS and _PRS: at least 1"
        );
        assert!(
            (1..=s.repos).contains(&s.webhook_repos),
            "QUEUE_BENCH_WEBHOOK_REPOS: 1 to QUEUE_BENCH_REPOS"
        );
        assert!(s.deliveries > 0, "QUEUE_BENCH_DELIVERIES: at least 1");
        s
    }
}

/// What seeding put in one repository.
#[derive(Clone)]
struct Seeded {
    name: String,
    v1: String,
    prs: Vec<String>,
}

fn main() -> ExitCode {
    support::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// "p50 / p99 / max" in ms of some durations.
struct Spread {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Spread {
    fn of(values: &[Duration]) -> Spread {
        let mut v = values.to_vec();
        v.sort();
        Spread {
            n: v.len(),
            p50: percentile(&v, 50.0),
            p99: percentile(&v, 99.0),
            max: v.last().copied().unwrap_or_default(),
        }
    }

    fn text(&self) -> String {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.n
        )
    }
}

async fn seed(registry: &TestRegistry, name: String, prs: usize) -> Seeded {
    let v1 = Image::oci(&name).tag("v1").push(registry).await.digest;
    let mut digests = Vec::new();
    for n in 1..=prs {
        digests.push(
            Image::oci(&name)
                .tag(&format!("pr-{n}"))
                .push(registry)
                .await
                .digest,
        );
    }
    Seeded {
        name,
        v1,
        prs: digests,
    }
}

/// One finished invocation as the function logged it: the message of the line that ended
/// it (`queued`, `run summary`, ...), its fields, and the time from the `invocation` line.
struct Logged {
    message: String,
    fields: Value,
    took: Duration,
}

/// The function's JSON log lines in the watch log, each invocation from its `invocation`
/// line (logged first by the handler) to the first of `ends` after it. The invocations are
/// sequential here, so each end belongs to the invocation line before it.
fn function_invocations(log: &str, ends: &[&str]) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut started: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    for line in log.lines() {
        let Some(at) = line.find('{') else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&line[at..]) else {
            continue;
        };
        let Some(ts) = v["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        if message == "invocation" {
            started = Some(ts);
        } else if ends.contains(&message) {
            if let Some(s) = started.take() {
                out.push(Logged {
                    message: message.to_owned(),
                    fields: v["fields"].clone(),
                    took: (ts - s).to_std().unwrap_or_default(),
                });
            }
        }
    }
    out
}

/// `cargo lambda watch`'s own request log (tower-http's `finished processing request ...
/// latency=N ms`), when its `RUST_LOG` lets it through: the latencies of requests to the
/// function URL, in order.
fn watch_latencies(log: &str) -> Vec<Duration> {
    log.lines()
        .filter(|l| l.contains("finished processing request") && l.contains("lambda-url"))
        .filter_map(|l| {
            let rest = &l[l.find("latency=")? + "latency=".len()..];
            let number: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let value: f64 = number.parse().ok()?;
            let unit = rest[number.len()..].trim_start();
            let secs = if unit.starts_with("ms") {
                value / 1e3
            } else if unit.starts_with("µs") || unit.starts_with("us") {
                value / 1e6
            } else if unit.starts_with("ns") {
                value / 1e9
            } else if unit.starts_with('s') {
                value
            } else {
                return None;
            };
            Some(Duration::from_secs_f64(secs))
        })
        .collect()
}

/// Requests a proxy saw, counted the ways the summary needs.
#[derive(Default)]
struct Requests {
    total: usize,
    /// GET and HEAD.
    reads: usize,
    /// DELETE, PUT and PATCH.
    writes: usize,
    /// Anything else (POST...): neither.
    other: usize,
    /// `DELETE .../manifests/<digest>` answered 202.
    deleted: usize,
    /// Answers other than 2xx.
    errors: usize,
    /// "METHOD endpoint" -> count.
    breakdown: BTreeMap<String, usize>,
}

/// What kind of endpoint a request path is, for the breakdown.
fn endpoint(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/v2/" || path == "/v2" {
        "/v2/"
    } else if path.starts_with("/v2/_catalog") {
        "catalog"
    } else if path.ends_with("/tags/list") {
        "tags list"
    } else if let Some((_, reference)) = path.split_once("/manifests/") {
        if reference.starts_with("sha256:") {
            "manifest by digest"
        } else {
            "manifest by tag"
        }
    } else if path.contains("/referrers/") {
        "referrers"
    } else if path.contains("/blobs/") {
        "blob"
    } else {
        "other"
    }
}

impl Requests {
    fn of(log: &[(String, String, u16)]) -> Requests {
        let mut r = Requests::default();
        for (method, path, status) in log {
            r.total += 1;
            match method.as_str() {
                "GET" | "HEAD" => r.reads += 1,
                "DELETE" | "PUT" | "PATCH" => r.writes += 1,
                _ => r.other += 1,
            }
            if method == "DELETE" && path.contains("/manifests/sha256:") && *status == 202 {
                r.deleted += 1;
            }
            if !(200..300).contains(status) {
                r.errors += 1;
            }
            *r.breakdown
                .entry(format!("{method} {}", endpoint(path)))
                .or_default() += 1;
        }
        r
    }

    fn breakdown_text(&self) -> String {
        self.breakdown
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn per(n: usize, d: usize) -> f64 {
    if d == 0 {
        f64::NAN
    } else {
        n as f64 / d as f64
    }
}

/// `per` with three decimals, or "-" when nothing was deleted.
fn per_text(n: usize, d: usize) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.3}", per(n, d))
    }
}

/// POST one delivery; (status, answer, time from send to the end of the answer).
async fn post_webhook(watch: &Watch, body: &str) -> (u16, Value, Duration) {
    let t0 = Instant::now();
    let (status, text) = watch.post_webhook(SECRET, body).await;
    let took = t0.elapsed();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        took,
    )
}

/// Which seeded manifests a registry still has: "repo@digest" -> present.
async fn manifests(registry: &TestRegistry, seeds: &[Seeded]) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for s in seeds {
        for d in std::iter::once(&s.v1).chain(&s.prs) {
            out.insert(
                format!("{}@{d}", s.name),
                registry.has_manifest(&s.name, d).await,
            );
        }
    }
    out
}

/// The differences between two maps, a line each (at most `limit`).
fn differences<V: PartialEq + std::fmt::Debug>(
    what: &str,
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
    limit: usize,
) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .take(limit)
        .map(|k| {
            format!(
                "{what} {k}: queue path {:?}, in-process {:?}",
                a.get(k),
                b.get(k)
            )
        })
        .collect()
}

async fn bench() -> ExitCode {
    let settings = Settings::from_env();
    let bench_started = Instant::now();
    let mut problems: Vec<String> = Vec::new();
    println!(
        "# queue mode: {} repositories x (v1 + {} pr-* builds) + 1 uncovered; {} webhook deliveries over {} repositories; +{} ms per registry request; concurrency {}",
        settings.repos,
        settings.prs,
        settings.deliveries,
        settings.webhook_repos,
        settings.latency.as_millis(),
        settings.concurrency
    );
    println!(
        "the function is a DEBUG build (dev profile) run by `cargo lambda watch` from {}; SQS is moto_server on loopback",
        support::lambda_watch::TARGET_DIR
    );

    // Seed, then the twin on a copy of the storage.
    let t = Instant::now();
    let registry = TestRegistry::start().await;
    let mut seeds: Vec<Seeded> = stream::iter(0..settings.repos)
        .map(|i| seed(&registry, format!("r{i}"), settings.prs))
        .buffer_unordered(4)
        .collect()
        .await;
    seeds.sort_by_key(|s| s.name[1..].parse::<usize>().unwrap_or(usize::MAX));
    let uncovered = seed(&registry, UNCOVERED.to_owned(), 1).await;
    let copy = tempfile::tempdir().expect("storage copy");
    support::run(
        "cp",
        &[
            "-a",
            &format!("{}/.", registry.storage().display()),
            &copy.path().display().to_string(),
        ],
    );
    let twin = TestRegistry::start_on(copy.path()).await;
    let proxy = FlakyProxy::start_delayed(&registry.url, settings.latency).await;
    let twin_proxy = FlakyProxy::start_delayed(&twin.url, settings.latency).await;
    let to_delete = settings.repos * settings.prs;
    println!(
        "seeded in {:.1} s (not timed below): {} manifests, {} to delete; twin registry on a copy of the storage",
        t.elapsed().as_secs_f64(),
        settings.repos * (settings.prs + 1) + 2,
        to_delete
    );
    let moto = Moto::start().await;

    // ---- 1. Webhook time to 202 ----
    let hooks = Driver::fifo_queue(&moto, "janitor-webhooks", Duration::from_secs(30)).await;
    let hook_dir = tempfile::tempdir().expect("function folder");
    let mut env = function_env(
        &proxy.url,
        hook_dir.path(),
        POLICY,
        &[
            ("JANITOR_QUEUE_URL", hooks.url.as_str()),
            ("JANITOR_DRY_RUN", "false"),
            ("JANITOR_WEBHOOK_SECRET", SECRET),
        ],
    );
    env.extend(moto.env());
    if !settings.watch_rust_log.is_empty() {
        env.push(("RUST_LOG".into(), settings.watch_rust_log.clone()));
    }
    let t = Instant::now();
    let watch = Watch::start(&env).await;
    println!(
        "\n## 1. webhook time to 202\n`cargo lambda watch` served the function after {:.1} s (a build of the dev profile when the sources changed; its readiness probes started the function)",
        t.elapsed().as_secs_f64()
    );
    let delivery = |k: usize, prefix: &str| {
        let seed = &seeds[k % settings.webhook_repos];
        let n = (k / settings.webhook_repos) % settings.prs;
        push_notification(
            &format!("{prefix}-{k}"),
            &seed.name,
            &seed.prs[n],
            &format!("pr-{}", n + 1),
        )
    };
    let mut warm_times = Vec::new();
    for k in 0..settings.warmup {
        let (status, answer, took) = post_webhook(&watch, &delivery(k, "warm")).await;
        if status != 202 {
            problems.push(format!("warm-up delivery {k}: HTTP {status} {answer}"));
        }
        warm_times.push(took);
    }
    let mut times = Vec::with_capacity(settings.deliveries);
    let mut accepted = 0;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let hooks_started = Instant::now();
    for k in 0..settings.deliveries {
        let (status, answer, took) = post_webhook(&watch, &delivery(k, "ev")).await;
        *statuses.entry(status).or_default() += 1;
        if status == 202 && answer == json!({"queued": 1}) {
            accepted += 1;
        } else if problems.len() < 20 {
            problems.push(format!("delivery ev-{k}: HTTP {status} {answer}"));
        }
        times.push(took);
    }
    let hooks_wall = hooks_started.elapsed();
    let hook_log = watch.log();
    drop(watch);
    let registry_touched = proxy.log().len();
    if registry_touched != 0 {
        problems.push(format!(
            "the webhooks touched the registry: {registry_touched} requests"
        ));
    }
    let (visible, in_flight) = hooks.depth().await;
    let sent = (settings.warmup + settings.deliveries) as u64;
    if visible + in_flight != sent {
        problems.push(format!(
            "the webhook queue holds {visible} + {in_flight} messages, not one per delivery ({sent})"
        ));
    }
    let client = Spread::of(&times);
    let logged = function_invocations(&hook_log, &["queued", "webhook refused"]);
    let queued: Vec<&Logged> = logged.iter().filter(|l| l.message == "queued").collect();
    let function = (queued.len() >= settings.deliveries).then(|| {
        let own: Vec<Duration> = queued[queued.len() - settings.deliveries..]
            .iter()
            .map(|l| l.took)
            .collect();
        Spread::of(&own)
    });
    let watch_lat = watch_latencies(&hook_log);
    let watch_spread = (watch_lat.len() >= settings.deliveries)
        .then(|| Spread::of(&watch_lat[watch_lat.len() - settings.deliveries..]));
    let over_300 = times
        .iter()
        .filter(|t| **t >= Duration::from_millis(300))
        .count();
    println!(
        "warm-up: {} deliveries before measuring ({}); the function is warm",
        settings.warmup,
        warm_times
            .iter()
            .map(|t| format!("{:.1} ms", ms(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{} deliveries in {:.2} s, one after another; answers: {}; queue depth after: {} visible, {} in flight; registry requests during the webhooks: {}",
        settings.deliveries,
        hooks_wall.as_secs_f64(),
        statuses
            .iter()
            .map(|(s, n)| format!("HTTP {s} x{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        visible,
        in_flight,
        registry_touched
    );
    let slowest: Vec<String> = {
        let mut idx: Vec<usize> = (0..times.len()).collect();
        idx.sort_by_key(|i| std::cmp::Reverse(times[*i]));
        idx.iter()
            .take(5)
            .map(|i| format!("#{i} {:.1} ms", ms(times[*i])))
            .collect()
    };
    println!("slowest deliveries (index from 0): {}", slowest.join(", "));
    let tenth = times.len().div_ceil(10);
    let by_order: Vec<String> = times
        .chunks(tenth)
        .map(|c| format!("{:.1}", ms(c.iter().sum::<Duration>()) / c.len() as f64))
        .collect();
    println!(
        "client ms by delivery order (mean of each tenth, first to last): {}",
        by_order.join(" ")
    );
    // moto's own SendMessage time, from this process: on a fresh FIFO queue, and on the
    // webhook queue now that it holds every delivery (after the depth was read above).
    let probe = Driver::fifo_queue(&moto, "janitor-probe", Duration::from_secs(30)).await;
    let mut moto_times = Vec::new();
    for (label, queue) in [("empty", &probe.url), ("webhook", &hooks.url)] {
        let mut took = Vec::new();
        for k in 0..10 {
            let t = Instant::now();
            hooks
                .client
                .send_message()
                .queue_url(queue.as_str())
                .message_body(format!("{{\"probe\": {k}}}"))
                .message_group_id(format!("probe-{k}"))
                .message_deduplication_id(format!("probe-{label}-{k}"))
                .send()
                .await
                .expect("probe SendMessage");
            took.push(t.elapsed());
        }
        moto_times.push((label, Spread::of(&took)));
    }
    println!(
        "moto SendMessage from the bench (10 each): to an empty FIFO queue {}; to the webhook queue ({} deep) {}",
        moto_times[0].1.text(),
        visible + in_flight,
        moto_times[1].1.text()
    );
    let na = || "n/a".to_owned();
    println!("\n| webhook figure | value |\n|---|---|");
    println!(
        "| deliveries measured (after {} warm-up) | {} |",
        settings.warmup, settings.deliveries
    );
    println!("| answered 202 `{{\"queued\":1}}` | {accepted} |");
    println!(
        "| client send -> answer p50 / p99 / max ms | {:.1} / {:.1} / {:.1} |",
        ms(client.p50),
        ms(client.p99),
        ms(client.max)
    );
    println!(
        "| function's own time (its log: invocation -> queued) p50 / p99 / max ms | {} |",
        function
            .as_ref()
            .map(|f| format!("{:.1} / {:.1} / {:.1}", ms(f.p50), ms(f.p99), ms(f.max)))
            .unwrap_or_else(na)
    );
    println!(
        "| `cargo lambda watch` request latency (its log) p50 / p99 / max ms | {} |",
        watch_spread
            .as_ref()
            .map(|f| format!("{:.1} / {:.1} / {:.1}", ms(f.p50), ms(f.p99), ms(f.max)))
            .unwrap_or_else(na)
    );
    println!("| deliveries at or over 300 ms at the client | {over_300} |");
    println!();
    println!("webhook.deliveries = {}", settings.deliveries);
    println!("webhook.answered_202 = {accepted}");
    println!("webhook.client_ms.p50 = {:.1}", ms(client.p50));
    println!("webhook.client_ms.p99 = {:.1}", ms(client.p99));
    println!("webhook.client_ms.max = {:.1}", ms(client.max));
    match &function {
        Some(f) => {
            println!("webhook.function_ms.p50 = {:.1}", ms(f.p50));
            println!("webhook.function_ms.p99 = {:.1}", ms(f.p99));
            println!("webhook.function_ms.max = {:.1}", ms(f.max));
        }
        None => println!(
            "webhook.function_ms = n/a (found {} `queued` log lines, wanted {})",
            queued.len(),
            settings.deliveries
        ),
    }
    match &watch_spread {
        Some(w) => println!("webhook.watch_latency_ms = {}", w.text()),
        None => println!(
            "webhook.watch_latency_ms = n/a (`cargo lambda watch` logged {} request latencies; QUEUE_BENCH_WATCH_RUST_LOG={:?})",
            watch_lat.len(),
            settings.watch_rust_log
        ),
    }
    println!("webhook.client_ms_at_or_over_300 = {over_300}");
    println!(
        "target (issue): under 300 ms at the function: {}",
        match &function {
            Some(f) if f.max < Duration::from_millis(300) => format!(
                "met, every delivery (function max {:.1} ms, client max {:.1} ms)",
                ms(f.max),
                ms(client.max)
            ),
            Some(f) => format!(
                "NOT met by {} deliveries (function p99 {:.1} ms, max {:.1} ms)",
                queued[queued.len() - settings.deliveries..]
                    .iter()
                    .filter(|l| l.took >= Duration::from_millis(300))
                    .count(),
                ms(f.p99),
                ms(f.max)
            ),
            None => format!(
                "function time not in the log; at the client {over_300} of {} at or over 300 ms",
                settings.deliveries
            ),
        }
    );
    if accepted != settings.deliveries {
        problems.push(format!(
            "{accepted} of {} deliveries answered 202 {{\"queued\":1}}",
            settings.deliveries
        ));
    }

    // ---- 2. Convergence through the queue ----
    println!("\n## 2. convergence: queue path vs one in-process sweep");
    let work = Driver::fifo_queue(&moto, "janitor-work", settings.visibility).await;
    let work_dir = tempfile::tempdir().expect("function folder");
    let (max_run, concurrency) = (
        settings.max_run_seconds.to_string(),
        settings.concurrency.to_string(),
    );
    let mut env = function_env(
        &proxy.url,
        work_dir.path(),
        POLICY,
        &[
            ("JANITOR_QUEUE_URL", work.url.as_str()),
            ("JANITOR_DRY_RUN", "false"),
            ("JANITOR_WEBHOOK_SECRET", SECRET),
            ("JANITOR_MAX_RUN_SECONDS", max_run.as_str()),
            ("JANITOR_CONCURRENCY", concurrency.as_str()),
        ],
    );
    env.extend(moto.env());
    let t = Instant::now();
    let watch = Watch::start(&env).await;
    println!(
        "`cargo lambda watch` restarted with JANITOR_MAX_RUN_SECONDS={} JANITOR_CONCURRENCY={} in {:.1} s; SQS visibility timeout {} s",
        settings.max_run_seconds,
        settings.concurrency,
        t.elapsed().as_secs_f64(),
        settings.visibility.as_secs()
    );
    proxy.clear_log();
    let t0 = Instant::now();
    let answer = watch.invoke(&scheduled_event("bench-converge")).await;
    let dispatch_wall = t0.elapsed();
    let dispatch_log = proxy.log();
    if answer["queued"] != json!(settings.repos) {
        problems.push(format!(
            "the schedule queued {}, not {}",
            answer["queued"], settings.repos
        ));
    }
    let polls: Vec<Polled> = work.drain(&watch, settings.drain_limit).await;
    let queue_wall = t0.elapsed();
    let queue_log = proxy.log();
    let work_log = watch.log();
    drop(watch);
    let queue_req = Requests::of(&queue_log);
    let dispatch_req = Requests::of(&dispatch_log);
    let handed_over: usize = polls.iter().map(|p| p.records.len()).sum();
    let handed_back: usize = polls.iter().map(|p| p.failures.len()).sum();
    let workers = function_invocations(&work_log, &["run summary", "queued"]);
    let summaries: Vec<&Logged> = workers
        .iter()
        .filter(|l| l.message == "run summary" && l.fields["origin"] == "queue")
        .collect();
    let logged_deleted: u64 = summaries
        .iter()
        .map(|l| l.fields["manifests_deleted"].as_u64().unwrap_or(0))
        .sum();
    let worker_time: Duration = summaries.iter().map(|l| l.took).sum();
    let per_poll: Vec<String> = polls
        .iter()
        .map(|p| format!("{}/{}", p.records.len(), p.failures.len()))
        .collect();
    println!(
        "queue path: schedule dispatched in {:.2} s ({} registry requests: {}), then {} worker invocations (records handed over/back per invocation: {})",
        dispatch_wall.as_secs_f64(),
        dispatch_req.total,
        dispatch_req.breakdown_text(),
        polls.len(),
        per_poll.join(" ")
    );
    println!(
        "queue path: the function's own time over the {} worker invocations (its log: invocation -> run summary): {:.2} s; it logged {} manifests deleted",
        summaries.len(),
        worker_time.as_secs_f64(),
        logged_deleted
    );
    if summaries.len() != polls.len() {
        problems.push(format!(
            "{} run summaries in the function's log for {} worker invocations",
            summaries.len(),
            polls.len()
        ));
    }

    // The twin, swept once in this process with the same concurrency.
    let state_dir = tempfile::tempdir().expect("state folder");
    let policy = registry_janitor::policy::Policy::from_json(POLICY).expect("policy");
    twin_proxy.clear_log();
    let t0 = Instant::now();
    let mut wired = registry_janitor::wiring::Settings {
        registry: twin_proxy.url.clone(),
        client: registry_janitor::registry::ClientOptions {
            in_flight: settings.concurrency,
            ..Default::default()
        },
        inventory: registry_janitor::wiring::Inventory::File(state_dir.path().join("state.json")),
        journal: None,
    }
    .wire()
    .expect("wire the in-process sweep");
    let now = chrono::Utc::now();
    let mut sweeper = wired.sweeper(&policy, now);
    let repos = registry_janitor::sweep::scope(sweeper.client, &policy, &[])
        .await
        .expect("scope");
    let outcome = sweeper
        .run(&repos, true, |_, _, _| {})
        .await
        .expect("in-process sweep");
    let inproc_wall = t0.elapsed();
    let report = registry_janitor::report::Report::new(now, false, outcome.repositories)
        .left_for_next_run(outcome.unfinished);
    let inproc_req = Requests::of(&twin_proxy.log());
    if report.has_failures() || !report.unfinished.is_empty() {
        problems.push(format!(
            "the in-process sweep failed or left work: unfinished {:?}",
            report.unfinished
        ));
    }
    println!(
        "in-process: one sweep of {} repositories, {:.2} s; report: {} manifests deleted",
        repos.len(),
        inproc_wall.as_secs_f64(),
        report.summary.manifests_deleted
    );

    // Both registries, read directly (not through the proxies, so not counted).
    let mut names: Vec<String> = seeds.iter().map(|s| s.name.clone()).collect();
    names.push(UNCOVERED.to_owned());
    let (pic_q, pic_i) = (registry.picture(&names).await, twin.picture(&names).await);
    let mut all = seeds.clone();
    all.push(uncovered.clone());
    let (man_q, man_i) = (
        manifests(&registry, &all).await,
        manifests(&twin, &all).await,
    );
    let mut state_problems = differences("tag", &pic_q, &pic_i, 10);
    state_problems.extend(differences("manifest", &man_q, &man_i, 10));
    // And exactly what the policy leaves: v1 everywhere, the uncovered pr-1, no covered pr-*.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for s in &seeds {
        expected.insert(format!("{}:v1", s.name), s.v1.clone());
    }
    expected.insert(format!("{UNCOVERED}:v1"), uncovered.v1.clone());
    expected.insert(format!("{UNCOVERED}:pr-1"), uncovered.prs[0].clone());
    for (which, pic) in [("queue path", &pic_q), ("in-process", &pic_i)] {
        if pic != &expected {
            let keys: BTreeSet<&String> = pic.keys().chain(expected.keys()).collect();
            for k in keys
                .into_iter()
                .filter(|k| pic.get(*k) != expected.get(*k))
                .take(10)
            {
                state_problems.push(format!(
                    "{which}: {k} is {:?}, the policy leaves {:?}",
                    pic.get(k),
                    expected.get(k)
                ));
            }
        }
    }
    let left_q = man_q.values().filter(|p| **p).count();
    let left_i = man_i.values().filter(|p| **p).count();
    let want_left = settings.repos + 2;
    if left_q != want_left || left_i != want_left {
        state_problems.push(format!(
            "seeded manifests left: queue path {left_q}, in-process {left_i}, expected {want_left}"
        ));
    }
    let same_state = state_problems.is_empty();
    problems.extend(state_problems);
    for (which, r) in [("queue path", &queue_req), ("in-process", &inproc_req)] {
        if r.deleted != to_delete {
            problems.push(format!(
                "{which}: {} manifest DELETEs answered 202, expected {to_delete}",
                r.deleted
            ));
        }
    }

    println!(
        "\n| path | invocations | records handed over / back | registry requests | reads | writes | manifests deleted | requests / deleted | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| queue (1 dispatch + {} workers, max run {} s, visibility {} s) | {} | {} / {} | {} | {} | {} | {} | {:.2} | {:.2} |",
        polls.len(),
        settings.max_run_seconds,
        settings.visibility.as_secs(),
        1 + polls.len(),
        handed_over,
        handed_back,
        queue_req.total,
        queue_req.reads,
        queue_req.writes,
        queue_req.deleted,
        per(queue_req.total, queue_req.deleted),
        queue_wall.as_secs_f64()
    );
    println!(
        "| in-process (one `Sweeper::run`) | 1 | - | {} | {} | {} | {} | {:.2} | {:.2} |",
        inproc_req.total,
        inproc_req.reads,
        inproc_req.writes,
        inproc_req.deleted,
        per(inproc_req.total, inproc_req.deleted),
        inproc_wall.as_secs_f64()
    );
    let ratio = per(queue_req.total, queue_req.deleted) / per(inproc_req.total, inproc_req.deleted);
    println!();
    println!(
        "queue.invocations = {} (1 dispatch + {} workers)",
        1 + polls.len(),
        polls.len()
    );
    println!("queue.records_handed_over = {handed_over}");
    println!("queue.records_handed_back = {handed_back}");
    println!("queue.registry_requests = {}", queue_req.total);
    println!("queue.manifests_deleted = {}", queue_req.deleted);
    println!(
        "queue.requests_per_deleted = {:.3}",
        per(queue_req.total, queue_req.deleted)
    );
    println!("queue.wall_s = {:.2}", queue_wall.as_secs_f64());
    println!("inprocess.invocations = 1");
    println!("inprocess.registry_requests = {}", inproc_req.total);
    println!("inprocess.manifests_deleted = {}", inproc_req.deleted);
    println!(
        "inprocess.requests_per_deleted = {:.3}",
        per(inproc_req.total, inproc_req.deleted)
    );
    println!("inprocess.wall_s = {:.2}", inproc_wall.as_secs_f64());
    println!("ratio.queue_over_inprocess.requests_per_deleted = {ratio:.3}");
    println!(
        "registries end in the same state (tags, digests, seeded manifests): {}",
        if same_state { "yes" } else { "NO" }
    );

    // ---- 3. Raw figures for a paper model ----
    println!(
        "\n## 3. raw figures for a paper model (reads = GET/HEAD, writes = DELETE/PUT/PATCH)\n"
    );
    println!("| path | reads | writes | other | non-2xx | deleted | reads / deleted | writes / deleted |");
    println!("|---|---|---|---|---|---|---|---|");
    for (which, r) in [
        ("queue: dispatch only", &dispatch_req),
        ("queue: all (dispatch + workers)", &queue_req),
        ("in-process", &inproc_req),
    ] {
        println!(
            "| {which} | {} | {} | {} | {} | {} | {} | {} |",
            r.reads,
            r.writes,
            r.other,
            r.errors,
            r.deleted,
            per_text(r.reads, r.deleted),
            per_text(r.writes, r.deleted)
        );
    }
    println!();
    for (key, r) in [("queue", &queue_req), ("inprocess", &inproc_req)] {
        println!("{key}.reads = {}", r.reads);
        println!("{key}.writes = {}", r.writes);
        println!("{key}.reads_per_deleted = {:.3}", per(r.reads, r.deleted));
        println!("{key}.writes_per_deleted = {:.3}", per(r.writes, r.deleted));
    }
    println!("queue.dispatch_reads = {}", dispatch_req.reads);
    println!(
        "queue.worker_reads_per_record = {:.3}",
        per(queue_req.reads - dispatch_req.reads, handed_over)
    );
    println!("queue.requests: {}", queue_req.breakdown_text());
    println!("inprocess.requests: {}", inproc_req.breakdown_text());

    // Every v1 still pulls completely (manifest and blobs) on both: panics if not.
    for s in &all {
        registry.assert_pulls_completely(&s.name, "v1").await;
        twin.assert_pulls_completely(&s.name, "v1").await;
    }
    println!(
        "\nbench wall time {:.1} s (after the build)",
        bench_started.elapsed().as_secs_f64()
    );
    if problems.is_empty() {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("\nFAILED: {} problems", problems.len());
        for p in &problems {
            println!("- {p}");
        }
        ExitCode::FAILURE
    }
}
