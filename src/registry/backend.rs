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
    /// The registry's own time of the manifest's last change.
    pub updated: Option<DateTime<Utc>>,
    pub locked: bool,
}

/// A registry, as the engine uses it. Every method is one API call or one paginated listing;
/// none decides what to delete.
pub trait Backend: Send + Sync {
    /// `host` or `host:port`, as docker's config and the inventory name the registry.
    fn host(&self) -> &str;

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

    /// Delete a manifest by digest; every tag on it goes too. Gone already is fine, once the
    /// registry confirms it.
    fn delete_manifest<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Deleted>;

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
