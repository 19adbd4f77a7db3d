//! One wiring path for both faces. Each face turns what it was given (the CLI its flags, the
//! Lambda face its environment and secrets) into one `Settings` value; `Settings::wire` turns
//! that into the backend, the inventory and, per run, the sweeper. Nothing else differs.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::journal::{FileJournal, Journal};
use crate::policy::Policy;
use crate::registry::{self, Backend, ClientOptions, RegistryError};
use crate::state::{AnyState, DynamoState, FileState, NoState, StateError};
use crate::sweep::Sweeper;

/// Where the inventory lives.
pub enum Inventory {
    /// No memory (`--no-state`; the function without `JANITOR_STATE`).
    None,
    /// A JSON file, locked for the run (the CLI's default).
    File(PathBuf),
    /// A DynamoDB table (the function's), through this client.
    Dynamo {
        table: String,
        client: aws_sdk_dynamodb::Client,
    },
}

/// Everything a run needs to reach the registry and its memory, already checked by the face
/// that made it.
pub struct Settings {
    /// `http(s)://host[:port]`.
    pub registry: String,
    /// Credentials, the backend kind, and the in-flight limits.
    pub client: ClientOptions,
    pub inventory: Inventory,
    /// Where apply records what it deletes before deleting it (`crate::journal`), if anywhere.
    pub journal: Option<PathBuf>,
}

/// A backend and an inventory, ready to sweep with.
pub struct Wired {
    pub backend: Box<dyn Backend>,
    pub store: AnyState,
    pub journal: Option<Box<dyn Journal>>,
    /// Changes in flight at once (the client's limit, and the sweeper's).
    pub concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl Settings {
    /// Build the backend (`registry::connect` picks it) and open the inventory, which is
    /// named after the registry's host.
    pub fn wire(self) -> Result<Wired, WiringError> {
        let concurrency = self.client.in_flight;
        let backend = registry::connect(&self.registry, self.client)?;
        let host = backend.host().to_owned();
        let store = match self.inventory {
            Inventory::None => AnyState::None(NoState),
            Inventory::File(path) => AnyState::File(FileState::open(&path, &host)?),
            Inventory::Dynamo { table, client } => {
                AnyState::Dynamo(DynamoState::new(client, &table, &host))
            }
        };
        let journal = self
            .journal
            .map(|p| Box::new(FileJournal::new(p)) as Box<dyn Journal>);
        Ok(Wired {
            backend,
            store,
            journal,
            concurrency,
        })
    }
}

impl Wired {
    /// A sweeper over this backend and inventory with `policy`, as of `now`.
    pub fn sweeper<'a>(
        &'a mut self,
        policy: &'a Policy,
        now: DateTime<Utc>,
    ) -> Sweeper<'a, AnyState> {
        Sweeper::new(self.backend.as_ref(), policy, &mut self.store, now)
            .concurrency(self.concurrency)
            .journaling(self.journal.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;
    use crate::state::StateStore;

    #[tokio::test]
    async fn settings_wire_the_chosen_backend_and_an_inventory_named_after_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let settings = Settings {
            registry: "http://127.0.0.1:5000".into(),
            client: ClientOptions {
                kind: Some(Kind::Acr),
                in_flight: 3,
                ..ClientOptions::default()
            },
            inventory: Inventory::File(path.clone()),
            journal: None,
        };
        let mut wired = settings.wire().unwrap();
        assert!(
            wired.backend.capabilities().manifest_listing,
            "not the ACR backend"
        );
        assert_eq!(wired.concurrency, 3);
        let policy = Policy::nothing();
        {
            let sweeper = wired.sweeper(&policy, Utc::now());
            assert_eq!(sweeper.concurrency, 3);
            assert!(sweeper.deadline.is_none() && !sweeper.unlock);
        }
        wired.store.save("app", Default::default()).await.unwrap();
        wired.store.flush().await.unwrap();
        drop(wired);
        // The file belongs to the host it was opened for.
        let err = FileState::open(&path, "other:5000").err().unwrap();
        assert!(err.to_string().contains("belongs to registry"), "{err}");
    }
}
