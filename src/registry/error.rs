//! What can go wrong talking to a registry. Every variant says which request failed: the
//! method and the URL path (never the query, which may carry tokens), and the status.

use super::digest::Digest;
use super::manifest::ParseError;
use super::name::NameError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{method} {path}: HTTP {status}{}", detail_suffix(.detail))]
    Status {
        method: String,
        path: String,
        status: u16,
        /// The registry's own error code and message, if its body had them.
        detail: Option<String>,
    },
    #[error("{method} {path}: HTTP 401: the registry wants credentials; give --username/--password, set REGISTRY_USERNAME/REGISTRY_PASSWORD, or log in with docker")]
    CredentialsNeeded { method: String, path: String },
    #[error("{method} {path}: HTTP {status}: the registry refused the credentials{}", detail_suffix(.detail))]
    CredentialsRefused {
        method: String,
        path: String,
        status: u16,
        detail: Option<String>,
    },
    #[error("{method} {path}: {source}")]
    Transport {
        method: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {path}: {reason}")]
    InvalidResponse {
        method: String,
        path: String,
        reason: String,
    },
    #[error("{method} {path}: HTTP {status}: locked in the registry{}", detail_suffix(.detail))]
    Locked {
        method: String,
        path: String,
        status: u16,
        detail: Option<String>,
    },
    #[error("GET {path}: the tag listing ended after {pages} page(s) at tag {last:?}, but asking for the tags after it returned {unseen:?}{} it had not listed: a page was lost (a `Link` header dropped?) or a tag was pushed meanwhile", more_suffix(*.more))]
    LostPage {
        path: String,
        pages: usize,
        last: String,
        unseen: String,
        more: usize,
    },
    #[error("{repository}@{digest}: the registry contradicts itself: {detail}")]
    Contradiction {
        repository: String,
        digest: Digest,
        detail: String,
    },
    #[error("{operation} is not available on {registry} (it needs --kind acr)")]
    Unsupported { operation: String, registry: String },
    #[error("{operation} is not available on {registry}: {reason}")]
    Unavailable {
        operation: String,
        registry: String,
        reason: String,
    },
    #[error("token request to {realm}: {reason}")]
    Token {
        realm: String,
        reason: String,
        /// What the token service answered, when it answered with an error status.
        status: Option<u16>,
    },
    #[error("{repository}@{reference}: the registry served content with digest {actual}, not {expected}")]
    DigestMismatch {
        repository: String,
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{repository}@{reference}: {source}")]
    Manifest {
        repository: String,
        reference: String,
        #[source]
        source: ParseError,
    },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("invalid registry URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// An AWS API (ECR) refused or failed a call: its error code and message.
    #[error("{operation} {repository}: {code}: {message}")]
    Aws {
        operation: String,
        repository: String,
        code: String,
        message: String,
    },
    /// Not an answer of the registry: the run's time ran out before this read was sent.
    #[error("{repository}: not read whole: the run's time ran out; the next run reads it")]
    OutOfTime { repository: String },
    /// Not an answer of the registry: the request was not sent, or was stopped, at the run's
    /// hard cutoff (`ClientOptions::cutoff`).
    #[error("{method} {path}: stopped: the run's time ran out; the next run does it")]
    CutOff {
        method: String,
        path: String,
        /// It had gone out (and may have taken effect), or was answered and not retried.
        sent: bool,
    },
}

fn more_suffix(more: usize) -> String {
    match more {
        0 => String::new(),
        n => format!(" and {n} more"),
    }
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

impl RegistryError {
    /// The HTTP status, when the registry answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            RegistryError::CredentialsRefused { status, .. } => Some(*status),
            RegistryError::CredentialsNeeded { .. } => Some(401),
            RegistryError::Locked { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry refused because the manifest, tag or repository is locked (ACR
    /// `REGISTRY_DISALLOWED_OPERATION`): not a failure of the run.
    pub fn is_locked(&self) -> bool {
        matches!(self, RegistryError::Locked { .. })
    }

    /// The registry wants credentials, or refused the ones given.
    pub fn is_credentials(&self) -> bool {
        matches!(
            self,
            RegistryError::CredentialsNeeded { .. }
                | RegistryError::CredentialsRefused { .. }
                | RegistryError::Token {
                    status: Some(401 | 403),
                    ..
                }
        ) || matches!(self, RegistryError::Aws { code, .. } if matches!(
            code.as_str(),
            "UnrecognizedClientException"
                | "ExpiredTokenException"
                | "InvalidSignatureException"
                | "AccessDeniedException"
                | "MissingAuthenticationTokenException"
        ))
    }

    /// Stopped at the cutoff after the request had gone out: the registry may have done it.
    pub fn was_sent(&self) -> bool {
        matches!(self, RegistryError::CutOff { sent: true, .. })
    }

    /// A token service answered `status` to our credentials.
    pub fn is_token_refusal(&self, status: u16) -> bool {
        matches!(self, RegistryError::Token { status: Some(s), .. } if *s == status)
    }

    /// The run's time ran out before the request (`OutOfTime`).
    pub fn is_out_of_time(&self) -> bool {
        matches!(
            self,
            RegistryError::OutOfTime { .. } | RegistryError::CutOff { .. }
        )
    }

    /// The thing asked for does not exist (404; ECR's not-found codes).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            || matches!(self, RegistryError::Aws { code, .. }
                if code == "ImageNotFoundException" || code == "RepositoryNotFoundException" || code == "ImageNotFound")
    }

    /// The registry knows no repository of this name: a 404 with the Distribution spec's
    /// (and ACR's) error code `NAME_UNKNOWN`. A bare 404 (a wrong URL, a proxy) is not one.
    pub fn is_name_unknown(&self) -> bool {
        matches!(
            self,
            RegistryError::Status { status: 404, detail: Some(d), .. }
                if d == "NAME_UNKNOWN" || d.starts_with("NAME_UNKNOWN: ")
        ) || matches!(self, RegistryError::Aws { code, .. } if code == "RepositoryNotFoundException")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_unknown_is_the_code_of_a_404_and_nothing_else() {
        let status = |status, detail: Option<&str>| RegistryError::Status {
            method: "GET".into(),
            path: "/v2/app/tags/list".into(),
            status,
            detail: detail.map(str::to_owned),
        };
        assert!(status(
            404,
            Some("NAME_UNKNOWN: repository name not known to registry")
        )
        .is_name_unknown());
        assert!(status(404, Some("NAME_UNKNOWN")).is_name_unknown());
        assert!(!status(404, None).is_name_unknown(), "a bare 404");
        assert!(!status(404, Some("NAME_UNKNOWNISH: x")).is_name_unknown());
        assert!(!status(404, Some("MANIFEST_UNKNOWN: x")).is_name_unknown());
        assert!(!status(400, Some("NAME_UNKNOWN: x")).is_name_unknown());
    }

    #[test]
    fn refused_credentials_are_told_apart_from_other_failures() {
        let token = |status| RegistryError::Token {
            realm: "https://auth.example/token".into(),
            reason: "HTTP".into(),
            status,
        };
        assert!(token(Some(401)).is_credentials());
        assert!(token(Some(403)).is_credentials());
        assert!(!token(Some(500)).is_credentials());
        assert!(!token(None).is_credentials());
        assert!(RegistryError::CredentialsNeeded {
            method: "GET".into(),
            path: "/v2/".into()
        }
        .is_credentials());
        let server = RegistryError::Status {
            method: "GET".into(),
            path: "/v2/app/tags/list".into(),
            status: 401,
            detail: None,
        };
        assert!(!server.is_credentials(), "a bare status is not a refusal");
        let problem = crate::plan::Problem::of("tags", &token(Some(401)));
        assert_eq!(problem.cause, crate::plan::Cause::Credentials);
    }
}
