//! Work from the queue: an SQS event (`aws_lambda_events`' `SqsEvent`) whose records are work
//! messages (`queue::Message`). Records are grouped by repository, so a batch sweeps each
//! repository once, whatever number of its messages it holds.
//!
//! A record that is not a work message can never succeed: it is rejected (and named in
//! `batchItemFailures`, so it ends in the dead-letter queue, where a person sees it).

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;

use super::{Job, Origin, Pushed, Scope, TriggerError};
use crate::queue::Message;

/// One batch of work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    /// Each repository, with the ids of the records that asked for it.
    pub repositories: BTreeMap<String, Vec<String>>,
    /// Digests the records named, to remember before the sweep.
    pub pushed: Vec<Pushed>,
    /// Records that are not work messages: id and why.
    pub rejected: Vec<(String, String)>,
}

impl Work {
    /// The sweep this batch asks for, if it asks for any.
    pub fn job(&self) -> Option<Job> {
        if self.repositories.is_empty() {
            return None;
        }
        Some(Job {
            origin: Origin::Queue,
            scope: Scope::Repositories(self.repositories.keys().cloned().collect()),
            pushed: self.pushed.clone(),
            ids: Vec::new(),
            allow_over_limit: false,
        })
    }

    /// The records of `repository`.
    pub fn records_of(&self, repository: &str) -> &[String] {
        self.repositories.get(repository).map_or(&[], Vec::as_slice)
    }
}

/// Whether `value` is an SQS event: records from `aws:sqs`.
pub fn is_sqs(value: &Value) -> bool {
    value
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// Decode an SQS event. Only an event that is not SQS's shape at all is an error; a bad
/// record is rejected on its own.
pub fn decode(value: &Value) -> Result<Work, TriggerError> {
    let event: SqsEvent = serde_json::from_value(value.clone())
        .map_err(|e| TriggerError::BadRequest(format!("not an SQS event: {e}")))?;
    let mut work = Work::default();
    let mut pushed = BTreeSet::new();
    for record in event.records {
        let Some(id) = record.message_id.filter(|id| !id.is_empty()) else {
            // Without an id it cannot be named as failed; the whole batch fails instead, so
            // SQS hands every record back rather than deleting one that was not done.
            return Err(TriggerError::BadRequest(
                "an SQS record has no messageId".into(),
            ));
        };
        match Message::parse(record.body.as_deref().unwrap_or_default()) {
            Ok(m) => {
                pushed.extend(m.pushed.into_iter().map(|digest| Pushed {
                    repository: m.repository.clone(),
                    digest,
                }));
                work.repositories.entry(m.repository).or_default().push(id);
            }
            Err(why) => work.rejected.push((id, why)),
        }
    }
    work.pushed = pushed.into_iter().collect();
    Ok(work)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, body: &str) -> Value {
        json!({
            "messageId": id,
            "receiptHandle": "r",
            "body": body,
            "attributes": {"MessageGroupId": "g", "ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:janitor.fifo",
            "awsRegion": "eu-west-1"
        })
    }

    #[test]
    fn records_are_grouped_by_repository_with_their_pushed_digests() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let event = json!({"Records": [
            record("m1", &json!({"repository": "app", "pushed": [d1], "origin": "webhook"}).to_string()),
            record("m2", r#"{"repository":"lib","origin":"schedule"}"#),
            record("m3", r#"{"repository":"app","pushed":[],"origin":"schedule"}"#),
            record("m4", "not json"),
        ]});
        assert!(is_sqs(&event));
        let work = decode(&event).unwrap();
        assert_eq!(work.records_of("app"), ["m1", "m3"]);
        assert_eq!(work.records_of("lib"), ["m2"]);
        assert_eq!(work.pushed.len(), 1);
        assert_eq!(work.pushed[0].repository, "app");
        assert_eq!(work.rejected.len(), 1);
        assert_eq!(work.rejected[0].0, "m4");
        let job = work.job().unwrap();
        assert_eq!(job.origin, Origin::Queue);
        assert_eq!(
            job.scope,
            Scope::Repositories(["app".to_owned(), "lib".to_owned()].into())
        );
    }

    #[test]
    fn a_record_without_a_message_id_fails_the_batch() {
        let mut r = record("m1", r#"{"repository":"app","origin":"schedule"}"#);
        r.as_object_mut().unwrap().remove("messageId");
        assert!(decode(&json!({"Records": [r]})).is_err());
    }

    #[test]
    fn other_events_are_not_sqs() {
        assert!(!is_sqs(&json!({"repository": "app"})));
        assert!(!is_sqs(&json!({"Records": [{"eventSource": "aws:s3"}]})));
        assert!(!is_sqs(&json!({"Records": []})));
    }

    #[test]
    fn a_batch_of_only_bad_records_asks_for_no_sweep() {
        let work = decode(&json!({"Records": [record("m1", "{}")]})).unwrap();
        assert!(work.job().is_none());
        assert_eq!(work.rejected.len(), 1);
    }
}
