//! What `restore` prints: the trash of a repository (`restore --list`), what a restore will
//! put back, and what it did. Tables for people, with totals; JSON for scripts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::{human_bytes, tags, write_rows};
use crate::journal::Record;
use crate::registry::Digest;
use crate::restore::{Back, Conflict, Restored, Trash};
use crate::trash::rfc3339;

/// One trash, as `restore --list --format json` shows it.
#[derive(Serialize)]
struct TrashView<'a> {
    tag: &'a str,
    digest: &'a Digest,
    run: String,
    expires: String,
    entries: Vec<EntryView<'a>>,
}

#[derive(Serialize)]
struct EntryView<'a> {
    digest: &'a Digest,
    media_type: &'a str,
    size: u64,
    tags: &'a [String],
    reason: &'a str,
}

/// `restore --list` as JSON: every trash with what it holds.
pub fn list_json(trashes: &[Trash]) -> String {
    let views: Vec<TrashView> = trashes
        .iter()
        .map(|t| TrashView {
            tag: &t.tag,
            digest: &t.digest,
            run: rfc3339(t.index.mark.run),
            expires: rfc3339(t.index.mark.expires),
            entries: t
                .index
                .entries
                .iter()
                .map(|e| EntryView {
                    digest: e.digest(),
                    media_type: &e.descriptor.media_type,
                    size: e.descriptor.size,
                    tags: &e.tags,
                    reason: &e.reason,
                })
                .collect(),
        })
        .collect();
    serde_json::to_string_pretty(&views).unwrap_or_default()
}

/// `restore --list` as a table: each trash, when it is emptied, and what it holds.
pub fn list_table(repository: &str, trashes: &[Trash]) -> String {
    let mut out = String::new();
    if trashes.is_empty() {
        let _ = writeln!(out, "{repository}: the trash is empty");
        return out;
    }
    for t in trashes {
        let _ = writeln!(
            out,
            "{repository}:{}  (run at {}, {} manifests, emptied from {})",
            t.tag,
            rfc3339(t.index.mark.run),
            t.index.entries.len(),
            rfc3339(t.index.mark.expires)
        );
        let rows: Vec<[String; 6]> = t
            .index
            .entries
            .iter()
            .map(|e| {
                [
                    "trash".into(),
                    e.digest().short().into(),
                    tags(&e.tags),
                    String::new(),
                    human_bytes(e.descriptor.size),
                    e.reason.clone(),
                ]
            })
            .collect();
        write_rows(
            &mut out,
            "  ",
            &["", "DIGEST", "TAGS", "", "SIZE", "REASON"],
            &rows,
        );
        out.push('\n');
    }
    let held: BTreeSet<&Digest> = trashes
        .iter()
        .flat_map(|t| t.index.entries.iter().map(|e| e.digest()))
        .collect();
    let _ = writeln!(
        out,
        "TOTAL  {} manifests in {} trash indexes (restore --digest D or --run TIME puts them back)",
        held.len(),
        trashes.len()
    );
    out
}

/// What a restore of `chosen` will do, before asking.
pub fn preview(repository: &str, trashes: &[&Trash], chosen: &BTreeSet<Digest>) -> String {
    let mut tags_of: BTreeMap<&Digest, BTreeSet<&str>> = BTreeMap::new();
    for e in trashes.iter().flat_map(|t| &t.index.entries) {
        if chosen.contains(e.digest()) {
            tags_of
                .entry(e.digest())
                .or_default()
                .extend(e.tags.iter().map(String::as_str));
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "This puts back, in {repository}:");
    for (d, t) in &tags_of {
        let t: Vec<String> = t.iter().map(|s| (*s).to_owned()).collect();
        let _ = writeln!(out, "  {}  {}", d.short(), tags(&t));
    }
    let count: usize = tags_of.values().map(BTreeSet::len).sum();
    let _ = writeln!(
        out,
        "TOTAL  {} manifests, {count} tags; a tag that names something else now is left alone",
        tags_of.len()
    );
    out
}

/// What a journal restore will do, before asking.
pub fn journal_preview(repository: &str, chosen: &[&Record]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "This puts back, in {repository}, from the journal:");
    for r in chosen {
        let _ = writeln!(
            out,
            "  {}  {}  (deleted {}: {})",
            r.digest.short(),
            tags(&r.tags),
            rfc3339(r.time),
            r.reason
        );
    }
    let count: usize = chosen.iter().map(|r| r.tags.len()).sum();
    let _ = writeln!(
        out,
        "TOTAL  {} manifests, {count} tags, if every blob they need is still there; a tag that names something else now is left alone",
        chosen.len()
    );
    out
}

/// What a journal restore did, as a table.
pub fn journal_done_table(r: &crate::restore::journal::Restored) -> String {
    let pushed: BTreeSet<&Digest> = r.pushed.iter().collect();
    let mut out = restored_rows(&r.repository, &r.restored, &r.conflicts, |b| {
        if pushed.contains(&b.digest) {
            "put back from the journal".into()
        } else {
            "was still there".into()
        }
    });
    let tags: usize = r.restored.iter().map(|b| b.tags.len()).sum();
    let _ = writeln!(
        out,
        "\nTOTAL  {} manifests put back, {tags} tags put back, {} tags left alone",
        r.pushed.len(),
        r.conflicts.len()
    );
    out
}

/// What a restore did, as a table.
pub fn done_table(r: &Restored) -> String {
    let mut out = restored_rows(&r.repository, &r.restored, &r.conflicts, |b| {
        match b.tags.is_empty() {
            true => "out of the trash".to_owned(),
            false => "tags put back".to_owned(),
        }
    });
    let tags: usize = r.restored.iter().map(|b| b.tags.len()).sum();
    let _ = writeln!(
        out,
        "\nTOTAL  {} manifests restored, {tags} tags put back, {} tags left alone, {} trash indexes rewritten, {} emptied",
        r.restored.len(),
        r.conflicts.len(),
        r.rewritten.len(),
        r.emptied.len()
    );
    out
}

/// The rows of a restore: each manifest back (with `note`), each tag left alone.
fn restored_rows(
    repository: &str,
    restored: &[Back],
    conflicts: &[Conflict],
    note: impl Fn(&Back) -> String,
) -> String {
    let mut rows: Vec<[String; 6]> = Vec::new();
    for b in restored {
        let mut note = note(b);
        if !b.already.is_empty() {
            let _ = write!(note, "; already there: {}", b.already.join(", "));
        }
        rows.push([
            "restore".into(),
            b.digest.short().into(),
            tags(&b.tags),
            String::new(),
            String::new(),
            note,
        ]);
    }
    for c in conflicts {
        rows.push([
            "left".into(),
            c.digest.short().into(),
            c.tag.clone(),
            String::new(),
            String::new(),
            format!(
                "the tag names {} now: pushed since, left alone",
                c.names.short()
            ),
        ]);
    }
    let mut out = String::new();
    let _ = writeln!(out, "{repository}");
    if !rows.is_empty() {
        write_rows(
            &mut out,
            "  ",
            &["ACTION", "DIGEST", "TAGS", "", "", "NOTE"],
            &rows,
        );
    }
    out
}
