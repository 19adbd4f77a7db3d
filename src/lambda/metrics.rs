//! One CloudWatch Embedded Metric Format line per invocation: the numbers that go on the
//! dashboard, with the trigger kind as the only dimension (low cardinality).

use serde_json::json;

use crate::report::Report;
use crate::trigger::Origin;

pub const NAMESPACE: &str = "RegistryJanitor";

/// The EMF document for one invocation. `errors` counts failed actions and run failures.
/// A dry run reports what it would delete as `ManifestsToDelete`, `TagsToRemove` and
/// `BytesReclaimable` (and zero deleted), so a trial period shows on the dashboard.
pub fn emf(origin: Origin, report: Option<&Report>, errors: u64, timestamp_ms: i64) -> String {
    let summary = report.map(|r| r.summary.clone()).unwrap_or_default();
    let dry_run = report.is_some_and(|r| r.dry_run);
    let repositories = report.map_or(&[][..], |r| r.repositories.as_slice());
    let failed_actions: u64 = repositories
        .iter()
        .map(|p| {
            (p.delete.iter().filter(|d| d.error.is_some()).count()
                + p.untag.iter().filter(|u| u.error.is_some()).count()) as u64
        })
        .sum();
    let failed_repositories = repositories.iter().filter(|p| p.has_failures()).count();
    let done = |n: u64| if dry_run { 0 } else { n };
    let would = |n: u64| if dry_run { n } else { 0 };
    let names = [
        ("ManifestsDeleted", "Count"),
        ("TagsRemoved", "Count"),
        ("BytesReclaimed", "Bytes"),
        ("ManifestsToDelete", "Count"),
        ("TagsToRemove", "Count"),
        ("BytesReclaimable", "Bytes"),
        ("RepositoriesSwept", "Count"),
        ("RepositoriesIncomplete", "Count"),
        ("RepositoriesUnfinished", "Count"),
        ("RepositoriesHeld", "Count"),
        ("RepositoriesFailed", "Count"),
        ("Errors", "Count"),
    ];
    let metrics: Vec<_> = names
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Trigger"]],
                "Metrics": metrics
            }]
        },
        "Trigger": origin.as_str(),
        "ManifestsDeleted": done(summary.manifests_deleted),
        "TagsRemoved": done(summary.tags_removed),
        "BytesReclaimed": done(summary.bytes_reclaimable),
        "ManifestsToDelete": would(summary.manifests_deleted),
        "TagsToRemove": would(summary.tags_removed),
        "BytesReclaimable": would(summary.bytes_reclaimable),
        "RepositoriesSwept": repositories.len(),
        "RepositoriesIncomplete": summary.repositories_incomplete,
        "RepositoriesUnfinished": summary.repositories_unfinished,
        "RepositoriesHeld": summary.repositories_held,
        "RepositoriesFailed": failed_repositories,
        "Errors": errors + failed_actions,
    })
    .to_string()
}

/// A dispatch or webhook that queued work: how many repositories.
pub fn emit_queued(origin: Origin, repositories: usize) {
    println!(
        "{}",
        queued(origin, repositories, chrono::Utc::now().timestamp_millis())
    );
}

fn queued(origin: Origin, repositories: usize, timestamp_ms: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Trigger"]],
                "Metrics": [{"Name": "RepositoriesQueued", "Unit": "Count"}]
            }]
        },
        "Trigger": origin.as_str(),
        "RepositoriesQueued": repositories,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_valid_emf_with_one_low_cardinality_dimension() {
        let line = emf(Origin::Webhook, None, 1, 1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Trigger"]])
        );
        assert_eq!(v["Trigger"], "webhook");
        assert_eq!(v["Errors"], 1);
        for m in v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            assert!(
                v.get(m["Name"].as_str().unwrap()).is_some(),
                "metric {m} has no value"
            );
        }
    }

    #[test]
    fn a_dry_run_reports_what_it_would_delete_and_a_real_run_what_it_deleted() {
        let mut plan = crate::plan::RepositoryPlan::empty("app");
        plan.delete.push(crate::plan::Delete {
            digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            tags: vec!["pr-1".into()],
            reason: "r".into(),
            bytes: 100,
            since: None,
            parent: None,
            empties_trash: false,
            trash_until: None,
            trash: None,
            error: None,
        });
        let now = chrono::Utc::now();
        let dry = Report::new(now, true, vec![plan.clone()]);
        let v: serde_json::Value =
            serde_json::from_str(&emf(Origin::Schedule, Some(&dry), 0, 1)).unwrap();
        assert_eq!(
            (
                v["ManifestsDeleted"].clone(),
                v["ManifestsToDelete"].clone()
            ),
            (json!(0), json!(1))
        );
        assert_eq!(v["BytesReclaimable"], 100);
        let real = Report::new(now, false, vec![plan]).left_for_next_run(vec!["lib".into()]);
        let v: serde_json::Value =
            serde_json::from_str(&emf(Origin::Queue, Some(&real), 0, 1)).unwrap();
        assert_eq!(
            (
                v["ManifestsDeleted"].clone(),
                v["ManifestsToDelete"].clone()
            ),
            (json!(1), json!(0))
        );
        assert_eq!(v["RepositoriesSwept"], 1);
        assert_eq!(v["RepositoriesUnfinished"], 1);
        assert_eq!(v["Trigger"], "queue");
    }

    #[test]
    fn a_queued_line_counts_repositories() {
        let v: serde_json::Value = serde_json::from_str(&queued(Origin::Webhook, 3, 1)).unwrap();
        assert_eq!(v["RepositoriesQueued"], 3);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "RepositoriesQueued"
        );
    }
}
