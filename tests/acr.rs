//! The `acr` backend against recorded responses shaped like ACR's published REST examples
//! (`tests/fixtures/acr/`), served from loopback. Where a test needs manifests, a real
//! registry stands behind the recorded `/acr/v1/` and `/oauth2/` answers.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use registry_janitor::registry::docker_config::Lookup;
use registry_janitor::registry::{
    ClientOptions, Credentials, Digest, Kind, OciClient, RetryPolicy, TagDeleted,
};
use support::acr::{Recorded, RecordedAcr};
use support::janitor::Janitor;
use support::{Image, TestRegistry};

const OLD: &str = "2025-01-01T00:00:00.0000000Z";

fn d(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

/// Fixture values for tags `v1` (old), `v2` (old, locked) and `v3` (a day old).
fn vars(digests: [&str; 4]) -> BTreeMap<&'static str, String> {
    let recent =
        (Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(SecondsFormat::Micros, true);
    BTreeMap::from([
        ("registry", "acrapi.azurecr-test.io".to_owned()),
        ("repository", "app".to_owned()),
        ("tag1", "v1".to_owned()),
        ("tag2", "v2".to_owned()),
        ("tag3", "v3".to_owned()),
        ("digest1", digests[0].to_owned()),
        ("digest2", digests[1].to_owned()),
        ("digest3", digests[2].to_owned()),
        ("untagged", digests[3].to_owned()),
        ("old", OLD.to_owned()),
        ("recent", recent),
        ("refresh_token", "acr-refresh-token-1".to_owned()),
        // A JWT whose `exp` is an hour away (ACR answers without `expires_in`).
        ("access_token", jwt(3600)),
    ])
}

fn fake_vars() -> BTreeMap<&'static str, String> {
    vars([&d(1), &d(2), &d(3), &d(4)])
}

fn jwt(seconds: i64) -> String {
    use base64::Engine as _;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let exp = Utc::now().timestamp() + seconds;
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#.into()),
        b64(format!(r#"{{"exp":{exp},"access":[]}}"#))
    )
}

fn acr_client(url: &str, options: ClientOptions) -> OciClient {
    OciClient::new(
        url,
        ClientOptions {
            kind: Some(Kind::Acr),
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
                max_retry_after: Duration::from_secs(5),
            },
            ..options
        },
    )
    .expect("client")
}

const OPAQUE_NEXT: &str = "/acr/v1/app/_tags?last=djJ8MjAyNS0wMS0wMQ%3D%3D&n=1000&orderby=";

/// ACR's 401 challenge for `scope`, then the fixture `name`: what a first request without a
/// token meets.
fn challenged_then(
    acr: &RecordedAcr,
    scope: &str,
    name: &str,
    vars: &BTreeMap<&str, String>,
) -> Vec<Recorded> {
    vec![
        acr.unauthorized(scope, vars),
        Recorded::fixture(200, name, vars),
    ]
}

/// The tag listing over two pages, the second named by an opaque `last`.
fn serve_tags(acr: &RecordedAcr, vars: &BTreeMap<&str, String>) {
    acr.on(
        "GET",
        "/acr/v1/app/_tags?n=1000",
        vec![Recorded::fixture(200, "GetTagList.page1.json", vars)
            .header("link", &format!("<{OPAQUE_NEXT}>; rel=\"next\""))],
    );
    acr.on(
        "GET",
        OPAQUE_NEXT,
        vec![Recorded::fixture(200, "GetTagList.page2.json", vars)],
    );
}

/// From now on the listings show only `v3`: the rest is gone.
fn serve_only_v3(acr: &RecordedAcr, vars: &BTreeMap<&str, String>) {
    acr.clear_routes();
    acr.on(
        "GET",
        "/acr/v1/app/_tags",
        vec![Recorded::fixture(200, "GetTagList.page2.json", vars)],
    );
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        vec![Recorded::fixture(200, "GetManifestList.single.json", vars)],
    );
}

#[tokio::test]
async fn tag_listing_follows_the_opaque_last_of_the_link_header() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    serve_tags(&acr, &vars);
    let client = acr_client(&acr.url, ClientOptions::default());

    let tags = client.acr_tags("app").await.expect("tags");
    let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["v1", "v2", "v3"]);
    assert!(!tags[0].changeable_attributes.locked());
    assert!(
        tags[1].changeable_attributes.locked(),
        "deleteEnabled false is a lock"
    );
    assert_eq!(tags[0].digest, d(1).parse::<Digest>().unwrap());
    assert_eq!(
        tags[0].last_update_time.unwrap().to_rfc3339(),
        "2025-01-01T00:00:00+00:00"
    );
    let pages: Vec<String> = acr
        .seen_at("GET", "/acr/v1/app/_tags")
        .into_iter()
        .map(|s| s.path)
        .collect();
    assert_eq!(
        pages,
        vec![
            "/acr/v1/app/_tags?n=1000".to_owned(),
            OPAQUE_NEXT.to_owned()
        ]
    );
}

#[tokio::test]
async fn manifest_listing_gives_times_sizes_and_locks_untagged_ones_included() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        vec![Recorded::fixture(200, "GetManifestList.json", &vars)],
    );
    let client = acr_client(&acr.url, ClientOptions::default());

    let manifests = client.acr_manifests("app").await.expect("manifests");
    assert_eq!(manifests.len(), 4);
    let untagged = &manifests[3];
    assert_eq!(untagged.digest, d(4).parse::<Digest>().unwrap());
    assert!(untagged.tags.is_empty());
    assert_eq!(untagged.image_size, Some(4135121));
    assert!(manifests[1].changeable_attributes.locked());
    assert!(!manifests[0].changeable_attributes.locked());
}

#[tokio::test]
async fn an_azure_ad_token_is_exchanged_once_and_traded_for_one_token_per_scope() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        challenged_then(&acr, "registry:catalog:*", "GetRepositoryList.json", &vars),
    );
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        challenged_then(
            &acr,
            "repository:app:metadata_read",
            "GetManifestList.json",
            &vars,
        ),
    );
    acr.on(
        "POST",
        "/oauth2/exchange",
        vec![Recorded::fixture(200, "PostRefreshToken.json", &vars)],
    );
    let access = Recorded::fixture(200, "PostAccessToken.json", &vars);
    acr.on(
        "POST",
        "/oauth2/token",
        // The third trade is refused: the refresh token expired, so it is exchanged again.
        vec![
            access.clone(),
            access.clone(),
            Recorded::fixture(401, "Error.UNAUTHORIZED.json", &vars),
            access,
        ],
    );
    acr.on(
        "GET",
        "/acr/v1/tools/builder/_manifests",
        challenged_then(
            &acr,
            "repository:tools/builder:metadata_read",
            "GetManifestList.json",
            &vars,
        ),
    );
    let client = acr_client(
        &acr.url,
        ClientOptions {
            aad_token: Some("aad-access-token".into()),
            ..ClientOptions::default()
        },
    );

    let repositories = client.repositories().await.expect("catalog");
    assert_eq!(repositories.items, vec!["app", "tools/builder"]);
    client.acr_manifests("app").await.expect("manifests");

    let exchanges = acr.seen_at("POST", "/oauth2/exchange");
    assert_eq!(exchanges.len(), 1, "the refresh token is reused");
    client
        .acr_manifests("tools/builder")
        .await
        .expect("manifests after a refused refresh token");
    assert_eq!(acr.seen_at("POST", "/oauth2/exchange").len(), 2);
    let form = &exchanges[0].body;
    assert!(form.contains("grant_type=access_token"), "{form}");
    assert!(form.contains("access_token=aad-access-token"), "{form}");
    assert!(form.contains("service=acrapi.azurecr-test.io"), "{form}");
    let tokens = acr.seen_at("POST", "/oauth2/token");
    assert_eq!(
        tokens.len(),
        4,
        "catalog, app, then builder twice around the re-exchange"
    );
    assert!(tokens[0].body.contains("grant_type=refresh_token"));
    assert!(tokens[0].body.contains("refresh_token=acr-refresh-token-1"));
    assert!(
        tokens[0].body.contains("scope=registry%3Acatalog%3A*"),
        "{}",
        tokens[0].body
    );
    // One token covers everything the janitor does in a repository.
    assert!(
        tokens[1]
            .body
            .contains("scope=repository%3Aapp%3Apull%2Cdelete%2Cmetadata_read"),
        "{}",
        tokens[1].body
    );
    let listed = acr.seen_at("GET", "/acr/v1/_catalog");
    assert_eq!(
        listed[1].authorization.as_deref(),
        Some(format!("Bearer {}", vars["access_token"]).as_str())
    );
    assert!(
        acr.seen().iter().all(|s| !s
            .authorization
            .as_deref()
            .unwrap_or("")
            .contains("aad-access-token")),
        "the Azure AD token went to the registry API"
    );
}

#[tokio::test]
async fn admin_credentials_get_an_access_token_and_a_refused_token_is_replaced() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    let catalog = Recorded::fixture(200, "GetRepositoryList.json", &vars);
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        // Second call: the cached token is refused (revoked), and a fresh one works.
        vec![
            acr.unauthorized("registry:catalog:*", &vars),
            catalog.clone(),
            acr.unauthorized("registry:catalog:*", &vars),
            catalog,
        ],
    );
    acr.on(
        "GET",
        "/oauth2/token",
        vec![Recorded::fixture(200, "PostAccessToken.json", &vars)],
    );
    let client = acr_client(
        &acr.url,
        ClientOptions {
            credentials: Some(Credentials {
                username: "myregistry".into(),
                password: "admin-password".into(),
            }),
            ..ClientOptions::default()
        },
    );

    client.repositories().await.expect("first listing");
    client
        .repositories()
        .await
        .expect("second listing, after a 401");
    let tokens = acr.seen_at("GET", "/oauth2/token");
    assert_eq!(tokens.len(), 2, "one token, then a fresh one after the 401");
    assert!(tokens[0]
        .authorization
        .as_deref()
        .unwrap_or("")
        .starts_with("Basic "));
    assert!(
        tokens[0].path.contains("service=acrapi.azurecr-test.io"),
        "{}",
        tokens[0].path
    );
    let listed = acr.seen_at("GET", "/acr/v1/_catalog");
    assert_eq!(listed.len(), 4);
    assert_eq!(
        listed[2].authorization, listed[1].authorization,
        "the cached token was sent first"
    );
}

#[tokio::test]
async fn too_many_requests_waits_as_long_as_acr_asks() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        vec![
            Recorded::fixture(429, "Error.TOOMANYREQUESTS.json", &vars).header("retry-after", "1"),
            Recorded::fixture(200, "GetManifestList.json", &vars),
        ],
    );
    let client = acr_client(&acr.url, ClientOptions::default());
    let started = Instant::now();
    let manifests = client
        .acr_manifests("app")
        .await
        .expect("manifests after a 429");
    assert_eq!(manifests.len(), 4);
    assert_eq!(acr.seen_at("GET", "/acr/v1/app/_manifests").len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "did not wait for Retry-After"
    );
}

#[tokio::test]
async fn a_lock_is_a_typed_error_and_tags_are_deleted_through_acr_v1() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    let digest: Digest = d(2).parse().unwrap();
    acr.on(
        "DELETE",
        &format!("/v2/app/manifests/{digest}"),
        vec![Recorded::fixture(
            405,
            "Error.REGISTRY_DISALLOWED_OPERATION.json",
            &vars,
        )],
    );
    acr.on("DELETE", "/acr/v1/app/_tags/v3", vec![Recorded::empty(202)]);
    acr.on(
        "DELETE",
        "/acr/v1/app/_tags/v2",
        vec![Recorded::fixture(
            405,
            "Error.REGISTRY_DISALLOWED_OPERATION.json",
            &vars,
        )],
    );
    let client = acr_client(&acr.url, ClientOptions::default());

    let err = client
        .delete_manifest("app", &digest)
        .await
        .expect_err("locked");
    assert!(err.is_locked(), "{err}");
    assert!(err.to_string().contains("locked in the registry"), "{err}");
    assert_eq!(
        client.delete_tag("app", "v3").await.expect("tag delete"),
        TagDeleted::Removed
    );
    assert!(client
        .delete_tag("app", "v2")
        .await
        .expect_err("locked tag")
        .is_locked());
    assert!(
        acr.seen_at("DELETE", "/v2/app/manifests/v3").is_empty(),
        "tag deleted through /v2"
    );
}

/// A real registry with `v1` (old), `v2` (old, locked), `v3` (recent) and an untagged old
/// manifest, behind recorded ACR listings that describe them.
async fn acr_over_real_registry() -> (TestRegistry, RecordedAcr, [support::Pushed; 4]) {
    let registry = TestRegistry::start().await;
    let v1 = Image::oci("app").tag("v1").push(&registry).await;
    let v2 = Image::oci("app").tag("v2").push(&registry).await;
    let v3 = Image::oci("app").tag("v3").push(&registry).await;
    let untagged = Image::oci("app").push(&registry).await;
    let acr = RecordedAcr::start(Some(&registry.url)).await;
    let vars = vars([&v1.digest, &v2.digest, &v3.digest, &untagged.digest]);
    serve_tags(&acr, &vars);
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        vec![Recorded::fixture(200, "GetManifestList.json", &vars)],
    );
    (registry, acr, [v1, v2, v3, untagged])
}

const POLICY: &str = r#"{"rules":[
    {"name":"old","select":"tagged","tags":".*","older_than":"30d"},
    {"name":"dangling","select":"untagged","older_than":"7d"}]}"#;

#[tokio::test]
async fn acr_sweep_ages_by_registry_timestamps_and_keeps_locked_tags() {
    let (registry, acr, [v1, v2, v3, untagged]) = acr_over_real_registry().await;
    let janitor = Janitor::for_url(&acr.url);

    // A first sweep, with an empty inventory: ACR's own listing and timestamps find the old untagged manifest.
    let done = janitor
        .apply(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let mut deleted = done.deleted("app");
    deleted.sort();
    let mut want = vec![v1.digest.clone(), untagged.digest.clone()];
    want.sort();
    assert_eq!(deleted, want);
    assert!(done
        .kept_reason("app", &v2.digest)
        .unwrap()
        .contains("locked"));
    assert!(done.kept_reason("app", &v3.digest).is_some());
    assert!(!registry.has_manifest("app", &v1.digest).await);
    assert!(!registry.has_manifest("app", &untagged.digest).await);
    assert!(registry.has_manifest("app", &v2.digest).await);
    assert!(registry.has_manifest("app", &v3.digest).await);
    // One GET per distinct digest, and no HEAD per tag: the listing names every digest.
    let gets = acr
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.starts_with("/v2/app/manifests/"))
        .count();
    assert_eq!(gets, 4);
    assert!(
        acr.seen().iter().all(|s| s.method != "HEAD"),
        "{:?}",
        acr.seen()
    );

    // v2 is deleted behind our back. The inventory remembers it, and the listing, which is
    // whole, says it is gone: no HEAD to find out.
    let before = acr.seen().len();
    let vars = vars([&v1.digest, &v2.digest, &v3.digest, &untagged.digest]);
    serve_only_v3(&acr, &vars);
    let again = janitor
        .plan(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let new: Vec<_> = acr.seen().into_iter().skip(before).collect();
    assert!(new.iter().all(|s| s.method != "HEAD"), "{new:?}");
    let state = std::fs::read_to_string(janitor.state()).expect("state file");
    assert!(
        !state.contains(&v2.digest),
        "the inventory still remembers v2"
    );
    assert!(state.contains(&v3.digest));
}

#[tokio::test]
async fn a_delete_refused_for_a_lock_is_reported_as_kept_not_as_a_failure() {
    let (registry, acr, [v1, ..]) = acr_over_real_registry().await;
    let vars = fake_vars();
    acr.on(
        "DELETE",
        &format!("/v2/app/manifests/{}", v1.digest),
        vec![Recorded::fixture(
            405,
            "Error.REGISTRY_DISALLOWED_OPERATION.json",
            &vars,
        )],
    );
    let janitor = Janitor::for_url(&acr.url);
    let done = janitor
        .apply(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(done.code, 0, "a lock is not a failure: {}", done.stdout);
    assert!(!done.deleted("app").contains(&v1.digest));
    assert!(done
        .kept_reason("app", &v1.digest)
        .unwrap()
        .contains("locked"));
    assert!(registry.has_manifest("app", &v1.digest).await);
}

#[tokio::test]
async fn repository_and_tag_delete_use_acr_v1() {
    let (registry, acr, [v1, v2, v3, untagged]) = acr_over_real_registry().await;
    acr.on("DELETE", "/acr/v1/app", vec![Recorded::empty(202)]);
    acr.on("DELETE", "/acr/v1/app/_tags/v3", vec![Recorded::empty(202)]);
    let janitor = Janitor::for_url(&acr.url);

    let tag = janitor
        .op(&["tag", "delete"], &["--kind", "acr", "app:v3", "--yes"])
        .await;
    assert_eq!(tag.code, 0, "{}\n{}", tag.stdout, tag.stderr);
    assert_eq!(acr.seen_at("DELETE", "/acr/v1/app/_tags/v3").len(), 1);

    let locked = janitor
        .op(&["tag", "delete"], &["--kind", "acr", "app:v2", "--yes"])
        .await;
    assert_eq!(locked.code, 1);
    assert!(locked.stderr.contains("locked"), "{}", locked.stderr);

    let repo = janitor
        .op(
            &["repository", "delete"],
            &["--kind", "acr", "--repository", "app", "--yes"],
        )
        .await;
    // v2 is locked, so the repository cannot go in one call; the rest is deleted by digest.
    assert_eq!(repo.code, 0, "{}\n{}", repo.stdout, repo.stderr);
    assert!(repo.stdout.contains("stays"), "{}", repo.stdout);
    assert!(acr.seen_at("DELETE", "/acr/v1/app").is_empty());
    for gone in [&v1.digest, &v3.digest, &untagged.digest] {
        assert!(!registry.has_manifest("app", gone).await, "{gone} survived");
    }
    assert!(
        registry.has_manifest("app", &v2.digest).await,
        "the locked v2 was deleted"
    );

    // Nothing locked: one call deletes the repository.
    let (registry, acr, [_, _, v3, _]) = acr_over_real_registry().await;
    let vars = vars([&d(1), &d(2), &v3.digest, &d(4)]);
    serve_only_v3(&acr, &vars);
    acr.on("DELETE", "/acr/v1/app", vec![Recorded::empty(202)]);
    let janitor = Janitor::for_url(&acr.url);
    let repo = janitor
        .op(
            &["repository", "delete"],
            &["--kind", "acr", "--repository", "app", "--yes"],
        )
        .await;
    assert_eq!(repo.code, 0, "{}\n{}", repo.stdout, repo.stderr);
    assert!(
        repo.stdout.contains("Deleted the repository app"),
        "{}",
        repo.stdout
    );
    assert_eq!(acr.seen_at("DELETE", "/acr/v1/app").len(), 1);
    assert!(acr
        .seen()
        .iter()
        .all(|s| !(s.method == "DELETE" && s.path.starts_with("/v2/"))));
    assert!(
        registry.has_manifest("app", &v3.digest).await,
        "the recorded 202 changed nothing real"
    );
}

const POLICY_WITH_LOCKED: &str = r#"{"rules":[
    {"name":"old","select":"tagged","tags":".*","older_than":"30d"}],
    "protect":{"include_locked":true}}"#;

#[tokio::test]
async fn locked_manifests_are_unlocked_only_with_the_unlock_flag() {
    let (registry, acr, [_, v2, ..]) = acr_over_real_registry().await;
    let vars = fake_vars();
    let manifest_path = format!("/acr/v1/app/_manifests/{}", v2.digest);
    acr.on("PATCH", "/acr/v1/app/_tags/v2", vec![Recorded::empty(200)]);
    acr.on("PATCH", &manifest_path, vec![Recorded::empty(200)]);
    let janitor = Janitor::for_url(&acr.url);

    // Selected (include_locked), but without --unlock the registry's refusal stands.
    acr.on(
        "DELETE",
        &format!("/v2/app/manifests/{}", v2.digest),
        vec![Recorded::fixture(
            405,
            "Error.REGISTRY_DISALLOWED_OPERATION.json",
            &vars,
        )],
    );
    let refused = janitor
        .apply(
            POLICY_WITH_LOCKED,
            &["--kind", "acr", "--repository", "app"],
        )
        .await;
    assert_eq!(refused.code, 0, "{}", refused.stdout);
    assert!(refused
        .kept_reason("app", &v2.digest)
        .unwrap()
        .contains("locked"));
    assert!(
        acr.seen().iter().all(|s| s.method != "PATCH"),
        "unlocked without --unlock"
    );
    assert!(registry.has_manifest("app", &v2.digest).await);

    // With --unlock: the tag and the manifest are unlocked first, then the manifest goes.
    let (registry, acr, [_, v2, ..]) = acr_over_real_registry().await;
    let manifest_path = format!("/acr/v1/app/_manifests/{}", v2.digest);
    acr.on("PATCH", "/acr/v1/app/_tags/v2", vec![Recorded::empty(200)]);
    acr.on("PATCH", &manifest_path, vec![Recorded::empty(200)]);
    let janitor = Janitor::for_url(&acr.url);
    let done = janitor
        .apply(
            POLICY_WITH_LOCKED,
            &["--kind", "acr", "--repository", "app", "--unlock"],
        )
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert!(done.deleted("app").contains(&v2.digest));
    assert!(!registry.has_manifest("app", &v2.digest).await);
    let log = acr.seen();
    let at = |method: &str, path: &str| {
        log.iter()
            .position(|s| s.method == method && s.path == path)
    };
    let unlocked = at("PATCH", &manifest_path).expect("manifest unlocked");
    assert!(
        at("PATCH", "/acr/v1/app/_tags/v2").is_some(),
        "tag unlocked"
    );
    assert!(log[unlocked].body.contains(r#""deleteEnabled":true"#));
    assert!(unlocked < at("DELETE", &format!("/v2/app/manifests/{}", v2.digest)).unwrap());
    assert!(
        done.stderr.contains("unlock"),
        "the unlock is logged: {}",
        done.stderr
    );
}

#[tokio::test]
async fn listings_that_lack_their_array_or_disagree_delete_nothing() {
    let (registry, acr, [v1, v2, v3, untagged]) = acr_over_real_registry().await;
    let vars = vars([&v1.digest, &v2.digest, &v3.digest, &untagged.digest]);
    let janitor = Janitor::for_url(&acr.url);

    // A 200 without the `tags` array is not "no tags".
    acr.clear_routes();
    acr.on(
        "GET",
        "/acr/v1/app/_tags",
        vec![Recorded {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"registry":"acrapi.azurecr-test.io","imageName":"app"}"#.into(),
        }],
    );
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        vec![Recorded::fixture(200, "GetManifestList.json", &vars)],
    );
    let out = janitor
        .apply(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.deleted("app").is_empty());
    assert!(out.stdout.contains("no `tags` field"), "{}", out.stdout);

    // The tag listing stops after page 1 (v3 missing) while the manifests still name v3.
    acr.clear_routes();
    acr.on(
        "GET",
        "/acr/v1/app/_tags",
        vec![Recorded::fixture(200, "GetTagList.page1.json", &vars)],
    );
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        vec![Recorded::fixture(200, "GetManifestList.json", &vars)],
    );
    let out = janitor
        .apply(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.deleted("app").is_empty());
    assert!(
        out.stdout.contains("listings disagree about tag v3"),
        "{}",
        out.stdout
    );
    for d in [&v1.digest, &v3.digest, &untagged.digest] {
        assert!(registry.has_manifest("app", d).await);
    }
}

#[tokio::test]
async fn the_azure_ad_token_goes_only_to_the_registry_host() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    // The challenge names a token service on another host name (same server, so a request
    // would show up in the log).
    let elsewhere = acr.url.replace("127.0.0.1", "localhost");
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        vec![Recorded::fixture(401, "Error.UNAUTHORIZED.json", &vars).header(
            "www-authenticate",
            &format!(
                "Bearer realm=\"{elsewhere}/oauth2/token\",service=\"acrapi.azurecr-test.io\",scope=\"registry:catalog:*\""
            ),
        )],
    );
    let client = acr_client(
        &acr.url,
        ClientOptions {
            aad_token: Some("aad-access-token".into()),
            ..ClientOptions::default()
        },
    );
    let err = client.repositories().await.expect_err("refused");
    assert!(
        err.to_string()
            .contains("refusing to send it the Azure AD token"),
        "{err}"
    );
    assert!(!err.to_string().contains("aad-access-token"));
    assert!(
        acr.seen().iter().all(|s| s.method != "POST"),
        "{:?}",
        acr.seen()
    );
}

#[tokio::test]
async fn the_catalog_follows_its_link_pages() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let mut vars = fake_vars();
    let next = "/acr/v1/_catalog?last=b3BhcXVl&n=1000";
    acr.on(
        "GET",
        "/acr/v1/_catalog?n=1000",
        vec![Recorded::fixture(200, "GetRepositoryList.json", &vars)
            .header("link", &format!("<{next}>; rel=\"next\""))],
    );
    vars.insert("repository", "web".to_owned());
    acr.on(
        "GET",
        next,
        vec![Recorded::fixture(200, "GetRepositoryList.json", &vars)],
    );
    let client = acr_client(&acr.url, ClientOptions::default());
    let listing = client.repositories().await.expect("catalog");
    assert_eq!(
        listing.items,
        vec!["app", "tools/builder", "web", "tools/builder"]
    );
    assert_eq!(listing.pages, 2);
}

#[tokio::test]
async fn purge_include_locked_lifts_a_tag_lock_before_it_untags() {
    let (registry, acr, [_, v2, ..]) = acr_over_real_registry().await;
    acr.on("PATCH", "/acr/v1/app/_tags/v2", vec![Recorded::empty(200)]);
    acr.on("DELETE", "/acr/v1/app/_tags/v2", vec![Recorded::empty(202)]);
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        vec![Recorded::fixture(
            200,
            "GetRepositoryList.json",
            &fake_vars(),
        )],
    );
    let janitor = Janitor::for_url(&acr.url);
    // Without --untagged, purge only untags: the locked v2 loses its tag, its manifest stays.
    let done = janitor
        .op(
            &["purge"],
            &[
                "--kind",
                "acr",
                "--filter",
                "app:v2",
                "--ago",
                "1d",
                "--include-locked",
                "--yes",
                "--format",
                "json",
            ],
        )
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let untags = done.entries("app", "untag");
    assert_eq!(untags.len(), 1, "{}", done.stdout);
    assert_eq!(untags[0]["tag"], "v2");
    assert!(untags[0].get("error").is_none(), "{untags:?}");
    let log = acr.seen();
    let at = |method: &str, path: &str| {
        log.iter()
            .position(|s| s.method == method && s.path == path)
    };
    let unlocked = at("PATCH", "/acr/v1/app/_tags/v2").expect("the tag's lock was not lifted");
    assert!(unlocked < at("DELETE", "/acr/v1/app/_tags/v2").expect("tag deleted"));
    assert!(
        log.iter()
            .all(|s| !(s.method == "PATCH" && s.path.contains("/_manifests/"))),
        "the manifest was unlocked, though it stays"
    );
    assert!(registry.has_manifest("app", &v2.digest).await);
}

/// The two listings must agree that a repository is not there: one saying NAME_UNKNOWN while
/// the other lists it is a registry in trouble, and deletes nothing. Both saying it is
/// "nothing there", not a failure.
#[tokio::test]
async fn listings_that_disagree_about_whether_a_repository_exists_delete_nothing() {
    let (registry, acr, [v1, v2, v3, untagged]) = acr_over_real_registry().await;
    let vars = vars([&v1.digest, &v2.digest, &v3.digest, &untagged.digest]);
    let unknown = Recorded::fixture(404, "Error.NAME_UNKNOWN.json", &vars);
    acr.clear_routes();
    serve_tags(&acr, &vars);
    acr.on("GET", "/acr/v1/app/_manifests", vec![unknown.clone()]);
    let janitor = Janitor::for_url(&acr.url);

    let out = janitor
        .apply(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let json = out.json();
    let app = &json["repositories"][0];
    assert_eq!(app["complete"], false, "{app}");
    assert!(
        app["error"]
            .as_str()
            .unwrap()
            .contains("the other lists it"),
        "{app}"
    );
    assert!(app.get("absent").is_none());
    assert!(out.deleted("app").is_empty());
    assert!(registry.has_manifest("app", &v1.digest).await);

    acr.clear_routes();
    acr.on("GET", "/acr/v1/app/_tags", vec![unknown.clone()]);
    acr.on("GET", "/acr/v1/app/_manifests", vec![unknown]);
    let gone = Janitor::for_url(&acr.url);
    let out = gone
        .apply(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let json = out.json();
    assert!(json["repositories"][0]["absent"]
        .as_str()
        .unwrap()
        .contains("NAME_UNKNOWN"));
    assert_eq!(json["summary"]["repositories_absent"], 1);
}

/// What `az acr login --name myregistry` leaves in docker's config: the null user and an ACR
/// refresh token as `identitytoken`. The lookup a CLI run would make for the stand-in's host.
fn az_acr_login(dir: &std::path::Path, acr: &RecordedAcr, token: &str) -> Lookup {
    use base64::Engine as _;
    let host = acr.url.trim_start_matches("http://").to_owned();
    let null_user =
        base64::engine::general_purpose::STANDARD.encode("00000000-0000-0000-0000-000000000000:");
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{null_user}","identitytoken":"{token}"}}}}}}"#),
    )
    .unwrap();
    Lookup {
        path,
        host,
        helper_timeout: Duration::from_secs(5),
    }
}

/// A client that takes its credentials from `lookup`, as the CLI does.
fn logged_in(acr: &RecordedAcr, lookup: &Lookup) -> OciClient {
    acr_client(
        &acr.url,
        ClientOptions {
            credentials: lookup.read().expect("docker config"),
            credential_source: Some(lookup.clone()),
            ..ClientOptions::default()
        },
    )
}

#[tokio::test]
async fn an_identity_token_from_az_acr_login_is_traded_once_per_repository_scope() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        challenged_then(&acr, "registry:catalog:*", "GetRepositoryList.json", &vars),
    );
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        challenged_then(
            &acr,
            "repository:app:metadata_read",
            "GetManifestList.json",
            &vars,
        ),
    );
    acr.on(
        "POST",
        "/oauth2/token",
        vec![Recorded::fixture(200, "PostAccessToken.json", &vars)],
    );
    let dir = tempfile::tempdir().unwrap();
    let client = logged_in(&acr, &az_acr_login(dir.path(), &acr, "identity-from-az-1"));

    client.repositories().await.expect("catalog");
    client.acr_manifests("app").await.expect("manifests");
    client.acr_manifests("app").await.expect("manifests again");

    let trades = acr.seen_at("POST", "/oauth2/token");
    assert_eq!(trades.len(), 2, "one per scope: the catalog, then app");
    for t in &trades {
        assert!(t.body.contains("grant_type=refresh_token"), "{}", t.body);
        assert!(
            t.body.contains("refresh_token=identity-from-az-1"),
            "{}",
            t.body
        );
    }
    assert!(
        trades[1].body.contains("scope=repository%3Aapp%3A"),
        "{}",
        trades[1].body
    );
    assert!(acr.seen_at("POST", "/oauth2/exchange").is_empty());
    assert!(
        acr.seen_at("GET", "/oauth2/token").is_empty(),
        "sent as a password"
    );
    assert!(
        acr.seen().iter().all(|s| !s
            .authorization
            .as_deref()
            .unwrap_or("")
            .contains("identity-from-az-1")),
        "the identity token went to the registry API"
    );
}

#[tokio::test]
async fn a_refused_identity_token_says_to_log_in_again_and_is_never_shown() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        vec![acr.unauthorized("registry:catalog:*", &vars)],
    );
    acr.on(
        "POST",
        "/oauth2/token",
        vec![Recorded::fixture(401, "Error.UNAUTHORIZED.json", &vars)],
    );
    let dir = tempfile::tempdir().unwrap();
    let client = logged_in(&acr, &az_acr_login(dir.path(), &acr, "identity-expired-2"));

    let err = client.repositories().await.expect_err("refused");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("az acr login"), "{shown}");
    assert!(!shown.contains("identity-expired-2"), "{shown}");
    // Docker's config was read again, said the same, and the credentials are spent.
    assert_eq!(acr.seen_at("POST", "/oauth2/token").len(), 1);
    assert!(registry_janitor::registry::Backend::credentials_spent(
        &client
    ));
}

#[tokio::test]
async fn an_identity_token_that_expires_midway_is_read_again_and_the_run_carries_on() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        challenged_then(&acr, "registry:catalog:*", "GetRepositoryList.json", &vars),
    );
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        challenged_then(
            &acr,
            "repository:app:metadata_read",
            "GetManifestList.json",
            &vars,
        ),
    );
    let access = Recorded::fixture(200, "PostAccessToken.json", &vars);
    acr.on(
        "POST",
        "/oauth2/token",
        // The second trade is refused: three hours are up (ABAC registries, acr-cli #641).
        vec![
            access.clone(),
            Recorded::fixture(401, "Error.UNAUTHORIZED.json", &vars),
            access,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let client = logged_in(&acr, &az_acr_login(dir.path(), &acr, "identity-first-3h"));
    client.repositories().await.expect("catalog");
    // Meanwhile the user ran `az acr login` again.
    az_acr_login(dir.path(), &acr, "identity-after-login");

    client
        .acr_manifests("app")
        .await
        .expect("manifests with the new token");
    let trades: Vec<String> = acr
        .seen_at("POST", "/oauth2/token")
        .into_iter()
        .map(|t| t.body)
        .collect();
    assert_eq!(trades.len(), 3, "{trades:?}");
    assert!(trades[0].contains("refresh_token=identity-first-3h"));
    assert!(trades[1].contains("refresh_token=identity-first-3h"));
    assert!(trades[2].contains("refresh_token=identity-after-login"));
    assert!(!registry_janitor::registry::Backend::credentials_spent(
        &client
    ));
}

#[tokio::test]
async fn the_identity_token_goes_only_to_the_registry_host() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    let elsewhere = acr.url.replace("127.0.0.1", "localhost");
    acr.on(
        "GET",
        "/acr/v1/_catalog",
        vec![Recorded::fixture(401, "Error.UNAUTHORIZED.json", &vars).header(
            "www-authenticate",
            &format!(
                "Bearer realm=\"{elsewhere}/oauth2/token\",service=\"acrapi.azurecr-test.io\",scope=\"registry:catalog:*\""
            ),
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let client = logged_in(&acr, &az_acr_login(dir.path(), &acr, "identity-stays-home"));
    let err = client.repositories().await.expect_err("refused");
    assert!(
        err.to_string()
            .contains("refusing to send it the identity token"),
        "{err}"
    );
    assert!(!err.to_string().contains("identity-stays-home"));
    assert!(
        acr.seen().iter().all(|s| s.method != "POST"),
        "{:?}",
        acr.seen()
    );
}

#[tokio::test]
async fn a_plan_right_after_az_acr_login_authenticates_through_the_cli() {
    let (_registry, acr, [v1, v2, v3, untagged]) = acr_over_real_registry().await;
    let vars = vars([&v1.digest, &v2.digest, &v3.digest, &untagged.digest]);
    acr.clear_routes();
    acr.on(
        "GET",
        "/acr/v1/app/_tags?n=1000",
        vec![
            acr.unauthorized("repository:app:metadata_read", &vars),
            Recorded::fixture(200, "GetTagList.page1.json", &vars)
                .header("link", &format!("<{OPAQUE_NEXT}>; rel=\"next\"")),
        ],
    );
    acr.on(
        "GET",
        OPAQUE_NEXT,
        vec![Recorded::fixture(200, "GetTagList.page2.json", &vars)],
    );
    acr.on(
        "GET",
        "/acr/v1/app/_manifests",
        vec![Recorded::fixture(200, "GetManifestList.json", &vars)],
    );
    acr.on(
        "POST",
        "/oauth2/token",
        vec![Recorded::fixture(200, "PostAccessToken.json", &vars)],
    );
    let janitor = Janitor::for_url(&acr.url);
    let docker = janitor.dir.path().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    az_acr_login(&docker, &acr, "identity-for-the-cli");

    let out = janitor
        .plan(POLICY, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["repositories"][0]["complete"], true);
    let trades = acr.seen_at("POST", "/oauth2/token");
    assert_eq!(trades.len(), 1);
    assert!(trades[0]
        .body
        .contains("refresh_token=identity-for-the-cli"));
    assert!(
        !out.stdout.contains("identity-for-the-cli")
            && !out.stderr.contains("identity-for-the-cli")
    );
}

/// A token service that refuses one scope (403: a repository the identity may not read) is
/// not refusing the credentials: they are not asked for again, not spent, and the next
/// repository is read as before.
#[tokio::test]
async fn a_scope_refused_by_the_token_service_spends_nothing() {
    support::init();
    let acr = RecordedAcr::start(None).await;
    let vars = fake_vars();
    for (path, scope) in [
        ("/acr/v1/app/_manifests", "repository:app:metadata_read"),
        (
            "/acr/v1/tools/builder/_manifests",
            "repository:tools/builder:metadata_read",
        ),
    ] {
        acr.on(
            "GET",
            path,
            challenged_then(&acr, scope, "GetManifestList.json", &vars),
        );
    }
    let access = Recorded::fixture(200, "PostAccessToken.json", &vars);
    acr.on(
        "POST",
        "/oauth2/token",
        vec![
            Recorded::fixture(403, "Error.UNAUTHORIZED.json", &vars),
            access,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let client = logged_in(&acr, &az_acr_login(dir.path(), &acr, "identity-abac"));

    let err = client.acr_manifests("app").await.expect_err("refused");
    assert!(err.to_string().contains("may not have"), "{err}");
    assert!(!registry_janitor::registry::Backend::credentials_spent(
        &client
    ));
    client
        .acr_manifests("tools/builder")
        .await
        .expect("the next repository");
    assert_eq!(
        acr.seen_at("POST", "/oauth2/token").len(),
        2,
        "no retry of the 403"
    );
}

#[tokio::test]
async fn the_trash_removes_tags_through_acr_v1_and_keeps_what_a_lock_holds() {
    let (registry, acr, [v1, v2, _, untagged]) = acr_over_real_registry().await;
    acr.on("DELETE", "/acr/v1/app/_tags/v1", vec![Recorded::empty(202)]);
    let janitor = Janitor::for_url(&acr.url);
    let policy = r#"{"rules":[
        {"name":"old","select":"tagged","tags":".*","older_than":"30d"},
        {"name":"dangling","select":"untagged","older_than":"7d"}],
        "trash":{"keep_for":"7d"}}"#;

    let done = janitor
        .apply(policy, &["--kind", "acr", "--repository", "app"])
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_eq!(
        done.json()["summary"]["manifests_trashed"],
        2,
        "{}",
        done.stdout
    );
    assert_eq!(done.json()["summary"]["manifests_deleted"], 0);
    // The locked v2 is kept, not trashed, as without a trash.
    assert!(done
        .kept_reason("app", &v2.digest)
        .unwrap()
        .contains("locked"));
    // One push of the trash, one ACR tag delete for v1, and no manifest delete at all.
    let seen = acr.seen();
    let pushes: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "PUT")
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert!(
        pushes[0].starts_with("/v2/app/manifests/janitor-trash-"),
        "{pushes:?}"
    );
    assert_eq!(acr.seen_at("DELETE", "/acr/v1/app/_tags/v1").len(), 1);
    assert!(
        seen.iter()
            .all(|s| !(s.method == "DELETE" && s.path.starts_with("/v2/"))),
        "{seen:?}"
    );
    // The trash index, in the registry behind, holds v1 with its tag and the untagged one.
    let tag = pushes[0].trim_start_matches("/v2/app/manifests/");
    let index: serde_json::Value =
        serde_json::from_slice(&registry.manifest_body("app", tag).await).unwrap();
    let mut held: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let tags = m["annotations"]["dev.registry-janitor.trash.tags"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            (m["digest"].as_str().unwrap().to_owned(), tags)
        })
        .collect();
    held.sort();
    let mut want = vec![
        (v1.digest.clone(), r#"["v1"]"#.to_owned()),
        (untagged.digest.clone(), String::new()),
    ];
    want.sort();
    assert_eq!(held, want);
    assert!(registry.has_manifest("app", &v1.digest).await);
    assert!(registry.has_manifest("app", &untagged.digest).await);
}
