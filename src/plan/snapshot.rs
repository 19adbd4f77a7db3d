//! The planner's input: everything known about one repository at one moment.
//!
//! `collect` fills it from a registry and the inventory; tests and benchmarks build it by
//! hand. It holds facts only, no decisions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::Digest;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub repository: String,
    /// Every tag and what it points at.
    pub tags: BTreeMap<String, TagRef>,
    /// Every manifest known to be in the repository.
    pub manifests: BTreeMap<Digest, ManifestFacts>,
    /// Tags the registry lists that name nothing it can serve (GET and HEAD both 404), which
    /// an earlier run of this janitor set out to remove: the registry left them behind (see
    /// `state::Removing`). With the digest each named when that run decided. Any other
    /// unreadable tag is a problem, not an entry here.
    pub dangling: BTreeMap<String, Digest>,
    /// Why the picture may be incomplete (a listing stopped early, a manifest could not be
    /// read). Any entry here means this repository deletes nothing this run.
    pub problems: Vec<Problem>,
    /// The exact bytes of each manifest read from the registry in this run (not those the
    /// inventory already knew): what apply's journal records without reading them again.
    pub bodies: BTreeMap<Digest, Vec<u8>>,
    /// The registry knows no repository of this name (its tag listing answers 404, as
    /// distribution's `NAME_UNKNOWN` for a repository that holds only blobs), and nothing the
    /// inventory remembers there is left: nothing there. The registry's words.
    pub absent: Option<String>,
}

/// Something that could not be read: what, for people, and its kind, for code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub cause: Cause,
    pub text: String,
}

/// The kinds of problem code acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The registry wanted or refused credentials: reading them again may help (Lambda
    /// reads its secret again, once, after a rotation).
    Credentials,
    /// The run's time ran out before the repository was read whole: nothing is wrong,
    /// and the next run reads it (the repository is unfinished, not incomplete).
    Deadline,
    /// Anything else that could not be read, or contradicted itself.
    Read,
}

impl Problem {
    pub fn new(cause: Cause, text: impl Into<String>) -> Problem {
        Problem {
            cause,
            text: text.into(),
        }
    }

    /// `what` failed with `error`.
    pub fn of(what: impl std::fmt::Display, error: &crate::registry::RegistryError) -> Problem {
        let cause = if error.is_credentials() {
            Cause::Credentials
        } else if error.is_out_of_time() {
            Cause::Deadline
        } else {
            Cause::Read
        };
        Problem::new(cause, format!("{what}: {error}"))
    }

    /// Several problems as one, for a report. Its kind: credentials if any problem is about
    /// them (reading them again may help), else a read problem if any, else the deadline.
    pub fn join(problems: &[Problem]) -> Problem {
        let cause = [Cause::Credentials, Cause::Read]
            .into_iter()
            .find(|c| problems.iter().any(|p| p.cause == *c))
            .unwrap_or(Cause::Deadline);
        let text: Vec<&str> = problems.iter().map(|p| p.text.as_str()).collect();
        Problem::new(cause, text.join("; "))
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A problem said in words only: a read problem.
impl From<&str> for Problem {
    fn from(text: &str) -> Problem {
        Problem::new(Cause::Read, text)
    }
}

impl From<String> for Problem {
    fn from(text: String) -> Problem {
        Problem::new(Cause::Read, text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TagRef {
    pub digest: Digest,
    /// The registry's own timestamp for the tag, where the backend has one.
    pub updated: Option<DateTime<Utc>>,
    /// Locked against deletion in the registry (ACR `deleteEnabled`/`writeEnabled` false).
    pub locked: bool,
    /// Since when this janitor has seen the tag name this digest (the inventory's record),
    /// if it remembers. A tag's age counts from it when nothing better is known (`age.rs`).
    pub first_seen: Option<DateTime<Utc>>,
}

impl TagRef {
    pub fn new(digest: Digest) -> TagRef {
        TagRef {
            digest,
            updated: None,
            locked: false,
            first_seen: None,
        }
    }
}

/// What a manifest is and where it points. Content-addressed, so it never changes for a
/// digest, and the inventory can keep it between sweeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestFacts {
    pub media_type: String,
    /// Size of the manifest itself.
    pub size: u64,
    /// Child manifests, for an index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Digest>,
    /// The manifest this one refers to (OCI 1.1 `subject`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// Config and layer blobs with their sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<(Digest, u64)>,
    /// When the image was made (annotation, else config `created`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// The registry's own timestamp for the manifest, where the backend has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
    /// When the registry last saw it pulled, where it records that (ECR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<DateTime<Utc>>,
    /// Since when no tag has reached it (from the inventory), if it is untagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged_since: Option<DateTime<Utc>>,
    /// Locked against deletion in the registry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// Its config is an image config, which may carry `created`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_config: bool,
    /// It is a trash index (`src/trash.rs`): when it was filled and when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trash: Option<crate::trash::Mark>,
}
