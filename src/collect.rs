//! Collect: read one repository into a `Snapshot` for the planner. Read-only.
//!
//! It asks for as little as the planner needs: the tag list, one manifest GET per tag, a GET
//! for each child or subject not read yet (or nothing, when the inventory already knows that
//! digest's content), a HEAD for each remembered digest that no tag reaches, and a config
//! blob only where an age is needed and the registry has no timestamp of its own.
//!
//! Anything it cannot read becomes a problem on the snapshot, and the planner then deletes
//! nothing in this repository.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::bounded;

use crate::plan::{ManifestFacts, Problem, Snapshot, TagRef};
use crate::policy::Policy;
use crate::registry::{
    Backend, Digest, ListedManifest, ListedTag, Manifest, Reference, RegistryError, TagListing,
};
use crate::state::RepoInventory;

/// A snapshot, and the remembered digests the registry no longer has.
pub struct Collected {
    pub snapshot: Snapshot,
    pub gone: Vec<Digest>,
}

/// What one manifest is, for the planner.
pub fn facts_of(m: &Manifest) -> ManifestFacts {
    ManifestFacts {
        media_type: m.media_type.to_string(),
        size: m.size,
        children: m.children().iter().map(|c| c.digest.clone()).collect(),
        subject: m.subject.as_ref().map(|s| s.digest.clone()),
        blobs: m.blobs().map(|b| (b.digest.clone(), b.size)).collect(),
        created: m.created_annotation(),
        image_config: m.config().is_some_and(|c| is_image_config(&c.media_type)),
        trash: crate::trash::Mark::of(m),
        ..ManifestFacts::default()
    }
}

/// Read `repository`. Besides what tags reach and what the inventory remembers, it reads
/// the policy's pinned digests and `named` ones (a manual operation's), even untagged.
pub async fn collect(
    client: &dyn Backend,
    repository: &str,
    inventory: &RepoInventory,
    policy: &Policy,
    named: &BTreeSet<Digest>,
    concurrency: usize,
    deadline: Option<Instant>,
) -> Collected {
    let snapshot = Snapshot {
        repository: repository.to_owned(),
        ..Snapshot::default()
    };
    let mut reader = Reader::new(client, repository, inventory, concurrency, snapshot);
    reader.deadline = deadline;
    // Pinned and in-use manifests keep what they reach, so they must be in the picture even
    // untagged; so must a manifest the user names by digest.
    let wanted: BTreeSet<Digest> = policy
        .protect
        .digests
        .iter()
        .chain(named)
        .chain(policy.protect.running.digests_in(repository))
        .cloned()
        .collect();
    match client.listings(repository).await {
        Ok((TagListing::Names(names), _)) => reader.read_tags(&names).await,
        Ok((TagListing::Resolved(tags), manifests)) => reader.read_listed(tags, manifests).await,
        Err(e) if e.is_name_unknown() => {
            reader.nothing_there(&e, wanted).await;
            return reader.into_collected();
        }
        Err(e) => {
            let what = if client.capabilities().manifest_listing {
                "tags and manifests"
            } else {
                "tags"
            };
            reader.problem(Problem::of(format_args!("cannot list {what}"), &e));
            return reader.into_collected();
        }
    }
    reader.read_digests(wanted, true).await;
    reader.read_remembered().await;
    reader.read_referrers().await;
    reader.work_out_ages(policy).await;
    if reader.late() {
        // Whatever a step skipped for time, the picture is not whole.
        let problem = Problem::of("reading", &reader.out_of_time());
        reader.problem(problem);
    }
    reader.into_collected()
}

/// Re-read the tags of a repository just before changing it, and read any manifest they
/// point at that `snapshot` lacks. Used by apply to notice what changed since planning.
///
/// Every tag is read again (a HEAD each; on ACR one listing gives them all). A tag re-pushed
/// since planning, as `latest` is on every build, may name a new index that reuses a planned
/// child; the tag list alone does not show that, and a digest read moments ago cannot.
///
/// A listed tag that answers 404 is a problem (a registry hiding a live tag would hide what
/// it needs), except one this run is removing (`removing`), and one of the snapshot's
/// dangling tags, which stays dangling in the answer.
///
/// With `links_as_read`, a `sha256-<hex>[.suffix]` link tag that `snapshot` already has is
/// taken from it without a HEAD (apply's re-reads between delete waves). Such a tag names a
/// referrer of its subject (a signature, a referrers fallback index); if it moved, it names
/// a new referrer, which no build reuses as a platform image, so it cannot make a planned
/// child needed. A new link tag is read like any other.
pub async fn refresh_tags(
    client: &dyn Backend,
    snapshot: &Snapshot,
    removing: &BTreeSet<String>,
    links_as_read: bool,
    concurrency: usize,
) -> Snapshot {
    let mut fresh = Snapshot {
        repository: snapshot.repository.clone(),
        manifests: snapshot.manifests.clone(),
        ..Snapshot::default()
    };
    let names = match client.tags(&snapshot.repository).await {
        Ok(TagListing::Names(names)) => names,
        Ok(TagListing::Resolved(listed)) => {
            return refresh_listed(client, snapshot, listed, fresh, concurrency).await
        }
        Err(e) => {
            fresh.problems.push(Problem::of(
                "cannot list tags again before changing anything",
                &e,
            ));
            return fresh;
        }
    };
    let client_ref = client;
    let repo = snapshot.repository.as_str();
    let mut unknown = BTreeSet::new();
    let (read, names): (Vec<String>, Vec<String>) = names.into_iter().partition(|tag| {
        links_as_read && Digest::from_link_tag(tag).is_some() && snapshot.tags.contains_key(tag)
    });
    for tag in read {
        let tref = snapshot.tags[&tag].clone();
        note_tag(&mut fresh, &mut unknown, tag, tref);
    }
    for (tag, result) in resolve_tags(client_ref, repo, names, concurrency).await {
        match result {
            Ok(Some(digest)) => {
                let tref = match snapshot.tags.get(&tag) {
                    Some(o) if o.digest == digest => o.clone(),
                    _ => TagRef::new(digest),
                };
                note_tag(&mut fresh, &mut unknown, tag, tref);
            }
            Ok(None) => match snapshot.dangling.get(&tag) {
                Some(named) => {
                    fresh.dangling.insert(tag, named.clone());
                }
                None if removing.contains(&tag) => {}
                None => fresh.problems.push(
                    format!("tag {tag}: listed, but a HEAD of it answers 404 (not found)").into(),
                ),
            },
            Err(e) => fresh
                .problems
                .push(Problem::of(format_args!("tag {tag}"), &e)),
        }
    }
    let inventory = RepoInventory::default();
    let mut reader = Reader::new(client, repo, &inventory, concurrency, fresh);
    reader.read_digests(unknown, true).await;
    // A tag whose manifest both a GET and a HEAD say is missing: what it names cannot be
    // known, so neither can what it keeps alive.
    reader.check_tag_targets();
    reader.snapshot
}

/// `refresh_tags` where the listing names digests (ACR): that one listing gives every tag's
/// digest, time and lock. A tag that still names what it named in `before` keeps the time
/// it was first seen there.
async fn refresh_listed(
    client: &dyn Backend,
    before: &Snapshot,
    listed: Vec<ListedTag>,
    fresh: Snapshot,
    concurrency: usize,
) -> Snapshot {
    let inventory = RepoInventory::default();
    let repository = fresh.repository.clone();
    let mut reader = Reader::new(client, &repository, &inventory, concurrency, fresh);
    let mut unknown = BTreeSet::new();
    for t in listed {
        let mut tref = tag_ref(&t);
        if let Some(old) = before.tags.get(&t.name).filter(|o| o.digest == t.digest) {
            tref.first_seen = old.first_seen;
        }
        note_tag(&mut reader.snapshot, &mut unknown, t.name, tref);
    }
    reader.read_digests(unknown, true).await;
    reader.check_tag_targets();
    reader.snapshot
}

/// What each of `tags` names now: a HEAD each, `limit` at once.
async fn resolve_tags(
    client: &dyn Backend,
    repository: &str,
    tags: Vec<String>,
    limit: usize,
) -> Vec<(String, Result<Option<Digest>, RegistryError>)> {
    bounded::each(limit, tags, |tag| async move {
        let r = match Reference::tag(&tag) {
            Ok(reference) => client.resolve(repository, &reference).await,
            Err(e) => Err(e.into()),
        };
        (tag, r)
    })
    .await
}

/// Put a re-read tag in `fresh`, and note what it names that `fresh` lacks: its manifest,
/// and the subject of a `sha256-<hex>` link tag.
fn note_tag(fresh: &mut Snapshot, unknown: &mut BTreeSet<Digest>, tag: String, tref: TagRef) {
    if !fresh.manifests.contains_key(&tref.digest) {
        unknown.insert(tref.digest.clone());
    }
    unknown.extend(Digest::from_link_tag(&tag).filter(|s| !fresh.manifests.contains_key(s)));
    fresh.tags.insert(tag, tref);
}

fn tag_ref(t: &ListedTag) -> TagRef {
    TagRef {
        digest: t.digest.clone(),
        updated: t.updated,
        locked: t.locked,
        first_seen: None,
    }
}

/// Whether `deadline` has passed.
fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

struct Reader<'a> {
    client: &'a dyn Backend,
    repository: &'a str,
    inventory: &'a RepoInventory,
    concurrency: usize,
    snapshot: Snapshot,
    gone: Vec<Digest>,
    /// Digests asked for and not found (dangling children, missing subjects).
    absent: BTreeSet<Digest>,
    /// The registry listed every manifest (ACR): a remembered digest it did not list is gone.
    listed_all: bool,
    /// No read starts after this (the run's deadline): the repository is then unfinished.
    deadline: Option<Instant>,
}

impl<'a> Reader<'a> {
    fn new(
        client: &'a dyn Backend,
        repository: &'a str,
        inventory: &'a RepoInventory,
        concurrency: usize,
        snapshot: Snapshot,
    ) -> Reader<'a> {
        Reader {
            client,
            repository,
            inventory,
            concurrency,
            snapshot,
            gone: Vec::new(),
            absent: BTreeSet::new(),
            listed_all: false,
            deadline: None,
        }
    }

    /// The run's time is up: no new read starts.
    fn late(&self) -> bool {
        past(self.deadline)
    }

    fn out_of_time(&self) -> RegistryError {
        RegistryError::OutOfTime {
            repository: self.repository.to_owned(),
        }
    }

    fn into_collected(self) -> Collected {
        Collected {
            snapshot: self.snapshot,
            gone: self.gone,
        }
    }

    /// A listing that names every tag's digest (and, where the backend lists them, every
    /// manifest), with the registry's own timestamps and locks (ACR). One GET per distinct
    /// digest not known from the inventory.
    async fn read_listed(&mut self, tags: Vec<ListedTag>, manifests: Option<Vec<ListedManifest>>) {
        let mut wanted: BTreeSet<Digest> = manifests
            .iter()
            .flatten()
            .map(|m| m.digest.clone())
            .collect();
        let mut subjects = BTreeSet::new();
        for t in &tags {
            wanted.insert(t.digest.clone());
            subjects.extend(Digest::from_link_tag(&t.name));
            self.snapshot.tags.insert(t.name.clone(), tag_ref(t));
        }
        self.read_digests(wanted, false).await;
        self.check_tag_targets();
        if let Some(manifests) = manifests {
            let mut contradictions = Vec::new();
            for m in &manifests {
                if let Some(f) = self.snapshot.manifests.get_mut(&m.digest) {
                    f.updated = m.updated;
                    f.pulled = m.pulled;
                    f.locked = m.locked;
                    // Where the listing names a subject (ECR's `subjectManifestDigest`), the
                    // manifest must name the same one: referrers are kept or deleted with
                    // their subject, so a registry that says two things is not trusted.
                    if let Some(listed) = m
                        .subject
                        .as_ref()
                        .filter(|s| f.subject.as_ref() != Some(*s))
                    {
                        contradictions.push(format!(
                            "the listing names {listed} as the subject of {}, its manifest names {}",
                            m.digest,
                            f.subject.as_ref().map_or("none".to_owned(), |s| s.to_string())
                        ));
                    }
                }
            }
            for c in contradictions {
                self.problem(c.into());
            }
            self.listed_all = true;
            // The two listings name the same tags, or the picture is not whole (a listing cut
            // short, a push between the two requests): nothing is deleted here this run.
            let by_manifest: BTreeSet<(&str, &Digest)> = manifests
                .iter()
                .flat_map(|m| m.tags.iter().map(move |t| (t.as_str(), &m.digest)))
                .collect();
            let by_tag: BTreeSet<(&str, &Digest)> =
                tags.iter().map(|t| (t.name.as_str(), &t.digest)).collect();
            if let Some((tag, digest)) = by_manifest.symmetric_difference(&by_tag).next() {
                let problem =
                    format!("the tag and manifest listings disagree about tag {tag} on {digest}");
                self.problem(problem.into());
            }
        }
        self.read_digests(subjects, true).await;
    }

    /// The registry knows no repository of this name (`NAME_UNKNOWN`): distribution says so
    /// of a repository that holds only blobs, after a push that stopped halfway, though its
    /// catalog lists it. That is "nothing there" only if nothing the inventory remembers
    /// there is left: "not found" is never read as "no tags" while a remembered manifest may
    /// still be served. One that is (a HEAD or GET finds it) means the registry contradicts
    /// itself, and the picture is not whole. So does a pinned or named digest it serves.
    /// Nothing is deleted here either way.
    async fn nothing_there(&mut self, listing: &RegistryError, wanted: BTreeSet<Digest>) {
        self.read_remembered().await;
        self.read_digests(wanted, true).await;
        if self.late() {
            let problem = Problem::of("reading", &self.out_of_time());
            self.problem(problem);
        } else if !self.snapshot.manifests.is_empty() {
            let problem = format!(
                "the registry knows no such repository ({listing}), yet it serves {} manifest(s) the inventory remembers, or a pinned or named digest, there",
                self.snapshot.manifests.len()
            );
            self.problem(problem.into());
        } else if self.snapshot.problems.is_empty() {
            self.snapshot.absent = Some(listing.to_string());
        }
    }

    /// A listed tag whose manifest could not be found leaves the picture incomplete.
    fn check_tag_targets(&mut self) {
        let missing: Vec<Problem> = self
            .snapshot
            .tags
            .iter()
            .filter(|(_, t)| !self.snapshot.manifests.contains_key(&t.digest))
            .map(|(n, t)| {
                Problem::from(format!(
                    "tag {n}: the registry lists it on {}, which cannot be read",
                    t.digest
                ))
            })
            .collect();
        self.snapshot.problems.extend(missing);
    }

    fn problem(&mut self, what: Problem) {
        self.snapshot.problems.push(what);
    }

    /// One GET per tag: it names the digest and gives the content at once.
    async fn read_tags(&mut self, tags: &[String]) {
        let (client, repo, deadline) = (self.client, self.repository, self.deadline);
        let results: Vec<(String, Result<Manifest, RegistryError>)> =
            bounded::each(self.concurrency, tags.iter().cloned(), |tag| async move {
                let r = match Reference::tag(&tag) {
                    _ if past(deadline) => Err(RegistryError::OutOfTime {
                        repository: repo.to_owned(),
                    }),
                    Ok(reference) => client.manifest(repo, &reference).await,
                    Err(e) => Err(e.into()),
                };
                (tag, r)
            })
            .await;
        let mut pending = BTreeSet::new();
        let mut subjects = BTreeSet::new();
        let mut unreadable = Vec::new();
        for (tag, result) in results {
            match result {
                Ok(m) => {
                    pending.extend(self.add(&m.digest.clone(), facts_of(&m)));
                    subjects.extend(Digest::from_link_tag(&tag));
                    self.snapshot.bodies.insert(m.digest.clone(), m.bytes);
                    self.snapshot.tags.insert(tag, TagRef::new(m.digest));
                }
                Err(e) if e.is_not_found() && self.inventory.removing.contains_key(&tag) => {
                    unreadable.push(tag)
                }
                // Listed but not there: deleted meanwhile, or a registry in trouble. Either
                // way the picture is not whole, and this run deletes nothing here.
                Err(e) => self.problem(Problem::of(format_args!("tag {tag}"), &e)),
            }
        }
        self.read_dangling(unreadable).await;
        self.read_digests(pending, false).await;
        // A `sha256-<hex>` tag's subject may be untagged (pushed by digest, then signed):
        // only a 404 makes the tag an orphan.
        self.read_digests(subjects, true).await;
    }

    /// Tags this janitor set out to remove whose GET answered 404: dangling (left behind by
    /// a delete that failed halfway) when a HEAD agrees, else a registry contradicting itself.
    async fn read_dangling(&mut self, tags: Vec<String>) {
        let heads = resolve_tags(self.client, self.repository, tags, self.concurrency).await;
        for (tag, head) in heads {
            match head {
                Ok(None) => {
                    if let Some(record) = self.inventory.removing.get(&tag) {
                        self.snapshot.dangling.insert(tag, record.digest.clone());
                    }
                }
                Ok(Some(digest)) => self.problem(
                    format!("tag {tag}: a GET answers 404 (not found), but a HEAD finds {digest}")
                        .into(),
                ),
                Err(e) => self.problem(Problem::of(format_args!("tag {tag}"), &e)),
            }
        }
    }

    /// Add a manifest; return the digests it points at that are not read yet.
    fn add(&mut self, digest: &Digest, mut facts: ManifestFacts) -> Vec<Digest> {
        if facts.created.is_none() {
            // Worked out by an earlier sweep from the config blob.
            facts.created = self
                .inventory
                .manifests
                .get(digest)
                .and_then(|r| r.facts.as_ref())
                .and_then(|f| f.created);
        }
        let mut next: Vec<Digest> = facts.children.clone();
        next.extend(facts.subject.clone());
        self.snapshot.manifests.insert(digest.clone(), facts);
        next.retain(|d| !self.snapshot.manifests.contains_key(d) && !self.absent.contains(d));
        next
    }

    /// Read digests (children, subjects, remembered ones) until nothing new turns up.
    /// With `verify`, a digest whose content the inventory knows is still checked with a HEAD.
    async fn read_digests(&mut self, mut pending: BTreeSet<Digest>, verify: bool) {
        while !pending.is_empty() {
            if self.late() {
                return;
            }
            let batch: Vec<Digest> = std::mem::take(&mut pending)
                .into_iter()
                .filter(|d| !self.snapshot.manifests.contains_key(d) && !self.absent.contains(d))
                .collect();
            let (client, repo, inventory) = (self.client, self.repository, self.inventory);
            let deadline = self.deadline;
            // What the inventory knows is known (a HEAD confirms it where asked); the rest is
            // fetched, in one batch where the backend reads in batches.
            let (known, unknown): (Vec<Digest>, Vec<Digest>) = batch.into_iter().partition(|d| {
                inventory
                    .manifests
                    .get(d)
                    .is_some_and(|r| r.facts.is_some())
            });
            let mut results: Vec<(Digest, Result<Option<ManifestFacts>, RegistryError>)> =
                bounded::each(self.concurrency, known, |digest| async move {
                    if past(deadline) {
                        let late = RegistryError::OutOfTime {
                            repository: repo.to_owned(),
                        };
                        return (digest, Err(late));
                    }
                    let facts = inventory
                        .manifests
                        .get(&digest)
                        .and_then(|r| r.facts.clone())
                        .unwrap_or_default();
                    // A digest is absent only when a GET and a HEAD both say 404. A
                    // registry that answers 404 for one and not the other is in
                    // trouble, and what it hides may be what keeps a kept image whole.
                    let r = if !verify {
                        Ok(Some(facts))
                    } else {
                        match client.manifest_exists(repo, &digest).await {
                            Ok(true) => Ok(Some(facts)),
                            Ok(false) => match client
                                .manifest(repo, &Reference::Digest(digest.clone()))
                                .await
                            {
                                Err(e) if e.is_not_found() => Ok(None),
                                Err(e) => Err(e),
                                Ok(_) => Err(contradiction(repo, &digest, "a HEAD", "a GET")),
                            },
                            Err(e) => Err(e),
                        }
                    };
                    (digest, r)
                })
                .await;
            let fetched = if past(deadline) {
                let late = || RegistryError::OutOfTime {
                    repository: repo.to_owned(),
                };
                unknown.into_iter().map(|d| (d, Err(late()))).collect()
            } else {
                client
                    .manifests_by_digest(repo, unknown, self.concurrency)
                    .await
            };
            let (missing, read): (Vec<_>, Vec<_>) = fetched
                .into_iter()
                .partition(|(_, r)| matches!(r, Err(e) if e.is_not_found()));
            let bodies = &mut self.snapshot.bodies;
            results.extend(read.into_iter().map(|(d, r)| {
                let r = r.map(|m| {
                    let facts = facts_of(&m);
                    bodies.insert(d.clone(), m.bytes);
                    Some(facts)
                });
                (d, r)
            }));
            let missing: Vec<Digest> = missing.into_iter().map(|(d, _)| d).collect();
            results.extend(
                bounded::each(self.concurrency, missing, |digest| async move {
                    let r = match client.manifest_exists(repo, &digest).await {
                        Ok(false) => Ok(None),
                        Ok(true) => Err(contradiction(repo, &digest, "a GET", "a HEAD")),
                        Err(e) => Err(e),
                    };
                    (digest, r)
                })
                .await,
            );
            for (digest, result) in results {
                match result {
                    Ok(Some(facts)) => pending.extend(self.add(&digest, facts)),
                    Ok(None) => {
                        if self.inventory.manifests.contains_key(&digest) {
                            self.gone.push(digest.clone());
                        }
                        self.absent.insert(digest);
                    }
                    Err(e) => self.problem(Problem::of(format_args!("manifest {digest}"), &e)),
                }
            }
        }
    }

    /// Remembered digests that no tag reached this time: still there (HEAD), or gone.
    async fn read_remembered(&mut self) {
        let unseen: BTreeSet<Digest> = self
            .inventory
            .manifests
            .keys()
            .filter(|d| !self.snapshot.manifests.contains_key(*d))
            .cloned()
            .collect();
        if self.listed_all {
            // The registry's listing is whole: what it did not list is gone, no HEAD needed.
            self.gone.extend(unseen.iter().cloned());
            self.absent.extend(unseen);
            return;
        }
        self.read_digests(unseen, true).await;
    }

    /// Referrers the API knows that nothing else showed us (untagged signatures, SBOMs).
    /// The first query finds out whether the registry has the API: without it, that one
    /// request per run is all. With it, the other manifests are asked side by side.
    async fn read_referrers(&mut self) {
        if self.late() {
            return;
        }
        let mut digests = self.snapshot.manifests.keys().cloned();
        let Some(first) = digests.next() else {
            return;
        };
        let (client, repo) = (self.client, self.repository);
        let mut pending = BTreeSet::new();
        let mut answers = vec![(first.clone(), client.referrers_api(repo, &first).await)];
        if matches!(answers[0].1, Ok(Some(_))) {
            let rest: Vec<_> = bounded::each(self.concurrency, digests, |digest| async move {
                let r = client.referrers_api(repo, &digest).await;
                (digest, r)
            })
            .await;
            answers.extend(rest);
        }
        for (digest, answer) in answers {
            match answer {
                Ok(None) => {}
                Ok(Some(found)) => pending.extend(found.into_iter().map(|d| d.digest)),
                Err(e) => self.problem(Problem::of(format_args!("referrers of {digest}"), &e)),
            }
        }
        self.read_digests(pending, false).await;
    }

    /// Ages for the tagged manifests whose rules need one, where the registry gave no tag
    /// timestamp: the `created` annotation, else the config blob's `created`. An index
    /// without the annotation is as old as its newest child with a known age.
    async fn work_out_ages(&mut self, policy: &Policy) {
        if self.late() {
            return;
        }
        let repo = self.repository;
        let needing: BTreeSet<Digest> = self
            .snapshot
            .tags
            .iter()
            .filter(|(tag, tref)| {
                tref.updated.is_none()
                    && Digest::from_link_tag(tag).is_none()
                    && policy.protecting_pattern(tag).is_none()
                    && policy
                        .tag_owner(repo, tag)
                        .is_some_and(|r| !r.older_than.is_zero() || r.keep > 0)
            })
            .map(|(_, tref)| tref.digest.clone())
            .collect();
        let mut images = BTreeSet::new();
        for d in &needing {
            if let Some(facts) = self.snapshot.manifests.get(d) {
                if facts.children.is_empty() {
                    images.insert(d.clone());
                } else {
                    images.extend(facts.children.iter().cloned());
                }
            }
        }
        let todo: Vec<(Digest, Digest)> = images
            .into_iter()
            .filter_map(|d| {
                let facts = self.snapshot.manifests.get(&d)?;
                if facts.created.is_some() {
                    return None;
                }
                let config = facts.blobs.first()?.0.clone();
                facts.image_config.then_some((d, config))
            })
            .collect();
        let client = self.client;
        let results: Vec<(Digest, Result<_, RegistryError>)> =
            bounded::each(self.concurrency, todo, |(d, config)| async move {
                (d, client.config_created(repo, &config).await)
            })
            .await;
        let mut unreadable = BTreeSet::new();
        for (d, result) in results {
            match result {
                Ok(created) => {
                    if let Some(f) = self.snapshot.manifests.get_mut(&d) {
                        f.created = created;
                    }
                }
                // An unreadable config means an unknown age, which is never old.
                Err(e) => {
                    tracing::warn!(repository = repo, digest = %d, error = %e, "cannot read image config; age unknown");
                    unreadable.insert(d);
                }
            }
        }
        for d in &needing {
            let Some(facts) = self.snapshot.manifests.get(d) else {
                continue;
            };
            // A child whose config could not be read could be the newest: unknown then.
            if facts.created.is_none()
                && !facts.children.is_empty()
                && !facts.children.iter().any(|c| unreadable.contains(c))
            {
                let newest = facts
                    .children
                    .iter()
                    .filter_map(|c| self.snapshot.manifests.get(c).and_then(|f| f.created))
                    .max();
                if let Some(f) = self.snapshot.manifests.get_mut(d) {
                    f.created = newest;
                }
            }
        }
    }
}

/// A registry that answers 404 to one request for a digest and finds it with another.
fn contradiction(repository: &str, digest: &Digest, missing: &str, found: &str) -> RegistryError {
    RegistryError::Contradiction {
        repository: repository.to_owned(),
        digest: digest.clone(),
        detail: format!("{missing} answers 404 (not found), but {found} finds it"),
    }
}

/// Image configs (not artifact configs) carry `created`.
fn is_image_config(config_media_type: &str) -> bool {
    matches!(
        config_media_type,
        "application/vnd.oci.image.config.v1+json"
            | "application/vnd.docker.container.image.v1+json"
    )
}
