//! Trigger: what woke the function, turned into a `Job` (which repositories to sweep, and
//! which digests a push named), or a reason to do nothing.
//!
//! Every input here comes from the network or a scheduler, so nothing panics and nothing
//! unrecognised becomes a sweep: it becomes an error that names what was expected.

pub mod event;
pub mod http;
pub mod secret;
pub mod sqs;
pub mod webhook;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::registry::Digest;

/// What kind of trigger started a run (the only dimension of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Schedule,
    Webhook,
    Direct,
    /// Work taken off the queue (the worker's invocations).
    Queue,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Schedule => "schedule",
            Origin::Webhook => "webhook",
            Origin::Direct => "direct",
            Origin::Queue => "queue",
        }
    }
}

/// Which repositories a run sweeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every repository in the catalog that some rule of the policy names.
    Policy,
    /// Just these.
    Repositories(BTreeSet<String>),
}

/// A manifest a push named: recorded in the inventory before the sweep, so a digest pushed
/// and re-tagged before the sweep runs is still known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pushed {
    pub repository: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub origin: Origin,
    pub scope: Scope,
    pub pushed: Vec<Pushed>,
    /// What identifies this schedule or delivery (the event's id, a webhook's event ids),
    /// for the work queue's deduplication. Empty when nothing does.
    pub ids: Vec<String>,
    /// This one run may go past the policy's limits: only a direct invocation says so
    /// (`{"allow_over_limit": true}`), never a schedule, a webhook or the queue.
    pub allow_over_limit: bool,
}

/// The outcome of decoding a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run(Job),
    /// Acknowledged, nothing to do (pull, delete, chart, unknown actions...).
    Ignore(String),
}

/// Why a trigger was refused. Each maps to an HTTP status for webhooks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("missing or wrong webhook secret")]
    Unauthorized,
    #[error("webhook secret not configured: set JANITOR_WEBHOOK_SECRET or webhook_secret in the JANITOR_SECRET_ID secret")]
    NotConfigured,
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    BadRequest(String),
}

impl TriggerError {
    pub fn status(&self) -> u16 {
        match self {
            TriggerError::Unauthorized => 401,
            TriggerError::NotConfigured => 503,
            TriggerError::TooLarge { .. } => 413,
            TriggerError::BadRequest(_) => 400,
        }
    }
}

/// Build a job for a set of named repositories, refusing invalid names.
fn repositories_job<'a>(
    origin: Origin,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Job, TriggerError> {
    let mut set = BTreeSet::new();
    for name in names {
        crate::registry::name::check_repository(name)
            .map_err(|e| TriggerError::BadRequest(e.to_string()))?;
        set.insert(name.to_owned());
    }
    if set.is_empty() {
        return Err(TriggerError::BadRequest("`repositories` is empty".into()));
    }
    Ok(Job {
        origin,
        scope: Scope::Repositories(set),
        pushed: Vec::new(),
        ids: Vec::new(),
        allow_over_limit: false,
    })
}
