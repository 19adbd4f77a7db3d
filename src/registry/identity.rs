//! Who we are to one registry: the credentials in use, and the source to ask again when the
//! registry refuses them partway through a run.
//!
//! Tokens from `az acr login` last 3 hours on some registries, and a credential helper may
//! hand out short-lived ones; a long run outlives them (`acr purge` then fails for good,
//! acr-cli #641). So when a token service or a registry refuses what we sent, the source
//! they came from (docker's config, or its helper) is asked once more, and the request tried
//! again with what it gives. Credentials given on the command line or in the environment
//! cannot change under us, and are not asked again.
//!
//! Each set of credentials has a generation. A refusal names the generation it refused, so
//! when many requests are refused at once the source is asked once, and a refusal of
//! credentials already replaced just tries the new ones. When asking again gives nothing new,
//! the credentials are spent: no new repository starts, and the rest are unfinished.
//! Credentials given outright are never spent: each refusal of them stands on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::auth::Credentials;
use super::docker_config::Lookup;

pub struct Identity {
    current: RwLock<(Option<Credentials>, u64)>,
    source: Option<Lookup>,
    /// Held while the source is asked, so concurrent refusals ask it once.
    asking: tokio::sync::Mutex<()>,
    spent: AtomicBool,
}

impl Identity {
    /// `credentials`, from `source` (docker's config) if they can be asked for again.
    pub fn new(credentials: Option<Credentials>, source: Option<Lookup>) -> Identity {
        Identity {
            current: RwLock::new((credentials, 0)),
            source,
            asking: tokio::sync::Mutex::new(()),
            spent: AtomicBool::new(false),
        }
    }

    /// The credentials in use, and their generation.
    pub fn current(&self) -> (Option<Credentials>, u64) {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The registry refused the credentials of generation `refused`. Whether there are others
    /// to try: ones another request already got, or new ones from asking the source again.
    /// Without, the credentials are spent.
    pub async fn ask_again(&self, refused: u64) -> bool {
        let _turn = self.asking.lock().await;
        let (old, generation) = self.current();
        if generation != refused {
            return true;
        }
        if self.spent() {
            return false;
        }
        // Given outright: nothing to ask, and each refusal stands on its own (the function
        // reads its secret again itself). Anonymous: nothing was refused that a source gave.
        let Some(source) = self.source.clone().filter(|_| old.is_some()) else {
            return false;
        };
        let described = source.describe();
        let answer = tokio::task::spawn_blocking(move || source.read()).await;
        match answer {
            Ok(Ok(Some(fresh))) if Some(&fresh) != old.as_ref() => {
                tracing::info!(source = %described, "the registry refused the credentials; asked their source again, and it gave new ones");
                let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
                *current = (Some(fresh), generation + 1);
                true
            }
            Ok(Ok(_)) => {
                tracing::warn!(source = %described, "the registry refused the credentials; asked their source again, and it gave nothing new");
                self.spent.store(true, Ordering::Relaxed);
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(source = %described, error = %e, "the registry refused the credentials; asking their source again failed");
                self.spent.store(true, Ordering::Relaxed);
                false
            }
            Err(e) => {
                tracing::warn!(source = %described, error = %e, "the registry refused the credentials; asking their source again did not finish");
                self.spent.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// The registry refused the credentials, and asking again gave nothing better.
    pub fn spent(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
    }

    /// Where the credentials came from, for an error a user acts on.
    pub fn source(&self) -> Option<&Lookup> {
        self.source.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn basic(password: &str) -> Credentials {
        Credentials {
            username: "u".into(),
            password: password.into(),
        }
    }

    fn config(dir: &std::path::Path, password: &str) -> Lookup {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("u:{password}"));
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"reg.example":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        Lookup {
            path,
            host: "reg.example".into(),
            helper_timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn a_refusal_asks_the_source_once_and_new_credentials_carry_on() {
        let dir = std::env::temp_dir().join(format!("rj-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = config(&dir, "old");
        let id = Identity::new(Some(basic("old")), Some(source.clone()));
        // The source still says "old": nothing new, spent.
        assert!(!id.ask_again(0).await);
        assert!(id.spent());

        let id = Identity::new(Some(basic("old")), Some(source));
        config(&dir, "new");
        assert!(id.ask_again(0).await);
        assert_eq!(id.current(), (Some(basic("new")), 1));
        // A request refused with the old generation tries the new one without asking.
        assert!(id.ask_again(0).await);
        assert!(!id.spent());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn credentials_given_outright_are_not_asked_for_again_nor_spent() {
        let id = Identity::new(Some(basic("flag")), None);
        assert!(!id.ask_again(0).await);
        assert!(!id.spent());
    }

    #[tokio::test]
    async fn anonymous_is_never_spent() {
        let dir = std::env::temp_dir().join(format!("rj-identity-anon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = Identity::new(None, Some(config(&dir, "whatever")));
        assert!(!id.ask_again(0).await);
        assert!(!id.spent());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
