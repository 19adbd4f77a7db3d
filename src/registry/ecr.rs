//! The `ecr` backend: Amazon ECR through its own API (`aws-sdk-ecr`), with the credentials of
//! the default AWS chain (the function's role in Lambda; no docker login, no secret).
//!
//! One `DescribeImages` listing (every page) names every manifest, untagged ones included,
//! with its tags, push and last pull times, media type, subject and size: the tags and the
//! manifests of a sweep and of apply's re-check come from it, with no request per tag.
//! Manifests are read with `BatchGetImage`, 100 a call, asking for every manifest and index
//! type so that ECR converts nothing; deletes go out as `BatchDeleteImage`, 100 a call, each
//! item answered on its own. An item the answer names neither as deleted nor as failed is
//! looked up again before it counts as gone. The listing asks for every `imageStatus`, and a
//! repository holding an image that is not `ACTIVE` (archived) is not swept: what such an
//! image references cannot be read.
//!
//! What ECR cannot do, declared in `capabilities()`: removing an image's last tag deletes the
//! image (`untag_keeps_manifest` is false), there are no locks, and no `created` is read from
//! image configs (ECR ages images by their push time).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{
    DescribeImagesFilter, ImageDetail, ImageFailureCode, ImageIdentifier, ImageStatus,
    ImageStatusFilter,
};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use super::backend::{
    Answer, Backend, Capabilities, Deleted, ListedManifest, ListedTag, Support, TagDeleted,
    TagListing,
};
use super::digest::Digest;
use super::error::RegistryError;
use super::manifest::{Descriptor, Manifest};
use super::media_type::MediaType;
use super::name::{check_repository, Reference};
use super::options::{redact_userinfo, registry_host, ClientOptions, EcrHost};
use super::pace::Pace;

/// Ids one `BatchGetImage` or `BatchDeleteImage` call takes (the API's limit).
pub const BATCH: usize = 100;

/// The write calls (`BatchDeleteImage`, `PutImage`, `DeleteRepository`) a minute when no
/// budget is given: 10 a second, the rate ECR's service quotas publish for `PutImage`
/// (they publish none for `BatchDeleteImage`). At 100 ids a call that is up to 60,000
/// deletes a minute.
pub const WRITES_PER_MINUTE: u32 = 600;

/// The manifest types ECR is asked to serve as they are.
const ACCEPTED: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.artifact.manifest.v1+json",
];

pub struct EcrClient {
    host: String,
    registry_id: String,
    region: String,
    sdk: tokio::sync::OnceCell<aws_sdk_ecr::Client>,
    /// API calls made so far (the SDK's own retries not counted).
    requests: AtomicU64,
    reads: tokio::sync::Semaphore,
    writes: tokio::sync::Semaphore,
    pace: Option<Pace>,
    cutoff: Option<std::time::Instant>,
}

/// One repository's `DescribeImages`, every page.
struct Listed {
    images: Vec<ImageDetail>,
}

impl EcrClient {
    /// The client for the registry at `registry` (`https://<account>.dkr.ecr.<region>...`):
    /// its id and region come from the host. The AWS SDK is set up at the first call.
    pub fn new(registry: &str, options: &ClientOptions) -> Result<EcrClient, RegistryError> {
        let bad = |reason: &str| RegistryError::Url {
            url: redact_userinfo(registry),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(registry).map_err(|e| bad(&e.to_string()))?;
        let host = registry_host(&url).ok_or_else(|| bad("no host"))?;
        let EcrHost {
            registry_id,
            region,
        } = EcrHost::parse(&host).ok_or_else(|| {
            bad("an ECR registry's host is <account>.dkr.ecr.<region>.amazonaws.com")
        })?;
        let in_flight = options.in_flight.max(1);
        Ok(EcrClient {
            host,
            registry_id,
            region,
            sdk: tokio::sync::OnceCell::new(),
            requests: AtomicU64::new(0),
            reads: tokio::sync::Semaphore::new(in_flight * super::READS_PER_WRITE),
            writes: tokio::sync::Semaphore::new(in_flight),
            // Paced even when no budget is given: ECR's own (`WRITES_PER_MINUTE`), shared.
            pace: Some(Pace::per_minute(
                options
                    .max_writes_per_minute
                    .unwrap_or_else(|| (WRITES_PER_MINUTE / options.write_shares.max(1)).max(1)),
            )),
            cutoff: options.cutoff,
        })
    }

    /// Use this AWS SDK configuration instead of the default chain's.
    pub fn using(self, config: &aws_config::SdkConfig) -> EcrClient {
        let _ = self.sdk.set(aws_sdk_ecr::Client::new(config));
        self
    }

    async fn sdk(&self) -> &aws_sdk_ecr::Client {
        self.sdk
            .get_or_init(|| async {
                let config = crate::aws::sdk_config(Some(&self.region)).await;
                aws_sdk_ecr::Client::new(&config)
            })
            .await
    }

    /// One API call: not started past the cutoff, a write paced, none running past the
    /// cutoff, and its error told apart.
    async fn call<T, E, F>(
        &self,
        operation: &str,
        repository: &str,
        write: bool,
        call: F,
    ) -> Result<T, RegistryError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        F: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        let cut_off = |sent: bool| RegistryError::CutOff {
            method: operation.to_owned(),
            path: repository.to_owned(),
            sent,
        };
        let past = || self.cutoff.is_some_and(|c| std::time::Instant::now() >= c);
        if past() {
            return Err(cut_off(false));
        }
        let slots = if write { &self.writes } else { &self.reads };
        let _slot = slots.acquire().await.ok();
        if let Some(pace) = self.pace.as_ref().filter(|_| write) {
            if !pace.wait_until(self.cutoff).await {
                return Err(cut_off(false));
            }
        }
        if past() {
            return Err(cut_off(false));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = match self.cutoff {
            Some(c) => tokio::time::timeout_at(c.into(), call)
                .await
                .map_err(|_| cut_off(true))?,
            None => call.await,
        };
        answer.map_err(|e| aws_error(operation, repository, &e))
    }

    /// Every image of `repository`, following every page. A page that cannot be read fails
    /// the whole listing.
    async fn describe(&self, repository: &str) -> Result<Listed, RegistryError> {
        check_repository(repository)?;
        let mut images = Vec::new();
        let mut token: Option<String> = None;
        let mut seen = BTreeSet::new();
        loop {
            let sdk = self.sdk().await;
            let page = self
                .call(
                    "DescribeImages",
                    repository,
                    false,
                    sdk.describe_images()
                        .registry_id(&self.registry_id)
                        .repository_name(repository)
                        .max_results(1000)
                        // Without it ECR lists only ACTIVE images, and an archived index or
                        // subject would leave its children and referrers looking orphaned.
                        .filter(
                            DescribeImagesFilter::builder()
                                .image_status(ImageStatusFilter::Any)
                                .build(),
                        )
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
            images.extend(page.image_details().iter().cloned());
            token = next_page("DescribeImages", repository, &mut seen, page.next_token())?;
            if token.is_none() {
                break;
            }
        }
        not_archived(repository, &images)?;
        Ok(Listed { images })
    }

    /// What `reference` names now: one `DescribeImages` of it. `None` if it does not exist.
    async fn describe_one(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<Option<ImageDetail>, RegistryError> {
        check_repository(repository)?;
        let sdk = self.sdk().await;
        let answer = self
            .call(
                "DescribeImages",
                repository,
                false,
                sdk.describe_images()
                    .registry_id(&self.registry_id)
                    .repository_name(repository)
                    .image_ids(image_id(reference))
                    .send(),
            )
            .await;
        match answer {
            Ok(out) => Ok(out.image_details().first().cloned()),
            Err(e) if is_code(&e, "ImageNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `BatchGetImage` of up to `BATCH` references: each manifest, digest-verified, or why
    /// not.
    async fn batch_get(
        &self,
        repository: &str,
        references: &[Reference],
    ) -> Vec<(Reference, Result<Manifest, RegistryError>)> {
        let sdk = self.sdk().await;
        let answer = self
            .call(
                "BatchGetImage",
                repository,
                false,
                sdk.batch_get_image()
                    .registry_id(&self.registry_id)
                    .repository_name(repository)
                    .set_image_ids(Some(references.iter().map(image_id).collect()))
                    .set_accepted_media_types(Some(
                        ACCEPTED.iter().map(|t| (*t).to_owned()).collect(),
                    ))
                    .send(),
            )
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) => {
                return references
                    .iter()
                    .map(|r| (r.clone(), Err(copy(&e))))
                    .collect()
            }
        };
        let mut found: BTreeMap<String, Result<Manifest, RegistryError>> = BTreeMap::new();
        for image in out.images() {
            let Some(id) = image.image_id() else { continue };
            let (Some(body), Some(digest)) = (image.image_manifest(), id.image_digest()) else {
                continue;
            };
            let parsed = digest
                .parse::<Digest>()
                .map_err(|e| RegistryError::InvalidResponse {
                    method: "BatchGetImage".into(),
                    path: repository.to_owned(),
                    reason: format!("imageDigest: {e}"),
                })
                .and_then(|digest| {
                    let bytes = body.as_bytes();
                    if !digest.verifies(bytes) {
                        return Err(RegistryError::DigestMismatch {
                            repository: repository.to_owned(),
                            reference: digest.to_string(),
                            actual: digest.same_algorithm_of(bytes),
                            expected: digest,
                        });
                    }
                    Manifest::parse(digest.clone(), image.image_manifest_media_type(), bytes)
                        .map_err(|source| RegistryError::Manifest {
                            repository: repository.to_owned(),
                            reference: digest.to_string(),
                            source,
                        })
                });
            // Asked by tag, the answer names both.
            if let Some(tag) = id.image_tag() {
                let again = match &parsed {
                    Ok(m) => Ok(m.clone()),
                    Err(e) => Err(copy(e)),
                };
                found.insert(tag.to_owned(), again);
            }
            found.insert(digest.to_owned(), parsed);
        }
        let mut failures: BTreeMap<String, (String, String)> = BTreeMap::new();
        for f in out.failures() {
            let key = f
                .image_id()
                .and_then(|i| i.image_digest().or(i.image_tag()))
                .unwrap_or_default()
                .to_owned();
            let code = f
                .failure_code()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default();
            failures.insert(
                key,
                (code, f.failure_reason().unwrap_or_default().to_owned()),
            );
        }
        references
            .iter()
            .map(|r| {
                let key = r.to_string();
                let result = found.remove(&key).unwrap_or_else(|| {
                    let (code, message) = failures
                        .remove(&key)
                        .unwrap_or_else(|| ("ImageNotFound".into(), "not in the answer".into()));
                    Err(RegistryError::Aws {
                        operation: "BatchGetImage".into(),
                        repository: format!("{repository}@{key}"),
                        code,
                        message,
                    })
                });
                (r.clone(), result)
            })
            .collect()
    }

    /// `BatchDeleteImage` of up to `BATCH` digests, each answered on its own: deleted, failed
    /// (that item's own failure), or `None` where the answer names it neither way.
    async fn batch_delete(
        &self,
        repository: &str,
        digests: Vec<Digest>,
    ) -> Vec<(Digest, Option<Result<Deleted, RegistryError>>)> {
        let sdk = self.sdk().await;
        let ids: Vec<ImageIdentifier> = digests
            .iter()
            .map(|d| image_id(&Reference::Digest(d.clone())))
            .collect();
        let answer = self
            .call(
                "BatchDeleteImage",
                repository,
                true,
                sdk.batch_delete_image()
                    .registry_id(&self.registry_id)
                    .repository_name(repository)
                    .set_image_ids(Some(ids))
                    .send(),
            )
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) => {
                return digests
                    .into_iter()
                    .map(|d| (d, Some(Err(copy(&e)))))
                    .collect()
            }
        };
        let deleted: BTreeSet<&str> = out
            .image_ids()
            .iter()
            .filter_map(|i| i.image_digest())
            .collect();
        let failed: BTreeMap<&str, (&ImageFailureCode, &str)> = out
            .failures()
            .iter()
            .filter_map(|f| {
                let digest = f.image_id()?.image_digest()?;
                Some((
                    digest,
                    (f.failure_code()?, f.failure_reason().unwrap_or_default()),
                ))
            })
            .collect();
        digests
            .into_iter()
            .map(|digest| {
                let key = digest.to_string();
                let r = if deleted.contains(key.as_str()) {
                    Some(Ok(Deleted::Removed))
                } else {
                    // Each failure is this item's alone (ImageReferencedByManifestList: a
                    // parent still uses it). ImageNotFound is a failure too: apply keeps
                    // what depends on it, and the next sweep's listing tells.
                    failed.get(key.as_str()).map(|(code, reason)| {
                        Err(RegistryError::Aws {
                            operation: "BatchDeleteImage".into(),
                            repository: format!("{repository}@{digest}"),
                            code: code.as_str().to_owned(),
                            message: (*reason).to_owned(),
                        })
                    })
                };
                (digest, r)
            })
            .collect()
    }
}

/// The token of the page after this one, or `None` after the last (`aws::next_token`). A
/// token seen before would make the listing go round forever: that answer is not trusted.
fn next_page(
    operation: &str,
    repository: &str,
    seen: &mut BTreeSet<String>,
    next: Option<&str>,
) -> Result<Option<String>, RegistryError> {
    crate::aws::next_token(seen, next).map_err(|e| RegistryError::InvalidResponse {
        method: operation.to_owned(),
        path: repository.to_owned(),
        reason: e.to_string(),
    })
}

/// `reference` as ECR's image id.
fn image_id(reference: &Reference) -> ImageIdentifier {
    match reference {
        Reference::Digest(d) => ImageIdentifier::builder()
            .image_digest(d.to_string())
            .build(),
        Reference::Tag(t) => ImageIdentifier::builder().image_tag(t.to_string()).build(),
    }
}

/// An SDK error as ours: the operation, the repository, the service's code and message.
fn aws_error<E>(operation: &str, repository: &str, e: &SdkError<E, HttpResponse>) -> RegistryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    RegistryError::Aws {
        operation: operation.to_owned(),
        repository: repository.to_owned(),
        code: e.code().unwrap_or("no code").to_owned(),
        message: e
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| DisplayErrorContext(e).to_string()),
    }
}

fn is_code(e: &RegistryError, wanted: &str) -> bool {
    matches!(e, RegistryError::Aws { code, .. } if code == wanted)
}

/// The same error again, for every item of a batch that failed as a whole.
fn copy(e: &RegistryError) -> RegistryError {
    match e {
        RegistryError::Aws {
            operation,
            repository,
            code,
            message,
        } => RegistryError::Aws {
            operation: operation.clone(),
            repository: repository.clone(),
            code: code.clone(),
            message: message.clone(),
        },
        RegistryError::CutOff { method, path, sent } => RegistryError::CutOff {
            method: method.clone(),
            path: path.clone(),
            sent: *sent,
        },
        other => RegistryError::InvalidResponse {
            method: "ECR".into(),
            path: String::new(),
            reason: other.to_string(),
        },
    }
}

fn time(t: Option<&aws_sdk_ecr::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl Listed {
    fn tags(&self) -> Result<Vec<ListedTag>, RegistryError> {
        let mut tags = Vec::new();
        for image in &self.images {
            let digest = digest_of(image)?;
            for name in image.image_tags() {
                tags.push(ListedTag {
                    name: name.clone(),
                    digest: digest.clone(),
                    // ECR keeps no time per tag: a tag's age is its image's.
                    updated: None,
                    locked: false,
                });
            }
        }
        Ok(tags)
    }

    fn manifests(&self) -> Result<Vec<ListedManifest>, RegistryError> {
        self.images
            .iter()
            .map(|image| {
                Ok(ListedManifest {
                    tags: image.image_tags().to_vec(),
                    updated: time(image.image_pushed_at()),
                    locked: false,
                    pulled: time(image.last_recorded_pull_time()),
                    media_type: image.image_manifest_media_type().map(str::to_owned),
                    subject: image
                        .subject_manifest_digest()
                        .map(|d| {
                            d.parse::<Digest>()
                                .map_err(|e| RegistryError::InvalidResponse {
                                    method: "DescribeImages".into(),
                                    path: image.repository_name().unwrap_or_default().to_owned(),
                                    reason: format!("subjectManifestDigest {d:?}: {e}"),
                                })
                        })
                        .transpose()?,
                    size: image
                        .image_size_in_bytes()
                        .and_then(|s| u64::try_from(s).ok()),
                    ..ListedManifest::new(digest_of(image)?)
                })
            })
            .collect()
    }
}

/// A repository with archived (or restoring) images is not swept: what they reference cannot
/// be read, so their children and referrers might look orphaned. An image without a status
/// (older API answers, moto) is active.
fn not_archived(repository: &str, images: &[ImageDetail]) -> Result<(), RegistryError> {
    let inactive: Vec<String> = images
        .iter()
        .filter_map(|i| match i.image_status() {
            None | Some(ImageStatus::Active) => None,
            Some(status) => Some(format!(
                "{} ({})",
                i.image_digest().unwrap_or("?"),
                status.as_str()
            )),
        })
        .collect();
    match inactive.as_slice() {
        [] => Ok(()),
        [first, ..] => Err(RegistryError::InvalidResponse {
            method: "DescribeImages".into(),
            path: repository.to_owned(),
            reason: format!(
                "{} image(s) are not ACTIVE, such as {first}: registry-janitor does not sweep \
                 a repository with archived images, since what they reference cannot be read; \
                 restore or delete them first",
                inactive.len()
            ),
        }),
    }
}

/// The answer for the one image a batch call was given, or an error if it gave none.
fn the_one<K, T>(
    operation: &str,
    repository: &str,
    answer: Option<(K, Result<T, RegistryError>)>,
) -> Result<T, RegistryError> {
    match answer {
        Some((_, r)) => r,
        None => Err(RegistryError::InvalidResponse {
            method: operation.into(),
            path: repository.to_owned(),
            reason: "no answer for the image".into(),
        }),
    }
}

fn digest_of(image: &ImageDetail) -> Result<Digest, RegistryError> {
    let text = image.image_digest().unwrap_or_default();
    text.parse::<Digest>()
        .map_err(|e| RegistryError::InvalidResponse {
            method: "DescribeImages".into(),
            path: image.repository_name().unwrap_or_default().to_owned(),
            reason: format!("imageDigest {text:?}: {e}"),
        })
}

impl Backend for EcrClient {
    fn host(&self) -> &str {
        &self.host
    }

    fn name(&self) -> &'static str {
        "ecr"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags_with_digests: true,
            manifest_listing: true,
            timestamps: true,
            locks: false,
            repository_delete: true,
            tag_delete: Support::Yes,
            referrers_api: Support::No,
            page_size: Support::Yes,
            delete_batch: BATCH,
            untag_keeps_manifest: false,
            pull_times: true,
        }
    }

    fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn credentials_spent(&self) -> bool {
        false
    }

    fn repositories(&self) -> Answer<'_, Vec<String>> {
        Box::pin(async move {
            let mut names = Vec::new();
            let mut token: Option<String> = None;
            let mut seen = BTreeSet::new();
            loop {
                let sdk = self.sdk().await;
                let page = self
                    .call(
                        "DescribeRepositories",
                        "",
                        false,
                        sdk.describe_repositories()
                            .registry_id(&self.registry_id)
                            .max_results(1000)
                            .set_next_token(token.take())
                            .send(),
                    )
                    .await?;
                for r in page.repositories() {
                    let name = r.repository_name().unwrap_or_default();
                    check_repository(name)?;
                    names.push(name.to_owned());
                }
                token = next_page("DescribeRepositories", "", &mut seen, page.next_token())?;
                if token.is_none() {
                    break;
                }
            }
            Ok(names)
        })
    }

    fn tags<'a>(&'a self, repository: &'a str) -> Answer<'a, TagListing> {
        Box::pin(async move {
            Ok(TagListing::Resolved(
                self.describe(repository).await?.tags()?,
            ))
        })
    }

    fn manifests<'a>(&'a self, repository: &'a str) -> Answer<'a, Option<Vec<ListedManifest>>> {
        Box::pin(async move { Ok(Some(self.describe(repository).await?.manifests()?)) })
    }

    fn listings<'a>(
        &'a self,
        repository: &'a str,
    ) -> Answer<'a, (TagListing, Option<Vec<ListedManifest>>)> {
        Box::pin(async move {
            let listed = self.describe(repository).await?;
            Ok((
                TagListing::Resolved(listed.tags()?),
                Some(listed.manifests()?),
            ))
        })
    }

    fn manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Manifest> {
        Box::pin(async move {
            check_repository(repository)?;
            let mut got = self
                .batch_get(repository, std::slice::from_ref(reference))
                .await;
            the_one("BatchGetImage", repository, got.pop())
        })
    }

    fn manifests_by_digest<'a>(
        &'a self,
        repository: &'a str,
        digests: Vec<Digest>,
        _limit: usize,
    ) -> BoxFuture<'a, Vec<(Digest, Result<Manifest, RegistryError>)>> {
        Box::pin(async move {
            let mut results = Vec::new();
            for chunk in digests.chunks(BATCH) {
                let references: Vec<Reference> =
                    chunk.iter().cloned().map(Reference::Digest).collect();
                for (reference, r) in self.batch_get(repository, &references).await {
                    if let Reference::Digest(d) = reference {
                        results.push((d, r));
                    }
                }
            }
            results
        })
    }

    /// Not asked of ECR: its layer reclaim is asynchronous and not promised, so a journal
    /// restore there is refused rather than trusted to a check that may pass and then fail.
    fn blob_exists<'a>(&'a self, repository: &'a str, _digest: &'a Digest) -> Answer<'a, bool> {
        Box::pin(async move {
            Err(RegistryError::Unavailable {
                operation: "restore --from-journal".into(),
                registry: format!("ECR ({repository})"),
                reason: "ECR reclaims layers on its own schedule and promises nothing about a deleted image's layers".into(),
            })
        })
    }

    fn manifest_exists<'a>(&'a self, repository: &'a str, digest: &'a Digest) -> Answer<'a, bool> {
        Box::pin(async move {
            Ok(self
                .describe_one(repository, &Reference::Digest(digest.clone()))
                .await?
                .is_some())
        })
    }

    fn resolve<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
    ) -> Answer<'a, Option<Digest>> {
        Box::pin(async move {
            match self.describe_one(repository, reference).await? {
                Some(image) => Ok(Some(digest_of(&image)?)),
                None => Ok(None),
            }
        })
    }

    fn referrers_api<'a>(
        &'a self,
        _repository: &'a str,
        _digest: &'a Digest,
    ) -> Answer<'a, Option<Vec<Descriptor>>> {
        // Subjects come with the listing (`subjectManifestDigest`) and the manifests.
        Box::pin(async { Ok(None) })
    }

    fn config_created<'a>(
        &'a self,
        _repository: &'a str,
        _config: &'a Digest,
    ) -> Answer<'a, Option<DateTime<Utc>>> {
        // ECR ages images by their push time (the listing's), not their configs' `created`.
        Box::pin(async { Ok(None) })
    }

    fn delete_manifest<'a>(
        &'a self,
        repository: &'a str,
        digest: &'a Digest,
    ) -> Answer<'a, Deleted> {
        Box::pin(async move {
            check_repository(repository)?;
            let mut answered = self
                .delete_manifests(repository, vec![digest.clone()], 1)
                .await;
            the_one("BatchDeleteImage", repository, answered.pop())
        })
    }

    /// `BATCH` a call. Items an answer names neither deleted nor failed (moto answers so for
    /// an untagged image it deleted) are confirmed by one listing after the last call: gone
    /// from it counts as deleted, still there as a failure. Never assumed gone.
    fn delete_manifests<'a>(
        &'a self,
        repository: &'a str,
        digests: Vec<Digest>,
        _limit: usize,
    ) -> BoxFuture<'a, Vec<(Digest, Result<Deleted, RegistryError>)>> {
        Box::pin(async move {
            if let Err(e) = check_repository(repository) {
                let e = RegistryError::from(e);
                return digests.into_iter().map(|d| (d, Err(copy(&e)))).collect();
            }
            let mut answered = Vec::new();
            for chunk in digests.chunks(BATCH) {
                answered.extend(self.batch_delete(repository, chunk.to_vec()).await);
            }
            let unsure = answered.iter().any(|(_, r)| r.is_none());
            let listed: Option<Result<BTreeSet<String>, RegistryError>> = if unsure {
                Some(self.describe(repository).await.map(|l| {
                    l.images
                        .iter()
                        .filter_map(|i| i.image_digest().map(str::to_owned))
                        .collect()
                }))
            } else {
                None
            };
            answered
                .into_iter()
                .map(|(digest, r)| {
                    let r = r.unwrap_or_else(|| match &listed {
                        Some(Ok(still)) if !still.contains(&digest.to_string()) => {
                            Ok(Deleted::Removed)
                        }
                        Some(Ok(_)) => Err(RegistryError::Aws {
                            operation: "BatchDeleteImage".into(),
                            repository: format!("{repository}@{digest}"),
                            code: "NotDeleted".into(),
                            message: "the answer named it neither deleted nor failed, and the listing still has it".into(),
                        }),
                        Some(Err(e)) => Err(copy(e)),
                        None => Err(RegistryError::InvalidResponse {
                            method: "BatchDeleteImage".into(),
                            path: repository.to_owned(),
                            reason: "no answer for the image".into(),
                        }),
                    });
                    (digest, r)
                })
                .collect()
        })
    }

    fn delete_tag<'a>(&'a self, repository: &'a str, tag: &'a str) -> Answer<'a, TagDeleted> {
        Box::pin(async move {
            check_repository(repository)?;
            let reference = Reference::tag(tag)?;
            let sdk = self.sdk().await;
            let out = self
                .call(
                    "BatchDeleteImage",
                    repository,
                    true,
                    sdk.batch_delete_image()
                        .registry_id(&self.registry_id)
                        .repository_name(repository)
                        .image_ids(image_id(&reference))
                        .send(),
                )
                .await?;
            if !out.image_ids().is_empty() {
                return Ok(TagDeleted::Removed);
            }
            match out.failures().first() {
                Some(f) if f.failure_code() == Some(&ImageFailureCode::ImageNotFound) => {
                    Ok(TagDeleted::AlreadyGone)
                }
                Some(f) => Err(RegistryError::Aws {
                    operation: "BatchDeleteImage".into(),
                    repository: format!("{repository}:{tag}"),
                    code: f
                        .failure_code()
                        .map(|c| c.as_str().to_owned())
                        .unwrap_or_default(),
                    message: f.failure_reason().unwrap_or_default().to_owned(),
                }),
                None => Ok(TagDeleted::Removed),
            }
        })
    }

    fn put_manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a Reference,
        media_type: &'a MediaType,
        body: Vec<u8>,
    ) -> Answer<'a, Digest> {
        Box::pin(async move {
            check_repository(repository)?;
            let digest = Digest::sha256_of(&body);
            let text = String::from_utf8(body).map_err(|_| RegistryError::InvalidResponse {
                method: "PutImage".into(),
                path: repository.to_owned(),
                reason: "a manifest must be UTF-8".into(),
            })?;
            let sdk = self.sdk().await;
            let mut put = sdk
                .put_image()
                .registry_id(&self.registry_id)
                .repository_name(repository)
                .image_manifest(text)
                .image_manifest_media_type(media_type.as_str())
                .image_digest(digest.to_string());
            if let Reference::Tag(t) = reference {
                put = put.image_tag(t.to_string());
            }
            self.call("PutImage", repository, true, put.send()).await?;
            Ok(digest)
        })
    }

    fn unlock<'a>(
        &'a self,
        _repository: &'a str,
        _digest: Option<&'a Digest>,
        _tags: &'a [&'a str],
    ) -> Answer<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn delete_repository<'a>(&'a self, repository: &'a str) -> Answer<'a, Deleted> {
        Box::pin(async move {
            check_repository(repository)?;
            let sdk = self.sdk().await;
            let answer = self
                .call(
                    "DeleteRepository",
                    repository,
                    true,
                    sdk.delete_repository()
                        .registry_id(&self.registry_id)
                        .repository_name(repository)
                        .force(true)
                        .send(),
                )
                .await;
            match answer {
                Ok(_) => Ok(Deleted::Removed),
                Err(e) if is_code(&e, "RepositoryNotFoundException") => Ok(Deleted::AlreadyGone),
                Err(e) => Err(e),
            }
        })
    }
}
