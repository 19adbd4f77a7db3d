//! The cap on one run (blast radius): a repository whose plan deletes more than the policy's
//! `limits` allow deletes nothing, and untags nothing, this run.
//!
//! A wrong policy or flag is the most common way people lose images (acr-cli #560: `--ago
//! 999999d` deleted every tag). The cap is the planner's last rule, so the plan shows it
//! before apply could act: a held repository's deletions become keeps of kind
//! [`KeepKind::OverLimit`], its untags are dropped, and its status is [`Status::Held`] with
//! the numbers. Trashing counts as deleting; emptying an expired trash does not. Pure, like
//! the rest of the planner.

use super::decision::{Keep, KeepKind, RepositoryPlan, Status};
use crate::policy::Limits;

/// `plan`, or the same repository held whole when its deletions pass `limits`.
///
/// - `max_delete`: more deletions than this are held;
/// - `max_delete_fraction`: a larger share of the repository's manifests is held, but only
///   when the plan also deletes more than `min_held` (a small repository's turnover is never
///   held).
pub fn hold(mut plan: RepositoryPlan, limits: &Limits) -> RepositoryPlan {
    // Emptying an expired trash was decided by the run that trashed it: it does not count.
    let deletes = plan.delete.iter().filter(|d| !d.empties_trash).count();
    if plan.status != Status::Complete || deletes == 0 {
        return plan;
    }
    let total = plan.delete.len() + plan.keep.len();
    let share = deletes as f64 / total as f64;
    let why = match (limits.max_delete, limits.max_delete_fraction) {
        (Some(max), _) if deletes > max => format!(
            "plan deletes {} of {} ({} manifests); limit {}",
            count(deletes),
            plan.name,
            count(total),
            count(max)
        ),
        (_, Some(fraction)) if deletes > limits.min_held && share > fraction => format!(
            "plan deletes {} of {} ({} of {} manifests); limit {}",
            percent(share),
            plan.name,
            count(deletes),
            count(total),
            percent(fraction)
        ),
        _ => return plan,
    };
    let reason = format!(
        "held: {why}; nothing is deleted or untagged here this run (apply --allow-over-limit goes ahead once)"
    );
    let deleted = std::mem::take(&mut plan.delete);
    plan.keep.extend(deleted.into_iter().map(|d| Keep {
        digest: d.digest,
        tags: d.tags,
        reason: reason.clone(),
        kind: KeepKind::OverLimit,
        since: d.since,
    }));
    plan.keep.sort_by(|a, b| a.digest.cmp(&b.digest));
    plan.untag.clear();
    plan.status = Status::Held(reason);
    plan
}

/// `1,204`.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `97%`, or `0.5%` below one percent.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p >= 1.0 || p == 0.0 {
        format!("{}%", p.floor() as u64)
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::decision::{Delete, Untag};
    use crate::registry::Digest;

    fn digest(n: usize) -> Digest {
        format!("sha256:{n:064x}").parse().unwrap()
    }

    /// A plan of `repo` that deletes `deletes` of `total` manifests and untags one tag.
    fn plan(deletes: usize, total: usize) -> RepositoryPlan {
        let mut p = RepositoryPlan::empty("ci/app");
        for n in 0..total {
            if n < deletes {
                p.delete.push(Delete {
                    digest: digest(n),
                    tags: vec![format!("pr-{n}")],
                    reason: "rule \"pr\" selects it".into(),
                    bytes: 1,
                    since: None,
                    parent: None,
                    empties_trash: false,
                    trash_until: None,
                    trash: None,
                    error: None,
                });
            } else {
                p.keep.push(Keep {
                    digest: digest(n),
                    tags: vec![],
                    reason: "tag stays".into(),
                    kind: KeepKind::Tagged,
                    since: None,
                });
            }
        }
        p.untag.push(Untag {
            tag: "pr-x".into(),
            digest: digest(total),
            reason: "selected".into(),
            error: None,
        });
        p
    }

    fn limits(max: Option<usize>, fraction: Option<f64>) -> Limits {
        Limits {
            max_delete: max,
            max_delete_fraction: fraction,
            ..Limits::default()
        }
    }

    #[test]
    fn a_plan_past_the_fraction_deletes_and_untags_nothing_and_gives_the_numbers() {
        let held = hold(plan(1204, 1240), &limits(None, Some(0.5)));
        let Status::Held(why) = &held.status else {
            panic!("not held: {:?}", held.status)
        };
        assert!(
            why.starts_with(
                "held: plan deletes 97% of ci/app (1,204 of 1,240 manifests); limit 50%"
            ),
            "{why}"
        );
        assert!(held.delete.is_empty() && held.untag.is_empty());
        assert_eq!(held.keep.len(), 1240);
        let over = held
            .keep
            .iter()
            .filter(|k| k.kind == KeepKind::OverLimit)
            .count();
        assert_eq!(over, 1204);
    }

    #[test]
    fn the_fraction_holds_only_past_min_held_deletions() {
        // 10 of 12 is 83%, but no more than min_held (10): a small repository's turnover.
        let small = hold(plan(10, 12), &limits(None, Some(0.5)));
        assert_eq!(small.status, Status::Complete);
        assert_eq!(small.delete.len(), 10);
        let big = hold(plan(11, 12), &limits(None, Some(0.5)));
        assert!(matches!(big.status, Status::Held(_)));
        // At the fraction exactly, nothing is held.
        let half = hold(plan(20, 40), &limits(None, Some(0.5)));
        assert_eq!(half.status, Status::Complete);
    }

    #[test]
    fn a_count_holds_past_it_whatever_the_share() {
        let at = hold(plan(3, 1000), &limits(Some(3), None));
        assert_eq!(at.delete.len(), 3, "at the count: goes ahead");
        let past = hold(plan(4, 1000), &limits(Some(3), None));
        let Status::Held(why) = &past.status else {
            panic!("not held")
        };
        assert!(
            why.contains("plan deletes 4 of ci/app (1,000 manifests); limit 3"),
            "{why}"
        );
        let none = hold(plan(1204, 1240), &Limits::default());
        assert_eq!(none.delete.len(), 1204, "no limits: nothing held");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(count(1240), "1,240");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(percent(0.971), "97%");
        assert_eq!(percent(0.004), "0.4%");
    }
}
