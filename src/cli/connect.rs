//! What every command needs to reach a registry: its URL, credentials, the backend kind,
//! and where the inventory lives.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use registry_janitor::journal::{FileJournal, Journal};
use registry_janitor::registry::auth::CredentialsError;
use registry_janitor::registry::options::{redact_userinfo, registry_host};
use registry_janitor::registry::{Backend, ClientOptions, Credentials, Kind};
use registry_janitor::state::{AnyState, FileState};
use registry_janitor::wiring::{Inventory, Settings, Wired};

use super::{runtime, usage, Failure};

#[derive(Args, Clone)]
pub struct ConnectArgs {
    /// Registry URL: http://127.0.0.1:5000 or https://registry.example (the scheme picks TLS).
    #[arg(long, value_name = "URL")]
    pub registry: String,
    /// Username (else REGISTRY_USERNAME, else the docker config.json). On ACR: the admin
    /// user, a service principal's id, or a repository-scoped token's name.
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Password or token (else REGISTRY_PASSWORD). Other local users can see command lines:
    /// prefer the environment or a docker login.
    #[arg(long, requires = "username")]
    password: Option<String>,
    /// The registry's API: `acr` adds Azure's metadata API (timestamps, locks, tag and
    /// repository delete); `ecr` is Amazon ECR's own API, with AWS credentials. Default: `acr`
    /// for *.azurecr.io, `ecr` for <account>.dkr.ecr.<region>.amazonaws.com, else `oci`.
    #[arg(long, value_enum, default_value_t = KindArg::Auto)]
    kind: KindArg,
    /// ACR: an Azure AD access token, exchanged for registry tokens (`az account
    /// get-access-token --query accessToken`). Prefer the environment variable.
    #[arg(
        long,
        env = "AZURE_ACCESS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    aad_token: Option<String>,
    /// Inventory file. Default: $XDG_STATE_HOME/registry-janitor/<registry host>.json.
    #[arg(long, value_name = "FILE", conflicts_with = "no_state")]
    state: Option<PathBuf>,
    /// Run without memory: untagged manifests are then only those something still links to.
    /// Hard deletes are then not recorded unless --journal is given.
    #[arg(long)]
    no_state: bool,
    /// Journal file: apply records every manifest it deletes or trashes here first, for
    /// `restore --from-journal`. Default: beside the inventory (<registry host>.journal.jsonl);
    /// none with --no-state.
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Deletes and other changes in flight at once. Reads go up to 4 times as many.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Pace deletes and other writes to at most this many a minute (the registry's published
    /// limit, or your share of it). Every retry counts. Default: not paced.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_writes_per_minute: Option<u32>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum KindArg {
    Auto,
    Oci,
    Acr,
    Ecr,
}

/// The registry's backend.
pub struct Connection {
    pub client: Box<dyn Backend>,
    /// Where apply records what it deletes first (`--journal`, or beside the inventory).
    pub journal: Option<Box<dyn Journal>>,
}

impl ConnectArgs {
    /// The flags as one checked settings value (`wiring::Settings`).
    pub fn settings(&self) -> Result<Settings, Failure> {
        let url = url::Url::parse(&self.registry).map_err(|e| {
            usage(anyhow!(
                "--registry {:?}: {e}",
                redact_userinfo(&self.registry)
            ))
        })?;
        let host = registry_host(&url).ok_or_else(|| {
            usage(anyhow!(
                "--registry {:?} has no host",
                redact_userinfo(&self.registry)
            ))
        })?;
        let explicit = self
            .username
            .clone()
            .zip(self.password.clone())
            .map(|(username, password)| Credentials { username, password });
        // With an Azure AD token, docker's config is not read: its helpers are not run, and it
        // is not asked again when the registry refuses the token.
        let aad = self.aad_token.as_deref().is_some_and(|t| !t.is_empty());
        let env = |k: &str| match k {
            "DOCKER_CONFIG" | "HOME" if aad => None,
            _ => std::env::var(k).ok(),
        };
        // A helper that fails or hangs is not bad input: the same command may work later.
        let (credentials, credential_source) = Credentials::resolve_from(&host, explicit, env)
            .map_err(|e| match e {
                CredentialsError::Helper { .. } => runtime(e),
                e => usage(e),
            })?;
        let kind = match self.kind {
            KindArg::Auto => None,
            KindArg::Oci => Some(Kind::Oci),
            KindArg::Acr => Some(Kind::Acr),
            KindArg::Ecr => Some(Kind::Ecr),
        };
        let client = ClientOptions {
            credentials,
            credential_source,
            kind,
            aad_token: self.aad_token.clone().filter(|t| !t.is_empty()),
            in_flight: usize::from(self.concurrency),
            max_writes_per_minute: self.max_writes_per_minute,
            ..ClientOptions::default()
        };
        // The inventory: the file (locked for this run), or none with `--no-state`.
        let inventory = if self.no_state {
            Inventory::None
        } else {
            Inventory::File(match &self.state {
                Some(p) => p.clone(),
                None => {
                    FileState::default_path(&host, |k| std::env::var(k).ok()).ok_or_else(|| {
                        usage(anyhow!(
                            "no --state given and neither XDG_STATE_HOME nor HOME is set"
                        ))
                    })?
                }
            })
        };
        Ok(Settings {
            registry: self.registry.clone(),
            client,
            journal: self.journal.clone().or_else(|| match &inventory {
                Inventory::File(path) => Some(FileJournal::beside(path).path().to_path_buf()),
                _ => None,
            }),
            inventory,
        })
    }

    /// The journal file this command reads and writes, if any (`restore --from-journal`).
    pub fn journal_path(&self) -> Result<Option<PathBuf>, Failure> {
        Ok(self.settings()?.journal)
    }

    /// The backend and the inventory, as every command opens them.
    pub fn open(&self) -> Result<(Connection, AnyState), Failure> {
        let Wired {
            backend,
            store,
            journal,
            ..
        } = self.settings()?.wire().map_err(|e| match e {
            registry_janitor::wiring::WiringError::Registry(e) => usage(e),
            other => runtime(other),
        })?;
        Ok((
            Connection {
                client: backend,
                journal,
            },
            store,
        ))
    }
}
