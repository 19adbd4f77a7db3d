//! The `oci` backend: any registry that speaks the OCI Distribution API.
//!
//! Every method names one API call (or one paginated listing). Nothing here decides what to
//! delete; it only reads and deletes what it is told to, and reports what it learned about
//! the registry's capabilities along the way.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::backend::{Answer, Backend, Deleted, ListedManifest, TagDeleted, TagListing};
use super::digest::Digest;
use super::error::RegistryError;
use super::link;
use super::manifest::{config_created, Descriptor, Manifest};
use super::media_type::{MediaType, MANIFEST_ACCEPT, OCI_INDEX};
use super::name::{check_repository, check_tag, Reference};
use super::options::{redact_userinfo, registry_host, ClientOptions, Kind};
use super::transport::{header, read_limited, status_error, Extra, Transport};

/// Manifests larger than this are refused (distribution's own limit is 4 MiB).
const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;
/// Image configs are small; this bounds what a hostile registry can make us hold.
const CONFIG_LIMIT: usize = 4 * 1024 * 1024;
/// One page of a listing (a tags page of a registry that ignores `n` can be large).
const LISTING_LIMIT: usize = 64 * 1024 * 1024;

pub use super::backend::{Capabilities, Support};

#[derive(Default)]
struct LearnedSupport(AtomicU8);

impl LearnedSupport {
    fn get(&self) -> Support {
        match self.0.load(Ordering::Relaxed) {
            1 => Support::Yes,
            2 => Support::No,
            _ => Support::Unknown,
        }
    }
    fn set(&self, s: Support) {
        let v = match s {
            Support::Unknown => 0,
            Support::Yes => 1,
            Support::No => 2,
        };
        self.0.store(v, Ordering::Relaxed);
    }
}

/// A full listing, after following every page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub items: Vec<String>,
    /// Pages fetched.
    pub pages: usize,
}

/// Where a list of referrers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    Api,
    FallbackTag,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    pub descriptors: Vec<Descriptor>,
    pub source: ReferrersSource,
}

/// A manifest as fetched, with the tags it was fetched by (if any) left to the caller.
pub struct OciClient {
    base: Url,
    host: String,
    kind: Kind,
    transport: Transport,
    page_size: usize,
    tag_delete: LearnedSupport,
    referrers_api: LearnedSupport,
    /// Held while the first referrers request finds out whether the API exists, so
    /// repositories read side by side ask that once, not once each.
    referrers_probe: tokio::sync::Mutex<()>,
    page_size_honoured: LearnedSupport,
}

impl OciClient {
    /// A client for `registry`, such as `http://127.0.0.1:5000` or `https://ghcr.io`.
    pub fn new(registry: &str, options: ClientOptions) -> Result<OciClient, RegistryError> {
        let bad = |reason: &str| RegistryError::Url {
            url: redact_userinfo(registry),
            reason: reason.to_owned(),
        };
        let base = Url::parse(registry).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad(
                "put credentials in --username/--password or REGISTRY_USERNAME/REGISTRY_PASSWORD, not in the URL",
            ));
        }
        if base.query().is_some() || !matches!(base.path(), "" | "/") {
            return Err(bad(
                "give only scheme, host and port, such as https://registry.example",
            ));
        }
        let host = registry_host(&base).ok_or_else(|| bad("no host"))?;
        let tls = base.scheme() == "https";
        let kind = options.kind.unwrap_or_else(|| Kind::of_host(&host));
        let mut transport = Transport::new(
            options.credentials,
            options.retry,
            options.timeout,
            tls,
            options.in_flight,
        )?
        .paced(options.max_writes_per_minute)
        .cut_off_at(options.cutoff)
        .at_host(&host)
        .asking_again(options.credential_source);
        if kind == Kind::Acr {
            transport = transport.for_acr(&host, options.aad_token);
        }
        Ok(OciClient {
            kind,
            base,
            host,
            transport,
            page_size: options.page_size.clamp(1, 1000),
            tag_delete: LearnedSupport::default(),
            referrers_api: LearnedSupport::default(),
            referrers_probe: tokio::sync::Mutex::new(()),
            page_size_honoured: LearnedSupport::default(),
        })
    }

    /// `host` or `host:port`, as docker's config and the inventory name the registry.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub(super) fn transport(&self) -> &Transport {
        &self.transport
    }

    pub(super) fn page_size(&self) -> usize {
        self.page_size
    }

    /// What the OCI API offers: nothing declared beyond it, the rest learned from answers.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            tag_delete: self.tag_delete.get(),
            referrers_api: self.referrers_api.get(),
            page_size: self.page_size_honoured.get(),
            ..Capabilities::oci()
        }
    }

    /// HTTP requests sent so far (retries and token requests included).
    pub fn request_count(&self) -> u64 {
        self.transport.request_count()
    }

    /// The auth scope for `action` on `repository`. On ACR one token covers everything the
    /// janitor does in a repository (ACR grants the part the credentials allow), so a sweep
    /// asks for one token per repository, not one per action.
    pub(super) fn scope(&self, repository: &str, action: &str) -> String {
        match self.kind {
            Kind::Acr => format!("repository:{repository}:pull,delete,metadata_read"),
            Kind::Oci | Kind::Ecr => format!("repository:{repository}:{action}"),
        }
    }

    pub(super) fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base.join(path).map_err(|e| RegistryError::Url {
            url: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Every repository in the catalog.
    pub async fn repositories(&self) -> Result<Listing, RegistryError> {
        // ACR's own catalog takes the same paging and answers in the same shape.
        let path = match self.kind {
            Kind::Acr => "/acr/v1/_catalog",
            Kind::Oci | Kind::Ecr => "/v2/_catalog",
        };
        let first = self.url(&format!("{path}?n={}", self.page_size))?;
        let listing = self
            .list("registry:catalog:*", first, Field::Repositories)
            .await?;
        for name in &listing.items {
            check_repository(name)?;
        }
        Ok(listing)
    }

    /// Every tag of `repository`. A repository whose last tag is gone has none.
    ///
    /// A listing that ends is asked once more for what comes after its last tag
    /// (`?last=<final tag>`). A registry, or a proxy in front of it, that drops the `Link`
    /// header would otherwise hide every later page, and with it tags that keep manifests
    /// alive. A name not seen before means a page was lost (or a tag was pushed meanwhile):
    /// the listing is refused, and the repository deletes nothing this run. Distribution
    /// 2.8 ignores `last` and sends the whole list again, which names nothing new; a registry
    /// that refuses `last` (400) is listed as before this check.
    pub async fn tags(&self, repository: &str) -> Result<Listing, RegistryError> {
        check_repository(repository)?;
        let scope = self.scope(repository, "pull");
        let first = self.url(&format!("/v2/{repository}/tags/list?n={}", self.page_size))?;
        let listing = self.list(&scope, first, Field::Tags).await?;
        for tag in &listing.items {
            check_tag(tag)?;
        }
        if let Some(last) = listing.items.last() {
            let mut after = self.url(&format!("/v2/{repository}/tags/list"))?;
            after
                .query_pairs_mut()
                .append_pair("n", &self.page_size.to_string())
                .append_pair("last", last);
            let response = match self.get(&after, &scope, None).await {
                Ok(r) => r,
                // A registry that refuses `last` outright cannot be asked; the listing is
                // taken as it came, as before this check existed.
                Err(e) if e.status() == Some(400) => {
                    tracing::debug!(repository, error = %e, "the registry refuses `last` on tag listings; a lost page cannot be noticed there");
                    return Ok(listing);
                }
                Err(e) => return Err(e),
            };
            let bytes = read_limited(&Method::GET, &after, response, LISTING_LIMIT).await?;
            let page: Page = serde_json::from_slice(&bytes).map_err(|e| {
                invalid(
                    &Method::GET,
                    &after,
                    &format!("listing is not the expected JSON: {e}"),
                )
            })?;
            let seen: HashSet<&str> = listing.items.iter().map(String::as_str).collect();
            let unseen: Vec<String> = page
                .tags
                .ok_or_else(|| invalid(&Method::GET, &after, "listing has no `tags` field"))?
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !seen.contains(t.as_str()))
                .collect();
            if let Some(first_unseen) = unseen.first() {
                return Err(RegistryError::LostPage {
                    path: after.path().to_owned(),
                    pages: listing.pages,
                    last: last.clone(),
                    unseen: first_unseen.clone(),
                    more: unseen.len() - 1,
                });
            }
        }
        Ok(listing)
    }

    /// Follow `Link` pages from `first` to the end.
    async fn list(&self, scope: &str, first: Url, field: Field) -> Result<Listing, RegistryError> {
        // distribution answers `"tags": null` once the last tag is gone; a page without the
        // key at all is not a listing, and must not read as "no tags".
        let (items, pages) = self
            .walk(scope, first, |page: Page| {
                match field {
                    Field::Repositories => page.repositories,
                    Field::Tags => page.tags,
                }
                .map(Option::unwrap_or_default)
                .ok_or("listing has no `repositories`/`tags` field")
            })
            .await?;
        Ok(Listing { items, pages })
    }

    /// Follow `Link` pages from `first` to the end, taking `items` out of each page. The
    /// next page is always the one the `Link` header names: its query is the registry's
    /// (ACR's `last` is opaque), never built here.
    pub(super) async fn walk<P: serde::de::DeserializeOwned, I>(
        &self,
        scope: &str,
        first: Url,
        items: impl Fn(P) -> Result<Vec<I>, &'static str>,
    ) -> Result<(Vec<I>, usize), RegistryError> {
        let mut url = first;
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            if !seen.insert(url.clone()) {
                return Err(invalid(
                    &Method::GET,
                    &url,
                    "pagination loops back to a page it already returned",
                ));
            }
            let response = self.get(&url, scope, None).await?;
            let next = match header(response.headers(), "link") {
                Some(value) => {
                    link::next_page(value, &url).map_err(|r| invalid(&Method::GET, &url, &r))?
                }
                None => None,
            };
            let bytes = read_limited(&Method::GET, &url, response, LISTING_LIMIT).await?;
            let page: P = serde_json::from_slice(&bytes).map_err(|e| {
                invalid(
                    &Method::GET,
                    &url,
                    &format!("listing is not the expected JSON: {e}"),
                )
            })?;
            let page_items = items(page).map_err(|r| invalid(&Method::GET, &url, r))?;
            pages += 1;
            if page_items.len() > self.page_size {
                self.page_size_honoured.set(Support::No);
            } else if next.is_some() {
                self.page_size_honoured.set(Support::Yes);
            }
            all.extend(page_items);
            match next {
                Some(n) => url = n,
                None => return Ok((all, pages)),
            }
        }
    }

    /// GET that must answer 200.
    pub(super) async fn get(
        &self,
        url: &Url,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let extra = Extra {
            accept,
            ..Extra::default()
        };
        let response = self.transport.send(Method::GET, url, scope, &extra).await?;
        if response.status() == 200 {
            Ok(response)
        } else {
            Err(status_error(&Method::GET, url, response).await)
        }
    }

    /// Fetch and parse a manifest by tag or digest. The body's digest must equal the digest
    /// asked for, or the `Docker-Content-Digest` the registry claims for a tag.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<Manifest, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let response = self
            .get(&url, &self.scope(repository, "pull"), Some(MANIFEST_ACCEPT))
            .await?;
        let content_type = header(response.headers(), "content-type").map(str::to_owned);
        let claimed = header(response.headers(), "docker-content-digest").map(str::to_owned);
        let bytes = read_limited(&Method::GET, &url, response, MANIFEST_LIMIT).await?;
        let mismatch = |expected: Digest, actual: Digest| RegistryError::DigestMismatch {
            repository: repository.to_owned(),
            reference: reference.to_string(),
            expected,
            actual,
        };
        let digest = match reference {
            Reference::Digest(asked) => {
                if !asked.verifies(&bytes) {
                    return Err(mismatch(asked.clone(), asked.same_algorithm_of(&bytes)));
                }
                asked.clone()
            }
            Reference::Tag(_) => match claimed.as_deref().map(str::parse::<Digest>) {
                Some(Ok(claimed)) => {
                    if !claimed.verifies(&bytes) {
                        return Err(mismatch(claimed.clone(), claimed.same_algorithm_of(&bytes)));
                    }
                    claimed
                }
                Some(Err(e)) => {
                    return Err(invalid(
                        &Method::GET,
                        &url,
                        &format!("Docker-Content-Digest: {e}"),
                    ))
                }
                None => Digest::sha256_of(&bytes),
            },
        };
        Manifest::parse(digest, content_type.as_deref(), &bytes).map_err(|source| {
            RegistryError::Manifest {
                repository: repository.to_owned(),
                reference: reference.to_string(),
                source,
            }
        })
    }

    /// Whether a manifest exists, without downloading it.
    pub async fn manifest_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        Ok(self
            .head_manifest(repository, &Reference::from(digest))
            .await?
            .is_some())
    }

    /// HEAD a manifest with the full `Accept` list: the answer's headers, or `None` on 404.
    async fn head_manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<Option<reqwest::header::HeaderMap>, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let extra = Extra {
            accept: Some(MANIFEST_ACCEPT),
            ..Extra::default()
        };
        let response = self
            .transport
            .send(Method::HEAD, &url, &self.scope(repository, "pull"), &extra)
            .await?;
        match response.status().as_u16() {
            200 => Ok(Some(response.headers().clone())),
            404 => Ok(None),
            _ => Err(status_error(&Method::HEAD, &url, response).await),
        }
    }

    /// Delete a manifest by digest. Every tag on it goes too. Gone already is fine.
    pub async fn delete_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Deleted, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("/v2/{repository}/manifests/{digest}"))?;
        match self.delete_at(&url, repository).await? {
            Deleted::Removed => Ok(Deleted::Removed),
            // A 404 is taken as "gone" only once a HEAD agrees: a registry in trouble that
            // answers 404 for a manifest it still has would otherwise have its children
            // deleted in the next wave, under an index that still lists them.
            Deleted::AlreadyGone => {
                if self.manifest_exists(repository, digest).await? {
                    Err(invalid(
                        &Method::DELETE,
                        &url,
                        "the registry answered 404, but a HEAD still finds the manifest",
                    ))
                } else {
                    Ok(Deleted::AlreadyGone)
                }
            }
        }
    }

    /// DELETE `url` with `repository`'s delete scope. Gone already is fine.
    pub(super) async fn delete_at(
        &self,
        url: &Url,
        repository: &str,
    ) -> Result<Deleted, RegistryError> {
        let response = self
            .transport
            .send(
                Method::DELETE,
                url,
                &self.scope(repository, "delete"),
                &Extra::default(),
            )
            .await?;
        match response.status().as_u16() {
            200 | 202 | 204 => Ok(Deleted::Removed),
            404 => Ok(Deleted::AlreadyGone),
            _ => Err(status_error(&Method::DELETE, url, response).await),
        }
    }

    /// Delete just a tag, where the registry supports it. The answer also teaches us whether
    /// it does: distribution 2.8 answers 400 and some registries 405.
    pub async fn delete_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<TagDeleted, RegistryError> {
        check_repository(repository)?;
        check_tag(tag)?;
        if self.kind == Kind::Acr {
            return self.acr_delete_tag(repository, tag).await;
        }
        if self.tag_delete.get() == Support::No {
            return Ok(TagDeleted::Unsupported);
        }
        let url = self.url(&format!("/v2/{repository}/manifests/{tag}"))?;
        let response = self
            .transport
            .send(
                Method::DELETE,
                &url,
                &self.scope(repository, "delete"),
                &Extra::default(),
            )
            .await?;
        match response.status().as_u16() {
            200 | 202 | 204 => {
                self.tag_delete.set(Support::Yes);
                Ok(TagDeleted::Removed)
            }
            404 => Ok(TagDeleted::AlreadyGone),
            400 | 405 => {
                self.tag_delete.set(Support::No);
                Ok(TagDeleted::Unsupported)
            }
            _ => Err(status_error(&Method::DELETE, &url, response).await),
        }
    }

    /// Upload a manifest under `reference`; returns the digest the registry stored it as.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &Reference,
        media_type: &MediaType,
        body: Vec<u8>,
    ) -> Result<Digest, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let digest = Digest::sha256_of(&body);
        let extra = Extra {
            content_type: Some(media_type.as_str()),
            body: Some(body),
            ..Extra::default()
        };
        let response = self
            .transport
            .send(Method::PUT, &url, &push_scope(repository), &extra)
            .await?;
        match response.status().as_u16() {
            200..=202 => Ok(digest),
            _ => Err(status_error(&Method::PUT, &url, response).await),
        }
    }

    /// The referrers of `digest` from the referrers API alone; `None` when the registry has
    /// no such API (learned from its first 404, then not asked again). Sweeps use this: the
    /// fallback tags are in the tag listing they already have.
    pub async fn referrers_api(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        check_repository(repository)?;
        let _probing = match self.referrers_api.get() {
            Support::Unknown => Some(self.referrers_probe.lock().await),
            _ => None,
        };
        if self.referrers_api.get() == Support::No {
            return Ok(None);
        }
        let url = self.url(&format!("/v2/{repository}/referrers/{digest}"))?;
        let extra = Extra {
            accept: Some(OCI_INDEX),
            ..Extra::default()
        };
        let response = self
            .transport
            .send(Method::GET, &url, &self.scope(repository, "pull"), &extra)
            .await?;
        match response.status().as_u16() {
            200 => {
                self.referrers_api.set(Support::Yes);
                Ok(Some(self.referrer_pages(repository, url, response).await?))
            }
            // A registry with the API must not answer 404 (OCI distribution 1.1).
            404 => {
                self.referrers_api.set(Support::No);
                Ok(None)
            }
            _ => Err(status_error(&Method::GET, &url, response).await),
        }
    }

    /// The manifests that refer to `digest` (signatures, SBOMs, attestations). From the
    /// referrers API where the registry has it; otherwise from the `sha256-<hex>` fallback
    /// tag, as OCI distribution 1.1 tells clients to do.
    pub async fn referrers(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Referrers, RegistryError> {
        if let Some(descriptors) = self.referrers_api(repository, digest).await? {
            return Ok(Referrers {
                descriptors,
                source: ReferrersSource::Api,
            });
        }
        let tag = Reference::Tag(digest.fallback_tag());
        let descriptors = match self.manifest(repository, &tag).await {
            Ok(index) if index.media_type.is_index() => index.children().to_vec(),
            Ok(other) => {
                return Err(RegistryError::Manifest {
                    repository: repository.to_owned(),
                    reference: tag.to_string(),
                    source: super::manifest::ParseError::Malformed {
                        media_type: other.media_type.to_string(),
                        reason: "the referrers fallback tag must name an index".into(),
                    },
                })
            }
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Referrers {
            descriptors,
            source: ReferrersSource::FallbackTag,
        })
    }

    /// Read the first referrers page and follow `Link` to the rest.
    async fn referrer_pages(
        &self,
        repository: &str,
        first_url: Url,
        first: reqwest::Response,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let mut out = Vec::new();
        let mut url = first_url;
        let mut response = first;
        let mut seen = HashSet::new();
        loop {
            seen.insert(url.clone());
            let next = match header(response.headers(), "link") {
                Some(v) => link::next_page(v, &url).map_err(|r| invalid(&Method::GET, &url, &r))?,
                None => None,
            };
            let bytes = read_limited(&Method::GET, &url, response, LISTING_LIMIT).await?;
            let index = Manifest::parse(Digest::sha256_of(&bytes), Some(OCI_INDEX), &bytes)
                .map_err(|source| RegistryError::Manifest {
                    repository: repository.to_owned(),
                    reference: url.path().to_owned(),
                    source,
                })?;
            out.extend(index.children().iter().cloned());
            match next {
                Some(n) if seen.contains(&n) => {
                    return Err(invalid(
                        &Method::GET,
                        &n,
                        "pagination loops back to a page it already returned",
                    ))
                }
                Some(n) => {
                    url = n;
                    response = self
                        .get(&url, &self.scope(repository, "pull"), Some(OCI_INDEX))
                        .await?;
                }
                None => return Ok(out),
            }
        }
    }

    /// When the image was made: the `org.opencontainers.image.created` annotation, else the
    /// config blob's `created`, else unknown (`None`). Indexes and artifacts without an image
    /// config have only the annotation.
    pub async fn created(
        &self,
        repository: &str,
        manifest: &Manifest,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        if let Some(t) = manifest.created_annotation() {
            return Ok(Some(t));
        }
        let Some(config) = manifest.config() else {
            return Ok(None);
        };
        if !is_image_config(&config.media_type) {
            return Ok(None);
        }
        self.config_created(repository, &config.digest).await
    }

    /// The `created` time in an image config blob, if it has a usable one.
    pub async fn config_created(
        &self,
        repository: &str,
        config: &Digest,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        let bytes = self.blob(repository, config, CONFIG_LIMIT).await?;
        Ok(config_created(&bytes))
    }

    /// The digest a tag (or digest) names now, by HEAD; `None` if it does not exist.
    pub async fn resolve(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<Option<Digest>, RegistryError> {
        let Some(headers) = self.head_manifest(repository, reference).await? else {
            return Ok(None);
        };
        match header(&headers, "docker-content-digest").map(str::parse::<Digest>) {
            Some(Ok(digest)) => Ok(Some(digest)),
            Some(Err(e)) => Err(RegistryError::InvalidResponse {
                method: "HEAD".into(),
                path: format!("/v2/{repository}/manifests/{reference}"),
                reason: format!("Docker-Content-Digest: {e}"),
            }),
            // Without the header only the body tells: read it.
            None => self
                .manifest(repository, reference)
                .await
                .map(|m| Some(m.digest)),
        }
    }

    /// Whether a blob is in the repository (a HEAD of it).
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"))?;
        let response = self
            .transport
            .send(
                Method::HEAD,
                &url,
                &self.scope(repository, "pull"),
                &Extra::default(),
            )
            .await?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(&Method::HEAD, &url, response).await),
        }
    }

    /// Fetch a (small) blob and check its digest.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"))?;
        let response = self
            .get(&url, &self.scope(repository, "pull"), None)
            .await?;
        let bytes = read_limited(&Method::GET, &url, response, limit).await?;
        if !digest.verifies(&bytes) {
            return Err(RegistryError::DigestMismatch {
                repository: repository.to_owned(),
                reference: digest.to_string(),
                expected: digest.clone(),
                actual: digest.same_algorithm_of(&bytes),
            });
        }
        Ok(bytes)
    }
}

fn is_image_config(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.config.v1+json"
            | "application/vnd.docker.container.image.v1+json"
    )
}

fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn invalid(method: &Method, url: &Url, reason: &str) -> RegistryError {
    RegistryError::InvalidResponse {
        method: method.to_string(),
        path: url.path().to_owned(),
        reason: reason.to_owned(),
    }
}

enum Field {
    Repositories,
    Tags,
}

/// A catalog or tags page. The outer `Option` is whether the key is there at all; the inner
/// one is distribution's `"tags": null` once the last tag is gone.
#[derive(Deserialize)]
struct Page {
    #[serde(default, deserialize_with = "present")]
    repositories: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    tags: Option<Option<Vec<String>>>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Vec<String>>>, D::Error> {
    Option::<Vec<String>>::deserialize(d).map(Some)
}

/// The OCI Distribution API as a backend: tag names only, no listing of manifests, no
/// timestamps or locks of its own. A client built for ACR (`Kind::Acr`) still speaks ACR's
/// auth, but as a `Backend` it is this plain one: `registry::connect` wraps it in `AcrClient`.
impl Backend for OciClient {
    fn host(&self) -> &str {
        OciClient::host(self)
    }

    fn name(&self) -> &'static str {
        "oci"
    }

    fn capabilities(&self) -> Capabilities {
        OciClient::capabilities(self)
    }

    fn request_count(&self) -> u64 {
        OciClient::request_count(self)
    }

    fn credentials_spent(&self) -> bool {
        self.transport.credentials_spent()
    }

    fn repositories(&self) -> Answer<'_, Vec<String>> {
        Box::pin(async move { Ok(OciClient::repositories(self).await?.items) })
    }

    fn tags<'a>(&'a self, repository: &'a str) -> Answer<'a, TagListing> {
        Box::pin(async move {
            Ok(TagListing::Names(
                OciClient::tags(self, repository).await?.items,
            ))
        })
    }

    fn manifests<'a>(&'a self, _: &'a str) -> Answer<'a, Option<Vec<ListedManifest>>> {
        Box::pin(async { Ok(None) })
    }

    fn manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Manifest> {
        Box::pin(OciClient::manifest(self, repository, reference))
    }

    fn manifest_exists<'a>(&'a self, repository: &'a str, digest: &'a Digest) -> Answer<'a, bool> {
        Box::pin(OciClient::manifest_exists(self, repository, digest))
    }

    fn blob_exists<'a>(&'a self, repository: &'a str, digest: &'a Digest) -> Answer<'a, bool> {
        Box::pin(OciClient::blob_exists(self, repository, digest))
    }

    fn resolve<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Option<Digest>> {
        Box::pin(OciClient::resolve(self, repository, reference))
    }

    fn referrers_api<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Option<Vec<Descriptor>>> {
        Box::pin(OciClient::referrers_api(self, repository, digest))
    }

    fn config_created<'a>(
        &'a self,
        repository: &'a str,
        config: &'a Digest,
    ) -> Answer<'a, Option<DateTime<Utc>>> {
        Box::pin(OciClient::config_created(self, repository, config))
    }

    fn delete_manifest<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Deleted> {
        Box::pin(OciClient::delete_manifest(self, repository, digest))
    }

    fn delete_tag<'a>(&'a self, repository: &'a str, tag: &'a str) -> Answer<'a, TagDeleted> {
        Box::pin(OciClient::delete_tag(self, repository, tag))
    }

    fn put_manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
        media_type: &'a MediaType,
        body: Vec<u8>,
    ) -> Answer<'a, Digest> {
        Box::pin(OciClient::put_manifest(
            self, repository, reference, media_type, body,
        ))
    }

    fn unlock<'a>(&'a self, _: &'a str, _: Option<&'a Digest>, _: &'a [&'a str]) -> Answer<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn delete_repository<'a>(&'a self, _: &'a str) -> Answer<'a, Deleted> {
        Box::pin(async move {
            Err(RegistryError::Unsupported {
                operation: "repository delete".into(),
                registry: self.host.clone(),
            })
        })
    }
}
