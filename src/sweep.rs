//! A sweep: one run over a scope. For each repository: load what we remember, collect,
//! plan, and (unless dry run) apply; then remember what we saw.
//!
//! Repositories are handled one after the other, each to the end, so deletion in the first
//! starts before the last has been read, and memory holds one repository at a time.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::apply::{apply, Decider};
use crate::collect::collect;
use crate::plan::{RepositoryPlan, Snapshot};
use crate::policy::Policy;
use crate::registry::{OciClient, RegistryError};
use crate::state::{Remembered, RepoInventory, StateError, StateStore};
use crate::trigger::Pushed;

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
    /// No new repository and no new delete starts after this (the Lambda deadline).
    pub deadline: Option<Instant>,
    /// Lift a registry lock (ACR) on a manifest the plan deletes, logging it. Only a policy
    /// with `protect.include_locked` plans such deletes.
    pub unlock: bool,
}

/// What a run over several repositories did.
pub struct Outcome {
    pub repositories: Vec<RepositoryPlan>,
    /// Repositories not finished (or not reached) before the deadline.
    pub unfinished: Vec<String>,
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
        let policy = self.policy;
        self.plan_with(repository, &Decider::policy(policy, self.now))
            .await
    }

    /// As `plan`, with another decider (a manual operation). The policy still says which
    /// digests are pinned and which tags need an age; the decider names digests to read too.
    pub async fn plan_with(
        &mut self,
        repository: &str,
        decider: &Decider<'_>,
    ) -> Result<Planned, StateError> {
        let mut inventory = self.store.load(repository).await?;
        let collected = collect(
            self.client,
            repository,
            &inventory,
            self.policy,
            decider.named(),
            self.concurrency,
        )
        .await;
        let mut snapshot = collected.snapshot;
        // Clocks start at the real time, or at `now` if that is later: evaluating as if in
        // the past (`--now`) must never backdate a clock and cut a grace period short.
        let clock = self.now.max(Utc::now());
        inventory.observe(&mut snapshot, &collected.gone, clock);
        let plan = decider.decide(&snapshot);
        log_decisions(&plan);
        self.store.save(repository, inventory.clone()).await?;
        Ok(Planned {
            snapshot,
            plan,
            inventory,
        })
    }

    /// Carry out a plan made by `plan`, and forget what was deleted.
    pub async fn apply(&mut self, planned: Planned) -> Result<RepositoryPlan, StateError> {
        let policy = self.policy;
        let decider = Decider::policy(policy, self.now).unlocking(self.unlock);
        self.apply_with(planned, &decider).await
    }

    /// As `apply`, re-checking with `decider` (the one the plan was made with).
    pub async fn apply_with(
        &mut self,
        planned: Planned,
        decider: &Decider<'_>,
    ) -> Result<RepositoryPlan, StateError> {
        let Planned {
            snapshot,
            plan,
            mut inventory,
        } = planned;
        let done = apply(
            self.client,
            &snapshot,
            plan,
            decider,
            self.now,
            self.concurrency,
            self.deadline,
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

    /// Plan each repository and, when `apply`, carry its plan out before moving to the next.
    /// `progress` hears (index, repository, phase) for a progress line.
    pub async fn run(
        &mut self,
        repositories: &[String],
        apply: bool,
        mut progress: impl FnMut(usize, &str, &str),
    ) -> Result<Outcome, StateError> {
        let mut outcome = Outcome {
            repositories: Vec::new(),
            unfinished: Vec::new(),
        };
        for (i, repo) in repositories.iter().enumerate() {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                outcome.unfinished.extend(repositories[i..].iter().cloned());
                break;
            }
            progress(i, repo, "reading");
            let planned = self.plan(repo).await?;
            let result = if apply {
                progress(i, repo, "applying");
                self.apply(planned).await?
            } else {
                planned.plan
            };
            if result.unfinished {
                outcome.unfinished.push(repo.clone());
            }
            outcome.repositories.push(result);
        }
        self.store.flush().await?;
        Ok(outcome)
    }

    /// Remember digests that pushes named, before any sweep looks: a manifest pushed and
    /// untagged again before the sweep runs is then still known.
    pub async fn remember(&mut self, pushed: &[Pushed]) -> Result<(), StateError> {
        let mut by_repo: BTreeMap<&str, Vec<&Pushed>> = BTreeMap::new();
        for p in pushed {
            by_repo.entry(&p.repository).or_default().push(p);
        }
        for (repo, pushes) in by_repo {
            let mut inventory = self.store.load(repo).await?;
            let mut changed = false;
            for p in pushes {
                if !inventory.manifests.contains_key(&p.digest) {
                    inventory
                        .manifests
                        .insert(p.digest.clone(), Remembered::new(self.now.max(Utc::now())));
                    changed = true;
                }
            }
            if changed {
                self.store.save(repo, inventory).await?;
            }
        }
        self.store.flush().await
    }
}

/// One log line per decision: deletes and untags at info, keeps at debug.
fn log_decisions(plan: &RepositoryPlan) {
    let repository = plan.name.as_str();
    if let Some(error) = &plan.error {
        tracing::warn!(repository, error = %error, "repository incomplete; nothing is deleted here this run");
    }
    for d in &plan.delete {
        tracing::info!(decision = "delete", repository, digest = %d.digest, tags = ?d.tags, reason = %d.reason, bytes = d.bytes, "planned");
    }
    for u in &plan.untag {
        tracing::info!(decision = "untag", repository, digest = %u.digest, tag = %u.tag, reason = %u.reason, "planned");
    }
    for k in &plan.keep {
        tracing::debug!(decision = "keep", repository, digest = %k.digest, tags = ?k.tags, reason = %k.reason, "planned");
    }
}
