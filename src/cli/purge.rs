//! `purge`: `acr purge`'s flags, word for word, run as a policy by the same engine (the
//! translation is `registry_janitor::purge`). Like `acr purge` it deletes unless `--dry-run`;
//! like `apply` it asks first on a terminal, and needs `--yes` off one.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use registry_janitor::purge::{parse_ago, parse_filter, Filter, Purge};

use super::sweep::{sweep_with, Format, How, Mode};
use super::{runtime, ConnectArgs, Failure};

#[derive(Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Tags to delete: <repository regex>:<tag regex> (repeatable). Both match whole names.
    /// With --untagged-only, only the repository part counts.
    #[arg(
        long = "filter",
        short = 'f',
        value_name = "REPO:TAG",
        required_unless_present = "untagged_only",
        value_parser = filter
    )]
    filters: Vec<Filter>,
    /// Only tags (and, with --untagged, manifests) older than this: 1d, 2d3h6m, 30m, 0d.
    /// Optional with --untagged-only (any age).
    #[arg(
        long,
        value_name = "DURATION",
        required_unless_present = "untagged_only",
        value_parser = ago
    )]
    ago: Option<Duration>,
    /// Also delete manifests: those whose tags all go, and those already untagged.
    #[arg(long)]
    untagged: bool,
    /// Delete only untagged manifests, and no tags: in the filters' repositories, or in
    /// every repository without --filter.
    #[arg(long, conflicts_with = "untagged")]
    untagged_only: bool,
    /// Keep this many of the newest images each filter selects in a repository, with every
    /// tag the filter selects on them, and this many of the newest untagged manifests.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep: usize,
    /// Show what would be deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also purge what the registry locked, lifting the lock first (logged).
    #[arg(long)]
    include_locked: bool,
    /// Accepted so that acr's command lines run; not used. Matching is bounded by
    /// backtracking steps here (100,000 a name), not by time.
    #[arg(long, value_name = "SECONDS")]
    filter_timeout_seconds: Option<u64>,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    yes: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn filter(text: &str) -> Result<Filter, String> {
    parse_filter(text).map_err(|e| e.to_string())
}

fn ago(text: &str) -> Result<Duration, String> {
    parse_ago(text).map_err(|e| e.to_string())
}

pub async fn purge(args: PurgeArgs) -> Result<ExitCode, Failure> {
    let purge = Purge {
        filters: args.filters.clone(),
        ago: args.ago.unwrap_or(Duration::ZERO),
        untagged: args.untagged,
        untagged_only: args.untagged_only,
        keep: args.keep,
        include_locked: args.include_locked,
    };
    let (document, policy) = purge.policy().map_err(super::usage)?;
    let shown = serde_json::to_string_pretty(&document).map_err(runtime)?;
    eprintln!("purge runs this policy:\n{shown}");
    let mode = match (args.dry_run, args.yes) {
        (true, _) => Mode::Plan,
        (false, true) => Mode::ApplyNow,
        (false, false) => Mode::ApplyAfterAsking,
    };
    let how = How {
        connect: &args.connect,
        repositories: &[],
        now: None,
        format: args.format,
        mode,
        unlock: args.include_locked,
    };
    sweep_with(&policy, how).await
}
