//! A tiny loopback HTTP server for the harness's helpers (token service, flaky proxy).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Returned by a handler to drop the connection without an answer (a "reset").
#[derive(Debug)]
pub struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset on purpose")
    }
}

impl std::error::Error for Reset {}

pub type Reply = Result<Response<Full<Bytes>>, Reset>;
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Serve `handler` on 127.0.0.1 on a free port until the test's runtime ends.
pub async fn serve(handler: Handler) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handler(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

pub fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(body.into())).expect("valid response")
}

/// An answer from the upstream, with the hop-by-hop headers taken out.
pub struct Forwarded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Send `method path` with `headers` (all but `host`) and `body` to `upstream`, as a proxy
/// does. A failure to reach it becomes a reset.
pub async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    method: &hyper::Method,
    path: &str,
    headers: &hyper::HeaderMap,
    body: Bytes,
) -> Result<Forwarded, Reset> {
    let is_head = method == hyper::Method::HEAD;
    let mut request = client.request(method.clone(), format!("{upstream}{path}"));
    for (name, value) in headers {
        if name != "host" {
            request = request.header(name, value);
        }
    }
    let answer = request.body(body).send().await.map_err(|_| Reset)?;
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            n != "transfer-encoding" && n != "connection" && (is_head || n != "content-length")
        })
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = answer.bytes().await.unwrap_or_default();
    Ok(Forwarded {
        status,
        headers,
        body,
    })
}
