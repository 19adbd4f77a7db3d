//! The `acr` backend: what Azure Container Registry offers beyond the OCI API, through
//! `/acr/v1/`. Tag and manifest listings with timestamps, sizes and locks (one paginated
//! request gives what would otherwise take a request per tag), tag delete, and repository
//! delete. Shapes follow ACR's published REST examples (API version 2021-07-01).
//!
//! Pagination always follows the `Link` header: ACR's `last` is opaque.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::backend::{
    Answer, Backend, Capabilities, ListedManifest, ListedTag, Support, TagListing,
};
use super::backend::{Deleted, TagDeleted};
use super::digest::Digest;
use super::error::RegistryError;
use super::manifest::{Descriptor, Manifest};
use super::media_type::MediaType;
use super::name::{check_repository, check_tag, Reference};
use super::oci::OciClient;
use super::options::Kind;
use super::transport::{status_error, Extra};

/// ACR's write and delete switches. Either one off means locked: the registry refuses to
/// delete it (`REGISTRY_DISALLOWED_OPERATION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeableAttributes {
    pub delete_enabled: Option<bool>,
    pub write_enabled: Option<bool>,
}

impl ChangeableAttributes {
    pub fn locked(&self) -> bool {
        self.delete_enabled == Some(false) || self.write_enabled == Some(false)
    }
}

/// One entry of `GET /acr/v1/<repo>/_tags` (example `GetTagList`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcrTag {
    pub name: String,
    pub digest: Digest,
    pub created_time: Option<DateTime<Utc>>,
    pub last_update_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub changeable_attributes: ChangeableAttributes,
}

/// One entry of `GET /acr/v1/<repo>/_manifests` (example `GetManifestList`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcrManifest {
    pub digest: Digest,
    pub image_size: Option<u64>,
    pub created_time: Option<DateTime<Utc>>,
    pub last_update_time: Option<DateTime<Utc>>,
    pub media_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub changeable_attributes: ChangeableAttributes,
}

#[derive(Deserialize)]
struct TagPage {
    tags: Option<Vec<AcrTag>>,
}

#[derive(Deserialize)]
struct ManifestPage {
    manifests: Option<Vec<AcrManifest>>,
}

impl OciClient {
    fn require_acr(&self, what: &str) -> Result<(), RegistryError> {
        match self.kind() {
            Kind::Acr => Ok(()),
            Kind::Oci | Kind::Ecr => Err(RegistryError::Unsupported {
                operation: what.to_owned(),
                registry: self.host().to_owned(),
            }),
        }
    }

    /// Every tag of `repository` with its digest, timestamps and locks.
    pub async fn acr_tags(&self, repository: &str) -> Result<Vec<AcrTag>, RegistryError> {
        let tags = self
            .acr_listing(repository, "_tags", |p: TagPage| {
                p.tags.ok_or("listing has no `tags` field")
            })
            .await?;
        for t in &tags {
            check_tag(&t.name)?;
        }
        Ok(tags)
    }

    /// Every manifest of `repository`, tagged or not, with timestamps, size and locks.
    pub async fn acr_manifests(&self, repository: &str) -> Result<Vec<AcrManifest>, RegistryError> {
        self.acr_listing(repository, "_manifests", |p: ManifestPage| {
            p.manifests.ok_or("listing has no `manifests` field")
        })
        .await
    }

    /// All pages of `/acr/v1/<repository>/<listing>`. A page without its array is not a
    /// listing: it must never read as "none".
    async fn acr_listing<P: serde::de::DeserializeOwned, I>(
        &self,
        repository: &str,
        listing: &str,
        items: impl Fn(P) -> Result<Vec<I>, &'static str>,
    ) -> Result<Vec<I>, RegistryError> {
        self.require_acr(&format!("the /acr/v1 {listing} listing"))?;
        check_repository(repository)?;
        let first = self.url(&format!(
            "/acr/v1/{repository}/{listing}?n={}",
            self.page_size()
        ))?;
        let (all, _) = self
            .walk(&self.scope(repository, "metadata_read"), first, items)
            .await?;
        Ok(all)
    }

    /// Delete just a tag (`DELETE /acr/v1/<repo>/_tags/<tag>`).
    pub(super) async fn acr_delete_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<TagDeleted, RegistryError> {
        let url = self.url(&format!("/acr/v1/{repository}/_tags/{tag}"))?;
        match self.delete_at(&url, repository).await? {
            Deleted::Removed => Ok(TagDeleted::Removed),
            Deleted::AlreadyGone => Ok(TagDeleted::AlreadyGone),
        }
    }

    /// Lift the locks on `tags` and, if given, on a manifest (`PATCH /acr/v1/<repo>/_tags/<tag>`
    /// and `_manifests/<digest>` with `deleteEnabled` and `writeEnabled` true), so they can be
    /// deleted. Nothing to do on a registry without locks.
    pub async fn unlock(
        &self,
        repository: &str,
        digest: Option<&Digest>,
        tags: &[&str],
    ) -> Result<(), RegistryError> {
        if self.kind() != Kind::Acr {
            return Ok(());
        }
        check_repository(repository)?;
        let mut paths: Vec<String> = Vec::new();
        for tag in tags {
            check_tag(tag)?;
            paths.push(format!("/acr/v1/{repository}/_tags/{tag}"));
        }
        paths.extend(digest.map(|d| format!("/acr/v1/{repository}/_manifests/{d}")));
        let body = br#"{"deleteEnabled":true,"writeEnabled":true}"#.to_vec();
        let scope = format!("repository:{repository}:metadata_write");
        for path in paths {
            let url = self.url(&path)?;
            let extra = Extra {
                content_type: Some("application/json"),
                body: Some(body.clone()),
                ..Extra::default()
            };
            let response = self
                .transport()
                .send(Method::PATCH, &url, &scope, &extra)
                .await?;
            if !response.status().is_success() {
                return Err(status_error(&Method::PATCH, &url, response).await);
            }
        }
        Ok(())
    }

    /// Delete a repository with every tag and manifest in it (`DELETE /acr/v1/<repo>`).
    pub async fn delete_repository(&self, repository: &str) -> Result<Deleted, RegistryError> {
        self.require_acr("repository delete")?;
        check_repository(repository)?;
        let url = self.url(&format!("/acr/v1/{repository}"))?;
        self.delete_at(&url, repository).await
    }
}

/// Azure Container Registry as a backend: the OCI API for manifests, and `/acr/v1/` for what
/// it adds (tag and manifest listings with times and locks, tag delete, unlock, repository
/// delete). Its client speaks ACR's auth (refresh-token exchange, one scope per repository).
pub struct AcrClient {
    oci: OciClient,
}

impl AcrClient {
    /// A backend over `oci`, which must have been built for ACR (`Kind::Acr`).
    pub fn new(oci: OciClient) -> Result<AcrClient, RegistryError> {
        oci.require_acr("the acr backend")?;
        Ok(AcrClient { oci })
    }

    /// The OCI client underneath, for what only it offers.
    pub fn oci(&self) -> &OciClient {
        &self.oci
    }
}

impl From<&AcrTag> for ListedTag {
    fn from(t: &AcrTag) -> ListedTag {
        ListedTag {
            name: t.name.clone(),
            digest: t.digest.clone(),
            updated: t.last_update_time,
            locked: t.changeable_attributes.locked(),
        }
    }
}

impl From<&AcrManifest> for ListedManifest {
    fn from(m: &AcrManifest) -> ListedManifest {
        ListedManifest {
            tags: m.tags.clone(),
            updated: m.last_update_time,
            locked: m.changeable_attributes.locked(),
            media_type: m.media_type.clone(),
            size: m.image_size,
            ..ListedManifest::new(m.digest.clone())
        }
    }
}

impl Backend for AcrClient {
    fn host(&self) -> &str {
        self.oci.host()
    }

    fn name(&self) -> &'static str {
        "acr"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags_with_digests: true,
            manifest_listing: true,
            timestamps: true,
            locks: true,
            repository_delete: true,
            tag_delete: Support::Yes,
            ..self.oci.capabilities()
        }
    }

    fn request_count(&self) -> u64 {
        self.oci.request_count()
    }

    fn credentials_spent(&self) -> bool {
        Backend::credentials_spent(&self.oci)
    }

    fn repositories(&self) -> Answer<'_, Vec<String>> {
        Backend::repositories(&self.oci)
    }

    fn tags<'a>(&'a self, repository: &'a str) -> Answer<'a, TagListing> {
        Box::pin(async move {
            let tags = self.oci.acr_tags(repository).await?;
            Ok(TagListing::Resolved(
                tags.iter().map(ListedTag::from).collect(),
            ))
        })
    }

    fn manifests<'a>(&'a self, repository: &'a str) -> Answer<'a, Option<Vec<ListedManifest>>> {
        Box::pin(async move {
            let manifests = self.oci.acr_manifests(repository).await?;
            Ok(Some(manifests.iter().map(ListedManifest::from).collect()))
        })
    }

    fn manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Manifest> {
        Backend::manifest(&self.oci, repository, reference)
    }

    fn manifest_exists<'a>(&'a self, repository: &'a str, digest: &'a Digest) -> Answer<'a, bool> {
        Backend::manifest_exists(&self.oci, repository, digest)
    }

    fn blob_exists<'a>(&'a self, repository: &'a str, digest: &'a Digest) -> Answer<'a, bool> {
        Backend::blob_exists(&self.oci, repository, digest)
    }

    fn resolve<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Option<Digest>> {
        Backend::resolve(&self.oci, repository, reference)
    }

    fn referrers_api<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Option<Vec<Descriptor>>> {
        Backend::referrers_api(&self.oci, repository, digest)
    }

    fn config_created<'a>(
        &'a self,
        repository: &'a str,
        config: &'a Digest,
    ) -> Answer<'a, Option<DateTime<Utc>>> {
        Backend::config_created(&self.oci, repository, config)
    }

    fn delete_manifest<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Deleted> {
        Backend::delete_manifest(&self.oci, repository, digest)
    }

    fn delete_tag<'a>(&'a self, repository: &'a str, tag: &'a str) -> Answer<'a, TagDeleted> {
        // The client was built for ACR: its tag delete is `/acr/v1/<repo>/_tags/<tag>`.
        Box::pin(self.oci.delete_tag(repository, tag))
    }

    fn put_manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
        media_type: &'a MediaType,
        body: Vec<u8>,
    ) -> Answer<'a, Digest> {
        Backend::put_manifest(&self.oci, repository, reference, media_type, body)
    }

    fn unlock<'a>(
        &'a self,
        repository: &'a str,
        digest: Option<&'a Digest>,
        tags: &'a [&'a str],
    ) -> Answer<'a, ()> {
        Box::pin(self.oci.unlock(repository, digest, tags))
    }

    fn delete_repository<'a>(&'a self, repository: &'a str) -> Answer<'a, Deleted> {
        Box::pin(self.oci.delete_repository(repository))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_switch_off_locks() {
        let attrs = |d, w| ChangeableAttributes {
            delete_enabled: d,
            write_enabled: w,
        };
        assert!(!attrs(Some(true), Some(true)).locked());
        assert!(!attrs(None, None).locked());
        assert!(attrs(Some(false), Some(true)).locked());
        assert!(attrs(Some(true), Some(false)).locked());
    }
}
