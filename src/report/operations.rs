//! What the manual operations (`repository`, `image`, `tag`, `manifest`) print: previews in
//! the words of the ACR guide, what was done, and `manifest list`'s rows. Pure: text in,
//! text out; the CLI prints it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{human_bytes, write_rows};
use crate::plan::manual::Listed;
use crate::plan::RepositoryPlan;
use crate::registry::Digest;

/// `manifest list --format table`: one row per manifest, and the total.
pub fn listing_table(rows: &[Listed]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.digest.to_string(),
                if r.tags.is_empty() {
                    "-".into()
                } else {
                    r.tags.join(",")
                },
                r.timestamp.map_or("unknown".into(), rfc3339),
                human_bytes(r.size),
                r.media_type
                    .rsplit('/')
                    .next()
                    .unwrap_or(&r.media_type)
                    .to_owned(),
                r.used_by.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = String::new();
    write_rows(
        &mut out,
        "",
        &["DIGEST", "TAGS", "TIMESTAMP", "SIZE", "MEDIA TYPE", "NOTE"],
        &cells,
    );
    let total: u64 = rows.iter().map(|r| r.size).sum();
    let _ = writeln!(
        out,
        "{} manifests, {} in total (shared layers counted in each)",
        rows.len(),
        human_bytes(total)
    );
    out
}

/// `manifest list --format tsv`: digest, tags, time, bytes, media type; no header.
pub fn listing_tsv(rows: &[Listed]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            r.digest,
            r.tags.join(","),
            r.timestamp.map(rfc3339).unwrap_or_default(),
            r.size,
            r.media_type
        );
    }
    out
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What `image delete` is about to do, in the guide's words.
pub fn image_delete_preview(repo: &str, digest: &Digest, plan: &RepositoryPlan) -> String {
    let mut out = String::new();
    let own_tags: Vec<String> = plan
        .delete
        .iter()
        .find(|d| &d.digest == digest)
        .map(|d| d.tags.iter().map(|t| format!("'{repo}:{t}'")).collect())
        .unwrap_or_default();
    if own_tags.is_empty() {
        let _ = write!(
            out,
            "This operation will delete the manifest '{digest}' (it has no tags)."
        );
    } else {
        let _ = write!(
            out,
            "This operation will delete the manifest '{digest}' and all the following images: {}.",
            own_tags.join(", ")
        );
    }
    let rest: Vec<_> = plan.delete.iter().filter(|d| &d.digest != digest).collect();
    if !rest.is_empty() {
        let _ = write!(out, "\nWith it go {} manifests only it uses:", rest.len());
        for d in rest {
            let tags = if d.tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", d.tags.join(", "))
            };
            let _ = write!(out, "\n  {}{tags}: {}", d.digest, d.reason);
        }
    }
    let _ = writeln!(
        out,
        "\nSpace the registry can reclaim (after garbage collection): {}.",
        human_bytes(plan.bytes_reclaimable())
    );
    out
}

/// What `tag delete` is about to do: the tag goes, the manifest stays with `others`.
pub fn tag_delete_preview(repo: &str, tag: &str, digest: &Digest, others: &[&String]) -> String {
    let stays = if others.is_empty() {
        "The manifest stays, untagged".to_owned()
    } else {
        format!(
            "The manifest stays, still tagged {}",
            others
                .iter()
                .map(|t| format!("'{repo}:{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "This operation will remove the tag '{repo}:{tag}' from the manifest '{digest}'.\n{stays}; no space is freed.\n"
    )
}

/// What `repository delete` is about to do, and what stays (a lock, a manifest in use).
pub fn repository_delete_preview(repo: &str, plan: &RepositoryPlan) -> String {
    let tags: usize = plan.delete.iter().map(|d| d.tags.len()).sum();
    let mut out = format!(
        "This operation will delete the repository '{repo}': {} manifests with {tags} tags ({} to reclaim).\n",
        plan.delete.len(),
        human_bytes(plan.bytes_reclaimable())
    );
    for k in &plan.keep {
        let _ = writeln!(out, "  stays: {} ({})", k.digest, k.reason);
    }
    out
}

/// What an operation did: each delete and untag, what apply kept that was to go, and totals.
pub fn done(repo: &str, done: &RepositoryPlan) -> String {
    let mut out = String::new();
    if let Some(e) = done.error() {
        let _ = writeln!(out, "{repo}: {e}");
    }
    for d in &done.delete {
        let _ = match &d.error {
            None => writeln!(out, "deleted {repo}@{} {}", d.digest, tag_list(&d.tags)),
            Some(e) => writeln!(out, "FAILED to delete {repo}@{}: {e}", d.digest),
        };
    }
    for u in &done.untag {
        let _ = match &u.error {
            None => writeln!(out, "untagged {repo}:{}", u.tag),
            Some(e) => writeln!(out, "FAILED to untag {repo}:{}: {e}", u.tag),
        };
    }
    // What apply kept that the plan deleted: changed since planning or while deleting,
    // refused for a lock, or not reached.
    for k in done.keep.iter().filter(|k| k.kind.overrides_a_decision()) {
        let _ = writeln!(out, "kept {repo}@{}: {}", k.digest, k.reason);
    }
    let deleted = done.delete.iter().filter(|d| d.error.is_none()).count();
    let _ = writeln!(
        out,
        "{deleted} manifests deleted, {} tags removed, {} to reclaim by garbage collection.",
        done.delete
            .iter()
            .filter(|d| d.error.is_none())
            .map(|d| d.tags.len())
            .sum::<usize>()
            + done.untag.iter().filter(|u| u.error.is_none()).count(),
        human_bytes(done.bytes_reclaimable())
    );
    out
}

fn tag_list(tags: &[String]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        format!("(tags: {})", tags.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Delete, Keep, KeepKind, Untag};

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn keep(c: char, kind: KeepKind, reason: &str) -> Keep {
        Keep {
            digest: digest(c),
            tags: vec![],
            reason: reason.into(),
            kind,
            since: None,
        }
    }

    #[test]
    fn done_names_failures_second_thoughts_and_counts_only_what_succeeded() {
        let mut plan = RepositoryPlan::empty("app");
        plan.delete = vec![
            Delete {
                digest: digest('a'),
                tags: vec!["pr-1".into()],
                reason: "r".into(),
                bytes: 2048,
                since: None,
                parent: None,
                empties_trash: false,
                trash_until: None,
                trash: None,
                error: None,
            },
            Delete {
                digest: digest('b'),
                tags: vec![],
                reason: "r".into(),
                bytes: 10,
                since: None,
                parent: None,
                empties_trash: false,
                trash_until: None,
                trash: None,
                error: Some("HTTP 500".into()),
            },
        ];
        plan.untag = vec![Untag {
            tag: "old".into(),
            digest: digest('c'),
            reason: "r".into(),
            error: None,
        }];
        plan.keep = vec![
            keep('c', KeepKind::Tagged, "tag \"v1\" stays"),
            keep(
                'd',
                KeepKind::Changed,
                "changed while deleting: tag hotfix now reaches it",
            ),
        ];
        let text = done("app", &plan);
        assert!(
            text.contains(&format!("deleted app@{} (tags: pr-1)\n", digest('a'))),
            "{text}"
        );
        assert!(text.contains(&format!("FAILED to delete app@{}: HTTP 500\n", digest('b'))));
        assert!(text.contains("untagged app:old\n"));
        assert!(text.contains(&format!("kept app@{}: changed while deleting", digest('d'))));
        assert!(
            !text.contains("tag \\\"v1\\\" stays")
                && !text.contains(&format!("kept app@{}", digest('c')))
        );
        assert!(
            text.ends_with(
                "1 manifests deleted, 2 tags removed, 2.0 KiB to reclaim by garbage collection.\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_listing_table_has_a_total_and_human_sizes() {
        let rows = vec![
            Listed {
                digest: digest('a'),
                tags: vec![],
                timestamp: None,
                size: 1536,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                used_by: Some("child of aaaaaaaaaaaa".into()),
            },
            Listed {
                digest: digest('b'),
                tags: vec!["v1".into(), "latest".into()],
                timestamp: "2026-01-02T03:04:05Z".parse().ok(),
                size: 1024 * 1024,
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                used_by: None,
            },
        ];
        let table = listing_table(&rows);
        assert!(
            table.contains("1.5 KiB") && table.contains("1.0 MiB"),
            "{table}"
        );
        assert!(table.contains("unknown") && table.contains("child of"));
        assert!(
            table.ends_with("2 manifests, 1.0 MiB in total (shared layers counted in each)\n"),
            "{table}"
        );
        let tsv = listing_tsv(&rows);
        assert_eq!(
            tsv.lines().nth(1),
            Some(format!("{}\tv1,latest\t2026-01-02T03:04:05Z\t1048576\tapplication/vnd.oci.image.index.v1+json", digest('b')).as_str())
        );
    }
}
