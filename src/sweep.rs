//! A sweep: one run over a scope. For each repository: load what we remember, collect,
//! plan, and (unless dry run) apply; then remember what we saw.
//!
//! Repositories are handled one after the other, each to the end, so deletion in the first
//! starts before the last has been read, and memory holds one repository at a time.

use chrono::{DateTime, Utc};

use crate::apply::apply;
use crate::collect::collect;
use crate::plan::{plan, RepositoryPlan, Snapshot};
use crate::policy::Policy;
use crate::registry::{OciClient, RegistryError};
use crate::state::{RepoInventory, StateError, StateStore};

/// One repository, planned and not yet applied.
pub struct Planned {
    pub snapshot: Snapshot,
    pub plan: RepositoryPlan,
    inventory: RepoInventory,
}

pub struct Sweeper<'a, S: StateStore> {
    pub client: &'a OciClient,
    pub policy: &'a Policy,
    pub store: &'a mut S,
    pub now: DateTime<Utc>,
    pub concurrency: usize,
}

/// The repositories a sweep covers: the ones asked for, else every repository in the catalog
/// that some rule's `repositories` matches.
pub async fn scope(
    client: &OciClient,
    policy: &Policy,
    asked: &[String],
) -> Result<Vec<String>, RegistryError> {
    if !asked.is_empty() {
        for name in asked {
            crate::registry::name::check_repository(name)?;
        }
        return Ok(asked.to_vec());
    }
    let catalog = client.repositories().await?;
    Ok(catalog
        .items
        .into_iter()
        .filter(|r| policy.covers(r))
        .collect())
}

impl<S: StateStore> Sweeper<'_, S> {
    /// Read one repository and decide. Records what it saw, so a dry run also starts the
    /// clocks of manifests that just became untagged.
    pub async fn plan(&mut self, repository: &str) -> Result<Planned, StateError> {
        let mut inventory = self.store.load(repository).await?;
        let collected = collect(
            self.client,
            repository,
            &inventory,
            self.policy,
            self.concurrency,
        )
        .await;
        let mut snapshot = collected.snapshot;
        // Clocks start at the real time, or at `now` if that is later: evaluating as if in
        // the past (`--now`) must never backdate a clock and cut a grace period short.
        let clock = self.now.max(Utc::now());
        inventory.observe(&mut snapshot, &collected.gone, clock);
        let plan = plan(&snapshot, self.policy, self.now);
        self.store.save(repository, inventory.clone()).await?;
        Ok(Planned {
            snapshot,
            plan,
            inventory,
        })
    }

    /// Carry out a plan made by `plan`, and forget what was deleted.
    pub async fn apply(&mut self, planned: Planned) -> Result<RepositoryPlan, StateError> {
        let Planned {
            snapshot,
            plan,
            mut inventory,
        } = planned;
        let done = apply(
            self.client,
            &snapshot,
            plan,
            self.policy,
            self.now,
            self.concurrency,
        )
        .await;
        inventory.forget(
            done.delete
                .iter()
                .filter(|d| d.error.is_none())
                .map(|d| &d.digest),
        );
        self.store.save(&snapshot.repository, inventory).await?;
        Ok(done)
    }
}
