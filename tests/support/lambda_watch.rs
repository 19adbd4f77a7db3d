//! The function under `cargo lambda watch`, which emulates the Lambda runtime and function
//! URLs on loopback. It builds into its own target folder so it never waits on the lock of
//! the `cargo test` that runs it, and it writes its log outside the project folder.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Watch {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// One HTTP client for every request to the function URL.
    http: reqwest::Client,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SIGTERM lets cargo-lambda stop the function it started; then make sure it is gone.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const TARGET_DIR: &str = "target/lambda-watch";

/// The function's environment: registry, policy file, state file, and more.
pub fn function_env(
    registry: &str,
    dir: &std::path::Path,
    policy: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let policy_path = dir.join("policy.json");
    std::fs::write(&policy_path, policy).unwrap();
    let mut env = vec![
        ("JANITOR_REGISTRY".to_owned(), registry.to_owned()),
        (
            "JANITOR_POLICY_FILE".to_owned(),
            policy_path.display().to_string(),
        ),
        (
            "JANITOR_STATE".to_owned(),
            format!("file:{}", dir.join("state.json").display()),
        ),
        ("JANITOR_LOG".to_owned(), "info".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

impl Watch {
    /// Start `cargo lambda watch` with this environment for the function, and wait until
    /// its function URL answers.
    pub async fn start(env: &[(String, String)]) -> Watch {
        super::init();
        let dir = tempfile::tempdir().expect("temporary folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let log = dir.path().join("watch.log");
        let out = std::fs::File::create(&log).expect("log");
        let mut cmd = Command::new("cargo");
        cmd.args([
            "lambda",
            "watch",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .args(["--bin", "registry-janitor"])
        .env("CARGO_TARGET_DIR", TARGET_DIR)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out);
        // The function inherits the watcher's environment (values such as a policy hold
        // commas, which `--env-var` would split).
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start cargo lambda watch: {e}; `pip install cargo-lambda` (.ci/run does)"
            )
        });
        let http = reqwest::Client::new();
        let mut watch = Watch {
            child,
            port,
            log,
            _dir: dir,
            http: http.clone(),
        };
        // The first request builds the function: allow for a cold build.
        let deadline = Instant::now() + Duration::from_secs(900);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = watch.child.try_wait() {
                panic!("cargo lambda watch exited ({status}):\n{}", watch.log());
            }
            if let Ok(r) = http.post(watch.url()).body("{}").send().await {
                if r.status() == 401 || r.status() == 503 || r.status() == 500 || r.status() == 400
                {
                    return watch;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "cargo lambda watch did not serve the function:\n{}",
            watch.log()
        );
    }

    /// The function URL.
    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/lambda-url/registry-janitor/",
            self.port
        )
    }

    /// POST a registry webhook to the function URL with `Authorization: Bearer <secret>`;
    /// the status and the body of the answer.
    pub async fn post_webhook(&self, secret: &str, body: &str) -> (u16, String) {
        let answer = self
            .http
            .post(self.url())
            .header("authorization", format!("Bearer {secret}"))
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(body.to_owned())
            .send()
            .await
            .expect("POST to the function URL");
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap_or_default())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `cargo lambda invoke` with a payload; returns the function's JSON answer.
    pub async fn invoke(&self, payload: &str) -> serde_json::Value {
        let out = tokio::process::Command::new("cargo")
            .args([
                "lambda",
                "invoke",
                "registry-janitor",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args([
                "--invoke-port",
                &self.port.to_string(),
                "--data-ascii",
                payload,
                "--output-format",
                "json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
            .await
            .expect("cargo lambda invoke");
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "invoke answered no JSON ({e}):\n{stdout}\n{}\nwatch log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            )
        })
    }
}

/// A distribution notification envelope with one manifest push event, as a registry sends it.
pub fn push_notification(event_id: &str, repository: &str, digest: &str, tag: &str) -> String {
    serde_json::json!({"events": [{
        "id": event_id,
        "timestamp": "2026-11-30T00:00:00Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "repository": repository, "tag": tag,
            "url": format!("http://registry/v2/{repository}/manifests/{digest}")
        },
        "request": {"id": format!("req-{event_id}"), "method": "PUT"},
        "source": {"addr": "registry:5000"}
    }]})
    .to_string()
}

/// An EventBridge scheduled event with this id (and a scheduled time of its own).
pub fn scheduled_event(id: &str) -> String {
    serde_json::json!({
        "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": format!("2026-11-30T00:00:00Z/{id}"),
        "region": "us-east-1", "resources": [], "detail": {}
    })
    .to_string()
}
