//! `image delete`: one manifest with every tag on it, and what only it uses: the platform
//! images of an index, its signatures and SBOMs (`az acr repository delete --image`).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::anyhow;
use chrono::Utc;
use clap::Subcommand;

use registry_janitor::apply::Decider;
use registry_janitor::in_use::{self, InUse, Provider};
use registry_janitor::plan::manual::delete_chosen_unless_in_use;
use registry_janitor::policy::Policy;
use registry_janitor::registry::{Digest, Reference};
use registry_janitor::report::operations;
use registry_janitor::state::AnyState;

use super::connect::Connection;
use super::operation::{
    apply_and_show, finish, go_ahead, open, parse_image, require_complete, sweeper,
};
use super::{runtime, ConnectArgs, Failure};

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
        /// Delete it even if a tagged index still uses it, referrers that stay point at it,
        /// or an --in-use list names it. That breaks them.
        #[arg(long)]
        force: bool,
        /// A list of the images in use, a file or an S3 object (repeatable; one reference per
        /// line, or a JSON array): an image it names is refused unless --force.
        #[arg(long = "in-use", value_name = "FILE|s3://BUCKET/KEY")]
        in_use: Vec<String>,
    },
}

pub async fn run(command: ImageCommand) -> Result<ExitCode, Failure> {
    let ImageCommand::Delete {
        connect,
        image,
        yes,
        force,
        in_use,
    } = command;
    let (repository, reference) = parse_image(&image, true)?;
    let providers: Vec<Provider> = in_use.iter().map(|a| Provider::from_arg(a)).collect();
    let running = in_use::read_for(&providers, &connect.registry).await;
    if let Some(why) = &running.failure {
        return Err(runtime(anyhow!("{why}; nothing was changed")));
    }
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
        let how = How {
            yes,
            force,
            running: &running,
        };
        delete_image(&conn, &mut store, &connect, &repository, digest, how).await
    }
    .await;
    finish(store, result).await
}

/// What the user said about the delete besides the image.
struct How<'a> {
    yes: bool,
    force: bool,
    /// The images in use (`--in-use`).
    running: &'a InUse,
}

async fn delete_image(
    conn: &Connection,
    store: &mut AnyState,
    connect: &ConnectArgs,
    repo: &str,
    digest: Digest,
    how: How<'_>,
) -> Result<ExitCode, Failure> {
    let How {
        yes,
        force,
        running,
    } = how;
    let delete_chosen = |s: &_, chosen: &_, reason: &str, force: bool, now| {
        delete_chosen_unless_in_use(s, chosen, reason, force, now, running)
    };
    let now = Utc::now();
    let mut policy = Policy::nothing();
    // Collect reads what the lists name even untagged, as it does what the user names.
    policy.protect.running = running.clone();
    let chosen: BTreeSet<Digest> = [digest.clone()].into();
    let reason = "named by image delete".to_owned();
    // Named, so that collect reads it even when nothing links to it (untagged, by digest).
    let decider = Decider::new(|s| delete_chosen(s, &chosen, &reason, force, now).plan)
        .naming(chosen.clone());
    let mut sweeper = sweeper(conn, &policy, store, connect, now);
    let planned = sweeper.plan_with(repo, &decider).await.map_err(runtime)?;
    require_complete(&planned)?;
    if !planned.snapshot.manifests.contains_key(&digest) {
        return Err(runtime(anyhow!("{repo}@{digest}: no such manifest")));
    }
    let c = delete_chosen(&planned.snapshot, &chosen, &reason, force, now);
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
    print!(
        "{}",
        operations::image_delete_preview(repo, &digest, &c.plan)
    );
    for r in &c.refused {
        println!(
            "WARNING: --force: {} is deleted although {}.",
            r.digest.short(),
            r.reason
        );
    }
    if !go_ahead(yes) {
        return Ok(ExitCode::SUCCESS);
    }
    // At the re-check, force only what was shown: if something new now uses the manifest,
    // it is kept, as without --force.
    let shown = c.refused.clone();
    let recheck = Decider::new(|s| {
        let again = delete_chosen(s, &chosen, &reason, force, now);
        if again.refused == shown {
            again.plan
        } else {
            delete_chosen(s, &chosen, &reason, false, now).plan
        }
    })
    .forcing(c.forced);
    let (done, code) = apply_and_show(&mut sweeper, planned, &recheck).await?;
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
