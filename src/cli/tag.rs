//! `tag delete`: remove one tag; the manifest stays (`az acr repository untag`).

use std::process::ExitCode;

use anyhow::anyhow;
use chrono::Utc;
use clap::Subcommand;

use registry_janitor::apply::Decider;
use registry_janitor::plan::manual::untag_only;
use registry_janitor::policy::Policy;
use registry_janitor::registry::Reference;
use registry_janitor::report::operations;
use registry_janitor::state::AnyState;

use super::connect::Connection;
use super::operation::{
    apply_and_show, finish, go_ahead, open, parse_image, require_complete, sweeper,
};
use super::{runtime, usage, ConnectArgs, Failure};

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

pub async fn run(command: TagCommand) -> Result<ExitCode, Failure> {
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
    print!(
        "{}",
        operations::tag_delete_preview(repo, tag, &tref.digest, &others)
    );
    if !go_ahead(yes) {
        return Ok(ExitCode::SUCCESS);
    }
    let (done, code) = apply_and_show(&mut sweeper, planned, &decider).await?;
    if !done.untag.iter().any(|u| u.tag == tag && u.error.is_none()) {
        eprintln!(
            "{repo}:{tag} was not removed (it moved since the preview, or the registry refused)."
        );
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}
