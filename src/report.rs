//! Report: what a sweep decided or did, as one JSON document for machines or a table for
//! people. The JSON shape is a contract (documented in the README); add, never rename.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::plan::RepositoryPlan;
use crate::policy::human_duration;

pub mod operations;
pub mod restore;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    pub repositories: Vec<RepositoryPlan>,
    pub summary: Summary,
    /// Repositories a run left for the next one (the function's time ran out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfinished: Vec<String>,
    /// What the in-use providers gave, where there were any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_use: Option<InUseReport>,
}

/// The report's `in_use`: each provider, and how many references named other registries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InUseReport {
    pub providers: Vec<crate::in_use::ProviderReport>,
    pub other_registries: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub manifests_deleted: u64,
    /// Moved into a trash (the policy's `trash`), not deleted: their space comes back when
    /// a later run empties the trash.
    #[serde(skip_serializing_if = "is_zero")]
    pub manifests_trashed: u64,
    pub tags_removed: u64,
    pub bytes_reclaimable: u64,
    pub repositories_incomplete: u64,
    /// Repositories the run's time ran out on (read or apply cut short): the next run picks
    /// them up. Not counted as incomplete.
    pub repositories_unfinished: u64,
    /// Repositories the registry knows no such name for (`RepositoryPlan::absent`): nothing
    /// there, and not a failure.
    pub repositories_absent: u64,
    /// Repositories whose plan deleted more than the policy's `limits` allow: nothing was
    /// deleted or untagged there. Not a failure, but the run exits 1.
    pub repositories_held: u64,
}

impl Report {
    pub fn new(now: DateTime<Utc>, dry_run: bool, repositories: Vec<RepositoryPlan>) -> Report {
        let mut summary = Summary::default();
        for r in &repositories {
            let ok_deletes = r.delete.iter().filter(|d| d.error.is_none());
            for d in ok_deletes {
                if d.trash_until.is_none() {
                    summary.manifests_deleted += 1;
                    summary.bytes_reclaimable += d.bytes;
                } else {
                    summary.manifests_trashed += 1;
                }
                // Once in the trash, its tags are the untags below.
                if d.trash.is_none() {
                    summary.tags_removed += d.tags.len() as u64;
                }
            }
            summary.tags_removed += r.untag.iter().filter(|u| u.error.is_none()).count() as u64;
            summary.repositories_incomplete += u64::from(r.unreadable());
            summary.repositories_unfinished += u64::from(r.unfinished());
            summary.repositories_absent += u64::from(r.absent().is_some());
            summary.repositories_held += u64::from(r.held().is_some());
        }
        Report {
            now,
            dry_run,
            repositories,
            summary,
            unfinished: Vec::new(),
            in_use: None,
        }
    }

    /// This report with what the in-use providers gave (nothing when there were none).
    pub fn with_in_use(mut self, in_use: &crate::in_use::InUse) -> Report {
        if !in_use.providers.is_empty() {
            self.in_use = Some(InUseReport {
                providers: in_use.providers.clone(),
                other_registries: in_use.other_registries,
            });
        }
        self
    }

    /// The repositories a run left for the next one (not reached, or cut short by the
    /// deadline), counted in the summary.
    pub fn left_for_next_run(mut self, names: Vec<String>) -> Report {
        self.summary.repositories_unfinished = names.len() as u64;
        self.unfinished = names;
        self
    }

    /// This report with the repositories `again` swept a second time taken from it (a retry
    /// of some repositories after reading the credentials again).
    pub fn replacing(self, again: Report) -> Report {
        let retried: std::collections::BTreeSet<&str> = again
            .repositories
            .iter()
            .map(|r| r.name.as_str())
            .chain(again.unfinished.iter().map(String::as_str))
            .collect();
        let mut repositories: Vec<RepositoryPlan> = Vec::new();
        for r in self.repositories {
            match again.repositories.iter().find(|a| a.name == r.name) {
                Some(a) => repositories.push(a.clone()),
                None if retried.contains(r.name.as_str()) => {}
                None => repositories.push(r),
            }
        }
        let mut unfinished: Vec<String> = self
            .unfinished
            .into_iter()
            .filter(|n| !retried.contains(n.as_str()))
            .collect();
        unfinished.extend(again.unfinished.iter().cloned());
        let mut report =
            Report::new(self.now, self.dry_run, repositories).left_for_next_run(unfinished);
        report.in_use = again.in_use.or(self.in_use);
        report
    }

    /// Whether anything failed: an incomplete repository or a failed action.
    pub fn has_failures(&self) -> bool {
        self.repositories.iter().any(RepositoryPlan::has_failures)
    }

    /// Whether the run should exit 1: something failed, or a repository was held by the
    /// policy's `limits` (someone should look before it goes ahead).
    pub fn needs_attention(&self) -> bool {
        self.has_failures() || self.summary.repositories_held > 0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A table for people: grouped by repository, with totals at the end.
    pub fn to_table(&self) -> String {
        let (deleted, untagged) = if self.dry_run {
            ("to delete", "to untag")
        } else {
            ("deleted", "untagged")
        };
        let trashed = if self.dry_run { "to trash" } else { "trashed" };
        let mut out = String::new();
        for r in &self.repositories {
            let in_trash = r.delete.iter().filter(|d| d.trash_until.is_some()).count();
            let _ = writeln!(
                out,
                "{}  ({}{} {deleted}, {} {untagged}, {} kept{})",
                r.name,
                match in_trash {
                    0 => String::new(),
                    n => format!("{n} {trashed}, "),
                },
                r.delete.len() - in_trash,
                r.untag.len(),
                r.keep.len(),
                if !r.complete() {
                    ", INCOMPLETE"
                } else if r.held().is_some() {
                    ", HELD"
                } else {
                    ""
                }
            );
            if let Some(e) = r.error() {
                let _ = writeln!(out, "  ! {e}");
            }
            if let Some(why) = r.absent() {
                let _ = writeln!(out, "  - {why}");
            }
            if let Some(why) = r.held() {
                let _ = writeln!(out, "  ! {why}");
            }
            let mut rows: Vec<[String; 6]> = Vec::new();
            for d in &r.delete {
                let reason = match (&d.error, d.trash_until) {
                    (Some(e), _) => format!("FAILED: {e}"),
                    (None, Some(until)) => format!(
                        "{}; in the trash until {}",
                        d.reason,
                        crate::trash::rfc3339(until)
                    ),
                    (None, None) => d.reason.clone(),
                };
                rows.push([
                    if d.trash_until.is_some() {
                        "trash"
                    } else {
                        "delete"
                    }
                    .into(),
                    d.digest.short().into(),
                    tags(&d.tags),
                    age(d.since, self.now),
                    human_bytes(d.bytes),
                    reason,
                ]);
            }
            for u in &r.untag {
                let reason = match &u.error {
                    Some(e) => format!("FAILED: {e}"),
                    None => u.reason.clone(),
                };
                rows.push([
                    "untag".into(),
                    u.digest.short().into(),
                    tags(std::slice::from_ref(&u.tag)),
                    String::new(),
                    String::new(),
                    reason,
                ]);
            }
            for k in &r.keep {
                rows.push([
                    "keep".into(),
                    k.digest.short().into(),
                    tags(&k.tags),
                    age(k.since, self.now),
                    String::new(),
                    k.reason.clone(),
                ]);
            }
            if !rows.is_empty() {
                write_rows(
                    &mut out,
                    "  ",
                    &["ACTION", "DIGEST", "TAGS", "AGE", "SIZE", "REASON"],
                    &rows,
                );
            }
            out.push('\n');
        }
        let started: std::collections::BTreeSet<&str> =
            self.repositories.iter().map(|r| r.name.as_str()).collect();
        let not_started: Vec<&str> = self
            .unfinished
            .iter()
            .map(String::as_str)
            .filter(|n| !started.contains(n))
            .collect();
        if !not_started.is_empty() {
            let _ = writeln!(
                out,
                "NOT STARTED  {} (the next run does them)\n",
                not_started.join(", ")
            );
        }
        if let Some(u) = &self.in_use {
            for p in &u.providers {
                let _ = match &p.error {
                    Some(e) => writeln!(out, "IN USE  {}: FAILED: {e}", p.name),
                    None => writeln!(out, "IN USE  {}: {} references", p.name, p.references),
                };
            }
            if u.other_registries > 0 {
                let _ = writeln!(
                    out,
                    "IN USE  {} references name other registries and were ignored",
                    u.other_registries
                );
            }
        }
        let s = &self.summary;
        let verb = if self.dry_run { "would be" } else { "were" };
        let absent = match s.repositories_absent {
            0 => String::new(),
            n => format!(", {n} with nothing there"),
        };
        let absent = match s.repositories_held {
            0 => absent,
            n => format!("{absent}, {n} held by limits"),
        };
        let trashed = match s.manifests_trashed {
            0 => String::new(),
            n => format!(
                ", {n} {verb} moved to the trash (their space comes back when it is emptied)"
            ),
        };
        let _ = writeln!(
            out,
            "TOTAL  {} manifests {verb} deleted{trashed}, {} tags removed, {} reclaimable, {} of {} repositories incomplete{absent}{}",
            s.manifests_deleted,
            s.tags_removed,
            human_bytes(s.bytes_reclaimable),
            s.repositories_incomplete,
            self.repositories.len(),
            if self.dry_run { " (dry run: nothing was changed)" } else { "" }
        );
        out
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Tags for a table cell; link tags (`sha256-<64 hex>.sig`) shortened to 12 hex digits.
fn tags(t: &[String]) -> String {
    if t.is_empty() {
        return "-".into();
    }
    t.iter()
        .map(|tag| match crate::registry::Digest::from_link_tag(tag) {
            Some(d) => {
                let suffix = tag
                    .split_once('.')
                    .map(|(_, s)| format!(".{s}"))
                    .unwrap_or_default();
                format!("{}-{}…{suffix}", d.algorithm(), d.short())
            }
            None => tag.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn age(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match since {
        Some(t) => human_duration((now - t).to_std().unwrap_or(Duration::ZERO)),
        None => "?".into(),
    }
}

/// A six-column table under `header`, each line starting with `indent`: the first five
/// columns padded to their widest cell, the last one as it is.
pub fn write_rows(out: &mut String, indent: &str, header: &[&str; 6], rows: &[[String; 6]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(5) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(indent);
        for (i, c) in cells.iter().enumerate() {
            if i < 5 {
                let _ = write!(s, "{c:<w$}  ", w = widths[i]);
            } else {
                s.push_str(c);
            }
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// Sizes as people read them: `512 B`, `1.2 KiB`, `3.4 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Whether what goes to a stream may carry colour: only a terminal, and never with `NO_COLOR`
/// set to anything but the empty string (no-color.org).
pub fn colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn a_retry_replaces_only_the_repositories_it_swept_again() {
        let refused = |name: &str| {
            let mut p = RepositoryPlan::empty(name);
            p.status = crate::plan::Status::Incomplete(crate::plan::Problem::new(
                crate::plan::Cause::Credentials,
                "HTTP 401",
            ));
            p
        };
        let now = Utc::now();
        let first = Report::new(
            now,
            false,
            vec![RepositoryPlan::empty("a"), refused("b"), refused("c")],
        )
        .left_for_next_run(vec!["d".into()]);
        let second = Report::new(now, false, vec![RepositoryPlan::empty("b")])
            .left_for_next_run(vec!["c".into()]);
        let merged = first.replacing(second);
        let names: Vec<&str> = merged
            .repositories
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(merged.repositories.iter().all(|r| r.complete()));
        assert_eq!(merged.unfinished, ["d", "c"]);
        assert_eq!(merged.summary.repositories_incomplete, 0);
        assert_eq!(merged.summary.repositories_unfinished, 2);
    }

    #[test]
    fn link_tags_are_shortened_in_tables() {
        let sig = format!("sha256-{}.sig", "ab".repeat(32));
        assert_eq!(
            tags(&["latest".into(), sig]),
            "latest,sha256-abababababab….sig"
        );
        assert_eq!(tags(&[]), "-");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1_288_490_189), "1.2 GiB");
    }

    #[test]
    fn summary_counts_only_what_succeeded() {
        let digest: crate::registry::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let entry = |error: Option<&str>| crate::plan::Delete {
            digest: digest.clone(),
            tags: vec!["pr-1".into()],
            reason: "r".into(),
            bytes: 10,
            since: None,
            parent: None,
            empties_trash: false,
            trash_until: None,
            trash: None,
            error: error.map(str::to_owned),
        };
        let plan = RepositoryPlan {
            name: "app".into(),
            status: crate::plan::Status::Complete,
            delete: vec![entry(None), entry(Some("HTTP 500"))],
            untag: vec![],
            keep: vec![],
        };
        let report = Report::new(Utc::now(), false, vec![plan]);
        assert_eq!(report.summary.manifests_deleted, 1);
        assert_eq!(report.summary.tags_removed, 1);
        assert_eq!(report.summary.bytes_reclaimable, 10);
        assert!(report.has_failures());
        assert!(report
            .to_table()
            .contains("TOTAL  1 manifests were deleted"));
    }
}
