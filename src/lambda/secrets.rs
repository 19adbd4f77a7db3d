//! Credentials and the webhook secret: from AWS Secrets Manager (`JANITOR_SECRET_ID`, a JSON
//! secret with `username`, `password` and `webhook_secret`), or from the environment for
//! local use. Nothing here is ever logged.

use std::fmt;

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde::Deserialize;

use crate::registry::auth::json_error_position;
use crate::registry::Credentials;

#[derive(Clone, Default)]
pub struct Secrets {
    pub credentials: Option<Credentials>,
    pub webhook_secret: Option<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("credentials", &self.credentials)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Deserialize)]
struct Document {
    username: Option<String>,
    password: Option<String>,
    webhook_secret: Option<String>,
}

impl Secrets {
    /// `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` (or the docker config) and
    /// `JANITOR_WEBHOOK_SECRET`.
    pub fn from_env(host: &str, env: impl Fn(&str) -> Option<String>) -> Result<Secrets, String> {
        let credentials = Credentials::resolve(host, None, &env).map_err(|e| e.to_string())?;
        Ok(Secrets {
            credentials,
            webhook_secret: env(super::config::vars::WEBHOOK_SECRET).filter(|s| !s.is_empty()),
        })
    }

    /// Read the secret `id` from Secrets Manager.
    pub async fn from_secrets_manager(
        client: &aws_sdk_secretsmanager::Client,
        id: &str,
    ) -> Result<Secrets, String> {
        let answer = client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| format!("cannot read secret {id:?}: {}", DisplayErrorContext(e)))?;
        let text = answer
            .secret_string()
            .ok_or_else(|| format!("secret {id:?} has no string value"))?;
        let doc: Document = serde_json::from_str(text).map_err(|e| {
            format!(
                "secret {id:?} is not the expected JSON: it {}",
                json_error_position(&e)
            )
        })?;
        // The template creates the secret with empty `username` and `password` for the
        // owner to fill in; empty means "not given", so an anonymous registry works as is.
        let given = |v: Option<String>| v.filter(|s| !s.is_empty());
        let credentials = match (given(doc.username), given(doc.password)) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "secret {id:?} needs both username and password, or neither"
                ))
            }
        };
        Ok(Secrets {
            credentials,
            webhook_secret: doc.webhook_secret.filter(|s| !s.is_empty()),
        })
    }
}
