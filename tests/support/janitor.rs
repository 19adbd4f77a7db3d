//! Run the real `registry-janitor` binary against a test registry, as a user would.

use std::path::PathBuf;

use serde_json::Value;

use super::registry::TestRegistry;

/// The binary under test: cargo names it for integration tests; the demo example is told
/// with `JANITOR_BIN` (the Makefile builds it first).
pub fn binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_registry-janitor") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("JANITOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/debug/registry-janitor")),
    }
}

/// A working folder with a policy and a state file, pointed at one registry.
pub struct Janitor {
    pub dir: tempfile::TempDir,
    registry: String,
    /// Set for every run, besides `HOME` (the working folder).
    env: Vec<(String, String)>,
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The one JSON document on stdout.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Digests of the `delete` entries of `repository`.
    pub fn deleted(&self, repository: &str) -> Vec<String> {
        self.entries(repository, "delete")
            .iter()
            .map(|e| e["digest"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn entries(&self, repository: &str, kind: &str) -> Vec<Value> {
        let json = self.json();
        json["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == repository)
            .map(|r| r[kind].as_array().unwrap().clone())
            .unwrap_or_default()
    }

    /// The reason `digest` is kept in `repository`, if it is.
    pub fn kept_reason(&self, repository: &str, digest: &str) -> Option<String> {
        self.entries(repository, "keep")
            .iter()
            .find(|k| k["digest"] == digest)
            .map(|k| k["reason"].as_str().unwrap().to_owned())
    }
}

impl Janitor {
    pub fn new(registry: &TestRegistry) -> Janitor {
        Janitor::for_url(&registry.url)
    }

    pub fn for_url(url: &str) -> Janitor {
        Janitor {
            dir: tempfile::tempdir().expect("temporary folder"),
            registry: url.to_owned(),
            env: Vec::new(),
        }
    }

    /// Set `name` to `value` for every run.
    pub fn with_env(mut self, name: &str, value: &str) -> Janitor {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    /// Write `text` as the file `name` in this janitor's directory and return its path.
    pub fn dir_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Write `json` as the policy file and return its path.
    pub fn policy(&self, json: &str) -> PathBuf {
        let path = self.dir.path().join("policy.json");
        std::fs::write(&path, json).expect("write policy");
        path
    }

    /// The binary with exactly these arguments, in this janitor's environment.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary());
        command
            .args(args)
            .env_remove("REGISTRY_USERNAME")
            .env_remove("REGISTRY_PASSWORD")
            .env_remove("DOCKER_CONFIG")
            .env_remove("JANITOR_CREDENTIAL_HELPER_TIMEOUT")
            .env("HOME", self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null());
        command
    }

    /// Run the binary with exactly these arguments.
    pub async fn run(&self, args: &[&str]) -> Outcome {
        let out = self
            .command(args)
            .output()
            .await
            .expect("run registry-janitor");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `command` (such as `["image", "delete"]`) against this janitor's registry, then `rest`.
    pub async fn op(&self, command: &[&str], rest: &[&str]) -> Outcome {
        let mut args = command.to_vec();
        args.extend(["--registry", self.registry.as_str()]);
        args.extend_from_slice(rest);
        self.run(&args).await
    }

    /// `plan` or `apply --yes` with the policy, JSON output, the state file (unless `extra`
    /// says `--no-state`), and `extra`.
    pub async fn sweep(&self, command: &str, policy: &str, extra: &[&str]) -> Outcome {
        let policy = self.policy(policy);
        let state = self.state();
        let mut args = vec![
            command,
            "--registry",
            &self.registry,
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
        ];
        if !extra.contains(&"--no-state") {
            args.extend(["--state", state.to_str().unwrap()]);
        }
        if command == "apply" {
            args.push("--yes");
        }
        args.extend_from_slice(extra);
        let outcome = self.run(&args).await;
        assert!(
            outcome.code == 0 || outcome.code == 1,
            "registry-janitor {command} failed ({}):\n{}",
            outcome.code,
            outcome.stderr
        );
        outcome
    }

    pub async fn plan(&self, policy: &str, extra: &[&str]) -> Outcome {
        self.sweep("plan", policy, extra).await
    }

    pub async fn apply(&self, policy: &str, extra: &[&str]) -> Outcome {
        self.sweep("apply", policy, extra).await
    }
}
