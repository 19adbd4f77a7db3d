//! `repository delete`: every manifest and tag of a repository (`az acr repository delete
//! --name`), through the planner, so a lock or an image in use elsewhere is shown and kept.
//! Where the registry deletes a repository in one call (ACR) and nothing stays, that call.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::anyhow;
use chrono::Utc;
use clap::Subcommand;

use registry_janitor::apply::Decider;
use registry_janitor::plan::manual::delete_chosen;
use registry_janitor::policy::Policy;
use registry_janitor::registry::name::check_repository;
use registry_janitor::registry::Digest;
use registry_janitor::report::operations;
use registry_janitor::state::{AnyState, RepoInventory, StateStore};

use super::connect::Connection;
use super::operation::{apply_and_show, finish, go_ahead, open, require_complete, sweeper};
use super::{runtime, usage, ConnectArgs, Failure};

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

pub async fn run(command: RepositoryCommand) -> Result<ExitCode, Failure> {
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
        delete_chosen(s, &all, &reason, false, now).plan
    };
    let decider = Decider::new(everything);
    let mut sweeper = sweeper(conn, &policy, store, connect, now);
    let planned = sweeper.plan_with(repo, &decider).await.map_err(runtime)?;
    require_complete(&planned)?;
    let plan = &planned.plan;
    print!("{}", operations::repository_delete_preview(repo, plan));
    if !go_ahead(yes) {
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
    let (_, code) = apply_and_show(&mut sweeper, planned, &decider).await?;
    Ok(code)
}
