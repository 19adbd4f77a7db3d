//! The function's configuration, from its environment, checked once at cold start.

use std::path::PathBuf;

use crate::policy::{Policy, PolicyError};
use crate::registry::options::{redact_userinfo, registry_host};

/// The environment variables the function reads. The SAM template sets the deployed ones,
/// and a test checks that the template names nothing else.
pub mod vars {
    pub const REGISTRY: &str = "JANITOR_REGISTRY";
    pub const POLICY: &str = "JANITOR_POLICY";
    pub const POLICY_FILE: &str = "JANITOR_POLICY_FILE";
    pub const DRY_RUN: &str = "JANITOR_DRY_RUN";
    pub const CONCURRENCY: &str = "JANITOR_CONCURRENCY";
    pub const STATE: &str = "JANITOR_STATE";
    pub const SECRET_ID: &str = "JANITOR_SECRET_ID";
    /// Local runs without Secrets Manager.
    pub const WEBHOOK_SECRET: &str = "JANITOR_WEBHOOK_SECRET";
    pub const LOG: &str = "JANITOR_LOG";
    /// An SQS FIFO queue: schedules and webhooks queue one message per repository, and the
    /// function sweeps what the queue hands it.
    pub const QUEUE_URL: &str = "JANITOR_QUEUE_URL";
    /// The registry's write budget a minute, shared by `WRITE_SHARES` workers.
    pub const MAX_WRITES_PER_MINUTE: &str = "JANITOR_MAX_WRITES_PER_MINUTE";
    /// How many workers share the write budget (the queue's `MaximumConcurrency`).
    pub const WRITE_SHARES: &str = "JANITOR_WRITE_SHARES";
    /// The most time one invocation works, below the Lambda deadline.
    pub const MAX_RUN_SECONDS: &str = "JANITOR_MAX_RUN_SECONDS";
    pub const USERNAME: &str = "REGISTRY_USERNAME";
    pub const PASSWORD: &str = "REGISTRY_PASSWORD";

    /// What a deployment sets (`infra/template.yaml`); the rest are for local runs.
    pub const DEPLOYED: [&str; 10] = [
        REGISTRY,
        POLICY,
        DRY_RUN,
        CONCURRENCY,
        STATE,
        SECRET_ID,
        QUEUE_URL,
        MAX_WRITES_PER_MINUTE,
        WRITE_SHARES,
        MAX_RUN_SECONDS,
    ];

    /// Every variable of the function's own (the AWS SDK reads its `AWS_*` ones itself).
    pub const ALL: [&str; 15] = [
        REGISTRY,
        POLICY,
        POLICY_FILE,
        DRY_RUN,
        CONCURRENCY,
        STATE,
        SECRET_ID,
        WEBHOOK_SECRET,
        LOG,
        USERNAME,
        PASSWORD,
        QUEUE_URL,
        MAX_WRITES_PER_MINUTE,
        WRITE_SHARES,
        MAX_RUN_SECONDS,
    ];
}

/// Where the inventory lives (`JANITOR_STATE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChoice {
    /// Unset: no memory; untagged manifests come only from a backend listing.
    None,
    /// `file:<path>`, for local runs.
    File(PathBuf),
    /// `dynamodb:<table>`.
    Dynamo(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub registry: String,
    /// `host[:port]` of the registry.
    pub host: String,
    pub policy: Policy,
    pub dry_run: bool,
    pub concurrency: usize,
    pub state: StateChoice,
    /// `JANITOR_SECRET_ID`: a Secrets Manager secret with username, password, webhook_secret.
    pub secret_id: Option<String>,
    /// `JANITOR_QUEUE_URL`: schedules and webhooks queue work here instead of sweeping.
    pub queue_url: Option<String>,
    /// This worker's share of the registry's write budget a minute
    /// (`JANITOR_MAX_WRITES_PER_MINUTE` / `JANITOR_WRITE_SHARES`), if paced.
    pub writes_per_minute: Option<u32>,
    /// `JANITOR_WRITE_SHARES`: the workers sharing the write budget (a backend's default
    /// budget is split as many ways).
    pub write_shares: u32,
    /// `JANITOR_MAX_RUN_SECONDS`: the most time one invocation works.
    pub max_run: Option<std::time::Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "JANITOR_REGISTRY is not set: give the registry URL, such as https://registry.example"
    )]
    NoRegistry,
    #[error("JANITOR_REGISTRY {0:?} is not an http(s) URL with a host")]
    BadRegistry(String),
    #[error(
        "set JANITOR_POLICY (the policy JSON) or JANITOR_POLICY_FILE, not both and not neither"
    )]
    PolicySource,
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("{name}={value:?}: {expected}")]
    Value {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl Config {
    /// Read and check the configuration. `env` is `std::env::var` in the function.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let registry = get(vars::REGISTRY).ok_or(ConfigError::NoRegistry)?;
        let host = url::Url::parse(&registry)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| registry_host(&u))
            .ok_or_else(|| ConfigError::BadRegistry(redact_userinfo(&registry)))?;
        let policy = match (get(vars::POLICY), get(vars::POLICY_FILE)) {
            (Some(json), None) => Policy::from_json(&json)?,
            (None, Some(path)) => Policy::from_file(std::path::Path::new(&path))?,
            _ => return Err(ConfigError::PolicySource),
        };
        let dry_run = match get(vars::DRY_RUN).as_deref().map(str::trim) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) => {
                return Err(ConfigError::Value {
                    name: vars::DRY_RUN,
                    value: v.to_owned(),
                    expected: "true or false (default true: nothing is deleted)",
                })
            }
        };
        let concurrency = match get(vars::CONCURRENCY) {
            None => 8,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or(ConfigError::Value {
                    name: vars::CONCURRENCY,
                    value: v,
                    expected: "a number from 1 to 64",
                })?,
        };
        let state = match get(vars::STATE) {
            None => StateChoice::None,
            Some(v) => match v.split_once(':') {
                Some(("file", path)) if !path.is_empty() => StateChoice::File(PathBuf::from(path)),
                Some(("dynamodb", table)) if !table.is_empty() => {
                    StateChoice::Dynamo(table.to_owned())
                }
                _ => {
                    return Err(ConfigError::Value {
                        name: vars::STATE,
                        value: v,
                        expected: "dynamodb:<table> or file:<path>",
                    })
                }
            },
        };
        let number =
            |name: &'static str, expected: &'static str| -> Result<Option<u32>, ConfigError> {
                match get(name) {
                    None => Ok(None),
                    Some(v) => v
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .map(Some)
                        .ok_or(ConfigError::Value {
                            name,
                            value: v,
                            expected,
                        }),
                }
            };
        let budget = number(
            vars::MAX_WRITES_PER_MINUTE,
            "a whole number of writes a minute, above 0 (unset: not paced)",
        )?;
        let shares = number(
            vars::WRITE_SHARES,
            "a whole number of workers above 0 (the queue's MaximumConcurrency)",
        )?
        .unwrap_or(1);
        let max_run = number(
            vars::MAX_RUN_SECONDS,
            "a whole number of seconds above 0 (unset: up to the Lambda deadline)",
        )?
        .map(|s| std::time::Duration::from_secs(u64::from(s)));
        Ok(Config {
            registry,
            host,
            policy,
            dry_run,
            concurrency,
            state,
            secret_id: get(vars::SECRET_ID),
            queue_url: get(vars::QUEUE_URL),
            // Never below one write a minute: a share that rounds to nothing would stall.
            writes_per_minute: budget.map(|b| (b / shares).max(1)),
            write_shares: shares,
            max_run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const POLICY: &str = r#"{"rules":[{"name":"u","select":"untagged"}]}"#;

    #[test]
    fn dry_run_is_the_default() {
        let c = Config::from_env(env(&[
            ("JANITOR_REGISTRY", "http://127.0.0.1:5000"),
            ("JANITOR_POLICY", POLICY),
        ]))
        .unwrap();
        assert!(c.dry_run);
        assert_eq!(c.host, "127.0.0.1:5000");
        assert_eq!(c.state, StateChoice::None);
        assert_eq!(c.concurrency, 8);
    }

    #[test]
    fn every_setting_is_read() {
        let c = Config::from_env(env(&[
            ("JANITOR_REGISTRY", "https://r.example"),
            ("JANITOR_POLICY", POLICY),
            ("JANITOR_DRY_RUN", "false"),
            ("JANITOR_CONCURRENCY", "3"),
            ("JANITOR_STATE", "dynamodb:inventory"),
            ("JANITOR_SECRET_ID", "janitor/registry"),
        ]))
        .unwrap();
        assert!(!c.dry_run);
        assert_eq!(c.concurrency, 3);
        assert_eq!(c.state, StateChoice::Dynamo("inventory".into()));
        assert_eq!(c.secret_id.as_deref(), Some("janitor/registry"));
        assert_eq!(c.queue_url, None);
        assert_eq!(c.writes_per_minute, None);
        assert_eq!(c.max_run, None);
    }

    #[test]
    fn each_worker_paces_at_its_share_of_the_write_budget() {
        let c = Config::from_env(env(&[
            ("JANITOR_REGISTRY", "https://r.example"),
            ("JANITOR_POLICY", POLICY),
            ("JANITOR_QUEUE_URL", "http://sqs.local/123/janitor.fifo"),
            ("JANITOR_MAX_WRITES_PER_MINUTE", "2000"),
            ("JANITOR_WRITE_SHARES", "8"),
            ("JANITOR_MAX_RUN_SECONDS", "300"),
        ]))
        .unwrap();
        assert_eq!(c.writes_per_minute, Some(250));
        assert_eq!(c.max_run, Some(std::time::Duration::from_secs(300)));
        assert_eq!(
            c.queue_url.as_deref(),
            Some("http://sqs.local/123/janitor.fifo")
        );
        let tiny = Config::from_env(env(&[
            ("JANITOR_REGISTRY", "https://r.example"),
            ("JANITOR_POLICY", POLICY),
            ("JANITOR_MAX_WRITES_PER_MINUTE", "3"),
            ("JANITOR_WRITE_SHARES", "10"),
        ]))
        .unwrap();
        assert_eq!(tiny.writes_per_minute, Some(1));
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let base = [
            ("JANITOR_REGISTRY", "http://127.0.0.1:5000"),
            ("JANITOR_POLICY", POLICY),
        ];
        let with = |extra: (&str, &str)| {
            let mut v = base.to_vec();
            v.retain(|(k, _)| *k != extra.0);
            v.push(extra);
            Config::from_env(env(&v)).unwrap_err().to_string()
        };
        assert!(with(("JANITOR_DRY_RUN", "maybe")).contains("true or false"));
        assert!(with(("JANITOR_CONCURRENCY", "0")).contains("1 to 64"));
        assert!(with(("JANITOR_STATE", "redis:x")).contains("dynamodb:"));
        assert!(with(("JANITOR_POLICY", "{")).contains("policy"));
        assert!(with(("JANITOR_MAX_WRITES_PER_MINUTE", "-5")).contains("writes a minute"));
        assert!(with(("JANITOR_WRITE_SHARES", "0")).contains("MaximumConcurrency"));
        assert!(with(("JANITOR_MAX_RUN_SECONDS", "5m")).contains("seconds"));
        assert!(with(("JANITOR_REGISTRY", "ftp://x")).contains("http(s)"));
        let leaked = with(("JANITOR_REGISTRY", "ftp://user:hunter2@x"));
        assert!(!leaked.contains("hunter2"), "{leaked}");
        assert!(Config::from_env(env(&[("JANITOR_POLICY", POLICY)]))
            .unwrap_err()
            .to_string()
            .contains("JANITOR_REGISTRY"));
    }
}
