//! Make images the way a build tool would, with no Docker engine: upload blobs, then PUT
//! manifests. Docker and OCI images with chosen `created` times, indexes (nested too), OCI 1.1
//! referrers with the `sha256-<hex>` fallback index (as oras pushes them to a registry
//! without the referrers API), cosign-style `.sig` tags, and several tags on one digest.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::registry::{RegistryAuth, TestRegistry};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const COSIGN_SIGNATURE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Makes every image's layer unique unless a test asks for shared content.
static UNIQUE: AtomicU64 = AtomicU64::new(0);

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A manifest that is now in the registry.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
    /// Blobs this manifest uses directly (config and layers).
    pub blobs: Vec<String>,
    pub platform: Option<(String, String)>,
}

impl Pushed {
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// A descriptor of this manifest, for an index or a `subject`.
    pub fn descriptor(&self) -> Value {
        let mut d =
            json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size() });
        if let Some((os, arch)) = &self.platform {
            d["platform"] = json!({ "os": os, "architecture": arch });
        }
        d
    }

    /// `sha256-<hex>`: the referrers fallback tag of this manifest.
    pub fn fallback_tag(&self) -> String {
        self.digest.replacen(':', "-", 1)
    }
}

/// An image to push; build it with the methods, then `push`.
pub struct Image {
    repository: String,
    docker: bool,
    created: Option<String>,
    annotation_created: Option<String>,
    layers: Vec<Vec<u8>>,
    platform: Option<(String, String)>,
    subject: Option<Pushed>,
    artifact_type: Option<String>,
    tags: Vec<String>,
}

impl Image {
    /// An OCI image with one unique layer and a config without `created`.
    pub fn oci(repository: &str) -> Image {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        Image {
            repository: repository.to_owned(),
            docker: false,
            created: None,
            annotation_created: None,
            layers: vec![format!("layer {n} {}", std::process::id()).into_bytes()],
            platform: None,
            subject: None,
            artifact_type: None,
            tags: Vec::new(),
        }
    }

    /// A Docker schema 2 image.
    pub fn docker(repository: &str) -> Image {
        Image {
            docker: true,
            ..Image::oci(repository)
        }
    }

    /// The config's `created` (RFC 3339).
    pub fn created(mut self, at: &str) -> Image {
        self.created = Some(at.to_owned());
        self
    }

    /// The `org.opencontainers.image.created` manifest annotation.
    pub fn annotated_created(mut self, at: &str) -> Image {
        self.annotation_created = Some(at.to_owned());
        self
    }

    /// Replace the layers (the same bytes in two images share blobs).
    pub fn layers(mut self, layers: &[&[u8]]) -> Image {
        self.layers = layers.iter().map(|l| l.to_vec()).collect();
        self
    }

    pub fn platform(mut self, os: &str, arch: &str) -> Image {
        self.platform = Some((os.to_owned(), arch.to_owned()));
        self
    }

    pub fn tag(mut self, tag: &str) -> Image {
        self.tags.push(tag.to_owned());
        self
    }

    /// Make this an OCI 1.1 referrer of `subject` (an artifact with an empty config).
    pub fn referrer_of(mut self, subject: &Pushed, artifact_type: &str) -> Image {
        self.subject = Some(subject.clone());
        self.artifact_type = Some(artifact_type.to_owned());
        self
    }

    pub async fn push(self, registry: &TestRegistry) -> Pushed {
        let repo = &self.repository;
        let (config_type, layer_type, manifest_type) = if self.docker {
            (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST)
        } else {
            (OCI_CONFIG, OCI_LAYER, OCI_MANIFEST)
        };
        let (config_type, config) = if self.artifact_type.is_some() {
            (OCI_EMPTY, b"{}".to_vec())
        } else {
            let mut config = json!({
                "architecture": self.platform.as_ref().map(|p| p.1.as_str()).unwrap_or("amd64"),
                "os": self.platform.as_ref().map(|p| p.0.as_str()).unwrap_or("linux"),
                "rootfs": { "type": "layers", "diff_ids": [] },
                "config": {}
            });
            if let Some(created) = &self.created {
                config["created"] = json!(created);
            }
            (config_type, serde_json::to_vec(&config).unwrap())
        };
        let config_digest = registry.push_blob(repo, &config).await;
        let mut blobs = vec![config_digest.clone()];
        let mut layers = Vec::new();
        for layer in &self.layers {
            let digest = registry.push_blob(repo, layer).await;
            layers.push(json!({ "mediaType": layer_type, "digest": digest, "size": layer.len() }));
            blobs.push(digest);
        }
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": { "mediaType": config_type, "digest": config_digest, "size": config.len() },
            "layers": layers,
        });
        if let Some(at) = &self.annotation_created {
            manifest["annotations"] = json!({ "org.opencontainers.image.created": at });
        }
        if let Some(artifact_type) = &self.artifact_type {
            manifest["artifactType"] = json!(artifact_type);
        }
        if let Some(subject) = &self.subject {
            manifest["subject"] = subject.descriptor();
        }
        let body = serde_json::to_vec_pretty(&manifest).unwrap();
        let pushed = registry
            .push_manifest(repo, manifest_type, &body, &self.tags)
            .await;
        let pushed = Pushed {
            blobs,
            platform: self.platform,
            ..pushed
        };
        if let Some(subject) = &self.subject {
            registry.add_to_fallback_index(subject, &pushed).await;
        }
        pushed
    }
}

impl TestRegistry {
    /// The `Authorization` header the harness itself uses to seed a repository.
    async fn seed_auth(&self, repository: &str) -> Option<String> {
        match &self.auth {
            RegistryAuth::None => None,
            RegistryAuth::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                use base64::Engine as _;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            RegistryAuth::Token(server) => Some(format!(
                "Bearer {}",
                server.mint(&[("repository", repository, "pull,push,delete")])
            )),
        }
    }

    fn with_auth(b: reqwest::RequestBuilder, auth: &Option<String>) -> reqwest::RequestBuilder {
        match auth {
            Some(a) => b.header(AUTHORIZATION, a),
            None => b,
        }
    }

    /// Upload a blob (POST, then PUT with the digest) and return its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let auth = self.seed_auth(repository).await;
        let digest = sha256(bytes);
        let start = Self::with_auth(
            self.http
                .post(format!("{}/v2/{repository}/blobs/uploads/", self.url)),
            &auth,
        )
        .send()
        .await
        .expect("blob upload start");
        assert_eq!(
            start.status(),
            202,
            "blob upload start: {}",
            start.text().await.unwrap_or_default()
        );
        let location = start.headers()[LOCATION].to_str().unwrap().to_owned();
        let mut url = reqwest::Url::parse(&self.url)
            .unwrap()
            .join(&location)
            .unwrap();
        url.query_pairs_mut().append_pair("digest", &digest);
        let put = Self::with_auth(self.http.put(url), &auth)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("blob upload finish");
        assert_eq!(
            put.status(),
            201,
            "blob upload: {}",
            put.text().await.unwrap_or_default()
        );
        digest
    }

    /// PUT a manifest by digest, then under each tag.
    pub async fn push_manifest(
        &self,
        repository: &str,
        media_type: &str,
        body: &[u8],
        tags: &[String],
    ) -> Pushed {
        let digest = sha256(body);
        let mut references = vec![digest.clone()];
        references.extend(tags.iter().cloned());
        for reference in references {
            self.put_manifest(repository, &reference, media_type, body)
                .await;
        }
        Pushed {
            repository: repository.to_owned(),
            digest,
            media_type: media_type.to_owned(),
            body: body.to_vec(),
            blobs: Vec::new(),
            platform: None,
        }
    }

    async fn put_manifest(&self, repository: &str, reference: &str, media_type: &str, body: &[u8]) {
        let auth = self.seed_auth(repository).await;
        let response = Self::with_auth(
            self.http.put(format!(
                "{}/v2/{repository}/manifests/{reference}",
                self.url
            )),
            &auth,
        )
        .header(CONTENT_TYPE, media_type)
        .body(body.to_vec())
        .send()
        .await
        .expect("manifest put");
        assert_eq!(
            response.status(),
            201,
            "PUT manifest {repository}:{reference}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Point `tag` at an already pushed manifest.
    pub async fn tag(&self, manifest: &Pushed, tag: &str) {
        self.put_manifest(
            &manifest.repository,
            tag,
            &manifest.media_type,
            &manifest.body,
        )
        .await;
    }

    /// A linux/amd64 and a linux/arm64 image of `repository` (built at `created`, if given),
    /// and an index of both with these tags: (amd64, arm64, index).
    pub async fn multi_arch(
        &self,
        repository: &str,
        created: Option<&str>,
        tags: &[&str],
    ) -> (Pushed, Pushed, Pushed) {
        let image = |arch: &str| {
            let i = Image::oci(repository).platform("linux", arch);
            match created {
                Some(at) => i.created(at),
                None => i,
            }
        };
        let amd = image("amd64").push(self).await;
        let arm = image("arm64").push(self).await;
        let index = self.index(repository, &[&amd, &arm], tags).await;
        (amd, arm, index)
    }

    /// Push an index of `children` (images or indexes) with these tags.
    pub async fn index(&self, repository: &str, children: &[&Pushed], tags: &[&str]) -> Pushed {
        self.index_of_type(repository, OCI_INDEX, children, tags)
            .await
    }

    /// A Docker manifest list of `children`.
    pub async fn docker_list(
        &self,
        repository: &str,
        children: &[&Pushed],
        tags: &[&str],
    ) -> Pushed {
        self.index_of_type(repository, DOCKER_LIST, children, tags)
            .await
    }

    async fn index_of_type(
        &self,
        repository: &str,
        media_type: &str,
        children: &[&Pushed],
        tags: &[&str],
    ) -> Pushed {
        let manifests: Vec<Value> = children.iter().map(|c| c.descriptor()).collect();
        let body = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        }))
        .unwrap();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        self.push_manifest(repository, media_type, &body, &tags)
            .await
    }

    /// `repository` with `v1`, a multi-arch `old-1` with a cosign signature, and a plain
    /// `old-2`. Returns (v1, amd64, arm64, index, signature, old-2).
    pub async fn v1_and_old_builds(&self, repository: &str) -> [Pushed; 6] {
        let v1 = Image::oci(repository).tag("v1").push(self).await;
        let (amd, arm, index) = self.multi_arch(repository, None, &["old-1"]).await;
        let sig = self.cosign_signature(&index).await;
        let old2 = Image::oci(repository)
            .layers(&[b"old two"])
            .tag("old-2")
            .push(self)
            .await;
        [v1, amd, arm, index, sig, old2]
    }

    /// A cosign-style signature: an image tagged `sha256-<hex>.sig` next to its subject.
    pub async fn cosign_signature(&self, subject: &Pushed) -> Pushed {
        Image::oci(&subject.repository)
            .layers(&[format!("signature of {}", subject.digest).as_bytes()])
            .tag(&format!("{}.sig", subject.fallback_tag()))
            .push(self)
            .await
    }

    /// Add `referrer` to the `sha256-<hex>` fallback index of `subject`, as oras does on a
    /// registry without the referrers API: read the index, append, write it back.
    async fn add_to_fallback_index(&self, subject: &Pushed, referrer: &Pushed) {
        let tag = subject.fallback_tag();
        let repo = &subject.repository;
        let auth = self.seed_auth(repo).await;
        let existing = Self::with_auth(
            self.http
                .get(format!("{}/v2/{repo}/manifests/{tag}", self.url)),
            &auth,
        )
        .header(ACCEPT, OCI_INDEX)
        .send()
        .await
        .expect("fallback index get");
        let mut manifests: Vec<Value> = if existing.status() == 200 {
            let v: Value = serde_json::from_slice(&existing.bytes().await.unwrap()).unwrap();
            v["manifests"].as_array().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut descriptor = referrer.descriptor();
        let body: Value = serde_json::from_slice(&referrer.body).unwrap();
        if let Some(t) = body.get("artifactType") {
            descriptor["artifactType"] = t.clone();
        }
        manifests.push(descriptor);
        let index = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .unwrap();
        self.put_manifest(repo, &tag, OCI_INDEX, &index).await;
    }

    /// Status of a raw GET with the given Accept, bypassing the client under test.
    pub async fn raw_status(&self, path: &str, accept: Option<&str>) -> u16 {
        let mut b = self.http.get(format!("{}{path}", self.url));
        if let Some(a) = accept {
            b = b.header(ACCEPT, a);
        }
        b.send().await.expect("raw get").status().as_u16()
    }
}

const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl TestRegistry {
    /// A manifest request accepting every manifest type, with the harness's credentials.
    async fn manifest_request(
        &self,
        method: reqwest::Method,
        repository: &str,
        reference: &str,
    ) -> reqwest::RequestBuilder {
        let auth = self.seed_auth(repository).await;
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url);
        Self::with_auth(self.http.request(method, url), &auth).header(ACCEPT, ACCEPT_ALL)
    }

    /// The bytes of a manifest by tag or digest (GET with every manifest type accepted).
    pub async fn manifest_body(&self, repository: &str, reference: &str) -> Vec<u8> {
        let r = self
            .manifest_request(reqwest::Method::GET, repository, reference)
            .await
            .send()
            .await
            .expect("manifest get");
        assert_eq!(r.status(), 200, "GET {repository}:{reference}");
        r.bytes().await.expect("manifest body").to_vec()
    }

    /// Whether a manifest exists (HEAD with every manifest type accepted).
    pub async fn has_manifest(&self, repository: &str, reference: &str) -> bool {
        self.head_digest(repository, reference).await.is_some()
    }

    /// The digest a tag (or digest) names now, by HEAD; `None` on 404.
    pub async fn head_digest(&self, repository: &str, reference: &str) -> Option<String> {
        let r = self
            .manifest_request(reqwest::Method::HEAD, repository, reference)
            .await
            .send()
            .await
            .expect("manifest head");
        match r.status().as_u16() {
            200 => Some(
                r.headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            ),
            404 => None,
            s => panic!("HEAD {repository}:{reference}: HTTP {s}"),
        }
    }

    /// The tags of a repository, sorted (empty once the last is gone).
    /// Each repository's tags and the digest each names (`repo:tag` -> digest), for comparing
    /// two registries digest by digest.
    pub async fn picture(
        &self,
        repositories: &[impl AsRef<str>],
    ) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        for repo in repositories {
            let repo = repo.as_ref();
            for t in self.tags(repo).await {
                let digest = self.head_digest(repo, &t).await.unwrap_or_default();
                out.insert(format!("{repo}:{t}"), digest);
            }
        }
        out
    }

    pub async fn tags(&self, repository: &str) -> Vec<String> {
        let auth = self.seed_auth(repository).await;
        let r = Self::with_auth(
            self.http
                .get(format!("{}/v2/{repository}/tags/list", self.url)),
            &auth,
        )
        .send()
        .await
        .expect("tags list");
        if r.status() == 404 {
            return Vec::new();
        }
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// Panic unless every tag of `repository` pulls completely; returns the tags.
    pub async fn assert_every_tag_pulls(&self, repository: &str) -> Vec<String> {
        let tags = self.tags(repository).await;
        for tag in &tags {
            self.assert_pulls_completely(repository, tag).await;
        }
        tags
    }

    /// Panic unless `repository:tag` pulls completely: the manifest, every child manifest
    /// (nested too) and every blob answer 200.
    pub async fn assert_pulls_completely(&self, repository: &str, tag: &str) {
        let auth = self.seed_auth(repository).await;
        let mut pending = vec![tag.to_owned()];
        while let Some(reference) = pending.pop() {
            let r = self
                .manifest_request(reqwest::Method::GET, repository, &reference)
                .await
                .send()
                .await
                .expect("manifest get");
            assert_eq!(
                r.status(),
                200,
                "{repository}:{tag} does not pull: manifest {reference} is missing"
            );
            let m: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            for child in m["manifests"].as_array().into_iter().flatten() {
                pending.push(child["digest"].as_str().unwrap().to_owned());
            }
            let blobs = m["config"]
                .as_object()
                .into_iter()
                .map(|c| c["digest"].clone())
                .chain(
                    m["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| l["digest"].clone()),
                );
            for blob in blobs {
                let blob = blob.as_str().unwrap().to_owned();
                let r = Self::with_auth(
                    self.http
                        .head(format!("{}/v2/{repository}/blobs/{blob}", self.url)),
                    &auth,
                )
                .send()
                .await
                .expect("blob head");
                assert_eq!(
                    r.status(),
                    200,
                    "{repository}:{tag} does not pull: blob {blob} is missing"
                );
            }
        }
    }
}
