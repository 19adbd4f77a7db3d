//! Events that are not HTTP requests: EventBridge scheduled rules and EventBridge Scheduler
//! invocations (optionally naming repositories), Amazon ECR's `ECR Image Action` events (a
//! push is a sweep of that repository), and direct invocations such as
//! `{"repository": "ci/app"}` or `{"repositories": [...]}` from a person or a Step Functions Map.

use serde_json::Value;

use super::{repositories_job, Decision, Job, Origin, Scope, TriggerError};

const EXPECTED: &str = "expected a scheduled event (detail-type \"Scheduled Event\"), an ECR \
push (detail-type \"ECR Image Action\"), an HTTP request (payload 2.0), or \
{\"repository\": NAME} / {\"repositories\": [NAMES]}";

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
        if detail.get("allow_over_limit").is_some() {
            return Err(TriggerError::BadRequest(
                "`allow_over_limit` is for a one-off direct invocation, never a schedule".into(),
            ));
        }
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
                allow_over_limit: false,
            })),
        };
    }
    if obj.get("detail-type").and_then(Value::as_str) == Some("ECR Image Action")
        && obj.get("source").and_then(Value::as_str) == Some("aws.ecr")
    {
        return ecr_image_action(obj);
    }
    match named(value)? {
        Some(job) => Ok(Decision::Run(Job {
            allow_over_limit: over_limit(value)?,
            ..job
        })),
        None => Err(TriggerError::BadRequest(format!(
            "unrecognised event; {EXPECTED}"
        ))),
    }
}

/// An `ECR Image Action` event: a successful `PUSH` is a sweep of its repository, with its
/// digest recorded first; a `DELETE` (ours cause them) or a failed action is ignored.
fn ecr_image_action(obj: &serde_json::Map<String, Value>) -> Result<Decision, TriggerError> {
    let detail = obj.get("detail").ok_or_else(|| {
        TriggerError::BadRequest("ECR Image Action event without `detail`".into())
    })?;
    let field = |name: &str| detail.get(name).and_then(Value::as_str);
    match (field("action-type"), field("result")) {
        (Some("PUSH"), Some("SUCCESS")) => {}
        (Some("DELETE"), _) => {
            return Ok(Decision::Ignore(
                "an ECR DELETE event: deletes (ours among them) need no sweep".into(),
            ))
        }
        (Some(action), Some(result)) => {
            return Ok(Decision::Ignore(format!(
                "an ECR {action} event with result {result}: only a successful PUSH is a sweep"
            )))
        }
        _ => {
            return Err(TriggerError::BadRequest(
                "ECR Image Action event without `action-type` and `result`".into(),
            ))
        }
    }
    let repository = field("repository-name").ok_or_else(|| {
        TriggerError::BadRequest("ECR push event without `repository-name`".into())
    })?;
    let mut job = repositories_job(Origin::Webhook, [repository])?;
    if let Some(digest) = field("image-digest") {
        let digest = digest
            .parse::<crate::registry::Digest>()
            .map_err(|e| TriggerError::BadRequest(format!("ECR push event: image-digest: {e}")))?;
        job.pushed.push(super::Pushed {
            repository: repository.to_owned(),
            digest,
        });
    }
    job.ids = obj
        .get("id")
        .and_then(Value::as_str)
        .map(|id| vec![id.to_owned()])
        .unwrap_or_default();
    Ok(Decision::Run(job))
}

/// A direct invocation's `"allow_over_limit": true` (absent: false).
fn over_limit(value: &Value) -> Result<bool, TriggerError> {
    match value.get("allow_over_limit") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(TriggerError::BadRequest(
            "`allow_over_limit` must be true or false".into(),
        )),
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
    fn only_a_direct_invocation_may_go_past_the_limits_and_only_when_it_says_so() {
        let direct = |v: Value| match decode(&v) {
            Ok(Decision::Run(job)) => Ok(job.allow_over_limit),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(
            direct(serde_json::json!({"repository": "ci/app"})),
            Ok(false)
        );
        assert_eq!(
            direct(serde_json::json!({"repository": "ci/app", "allow_over_limit": true})),
            Ok(true)
        );
        let e = direct(serde_json::json!({"repository": "ci/app", "allow_over_limit": "yes"}))
            .unwrap_err();
        assert!(
            e.contains("`allow_over_limit` must be true or false"),
            "{e}"
        );
        // Never on a schedule, whatever its detail says.
        let mut e = fixture("schedule-eventbridge-scheduler.json");
        e["detail"] =
            Value::String(r#"{"repositories":["ci/app"],"allow_over_limit":true}"#.into());
        let refused = decode(&e).unwrap_err().to_string();
        assert!(refused.contains("never a schedule"), "{refused}");
    }

    #[test]
    fn an_ecr_push_sweeps_its_repository_and_a_delete_is_ignored() {
        let push = fixture("ecr-image-action.json");
        let Decision::Run(job) = decode(&push).unwrap() else {
            panic!()
        };
        assert_eq!(job.origin, Origin::Webhook);
        assert_eq!(
            job.scope,
            Scope::Repositories(["my-repository-name".to_owned()].into())
        );
        assert_eq!(job.pushed.len(), 1);
        assert_eq!(job.ids, vec!["13cde686-328b-6117-af20-0e5566167482"]);
        let mut delete = push.clone();
        delete["detail"]["action-type"] = "DELETE".into();
        assert!(matches!(decode(&delete).unwrap(), Decision::Ignore(_)));
        let mut failed = push.clone();
        failed["detail"]["result"] = "FAILURE".into();
        assert!(matches!(decode(&failed).unwrap(), Decision::Ignore(_)));
        let mut broken = push;
        broken["detail"]["image-digest"] = "sha256:nope".into();
        assert_eq!(decode(&broken).unwrap_err().status(), 400);
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
