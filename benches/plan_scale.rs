//! The planner at scale: a synthetic registry of 100k manifests in 1k repositories, with
//! multi-arch indexes, signatures, PR builds and untagged leftovers, planned in-process.
//! Prints the planning time and the process's peak RSS (VmHWM, snapshots included).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use registry_janitor::plan::{plan, ManifestFacts, Snapshot, TagRef};
use registry_janitor::policy::Policy;
use registry_janitor::registry::Digest;

const REPOSITORIES: usize = 1_000;
/// Manifests per repository: 20 builds of (index + 2 images + 1 signature) + 20 untagged.
const BUILDS: usize = 20;

fn digest(repo: usize, n: usize) -> Digest {
    format!("sha256:{repo:032x}{n:032x}")
        .parse()
        .expect("digest")
}

fn image(created: DateTime<Utc>, layer: Digest) -> ManifestFacts {
    ManifestFacts {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 500,
        blobs: vec![(layer, 30_000_000)],
        created: Some(created),
        image_config: true,
        ..ManifestFacts::default()
    }
}

fn repository(r: usize, now: DateTime<Utc>) -> Snapshot {
    let mut s = Snapshot {
        repository: format!("team{}/app{r}", r % 37),
        ..Snapshot::default()
    };
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for b in 0..BUILDS {
        let created = now - Duration::days((b * 5) as i64);
        let (amd, arm, index, sig) = (next(), next(), next(), next());
        s.manifests
            .insert(digest(r, amd), image(created, digest(r, 100_000 + amd)));
        s.manifests
            .insert(digest(r, arm), image(created, digest(r, 100_000 + arm)));
        s.manifests.insert(
            digest(r, index),
            ManifestFacts {
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                size: 700,
                children: vec![digest(r, amd), digest(r, arm)],
                // As collect derives it: the newest child's age.
                created: Some(created),
                ..ManifestFacts::default()
            },
        );
        let mut signature = image(created, digest(r, 100_000 + sig));
        signature.subject = Some(digest(r, index));
        s.manifests.insert(digest(r, sig), signature);
        let tag = if b == 0 {
            "latest".to_owned()
        } else {
            format!("pr-{b}")
        };
        s.tags.insert(tag, TagRef::new(digest(r, index)));
        s.tags.insert(
            format!("{}.sig", digest(r, index).fallback_tag()),
            TagRef::new(digest(r, sig)),
        );
    }
    for u in 0..(100 - 4 * BUILDS) {
        let d = next();
        let mut leftover = image(now - Duration::days(400), digest(r, 100_000 + d));
        leftover.untagged_since = Some(now - Duration::days(u as i64));
        s.manifests.insert(digest(r, d), leftover);
    }
    s
}

/// The bench's policy, with `pr_tags` as the PR rule's tag regex.
fn policy(pr_tags: &str) -> Policy {
    Policy::from_json(&format!(
        r#"{{"rules":[
            {{"name":"old-pr-builds","select":"tagged","tags":"{pr_tags}","older_than":"30d","keep":5}},
            {{"name":"dangling","select":"untagged","older_than":"7d"}}],
          "protect":{{"tags":["latest"]}}}}"#
    ))
    .expect("policy")
}

/// Plan every snapshot; the time it took and the decisions by kind.
fn plan_all(
    snapshots: &[Snapshot],
    policy: &Policy,
    now: DateTime<Utc>,
) -> (f64, BTreeMap<&'static str, usize>) {
    let started = Instant::now();
    let mut decisions: BTreeMap<&str, usize> = BTreeMap::new();
    for s in snapshots {
        let p = plan(s, policy, now);
        *decisions.entry("delete").or_default() += p.delete.len();
        *decisions.entry("untag").or_default() += p.untag.len();
        *decisions.entry("keep").or_default() += p.keep.len();
    }
    (started.elapsed().as_secs_f64(), decisions)
}

fn main() {
    let now: DateTime<Utc> = "2026-06-30T00:00:00Z".parse().expect("time");
    let snapshots: Vec<Snapshot> = (0..REPOSITORIES).map(|r| repository(r, now)).collect();
    let manifests: usize = snapshots.iter().map(|s| s.manifests.len()).sum();

    let (elapsed, decisions) = plan_all(&snapshots, &policy(r"pr-\\d+"), now);
    println!(
        "planned {manifests} manifests in {REPOSITORIES} repositories in {elapsed:.3} s: {decisions:?}; peak RSS {}",
        peak_rss().unwrap_or_else(|| "unknown".into())
    );
    engines(&snapshots, now, &decisions);
}

/// Issue 19: the linear engine (`pr-\d+`) against the same selection written with a
/// look-behind that always holds, which only the backtracking engine runs. `PLAN_SCALE_ROUNDS`
/// rounds each (default 5; 0 skips this), taken in turn so that both see the same machine;
/// the medians.
fn engines(snapshots: &[Snapshot], now: DateTime<Utc>, decisions: &BTreeMap<&str, usize>) {
    let rounds = std::env::var("PLAN_SCALE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize);
    if rounds == 0 {
        return;
    }
    let plain = policy(r"pr-\\d+");
    let around = policy(r"pr-\\d+(?<!x)");
    assert!(around.rules[0].tags.backtracks() && !plain.rules[0].tags.backtracks());
    let (mut linear, mut backtracking) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (t, d) = plan_all(snapshots, &plain, now);
        assert_eq!(&d, decisions);
        linear.push(t);
        let (t, d) = plan_all(snapshots, &around, now);
        assert_eq!(
            &d, decisions,
            "the look-around filter selects what the plain one does"
        );
        backtracking.push(t);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (linear, backtracking) = (median(linear), median(backtracking));
    println!(
        "tag filter pr-\\d+ (regex): {linear:.3} s; pr-\\d+(?<!x) (fancy-regex): {backtracking:.3} s: {:.2}x; medians of {rounds}, same decisions",
        backtracking / linear
    );
}

/// The process's peak resident set size, from /proc (Linux).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} MiB", kib as f64 / 1024.0))
}
