//! Who we are to the registry: credentials, the challenge it answers with, and the bearer
//! tokens we obtain for each scope.
//!
//! Credentials come from the command line, then `REGISTRY_USERNAME`/`REGISTRY_PASSWORD`, then
//! the user's docker `config.json`, read as docker reads it (`docker_config.rs`: credential
//! helpers, then `auths`, identity tokens included). None of them ever appears in a `Debug`
//! print or a log.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

/// A username and a password (or token) for basic auth and token requests. The username
/// `<token>` (`TOKEN_USER`, docker's own convention) makes the password an identity token:
/// an OAuth2 refresh token, traded at the registry's token service for access tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read docker config {path}: {reason}")]
    DockerConfig { path: PathBuf, reason: String },
    #[error("docker config {path}: the `auth` entry for {host} is not base64 of user:password")]
    DockerConfigEntry { path: PathBuf, host: String },
    #[error("{0} is set but {1} is not: give both or neither")]
    HalfSet(&'static str, &'static str),
    #[error("docker credential helper {helper}: {reason}")]
    Helper { helper: String, reason: String },
    #[error("JANITOR_CREDENTIAL_HELPER_TIMEOUT {value:?} is not a duration ({reason}); write it like 5s or 1m")]
    HelperTimeout { value: String, reason: String },
}

impl Credentials {
    /// The username that marks an identity token (docker's credential helper protocol).
    pub const TOKEN_USER: &'static str = "<token>";

    /// An identity token: an OAuth2 refresh token (what `az acr login` leaves behind).
    pub fn identity_token(token: &str) -> Credentials {
        Credentials {
            username: Credentials::TOKEN_USER.to_owned(),
            password: token.to_owned(),
        }
    }

    /// Whether the password is an identity token, not a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == Credentials::TOKEN_USER
    }

    /// `Authorization: Basic ...` value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where a JSON document went wrong, without quoting any of it (it may hold secrets).
pub fn json_error_position(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "cannot be read",
        serde_json::error::Category::Syntax => "is not valid JSON",
        serde_json::error::Category::Data => "does not have the expected shape",
        serde_json::error::Category::Eof => "ends too early",
    };
    format!("{kind} (line {}, column {})", e.line(), e.column())
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// `key="quoted, value",key2=token` -> pairs. Commas inside quotes belong to the value.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

/// A bearer token and when we stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    refresh_at: Instant,
}

/// What we learned about how this registry authenticates, and the tokens we hold.
#[derive(Default)]
pub struct AuthState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The registry asked for basic auth once: send it up front from then on.
    basic: bool,
    /// Bearer tokens by the scope we asked for.
    tokens: HashMap<String, Token>,
}

/// The answer of a token endpoint (distribution token spec; `access_token` is OAuth2's name).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
    /// ACR's `/oauth2/exchange` answer.
    pub refresh_token: Option<String>,
}

impl AuthState {
    /// The `Authorization` value to send up front for a request needing `scope`, if any.
    pub fn header_for(&self, scope: &str, credentials: Option<&Credentials>) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = inner.tokens.get(scope) {
            if token.refresh_at > Instant::now() {
                return Some(format!("Bearer {}", token.value));
            }
        }
        if inner.basic {
            // An identity token is never a password.
            return credentials
                .filter(|c| !c.is_identity_token())
                .map(Credentials::basic_header);
        }
        None
    }

    pub fn remember_basic(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).basic = true;
    }

    /// Keep a token for `scope`. It is refreshed a little before the server says it expires.
    /// The token spec's default lifetime is 60 seconds.
    pub fn store_token(&self, scope: &str, token: String, expires_in: Option<u64>) -> String {
        // A token service may say anything; a day is the longest we trust a token. Without
        // `expires_in` (ACR), a JWT's own `exp` says it.
        let expires_in =
            expires_in.or_else(|| jwt_lifetime(&token, chrono::Utc::now().timestamp()));
        let lifetime = Duration::from_secs(expires_in.unwrap_or(60).clamp(1, 86_400));
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tokens.insert(
            scope.to_owned(),
            Token {
                value: token.clone(),
                refresh_at: Instant::now() + lifetime - margin,
            },
        );
        format!("Bearer {token}")
    }

    /// Forget the token for `scope` (the registry refused it).
    pub fn drop_token(&self, scope: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tokens
            .remove(scope);
    }
}

/// Seconds until a JWT's `exp`, read without checking its signature (we only use it to
/// refresh before the registry would refuse it). `None` if it is not a JWT with an `exp`.
fn jwt_lifetime(token: &str, now: i64) -> Option<u64> {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Claims {
        exp: i64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    u64::try_from(claims.exp - now).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_without_expires_in_lives_until_its_exp() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"exp":1000}"#)
        );
        assert_eq!(jwt_lifetime(&token, 400), Some(600));
        assert_eq!(jwt_lifetime(&token, 1400), None, "expired");
        assert_eq!(jwt_lifetime("opaque-token", 0), None);
    }

    #[test]
    fn bearer_challenge_keeps_commas_inside_quotes() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn basic_and_unknown_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(
            Challenge::parse("Bearer service=\"x\""),
            None,
            "realm is required"
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn an_absurd_token_lifetime_does_not_overflow() {
        let state = AuthState::default();
        state.store_token("s", "t".into(), Some(u64::MAX));
        assert!(state.header_for("s", None).is_some());
    }

    #[test]
    fn tokens_are_cached_per_scope() {
        let state = AuthState::default();
        state.store_token("repository:a:pull", "tok-a".into(), Some(300));
        assert_eq!(
            state.header_for("repository:a:pull", None).as_deref(),
            Some("Bearer tok-a")
        );
        assert_eq!(state.header_for("repository:b:pull", None), None);
        state.drop_token("repository:a:pull");
        assert_eq!(state.header_for("repository:a:pull", None), None);
    }
}
