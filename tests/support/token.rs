//! A bearer-token service for distribution's `auth: token`, served on loopback.
//!
//! It checks basic credentials, grants exactly the scopes asked for, and signs RS256 JWTs
//! with a throwaway key whose certificate the registry trusts (`rootcertbundle`), carried in
//! the `x5c` header as distribution 2.8 verifies it. Signing uses the `openssl` command.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;

use super::server::{response, serve, Handler};

pub const SERVICE: &str = "janitor-test-registry";
pub const ISSUER: &str = "janitor-test-issuer";

pub struct TokenServer {
    pub url: String,
    dir: tempfile::TempDir,
    username: String,
    password: String,
    requests: AtomicUsize,
    /// Scopes asked for, in order.
    scopes: std::sync::Mutex<Vec<String>>,
    /// `expires_in` of issued tokens.
    pub lifetime: u64,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenServer {
    /// Start a token service that accepts `username`/`password`.
    pub async fn start(username: &str, password: &str) -> Arc<TokenServer> {
        TokenServer::start_with_lifetime(username, password, 300).await
    }

    pub async fn start_with_lifetime(
        username: &str,
        password: &str,
        lifetime: u64,
    ) -> Arc<TokenServer> {
        super::init();
        let dir = tempfile::tempdir().expect("temporary folder");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        super::run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=janitor-test-token",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        let slot: Arc<std::sync::OnceLock<Arc<TokenServer>>> = Arc::new(std::sync::OnceLock::new());
        let for_handler = slot.clone();
        let handler: Handler = Arc::new(move |req| {
            let server = for_handler.get().cloned();
            Box::pin(async move {
                let Some(server) = server else {
                    return Ok(response(503, &[], "starting"));
                };
                Ok(server.answer(&req))
            })
        });
        let addr = serve(handler).await;
        let server = Arc::new(TokenServer {
            url: format!("http://{addr}"),
            dir,
            username: username.to_owned(),
            password: password.to_owned(),
            requests: AtomicUsize::new(0),
            scopes: Default::default(),
            lifetime,
        });
        let _ = slot.set(server.clone());
        server
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Token requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn scopes_requested(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }

    fn answer(
        &self,
        req: &hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.username, self.password))
        );
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return response(
                401,
                &[("content-type", "application/json")],
                r#"{"details":"bad credentials"}"#,
            );
        }
        let query = req.uri().query().unwrap_or("");
        let mut grants = Vec::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k == "scope" {
                self.scopes.lock().unwrap().push(v.to_string());
                let (kind, rest) = v.split_once(':').unwrap_or(("", ""));
                let (name, actions) = rest.rsplit_once(':').unwrap_or(("", ""));
                grants.push((kind.to_owned(), name.to_owned(), actions.to_owned()));
            }
        }
        let grants: Vec<(&str, &str, &str)> = grants
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        let token = self.mint(&grants);
        let body = json!({ "token": token, "expires_in": self.lifetime }).to_string();
        response(200, &[("content-type", "application/json")], body)
    }

    /// A signed token granting `(type, name, "action,action")` entries.
    pub fn mint(&self, access: &[(&str, &str, &str)]) -> String {
        let pem = std::fs::read_to_string(self.cert_path()).unwrap();
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let header = json!({ "typ": "JWT", "alg": "RS256", "x5c": [der_b64] });
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let access: Vec<_> = access
            .iter()
            .map(|(kind, name, actions)| json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
            .collect();
        let claims = json!({
            "iss": ISSUER, "sub": self.username, "aud": SERVICE,
            "exp": now + self.lifetime, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", self.requests()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(self.dir.path().join("key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst failed");
        format!("{signing_input}.{}", b64url(&out.stdout))
    }
}
