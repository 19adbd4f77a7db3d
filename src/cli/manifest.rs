//! `manifest list` (`az acr manifest list-metadata`) and `manifest delete --older-than` (the
//! guide's script, done safely: never a manifest a newer one still uses).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use registry_janitor::apply::Decider;
use registry_janitor::plan::manual::{self, delete_chosen, listing, Listed};
use registry_janitor::policy::Policy;
use registry_janitor::registry::name::check_repository;
use registry_janitor::report::{operations, Report};
use registry_janitor::state::AnyState;

use super::connect::Connection;
use super::operation::{exit_code, finish, require_complete, sweeper};
use super::{runtime, usage, ConnectArgs, Failure};

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
        /// A list of the images in use, a file or an S3 object (repeatable; one reference per
        /// line, or a JSON array): what it names is kept, with everything it reaches.
        #[arg(long = "in-use", value_name = "FILE|s3://BUCKET/KEY")]
        in_use: Vec<String>,
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

pub async fn run(command: ManifestCommand) -> Result<ExitCode, Failure> {
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
            in_use,
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
            let mut policy = Policy::whole_repository(&repository, age);
            policy.protect.in_use = in_use
                .iter()
                .map(|a| registry_janitor::in_use::Provider::from_arg(a))
                .collect();
            let policy = registry_janitor::in_use::resolve(&policy, &connect.registry).await;
            if let Some(why) = &policy.protect.running.failure {
                return Err(runtime(anyhow!("{why}; nothing was changed")));
            }
            let (conn, mut store) = connect.open()?;
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
    let decider = Decider::new(|s| delete_chosen(s, &none, "", false, now).plan);
    let mut sweeper = sweeper(conn, &policy, store, &args.connect, now);
    let planned = sweeper.plan_with(repo, &decider).await.map_err(runtime)?;
    require_complete(&planned)?;
    let mut rows: Vec<Listed> = listing(&planned.snapshot, now)
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
        ListFormat::Tsv => print!("{}", operations::listing_tsv(&rows)),
        ListFormat::Table => print!("{}", operations::listing_table(&rows)),
    }
    Ok(ExitCode::SUCCESS)
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
