//! Phase 3, the untags: tag DELETE where the registry has it, else a placeholder pushed to
//! the tag and deleted, one tag at a time in a repository, the tag read again just before.

use std::sync::atomic::Ordering;

use super::{log_action, Run};
use crate::bounded;
use crate::plan::{Keep, KeepKind, Snapshot, Untag};
use crate::registry::media_type::OCI_INDEX;
use crate::registry::{Digest, MediaType, Reference, RegistryError, Support, TagDeleted};

/// How an untag ended, when the registry did not refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Untagged {
    Done,
    /// The tag no longer names what was expected: left alone.
    Moved,
    /// Not started: the run's time is up.
    OutOfTime,
}

/// What a tag must name for an untag to go ahead.
#[derive(Clone, Copy)]
pub(super) enum Expect<'a> {
    /// The digest the plan untags.
    Names(&'a Digest),
    /// Nothing: a tag left dangling, whose removal is being finished.
    Nothing,
}

impl Expect<'_> {
    pub(super) fn holds(self, now: Option<&Digest>) -> bool {
        match self {
            Expect::Names(d) => now == Some(d),
            Expect::Nothing => now.is_none(),
        }
    }
}

impl Run<'_> {
    /// Phase 3: the untags. Returns the untag entries (with `error` on failures) and what a
    /// lock kept.
    pub(super) async fn untags(
        &self,
        untags: Vec<Untag>,
        fresh: &Snapshot,
        unlock: bool,
    ) -> (Vec<Untag>, Vec<Keep>) {
        let repo = self.repo.as_str();
        let results: Vec<Result<Option<Untag>, Keep>> =
            bounded::each(self.concurrency, untags, |mut u| async move {
                let expect = if fresh.dangling.contains_key(&u.tag) {
                    Expect::Nothing
                } else {
                    Expect::Names(&u.digest)
                };
                // With --unlock (purge --include-locked), a locked tag's lock is lifted first.
                let locked = unlock && fresh.tags.get(&u.tag).is_some_and(|t| t.locked);
                let result = self.untag(&u.tag, expect, locked).await;
                log_action(
                    "untag",
                    repo,
                    &u.digest,
                    std::slice::from_ref(&u.tag),
                    &u.reason,
                    &result,
                );
                match result {
                    Ok(Untagged::Done) => Ok(Some(u)),
                    // The tag moved in the last moment: it is someone else's now.
                    Ok(Untagged::Moved) => Ok(None),
                    // Not started; the next run plans it again.
                    Ok(Untagged::OutOfTime) => Ok(None),
                    // Stopped at the run's cutoff before anything changed (the placeholder
                    // path reports a tag left on a placeholder as its own error): the same.
                    Err(e) if e.is_out_of_time() => {
                        self.ran_out.store(true, Ordering::Relaxed);
                        Ok(None)
                    }
                    // A lock is the registry owner's decision, not a failure.
                    Err(e) if e.is_locked() => Err(Keep {
                        digest: u.digest,
                        tags: vec![u.tag],
                        reason: "not untagged: the registry refused: locked".into(),
                        kind: KeepKind::Refused,
                        since: None,
                    }),
                    Err(e) => {
                        u.error = Some(e.to_string());
                        Ok(Some(u))
                    }
                }
            })
            .await;
        let mut done = Vec::new();
        let mut kept = Vec::new();
        for result in results {
            match result {
                Ok(Some(u)) => done.push(u),
                Ok(None) => {}
                Err(k) => kept.push(k),
            }
        }
        (done, kept)
    }

    /// Remove one tag and nothing else: the registry's tag delete where it has one, else push
    /// a tiny placeholder manifest to the tag and delete that placeholder by digest. The tag
    /// is read just before the change, and nothing is done when it no longer names what
    /// `expect` says (`Moved`), or when the run's time is up (`OutOfTime`).
    ///
    /// With the placeholder, a push to the same tag that lands between that read and the
    /// placeholder's PUT (one round trip) is overwritten, and the pushed manifest is left
    /// untagged: the OCI API has no conditional PUT. Nothing closes that here; it is why a
    /// warning is logged whenever the technique is used.
    pub(super) async fn untag(
        &self,
        tag: &str,
        expect: Expect<'_>,
        unlock: bool,
    ) -> Result<Untagged, RegistryError> {
        let (client, repo) = (self.client, self.repo.as_str());
        let reference = Reference::tag(tag)?;
        if self.out_of_time() {
            self.ran_out.store(true, Ordering::Relaxed);
            return Ok(Untagged::OutOfTime);
        }
        if client.capabilities().tag_delete != Support::No {
            if !self.still(&reference, expect).await? {
                return Ok(Untagged::Moved);
            }
            if unlock {
                client.unlock(repo, None, &[tag]).await?;
                tracing::warn!(
                    action = "unlock",
                    repository = repo,
                    tag,
                    "lifted the registry's lock on the tag to remove it (--unlock)"
                );
            }
            match client.delete_tag(repo, tag).await? {
                TagDeleted::Removed | TagDeleted::AlreadyGone => return Ok(Untagged::Done),
                TagDeleted::Unsupported => {}
            }
        }
        let _turn = self.serial.lock().await;
        // The wait for this repository's turn can be long: the deadline is checked again.
        if self.out_of_time() {
            self.ran_out.store(true, Ordering::Relaxed);
            return Ok(Untagged::OutOfTime);
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                repository = repo,
                "the registry cannot delete a tag alone: untagging by pushing a placeholder to \
                 the tag and deleting it, one tag at a time; a push to the same tag in the round \
                 trip before the placeholder lands is overwritten (README, Apply)"
            );
        }
        // Read again right before the PUT: the tag-delete probe above took a round trip,
        // and the wait for this repository's turn may have taken longer.
        if !self.still(&reference, expect).await? {
            return Ok(Untagged::Moved);
        }
        let placeholder = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
            "annotations": {
                "dev.registry-janitor.placeholder": format!("untag {tag} at {} ({:016x})", self.now.to_rfc3339(), fastrand::u64(..)),
            },
        });
        let body = serde_json::to_vec(&placeholder).unwrap_or_default();
        let placeholder = client
            .put_manifest(repo, &reference, &MediaType::OciIndex, body)
            .await
            .map_err(|e| match e {
                // A push stopped in flight may have landed: not "nothing changed".
                RegistryError::CutOff {
                    method,
                    path,
                    sent: true,
                } => RegistryError::InvalidResponse {
                    method,
                    path,
                    reason: format!(
                        "stopped at the run's cutoff while pushing the placeholder to tag {tag}: the tag may now name it"
                    ),
                },
                e => e,
            })?;
        match client.delete_manifest(repo, &placeholder).await {
            Ok(_) => Ok(Untagged::Done),
            Err(e) => Err(RegistryError::InvalidResponse {
                method: "DELETE".into(),
                path: format!("/v2/{repo}/manifests/{placeholder}"),
                reason: format!(
                    "tag {tag} now names the empty placeholder {placeholder}, which could not be deleted: {e}"
                ),
            }),
        }
    }

    /// Whether `reference` still names what `expect` says: one HEAD, and for a tag that must
    /// name nothing, a GET that agrees (one 404 is not enough to overwrite a tag).
    pub(super) async fn still(
        &self,
        reference: &Reference,
        expect: Expect<'_>,
    ) -> Result<bool, RegistryError> {
        let mut now = self.client.resolve(&self.repo, reference).await?;
        if now.is_none() && matches!(expect, Expect::Nothing) {
            now = match self.client.manifest(&self.repo, reference).await {
                Ok(m) => Some(m.digest),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            };
        }
        let holds = expect.holds(now.as_ref());
        if !holds {
            tracing::info!(
                action = "skip-untag",
                repository = %self.repo,
                tag = %reference,
                "tag no longer names what the untag expected; left alone"
            );
        }
        Ok(holds)
    }
}
