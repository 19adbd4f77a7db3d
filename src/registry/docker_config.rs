//! Docker's `config.json`, read the way docker reads it, so that whatever `docker login`,
//! `az acr login` or a credential helper left behind works here too.
//!
//! For a registry host, in docker's order:
//! 1. `credHelpers.<host>`: run `docker-credential-<name> get`;
//! 2. else `credsStore`: the same, with that helper;
//! 3. else `auths.<host>`: its `identitytoken` (an OAuth2 refresh token: what `az acr login`
//!    writes, under the null user `00000000-0000-0000-0000-000000000000`), else its `auth`
//!    (base64 of `user:password`).
//!
//! A helper answers `{"Username": ..., "Secret": ...}` on stdout; the username `<token>` means
//! the secret is an identity token. "credentials not found" means anonymous, as for docker.
//! A helper gets a timeout; its stderr is never read (helpers print secrets by mistake), and
//! nothing it prints goes into an error.
//!
//! Keys match hosts as docker matches them: `https://` or `http://` prefixes, a path or a
//! trailing slash, and Docker Hub's names (`index.docker.io`, `registry-1.docker.io`,
//! `docker.io`) are one registry.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::auth::{json_error_position, Credentials, CredentialsError};

/// How long a credential helper may take: a keychain may ask its user to unlock it.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(20);

/// The environment variable that sets another helper timeout (a humantime duration).
pub const HELPER_TIMEOUT_VAR: &str = "JANITOR_CREDENTIAL_HELPER_TIMEOUT";

/// Docker Hub's names: one registry.
const DOCKER_HUB: &[&str] = &["index.docker.io", "registry-1.docker.io", "docker.io"];

/// Where to look for one registry's credentials in docker's config, and how to ask again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub path: PathBuf,
    pub host: String,
    pub helper_timeout: Duration,
}

#[derive(Deserialize, Default)]
struct Document {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    identitytoken: Option<String>,
}

/// What a helper prints for `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

impl Lookup {
    /// The config docker itself would read: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`. `None` without either variable.
    /// `Ok(None)` without either variable; an error for a helper timeout that is no duration.
    pub fn locate(
        host: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Lookup>, CredentialsError> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let path = match (set("DOCKER_CONFIG"), set("HOME")) {
            (Some(dir), _) => PathBuf::from(dir).join("config.json"),
            (None, Some(home)) => PathBuf::from(home).join(".docker/config.json"),
            (None, None) => return Ok(None),
        };
        let helper_timeout = match set(HELPER_TIMEOUT_VAR) {
            None => HELPER_TIMEOUT,
            Some(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                CredentialsError::HelperTimeout {
                    value: t.clone(),
                    reason: e.to_string(),
                }
            })?,
        };
        Ok(Some(Lookup {
            path,
            host: host.to_owned(),
            helper_timeout,
        }))
    }

    /// Read the credentials for the host (again, when a registry refused what they were). A
    /// missing file, or no entry for the host, means anonymous.
    pub fn read(&self) -> Result<Option<Credentials>, CredentialsError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CredentialsError::DockerConfig {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let doc: Document =
            serde_json::from_str(&text).map_err(|e| CredentialsError::DockerConfig {
                path: self.path.clone(),
                // Only where: serde's own message can quote the content, credentials included.
                reason: json_error_position(&e),
            })?;
        if let Some(helper) = helper_for(&doc, &self.host) {
            return run_helper(helper, &server_address(&self.host), self.helper_timeout);
        }
        let Some(entry) = entry_for(&doc.auths, &self.host) else {
            return Ok(None);
        };
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::identity_token(token)));
        }
        let Some(auth) = entry.auth.as_deref().filter(|a| !a.trim().is_empty()) else {
            return Ok(None);
        };
        decode_auth(auth)
            .map(Some)
            .ok_or(CredentialsError::DockerConfigEntry {
                path: self.path.clone(),
                host: self.host.clone(),
            })
    }

    /// Where these credentials come from, for people.
    pub fn describe(&self) -> String {
        format!("docker's config {}", self.path.display())
    }
}

/// The helper docker would ask for `host`: `credHelpers.<host>`, else `credsStore`.
fn helper_for<'d>(doc: &'d Document, host: &str) -> Option<&'d str> {
    entry_for(&doc.cred_helpers, host)
        .map(String::as_str)
        .or(doc.creds_store.as_deref())
        .filter(|name| !name.is_empty())
}

/// The entry for `host`: under the host itself, as docker looks first, else under the first
/// (in key order, so every run picks the same) of the keys that name it.
fn entry_for<'d, V>(entries: &'d HashMap<String, V>, host: &str) -> Option<&'d V> {
    entries.get(host).or_else(|| {
        entries
            .iter()
            .filter(|(key, _)| same_registry(key, host))
            .min_by(|(a, _), (b, _)| a.cmp(b))
            .map(|(_, v)| v)
    })
}

/// `user:password`, base64.
fn decode_auth(auth: &str) -> Option<Credentials> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// The host a config key names: `https://host:port/v1/`, `host:port/` and `host:port` all
/// name `host:port`.
pub fn key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Whether a config key names the registry at `host`, as docker matches them.
pub fn same_registry(key: &str, host: &str) -> bool {
    let key = key_host(key);
    key.eq_ignore_ascii_case(host)
        || (DOCKER_HUB.iter().any(|h| key.eq_ignore_ascii_case(h))
            && DOCKER_HUB.iter().any(|h| host.eq_ignore_ascii_case(h)))
}

/// What a helper is asked for: docker stores Docker Hub under its v1 URL, and every other
/// registry under its host.
pub fn server_address(host: &str) -> String {
    if DOCKER_HUB.iter().any(|h| host.eq_ignore_ascii_case(h)) {
        "https://index.docker.io/v1/".to_owned()
    } else {
        host.to_owned()
    }
}

/// `docker-credential-<name> get`, with `server` on stdin, within `timeout`.
fn run_helper(
    name: &str,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, CredentialsError> {
    let program = format!("docker-credential-{name}");
    let fail = |reason: String| CredentialsError::Helper {
        helper: program.clone(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(
                "not found on PATH: install it, or take it out of docker's config (credsStore, credHelpers)"
                    .into(),
            ),
            _ => fail(format!("cannot start it: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its answer.
        let _ = stdin.write_all(server.as_bytes());
    }
    // Read the answer on a thread, so that a helper that leaves its output open (a child
    // that lives on) cannot hold the run past the timeout.
    let stdout = child.stdout.take();
    let (sender, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout {
            let _ = s.take(1 << 20).read_to_end(&mut out);
        }
        let _ = sender.send(out);
    });
    let deadline = Instant::now() + timeout;
    let late = || {
        fail(format!(
            "did not answer within {} (set {HELPER_TIMEOUT_VAR} to wait longer)",
            humantime::format_duration(timeout)
        ))
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(late());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("cannot wait for it: {e}")));
            }
        }
    };
    let out = answer
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .map_err(|_| late())?;
    if !status.success() {
        // docker's helpers say so on stdout; that is anonymous, not an error.
        if String::from_utf8_lossy(&out).contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("`get` failed ({status})")));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out).map_err(|e| {
        fail(format!(
            "its answer to `get` is not {{\"Username\", \"Secret\"}}: it {}",
            json_error_position(&e)
        ))
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == Credentials::TOKEN_USER {
        Credentials::identity_token(&answer.secret)
    } else {
        Credentials {
            username: answer.username,
            password: answer.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn doc(json: &str) -> Document {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn keys_match_hosts_as_docker_matches_them() {
        for key in [
            "reg.example:5000",
            "https://reg.example:5000",
            "https://reg.example:5000/",
            "https://reg.example:5000/v1/",
            "http://reg.example:5000",
            "reg.example:5000/",
        ] {
            assert!(same_registry(key, "reg.example:5000"), "{key}");
        }
        assert!(!same_registry("reg.example", "reg.example:5000"));
        assert!(!same_registry("other.example:5000", "reg.example:5000"));
        assert!(same_registry(
            "https://index.docker.io/v1/",
            "registry-1.docker.io"
        ));
        assert!(same_registry("docker.io", "index.docker.io"));
        assert!(!same_registry("https://index.docker.io/v1/", "ghcr.io"));
        assert_eq!(
            server_address("registry-1.docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(
            server_address("myregistry.azurecr.io"),
            "myregistry.azurecr.io"
        );
    }

    #[test]
    fn the_helper_for_a_host_then_the_store() {
        let d = doc(
            r#"{"credsStore":"desktop","credHelpers":{"123.dkr.ecr.us-east-1.amazonaws.com":"ecr-login","https://myregistry.azurecr.io/":"acr-env"},"auths":{"myregistry.azurecr.io":{}}}"#,
        );
        assert_eq!(
            helper_for(&d, "123.dkr.ecr.us-east-1.amazonaws.com"),
            Some("ecr-login")
        );
        assert_eq!(helper_for(&d, "myregistry.azurecr.io"), Some("acr-env"));
        assert_eq!(helper_for(&d, "ghcr.io"), Some("desktop"));
        assert_eq!(helper_for(&doc(r#"{"auths":{}}"#), "ghcr.io"), None);
        assert_eq!(helper_for(&doc(r#"{"credsStore":""}"#), "ghcr.io"), None);
    }

    fn lookup(dir: &Path, json: &str, host: &str) -> Lookup {
        let path = dir.join("config.json");
        std::fs::write(&path, json).unwrap();
        Lookup {
            path,
            host: host.to_owned(),
            helper_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn an_identity_token_wins_over_the_null_user_az_acr_login_writes() {
        let dir = tempfile_dir("rj-dc-id");
        let null_user = base64::engine::general_purpose::STANDARD
            .encode("00000000-0000-0000-0000-000000000000:");
        let l = lookup(
            &dir,
            &format!(
                r#"{{"auths":{{"myregistry.azurecr.io":{{"auth":"{null_user}","identitytoken":"refresh-abc"}}}}}}"#
            ),
            "myregistry.azurecr.io",
        );
        let found = l.read().unwrap().unwrap();
        assert!(found.is_identity_token());
        assert_eq!(found.password, "refresh-abc");
        let plain = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let l = lookup(
            &dir,
            &format!(r#"{{"auths":{{"https://reg.example/":{{"auth":"{plain}"}}}}}}"#),
            "reg.example",
        );
        let found = l.read().unwrap().unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(!found.is_identity_token());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_helper_is_a_clear_error() {
        let dir = tempfile_dir("rj-dc-missing");
        let l = lookup(
            &dir,
            r#"{"credsStore":"registry-janitor-test-no-such-helper"}"#,
            "reg.example",
        );
        let e = l.read().unwrap_err().to_string();
        assert!(
            e.contains("docker-credential-registry-janitor-test-no-such-helper")
                && e.contains("not found on PATH"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
