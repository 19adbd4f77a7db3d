//! `plan` and `apply`: sweep with a policy and print the report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use registry_janitor::in_use::{self, Provider};
use registry_janitor::policy::{MaxDelete, Policy};
use registry_janitor::registry::options::redact_userinfo;
use registry_janitor::report::Report;
use registry_janitor::state::StateStore;
use registry_janitor::sweep::{scope, Planned, Sweeper};

use super::connect::Connection;
use super::terminal::{can_ask, confirm, needs_yes, Progress};
use super::{runtime, usage, ConnectArgs, Failure};

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Policy file, JSON (.json) or TOML (.toml).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Only these repositories (repeatable). Default: every repository a rule matches.
    #[arg(long = "repository", value_name = "NAME")]
    repositories: Vec<String>,
    /// Evaluate as if at this instant (RFC 3339), to preview a later cleanup.
    #[arg(long, value_name = "RFC3339")]
    now: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// A list of the images in use, a file or an S3 object (repeatable): one reference per
    /// line, or a JSON array.
    /// They are kept with everything they reach; a list that cannot be read deletes nothing.
    #[arg(long = "in-use", value_name = "FILE|s3://BUCKET/KEY")]
    in_use: Vec<String>,
    /// The most one run may delete in a repository: a count (100) or a share of its
    /// manifests (25%), in place of the policy's limits.max_delete or max_delete_fraction.
    /// A repository past it deletes and untags nothing, and the run exits 1.
    #[arg(long = "max-delete", value_name = "N|P%")]
    max_delete: Option<MaxDelete>,
    /// Go past the policy's limits (and --max-delete) for this one run.
    #[arg(long = "allow-over-limit")]
    allow_over_limit: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(PartialEq, Eq, Clone, Copy)]
pub enum Mode {
    Plan,
    ApplyNow,
    ApplyAfterAsking,
}

pub async fn sweep(args: SweepArgs, mode: Mode, unlock: bool) -> Result<ExitCode, Failure> {
    let mut policy = Policy::from_file(&args.policy).map_err(usage)?;
    policy
        .protect
        .in_use
        .extend(args.in_use.iter().map(|a| Provider::from_arg(a)));
    if let Some(max) = args.max_delete {
        policy.limits = policy.limits.with(max);
    }
    if args.allow_over_limit {
        tracing::warn!("--allow-over-limit: this run may delete past the policy's limits");
        policy.limits = policy.limits.lifted();
    }
    let how = How {
        connect: &args.connect,
        repositories: &args.repositories,
        now: args.now,
        format: args.format,
        mode,
        unlock,
    };
    sweep_with(&policy, how).await
}

/// How a sweep runs, whatever gave its policy (a file, or `purge`'s flags).
pub struct How<'a> {
    pub connect: &'a ConnectArgs,
    /// Only these repositories; empty: every repository a rule covers.
    pub repositories: &'a [String],
    pub now: Option<DateTime<Utc>>,
    pub format: Format,
    pub mode: Mode,
    pub unlock: bool,
}

/// Sweep with `policy` and print the report.
pub async fn sweep_with(policy: &Policy, how: How<'_>) -> Result<ExitCode, Failure> {
    if how.mode == Mode::ApplyAfterAsking && !can_ask() {
        return Err(needs_yes());
    }
    let (conn, mut store) = how.connect.open()?;
    policy.fits(conn.client.as_ref()).map_err(usage)?;
    // The images in use, read once for the whole sweep; one that cannot be read makes every
    // repository incomplete (the planner says why).
    let policy = &in_use::resolve(policy, &how.connect.registry).await;
    let now = how.now.unwrap_or_else(Utc::now);
    if how.mode != Mode::Plan && how.now.is_some() {
        tracing::warn!(now = %now, "apply with --now deletes as if it were that moment");
    }
    let result = run_sweep(&conn, policy, &mut store, &how, now).await;
    store.flush().await.map_err(runtime)?;
    result
}

async fn run_sweep<S: StateStore>(
    conn: &Connection,
    policy: &Policy,
    store: &mut S,
    how: &How<'_>,
    now: DateTime<Utc>,
) -> Result<ExitCode, Failure> {
    let (mode, unlock) = (how.mode, how.unlock);
    let client = conn.client.as_ref();
    let repositories = scope(client, policy, how.repositories)
        .await
        .context("listing the repositories to sweep")
        .map_err(runtime)?;
    let mut sweeper = Sweeper::new(client, policy, store, now)
        .concurrency(usize::from(how.connect.concurrency))
        .unlocking(unlock)
        .journaling(conn.journal.as_deref());
    let progress = Progress::new(repositories.len());
    // Repositories not started: the registry refused the credentials, and their source had
    // nothing new (`Backend::credentials_spent`). The next run does them.
    let mut unfinished: Vec<String> = Vec::new();
    let results = if mode == Mode::ApplyAfterAsking {
        let mut planned: Vec<Planned> = Vec::new();
        for (i, repo) in repositories.iter().enumerate() {
            if client.credentials_spent() {
                unfinished.push(repo.clone());
                continue;
            }
            progress.show(i, repo, "reading");
            planned.push(sweeper.plan(repo).await.map_err(runtime)?);
        }
        progress.clear();
        let preview = Report::new(now, true, planned.iter().map(|p| p.plan.clone()).collect())
            .left_for_next_run(unfinished.clone());
        print!("{}", preview.to_table());
        let s = &preview.summary;
        if s.manifests_deleted + s.tags_removed == 0 {
            eprintln!("Nothing to do.");
            return Ok(exit_code(&preview));
        }
        if !confirm(&format!(
            "Delete {} manifests and remove {} tags in {}? [y/N] ",
            s.manifests_deleted,
            s.tags_removed,
            redact_userinfo(&how.connect.registry)
        )) {
            eprintln!("Nothing was changed.");
            return Ok(ExitCode::SUCCESS);
        }
        let mut results = Vec::new();
        for (i, p) in planned.into_iter().enumerate() {
            progress.show(i, &p.plan.name.clone(), "applying");
            results.push(sweeper.apply(p).await.map_err(runtime)?);
        }
        progress.clear();
        results
    } else {
        let outcome = sweeper
            .run(&repositories, mode == Mode::ApplyNow, |i, repo, phase| {
                progress.show(i, repo, phase)
            })
            .await
            .map_err(runtime)?;
        progress.clear();
        unfinished = outcome.unfinished;
        outcome.repositories
    };
    let report = Report::new(now, mode == Mode::Plan, results)
        .left_for_next_run(unfinished)
        .with_in_use(&policy.protect.running);
    match how.format {
        Format::Json => println!("{}", report.to_json()),
        Format::Table => print!("{}", report.to_table()),
    }
    Ok(exit_code(&report))
}

/// 1 when anything failed, a repository was held by the policy's limits, or one was not
/// started (the credentials were refused).
fn exit_code(report: &Report) -> ExitCode {
    if report.needs_attention() || !report.unfinished.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
