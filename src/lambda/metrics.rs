//! One CloudWatch Embedded Metric Format line per invocation: the numbers that go on the
//! dashboard, with the trigger kind as the only dimension (low cardinality).

use serde_json::json;

use crate::report::Report;
use crate::trigger::Origin;

pub const NAMESPACE: &str = "RegistryJanitor";

/// The EMF document for one invocation. `errors` counts failed actions and run failures.
pub fn emf(origin: Origin, report: Option<&Report>, errors: u64, timestamp_ms: i64) -> String {
    let summary = report.map(|r| r.summary.clone()).unwrap_or_default();
    let failed_actions: u64 = report
        .map(|r| {
            r.repositories
                .iter()
                .map(|p| {
                    (p.delete.iter().filter(|d| d.error.is_some()).count()
                        + p.untag.iter().filter(|u| u.error.is_some()).count())
                        as u64
                })
                .sum()
        })
        .unwrap_or(0);
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Trigger"]],
                "Metrics": [
                    {"Name": "ManifestsDeleted", "Unit": "Count"},
                    {"Name": "TagsRemoved", "Unit": "Count"},
                    {"Name": "BytesReclaimed", "Unit": "Bytes"},
                    {"Name": "RepositoriesIncomplete", "Unit": "Count"},
                    {"Name": "Errors", "Unit": "Count"}
                ]
            }]
        },
        "Trigger": origin.as_str(),
        "ManifestsDeleted": if report.is_some_and(|r| r.dry_run) { 0 } else { summary.manifests_deleted },
        "TagsRemoved": if report.is_some_and(|r| r.dry_run) { 0 } else { summary.tags_removed },
        "BytesReclaimed": if report.is_some_and(|r| r.dry_run) { 0 } else { summary.bytes_reclaimable },
        "RepositoriesIncomplete": summary.repositories_incomplete,
        "Errors": errors + failed_actions,
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
}
