//! One HTTP exchange with a registry, made robust: authentication (basic, or bearer tokens
//! fetched on the registry's challenge and cached per scope) and retries (see `retry`).
//!
//! Callers get back a response whose status is final: anything retryable has been retried,
//! and a 401 has been answered once with credentials. They decide what the status means.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response};
use url::Url;

use super::auth::{AuthState, Challenge, Credentials, TokenResponse};
use super::docker_config::Lookup;
use super::error::RegistryError;
use super::identity::Identity;
use super::retry::{RetryPolicy, Verdict};

/// Largest OCI error body we read to explain a failure.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

pub struct Transport {
    http: reqwest::Client,
    /// For token POSTs: follows no redirect, since a 307 or 308 would carry the form (a
    /// refresh token, an Azure AD token) to wherever it points, past the host checks.
    forms: reqwest::Client,
    /// Our credentials, and the source to ask again when they are refused.
    identity: Identity,
    auth: AuthState,
    retry: RetryPolicy,
    requests: AtomicU64,
    /// Whether the registry itself is reached over TLS (then credentials never go over HTTP).
    tls: bool,
    /// Ask the token service for the scope we need rather than the one the challenge names
    /// (ACR, where one broader token per repository saves a token request per action).
    own_scope: bool,
    /// ACR: an Azure AD access token, exchanged for a refresh token, then for access tokens.
    aad_token: Option<String>,
    /// ACR: the refresh token from that exchange, reused until the registry refuses it. Held
    /// across the exchange, so concurrent requests exchange once.
    refresh_token: tokio::sync::Mutex<Option<String>>,
    /// The registry's own host: an Azure AD token and an identity token go nowhere else.
    registry_host: Option<String>,
    /// Reads (GET, HEAD) in flight at once, across everything the client does.
    reads: tokio::sync::Semaphore,
    /// Changes (DELETE, PUT, PATCH, POST) in flight at once.
    writes: tokio::sync::Semaphore,
    /// Spaces the registry's write operations (DELETE, PUT, PATCH; not token POSTs), if paced.
    pace: Option<super::pace::Pace>,
    /// No attempt starts after this, none runs past it, and no retry waits past it: a run cut
    /// short by its deadline still gets to answer (and emit its metrics).
    cutoff: Option<std::time::Instant>,
    /// The timeout of one request (set on the HTTP client too).
    timeout: Duration,
}

/// Reads allowed in flight per change in flight. Registries allow far more reads than
/// writes (ACR's published limits: 10x on Basic and Premium, 6x on Standard), and a sweep
/// reads several times what it deletes, so its reads go wider than its deletes.
pub const READS_PER_WRITE: usize = 4;

/// What a request carries besides its method and URL.
#[derive(Default, Clone)]
pub struct Extra<'a> {
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Option<Vec<u8>>,
}

impl Transport {
    pub fn new(
        credentials: Option<Credentials>,
        retry: RetryPolicy,
        timeout: Duration,
        tls: bool,
        in_flight: usize,
    ) -> Result<Transport, RegistryError> {
        // reqwest is built without a default crypto provider; ring is ours. Installing it
        // twice is harmless, so the result does not matter.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = |redirect| {
            reqwest::Client::builder()
                .user_agent(concat!("registry-janitor/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10).min(timeout))
                .timeout(timeout)
                .redirect(redirect)
                .build()
                .map_err(|e| RegistryError::Client(e.without_url().to_string()))
        };
        Ok(Transport {
            http: client(reqwest::redirect::Policy::default())?,
            forms: client(reqwest::redirect::Policy::none())?,
            identity: Identity::new(credentials, None),
            auth: AuthState::default(),
            retry,
            requests: AtomicU64::new(0),
            tls,
            own_scope: false,
            aad_token: None,
            refresh_token: tokio::sync::Mutex::new(None),
            registry_host: None,
            reads: tokio::sync::Semaphore::new(in_flight.max(1) * READS_PER_WRITE),
            writes: tokio::sync::Semaphore::new(in_flight.max(1)),
            pace: None,
            cutoff: None,
            timeout,
        })
    }

    /// The registry is at `host` (tokens that are worth more than one registry's access go
    /// only there).
    pub fn at_host(mut self, host: &str) -> Transport {
        self.registry_host = Some(host.to_owned());
        self
    }

    /// The credentials came from `source` (docker's config): ask it again when they are
    /// refused partway through a run.
    pub fn asking_again(mut self, source: Option<Lookup>) -> Transport {
        self.identity = Identity::new(self.identity.current().0, source);
        self
    }

    /// The registry refused our credentials, and their source had nothing new.
    pub fn credentials_spent(&self) -> bool {
        self.identity.spent()
    }

    /// End every request by `cutoff` (see the field).
    pub fn cut_off_at(mut self, cutoff: Option<std::time::Instant>) -> Transport {
        self.cutoff = cutoff;
        self
    }

    /// Time left before the cutoff; `Some(ZERO)` once it has passed.
    fn left(&self) -> Option<Duration> {
        self.cutoff
            .map(|c| c.saturating_duration_since(std::time::Instant::now()))
    }

    /// At most `per_minute` write operations a minute, every attempt counted.
    pub fn paced(mut self, per_minute: Option<u32>) -> Transport {
        self.pace = per_minute.map(super::pace::Pace::per_minute);
        self
    }

    /// Talk to ACR at `host`: one token per repository, and an Azure AD token to exchange
    /// there if given.
    pub fn for_acr(mut self, host: &str, aad_token: Option<String>) -> Transport {
        self.own_scope = true;
        self.aad_token = aad_token;
        self.registry_host = Some(host.to_owned());
        self
    }

    /// HTTP requests sent so far, retries and token requests included.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Send a request needing the auth `scope` (such as `repository:app:pull`).
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        scope: &str,
        extra: &Extra<'_>,
    ) -> Result<Response, RegistryError> {
        let (mut credentials, mut generation) = self.identity.current();
        let mut authorization = self.auth.header_for(scope, credentials.as_ref());
        let mut answered_challenge = false;
        let mut answered_basic = false;
        let mut asked_again = false;
        loop {
            let response = self
                .send_with_retries(&method, url, |b| {
                    let mut b = with_extra(b, extra);
                    if let Some(value) = &authorization {
                        b = b.header(AUTHORIZATION, value);
                    }
                    b
                })
                .await?;
            if response.status() != 401 {
                return Ok(response);
            }
            let path = url.path().to_owned();
            if answered_challenge {
                // We answered the challenge and were refused anyway.
                self.auth.drop_token(scope);
                // A password refused may have changed at its source (a helper's): ask once.
                // A bearer token refused here was issued for this scope: not ours to fix.
                if answered_basic && !asked_again && self.identity.ask_again(generation).await {
                    asked_again = true;
                    (credentials, generation) = self.identity.current();
                    // One more request, with the new password; refused again, it is final.
                    authorization = match &credentials {
                        Some(c) if c.is_identity_token() => {
                            return Err(wants_a_password(&method, path))
                        }
                        c => c.as_ref().map(Credentials::basic_header),
                    };
                    continue;
                }
                return Err(match &credentials {
                    Some(_) => RegistryError::CredentialsRefused {
                        method: method.to_string(),
                        path,
                        status: 401,
                        detail: error_detail(response).await,
                    },
                    None => RegistryError::CredentialsNeeded {
                        method: method.to_string(),
                        path,
                    },
                });
            }
            answered_challenge = true;
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            authorization = Some(match challenge {
                Some(Challenge::Basic) => match &credentials {
                    Some(c) if c.is_identity_token() => {
                        return Err(wants_a_password(&method, path))
                    }
                    Some(c) => {
                        self.auth.remember_basic();
                        answered_basic = true;
                        c.basic_header()
                    }
                    None => {
                        return Err(RegistryError::CredentialsNeeded {
                            method: method.to_string(),
                            path,
                        })
                    }
                },
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: wanted,
                }) => {
                    let wanted = match wanted.as_deref() {
                        Some(w) if !self.own_scope => w,
                        _ => scope,
                    };
                    let token = self.fetch_token(&realm, service.as_deref(), wanted).await?;
                    (credentials, generation) = self.identity.current();
                    self.auth.store_token(scope, token.0, token.1)
                }
                None => {
                    return Err(RegistryError::Status {
                        method: method.to_string(),
                        path,
                        status: 401,
                        detail: Some("no usable WWW-Authenticate challenge".into()),
                    })
                }
            });
        }
    }

    /// Ask the token service for a token for `scope`. When it refuses our credentials, their
    /// source is asked again once, and what it gives is tried (`Identity::ask_again`).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Option<u64>), RegistryError> {
        let (credentials, generation) = self.identity.current();
        match self
            .fetch_token_with(credentials.as_ref(), realm, service, scope)
            .await
        {
            // A 401 is the token service refusing the credentials themselves; a 403 refuses
            // this scope only (a repository they may not read), which asking again cannot fix
            // and which says nothing about the other repositories.
            Err(e) if e.is_token_refusal(401) && self.identity.ask_again(generation).await => {
                let (credentials, _) = self.identity.current();
                self.fetch_token_with(credentials.as_ref(), realm, service, scope)
                    .await
            }
            other => other,
        }
    }

    /// Ask the token service for a token for `scope`, sending `credentials` if any.
    async fn fetch_token_with(
        &self,
        credentials: Option<&Credentials>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Option<u64>), RegistryError> {
        let fail = |reason: String| RegistryError::Token {
            realm: strip_query(realm),
            reason,
            status: None,
        };
        let mut url = Url::parse(realm).map_err(|e| fail(format!("realm is not a URL: {e}")))?;
        if self.tls
            && url.scheme() != "https"
            && (credentials.is_some() || self.aad_token.is_some())
        {
            return Err(fail(
                "refusing to send credentials to a token service without TLS".into(),
            ));
        }
        if let Some(aad) = &self.aad_token {
            return self.acr_token(url, service, scope, aad).await;
        }
        if let Some(token) = credentials.filter(|c| c.is_identity_token()) {
            return self
                .refresh_grant(url, service, scope, &token.password)
                .await;
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                query.append_pair("scope", s);
            }
        }
        let response = self
            .send_with_retries(&Method::GET, &url, |b| match credentials {
                Some(c) => b.header(AUTHORIZATION, c.basic_header()),
                None => b,
            })
            .await?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            return Err(with_status(fail(format!("HTTP {status}")), status));
        }
        let bytes = read_limited(&Method::GET, &url, response, ERROR_BODY_LIMIT).await?;
        let answer: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            fail(format!(
                "answer is not a token document: it {}",
                super::auth::json_error_position(&e)
            ))
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("answer has no token".into()))?;
        Ok((token, answer.expires_in))
    }

    /// An identity token (docker's `identitytoken`, from `az acr login` or a helper) traded at
    /// the token service for an access token for `scope`: the token spec's OAuth2
    /// `grant_type=refresh_token`. It goes only to the registry's own host.
    async fn refresh_grant(
        &self,
        realm: Url,
        service: Option<&str>,
        scope: &str,
        refresh_token: &str,
    ) -> Result<(String, Option<u64>), RegistryError> {
        let fail = |reason: String| RegistryError::Token {
            realm: strip_query(realm.as_str()),
            reason,
            status: None,
        };
        self.on_own_host(&realm, "the identity token from docker's config")?;
        let service = service.unwrap_or_else(|| realm.host_str().unwrap_or_default());
        let form = [
            ("grant_type", "refresh_token"),
            ("service", service),
            ("scope", scope),
            ("refresh_token", refresh_token),
            ("client_id", "registry-janitor"),
        ];
        let (status, answer) = self.post_form(&realm, &form).await?;
        if status == 401 {
            let source = self
                .identity
                .source()
                .map(|s| s.describe())
                .unwrap_or_else(|| "the credentials".into());
            return Err(with_status(
                fail(format!(
                    "HTTP 401: the registry refused the identity token from {source} (expired or revoked: on ACR they last 3 hours with ABAC); log in again: `az acr login --name <registry>`"
                )),
                status,
            ));
        }
        if status == 403 {
            return Err(with_status(
                fail(format!("HTTP 403: the identity token may not have {scope}")),
                status,
            ));
        }
        granted(&realm, status, answer)
    }

    /// Refuse to send `what` (a token worth more than an access token) to a token service
    /// that is not on the registry's own host.
    fn on_own_host(&self, realm: &Url, what: &str) -> Result<(), RegistryError> {
        let realm_host = super::options::registry_host(realm);
        if realm_host.is_none() || realm_host != self.registry_host {
            return Err(RegistryError::Token {
                realm: strip_query(realm.as_str()),
                reason: format!(
                    "the token service is not on the registry's host {}; refusing to send it {what}",
                    self.registry_host.as_deref().unwrap_or("?")
                ),
                status: None,
            });
        }
        Ok(())
    }

    /// ACR with an Azure AD token: exchange it at `/oauth2/exchange` for a refresh token
    /// (kept), then trade that at the realm (`/oauth2/token`) for an access token for
    /// `scope`. A refused refresh token is exchanged again, once. Both go only to the
    /// registry's own host: an Azure AD token is worth more than registry credentials.
    async fn acr_token(
        &self,
        realm: Url,
        service: Option<&str>,
        scope: &str,
        aad: &str,
    ) -> Result<(String, Option<u64>), RegistryError> {
        let fail = |reason: String| RegistryError::Token {
            realm: strip_query(realm.as_str()),
            reason,
            status: None,
        };
        self.on_own_host(&realm, "the Azure AD token")?;
        let service = service.unwrap_or_else(|| realm.host_str().unwrap_or_default());
        for attempt in 0..2 {
            let refresh = {
                let mut cached = self.refresh_token.lock().await;
                match cached.as_ref() {
                    Some(r) => r.clone(),
                    None => {
                        let r = self.exchange(&realm, service, aad).await?;
                        *cached = Some(r.clone());
                        r
                    }
                }
            };
            let form = [
                ("grant_type", "refresh_token"),
                ("service", service),
                ("scope", scope),
                ("refresh_token", refresh.as_str()),
            ];
            let (status, answer) = self.post_form(&realm, &form).await?;
            if status == 401 {
                // Expired or revoked: forget it (unless another request already replaced it)
                // and exchange again, once.
                let mut cached = self.refresh_token.lock().await;
                if cached.as_deref() == Some(refresh.as_str()) {
                    *cached = None;
                }
                if attempt == 0 {
                    continue;
                }
                return Err(with_status(fail(
                    "HTTP 401 for a freshly exchanged refresh token: the Azure AD token has no access to this registry".into(),
                ), 401));
            }
            return granted(&realm, status, answer);
        }
        Err(fail("no access token after two attempts".into()))
    }

    /// Trade the Azure AD token for a refresh token at the realm's `/oauth2/exchange`.
    async fn exchange(
        &self,
        realm: &Url,
        service: &str,
        aad: &str,
    ) -> Result<String, RegistryError> {
        let mut exchange = realm.clone();
        exchange.set_path("/oauth2/exchange");
        exchange.set_query(None);
        let fail = |reason: String| RegistryError::Token {
            realm: strip_query(exchange.as_str()),
            reason,
            status: None,
        };
        let form = [
            ("grant_type", "access_token"),
            ("service", service),
            ("access_token", aad),
        ];
        let (status, answer) = self.post_form(&exchange, &form).await?;
        let answer = answer.filter(|_| status == 200).ok_or_else(|| {
            with_status(fail(match status {
                401 | 403 => format!(
                    "HTTP {status}: the Azure AD token was refused (expired, or for another tenant or audience)"
                ),
                _ => format!("HTTP {status}"),
            }), status)
        })?;
        answer
            .refresh_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("the answer has no refresh_token".into()))
    }

    /// POST a form to a token endpoint; the status, and the answer if it is a token document.
    async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<(u16, Option<TokenResponse>), RegistryError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .send_with_retries(&Method::POST, url, |b| {
                b.header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.clone())
            })
            .await?;
        let status = response.status().as_u16();
        let bytes = read_limited(&Method::POST, url, response, ERROR_BODY_LIMIT).await?;
        Ok((status, serde_json::from_slice(&bytes).ok()))
    }

    /// Send, retrying transport failures, 429, and 5xx as the policy says.
    async fn send_with_retries(
        &self,
        method: &Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0;
        let cut_off = |sent: bool| RegistryError::CutOff {
            method: method.to_string(),
            path: url.path().to_owned(),
            sent,
        };
        loop {
            attempt += 1;
            // A slot per attempt, not held while waiting to retry. The semaphores are never
            // closed, so acquiring cannot fail; if it ever did, sending anyway is harmless.
            // Token requests (POST) are not registry writes: they take a read slot, so they
            // never queue behind paced writes.
            let slots = match *method {
                Method::GET | Method::HEAD | Method::POST => &self.reads,
                _ => &self.writes,
            };
            let slot = slots.acquire().await.ok();
            // Then the write's turn, slot in hand, so turns become sends as they come. A retry
            // is another write to the registry: it waits its turn too.
            if let Some(pace) = self
                .pace
                .as_ref()
                .filter(|_| matches!(*method, Method::DELETE | Method::PUT | Method::PATCH))
            {
                if !pace.wait_until(self.cutoff).await {
                    return Err(cut_off(false));
                }
            }
            // The waits above may have used the time up: checked right before sending, and
            // the request may last only until the cutoff.
            let http = match *method {
                Method::POST => &self.forms,
                _ => &self.http,
            };
            let mut request = build(http.request(method.clone(), url.clone()));
            match self.left() {
                Some(left) if left.is_zero() => return Err(cut_off(false)),
                Some(left) => request = request.timeout(left.min(self.timeout)),
                None => {}
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent = request.send().await;
            drop(slot);
            let verdict = match sent {
                Ok(response) => {
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok());
                    let status = response.status().as_u16();
                    match self
                        .retry
                        .after_status(attempt, status, retry_after, Utc::now())
                    {
                        Verdict::Done => return Ok(response),
                        // A wait past the cutoff: the run's time is up, not the registry's fault.
                        Verdict::RetryAfter(wait) if self.left().is_some_and(|l| l <= wait) => {
                            tracing::warn!(%method, path = url.path(), status, "not retried: the retry would come after the run's cutoff");
                            return Err(cut_off(true));
                        }
                        Verdict::RetryAfter(wait) => {
                            tracing::warn!(%method, path = url.path(), status, attempt, wait_ms = wait.as_millis() as u64, "registry asked us to retry");
                            wait
                        }
                    }
                }
                Err(error) if self.left().is_some_and(|l| l.is_zero()) => {
                    tracing::warn!(%method, path = url.path(), error = %error.without_url(), "request stopped at the run's cutoff");
                    return Err(cut_off(true));
                }
                Err(error) => match self.retry.after_transport_error(attempt) {
                    Verdict::RetryAfter(wait) if self.left().is_some_and(|l| l <= wait) => {
                        tracing::warn!(%method, path = url.path(), error = %error.without_url(), "not retried: the retry would come after the run's cutoff");
                        return Err(cut_off(true));
                    }
                    Verdict::Done => {
                        return Err(RegistryError::Transport {
                            method: method.to_string(),
                            path: url.path().to_owned(),
                            source: error.without_url(),
                        })
                    }
                    Verdict::RetryAfter(wait) => {
                        tracing::warn!(%method, path = url.path(), attempt, error = %error.without_url(), wait_ms = wait.as_millis() as u64, "request failed; retrying");
                        wait
                    }
                },
            };
            tokio::time::sleep(verdict).await;
        }
    }
}

fn with_extra(mut b: RequestBuilder, extra: &Extra<'_>) -> RequestBuilder {
    if let Some(accept) = extra.accept {
        b = b.header(reqwest::header::ACCEPT, accept);
    }
    if let Some(ct) = extra.content_type {
        b = b.header(reqwest::header::CONTENT_TYPE, ct);
    }
    if let Some(body) = &extra.body {
        b = b.body(body.clone());
    }
    b
}

fn strip_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or("").to_owned()
}

/// Read a body, refusing one larger than `limit` bytes (a registry answering garbage must not
/// exhaust our memory).
pub async fn read_limited(
    method: &Method,
    url: &Url,
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::InvalidResponse {
        method: method.to_string(),
        path: url.path().to_owned(),
        reason: format!("body larger than {limit} bytes"),
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(RegistryError::Transport {
                    method: method.to_string(),
                    path: url.path().to_owned(),
                    source: e.without_url(),
                })
            }
        }
    }
}

/// The registry's own explanation of an error, from an OCI or ACR error body
/// `{"errors":[{"code":"...","message":"..."}]}`, if it sent one.
pub async fn error_detail(response: Response) -> Option<String> {
    error_body(response).await.map(|(_, text)| text)
}

/// The first error's code and its text (`CODE: message`).
async fn error_body(response: Response) -> Option<(Option<String>, String)> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    let url = response.url().clone();
    let bytes = read_limited(&Method::GET, &url, response, ERROR_BODY_LIMIT)
        .await
        .ok()?;
    let body: Body = serde_json::from_slice(&bytes).ok()?;
    let first = body.errors.into_iter().next()?;
    let text = match (&first.code, first.message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(x), None) => x.clone(),
        (None, Some(x)) => x,
        (None, None) => return None,
    };
    Some((first.code, text.chars().take(300).collect()))
}

/// A typed error for a response whose status the caller did not expect. ACR's
/// `REGISTRY_DISALLOWED_OPERATION` (a lock) becomes `Locked`.
pub async fn status_error(method: &Method, url: &Url, response: Response) -> RegistryError {
    let status = response.status().as_u16();
    let (code, detail) = match error_body(response).await {
        Some((code, text)) => (code, Some(text)),
        None => (None, None),
    };
    if code.as_deref() == Some("REGISTRY_DISALLOWED_OPERATION") {
        return RegistryError::Locked {
            method: method.to_string(),
            path: url.path().to_owned(),
            status,
            detail,
        };
    }
    RegistryError::Status {
        method: method.to_string(),
        path: url.path().to_owned(),
        status,
        detail,
    }
}

/// A header as text, if present and readable.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A registry asking for a password (basic auth) where we hold an identity token: that token
/// is never sent as a password.
fn wants_a_password(method: &Method, path: String) -> RegistryError {
    RegistryError::Status {
        method: method.to_string(),
        path,
        status: 401,
        detail: Some(
            "the registry wants a password (basic auth), and the credentials are an identity token"
                .into(),
        ),
    }
}

/// A token service's refusal, with the status it answered (401 and 403 mean the credentials).
/// The access token (and its lifetime) of a token service's answer with `status`, or why
/// there is none.
fn granted(
    realm: &Url,
    status: u16,
    answer: Option<TokenResponse>,
) -> Result<(String, Option<u64>), RegistryError> {
    let fail = |reason: String| RegistryError::Token {
        realm: strip_query(realm.as_str()),
        reason,
        status: None,
    };
    let answer = answer
        .filter(|_| status == 200)
        .ok_or_else(|| with_status(fail(format!("HTTP {status}")), status))?;
    let token = answer
        .access_token
        .or(answer.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail("answer has no access_token".into()))?;
    Ok((token, answer.expires_in))
}

fn with_status(error: RegistryError, answered: u16) -> RegistryError {
    match error {
        RegistryError::Token { realm, reason, .. } => RegistryError::Token {
            realm,
            reason,
            status: Some(answered),
        },
        other => other,
    }
}
