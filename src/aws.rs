//! The AWS SDK's shared setup: one HTTP client (rustls with ring, the TLS stack reqwest uses
//! too), and the default configuration chain (credentials, region, `AWS_ENDPOINT_URL`); and
//! what every AWS listing and error needs: following page tokens, and one line per error.

use std::collections::BTreeSet;

/// The AWS SDK's HTTP client on rustls with ring: one TLS stack in the binary, as reqwest's.
pub fn http_client() -> aws_sdk_ecr::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The AWS SDK configuration: the default credential and region chain, endpoint overrides
/// from the environment (`AWS_ENDPOINT_URL`), and our HTTP client. `region`, if given, wins
/// over the chain's.
pub async fn sdk_config(region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    loader.load().await
}

/// A failed SDK call as one line: the service's code and message where it sent them
/// (throttling past the SDK's retries is one), else the SDK's own account of what went
/// wrong. Every AWS SDK crate's `SdkError` is this one type.
pub fn call_error<E, R>(call: &str, e: &aws_sdk_ecr::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ecr::error::ProvideErrorMetadata;
    match e.code() {
        Some(code) => format!("{call}: {code}: {}", e.message().unwrap_or_default()),
        None => format!("{call}: {}", aws_sdk_ecr::error::DisplayErrorContext(e)),
    }
}

/// A page token that came back a second time: following it would go round forever, so the
/// listing cannot be trusted to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the next page token repeats, so the listing would never end")]
pub struct TokenRepeats;

/// The token of the page after this one, or `None` after the last (a missing or empty
/// token). `seen` holds the tokens followed so far in this listing.
pub fn next_token(
    seen: &mut BTreeSet<String>,
    next: Option<&str>,
) -> Result<Option<String>, TokenRepeats> {
    match next {
        None | Some("") => Ok(None),
        Some(token) if !seen.insert(token.to_owned()) => Err(TokenRepeats),
        Some(token) => Ok(Some(token.to_owned())),
    }
}
