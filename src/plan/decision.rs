//! The planner's output: for one repository, what goes, what loses a tag, and what stays,
//! each with its reason. The JSON report is these types, serialized.
//!
//! Code branches on the typed parts (`Status`, `KeepKind`, `Cause`), never on the text
//! beside them, which is for people.

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::Serialize;

use super::snapshot::{Cause, Problem};
use crate::registry::Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPlan {
    pub name: String,
    pub status: Status,
    /// Parents first: an index before its children, a subject before its referrers.
    pub delete: Vec<Delete>,
    pub untag: Vec<Untag>,
    pub keep: Vec<Keep>,
}

/// How a repository's plan (or its apply) ended. One value, so the parts cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Everything needed to decide safety was read; each entry says how it went.
    Complete,
    /// Something needed to decide safety could not be read (or apply found the repository
    /// changed past deciding): nothing was deleted.
    Incomplete(Problem),
    /// Apply stopped before it finished (the run's time ran out); the next run picks up
    /// what is left. A read cut short by the deadline is `Incomplete` with `Cause::Deadline`,
    /// and unfinished too.
    Unfinished,
    /// Nothing there: the registry knows no repository of this name, and nothing remembered
    /// is left in it (`Snapshot::absent`). Nothing to do, and not a failure.
    Absent(String),
    /// The plan deleted more than the policy's `limits` allow (`plan::limits`): nothing is
    /// deleted or untagged here this run. Not a failure, but the run says so (exit code 1).
    Held(String),
}

/// Why a manifest stays, for code to branch on. For a manifest kept because something that
/// stays reaches it (a child of a kept index), it is the kind of what keeps that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepKind {
    /// `protect.digests` names it.
    Pinned,
    /// An in-use provider names it, or a tag on it (`protect.in_use`, `--in-use`).
    InUse,
    /// A `protect.tags` pattern matches one of its tags.
    Protected,
    /// Locked in the registry: its own lock or a tag's.
    Locked,
    /// A tag on it stays (not selected by its rule, or no rule selects it).
    Tagged,
    /// Every tag on it goes, but the rule only removes tags (`untag_only`).
    UntagOnly,
    /// Untagged, and no untagged rule selects it (yet).
    Untagged,
    /// Only linked from manifests that nothing selects (a cycle of links).
    Linked,
    /// A referrer that stays (an SBOM, a signature) needs it (`manifest delete --older-than`).
    Referred,
    /// A manual operation does not name it; or only its tag goes.
    NotChosen,
    /// The repository could not be read whole: nothing is deleted this run.
    Incomplete,
    /// Something chosen to go is refused, and this belongs to it (manual, without `--force`).
    Held,
    /// Apply found it changed since planning, or while deleting: a tag now reaches it.
    Changed,
    /// Apply did not get to it: the run stopped (time, or the tags could not be read again).
    Stopped,
    /// Apply asked, and the registry refused: locked.
    Refused,
    /// The plan would delete it, but it deletes more of the repository than `limits` allow:
    /// the repository is held this run.
    OverLimit,
    /// In the trash: a trash index that has not expired holds it (`src/trash.rs`).
    Trash,
}

impl KeepKind {
    /// Kept although the plan (or the user) had it go: apply's second thoughts, and the
    /// refusals of a manual operation.
    pub fn overrides_a_decision(self) -> bool {
        matches!(
            self,
            KeepKind::Held | KeepKind::Changed | KeepKind::Stopped | KeepKind::Refused
        )
    }
}

impl RepositoryPlan {
    /// A plan that decides nothing yet: complete, with no entries.
    pub fn empty(name: impl Into<String>) -> RepositoryPlan {
        RepositoryPlan {
            name: name.into(),
            status: Status::Complete,
            delete: Vec::new(),
            untag: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// Everything needed to decide safety was read (an unfinished apply was complete too).
    pub fn complete(&self) -> bool {
        !matches!(self.status, Status::Incomplete(_))
    }

    /// Why the repository is incomplete, for people.
    pub fn error(&self) -> Option<&str> {
        match &self.status {
            Status::Incomplete(p) => Some(&p.text),
            _ => None,
        }
    }

    /// The kind of what made it incomplete.
    pub fn cause(&self) -> Option<Cause> {
        match &self.status {
            Status::Incomplete(p) => Some(p.cause),
            _ => None,
        }
    }

    /// The run's time ran out here: apply stopped, or the read was cut short. The next run
    /// picks up what is left.
    pub fn unfinished(&self) -> bool {
        match &self.status {
            Status::Unfinished => true,
            Status::Incomplete(p) => p.cause == Cause::Deadline,
            Status::Complete | Status::Absent(_) | Status::Held(_) => false,
        }
    }

    /// Why there is nothing there, when the registry knows no such repository.
    pub fn absent(&self) -> Option<&str> {
        match &self.status {
            Status::Absent(why) => Some(why),
            _ => None,
        }
    }

    /// Why the plan is held, when it deletes more than the policy's `limits` allow.
    pub fn held(&self) -> Option<&str> {
        match &self.status {
            Status::Held(why) => Some(why),
            _ => None,
        }
    }

    /// Something needed could not be read, and the deadline was not why: a retry may read
    /// it. Counted as incomplete in the report.
    pub fn unreadable(&self) -> bool {
        matches!(&self.status, Status::Incomplete(p) if p.cause != Cause::Deadline)
    }

    /// Unreadable, or an action failed.
    pub fn has_failures(&self) -> bool {
        self.unreadable()
            || self.delete.iter().any(|d| d.error.is_some())
            || self.untag.iter().any(|u| u.error.is_some())
    }
}

/// The report's shape, as before the status was one value: `complete`, `error`, and
/// `unfinished` only when true.
impl Serialize for RepositoryPlan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let unfinished = self.unfinished();
        let absent = self.absent();
        let held = self.held();
        let fields = 6
            + usize::from(unfinished)
            + usize::from(absent.is_some())
            + usize::from(held.is_some());
        let mut s = serializer.serialize_struct("RepositoryPlan", fields)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("complete", &self.complete())?;
        s.serialize_field("error", &self.error())?;
        s.serialize_field("delete", &self.delete)?;
        s.serialize_field("untag", &self.untag)?;
        s.serialize_field("keep", &self.keep)?;
        if unfinished {
            s.serialize_field("unfinished", &true)?;
        }
        if let Some(why) = absent {
            s.serialize_field("absent", why)?;
        }
        if let Some(why) = held {
            s.serialize_field("held", why)?;
        }
        s.end()
    }
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
    /// It goes because a trash index that held it expired: emptying what an earlier run
    /// decided, which the run's limits do not count.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empties_trash: bool,
    /// With the policy's `trash`: apply moves it into the trash, which holds it until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trash_until: Option<DateTime<Utc>>,
    /// The trash index's tag it went into, once apply has moved it there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trash: Option<String>,
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
    /// Why, for people.
    pub reason: String,
    /// Why, for code (not in the report: its text says it).
    #[serde(skip)]
    pub kind: KeepKind,
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
