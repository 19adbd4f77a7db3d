//! The function's configuration, from its environment, checked once at cold start.

use std::path::PathBuf;

use crate::policy::{Policy, PolicyError};
use crate::registry::oci::{redact_userinfo, registry_host};

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
    pub const USERNAME: &str = "REGISTRY_USERNAME";
    pub const PASSWORD: &str = "REGISTRY_PASSWORD";

    /// What a deployment sets (`infra/template.yaml`); the rest are for local runs.
    pub const DEPLOYED: [&str; 6] = [REGISTRY, POLICY, DRY_RUN, CONCURRENCY, STATE, SECRET_ID];

    /// Every variable of the function's own (the AWS SDK reads its `AWS_*` ones itself).
    pub const ALL: [&str; 11] = [
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
        Ok(Config {
            registry,
            host,
            policy,
            dry_run,
            concurrency,
            state,
            secret_id: get(vars::SECRET_ID),
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
        assert!(with(("JANITOR_REGISTRY", "ftp://x")).contains("http(s)"));
        let leaked = with(("JANITOR_REGISTRY", "ftp://user:hunter2@x"));
        assert!(!leaked.contains("hunter2"), "{leaked}");
        assert!(Config::from_env(env(&[("JANITOR_POLICY", POLICY)]))
            .unwrap_err()
            .to_string()
            .contains("JANITOR_REGISTRY"));
    }
}
