//! The serverless face: one Lambda handler for timers, push webhooks and direct invocations.
//!
//! It only turns an event into a sweep of the right scope and a response; the engine does the
//! rest. The configuration is checked once at cold start. A bad one makes every invocation
//! answer with the same clear error instead of crashing in a loop.

pub mod config;
pub mod metrics;
mod queued;
pub mod secrets;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use chrono::Utc;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use tokio::sync::RwLock;

use crate::plan::Cause;
use crate::registry::{ClientOptions, RegistryError};
use crate::report::Report;
use crate::state::StateError;
use crate::sweep::scope;
use crate::trigger::{self, Decision, Job, Origin, Scope, TriggerError};
use crate::wiring::{Inventory, Settings, WiringError};
use config::{Config, StateChoice};
use secrets::Secrets;

/// In-flight requests may run this long past the point where no new work starts (the
/// deadline, less the margin, or the run budget): still 2 s before Lambda's own deadline, so a
/// run cut short answers and emits its metrics.
const CUTOFF_AFTER_DEADLINE: Duration = Duration::from_secs(8);

/// Deletes stop this long before the function's deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Run the Lambda runtime loop (called by `main` when `AWS_LAMBDA_RUNTIME_API` is set).
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let filter = tracing_subscriber::EnvFilter::try_from_env(config::vars::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,registry_janitor=info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .init();
    let app = Arc::new(App::cold_start(|k| std::env::var(k).ok()).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        async move { app.handle(event.payload, event.context.deadline).await }
    }))
    .await
}

pub struct App {
    config: Result<Config, String>,
    secrets_manager: Option<aws_sdk_secretsmanager::Client>,
    dynamo: Option<aws_sdk_dynamodb::Client>,
    secrets: RwLock<Result<Secrets, String>>,
    env_secrets: Result<Secrets, String>,
    /// The work queue (`JANITOR_QUEUE_URL`): schedules and webhooks queue work there.
    queue: Option<crate::queue::Queue>,
    /// When a refused webhook last made this instance read the secrets again.
    secrets_reread: tokio::sync::Mutex<Option<Instant>>,
}

/// A refused webhook reads the secrets again at most this often.
const SECRET_REREAD_INTERVAL: Duration = Duration::from_secs(60);

impl App {
    pub async fn cold_start(env: impl Fn(&str) -> Option<String>) -> App {
        let config = Config::from_env(&env).map_err(|e| e.to_string());
        if let Err(e) = &config {
            tracing::error!(error = %e, "configuration error; every invocation will report it");
        }
        let host = config.as_ref().map(|c| c.host.clone()).unwrap_or_default();
        let env_secrets = Secrets::from_env(&host, &env);
        let needs_aws = config.as_ref().is_ok_and(|c| {
            c.secret_id.is_some()
                || c.queue_url.is_some()
                || matches!(c.state, StateChoice::Dynamo(_))
        });
        let (secrets_manager, dynamo, queue) = if needs_aws {
            let sdk = aws_sdk_config().await;
            let queue = config.as_ref().ok().and_then(|c| c.queue_url.clone());
            (
                Some(aws_sdk_secretsmanager::Client::new(&sdk)),
                Some(aws_sdk_dynamodb::Client::new(&sdk)),
                queue.map(|url| crate::queue::Queue::new(aws_sdk_sqs::Client::new(&sdk), url)),
            )
        } else {
            (None, None, None)
        };
        let app = App {
            config,
            secrets_manager,
            dynamo,
            secrets: RwLock::new(Err("not read yet".into())),
            env_secrets,
            queue,
            secrets_reread: tokio::sync::Mutex::new(None),
        };
        app.reload_secrets().await;
        app
    }

    /// The webhook secret as last read, or why the secrets cannot be read.
    async fn webhook_secret(&self) -> Result<Option<String>, String> {
        match &*self.secrets.read().await {
            Ok(s) => Ok(s.webhook_secret.clone()),
            Err(e) => Err(format!("cannot read the secrets: {e}")),
        }
    }

    /// Whether a refused webhook may read the secrets again: at most once a minute, so a
    /// stream of wrong secrets cannot turn into a stream of Secrets Manager calls.
    async fn may_reread_secrets(&self) -> bool {
        let mut last = self.secrets_reread.lock().await;
        if last.is_some_and(|t| t.elapsed() < SECRET_REREAD_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Read the secrets again (at cold start, and when the registry refuses the credentials,
    /// so a rotation takes effect without a new deployment).
    async fn reload_secrets(&self) {
        let fresh = match (&self.config, &self.secrets_manager) {
            (
                Ok(Config {
                    secret_id: Some(id),
                    ..
                }),
                Some(client),
            ) => Secrets::from_secrets_manager(client, id).await,
            _ => self.env_secrets.clone(),
        };
        let mut secrets = self.secrets.write().await;
        match fresh {
            Ok(fresh) => *secrets = Ok(fresh),
            // Secrets read before stay in use: a throttled or failed re-read must not turn a
            // working instance into one that refuses everything until its next cold start.
            Err(e) if secrets.is_ok() => {
                tracing::error!(error = %e, "cannot read the secrets again; keeping the ones read before")
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the secrets");
                *secrets = Err(e);
            }
        }
    }

    /// Handle one invocation. HTTP requests always get an HTTP response; other events get the
    /// report, or an error that names what was expected.
    pub async fn handle(
        &self,
        payload: Value,
        deadline_ms: u64,
    ) -> Result<Value, lambda_runtime::Error> {
        // The run budget (JANITOR_MAX_RUN_SECONDS) counts from now, and never passes the
        // Lambda deadline's margin.
        let budget = self
            .config
            .as_ref()
            .ok()
            .and_then(|c| c.max_run)
            .map(|d| Instant::now() + d);
        let deadline = match (deadline_instant(deadline_ms), budget) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if is_http(&payload) {
            let (status, body) = self.handle_http(payload, deadline).await;
            return Ok(http_response(status, &body));
        }
        let config = self
            .config
            .as_ref()
            .map_err(|e| format!("configuration error: {e}"))?;
        if trigger::sqs::is_sqs(&payload) {
            return self.work(config, &payload, deadline).await;
        }
        match trigger::event::decode(&payload) {
            Ok(Decision::Run(job)) if job.origin == Origin::Schedule && self.queue.is_some() => {
                let result = self.dispatch(config, job).await;
                Ok(result.map_err(|e| e.to_string())?)
            }
            // A push that came as an event (ECR's, through EventBridge) is queued like a
            // webhook's; a queue that refuses it fails the invocation, so EventBridge retries.
            Ok(Decision::Run(job)) if job.origin == Origin::Webhook && self.queue.is_some() => {
                match self.enqueue(config, job).await {
                    (status, body) if status >= 500 => Err(body.to_string().into()),
                    (_, body) => Ok(body),
                }
            }
            Ok(Decision::Run(job)) => {
                let origin = job.origin;
                let result = self.run_job(config, job, deadline).await;
                emit_metrics(origin, result.as_ref().ok(), u64::from(result.is_err()));
                Ok(serde_json::to_value(result.map_err(|e| e.to_string())?)?)
            }
            Ok(Decision::Ignore(reason)) => Ok(json!({ "ignored": reason })),
            Err(e) => Err(e.to_string().into()),
        }
    }

    async fn handle_http(&self, payload: Value, deadline: Option<Instant>) -> (u16, Value) {
        let request: ApiGatewayV2httpRequest = match serde_json::from_value(payload) {
            Ok(r) => r,
            Err(e) => {
                return (
                    400,
                    json!({ "error": format!("not an HTTP request of payload 2.0: {e}") }),
                )
            }
        };
        let config = match &self.config {
            Ok(c) => c,
            Err(e) => return (500, json!({ "error": format!("configuration error: {e}") })),
        };
        let mut decided = match self.webhook_secret().await {
            Ok(secret) => trigger::http::decode(&request, secret.as_deref()),
            Err(e) => return (500, json!({ "error": e })),
        };
        // A secret that does not match may have been rotated since this instance read it:
        // read it again, at most once a minute, and decide once more. A request with no
        // secret at all is no rotation.
        if matches!(decided, Err(TriggerError::Unauthorized))
            && trigger::http::presented_secret(&request).is_some()
            && self.may_reread_secrets().await
        {
            self.reload_secrets().await;
            decided = match self.webhook_secret().await {
                Ok(secret) => trigger::http::decode(&request, secret.as_deref()),
                Err(e) => return (500, json!({ "error": e })),
            };
        }
        match decided {
            Ok(Decision::Run(job)) if self.queue.is_some() => self.enqueue(config, job).await,
            Ok(Decision::Run(job)) => {
                let result = self.run_job(config, job, deadline).await;
                emit_metrics(
                    Origin::Webhook,
                    result.as_ref().ok(),
                    u64::from(result.is_err()),
                );
                // A repository that could not be read answers 500, so the registry delivers the
                // webhook again: a retry may read it. Failed actions (a delete the registry
                // refuses) answer 200 with the report: delivering again would fail again, and
                // distribution retries without end, holding back its later events.
                match result {
                    Ok(report) => {
                        let unread = report.repositories.iter().any(|r| r.unreadable());
                        (
                            if unread { 500 } else { 200 },
                            serde_json::to_value(report).unwrap_or(Value::Null),
                        )
                    }
                    Err(e) => (500, json!({ "error": e.to_string() })),
                }
            }
            Ok(Decision::Ignore(reason)) => (200, json!({ "ignored": reason })),
            Err(e) => {
                tracing::warn!(status = e.status(), reason = %e, "webhook refused");
                (e.status(), json!({ "error": e.to_string() }))
            }
        }
    }

    /// Sweep what the job names. A registry that refuses the credentials gets one more try
    /// with the secrets read again.
    async fn run_job(
        &self,
        config: &Config,
        job: Job,
        deadline: Option<Instant>,
    ) -> Result<Report, JobError> {
        // The images in use, read once for this job (one invocation, whatever the number of
        // repositories in it, and not again for a second try); one that cannot be read
        // makes every repository incomplete.
        let mut policy = crate::in_use::resolve(&config.policy, &config.registry).await;
        // An unattended run deletes at most half a repository unless the policy says
        // otherwise, or a direct invocation says this once is meant.
        policy.limits = policy.limits.unattended(job.allow_over_limit);
        if job.allow_over_limit {
            tracing::warn!("allow_over_limit: this run may delete past the policy's limits");
        }
        let policy = &policy;
        let report = match self.sweep(config, policy, &job, deadline).await {
            Err(e) if e.is_credentials() => {
                self.reload_secrets().await;
                return self.sweep(config, policy, &job, deadline).await;
            }
            other => other?,
        };
        // Only the repositories the registry refused are swept again: the others are done.
        let refused: std::collections::BTreeSet<String> = report
            .repositories
            .iter()
            .filter(|r| r.cause() == Some(Cause::Credentials))
            .map(|r| r.name.clone())
            .collect();
        if refused.is_empty() {
            return Ok(report);
        }
        self.reload_secrets().await;
        let again = Job {
            scope: Scope::Repositories(refused),
            pushed: Vec::new(),
            ..job
        };
        match self.sweep(config, policy, &again, deadline).await {
            Ok(second) => Ok(report.replacing(second)),
            Err(e) => {
                tracing::error!(error = %e, "sweeping the refused repositories again failed; they stay incomplete");
                Ok(report)
            }
        }
    }

    /// One sweep of `job` under `policy`, whose images in use are read already.
    async fn sweep(
        &self,
        config: &Config,
        policy: &crate::policy::Policy,
        job: &Job,
        deadline: Option<Instant>,
    ) -> Result<Report, JobError> {
        let mut wired = self.settings(config, deadline).await?.wire()?;
        policy.fits(wired.backend.as_ref())?;
        let now = Utc::now();
        let mut sweeper = wired.sweeper(policy, now).deadline(deadline);
        sweeper.remember(&job.pushed).await?;
        let repositories: Vec<String> = match &job.scope {
            Scope::Policy => scope(sweeper.client, policy, &[]).await?,
            Scope::Repositories(names) => covered(policy, names),
        };
        let outcome = sweeper
            .run(&repositories, !config.dry_run, |_, _, _| {})
            .await?;
        Ok(Report::new(now, config.dry_run, outcome.repositories)
            .left_for_next_run(outcome.unfinished)
            .with_in_use(&policy.protect.running))
    }

    /// The configuration and the current secrets as one settings value, for a run that
    /// starts no new work after `deadline`.
    async fn settings(
        &self,
        config: &Config,
        deadline: Option<Instant>,
    ) -> Result<Settings, JobError> {
        let credentials = self
            .secrets
            .read()
            .await
            .as_ref()
            .map_err(|e| JobError::Secrets(e.clone()))?
            .credentials
            .clone();
        let inventory = match &config.state {
            StateChoice::None => Inventory::None,
            StateChoice::File(path) => Inventory::File(path.clone()),
            StateChoice::Dynamo(table) => match &self.dynamo {
                Some(c) => Inventory::Dynamo {
                    table: table.clone(),
                    client: c.clone(),
                },
                None => return Err(JobError::NoDynamo),
            },
        };
        Ok(Settings {
            // The function's journal (S3) is not built yet: it keeps none.
            journal: None,
            registry: config.registry.clone(),
            client: ClientOptions {
                credentials,
                in_flight: config.concurrency,
                max_writes_per_minute: config.writes_per_minute,
                write_shares: config.write_shares,
                cutoff: deadline.map(|d| d + CUTOFF_AFTER_DEADLINE),
                ..ClientOptions::default()
            },
            inventory,
        })
    }
}

/// The named repositories that some rule covers; the others are logged and left alone.
fn covered(
    policy: &crate::policy::Policy,
    names: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            let covered = policy.covers(n);
            if !covered {
                tracing::info!(repository = %n, "no rule covers this repository; not swept");
            }
            covered
        })
        .cloned()
        .collect()
}

/// Why a job failed. The text is the answer's `error`; the Lambda face branches on the kind.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The secrets could not be read (the text says which and why).
    #[error("{0}")]
    Secrets(String),
    #[error("DynamoDB client not configured")]
    NoDynamo,
    #[error("JANITOR_QUEUE_URL is not set: there is no work queue")]
    NoQueue,
    #[error("{0} took too long")]
    TimedOut(&'static str),
    #[error(transparent)]
    Wiring(#[from] WiringError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// The policy asks what the registry cannot give (`Policy::fits`).
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

impl JobError {
    /// The registry wanted or refused the credentials: a rotated secret may fix it.
    pub fn is_credentials(&self) -> bool {
        match self {
            JobError::Registry(e) | JobError::Wiring(WiringError::Registry(e)) => {
                e.is_credentials()
            }
            _ => false,
        }
    }
}

/// The AWS SDK configuration (`aws::sdk_config`).
async fn aws_sdk_config() -> aws_config::SdkConfig {
    crate::aws::sdk_config(None).await
}

/// The AWS SDK's HTTP client (`aws::http_client`), for tests that build SDK clients.
pub fn aws_http_client() -> aws_sdk_ecr::config::SharedHttpClient {
    crate::aws::http_client()
}

/// Function URLs and API Gateway HTTP APIs (payload 2.0) both carry these.
fn is_http(payload: &Value) -> bool {
    payload.get("requestContext").is_some() && payload.get("rawPath").is_some()
}

/// The Lambda deadline as an instant, minus the margin. Lambda sends milliseconds since the
/// epoch; `cargo lambda watch` sends the timeout itself (600000): a value too small to be a
/// date is read as time left.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    if deadline_ms == 0 {
        return None;
    }
    let left = if deadline_ms < YEAR_2001_MS {
        Duration::from_millis(deadline_ms)
    } else {
        let now_ms = Utc::now().timestamp_millis().max(0) as u64;
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    tracing::info!(time_left_ms = left.as_millis() as u64, "invocation");
    Some(Instant::now() + left.saturating_sub(DEADLINE_MARGIN))
}

/// The whole API Gateway v2 response shape (function URLs answer 500 without it).
fn http_response(status: u16, body: &Value) -> Value {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers.insert(
        "content-type",
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    response.body = Some(Body::Text(body.to_string()));
    response.is_base64_encoded = false;
    serde_json::to_value(response).unwrap_or_else(|_| json!({ "statusCode": 500 }))
}

/// The end of a run: its metrics (EMF) and one summary log line.
fn emit_metrics(origin: Origin, report: Option<&Report>, errors: u64) {
    println!(
        "{}",
        metrics::emf(origin, report, errors, Utc::now().timestamp_millis())
    );
    match report {
        Some(r) => {
            let s = &r.summary;
            tracing::info!(
                origin = origin.as_str(),
                dry_run = r.dry_run,
                repositories = r.repositories.len(),
                manifests_deleted = s.manifests_deleted,
                tags_removed = s.tags_removed,
                bytes_reclaimable = s.bytes_reclaimable,
                incomplete = s.repositories_incomplete,
                unfinished = s.repositories_unfinished,
                held = s.repositories_held,
                unfinished_repositories = ?r.unfinished,
                failed = r.has_failures(),
                "run summary"
            );
        }
        None => tracing::error!(
            origin = origin.as_str(),
            errors,
            "run summary: the run failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_read_as_dates_or_as_time_left() {
        let soon = deadline_instant((Utc::now().timestamp_millis() + 60_000) as u64).unwrap();
        let left = soon.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(45) && left <= Duration::from_secs(50),
            "{left:?}"
        );
        let relative = deadline_instant(600_000).unwrap();
        assert!(relative.saturating_duration_since(Instant::now()) > Duration::from_secs(580));
        let passed = deadline_instant((Utc::now().timestamp_millis() - 1) as u64).unwrap();
        assert!(passed <= Instant::now());
        assert!(deadline_instant(0).is_none());
    }

    fn function_url_request(secret: &str) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {"authorization": format!("Bearer {secret}")},
            "requestContext": {"http": {"method": "POST", "path": "/"}},
            "body": "{\"events\":[]}", "isBase64Encoded": false
        })
    }

    #[tokio::test]
    async fn a_bad_configuration_answers_every_invocation_with_the_same_clear_error() {
        let app =
            App::cold_start(|k| (k == "JANITOR_REGISTRY").then(|| "http://127.0.0.1:9".to_owned()))
                .await;
        let err = app
            .handle(json!({"repository": "app"}), 0)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("JANITOR_POLICY"), "{err}");
        let answer = app.handle(function_url_request("x"), 0).await.unwrap();
        assert_eq!(answer["statusCode"], 500);
        assert!(answer["body"]
            .as_str()
            .unwrap()
            .contains("configuration error"));
    }

    #[tokio::test]
    async fn webhooks_without_a_configured_secret_get_503_and_unknown_events_an_error() {
        let env = |k: &str| match k {
            "JANITOR_REGISTRY" => Some("http://127.0.0.1:9".to_owned()),
            "JANITOR_POLICY" => Some(r#"{"rules":[{"name":"u","select":"untagged"}]}"#.to_owned()),
            _ => None,
        };
        let app = App::cold_start(env).await;
        let answer = app
            .handle(function_url_request("anything"), 0)
            .await
            .unwrap();
        assert_eq!(answer["statusCode"], 503, "{answer}");
        for key in [
            "statusCode",
            "headers",
            "multiValueHeaders",
            "body",
            "isBase64Encoded",
            "cookies",
        ] {
            assert!(answer.get(key).is_some(), "response lacks {key}: {answer}");
        }
        let err = app.handle(json!({"hello": "world"}), 0).await.unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
        let ignored = app.handle(json!({"detail-type": "Other"}), 0).await;
        assert!(ignored.is_err());
    }
}
