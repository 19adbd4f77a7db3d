//! A loopback stand-in for what moto's ECR lacks (pull times, `subjectManifestDigest`,
//! paginated listings, `ImageReferencedByManifestList`): it answers chosen ECR calls with
//! recorded responses from `tests/fixtures/ecr/` (shaped like the ECR API reference's
//! examples) and forwards everything else to a moto server, where the test pushed the real
//! images. It logs every call (its `X-Amz-Target` operation and JSON body).
//!
//! ECS speaks the same protocol, so the ECS provider's tests use it too, with
//! `tests/fixtures/ecs/` ([`recorded`]) for what moto's ECS lacks.
//!
//! The janitor reaches it through `AWS_ENDPOINT_URL`, as it reaches moto.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::body::Bytes;
use serde_json::Value;

use super::acr::Recorded;
use super::server::{forward, response, serve, Handler};

/// ECR's JSON protocol (`awsJson1_1`).
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// One call the stand-in saw.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operation, from `X-Amz-Target` (`DescribeImages`); empty for a REST call (S3).
    pub operation: String,
    /// The method and the path with its query (`GET /lists/in-use.txt`).
    pub request: String,
    pub body: Value,
}

/// How the stand-in answers a call.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This recorded response.
    Recorded(Recorded),
    /// `BatchDeleteImage` with the recorded answer's `failures`: the digests they name never
    /// reach moto, the call's other digests do, and moto's answer is given with the recorded
    /// failures added (ECR answers each item on its own).
    Refusing(Recorded),
    /// moto's own answer, with this change to its JSON body: for a field moto sends in
    /// another type than the service does (moto's `DescribeTasks` sends a container's `cpu`
    /// and `memory` as numbers, where ECS sends strings and the SDK refuses numbers).
    Amended(fn(&mut Value)),
}

struct Route {
    /// The `X-Amz-Target` operation; empty for a REST call (Lambda, S3).
    operation: String,
    /// The call's JSON body must contain this text (`""`: any call); for a REST call, its
    /// request (`GET /2015-03-31/functions/api?Qualifier=1`) must start with it.
    when: String,
    answer: Answer,
}

impl Route {
    fn matches(&self, operation: &str, request: &str, body: &str) -> bool {
        if self.operation.is_empty() {
            operation.is_empty() && request.starts_with(&self.when)
        } else {
            self.operation == operation && body.contains(&self.when)
        }
    }
}

#[derive(Default)]
struct State {
    routes: Vec<Route>,
    log: Vec<Call>,
}

pub struct RecordedEcr {
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// A recorded ECR answer: `status` with `tests/fixtures/ecr/<name>`, its `{{key}}`s filled.
pub fn fixture(status: u16, name: &str, vars: &BTreeMap<&str, String>) -> Recorded {
    recorded("ecr", status, name, vars)
}

/// A recorded `awsJson1_1` answer: `status` with `tests/fixtures/<dir>/<name>`, filled.
pub fn recorded(dir: &str, status: u16, name: &str, vars: &BTreeMap<&str, String>) -> Recorded {
    let mut r = Recorded::from_dir(dir, status, name, vars);
    r.headers = vec![("content-type".into(), CONTENT_TYPE.into())];
    r
}

impl RecordedEcr {
    /// Start on a free loopback port, forwarding unmatched calls to moto at `upstream`.
    pub async fn start(upstream: &str) -> RecordedEcr {
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let upstream = upstream.to_owned();
        let client = reqwest::Client::new();
        let handler: Handler = Arc::new(move |req| {
            let state = shared.clone();
            let upstream = upstream.clone();
            let client = client.clone();
            Box::pin(async move {
                let method = req.method().clone();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let mut headers = req.headers().clone();
                let operation = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|t| t.rsplit('.').next())
                    .unwrap_or_default()
                    .to_owned();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body).into_owned();
                let answer = {
                    let mut s = state.lock().unwrap();
                    s.log.push(Call {
                        operation: operation.clone(),
                        request: format!("{method} {path}"),
                        body: serde_json::from_str(&text).unwrap_or(Value::Null),
                    });
                    s.routes
                        .iter()
                        .find(|r| r.matches(&operation, &format!("{method} {path}"), &text))
                        .map(|r| r.answer.clone())
                };
                // reqwest sets the length of the body it sends.
                headers.remove("content-length");
                match answer {
                    Some(Answer::Recorded(r)) => {
                        let headers: Vec<(&str, &str)> = r
                            .headers
                            .iter()
                            .map(|(a, b)| (a.as_str(), b.as_str()))
                            .collect();
                        Ok(response(r.status, &headers, r.body))
                    }
                    Some(Answer::Refusing(recorded)) => {
                        let recorded: Value =
                            serde_json::from_str(&recorded.body).unwrap_or(Value::Null);
                        let refusals = recorded["failures"].as_array().cloned().unwrap_or_default();
                        let refused: BTreeSet<String> = refusals
                            .iter()
                            .filter_map(|f| f["imageId"]["imageDigest"].as_str())
                            .map(str::to_owned)
                            .collect();
                        let mut call: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let ids = call["imageIds"].as_array().cloned().unwrap_or_default();
                        let digest = |id: &Value| id["imageDigest"].as_str().map(str::to_owned);
                        let asked: BTreeSet<String> = ids.iter().filter_map(digest).collect();
                        let theirs: Vec<Value> = ids
                            .into_iter()
                            .filter(|id| !digest(id).is_some_and(|d| refused.contains(&d)))
                            .collect();
                        call["imageIds"] = Value::Array(theirs);
                        let sent = Bytes::from(call.to_string());
                        let answer =
                            forward(&client, &upstream, &method, &path, &headers, sent).await?;
                        let mut out: Value =
                            serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                        if let Some(failures) = out["failures"].as_array_mut() {
                            failures.extend(refusals.into_iter().filter(|f| {
                                f["imageId"]["imageDigest"]
                                    .as_str()
                                    .is_some_and(|d| asked.contains(d))
                            }));
                        }
                        Ok(response(
                            answer.status,
                            &[("content-type", CONTENT_TYPE)],
                            out.to_string(),
                        ))
                    }
                    Some(Answer::Amended(change)) => {
                        let answer =
                            forward(&client, &upstream, &method, &path, &headers, body).await?;
                        let mut out: Value =
                            serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                        change(&mut out);
                        Ok(response(
                            answer.status,
                            &[("content-type", CONTENT_TYPE)],
                            out.to_string(),
                        ))
                    }
                    None => {
                        let answer =
                            forward(&client, &upstream, &method, &path, &headers, body).await?;
                        let out: Vec<(&str, &str)> = answer
                            .headers
                            .iter()
                            .map(|(a, b)| (a.as_str(), b.as_str()))
                            .collect();
                        Ok(response(answer.status, &out, answer.body))
                    }
                }
            })
        });
        let addr = serve(handler).await;
        RecordedEcr {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Answer every `operation` call whose JSON body contains `when` with `answer`. Routes
    /// are tried in the order they were added.
    pub fn on(&self, operation: &str, when: &str, answer: Answer) {
        self.state.lock().unwrap().routes.push(Route {
            operation: operation.to_owned(),
            when: when.to_owned(),
            answer,
        });
    }

    /// Answer every REST call (one `X-Amz-Target` does not name: Lambda's, S3's) whose
    /// request starts with `request` (`GET /2015-03-31/functions/api?Qualifier=1`) with
    /// `answer`.
    pub fn on_request(&self, request: &str, answer: Answer) {
        self.on("", request, answer);
    }

    /// The calls of `operation` so far, in order.
    pub fn calls(&self, operation: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|c| c.operation == operation)
            .map(|c| c.body.clone())
            .collect()
    }

    /// The requests (`GET /bucket/key`) of every call so far that `X-Amz-Target` does not
    /// name (S3's REST calls), in order.
    pub fn requests(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|c| c.operation.is_empty())
            .map(|c| c.request.clone())
            .collect()
    }

    /// The operation of every call so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .map(|c| c.operation.clone())
            .collect()
    }
}

/// ECR's timestamp on the wire (`awsJson1_1`): seconds since the epoch, with a fraction.
pub fn epoch(t: chrono::DateTime<chrono::Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

/// moto sends a task's containers' `cpu` and `memory` as numbers; ECS sends strings, and the
/// SDK refuses numbers. The stand-in turns them into strings in moto's `DescribeTasks`.
pub fn moto_container_numbers(answer: &mut Value) {
    for task in answer["tasks"].as_array_mut().into_iter().flatten() {
        for c in task["containers"].as_array_mut().into_iter().flatten() {
            for field in ["cpu", "memory"] {
                if let Some(n) = c[field].as_i64() {
                    c[field] = n.to_string().into();
                }
            }
        }
    }
}

/// "Op: n, ..." for the counted operations that `columns` leaves out ("0" when none): the
/// benches' "other" column.
pub fn others(calls: &BTreeMap<String, usize>, columns: &[&str]) -> String {
    let parts: Vec<String> = calls
        .iter()
        .filter(|(op, _)| !columns.contains(&op.as_str()))
        .map(|(op, n)| format!("{op}: {n}"))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(", ")
    }
}
