//! A loopback stand-in for the parts of Azure Container Registry that cannot run here: it
//! answers chosen requests with recorded responses from `tests/fixtures/acr/` (shaped like
//! ACR's published REST examples) and forwards everything else to a real registry, if given.
//! It logs every request, with its `Authorization` header and body.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;

use super::server::{forward, response, serve, Handler};

/// One recorded answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    /// `status` with the fixture `name`, its `{{key}}`s filled from `vars`.
    pub fn fixture(status: u16, name: &str, vars: &BTreeMap<&str, String>) -> Recorded {
        Recorded::from_dir("acr", status, name, vars)
    }

    /// `status` with the fixture `tests/fixtures/<dir>/<name>`, its `{{key}}`s filled.
    pub fn from_dir(dir: &str, status: u16, name: &str, vars: &BTreeMap<&str, String>) -> Recorded {
        let path = format!("{}/tests/fixtures/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for (k, v) in vars {
            body = body.replace(&format!("{{{{{k}}}}}"), v);
        }
        assert!(
            !body.contains("{{"),
            "{name}: a placeholder was not filled:\n{body}"
        );
        Recorded {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body,
        }
    }

    /// `status` with no body (ACR's 202 to a delete).
    pub fn empty(status: u16) -> Recorded {
        Recorded {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Recorded {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

struct Route {
    method: String,
    path: String,
    /// Answered in order; the last one repeats.
    replies: VecDeque<Recorded>,
}

#[derive(Default)]
struct State {
    routes: Vec<Route>,
    log: Vec<Seen>,
}

pub struct RecordedAcr {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl RecordedAcr {
    /// Start on a free loopback port; unmatched requests go to `upstream` (else 404).
    pub async fn start(upstream: Option<&str>) -> RecordedAcr {
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let upstream = upstream.map(str::to_owned);
        let client = reqwest::Client::new();
        let handler: Handler = Arc::new(move |req| {
            let state = shared.clone();
            let upstream = upstream.clone();
            let client = client.clone();
            Box::pin(async move {
                let req_method = req.method().clone();
                let method = req_method.to_string();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let authorization = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let headers = req.headers().clone();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let reply = {
                    let mut s = state.lock().unwrap();
                    s.log.push(Seen {
                        method: method.clone(),
                        path: path.clone(),
                        authorization,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let only_path = path.split('?').next().unwrap_or("");
                    s.routes
                        .iter_mut()
                        .find(|r| {
                            r.method == method
                                && (r.path == path
                                    || (!r.path.contains('?') && r.path == only_path))
                        })
                        .map(|r| {
                            if r.replies.len() > 1 {
                                r.replies.pop_front().unwrap()
                            } else {
                                r.replies[0].clone()
                            }
                        })
                };
                if let Some(r) = reply {
                    let headers: Vec<(&str, &str)> = r
                        .headers
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    return Ok(response(r.status, &headers, r.body));
                }
                let Some(upstream) = upstream else {
                    return Ok(response(404, &[], "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"no recorded response\"}]}"));
                };
                let answer =
                    forward(&client, &upstream, &req_method, &path, &headers, body).await?;
                let out: Vec<(&str, &str)> = answer
                    .headers
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                Ok(response(answer.status, &out, answer.body))
            })
        });
        let addr = serve(handler).await;
        RecordedAcr {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Answer `method path` with `replies`, in order, the last one repeating. A `path`
    /// without `?` matches any query.
    pub fn on(&self, method: &str, path: &str, replies: Vec<Recorded>) {
        assert!(!replies.is_empty());
        self.state.lock().unwrap().routes.push(Route {
            method: method.to_owned(),
            path: path.to_owned(),
            replies: replies.into(),
        });
    }

    /// Forget every route (the log stays).
    pub fn clear_routes(&self) {
        self.state.lock().unwrap().routes.clear();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().log.clone()
    }

    /// Requests whose path (without query) is `path`.
    pub fn seen_at(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.split('?').next() == Some(path))
            .collect()
    }

    /// ACR's 401: the challenge naming this server's token endpoint, and its error body.
    pub fn unauthorized(&self, scope: &str, vars: &BTreeMap<&str, String>) -> Recorded {
        Recorded::fixture(401, "Error.UNAUTHORIZED.json", vars).header(
            "www-authenticate",
            &format!(
                "Bearer realm=\"{}/oauth2/token\",service=\"acrapi.azurecr-test.io\",scope=\"{scope}\"",
                self.url
            ),
        )
    }
}
