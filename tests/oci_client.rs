//! The `oci` backend against a real distribution 2.8 registry.

mod support;

use std::time::{Duration, Instant};

use registry_janitor::registry::oci::{ReferrersSource, Support};
use registry_janitor::registry::{
    ClientOptions, Credentials, Deleted, Digest, MediaType, OciClient, Reference, RegistryError,
    RetryPolicy, TagDeleted,
};
use support::images::{COSIGN_SIGNATURE, OCI_MANIFEST};
use support::proxy::{Fault, FlakyProxy};
use support::token::TokenServer;
use support::{Image, RegistryAuth, TestRegistry};

fn client(url: &str) -> OciClient {
    client_with(url, ClientOptions::default())
}

fn client_with(url: &str, options: ClientOptions) -> OciClient {
    OciClient::new(url, options).expect("client")
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    }
}

fn digest(s: &str) -> Digest {
    s.parse().expect("digest")
}

fn tag(s: &str) -> Reference {
    Reference::tag(s).expect("tag")
}

#[tokio::test]
async fn catalog_follows_link_pages_to_the_end() {
    let registry = TestRegistry::start().await;
    for repo in ["a", "b", "c", "d", "e"] {
        Image::oci(repo).tag("v1").push(&registry).await;
    }
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = client_with(
        &proxy.url,
        ClientOptions {
            page_size: 2,
            ..ClientOptions::default()
        },
    );
    let listing = client.repositories().await.unwrap();
    assert_eq!(listing.items, vec!["a", "b", "c", "d", "e"]);
    assert_eq!(listing.pages, 3);
    assert_eq!(proxy.count("/v2/_catalog"), 3, "one request per page");
    assert_eq!(client.capabilities().page_size, Support::Yes);
}

#[tokio::test]
async fn tags_listing_detects_a_server_that_ignores_n() {
    let registry = TestRegistry::start().await;
    let mut image = Image::oci("app");
    for t in ["t1", "t2", "t3", "t4", "t5"] {
        image = image.tag(t);
    }
    image.push(&registry).await;
    let client = client_with(
        &registry.url,
        ClientOptions {
            page_size: 2,
            ..ClientOptions::default()
        },
    );
    let mut tags = client.tags("app").await.unwrap();
    assert_eq!(tags.pages, 1);
    tags.items.sort();
    assert_eq!(tags.items, vec!["t1", "t2", "t3", "t4", "t5"]);
    assert_eq!(client.capabilities().page_size, Support::No);
}

#[tokio::test]
async fn oci_manifests_are_fetched_with_the_full_accept_list() {
    let registry = TestRegistry::start().await;
    let image = Image::oci("app").tag("v1").push(&registry).await;
    // Without an OCI Accept, distribution pretends the manifest does not exist.
    assert_eq!(
        registry
            .raw_status(&format!("/v2/app/manifests/{}", image.digest), None)
            .await,
        404
    );
    let client = client(&registry.url);
    let by_digest = client
        .manifest("app", &digest(&image.digest).into())
        .await
        .unwrap();
    assert_eq!(by_digest.media_type, MediaType::OciManifest);
    let by_tag = client.manifest("app", &tag("v1")).await.unwrap();
    assert_eq!(by_tag.digest.as_str(), image.digest);
    assert!(client
        .manifest_exists("app", &digest(&image.digest))
        .await
        .unwrap());
}

#[tokio::test]
async fn docker_and_oci_images_and_nested_indexes_parse_with_children_and_sizes() {
    let registry = TestRegistry::start().await;
    let amd = Image::docker("multi")
        .platform("linux", "amd64")
        .layers(&[b"0123456789"])
        .push(&registry)
        .await;
    let arm = Image::docker("multi")
        .platform("linux", "arm64")
        .push(&registry)
        .await;
    let list = registry.docker_list("multi", &[&amd, &arm], &["v1"]).await;
    let oci = Image::oci("multi").push(&registry).await;
    let outer = registry.index("multi", &[&list, &oci], &["nested"]).await;
    let client = client(&registry.url);

    let image = client
        .manifest("multi", &digest(&amd.digest).into())
        .await
        .unwrap();
    assert_eq!(image.media_type, MediaType::DockerManifest);
    let layer_sizes: Vec<u64> = image.blobs().skip(1).map(|b| b.size).collect();
    assert_eq!(layer_sizes, vec![10]);

    let list_manifest = client.manifest("multi", &tag("v1")).await.unwrap();
    assert_eq!(list_manifest.media_type, MediaType::DockerManifestList);
    let children: Vec<&str> = list_manifest
        .children()
        .iter()
        .map(|c| c.digest.as_str())
        .collect();
    assert_eq!(children, vec![amd.digest.as_str(), arm.digest.as_str()]);
    assert_eq!(
        list_manifest.children()[1]
            .platform
            .as_ref()
            .unwrap()
            .architecture,
        "arm64"
    );

    let outer_manifest = client.manifest("multi", &tag("nested")).await.unwrap();
    assert_eq!(outer_manifest.digest.as_str(), outer.digest);
    assert_eq!(outer_manifest.children()[0].digest.as_str(), list.digest);
    assert!(MediaType::parse(&outer_manifest.children()[0].media_type).is_index());
}

#[tokio::test]
async fn skopeo_sees_the_same_bytes_and_tags_as_the_client() {
    let registry = TestRegistry::start().await;
    let image = Image::oci("cross/check")
        .tag("one")
        .tag("two")
        .push(&registry)
        .await;
    let reference = format!("docker://{}/cross/check:one", registry.host());
    let raw = support::run(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &reference],
    );
    let client = client(&registry.url);
    let manifest = client.manifest("cross/check", &tag("one")).await.unwrap();
    assert_eq!(
        Digest::sha256_of(&raw),
        manifest.digest,
        "skopeo and the client disagree on the digest"
    );
    assert_eq!(manifest.digest.as_str(), image.digest);

    let listed = support::run(
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/cross/check", registry.host()),
        ],
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    let mut skopeo_tags: Vec<String> = listed["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    skopeo_tags.sort();
    let mut ours = client.tags("cross/check").await.unwrap().items;
    ours.sort();
    assert_eq!(ours, skopeo_tags);
    assert_eq!(ours, vec!["one", "two"]);
}

#[tokio::test]
async fn a_body_that_does_not_match_its_digest_is_refused() {
    let registry = TestRegistry::start().await;
    let image = Image::oci("app").tag("v1").push(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = client(&proxy.url);
    proxy.inject("/manifests/", Fault::Corrupt);
    let err = client
        .manifest("app", &digest(&image.digest).into())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    // By tag, the registry's Docker-Content-Digest header is what the body must match.
    proxy.inject("/manifests/", Fault::Corrupt);
    let err = client.manifest("app", &tag("v1")).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(client.manifest("app", &tag("v1")).await.is_ok());
}

#[tokio::test]
async fn garbage_answers_are_typed_errors_not_panics() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = client(&proxy.url);

    proxy.inject(
        "/tags/list",
        Fault::ReplaceBody(b"<html>oops</html>".to_vec(), Some("text/html")),
    );
    let err = client.tags("app").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::InvalidResponse { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("GET /v2/app/tags/list"), "{err}");

    proxy.inject(
        "/tags/list",
        Fault::ReplaceBody(br#"{"tags":["../../etc"]}"#.to_vec(), None),
    );
    let err = client.tags("app").await.unwrap_err();
    assert!(matches!(err, RegistryError::Name(_)), "{err}");

    // Not JSON, served as a manifest under the digest of those very bytes.
    let body = b"not json at all".to_vec();
    let d = Digest::sha256_of(&body);
    proxy.inject("/manifests/", Fault::ReplaceBody(body, Some(OCI_MANIFEST)));
    let err = client.manifest("app", &d.into()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Manifest { .. }), "{err}");

    let schema1 = br#"{"schemaVersion":1,"name":"app","tag":"v1","fsLayers":[]}"#.to_vec();
    let d = Digest::sha256_of(&schema1);
    proxy.inject(
        "/manifests/",
        Fault::ReplaceBody(
            schema1,
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
        ),
    );
    let err = client.manifest("app", &d.into()).await.unwrap_err();
    assert!(err.to_string().contains("schema 1"), "{err}");
}

#[tokio::test]
async fn delete_by_digest_removes_the_manifest_and_its_tags_and_404_means_gone() {
    let registry = TestRegistry::start().await;
    let image = Image::oci("app")
        .tag("v1")
        .tag("v1-alias")
        .push(&registry)
        .await;
    let keep = Image::oci("app").tag("keep").push(&registry).await;
    let client = client(&registry.url);
    let d = digest(&image.digest);
    assert_eq!(
        client.delete_manifest("app", &d).await.unwrap(),
        Deleted::Removed
    );
    assert_eq!(
        client.delete_manifest("app", &d).await.unwrap(),
        Deleted::AlreadyGone
    );
    assert!(!client.manifest_exists("app", &d).await.unwrap());
    assert!(client
        .manifest_exists("app", &digest(&keep.digest))
        .await
        .unwrap());
    assert_eq!(client.tags("app").await.unwrap().items, vec!["keep"]);
}

#[tokio::test]
async fn tag_delete_is_learned_unsupported_on_distribution_and_changes_nothing() {
    let registry = TestRegistry::start().await;
    let image = Image::oci("app").tag("v1").push(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = client(&proxy.url);
    assert_eq!(client.capabilities().tag_delete, Support::Unknown);
    assert_eq!(
        client.delete_tag("app", "v1").await.unwrap(),
        TagDeleted::Unsupported
    );
    assert_eq!(client.capabilities().tag_delete, Support::No);
    // Learned once: the second call does not ask again.
    assert_eq!(
        client.delete_tag("app", "v1").await.unwrap(),
        TagDeleted::Unsupported
    );
    assert_eq!(proxy.count("/manifests/v1"), 1);
    assert!(client
        .manifest_exists("app", &digest(&image.digest))
        .await
        .unwrap());
    assert_eq!(client.tags("app").await.unwrap().items, vec!["v1"]);
}

#[tokio::test]
async fn referrers_come_from_the_fallback_tag_when_the_api_is_missing() {
    let registry = TestRegistry::start().await;
    let subject = Image::oci("app").tag("v1").push(&registry).await;
    let sbom = Image::oci("app")
        .referrer_of(&subject, "application/spdx+json")
        .push(&registry)
        .await;
    let sig = Image::oci("app")
        .referrer_of(&subject, COSIGN_SIGNATURE)
        .push(&registry)
        .await;
    let lonely = Image::oci("app").tag("v2").push(&registry).await;
    let client = client(&registry.url);

    let found = client
        .referrers("app", &digest(&subject.digest))
        .await
        .unwrap();
    assert_eq!(found.source, ReferrersSource::FallbackTag);
    assert_eq!(client.capabilities().referrers_api, Support::No);
    let digests: Vec<&str> = found
        .descriptors
        .iter()
        .map(|d| d.digest.as_str())
        .collect();
    assert_eq!(digests, vec![sbom.digest.as_str(), sig.digest.as_str()]);
    assert_eq!(
        found.descriptors[0].artifact_type.as_deref(),
        Some("application/spdx+json")
    );

    let referrer = client
        .manifest("app", &digest(&sbom.digest).into())
        .await
        .unwrap();
    assert_eq!(referrer.subject.unwrap().digest.as_str(), subject.digest);

    let none = client
        .referrers("app", &digest(&lonely.digest))
        .await
        .unwrap();
    assert!(none.descriptors.is_empty());
}

#[tokio::test]
async fn cosign_signature_tags_name_their_subject() {
    let registry = TestRegistry::start().await;
    let subject = Image::oci("app").tag("v1").push(&registry).await;
    registry.cosign_signature(&subject).await;
    let client = client(&registry.url);
    let tags = client.tags("app").await.unwrap().items;
    let sig_tag = tags
        .iter()
        .find(|t| t.ends_with(".sig"))
        .expect("signature tag");
    assert_eq!(
        Digest::from_link_tag(sig_tag),
        Some(digest(&subject.digest))
    );
}

#[tokio::test]
async fn image_age_comes_from_the_annotation_then_the_config_then_nowhere() {
    let registry = TestRegistry::start().await;
    let both = Image::oci("app")
        .created("2020-01-01T00:00:00Z")
        .annotated_created("2024-05-06T07:08:09Z")
        .push(&registry)
        .await;
    let config_only = Image::docker("app")
        .created("2021-02-03T04:05:06Z")
        .push(&registry)
        .await;
    let neither = Image::oci("app").push(&registry).await;
    let index = registry.index("app", &[&neither], &[]).await;
    let client = client(&registry.url);
    let age = |d: String| {
        let client = &client;
        async move {
            let m = client.manifest("app", &digest(&d).into()).await.unwrap();
            client
                .created("app", &m)
                .await
                .unwrap()
                .map(|t| t.to_rfc3339())
        }
    };
    assert_eq!(
        age(both.digest).await.as_deref(),
        Some("2024-05-06T07:08:09+00:00")
    );
    assert_eq!(
        age(config_only.digest).await.as_deref(),
        Some("2021-02-03T04:05:06+00:00")
    );
    assert_eq!(age(neither.digest).await, None);
    assert_eq!(age(index.digest).await, None);
}

#[tokio::test]
async fn basic_auth_needs_the_right_credentials_and_never_prints_them() {
    let auth = RegistryAuth::Basic {
        username: "alice".into(),
        password: "correct-horse".into(),
    };
    let registry = TestRegistry::start_with(auth).await;
    Image::oci("private").tag("v1").push(&registry).await;

    let anonymous = client(&registry.url);
    let err = anonymous.tags("private").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::CredentialsNeeded { .. }),
        "{err}"
    );

    let wrong = client_with(
        &registry.url,
        ClientOptions {
            credentials: Some(Credentials {
                username: "alice".into(),
                password: "wrong-battery".into(),
            }),
            ..ClientOptions::default()
        },
    );
    let err = wrong.tags("private").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::CredentialsRefused { .. }),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-battery"));

    let right = client_with(
        &registry.url,
        ClientOptions {
            credentials: Some(Credentials {
                username: "alice".into(),
                password: "correct-horse".into(),
            }),
            ..ClientOptions::default()
        },
    );
    assert_eq!(right.tags("private").await.unwrap().items, vec!["v1"]);
}

#[tokio::test]
async fn docker_config_credentials_open_a_basic_auth_registry() {
    use base64::Engine as _;
    let auth = RegistryAuth::Basic {
        username: "bob".into(),
        password: "from-config".into(),
    };
    let registry = TestRegistry::start_with(auth).await;
    Image::oci("private").tag("v1").push(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode("bob:from-config");
    std::fs::write(
        dir.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{encoded}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let docker_config = dir.path().to_str().unwrap().to_owned();
    let env = |k: &str| (k == "DOCKER_CONFIG").then(|| docker_config.clone());
    let credentials = Credentials::resolve(&registry.host(), None, env).unwrap();
    assert_eq!(
        credentials.as_ref().map(|c| c.username.as_str()),
        Some("bob")
    );
    let client = client_with(
        &registry.url,
        ClientOptions {
            credentials,
            ..ClientOptions::default()
        },
    );
    assert_eq!(client.tags("private").await.unwrap().items, vec!["v1"]);
}

#[tokio::test]
async fn bearer_tokens_are_fetched_on_challenge_and_cached_per_scope() {
    let tokens = TokenServer::start("carol", "token-pass").await;
    let registry = TestRegistry::start_with(RegistryAuth::Token(tokens.clone())).await;
    Image::oci("one").tag("v1").push(&registry).await;
    Image::oci("two").tag("v1").push(&registry).await;
    let minted_by_harness = tokens.requests();

    let client = client_with(
        &registry.url,
        ClientOptions {
            credentials: Some(Credentials {
                username: "carol".into(),
                password: "token-pass".into(),
            }),
            ..ClientOptions::default()
        },
    );
    assert_eq!(
        client.repositories().await.unwrap().items,
        vec!["one", "two"]
    );
    for _ in 0..3 {
        assert_eq!(client.tags("one").await.unwrap().items, vec!["v1"]);
        assert_eq!(client.tags("two").await.unwrap().items, vec!["v1"]);
    }
    let m = client.manifest("one", &tag("v1")).await.unwrap();
    assert!(client.manifest_exists("one", &m.digest).await.unwrap());
    assert_eq!(
        tokens.requests() - minted_by_harness,
        3,
        "one token each for the catalog, `one` and `two`: {:?}",
        tokens.scopes_requested()
    );
    assert_eq!(
        tokens.scopes_requested(),
        vec![
            "registry:catalog:*",
            "repository:one:pull",
            "repository:two:pull"
        ]
    );

    // A delete needs a token with a different scope, fetched on the registry's challenge.
    assert_eq!(
        client.delete_manifest("one", &m.digest).await.unwrap(),
        Deleted::Removed
    );
    assert!(!client.manifest_exists("one", &m.digest).await.unwrap());

    let wrong = client_with(
        &registry.url,
        ClientOptions {
            credentials: Some(Credentials {
                username: "carol".into(),
                password: "nope-nope".into(),
            }),
            ..ClientOptions::default()
        },
    );
    let err = wrong.tags("two").await.unwrap_err();
    assert!(matches!(err, RegistryError::Token { .. }), "{err}");
    assert!(!format!("{err:?}").contains("nope-nope"));
}

#[tokio::test]
async fn throttling_and_resets_are_retried_until_the_answer_comes() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = client_with(
        &proxy.url,
        ClientOptions {
            retry: fast_retries(5),
            ..ClientOptions::default()
        },
    );
    proxy.inject("/tags/list", Fault::Status(429, Some("0")));
    proxy.inject("/tags/list", Fault::Status(503, None));
    proxy.inject("/tags/list", Fault::Reset);
    proxy.inject("/tags/list", Fault::Status(502, None));
    assert_eq!(client.tags("app").await.unwrap().items, vec!["v1"]);
    // The listing's own requests; the one asking past its last tag (`last=`) comes after.
    let statuses: Vec<u16> = proxy
        .log()
        .iter()
        .filter(|(_, p, _)| !p.contains("last="))
        .map(|(_, _, s)| *s)
        .collect();
    assert_eq!(statuses, vec![429, 503, 0, 502, 200]);
}

#[tokio::test]
async fn retry_after_is_waited_for() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = client_with(
        &proxy.url,
        ClientOptions {
            retry: fast_retries(3),
            ..ClientOptions::default()
        },
    );
    proxy.inject("/tags/list", Fault::Status(503, Some("1")));
    let started = Instant::now();
    client.tags("app").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn client_errors_are_not_retried_and_attempts_are_bounded() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let client = client_with(
        &proxy.url,
        ClientOptions {
            retry: fast_retries(3),
            ..ClientOptions::default()
        },
    );

    proxy.inject("/tags/list", Fault::Status(403, None));
    let err = client.tags("app").await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(proxy.count("/tags/list"), 1);

    proxy.clear_log();
    for _ in 0..5 {
        proxy.inject("/tags/list", Fault::Status(503, None));
    }
    let err = client.tags("app").await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(proxy.count("/tags/list"), 3, "exactly max_attempts tries");
    assert!(
        err.to_string()
            .starts_with("GET /v2/app/tags/list: HTTP 503"),
        "{err}"
    );
}

#[tokio::test]
async fn paced_writes_never_reach_the_registry_faster_than_the_budget() {
    let registry = TestRegistry::start().await;
    let mut pushed = Vec::new();
    for _ in 0..12 {
        pushed.push(Image::oci("app").push(&registry).await);
    }
    let proxy = FlakyProxy::start(&registry.url).await;
    // 600 writes a minute: one every 100 ms, even with 8 deletes allowed in flight.
    let client = std::sync::Arc::new(client_with(
        &proxy.url,
        ClientOptions {
            in_flight: 8,
            max_writes_per_minute: Some(600),
            ..ClientOptions::default()
        },
    ));
    let mut handles = Vec::new();
    for p in &pushed {
        let (client, d) = (client.clone(), digest(&p.digest));
        handles.push(tokio::spawn(async move {
            client.delete_manifest("app", &d).await
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap(), Deleted::Removed);
    }
    let mut times: Vec<Instant> = proxy
        .log()
        .iter()
        .zip(proxy.arrived())
        .filter(|((method, _, _), _)| method == "DELETE")
        .map(|(_, t)| t)
        .collect();
    times.sort();
    assert_eq!(times.len(), 12, "{:?}", proxy.log());
    // The pace governs when a write starts, so arrivals are measured, not answers (a slow
    // answer followed by a quick one would bunch answers that were sent well apart). A busy
    // machine can still delay one arrival, never bring one forward, so only lower bounds are
    // asserted, with one interval of slack: any k+1 consecutive deletes arrive at least k-1
    // intervals apart. Unpaced, all 12 arrive within milliseconds.
    let interval = Duration::from_millis(100);
    for k in 2..times.len() {
        for i in 0..times.len() - k {
            let span = times[i + k] - times[i];
            assert!(
                span + interval >= interval * k as u32,
                "{} deletes arrived within {span:?}",
                k + 1
            );
        }
    }
}

#[tokio::test]
async fn no_request_runs_or_waits_past_the_cutoff() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let proxy = FlakyProxy::start(&registry.url).await;
    let cutoff = |ms| ClientOptions {
        retry: fast_retries(5),
        cutoff: Some(Instant::now() + Duration::from_millis(ms)),
        ..ClientOptions::default()
    };

    // A registry that does not answer: the request ends at the cutoff, not after 30 s.
    let hold = proxy.hold("GET", "/tags/list");
    let started = Instant::now();
    let err = client_with(&proxy.url, cutoff(400))
        .tags("app")
        .await
        .unwrap_err();
    assert!(err.is_out_of_time(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    hold.release();

    // A registry that says to come back in 2 s, after the cutoff: no retry, and the run's
    // time is up (without the cutoff, the retry would wait and succeed).
    proxy.inject("/tags/list", Fault::Status(429, Some("2")));
    let started = Instant::now();
    let err = client_with(&proxy.url, cutoff(1_000))
        .tags("app")
        .await
        .unwrap_err();
    assert!(err.is_out_of_time(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Past the cutoff nothing is sent at all.
    let before = proxy.log().len();
    let late = client_with(&proxy.url, cutoff(0));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(late.tags("app").await.unwrap_err().is_out_of_time());
    assert_eq!(proxy.log().len(), before);
}
