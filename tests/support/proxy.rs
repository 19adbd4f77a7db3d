//! A loopback proxy in front of the real registry that fails on purpose: it answers chosen
//! requests with 429/503 (and `Retry-After`), drops connections, or rewrites bodies, and
//! forwards everything else untouched. It logs every request it saw. Started with a delay,
//! it also holds every request that long before handling it (a remote registry's round trip,
//! on loopback).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Bytes;

use super::server::{forward, response, serve, Handler, Reset};

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` if given) without asking the registry.
    Status(u16, Option<&'static str>),
    /// Drop the connection without an answer.
    Reset,
    /// Forward, then answer 200 with this body instead (and this content type, if given),
    /// without the registry's `Docker-Content-Digest`.
    ReplaceBody(Vec<u8>, Option<&'static str>),
    /// Forward, then append a byte to the body (content no longer matches its digest).
    Corrupt,
}

#[derive(Default)]
struct State {
    /// Faults waiting for a request whose path contains the filter.
    faults: VecDeque<(String, Fault)>,
    /// (method, path and query, status or 0 for a reset)
    log: Vec<(String, String, u16)>,
    /// When each entry of `log` was answered.
    answered: Vec<Instant>,
    /// Requests being handled now, and the most ever at once, by method.
    in_flight: BTreeMap<String, (usize, usize)>,
}

/// The name `peak_in_flight` knows GETs and HEADs together by.
pub const READS: &str = "GET+HEAD";

/// Counts a request as in flight from its arrival until its answer (or reset) is made.
struct InFlight {
    state: Arc<Mutex<State>>,
    method: String,
}

impl InFlight {
    fn enter(state: &Arc<Mutex<State>>, method: &str) -> InFlight {
        let mut s = state.lock().unwrap();
        let (now, peak) = s.in_flight.entry(method.to_owned()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
        InFlight {
            state: state.clone(),
            method: method.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.lock() {
            if let Some((now, _)) = s.in_flight.get_mut(&self.method) {
                *now -= 1;
            }
        }
    }
}

pub struct FlakyProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FlakyProxy {
    pub async fn start(upstream: &str) -> FlakyProxy {
        FlakyProxy::start_delayed(upstream, Duration::ZERO).await
    }

    /// As `start`, and every request waits `delay` before it is handled or faulted.
    pub async fn start_delayed(upstream: &str, delay: Duration) -> FlakyProxy {
        let state: Arc<Mutex<State>> = Arc::default();
        let upstream = upstream.to_owned();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let shared = state.clone();
        let handler: Handler = Arc::new(move |req| {
            let state = shared.clone();
            let client = client.clone();
            let upstream = upstream.clone();
            Box::pin(async move {
                let _counted = InFlight::enter(&state, req.method().as_str());
                let _read = matches!(req.method().as_str(), "GET" | "HEAD")
                    .then(|| InFlight::enter(&state, READS));
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let method = req.method().to_string();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let fault = {
                    let mut s = state.lock().unwrap();
                    let at = s
                        .faults
                        .iter()
                        .position(|(filter, _)| path.contains(filter.as_str()));
                    at.and_then(|i| s.faults.remove(i)).map(|(_, f)| f)
                };
                let log = |status: u16| {
                    let mut s = state.lock().unwrap();
                    s.log.push((method.clone(), path.clone(), status));
                    s.answered.push(Instant::now());
                };
                match &fault {
                    Some(Fault::Status(status, retry_after)) => {
                        log(*status);
                        let headers: Vec<(&str, &str)> =
                            retry_after.iter().map(|v| ("retry-after", *v)).collect();
                        return Ok(response(*status, &headers, "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected\"}]}"));
                    }
                    Some(Fault::Reset) => {
                        log(0);
                        return Err(Reset);
                    }
                    _ => {}
                }
                let (method_, headers_) = (req.method().clone(), req.headers().clone());
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let answer = forward(&client, &upstream, &method_, &path, &headers_, body).await?;
                let mut status = answer.status;
                let mut headers = answer.headers;
                let mut body: Bytes = answer.body;
                match fault {
                    Some(Fault::ReplaceBody(bytes, content_type)) => {
                        status = 200;
                        body = Bytes::from(bytes);
                        headers.retain(|(n, _)| n != "docker-content-digest");
                        if let Some(ct) = content_type {
                            headers.retain(|(n, _)| n != "content-type");
                            headers.push(("content-type".into(), ct.into()));
                        }
                    }
                    Some(Fault::Corrupt) => {
                        let mut v = body.to_vec();
                        v.push(b' ');
                        body = Bytes::from(v);
                    }
                    _ => {}
                }
                log(status);
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                Ok(response(status, &headers, body))
            })
        });
        let addr = serve(handler).await;
        FlakyProxy {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Inject `fault` into the next request whose path and query contain `path_contains`.
    pub fn inject(&self, path_contains: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push_back((path_contains.to_owned(), fault));
    }

    /// Requests seen so far: (method, path and query, status; 0 for a reset).
    pub fn log(&self) -> Vec<(String, String, u16)> {
        self.state.lock().unwrap().log.clone()
    }

    /// When each request of `log()` was answered, in the same order.
    pub fn answered(&self) -> Vec<Instant> {
        self.state.lock().unwrap().answered.clone()
    }

    /// The most requests with `method` the proxy was handling at once.
    pub fn peak_in_flight(&self, method: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .in_flight
            .get(method)
            .map_or(0, |(_, peak)| *peak)
    }

    pub fn count(&self, path_contains: &str) -> usize {
        self.log()
            .iter()
            .filter(|(_, p, _)| p.contains(path_contains))
            .count()
    }

    pub fn clear_log(&self) {
        let mut s = self.state.lock().unwrap();
        s.log.clear();
        s.answered.clear();
    }
}
