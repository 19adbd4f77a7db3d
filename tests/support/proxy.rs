//! A loopback proxy in front of the real registry that fails on purpose: it answers chosen
//! requests with 429/503 (and `Retry-After`), drops connections, rewrites bodies, loses the
//! pages of a tag listing, or holds a request until the test lets it go (to push something
//! while the janitor waits), and forwards everything else untouched. It logs every request
//! it saw. Started with a delay, it also holds every request that long before handling it (a
//! remote registry's round trip, on loopback).

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
    /// For a tags listing: forward, then answer at most this many tags, sorted, from after
    /// the `last` the request asks for, and never a `Link` header: a registry (or a proxy)
    /// that pages its listings and loses the link to every next page.
    PagesWithoutLink(usize),
    /// Hold the request until the test releases it, then forward it.
    Hold(Hold),
}

/// A request held by the proxy: the test waits for it to arrive, changes the registry, and
/// releases it.
#[derive(Debug, Clone)]
pub struct Hold {
    arrived: Arc<tokio::sync::Semaphore>,
    released: Arc<tokio::sync::Semaphore>,
}

impl Hold {
    fn new() -> Hold {
        Hold {
            arrived: Arc::new(tokio::sync::Semaphore::new(0)),
            released: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    /// Wait until the held request has arrived at the proxy (at most 60 s).
    pub async fn arrived(&self) {
        let permit = tokio::time::timeout(Duration::from_secs(60), self.arrived.acquire())
            .await
            .expect("the held request never came");
        permit.expect("semaphore open").forget();
    }

    /// Let the held request go on to the registry.
    pub fn release(&self) {
        self.released.add_permits(1);
    }
}

/// A fault waiting for its request.
struct Rule {
    /// Only requests with this method; any when `None`.
    method: Option<String>,
    /// Only requests whose path and query contain this.
    filter: String,
    fault: Fault,
    /// Applies to every matching request, not just the next one.
    always: bool,
}

#[derive(Default)]
struct State {
    /// Faults waiting for a matching request.
    faults: VecDeque<Rule>,
    /// (method, path and query, status or 0 for a reset)
    log: Vec<(String, String, u16)>,
    /// When each entry of `log` arrived at the proxy.
    arrived: Vec<Instant>,
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
                let arrived = Instant::now();
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
                    let at = s.faults.iter().position(|r| {
                        path.contains(r.filter.as_str())
                            && r.method.as_deref().is_none_or(|m| m == method)
                    });
                    match at {
                        Some(i) if s.faults[i].always => Some(s.faults[i].fault.clone()),
                        Some(i) => s.faults.remove(i).map(|r| r.fault),
                        None => None,
                    }
                };
                if let Some(Fault::Hold(hold)) = &fault {
                    hold.arrived.add_permits(1);
                    if let Ok(permit) = hold.released.acquire().await {
                        permit.forget();
                    }
                }
                let log = |status: u16| {
                    let mut s = state.lock().unwrap();
                    s.log.push((method.clone(), path.clone(), status));
                    s.arrived.push(arrived);
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
                    Some(Fault::PagesWithoutLink(size)) if status == 200 => {
                        body = Bytes::from(one_page(&body, &path, size));
                        headers.retain(|(n, _)| n != "link" && n != "content-length");
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
        self.add(None, path_contains, fault, false);
    }

    /// Inject `fault` into the next `method` request whose path and query contain
    /// `path_contains`.
    pub fn inject_on(&self, method: &str, path_contains: &str, fault: Fault) {
        self.add(Some(method), path_contains, fault, false);
    }

    /// Inject `fault` into every `method` request whose path and query contain
    /// `path_contains`, from now on.
    pub fn always(&self, method: &str, path_contains: &str, fault: Fault) {
        self.add(Some(method), path_contains, fault, true);
    }

    /// Hold the next `method` request whose path and query contain `path_contains`.
    pub fn hold(&self, method: &str, path_contains: &str) -> Hold {
        let hold = Hold::new();
        self.add(
            Some(method),
            path_contains,
            Fault::Hold(hold.clone()),
            false,
        );
        hold
    }

    fn add(&self, method: Option<&str>, filter: &str, fault: Fault, always: bool) {
        self.state.lock().unwrap().faults.push_back(Rule {
            method: method.map(str::to_owned),
            filter: filter.to_owned(),
            fault,
            always,
        });
    }

    /// Requests seen so far: (method, path and query, status; 0 for a reset).
    pub fn log(&self) -> Vec<(String, String, u16)> {
        self.state.lock().unwrap().log.clone()
    }

    /// When each request of `log()` was answered, in the same order.
    pub fn answered(&self) -> Vec<Instant> {
        self.state.lock().unwrap().answered.clone()
    }

    /// When each request of `log()` arrived, in the same order.
    pub fn arrived(&self) -> Vec<Instant> {
        self.state.lock().unwrap().arrived.clone()
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
        s.arrived.clear();
        s.answered.clear();
    }
}

/// One page of a tags listing: at most `size` of its tags, sorted, after the request's `last`.
fn one_page(body: &[u8], path_and_query: &str, size: usize) -> Vec<u8> {
    let mut listing: serde_json::Value = serde_json::from_slice(body).expect("a tags listing");
    let last = url::Url::parse(&format!("http://proxy{path_and_query}"))
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "last")
                .map(|(_, v)| v.into_owned())
        });
    let mut tags: Vec<String> = listing["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    let page: Vec<String> = tags
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .take(size)
        .collect();
    listing["tags"] = serde_json::json!(page);
    serde_json::to_vec(&listing).expect("JSON")
}
