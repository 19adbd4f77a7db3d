//! What the manual operations (`repository`, `image`, `tag`, `manifest`) share: opening the
//! connection (a change that cannot be confirmed stops first), the sweeper, the rule that
//! nothing is decided on a partial picture, and saving the inventory whatever happened.

use std::process::ExitCode;

use anyhow::anyhow;
use chrono::{DateTime, Utc};

use registry_janitor::apply::Decider;
use registry_janitor::plan::RepositoryPlan;
use registry_janitor::policy::Policy;
use registry_janitor::registry::name::check_repository;
use registry_janitor::registry::{Digest, Reference};
use registry_janitor::report::{operations, Report};
use registry_janitor::state::{AnyState, StateStore};
use registry_janitor::sweep::{Planned, Sweeper};

use super::connect::Connection;
use super::terminal::{can_ask, confirm, needs_yes};
use super::{runtime, usage, ConnectArgs, Failure};

/// Connect and open the inventory; a change that cannot be confirmed stops here.
pub fn open(connect: &ConnectArgs, yes: bool) -> Result<(Connection, AnyState), Failure> {
    if !yes && !can_ask() {
        return Err(needs_yes());
    }
    connect.open()
}

/// Save the inventory whatever happened, then hand back the command's result.
pub async fn finish(
    mut store: AnyState,
    result: Result<ExitCode, Failure>,
) -> Result<ExitCode, Failure> {
    store.flush().await.map_err(runtime)?;
    result
}

pub fn sweeper<'a>(
    conn: &'a Connection,
    policy: &'a Policy,
    store: &'a mut AnyState,
    connect: &ConnectArgs,
    now: DateTime<Utc>,
) -> Sweeper<'a, AnyState> {
    Sweeper::new(conn.client.as_ref(), policy, store, now)
        .concurrency(usize::from(connect.concurrency))
        .journaling(conn.journal.as_deref())
}

/// Ask before a change, unless `yes`; on no, say that nothing was changed.
pub fn go_ahead(yes: bool) -> bool {
    if yes || confirm("Are you sure you want to continue? (y/n): ") {
        return true;
    }
    eprintln!("Nothing was changed.");
    false
}

/// Apply `planned`, print what was done, and give the exit code (1 if anything failed).
pub async fn apply_and_show(
    sweeper: &mut Sweeper<'_, AnyState>,
    planned: Planned,
    decider: &Decider<'_>,
) -> Result<(RepositoryPlan, ExitCode), Failure> {
    let repo = planned.plan.name.clone();
    let done = sweeper
        .apply_with(planned, decider)
        .await
        .map_err(runtime)?;
    print!("{}", operations::done(&repo, &done));
    let code = failed_if(done.has_failures());
    Ok((done, code))
}

/// Stop if the repository could not be read whole: nothing is decided on a partial picture.
pub fn require_complete(planned: &Planned) -> Result<(), Failure> {
    // The manual operations' plans do not look at it: the snapshot says.
    if let Some(why) = &planned.snapshot.absent {
        return Err(runtime(anyhow!(
            "{}: the registry knows no such repository ({why}); nothing was changed",
            planned.plan.name
        )));
    }
    match planned.plan.error() {
        Some(e) => Err(runtime(anyhow!(
            "{}: cannot read the repository completely, so nothing was changed: {e}",
            planned.plan.name
        ))),
        _ => Ok(()),
    }
}

/// Exit 1 when anything failed or a repository was held by the policy's limits.
pub fn exit_code(report: &Report) -> ExitCode {
    failed_if(report.needs_attention())
}

/// Exit 1 when anything failed.
pub fn failed_if(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `NAME:TAG` or (when `digest_ok`) `NAME@DIGEST`.
pub fn parse_image(image: &str, digest_ok: bool) -> Result<(String, Reference), Failure> {
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
