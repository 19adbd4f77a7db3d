//! The one interface the engine talks to: a registry backend, and what it can do.
//!
//! `collect`, `apply`, the sweep and the manual operations are written once against
//! `Backend`, and ask `capabilities()` instead of testing which registry they talk to. A
//! backend says what it offers beyond the OCI Distribution API (a tag listing that names
//! digests, a listing of every manifest, timestamps, locks, repository delete) and learns the
//! rest from the registry's answers (tag delete, the referrers API, page sizes).
//!
//! A new backend is one file under `src/registry/` that implements this trait, plus its tests,
//! a `Kind` for it, and its arm where the backend is chosen (`registry::connect`).

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::digest::Digest;
use super::error::RegistryError;
use super::manifest::{Descriptor, Manifest};
use super::media_type::MediaType;
use super::name::Reference;

/// The result of a delete that succeeded: removed now, or already gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Removed,
    AlreadyGone,
}

/// The result of a tag delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagDeleted {
    Removed,
    AlreadyGone,
    /// The registry cannot delete a tag alone (distribution 2.8 answers 400).
    Unsupported,
}

/// What a backend call returns: a future of the answer, boxed so that `Backend` can be a
/// trait object (the backend is chosen at run time).
pub type Answer<'a, T> = BoxFuture<'a, Result<T, RegistryError>>;

/// Whether the registry can do something, as far as we have learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Unknown,
    Yes,
    No,
}

/// What a backend can do. The first five are declared by the backend; the last three are
/// learned from the registry's answers and start `Unknown`, unless the backend knows better
/// (ACR declares tag delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The tag listing names each tag's digest (`TagListing::Resolved`): reading what every
    /// tag names is one listing, not a request per tag.
    pub tags_with_digests: bool,
    /// The registry lists every manifest, tagged or not (`Backend::manifests`): a remembered
    /// digest it does not list is gone, with no request to find out.
    pub manifest_listing: bool,
    /// Tags and manifests carry the registry's own update times.
    pub timestamps: bool,
    /// Tags and manifests can be locked against deletion, and unlocked (`Backend::unlock`).
    pub locks: bool,
    /// A repository can be deleted in one call (`Backend::delete_repository`).
    pub repository_delete: bool,
    /// `DELETE /v2/<name>/manifests/<tag>` (or the backend's own tag delete) removes just the
    /// tag. Where it is `No`, an untag pushes a placeholder and deletes it.
    pub tag_delete: Support,
    /// `GET /v2/<name>/referrers/<digest>` exists.
    pub referrers_api: Support,
    /// Listings honour the `n` page size.
    pub page_size: Support,
    /// Manifests one delete call takes (`Backend::delete_manifests`); 1 where each is its
    /// own request.
    pub delete_batch: usize,
    /// Removing a manifest's last tag leaves the manifest, untagged. Where it does not (ECR
    /// deletes the image with its last tag), an untag that would take a kept manifest's last
    /// tag is not sent, and the manifest is reported kept with it.
    pub untag_keeps_manifest: bool,
    /// Listings carry when each manifest was last pulled (`ListedManifest::pulled`), which a
    /// rule's `unpulled_for` needs.
    pub pull_times: bool,
}

impl Capabilities {
    /// What the OCI Distribution API offers: nothing declared beyond it, the rest unknown
    /// until learned.
    pub fn oci() -> Capabilities {
        Capabilities {
            tags_with_digests: false,
            manifest_listing: false,
            timestamps: false,
            locks: false,
            repository_delete: false,
            tag_delete: Support::Unknown,
            referrers_api: Support::Unknown,
            page_size: Support::Unknown,
            delete_batch: 1,
            untag_keeps_manifest: true,
            pull_times: false,
        }
    }
}

/// A repository's tags, as the backend lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagListing {
    /// Names only (the OCI API): what each names takes a request per tag.
    Names(Vec<String>),
    /// Every tag with its digest, and the registry's own time and lock where it has them.
    Resolved(Vec<ListedTag>),
}

impl TagListing {
    /// The tag names, in the order listed.
    pub fn names(&self) -> Vec<&str> {
        match self {
            TagListing::Names(names) => names.iter().map(String::as_str).collect(),
            TagListing::Resolved(tags) => tags.iter().map(|t| t.name.as_str()).collect(),
        }
    }
}

/// One tag of a `TagListing::Resolved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTag {
    pub name: String,
    pub digest: Digest,
    /// The registry's own time of the tag's last change.
    pub updated: Option<DateTime<Utc>>,
    pub locked: bool,
}

/// One manifest of a backend's listing of every manifest (`Backend::manifests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedManifest {
    pub digest: Digest,
    /// The tags the registry says name it.
    pub tags: Vec<String>,
    /// The registry's own time of the manifest's last change (its push, on ECR).
    pub updated: Option<DateTime<Utc>>,
    pub locked: bool,
    /// When it was last pulled, where the registry records it (`Capabilities::pull_times`).
    pub pulled: Option<DateTime<Utc>>,
    /// Its media type, where the listing gives it.
    pub media_type: Option<String>,
    /// The manifest it refers to (OCI 1.1 `subject`), where the listing gives it.
    pub subject: Option<Digest>,
    /// Its size in bytes (with its layers), where the listing gives it.
    pub size: Option<u64>,
}

impl ListedManifest {
    /// `digest`, with nothing else known yet.
    pub fn new(digest: Digest) -> ListedManifest {
        ListedManifest {
            digest,
            tags: Vec::new(),
            updated: None,
            locked: false,
            pulled: None,
            media_type: None,
            subject: None,
            size: None,
        }
    }
}

/// A registry, as the engine uses it. Every method is one API call or one paginated listing;
/// none decides what to delete.
pub trait Backend: Send + Sync {
    /// `host` or `host:port`, as docker's config and the inventory name the registry.
    fn host(&self) -> &str;

    /// The backend's name (`oci`, `acr`, `ecr`), for messages only: the engine decides by
    /// `capabilities()`, never by this.
    fn name(&self) -> &'static str;

    /// What this backend can do (see `Capabilities`).
    fn capabilities(&self) -> Capabilities;

    /// HTTP requests sent so far (retries and token requests included).
    fn request_count(&self) -> u64;

    /// The registry refused our credentials, and their source (docker's config or its
    /// helper), asked again, had nothing new: no new repository should start.
    fn credentials_spent(&self) -> bool;

    /// Every repository in the catalog.
    fn repositories(&self) -> Answer<'_, Vec<String>>;

    /// Every tag of a repository. A listing that cannot be shown whole is an error, never a
    /// shorter list.
    fn tags<'a>(&'a self, repository: &'a str) -> Answer<'a, TagListing>;

    /// Every manifest of a repository, where `capabilities().manifest_listing`; else `None`.
    fn manifests<'a>(&'a self, repository: &'a str) -> Answer<'a, Option<Vec<ListedManifest>>>;

    /// The tags and, where listed, every manifest, read side by side: what a sweep starts
    /// with. A backend whose one listing gives both (ECR) answers with one. Where the
    /// manifest listing is there, both must say a repository does not exist for the answer
    /// to say so (`RegistryError::is_name_unknown`).
    fn listings<'a>(
        &'a self,
        repository: &'a str,
    ) -> Answer<'a, (TagListing, Option<Vec<ListedManifest>>)> {
        Box::pin(async move {
            if !self.capabilities().manifest_listing {
                return Ok((self.tags(repository).await?, None));
            }
            let (tags, manifests) =
                futures_util::future::join(self.tags(repository), self.manifests(repository)).await;
            match (tags, manifests) {
                (Ok(tags), Ok(manifests)) => Ok((tags, manifests)),
                // Both say there is no such repository: there is none.
                (Err(e), Err(m)) if e.is_name_unknown() && m.is_name_unknown() => Err(e),
                // One says so while the other lists it: not "nothing there".
                (Err(e), Ok(_)) | (Ok(_), Err(e)) if e.is_name_unknown() => {
                    Err(RegistryError::InvalidResponse {
                        method: "GET".into(),
                        path: format!("{repository} listings"),
                        reason: format!(
                            "one listing says there is no such repository ({e}), the other lists it"
                        ),
                    })
                }
                // A listing that failed otherwise says nothing about whether it exists.
                (Err(e), Err(m)) if e.is_name_unknown() => Err(m),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        })
    }

    /// Fetch and parse a manifest by tag or digest, its digest verified.
    fn manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Manifest>;

    /// Whether a manifest exists (a HEAD).
    fn manifest_exists<'a>(&'a self, repository: &'a str, digest: &'a Digest) -> Answer<'a, bool>;

    /// The digest a tag or digest names now (a HEAD); `None` if it does not exist.
    fn resolve<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Option<Digest>>;

    /// The referrers of a digest from the referrers API; `None` when the registry has none.
    fn referrers_api<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Option<Vec<Descriptor>>>;

    /// The `created` time in an image config blob, if it has a usable one.
    fn config_created<'a>(
        &'a self,
        repository: &'a str,
        config: &'a Digest,
    ) -> Answer<'a, Option<DateTime<Utc>>>;

    /// Whether a blob (a config or a layer) is in the repository: one HEAD.
    fn blob_exists<'a>(&'a self, repository: &'a str, digest: &'a Digest) -> Answer<'a, bool>;

    /// Delete a manifest by digest; every tag on it goes too. Gone already is fine, once the
    /// registry confirms it.
    fn delete_manifest<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Deleted>;

    /// Delete these manifests, each answered on its own: a failure is that manifest's alone.
    /// Apply calls it once per wave. By default, one `delete_manifest` each, `limit` at once;
    /// a backend that deletes in batches (`Capabilities::delete_batch`) sends them so.
    fn delete_manifests<'a>(
        &'a self,
        repository: &'a str,
        digests: Vec<Digest>,
        limit: usize,
    ) -> BoxFuture<'a, Vec<(Digest, Result<Deleted, RegistryError>)>> {
        Box::pin(crate::bounded::each(
            limit,
            digests,
            move |digest| async move {
                let r = self.delete_manifest(repository, &digest).await;
                (digest, r)
            },
        ))
    }

    /// Fetch these manifests by digest, each answered on its own. By default, one `manifest`
    /// each, `limit` at once; a backend that reads in batches (ECR's `BatchGetImage`) sends
    /// them so.
    fn manifests_by_digest<'a>(
        &'a self,
        repository: &'a str,
        digests: Vec<Digest>,
        limit: usize,
    ) -> BoxFuture<'a, Vec<(Digest, Result<Manifest, RegistryError>)>> {
        Box::pin(crate::bounded::each(
            limit,
            digests,
            move |digest| async move {
                let r = self
                    .manifest(repository, &Reference::Digest(digest.clone()))
                    .await;
                (digest, r)
            },
        ))
    }

    /// Delete just a tag, where the registry can (`Unsupported` where it cannot).
    fn delete_tag<'a>(&'a self, repository: &'a str, tag: &'a str) -> Answer<'a, TagDeleted>;

    /// Upload a manifest under a reference; returns its digest.
    fn put_manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
        media_type: &'a MediaType,
        body: Vec<u8>,
    ) -> Answer<'a, Digest>;

    /// Lift the locks on these tags and, if given, on a manifest. Nothing to do without
    /// locks.
    fn unlock<'a>(
        &'a self,
        repository: &'a str,
        digest: Option<&'a Digest>,
        tags: &'a [&'a str],
    ) -> Answer<'a, ()>;

    /// Delete a repository with everything in it, where `capabilities().repository_delete`.
    fn delete_repository<'a>(&'a self, repository: &'a str) -> Answer<'a, Deleted>;
}
