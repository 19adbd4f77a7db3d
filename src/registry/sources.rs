//! Where credentials come from, in order: the command line, then `REGISTRY_USERNAME` and
//! `REGISTRY_PASSWORD`, then docker's config (`docker_config.rs`). The first that gives any
//! wins; with none, the registry is asked anonymously.

use super::auth::{Credentials, CredentialsError};
use super::docker_config::Lookup;

impl Credentials {
    /// Pick credentials for `host` (as in `host:port`): explicit ones first, then the
    /// environment, then the docker config. `None` means anonymous.
    pub fn resolve(
        host: &str,
        explicit: Option<Credentials>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, CredentialsError> {
        Credentials::resolve_from(host, explicit, env).map(|(credentials, _)| credentials)
    }

    /// As `resolve`, and where in docker's config they came from when they did: that source
    /// is asked again when the registry refuses them partway through a run.
    pub fn resolve_from(
        host: &str,
        explicit: Option<Credentials>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Option<Credentials>, Option<Lookup>), CredentialsError> {
        if explicit.is_some() {
            return Ok((explicit, None));
        }
        match (env("REGISTRY_USERNAME"), env("REGISTRY_PASSWORD")) {
            (Some(username), Some(password)) => {
                return Ok((Some(Credentials { username, password }), None))
            }
            (Some(_), None) => {
                return Err(CredentialsError::HalfSet(
                    "REGISTRY_USERNAME",
                    "REGISTRY_PASSWORD",
                ))
            }
            (None, Some(_)) => {
                return Err(CredentialsError::HalfSet(
                    "REGISTRY_PASSWORD",
                    "REGISTRY_USERNAME",
                ))
            }
            (None, None) => {}
        }
        let Some(lookup) = Lookup::locate(host, env)? else {
            return Ok((None, None));
        };
        let credentials = lookup.read()?;
        Ok((credentials, Some(lookup)))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use std::path::Path;

    /// The credentials for `host` in the docker config at `path`.
    fn from_docker_config(
        path: &Path,
        host: &str,
    ) -> Result<Option<Credentials>, CredentialsError> {
        Lookup {
            path: path.to_owned(),
            host: host.to_owned(),
            helper_timeout: crate::registry::docker_config::HELPER_TIMEOUT,
        }
        .read()
    }

    #[test]
    fn docker_config_entries_match_by_host() {
        let dir = std::env::temp_dir().join(format!("rj-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://reg.example:5000/v1/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let found = from_docker_config(&path, "reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(found.username, "alice");
        assert_eq!(found.password, "s3cret");
        assert!(from_docker_config(&path, "other.example")
            .unwrap()
            .is_none());
        std::fs::write(&path, r#"{"auths":{"reg.example:5000":{"auth":"!!"}}}"#).unwrap();
        let err = from_docker_config(&path, "reg.example:5000").unwrap_err();
        assert!(!err.to_string().contains("!!"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolve_prefers_explicit_then_environment() {
        let env = |k: &str| match k {
            "REGISTRY_USERNAME" => Some("env-user".to_owned()),
            "REGISTRY_PASSWORD" => Some("env-pass".to_owned()),
            _ => None,
        };
        let explicit = Credentials {
            username: "cli".into(),
            password: "p".into(),
        };
        let got = Credentials::resolve("h", Some(explicit.clone()), env).unwrap();
        assert_eq!(got, Some(explicit));
        let got = Credentials::resolve("h", None, env).unwrap().unwrap();
        assert_eq!(got.username, "env-user");
        let half = |k: &str| (k == "REGISTRY_USERNAME").then(|| "x".to_owned());
        assert!(Credentials::resolve("h", None, half).is_err());
    }

    #[test]
    fn only_credentials_from_docker_config_have_a_source_to_ask_again() {
        let dir = std::env::temp_dir().join(format!("rj-auth-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("dora:from-config");
        std::fs::write(
            dir.join("config.json"),
            format!(r#"{{"auths":{{"h":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let config = dir.to_str().unwrap().to_owned();
        let with = |user: bool| {
            let config = config.clone();
            move |k: &str| match k {
                "DOCKER_CONFIG" => Some(config.clone()),
                "REGISTRY_USERNAME" if user => Some("env-user".to_owned()),
                "REGISTRY_PASSWORD" if user => Some("env-pass".to_owned()),
                _ => None,
            }
        };
        let (found, source) = Credentials::resolve_from("h", None, with(false)).unwrap();
        assert_eq!(found.unwrap().username, "dora");
        assert_eq!(source.unwrap().path, dir.join("config.json"));
        let (found, source) = Credentials::resolve_from("h", None, with(true)).unwrap();
        assert_eq!(found.unwrap().username, "env-user", "the environment first");
        assert!(source.is_none());
        let flags = Credentials {
            username: "cli".into(),
            password: "p".into(),
        };
        let (found, source) =
            Credentials::resolve_from("h", Some(flags.clone()), with(true)).unwrap();
        assert_eq!(found, Some(flags));
        assert!(source.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_shows_an_identity_token() {
        let c = Credentials::identity_token("refresh-xyz");
        assert!(c.is_identity_token());
        assert!(!format!("{c:?}").contains("refresh-xyz"));
    }

    #[test]
    fn config_errors_never_quote_the_file() {
        let dir = std::env::temp_dir().join(format!("rj-auth-q-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(&path, r#"{"auths":{"h":"c2VjcmV0OnBhc3M="}}"#).unwrap();
        let err = from_docker_config(&path, "h").unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
