//! `restore`: put back what a trash holds (the policy's `trash`), or show it with `--list`.

use std::process::ExitCode;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use clap::Args;

use registry_janitor::journal::FileJournal;
use registry_janitor::registry::name::check_repository;
use registry_janitor::registry::Digest;
use registry_janitor::report::restore as show;
use registry_janitor::restore::{self, journal};

use super::operation::{failed_if, finish, go_ahead, open};
use super::sweep::Format;
use super::{runtime, usage, ConnectArgs, Failure};

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The repository whose trash to restore from.
    #[arg(long, value_name = "NAME")]
    repository: String,
    /// Only this manifest, with what it brings along (an index's children, a subject's
    /// signatures and other referrers). Default: everything the trash holds.
    #[arg(long, value_name = "DIGEST")]
    digest: Option<String>,
    /// Only the trash of the run at this instant (RFC 3339, as `--list` shows it).
    #[arg(long, value_name = "RFC3339")]
    run: Option<DateTime<Utc>>,
    /// Show what each trash holds, with its tags and reasons, and when it is emptied.
    /// Changes nothing.
    #[arg(long, conflicts_with = "from_journal")]
    list: bool,
    /// Put back what was deleted for good, from the journal (--journal FILE, or the one
    /// beside the inventory), when every blob it needs is still in the registry.
    #[arg(long)]
    from_journal: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Do not ask for confirmation (needed when not on a terminal).
    #[arg(long)]
    yes: bool,
}

pub async fn run(args: RestoreArgs) -> Result<ExitCode, Failure> {
    let repo = args.repository.as_str();
    check_repository(repo).map_err(|e| usage(anyhow!("--repository {repo:?}: {e}")))?;
    let digest = args
        .digest
        .as_deref()
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| usage(anyhow!("--digest {d:?}: {e}")))
        })
        .transpose()?;
    // Listing changes nothing, so it needs no --yes.
    let (conn, store) = open(&args.connect, args.yes || args.list)?;
    let result = if args.from_journal {
        from_journal(&args, conn.client.as_ref(), digest.as_ref()).await
    } else {
        restore_from(&args, conn.client.as_ref(), digest.as_ref()).await
    };
    finish(store, result).await
}

async fn from_journal(
    args: &RestoreArgs,
    client: &dyn registry_janitor::registry::Backend,
    digest: Option<&Digest>,
) -> Result<ExitCode, Failure> {
    let repo = args.repository.as_str();
    let Some(path) = args.connect.journal_path()? else {
        return Err(usage(anyhow!(
            "--from-journal: with --no-state there is no journal; give --journal FILE"
        )));
    };
    let records = FileJournal::new(&path).read().map_err(runtime)?;
    let chosen =
        journal::choose(&records, client.host(), repo, args.run, digest).map_err(runtime)?;
    eprint!("{}", show::journal_preview(repo, &chosen));
    if !go_ahead(args.yes) {
        return Ok(ExitCode::SUCCESS);
    }
    let done = journal::restore(client, repo, &chosen)
        .await
        .map_err(runtime)?;
    show_done(args.format, &done, show::journal_done_table);
    Ok(failed_if(done.needs_attention()))
}

async fn restore_from(
    args: &RestoreArgs,
    client: &dyn registry_janitor::registry::Backend,
    digest: Option<&Digest>,
) -> Result<ExitCode, Failure> {
    let repo = args.repository.as_str();
    let trashes = restore::trashes(client, repo).await.map_err(runtime)?;
    if args.list {
        let trashes: Vec<_> = restore::of_run(repo, &trashes, args.run)
            .map_err(runtime)?
            .into_iter()
            .cloned()
            .collect();
        match args.format {
            Format::Json => println!("{}", show::list_json(&trashes)),
            Format::Table => print!("{}", show::list_table(repo, &trashes)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let chosen_trashes = restore::of_run(repo, &trashes, args.run).map_err(runtime)?;
    if chosen_trashes.is_empty() {
        eprintln!("{repo}: the trash is empty; nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let concurrency = usize::from(args.connect.concurrency);
    let manifests = restore::read_entries(client, repo, &chosen_trashes, concurrency)
        .await
        .map_err(runtime)?;
    let chosen = restore::choose(repo, &chosen_trashes, &manifests, digest).map_err(runtime)?;
    eprint!("{}", show::preview(repo, &chosen_trashes, &chosen));
    if !go_ahead(args.yes) {
        return Ok(ExitCode::SUCCESS);
    }
    let done = restore::restore(client, repo, &chosen_trashes, &manifests, &chosen)
        .await
        .map_err(runtime)?;
    show_done(args.format, &done, show::done_table);
    Ok(failed_if(done.needs_attention()))
}

/// What a restore did: as JSON, or as its table.
fn show_done<T: serde::Serialize>(format: Format, done: &T, table: impl Fn(&T) -> String) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(done).unwrap_or_default()),
        Format::Table => print!("{}", table(done)),
    }
}
