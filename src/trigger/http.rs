//! HTTP requests from a Lambda function URL or an API Gateway HTTP API (payload 2.0): check
//! the shared secret, bound and decode the body, then read it as a webhook.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine as _;

use super::{secret, webhook, Decision, TriggerError};

/// Bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// Decode an HTTP request. `expected_secret` is the configured webhook secret; without one,
/// every request is refused (503), never let through.
pub fn decode(
    request: &ApiGatewayV2httpRequest,
    expected_secret: Option<&str>,
) -> Result<Decision, TriggerError> {
    let expected = expected_secret
        .filter(|s| !s.is_empty())
        .ok_or(TriggerError::NotConfigured)?;
    let given = presented_secret(request).unwrap_or("");
    if !secret::matches(given, expected) {
        return Err(TriggerError::Unauthorized);
    }
    let raw = request.body.as_deref().unwrap_or("");
    let body = if request.is_base64_encoded {
        // Base64 grows 4/3: anything longer than this cannot decode to an allowed size.
        if raw.len() > MAX_BODY / 3 * 4 + 4 {
            return Err(TriggerError::TooLarge { limit: MAX_BODY });
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|e| TriggerError::BadRequest(format!("body is not valid base64: {e}")))?
    } else {
        raw.as_bytes().to_vec()
    };
    if body.len() > MAX_BODY {
        return Err(TriggerError::TooLarge { limit: MAX_BODY });
    }
    if body.is_empty() {
        return Err(TriggerError::BadRequest(
            "empty body; expected a registry webhook".into(),
        ));
    }
    webhook::decode(&body)
}

/// The secret a request presents in its `Authorization` header, if any.
pub fn presented_secret(request: &ApiGatewayV2httpRequest) -> Option<&str> {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(secret::from_authorization)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::Scope;

    fn fixture() -> ApiGatewayV2httpRequest {
        let path = format!(
            "{}/tests/fixtures/events/function-url-distribution-push.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn function_url_push_with_the_secret_sweeps_its_repository() {
        let decision = decode(&fixture(), Some("example-shared-secret")).unwrap();
        let Decision::Run(job) = decision else {
            panic!("{decision:?}")
        };
        assert_eq!(
            job.scope,
            Scope::Repositories(["demo/app".to_owned()].into())
        );
    }

    #[test]
    fn a_wrong_or_missing_secret_is_401_and_no_secret_configured_is_503() {
        assert_eq!(decode(&fixture(), Some("other")).unwrap_err().status(), 401);
        let mut no_header = fixture();
        no_header.headers.remove("authorization");
        assert_eq!(
            decode(&no_header, Some("example-shared-secret"))
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(decode(&fixture(), None).unwrap_err().status(), 503);
        assert_eq!(decode(&fixture(), Some("")).unwrap_err().status(), 503);
    }

    #[test]
    fn harbor_sends_the_bare_secret() {
        let mut r = fixture();
        r.headers
            .insert("authorization", "example-shared-secret".parse().unwrap());
        assert!(decode(&r, Some("example-shared-secret")).is_ok());
    }

    #[test]
    fn base64_bodies_are_decoded_and_large_or_broken_ones_refused() {
        let mut r = fixture();
        let body = r.body.take().unwrap();
        r.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
        r.is_base64_encoded = true;
        assert!(matches!(
            decode(&r, Some("example-shared-secret")),
            Ok(Decision::Run(_))
        ));
        r.body = Some("!!!".into());
        assert_eq!(
            decode(&r, Some("example-shared-secret"))
                .unwrap_err()
                .status(),
            400
        );
        r.is_base64_encoded = false;
        r.body = Some(" ".repeat(MAX_BODY + 1));
        assert_eq!(
            decode(&r, Some("example-shared-secret"))
                .unwrap_err()
                .status(),
            413
        );
    }
}
