//! The trigger decoders never panic, whatever arrives: random bytes, random JSON built from
//! the keys the decoders look for, and random HTTP requests.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use proptest::prelude::*;
use registry_janitor::trigger::{event, http, webhook};
use serde_json::{json, Value};

/// JSON values made of the keys and values the decoders branch on, nested at random.
fn shaped_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("push"),
            Just("delete"),
            Just("pull"),
            Just("PUSH_ARTIFACT"),
            Just("harbor.artifact.pushed"),
            Just("Scheduled Event"),
            Just("{}"),
            Just("ci/app"),
            Just("../x"),
            Just(""),
            Just("sha256:7b3ca2620b8a4e1b1f6f2a8a5f4b2f0b7f0f1e7f3c3c1d9e5b7a6a4b1c2d3e4f"),
            Just("application/vnd.oci.image.manifest.v1+json"),
            Just("http://r/v2/a/manifests/x"),
        ]
        .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("events"),
        Just("action"),
        Just("target"),
        Just("repository"),
        Just("repositories"),
        Just("digest"),
        Just("mediaType"),
        Just("url"),
        Just("type"),
        Just("event_data"),
        Just("data"),
        Just("specversion"),
        Just("resources"),
        Just("repo_full_name"),
        Just("name"),
        Just("namespace"),
        Just("detail-type"),
        Just("detail"),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn webhook_decoder_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = webhook::decode(&body);
    }

    #[test]
    fn decoders_never_panic_on_shaped_json(value in shaped_json()) {
        let _ = webhook::decode(value.to_string().as_bytes());
        let _ = event::decode(&value);
        let _ = event::decode(&json!({"detail-type": "Scheduled Event", "detail": value.to_string()}));
    }

    #[test]
    fn http_decoder_never_panics(body in ".{0,300}", base64 in any::<bool>(), auth in prop::option::of(".{0,40}")) {
        let mut request = ApiGatewayV2httpRequest::default();
        request.body = Some(body);
        request.is_base64_encoded = base64;
        if let Some(a) = auth.and_then(|a| a.parse().ok()) {
            request.headers.insert("authorization", a);
        }
        let _ = http::decode(&request, Some("secret"));
        let _ = http::decode(&request, None);
    }
}
