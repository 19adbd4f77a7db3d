//! The planner's output: for one repository, what goes, what loses a tag, and what stays,
//! each with its reason. The JSON report is these types, serialized.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::registry::Digest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryPlan {
    pub name: String,
    /// False when something needed to decide safety could not be read.
    pub complete: bool,
    pub error: Option<String>,
    /// Parents first: an index before its children, a subject before its referrers.
    pub delete: Vec<Delete>,
    pub untag: Vec<Untag>,
    pub keep: Vec<Keep>,
    /// Apply stopped before it finished here (the function's time ran out); the next run
    /// picks up what is left.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delete {
    pub digest: Digest,
    /// Every tag on the digest; deleting by digest removes them all.
    pub tags: Vec<String>,
    pub reason: String,
    /// Bytes that only the deleted manifests use (what garbage collection can reclaim).
    pub bytes: u64,
    /// When the manifest was made or last seen tagged, for people reading the plan.
    #[serde(skip)]
    pub since: Option<DateTime<Utc>>,
    /// The manifest's parent among the deletions, if it goes because its parent goes.
    #[serde(skip)]
    pub parent: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untag {
    pub tag: String,
    pub digest: Digest,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keep {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub reason: String,
    #[serde(skip)]
    pub since: Option<DateTime<Utc>>,
}

impl RepositoryPlan {
    /// Bytes the deletions of this plan free.
    pub fn bytes_reclaimable(&self) -> u64 {
        self.delete
            .iter()
            .filter(|d| d.error.is_none())
            .map(|d| d.bytes)
            .sum()
    }
}
