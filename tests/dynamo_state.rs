//! The DynamoDB inventory against a `moto` server, through the real AWS SDK: what a sweep
//! remembers, and two sweeps racing on one repository.

mod support;

use chrono::{DateTime, Utc};
use registry_janitor::policy::Policy;
use registry_janitor::registry::{ClientOptions, Digest, OciClient};
use registry_janitor::state::{DynamoState, Remembered, StateStore};
use registry_janitor::sweep::Sweeper;
use support::moto::Moto;
use support::{Image, TestRegistry};

const POLICY: &str = r#"{"rules":[{"name":"dangling","select":"untagged","older_than":"1d"}]}"#;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn sweep_once(client: &OciClient, store: &mut DynamoState, policy: &Policy, now: &str) {
    let mut sweeper = Sweeper::new(client, policy, store, t(now)).concurrency(4);
    sweeper
        .run(&["app".to_owned()], false, |_, _, _| {})
        .await
        .unwrap();
}

/// moto with an inventory table, a registry whose `app:v1` is `first`, and a client.
struct Setup {
    _moto: Moto,
    dynamo: aws_sdk_dynamodb::Client,
    registry: TestRegistry,
    first: support::Pushed,
    client: OciClient,
    policy: Policy,
}

async fn setup() -> Setup {
    let moto = Moto::start().await;
    moto.create_inventory_table("inv").await;
    let dynamo = aws_sdk_dynamodb::Client::new(&moto.sdk().await);
    let registry = TestRegistry::start().await;
    let first = Image::oci("app").tag("v1").push(&registry).await;
    let client = OciClient::new(&registry.url, ClientOptions::default()).unwrap();
    let policy = Policy::from_json(POLICY).unwrap();
    Setup {
        _moto: moto,
        dynamo,
        registry,
        first,
        client,
        policy,
    }
}

#[tokio::test]
async fn racing_sweeps_agree_and_the_untagged_clock_is_never_moved_later() {
    let Setup {
        _moto,
        dynamo,
        registry,
        first,
        client,
        policy,
    } = setup().await;
    let host = registry.host();

    let mut seed = DynamoState::new(dynamo.clone(), "inv", &host);
    sweep_once(&client, &mut seed, &policy, "2030-01-01T00:00:00Z").await;
    Image::oci("app").tag("v1").push(&registry).await;

    // Two sweeps, as two invocations would be, both seeing the manifest untagged first.
    let mut a = DynamoState::new(dynamo.clone(), "inv", &host);
    let mut b = DynamoState::new(dynamo.clone(), "inv", &host);
    tokio::join!(
        sweep_once(&client, &mut a, &policy, "2030-01-02T00:00:00Z"),
        sweep_once(&client, &mut b, &policy, "2030-01-03T00:00:00Z"),
    );
    let mut reader = DynamoState::new(dynamo.clone(), "inv", &host);
    let inventory = reader.load("app").await.unwrap();
    let digest: Digest = first.digest.parse().unwrap();
    let since = inventory.manifests[&digest]
        .untagged_since
        .expect("untagged clock started");
    assert!(
        since == t("2030-01-02T00:00:00Z") || since == t("2030-01-03T00:00:00Z"),
        "{since}"
    );

    // A later sweep never moves the clock, and the facts survive the round trip.
    let mut later = DynamoState::new(dynamo.clone(), "inv", &host);
    sweep_once(&client, &mut later, &policy, "2030-01-09T00:00:00Z").await;
    let again = reader.load("app").await.unwrap();
    assert_eq!(again.manifests[&digest].untagged_since, Some(since));
    assert!(again.manifests[&digest].facts.is_some());
    assert_eq!(again.manifests.len(), 2);
}

#[tokio::test]
async fn forgotten_digests_get_a_ttl_and_leave_the_inventory() {
    let Setup {
        _moto,
        dynamo,
        registry,
        first,
        client,
        policy,
    } = setup().await;
    let mut store = DynamoState::new(dynamo.clone(), "inv", &registry.host());
    sweep_once(&client, &mut store, &policy, "2030-01-01T00:00:00Z").await;
    Image::oci("app").tag("v1").push(&registry).await;
    registry_janitor::registry::OciClient::delete_manifest(
        &client,
        "app",
        &first.digest.parse().unwrap(),
    )
    .await
    .unwrap();
    sweep_once(&client, &mut store, &policy, "2030-01-02T00:00:00Z").await;

    let item = dynamo
        .get_item()
        .table_name("inv")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{}/app", registry.host())),
        )
        .key(
            "digest",
            aws_sdk_dynamodb::types::AttributeValue::S(first.digest.clone()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        item.item().is_some_and(|i| i.contains_key("expires_at")),
        "{item:?}"
    );
    let inventory = store.load("app").await.unwrap();
    assert!(!inventory
        .manifests
        .contains_key(&first.digest.parse::<Digest>().unwrap()));
}

#[tokio::test]
async fn a_tag_removal_record_round_trips_and_is_deleted_once_settled() {
    let Setup {
        _moto,
        dynamo,
        registry,
        first,
        ..
    } = setup().await;
    let digest: Digest = first.digest.parse().unwrap();
    let mut store = DynamoState::new(dynamo.clone(), "inv", &registry.host());
    let mut inventory = store.load("app").await.unwrap();
    inventory.removing([("pr-1", &digest)], t("2030-01-01T00:00:00Z"));
    store.save("app", inventory).await.unwrap();

    let mut reader = DynamoState::new(dynamo.clone(), "inv", &registry.host());
    let mut loaded = reader.load("app").await.unwrap();
    assert_eq!(loaded.removing["pr-1"].digest, digest);
    assert_eq!(loaded.removing["pr-1"].since, t("2030-01-01T00:00:00Z"));
    assert!(loaded.manifests.is_empty(), "a record read as a manifest");

    loaded.removing.clear();
    reader.save("app", loaded).await.unwrap();
    let items = dynamo
        .scan()
        .table_name("inv")
        .send()
        .await
        .unwrap()
        .items()
        .len();
    assert_eq!(items, 0, "the settled record's item is still there");
}

#[tokio::test]
async fn a_tags_first_sighting_round_trips_and_goes_when_the_tag_moves() {
    let Setup {
        _moto,
        dynamo,
        registry,
        first,
        client,
        policy,
    } = setup().await;
    let host = registry.host();
    let mut store = DynamoState::new(dynamo.clone(), "inv", &host);
    sweep_once(&client, &mut store, &policy, "2030-01-01T00:00:00Z").await;
    let mut reader = DynamoState::new(dynamo.clone(), "inv", &host);
    let digest: Digest = first.digest.parse().unwrap();
    let seen = reader.load("app").await.unwrap();
    assert_eq!(
        seen.manifests[&digest].tags.get("v1"),
        Some(&t("2030-01-01T00:00:00Z"))
    );

    // A later sweep keeps the first time; once v1 moves, the old digest forgets it.
    sweep_once(&client, &mut store, &policy, "2030-01-02T00:00:00Z").await;
    let again = reader.load("app").await.unwrap();
    assert_eq!(
        again.manifests[&digest].tags.get("v1"),
        Some(&t("2030-01-01T00:00:00Z"))
    );
    let second = Image::oci("app").tag("v1").push(&registry).await;
    sweep_once(&client, &mut store, &policy, "2030-01-03T00:00:00Z").await;
    let moved = reader.load("app").await.unwrap();
    assert!(moved.manifests[&digest].tags.is_empty(), "{moved:?}");
    let second: Digest = second.digest.parse().unwrap();
    assert_eq!(
        moved.manifests[&second].tags.get("v1"),
        Some(&t("2030-01-03T00:00:00Z"))
    );
}

/// A digest deleted and pushed again (a reproducible build, same content) before its
/// forgotten item expired starts new clocks: the old ones do not come back with it, or its
/// grace period would be cut short. As a sweep that sees it again untagged (through a link, or
/// a listing of every manifest) saves it.
#[tokio::test]
async fn a_digest_seen_again_after_it_was_forgotten_gets_a_new_untagged_clock() {
    let Setup {
        _moto,
        dynamo,
        registry,
        first,
        ..
    } = setup().await;
    let host = registry.host();
    let digest: Digest = first.digest.parse().unwrap();
    let untagged_at = |at: &str| {
        let mut r = Remembered::new(t(at));
        r.untagged_since = Some(t(at));
        r
    };
    let mut store = DynamoState::new(dynamo.clone(), "inv", &host);
    let mut inventory = store.load("app").await.unwrap();
    inventory
        .manifests
        .insert(digest.clone(), untagged_at("2030-01-02T00:00:00Z"));
    store.save("app", inventory.clone()).await.unwrap();
    // Deleted: the registry no longer has it, and the inventory forgets it (a TTL is set).
    inventory.forget([&digest]);
    store.save("app", inventory).await.unwrap();

    let mut later = DynamoState::new(dynamo.clone(), "inv", &host);
    let mut seen_again = later.load("app").await.unwrap();
    assert!(seen_again.manifests.is_empty(), "{seen_again:?}");
    seen_again
        .manifests
        .insert(digest.clone(), untagged_at("2030-01-04T00:00:00Z"));
    later.save("app", seen_again).await.unwrap();

    let back = DynamoState::new(dynamo.clone(), "inv", &host)
        .load("app")
        .await
        .unwrap();
    let remembered = &back.manifests[&digest];
    assert_eq!(
        remembered.untagged_since,
        Some(t("2030-01-04T00:00:00Z")),
        "the forgotten item's clock came back"
    );
    assert_eq!(remembered.first_seen, t("2030-01-04T00:00:00Z"));
}
