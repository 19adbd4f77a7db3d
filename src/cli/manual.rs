//! The manual operations of the ACR guide "Delete container images in Azure Container
//! Registry", on any registry: delete a repository, an image, a tag; list manifests; delete
//! manifests older than a date. Each reads the repository first and goes through the same
//! planner and apply as a sweep, so nothing a kept image uses is broken on the way.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use registry_janitor::apply::Decider;
use registry_janitor::plan::manual::{self, delete_chosen, listing, untag_only, Listed};
use registry_janitor::plan::RepositoryPlan;
use registry_janitor::policy::Policy;
use registry_janitor::registry::name::check_repository;
use registry_janitor::registry::{Digest, Reference};
use registry_janitor::report::{human_bytes, write_rows, Report};
use registry_janitor::state::{AnyState, RepoInventory, StateStore};
use registry_janitor::sweep::{Planned, Sweeper};

use super::connect::Connection;
use super::{can_ask, confirm, needs_yes, runtime, usage, ConnectArgs, Failure};

#[derive(Subcommand)]
pub enum RepositoryCommand {
    /// Delete a repository: every manifest and tag in it (`az acr repository delete --name`).
    Delete {
        #[command(flatten)]
        connect: ConnectArgs,
        #[arg(long, value_name = "NAME")]
        repository: String,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Delete one manifest with every tag on it, and what only it uses: the platform images
    /// of an index, its signatures and SBOMs (`az acr repository delete --image`).
    Delete {
        #[command(flatten)]
        connect: ConnectArgs,
        /// The image, as NAME:TAG or NAME@DIGEST.
        #[arg(value_name = "NAME:TAG|NAME@DIGEST")]
        image: String,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
        /// Delete it even if a tagged index still uses it or referrers that stay point at it.
        /// That breaks them.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum TagCommand {
    /// Remove one tag; the manifest stays (`az acr repository untag`). Frees no space.
    Delete {
        #[command(flatten)]
        connect: ConnectArgs,
        #[arg(value_name = "NAME:TAG")]
        image: String,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// List a repository's manifests with tags, time and size (`az acr manifest
    /// list-metadata`).
    List(ListArgs),
    /// Delete every manifest of a repository older than a date, tagged or not, except what a
    /// newer one still uses (the guide's script, done safely). A dry run unless --yes.
    Delete {
        #[command(flatten)]
        connect: ConnectArgs,
        #[arg(long, value_name = "NAME")]
        repository: String,
        /// A date (2024-01-31, or RFC 3339) or an age (30d, 2d3h): older than this goes.
        #[arg(long, value_name = "DATE|DURATION")]
        older_than: String,
        /// Delete; without it, only show what would go and why.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[arg(long, value_name = "NAME")]
    repository: String,
    /// Only manifests older than this: a date (2024-01-31, or RFC 3339) or an age (30d).
    #[arg(long, value_name = "DATE|DURATION")]
    older_than: Option<String>,
    /// Only manifests that no tag points at (some may still be used by an index).
    #[arg(long)]
    untagged: bool,
    #[arg(long, value_enum, default_value_t = Order::TimeAsc)]
    orderby: Order,
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

/// As `az acr manifest list-metadata --orderby`.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum Order {
    TimeAsc,
    TimeDesc,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
    Tsv,
}

pub async fn repository(command: RepositoryCommand) -> Result<ExitCode, Failure> {
    let RepositoryCommand::Delete {
        connect,
        repository,
        yes,
    } = command;
    check_repository(&repository).map_err(usage)?;
    let (conn, mut store) = open(&connect, yes)?;
    let result = delete_repository(&conn, &mut store, &connect, &repository, yes).await;
    finish(store, result).await
}

pub async fn image(command: ImageCommand) -> Result<ExitCode, Failure> {
    let ImageCommand::Delete {
        connect,
        image,
        yes,
        force,
    } = command;
    let (repository, reference) = parse_image(&image, true)?;
    let (conn, mut store) = open(&connect, yes)?;
    let result = async {
        let digest = match reference {
            Reference::Digest(d) => d,
            tag => conn
                .client
                .resolve(&repository, &tag)
                .await
                .map_err(runtime)?
                .ok_or_else(|| runtime(anyhow!("{repository}:{tag}: no such tag")))?,
        };
        delete_image(&conn, &mut store, &connect, &repository, digest, yes, force).await
    }
    .await;
    finish(store, result).await
}

pub async fn tag(command: TagCommand) -> Result<ExitCode, Failure> {
    let TagCommand::Delete {
        connect,
        image,
        yes,
    } = command;
    let (repository, reference) = parse_image(&image, false)?;
    let Reference::Tag(tag) = reference else {
        return Err(usage(anyhow!("{image:?}: give NAME:TAG")));
    };
    let (conn, mut store) = open(&connect, yes)?;
    let result = delete_tag(&conn, &mut store, &connect, &repository, &tag, yes).await;
    finish(store, result).await
}

pub async fn manifest(command: ManifestCommand) -> Result<ExitCode, Failure> {
    match command {
        ManifestCommand::List(args) => {
            check_repository(&args.repository).map_err(usage)?;
            let now = Utc::now();
            let cutoff = args
                .older_than
                .as_deref()
                .map(|s| cutoff(s, now))
                .transpose()
                .map_err(usage)?;
            let (conn, mut store) = args.connect.open()?;
            let result = list(&conn, &mut store, &args, cutoff, now).await;
            finish(store, result).await
        }
        ManifestCommand::Delete {
            connect,
            repository,
            older_than,
            yes,
        } => {
            check_repository(&repository).map_err(usage)?;
            let now = Utc::now();
            let at = cutoff(&older_than, now).map_err(usage)?;
            let age = (now - at).to_std().unwrap_or(Duration::ZERO);
            if age.is_zero() {
                return Err(usage(anyhow!(
                    "--older-than {older_than}: that is now or in the future; nothing is older"
                )));
            }
            let (conn, mut store) = connect.open()?;
            let policy = Policy::whole_repository(&repository, age);
            let result = async {
                let decider = Decider::new(|s| manual::older_than(s, &policy, now));
                let mut sweeper = sweeper(&conn, &policy, &mut store, &connect, now);
                let planned = sweeper
                    .plan_with(&repository, &decider)
                    .await
                    .map_err(runtime)?;
                if !yes {
                    let report = Report::new(now, true, vec![planned.plan]);
                    print!("{}", report.to_table());
                    println!(
                        "Dry run: nothing was deleted. Run again with --yes to delete the manifests marked \"delete\"."
                    );
                    return Ok(exit_code(&report));
                }
                let done = sweeper
                    .apply_with(planned, &decider)
                    .await
                    .map_err(runtime)?;
                let report = Report::new(now, false, vec![done]);
                print!("{}", report.to_table());
                Ok(exit_code(&report))
            }
            .await;
            finish(store, result).await
        }
    }
}

/// Connect and open the inventory; a change that cannot be confirmed stops here.
fn open(connect: &ConnectArgs, yes: bool) -> Result<(Connection, AnyState), Failure> {
    if !yes && !can_ask() {
        return Err(needs_yes());
    }
    connect.open()
}

/// Save the inventory whatever happened, then hand back the command's result.
async fn finish(
    mut store: AnyState,
    result: Result<ExitCode, Failure>,
) -> Result<ExitCode, Failure> {
    store.flush().await.map_err(runtime)?;
    result
}

fn sweeper<'a>(
    conn: &'a Connection,
    policy: &'a Policy,
    store: &'a mut AnyState,
    connect: &ConnectArgs,
    now: DateTime<Utc>,
) -> Sweeper<'a, AnyState> {
    Sweeper::new(conn.client.as_ref(), policy, store, now)
        .concurrency(usize::from(connect.concurrency))
}

/// Stop if the repository could not be read whole: nothing is decided on a partial picture.
fn require_complete(planned: &Planned) -> Result<(), Failure> {
    match planned.plan.error() {
        Some(e) => Err(runtime(anyhow!(
            "{}: cannot read the repository completely, so nothing was changed: {e}",
            planned.plan.name
        ))),
        _ => Ok(()),
    }
}

async fn delete_image(
    conn: &Connection,
    store: &mut AnyState,
    connect: &ConnectArgs,
    repo: &str,
    digest: Digest,
    yes: bool,
    force: bool,
) -> Result<ExitCode, Failure> {
    let now = Utc::now();
    let policy = Policy::nothing();
    let chosen: BTreeSet<Digest> = [digest.clone()].into();
    let reason = "named by image delete".to_owned();
    // Named, so that collect reads it even when nothing links to it (untagged, by digest).
    let decider =
        Decider::new(|s| delete_chosen(s, &chosen, &reason, force).plan).naming(chosen.clone());
    let mut sweeper = sweeper(conn, &policy, store, connect, now);
    let planned = sweeper.plan_with(repo, &decider).await.map_err(runtime)?;
    require_complete(&planned)?;
    if !planned.snapshot.manifests.contains_key(&digest) {
        return Err(runtime(anyhow!("{repo}@{digest}: no such manifest")));
    }
    let c = delete_chosen(&planned.snapshot, &chosen, &reason, force);
    let unforced: Vec<_> = c
        .refused
        .iter()
        .filter(|r| !c.forced.contains(&r.digest))
        .collect();
    if let Some(r) = unforced.first() {
        let hint = if r.locked {
            "A registry lock holds it; lift the lock in the registry first."
        } else {
            "--force deletes it anyway, and breaks what uses it."
        };
        eprintln!(
            "Refusing to delete {repo}@{}: {}.\nNothing was changed. {hint}",
            r.digest, r.reason
        );
        return Ok(ExitCode::from(1));
    }
    println!("{}", describe_delete(repo, &digest, &c.plan));
    for r in &c.refused {
        println!(
            "WARNING: --force: {} is deleted although {}.",
            r.digest.short(),
            r.reason
        );
    }
    if !yes && !confirm("Are you sure you want to continue? (y/n): ") {
        eprintln!("Nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    // At the re-check, force only what was shown: if something new now uses the manifest,
    // it is kept, as without --force.
    let shown = c.refused.clone();
    let recheck = Decider::new(|s| {
        let again = delete_chosen(s, &chosen, &reason, force);
        if again.refused == shown {
            again.plan
        } else {
            delete_chosen(s, &chosen, &reason, false).plan
        }
    })
    .forcing(c.forced);
    let done = sweeper
        .apply_with(planned, &recheck)
        .await
        .map_err(runtime)?;
    let code = print_done(repo, &done);
    if !done
        .delete
        .iter()
        .any(|d| d.digest == digest && d.error.is_none())
    {
        eprintln!("{repo}@{digest} was not deleted.");
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}

async fn delete_tag(
    conn: &Connection,
    store: &mut AnyState,
    connect: &ConnectArgs,
    repo: &str,
    tag: &str,
    yes: bool,
) -> Result<ExitCode, Failure> {
    let now = Utc::now();
    let policy = Policy::nothing();
    let reason = "named by tag delete".to_owned();
    let decider = Decider::new(|s| untag_only(s, tag, &reason));
    let mut sweeper = sweeper(conn, &policy, store, connect, now);
    let planned = sweeper.plan_with(repo, &decider).await.map_err(runtime)?;
    require_complete(&planned)?;
    let Some(tref) = planned.snapshot.tags.get(tag) else {
        return Err(runtime(anyhow!("{repo}:{tag}: no such tag")));
    };
    if planned.plan.untag.is_empty() {
        let why = planned
            .plan
            .keep
            .first()
            .map_or("it cannot be removed".to_owned(), |k| k.reason.clone());
        eprintln!("Refusing to remove {repo}:{tag}: {why}.\nNothing was changed.");
        return Ok(ExitCode::from(1));
    }
    let others: Vec<&String> = planned
        .snapshot
        .tags
        .iter()
        .filter(|(n, t)| t.digest == tref.digest && n.as_str() != tag)
        .map(|(n, _)| n)
        .collect();
    let stays = if others.is_empty() {
        "The manifest stays, untagged".to_owned()
    } else {
        format!(
            "The manifest stays, still tagged {}",
            others
                .iter()
                .map(|t| format!("'{repo}:{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    println!(
        "This operation will remove the tag '{repo}:{tag}' from the manifest '{}'.\n{stays}; no space is freed.",
        tref.digest
    );
    if !yes && !confirm("Are you sure you want to continue? (y/n): ") {
        eprintln!("Nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let done = sweeper
        .apply_with(planned, &decider)
        .await
        .map_err(runtime)?;
    let code = print_done(repo, &done);
    if !done.untag.iter().any(|u| u.tag == tag && u.error.is_none()) {
        eprintln!(
            "{repo}:{tag} was not removed (it moved since the preview, or the registry refused)."
        );
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}

async fn delete_repository(
    conn: &Connection,
    store: &mut AnyState,
    connect: &ConnectArgs,
    repo: &str,
    yes: bool,
) -> Result<ExitCode, Failure> {
    let now = Utc::now();
    let policy = Policy::nothing();
    let reason = "named by repository delete".to_owned();
    let everything = |s: &registry_janitor::plan::Snapshot| {
        let all: BTreeSet<Digest> = s.manifests.keys().cloned().collect();
        delete_chosen(s, &all, &reason, false).plan
    };
    let decider = Decider::new(everything);
    let mut sweeper = sweeper(conn, &policy, store, connect, now);
    let planned = sweeper.plan_with(repo, &decider).await.map_err(runtime)?;
    require_complete(&planned)?;
    let plan = &planned.plan;
    let tags: usize = plan.delete.iter().map(|d| d.tags.len()).sum();
    println!(
        "This operation will delete the repository '{repo}': {} manifests with {tags} tags ({} to reclaim).",
        plan.delete.len(),
        human_bytes(plan.bytes_reclaimable())
    );
    for k in &plan.keep {
        println!("  stays: {} ({})", k.digest, k.reason);
    }
    if !yes && !confirm("Are you sure you want to continue? (y/n): ") {
        eprintln!("Nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let capabilities = conn.client.capabilities();
    if capabilities.repository_delete && capabilities.manifest_listing && plan.keep.is_empty() {
        // The registry deletes a repository in one call, with its tags and manifests (ACR):
        // first check that it holds nothing the preview did not show (a push while we asked).
        let shown: BTreeSet<&Digest> = plan.delete.iter().map(|d| &d.digest).collect();
        let now_listed = conn
            .client
            .manifests(repo)
            .await
            .map_err(runtime)?
            .ok_or_else(|| {
                runtime(anyhow!(
                    "{repo}: the registry did not list its manifests; nothing was changed"
                ))
            })?;
        if let Some(new) = now_listed
            .iter()
            .find(|m| !shown.contains(&m.digest) || m.locked)
        {
            return Err(runtime(anyhow!(
                "{repo} changed since the preview ({} is new or locked); nothing was changed, run it again",
                new.digest
            )));
        }
        conn.client.delete_repository(repo).await.map_err(runtime)?;
        sweeper
            .store
            .save(repo, RepoInventory::default())
            .await
            .map_err(runtime)?;
        println!("Deleted the repository {repo}.");
        return Ok(ExitCode::SUCCESS);
    }
    let done = sweeper
        .apply_with(planned, &decider)
        .await
        .map_err(runtime)?;
    Ok(print_done(repo, &done))
}

async fn list(
    conn: &Connection,
    store: &mut AnyState,
    args: &ListArgs,
    cutoff: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<ExitCode, Failure> {
    let repo = args.repository.as_str();
    // A rule over every tag makes collect work out each tag's age.
    let policy = Policy::whole_repository(repo, Duration::from_secs(1));
    let none = BTreeSet::new();
    let decider = Decider::new(|s| delete_chosen(s, &none, "", false).plan);
    let mut sweeper = sweeper(conn, &policy, store, &args.connect, now);
    let planned = sweeper.plan_with(repo, &decider).await.map_err(runtime)?;
    require_complete(&planned)?;
    let mut rows: Vec<Listed> = listing(&planned.snapshot)
        .into_iter()
        .filter(|r| !args.untagged || r.tags.is_empty())
        .filter(|r| match cutoff {
            // An unknown time is never older than anything.
            Some(c) => r.timestamp.is_some_and(|t| t < c),
            None => true,
        })
        .collect();
    rows.sort_by(|a, b| {
        let by_time = match (a.timestamp, b.timestamp) {
            (Some(x), Some(y)) if args.orderby == Order::TimeAsc => x.cmp(&y),
            (Some(x), Some(y)) => y.cmp(&x),
            // Unknown times last, either way.
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_time.then_with(|| a.digest.cmp(&b.digest))
    });
    if args.untagged && !conn.client.capabilities().manifest_listing {
        eprintln!(
            "note: this registry has no API that lists every manifest. Untagged manifests shown \
             are the ones an index or a signature still links to, and the ones registry-janitor \
             saw tagged before (its inventory); others may exist."
        );
    }
    match args.format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows).map_err(runtime)?),
        ListFormat::Tsv => {
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    r.digest,
                    r.tags.join(","),
                    r.timestamp.map(rfc3339).unwrap_or_default(),
                    r.size,
                    r.media_type
                );
            }
        }
        ListFormat::Table => print!("{}", list_table(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn list_table(rows: &[Listed]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.digest.to_string(),
                if r.tags.is_empty() {
                    "-".into()
                } else {
                    r.tags.join(",")
                },
                r.timestamp.map_or("unknown".into(), rfc3339),
                human_bytes(r.size),
                r.media_type
                    .rsplit('/')
                    .next()
                    .unwrap_or(&r.media_type)
                    .to_owned(),
                r.used_by.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = String::new();
    write_rows(
        &mut out,
        "",
        &["DIGEST", "TAGS", "TIMESTAMP", "SIZE", "MEDIA TYPE", "NOTE"],
        &cells,
    );
    let total: u64 = rows.iter().map(|r| r.size).sum();
    let _ = writeln!(
        out,
        "{} manifests, {} in total (shared layers counted in each)",
        rows.len(),
        human_bytes(total)
    );
    out
}

/// What `image delete` is about to do, in the guide's words.
fn describe_delete(repo: &str, digest: &Digest, plan: &RepositoryPlan) -> String {
    let mut out = String::new();
    let own_tags: Vec<String> = plan
        .delete
        .iter()
        .find(|d| &d.digest == digest)
        .map(|d| d.tags.iter().map(|t| format!("'{repo}:{t}'")).collect())
        .unwrap_or_default();
    if own_tags.is_empty() {
        let _ = write!(
            out,
            "This operation will delete the manifest '{digest}' (it has no tags)."
        );
    } else {
        let _ = write!(
            out,
            "This operation will delete the manifest '{digest}' and all the following images: {}.",
            own_tags.join(", ")
        );
    }
    let rest: Vec<_> = plan.delete.iter().filter(|d| &d.digest != digest).collect();
    if !rest.is_empty() {
        let _ = write!(out, "\nWith it go {} manifests only it uses:", rest.len());
        for d in rest {
            let tags = if d.tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", d.tags.join(", "))
            };
            let _ = write!(out, "\n  {}{tags}: {}", d.digest, d.reason);
        }
    }
    let _ = write!(
        out,
        "\nSpace the registry can reclaim (after garbage collection): {}.",
        human_bytes(plan.bytes_reclaimable())
    );
    out
}

/// Say what was done; exit 1 if anything failed.
fn print_done(repo: &str, done: &RepositoryPlan) -> ExitCode {
    let mut failed = !done.complete();
    if let Some(e) = done.error() {
        println!("{repo}: {e}");
    }
    for d in &done.delete {
        match &d.error {
            None => println!("deleted {repo}@{} {}", d.digest, tag_list(&d.tags)),
            Some(e) => {
                failed = true;
                println!("FAILED to delete {repo}@{}: {e}", d.digest);
            }
        }
    }
    for u in &done.untag {
        match &u.error {
            None => println!("untagged {repo}:{}", u.tag),
            Some(e) => {
                failed = true;
                println!("FAILED to untag {repo}:{}: {e}", u.tag);
            }
        }
    }
    // What apply kept that the plan deleted: changed since planning or while deleting,
    // refused for a lock, or not reached.
    for k in done.keep.iter().filter(|k| k.kind.overrides_a_decision()) {
        println!("kept {repo}@{}: {}", k.digest, k.reason);
    }
    let deleted = done.delete.iter().filter(|d| d.error.is_none()).count();
    println!(
        "{deleted} manifests deleted, {} tags removed, {} to reclaim by garbage collection.",
        done.delete
            .iter()
            .filter(|d| d.error.is_none())
            .map(|d| d.tags.len())
            .sum::<usize>()
            + done.untag.iter().filter(|u| u.error.is_none()).count(),
        human_bytes(done.bytes_reclaimable())
    );
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn tag_list(tags: &[String]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        format!("(tags: {})", tags.join(", "))
    }
}

fn exit_code(report: &Report) -> ExitCode {
    if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `NAME:TAG` or (when `digest_ok`) `NAME@DIGEST`.
fn parse_image(image: &str, digest_ok: bool) -> Result<(String, Reference), Failure> {
    let bad = |why: &str| usage(anyhow!("{image:?}: {why}"));
    let (name, reference) = if let Some((name, digest)) = image.split_once('@') {
        if !digest_ok {
            return Err(bad("give NAME:TAG; to delete by digest use `image delete`"));
        }
        let digest: Digest = digest.parse().map_err(|e| bad(&format!("{e}")))?;
        (name, Reference::Digest(digest))
    } else {
        match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => {
                (name, Reference::tag(tag).map_err(|e| bad(&e.to_string()))?)
            }
            _ => {
                return Err(bad(if digest_ok {
                    "give NAME:TAG or NAME@DIGEST"
                } else {
                    "give NAME:TAG"
                }))
            }
        }
    };
    check_repository(name).map_err(|e| bad(&e.to_string()))?;
    Ok((name.to_owned(), reference))
}

/// `--older-than`: a date (`2024-01-31`, `2024-01-31T12:00:00`, RFC 3339; UTC unless it says
/// otherwise) or an age (`30d`, `2d3h`) counted back from `now`.
fn cutoff(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, anyhow::Error> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let age = registry_janitor::policy::parse_older_than(value).map_err(|e| {
        anyhow!("--older-than {value:?}: not a date (2024-01-31, RFC 3339) nor an age (30d): {e}")
    })?;
    let age =
        chrono::Duration::from_std(age).map_err(|e| anyhow!("--older-than {value:?}: {e}"))?;
    Ok(now - age)
}
