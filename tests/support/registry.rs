//! Start and stop a real distribution registry for one test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::token::TokenServer;

/// How the test registry authenticates clients.
#[derive(Clone)]
pub enum RegistryAuth {
    None,
    /// `auth: htpasswd` with one user.
    Basic {
        username: String,
        password: String,
    },
    /// `auth: token` with a realm served by the test's own token server.
    Token(Arc<TokenServer>),
}

/// A running `docker-registry`. Dropping it stops the process and removes its storage.
pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// The storage folder: `<dir>/data`, or the folder given to `start_on`.
    data: PathBuf,
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub auth: RegistryAuth,
    pub(crate) http: reqwest::Client,
}

impl TestRegistry {
    /// The registry process's id (benches read its CPU time from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The registry binary: `$REGISTRY_BIN`, else Debian's `docker-registry` on the PATH.
fn binary() -> String {
    std::env::var("REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".to_owned())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

impl TestRegistry {
    /// An anonymous registry with deletes enabled.
    pub async fn start() -> TestRegistry {
        TestRegistry::start_with(RegistryAuth::None).await
    }

    pub async fn start_with(auth: RegistryAuth) -> TestRegistry {
        TestRegistry::start_full(auth, None, None).await
    }

    /// A registry that sends its notifications (webhooks) to `url` with these headers, as
    /// distribution's `notifications.endpoints` does: one event per POST, retried until it
    /// is accepted.
    pub async fn start_notifying(
        auth: RegistryAuth,
        url: &str,
        headers: &[(&str, &str)],
    ) -> TestRegistry {
        TestRegistry::start_notifying_on("", auth, url, headers).await
    }

    /// As `start_notifying`, on the port of `at` (`http://127.0.0.1:<port>`), when that
    /// address must be known before the registry starts; empty for any free port.
    pub async fn start_notifying_on(
        at: &str,
        auth: RegistryAuth,
        url: &str,
        headers: &[(&str, &str)],
    ) -> TestRegistry {
        let mut yaml = format!(
            "notifications:\n  endpoints:\n    - name: janitor\n      url: {url}\n      timeout: 10s\n      threshold: 3\n      backoff: 1s\n"
        );
        if !headers.is_empty() {
            yaml.push_str("      headers:\n");
            for (k, v) in headers {
                yaml.push_str(&format!("        {k}: [\"{v}\"]\n"));
            }
        }
        let port = at.rsplit(':').next().and_then(|p| p.parse().ok());
        TestRegistry::start_full(auth, Some(yaml), port).await
    }

    async fn start_full(
        auth: RegistryAuth,
        notifications: Option<String>,
        port: Option<u16>,
    ) -> TestRegistry {
        super::init();
        // The port is free when we look; another process may take it before the registry
        // binds it, so try a few times.
        let mut last_log = String::new();
        for _ in 0..3 {
            match TestRegistry::try_start(auth.clone(), notifications.as_deref(), port).await {
                Ok(registry) => return registry,
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    /// An anonymous registry with deletes enabled that serves `storage`, an existing storage
    /// folder (such as a copy of another registry's `storage()`). Its configuration and log
    /// live in a temporary folder; `storage` is left in place when it stops.
    pub async fn start_on(storage: &Path) -> TestRegistry {
        super::init();
        let mut last_log = String::new();
        for _ in 0..3 {
            match TestRegistry::try_start_serving(
                RegistryAuth::None,
                None,
                None,
                Some(storage.to_path_buf()),
            )
            .await
            {
                Ok(registry) => return registry,
                Err(log) => last_log = log,
            }
        }
        panic!(
            "docker-registry did not start on {}:\n{last_log}",
            storage.display()
        );
    }

    async fn try_start(
        auth: RegistryAuth,
        notifications: Option<&str>,
        port: Option<u16>,
    ) -> Result<TestRegistry, String> {
        TestRegistry::try_start_serving(auth, notifications, port, None).await
    }

    /// `try_start`, with the storage in `data` (default: a `data` folder in its own
    /// temporary folder).
    async fn try_start_serving(
        auth: RegistryAuth,
        notifications: Option<&str>,
        port: Option<u16>,
        data: Option<PathBuf>,
    ) -> Result<TestRegistry, String> {
        let dir = tempfile::tempdir().expect("temporary folder");
        let port = port.unwrap_or_else(free_port);
        let config = dir.path().join("config.yml");
        let data = data.unwrap_or_else(|| dir.path().join("data"));
        let mut yaml = config_yaml(data.clone(), port, &auth, dir.path());
        yaml.push_str(notifications.unwrap_or(""));
        std::fs::write(&config, yaml).expect("write registry config");
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).expect("registry log");
        let child = Command::new(binary())
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. Install Debian's docker-registry (.ci/run does) or set REGISTRY_BIN",
                    binary()
                )
            });
        let mut registry = TestRegistry {
            child,
            dir,
            data,
            port,
            url: format!("http://127.0.0.1:{port}"),
            auth,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = registry.child.try_wait() {
                return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
            }
            let answered = registry
                .http
                .get(format!("{}/v2/", registry.url))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if matches!(answered, Ok(200 | 401)) {
                return Ok(registry);
            }
            if Instant::now() > deadline {
                let _ = registry.child.kill();
                return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `127.0.0.1:<port>`, as skopeo and docker name the registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Run distribution's garbage collector on this registry's storage (`docker-registry
    /// garbage-collect`): blobs that no manifest left in any repository uses are removed.
    /// The registry keeps no blob cache, so it sees the result at once.
    pub fn garbage_collect(&self) -> String {
        let config = self.dir.path().join("gc.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            self.data.display()
        );
        std::fs::write(&config, yaml).expect("write gc config");
        let out = super::run(&binary(), &["garbage-collect", config.to_str().unwrap()]);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The registry's storage folder (to copy or inspect).
    pub fn storage(&self) -> PathBuf {
        self.data.clone()
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

fn config_yaml(data: PathBuf, port: u16, auth: &RegistryAuth, dir: &std::path::Path) -> String {
    let auth_section = match auth {
        RegistryAuth::None => String::new(),
        RegistryAuth::Basic { username, password } => {
            let file = dir.join("htpasswd");
            let line = super::run("htpasswd", &["-Bbn", username, password]);
            std::fs::write(&file, line).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: janitor-test\n    path: {}\n",
                file.display()
            )
        }
        RegistryAuth::Token(server) => format!(
            "auth:\n  token:\n    realm: {}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            server.url,
            super::token::SERVICE,
            super::token::ISSUER,
            server.cert_path().display()
        ),
    };
    format!(
        "version: 0.1\n\
log:\n  level: warn\n  accesslog:\n    disabled: true\n\
storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
http:\n  addr: 127.0.0.1:{port}\n  secret: janitor-test-secret\n\
{auth_section}",
        data = data.display()
    )
}
