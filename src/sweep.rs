//! A sweep: one run over a scope. For each repository: load what we remember, collect,
//! plan, and (unless dry run) apply; then remember what we saw.
//!
//! A few repositories are in hand at once, each taken from read to apply in one go; another
//! starts when one is done. So deletion in the first starts before the last has been read,
//! and memory holds a few repositories, not the registry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::bounded;
use chrono::{DateTime, Utc};

use crate::apply::{apply, Conditions, Decider};
use crate::collect::collect;
use crate::journal::Journal;
use crate::plan::{RepositoryPlan, Snapshot};
use crate::policy::Policy;
use crate::registry::{Backend, RegistryError, READS_PER_WRITE};
use crate::state::{Remembered, RepoInventory, StateError, StateStore};
use crate::trigger::Pushed;

/// One repository, planned and not yet applied.
pub struct Planned {
    pub snapshot: Snapshot,
    pub plan: RepositoryPlan,
    inventory: RepoInventory,
}

pub struct Sweeper<'a, S: StateStore> {
    pub client: &'a dyn Backend,
    pub policy: &'a Policy,
    pub store: &'a mut S,
    pub now: DateTime<Utc>,
    pub concurrency: usize,
    /// No new repository and no new delete starts after this (the Lambda deadline).
    pub deadline: Option<Instant>,
    /// Lift a registry lock (ACR) on a manifest the plan deletes, logging it. Only a policy
    /// with `protect.include_locked` plans such deletes.
    pub unlock: bool,
    /// Where apply records each manifest before deleting or trashing it.
    pub journal: Option<&'a dyn Journal>,
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
    client: &dyn Backend,
    policy: &Policy,
    asked: &[String],
) -> Result<Vec<String>, RegistryError> {
    if !asked.is_empty() {
        // Each once, in the order asked: repositories are swept side by side, and one name
        // twice would be two sweeps of the same repository at the same time.
        let mut seen = std::collections::BTreeSet::new();
        let mut names = Vec::new();
        for name in asked {
            crate::registry::name::check_repository(name)?;
            if seen.insert(name) {
                names.push(name.clone());
            }
        }
        return Ok(names);
    }
    let catalog = client.repositories().await?;
    Ok(catalog.into_iter().filter(|r| policy.covers(r)).collect())
}

/// How many repositories a run reads and applies at once: as many as changes may be in
/// flight, at most 8. Requests in flight stay bounded by the client's own limits; this keeps
/// them busy while one repository waits on a round trip (its tag list, the children of an
/// index, the next wave of deletes), and bounds memory by a few repositories, not the
/// registry. `--concurrency 1` still takes one repository at a time.
pub fn repositories_at_once(concurrency: usize) -> usize {
    concurrency.clamp(1, 8)
}

/// What every repository of a run shares.
#[derive(Clone, Copy)]
struct Run<'a> {
    client: &'a dyn Backend,
    policy: &'a Policy,
    now: DateTime<Utc>,
    concurrency: usize,
    deadline: Option<Instant>,
    journal: Option<&'a dyn Journal>,
}

/// The inventory, shared by the repositories in flight: each loads and saves its own entry.
type Store<'s, S> = tokio::sync::Mutex<&'s mut S>;

impl<'a, S: StateStore> Sweeper<'a, S> {
    /// A sweeper over `client` and `store` with `policy`, as of `now`: 8 changes in flight, no
    /// deadline, no unlocking, until said otherwise.
    pub fn new(
        client: &'a dyn Backend,
        policy: &'a Policy,
        store: &'a mut S,
        now: DateTime<Utc>,
    ) -> Sweeper<'a, S> {
        Sweeper {
            client,
            policy,
            store,
            now,
            concurrency: 8,
            deadline: None,
            unlock: false,
            journal: None,
        }
    }

    /// Record what apply deletes or trashes in `journal` first (`crate::journal`).
    pub fn journaling(mut self, journal: Option<&'a dyn Journal>) -> Sweeper<'a, S> {
        self.journal = journal;
        self
    }

    /// Changes in flight at once (reads go `READS_PER_WRITE` times wider).
    pub fn concurrency(mut self, concurrency: usize) -> Sweeper<'a, S> {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Start no repository and no delete after this instant.
    pub fn deadline(mut self, deadline: Option<Instant>) -> Sweeper<'a, S> {
        self.deadline = deadline;
        self
    }

    /// Lift registry locks on what the plan deletes (`apply --unlock`).
    pub fn unlocking(mut self, unlock: bool) -> Sweeper<'a, S> {
        self.unlock = unlock;
        self
    }

    fn shared(&self) -> Run<'a> {
        Run {
            client: self.client,
            policy: self.policy,
            now: self.now,
            concurrency: self.concurrency,
            deadline: self.deadline,
            journal: self.journal,
        }
    }

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
        let run = self.shared();
        run.plan(&Store::new(&mut *self.store), repository, decider)
            .await
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
        let run = self.shared();
        run.apply(&Store::new(&mut *self.store), planned, decider)
            .await
    }

    /// Plan each repository and, when `apply`, carry its plan out as soon as it is made.
    /// Up to `repositories_at_once` repositories are in hand at a time, half of them reading, so deletion starts
    /// long before the last repository is read. `progress` hears (index, repository, phase)
    /// for a progress line. After a state error no new repository starts; the ones in hand
    /// finish, and the first error is returned.
    pub async fn run(
        &mut self,
        repositories: &[String],
        apply: bool,
        progress: impl FnMut(usize, &str, &str),
    ) -> Result<Outcome, StateError> {
        let run = self.shared();
        let (policy, now) = (self.policy, self.now);
        let unlock = self.unlock;
        let store = Store::new(&mut *self.store);
        let progress = std::sync::Mutex::new(progress);
        let say = |i: usize, repo: &str, phase: &str| {
            if let Ok(mut p) = progress.lock() {
                p(i, repo, phase)
            }
        };
        let failed = AtomicBool::new(false);
        let at_once = repositories_at_once(self.concurrency);
        // Of the repositories in hand, half are read at once; the others are being changed
        // or wait their turn. All read side by side would share the read slots and finish
        // reading together, late: the bench's first delete came after 40% of all reads.
        let reading = tokio::sync::Semaphore::new((at_once / 2).max(1));
        let mut results: Vec<(usize, Result<Option<RepositoryPlan>, StateError>)> =
            bounded::each(at_once, repositories.iter().enumerate(), |(i, repo)| {
                let (store, failed, say, reading) = (&store, &failed, &say, &reading);
                async move {
                    // Never closed, so this cannot fail; if it did, reading is still safe.
                    let turn = reading.acquire().await.ok();
                    // Credentials refused and not renewed by their source: what is not
                    // started stays for the next run, as when time runs out.
                    if failed.load(Ordering::Relaxed)
                        || run.out_of_time()
                        || run.client.credentials_spent()
                    {
                        return (i, Ok(None));
                    }
                    say(i, repo, "reading");
                    let swept = async {
                        let planned = run.plan(store, repo, &Decider::policy(policy, now)).await?;
                        drop(turn);
                        if !apply {
                            return Ok(planned.plan);
                        }
                        say(i, repo, "applying");
                        let decider = Decider::policy(policy, now).unlocking(unlock);
                        run.apply(store, planned, &decider).await
                    }
                    .await;
                    if swept.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    (i, swept.map(Some))
                }
            })
            .await;
        results.sort_by_key(|(i, _)| *i);
        let mut outcome = Outcome {
            repositories: Vec::new(),
            unfinished: Vec::new(),
        };
        for (i, result) in results {
            match result? {
                // Not started: the run's time ran out.
                None => outcome.unfinished.push(repositories[i].clone()),
                Some(plan) => {
                    if plan.unfinished() {
                        outcome.unfinished.push(plan.name.clone());
                    }
                    outcome.repositories.push(plan);
                }
            }
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

impl Run<'_> {
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    async fn plan<S: StateStore>(
        &self,
        store: &Store<'_, S>,
        repository: &str,
        decider: &Decider<'_>,
    ) -> Result<Planned, StateError> {
        let (mut inventory, remembers) = {
            let mut store = store.lock().await;
            (store.load(repository).await?, store.remembers())
        };
        // Reads may go wider than changes (see READS_PER_WRITE); the client holds both limits.
        let collected = collect(
            self.client,
            repository,
            &inventory,
            self.policy,
            decider.named(),
            self.concurrency * READS_PER_WRITE,
            self.deadline,
        )
        .await;
        let mut snapshot = collected.snapshot;
        // Clocks start at the real time, or at `now` if that is later: evaluating as if in
        // the past (`--now`) must never backdate a clock and cut a grace period short.
        let clock = self.now.max(Utc::now());
        inventory.observe(&mut snapshot, &collected.gone, clock);
        if !remembers {
            // Without an inventory every tag is "first seen" now, at every sweep: that is no
            // age, so a tag whose image has no real date stays of unknown age (never old).
            for tag in snapshot.tags.values_mut() {
                tag.first_seen = None;
            }
        }
        let plan = decider.decide_on(&snapshot, &self.client.capabilities());
        log_decisions(&plan);
        // The journal records only what the plan deletes (apply deletes no more): keep those
        // manifests' bytes, and none without a journal, so that a plan held for confirmation
        // does not hold every manifest it read.
        if self.journal.is_some() {
            let going: std::collections::BTreeSet<&crate::registry::Digest> =
                plan.delete.iter().map(|d| &d.digest).collect();
            snapshot.bodies.retain(|d, _| going.contains(d));
        } else {
            snapshot.bodies.clear();
        }
        store
            .lock()
            .await
            .save(repository, inventory.clone())
            .await?;
        Ok(Planned {
            snapshot,
            plan,
            inventory,
        })
    }

    async fn apply<S: StateStore>(
        &self,
        store: &Store<'_, S>,
        planned: Planned,
        decider: &Decider<'_>,
    ) -> Result<RepositoryPlan, StateError> {
        let Planned {
            snapshot,
            plan,
            mut inventory,
        } = planned;
        // Every tag the plan removes is written down before anything changes: if the
        // registry leaves one behind naming nothing (or this run is cut short), the next
        // sweep knows it as ours and finishes it (`state::Removing`).
        if plan.complete() && !(plan.untag.is_empty() && plan.delete.is_empty()) {
            let removals = plan
                .untag
                .iter()
                .map(|u| (u.tag.as_str(), &u.digest))
                .chain(
                    plan.delete
                        .iter()
                        .flat_map(|d| d.tags.iter().map(move |t| (t.as_str(), &d.digest))),
                );
            inventory.removing(removals, self.now.max(Utc::now()));
            store
                .lock()
                .await
                .save(&snapshot.repository, inventory.clone())
                .await?;
        }
        let applied = apply(
            self.client,
            &snapshot,
            plan,
            decider,
            Conditions {
                now: self.now,
                concurrency: self.concurrency,
                deadline: self.deadline,
                journal: self.journal,
            },
        )
        .await;
        let done = applied.done;
        // What went to the trash is still there: the inventory keeps knowing it.
        inventory.forget(
            done.delete
                .iter()
                .filter(|d| d.error.is_none() && d.trash.is_none())
                .map(|d| &d.digest),
        );
        inventory.untagged(
            done.untag
                .iter()
                .filter(|u| u.error.is_none())
                .map(|u| (u.tag.as_str(), &u.digest)),
        );
        inventory
            .removing
            .retain(|tag, _| applied.unsettled.contains_key(tag));
        inventory.removing(
            applied.unsettled.iter().map(|(t, d)| (t.as_str(), d)),
            self.now.max(Utc::now()),
        );
        store
            .lock()
            .await
            .save(&snapshot.repository, inventory)
            .await?;
        Ok(done)
    }
}

/// One log line per decision: deletes and untags at info, keeps at debug.
fn log_decisions(plan: &RepositoryPlan) {
    let repository = plan.name.as_str();
    if let Some(error) = plan.error() {
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
