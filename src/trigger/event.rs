//! Events that are not HTTP requests: EventBridge scheduled rules and EventBridge Scheduler
//! invocations (optionally naming repositories), and direct invocations such as
//! `{"repository": "ci/app"}` or `{"repositories": [...]}` from a person or a Step Functions Map.

use serde_json::Value;

use super::{repositories_job, Decision, Job, Origin, Scope, TriggerError};

const EXPECTED: &str = "expected a scheduled event (detail-type \"Scheduled Event\"), an HTTP \
request (payload 2.0), or {\"repository\": NAME} / {\"repositories\": [NAMES]}";

/// Decode a non-HTTP event.
pub fn decode(value: &Value) -> Result<Decision, TriggerError> {
    let Some(obj) = value.as_object() else {
        return Err(TriggerError::BadRequest(format!(
            "event is not a JSON object; {EXPECTED}"
        )));
    };
    if obj.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        // The detail is an object from a rule, and the string "{}" from Scheduler.
        let detail = match obj.get("detail") {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                serde_json::from_str(s).map_err(|e| {
                    TriggerError::BadRequest(format!("scheduled event detail is not JSON: {e}"))
                })?
            }
            Some(v) => v.clone(),
            None => Value::Null,
        };
        // What tells this schedule from the next, for the work queue's deduplication: its
        // scheduled `time`, the same on every retry of one occurrence (Scheduler gives each
        // attempt a new execution id); else the event's `id`.
        let ids: Vec<String> = ["time", "id"]
            .iter()
            .find_map(|k| {
                obj.get(*k)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
            })
            .map(|v| vec![v.to_owned()])
            .unwrap_or_default();
        return match named(&detail)? {
            Some(job) => Ok(Decision::Run(Job {
                origin: Origin::Schedule,
                ids,
                ..job
            })),
            None => Ok(Decision::Run(Job {
                origin: Origin::Schedule,
                scope: Scope::Policy,
                pushed: Vec::new(),
                ids,
            })),
        };
    }
    match named(value)? {
        Some(job) => Ok(Decision::Run(job)),
        None => Err(TriggerError::BadRequest(format!(
            "unrecognised event; {EXPECTED}"
        ))),
    }
}

/// `{"repository": "x"}` or `{"repositories": ["x", "y"]}`, if the value has either key.
fn named(value: &Value) -> Result<Option<Job>, TriggerError> {
    if let Some(one) = value.get("repository") {
        let name = one
            .as_str()
            .ok_or_else(|| TriggerError::BadRequest("`repository` must be a string".into()))?;
        return repositories_job(Origin::Direct, [name]).map(Some);
    }
    if let Some(many) = value.get("repositories") {
        let names = many
            .as_array()
            .ok_or_else(|| {
                TriggerError::BadRequest("`repositories` must be a list of names".into())
            })?
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    TriggerError::BadRequest("`repositories` must hold strings".into())
                })
            })
            .collect::<Result<Vec<&str>, _>>()?;
        return repositories_job(Origin::Direct, names).map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn scheduled_rules_and_scheduler_sweep_what_the_policy_names() {
        for f in [
            "schedule-eventbridge-rule.json",
            "schedule-eventbridge-scheduler.json",
        ] {
            let Decision::Run(job) = decode(&fixture(f)).unwrap() else {
                panic!("{f}")
            };
            assert_eq!(job.origin, Origin::Schedule, "{f}");
            assert_eq!(job.scope, Scope::Policy, "{f}");
        }
    }

    #[test]
    fn a_schedule_can_name_repositories_in_its_detail() {
        let mut e = fixture("schedule-eventbridge-scheduler.json");
        e["detail"] = Value::String(r#"{"repositories":["ci/app"]}"#.into());
        let Decision::Run(job) = decode(&e).unwrap() else {
            panic!()
        };
        assert_eq!(job.origin, Origin::Schedule);
        assert_eq!(job.scope, Scope::Repositories(["ci/app".to_owned()].into()));
    }

    #[test]
    fn direct_invocations_name_their_repositories() {
        let Decision::Run(job) = decode(&serde_json::json!({"repository": "ci/app"})).unwrap()
        else {
            panic!()
        };
        assert_eq!(job.origin, Origin::Direct);
        let Decision::Run(job) =
            decode(&serde_json::json!({"repositories": ["a", "b", "a"]})).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            job.scope,
            Scope::Repositories(["a".to_owned(), "b".to_owned()].into())
        );
    }

    #[test]
    fn anything_else_is_an_error_that_says_what_was_expected() {
        for bad in [
            serde_json::json!({"hello": 1}),
            serde_json::json!([1]),
            serde_json::json!({"repositories": []}),
            serde_json::json!({"repositories": "ci/app"}),
            serde_json::json!({"repository": "../x"}),
            serde_json::json!({"detail-type": "Scheduled Event", "detail": "{not json"}),
        ] {
            let err = decode(&bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}: {err}");
        }
        assert!(decode(&serde_json::json!({"x": 1}))
            .unwrap_err()
            .to_string()
            .contains("expected"));
    }
}
