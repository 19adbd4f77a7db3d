//! Amazon ECR on a `moto` server: repositories and images pushed with `PutImage`, so that the
//! `ecr` backend reads and deletes through the real AWS SDK.
//!
//! moto's ECR (5.2.x) is not ECR. What the tests must know, and test around:
//! - `tagStatus` and `maxResults` are ignored, and nothing is paginated;
//! - it returns no `lastRecordedPullTime` and no `subjectManifestDigest`;
//! - it lets a child of an index be deleted, which real ECR refuses
//!   (`ImageReferencedByManifestList`): the tests assert that we never ask for that;
//! - `BatchDeleteImage` of an untagged image by digest answers with empty `imageIds` and empty
//!   `failures`: what went is counted by listing again, not from the answer;
//! - `PutImage` of a tag that another image holds deletes that image when the tag was its last
//!   (real ECR leaves it untagged);
//! - digests are made up unless `PutImage` is given `imageDigest`, so every push gives one;
//! - push times are whole seconds: images meant to differ in age are pushed a second apart.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::moto::Moto;

/// moto's account, and the registry URL the janitor is given for it.
pub const ACCOUNT: &str = "123456789012";
pub const REGISTRY: &str = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest in moto's ECR.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub media_type: String,
    pub body: String,
}

impl Pushed {
    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.body.len()})
    }
}

pub struct Ecr {
    pub client: aws_sdk_ecr::Client,
    unique: std::sync::atomic::AtomicU64,
}

fn sha256(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

impl Ecr {
    pub async fn on(moto: &Moto) -> Ecr {
        Ecr {
            client: aws_sdk_ecr::Client::new(&moto.sdk().await),
            unique: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub async fn create_repository(&self, name: &str) {
        self.client
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .expect("create repository");
    }

    /// Put `body` as it is, with its digest, and `tag` if given.
    pub async fn put(
        &self,
        repository: &str,
        media_type: &str,
        body: String,
        tag: Option<&str>,
    ) -> Pushed {
        let digest = sha256(&body);
        let mut put = self
            .client
            .put_image()
            .repository_name(repository)
            .image_manifest(body.clone())
            .image_manifest_media_type(media_type)
            .image_digest(&digest);
        if let Some(t) = tag {
            put = put.image_tag(t);
        }
        put.send().await.expect("put image");
        Pushed {
            digest,
            media_type: media_type.to_owned(),
            body,
        }
    }

    /// A unique OCI image (its config names a unique blob), optionally tagged.
    pub async fn image(&self, repository: &str, tag: Option<&str>) -> Pushed {
        let n = self
            .unique
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = format!("sha256:{:064x}", (std::process::id() as u64) << 32 | n);
        let body = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [],
        })
        .to_string();
        self.put(repository, OCI_MANIFEST, body, tag).await
    }

    /// An index of `children`, optionally tagged.
    pub async fn index(&self, repository: &str, children: &[&Pushed], tag: Option<&str>) -> Pushed {
        let body = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": children.iter().map(|c| c.descriptor()).collect::<Vec<_>>(),
        })
        .to_string();
        self.put(repository, OCI_INDEX, body, tag).await
    }

    /// An OCI 1.1 referrer (a signature) of `subject`, tagged `sha256-<hex>.sig` as cosign does.
    pub async fn signature(&self, repository: &str, subject: &Pushed) -> Pushed {
        let tag = format!("{}.sig", subject.digest.replacen(':', "-", 1));
        self.referrer(repository, subject, Some(&tag)).await
    }

    /// An OCI 1.1 referrer (a signature) of `subject` that only its `subject` field ties to it,
    /// as `cosign --registry-referrers-mode oci-1-1` and notation push them: untagged.
    pub async fn untagged_signature(&self, repository: &str, subject: &Pushed) -> Pushed {
        self.referrer(repository, subject, None).await
    }

    async fn referrer(&self, repository: &str, subject: &Pushed, tag: Option<&str>) -> Pushed {
        let n = self
            .unique
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": format!("sha256:{:064x}", 0xE0_0000 + n), "size": 2},
            "layers": [],
            "subject": subject.descriptor(),
        })
        .to_string();
        self.put(repository, OCI_MANIFEST, body, tag).await
    }

    /// Every digest in `repository`, sorted, and the tags on each.
    pub async fn picture(&self, repository: &str) -> Vec<(String, Vec<String>)> {
        let out = self
            .client
            .describe_images()
            .repository_name(repository)
            .send()
            .await
            .expect("describe images");
        let mut images: Vec<(String, Vec<String>)> = out
            .image_details()
            .iter()
            .map(|i| {
                let mut tags = i.image_tags().to_vec();
                tags.sort();
                (i.image_digest().unwrap_or_default().to_owned(), tags)
            })
            .collect();
        images.sort();
        images
    }

    pub async fn has(&self, repository: &str, digest: &str) -> bool {
        self.picture(repository)
            .await
            .iter()
            .any(|(d, _)| d == digest)
    }
}

/// EventBridge's `ECR Image Action` event for a push of `tag` at `digest` in `repository`:
/// `tests/fixtures/events/ecr-image-action.json` with these values.
pub fn push_event(repository: &str, digest: &str, tag: &str) -> Value {
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/events/ecr-image-action.json"
        ))
        .expect("the ECR event fixture"),
    )
    .expect("the ECR event fixture is JSON");
    event["detail"]["repository-name"] = repository.into();
    event["detail"]["image-digest"] = digest.into();
    event["detail"]["image-tag"] = tag.into();
    event
}
