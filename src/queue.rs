//! The work queue: an SQS FIFO queue with one message per repository to sweep. Schedules and
//! webhooks put work on it (`Queue::send`); the function takes it off as SQS events
//! (`trigger::sqs`) and sweeps each repository once.
//!
//! The message contract, which operators and tests read:
//! - the body is JSON: `{"repository": "...", "pushed": ["sha256:..."], "origin": "..."}`;
//! - `MessageGroupId` is the repository, so two workers never sweep one repository at once
//!   (a name longer than SQS's 128 characters is replaced by `sha256:<hex of the name>`);
//! - `MessageDeduplicationId` is a hash of the repository, what identifies the delivery
//!   (the schedule's scheduled time, else its event id; the webhook's event ids, else a hash
//!   of its body; the records a continuation continues) and the part, so a redelivered
//!   webhook or a retried schedule within FIFO's 5 minutes is dropped and the next schedule
//!   never is;
//! - a delivery too large for one message (256 KiB) is split, its pushed digests spread over
//!   parts.
//!
//! Packing is pure (`messages`, `batches`); only `Queue::send` talks to SQS.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::registry::Digest;
use crate::trigger::Origin;

/// SQS's largest message, and the largest `SendMessageBatch` in total.
pub const MAX_BYTES: usize = 262_144;
/// SQS's most entries in one `SendMessageBatch`.
pub const BATCH: usize = 10;
/// SQS's longest `MessageGroupId` and `MessageDeduplicationId`.
const MAX_ID: usize = 128;

/// One message's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub repository: String,
    /// Digests a push named, to remember before the sweep (may be empty).
    #[serde(default)]
    pub pushed: Vec<Digest>,
    /// What queued it: `schedule`, `webhook`, `direct` (a person), or `queue` (a worker's
    /// continuation of a repository it did not finish).
    pub origin: Origin,
}

impl Message {
    /// Read a body, refusing anything that is not exactly the contract.
    pub fn parse(body: &str) -> Result<Message, String> {
        let message: Message = serde_json::from_str(body).map_err(|e| {
            format!("not a work message {{\"repository\", \"pushed\", \"origin\"}}: {e}")
        })?;
        crate::registry::name::check_repository(&message.repository).map_err(|e| e.to_string())?;
        Ok(message)
    }
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub group: String,
    pub deduplication: String,
    pub body: String,
}

/// The messages for one repository: one, or more when its pushed digests do not fit in one.
/// `ids` identify the delivery (see the module's contract).
pub fn messages(
    repository: &str,
    pushed: &[Digest],
    origin: Origin,
    ids: &[String],
) -> Vec<Outgoing> {
    let body = |pushed: &[Digest]| {
        serde_json::to_string(&Message {
            repository: repository.to_owned(),
            pushed: pushed.to_vec(),
            origin,
        })
        .unwrap_or_default()
    };
    // Greedy parts: as many digests as keep the body within a message.
    let empty = body(&[]).len();
    let mut parts: Vec<&[Digest]> = Vec::new();
    let (mut start, mut size) = (0, empty);
    for (i, d) in pushed.iter().enumerate() {
        // The digest, its quotes and a comma.
        let cost = d.as_str().len() + 3;
        if size + cost > MAX_BYTES && i > start {
            parts.push(&pushed[start..i]);
            (start, size) = (i, empty);
        }
        size += cost;
    }
    parts.push(&pushed[start..]);
    parts
        .into_iter()
        .enumerate()
        .map(|(part, digests)| Outgoing {
            group: group_of(repository),
            deduplication: deduplication(repository, ids, part),
            body: body(digests),
        })
        .collect()
}

/// Batches for `SendMessageBatch`: at most 10 messages and 256 KiB each.
pub fn batches(messages: Vec<Outgoing>) -> Vec<Vec<Outgoing>> {
    let mut out: Vec<Vec<Outgoing>> = Vec::new();
    let mut size = 0;
    for m in messages {
        let fits = out
            .last()
            .is_some_and(|b| b.len() < BATCH && size + m.body.len() <= MAX_BYTES);
        if !fits {
            out.push(Vec::new());
            size = 0;
        }
        size += m.body.len();
        if let Some(batch) = out.last_mut() {
            batch.push(m);
        }
    }
    out
}

fn group_of(repository: &str) -> String {
    if repository.len() <= MAX_ID {
        repository.to_owned()
    } else {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(repository.as_bytes()))
        )
    }
}

/// The same repository, delivery and part give the same id; anything else another.
fn deduplication(repository: &str, ids: &[String], part: usize) -> String {
    let mut h = Sha256::new();
    h.update(repository.as_bytes());
    for id in ids {
        h.update([0]);
        h.update(id.as_bytes());
    }
    h.update([0xff]);
    h.update(part.to_string().as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot send to the work queue {queue}: {reason}")]
    Send { queue: String, reason: String },
    #[error("the work queue {queue} refused {failed} of {sent} messages, first for {repository}: {reason}")]
    Refused {
        queue: String,
        failed: usize,
        sent: usize,
        repository: String,
        reason: String,
    },
}

/// The SQS queue work goes to.
#[derive(Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Queue {
        Queue {
            client,
            url: url.into(),
        }
    }

    /// Send `messages` in batches; returns how many were queued. A refused entry is an
    /// error: the caller fails, its sender retries, and deduplication drops what did go.
    pub async fn send(&self, messages: Vec<Outgoing>) -> Result<usize, QueueError> {
        let mut queued = 0;
        for batch in batches(messages) {
            let mut request = self.client.send_message_batch().queue_url(&self.url);
            for (i, m) in batch.iter().enumerate() {
                let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(&m.body)
                    .message_group_id(&m.group)
                    .message_deduplication_id(&m.deduplication)
                    .build()
                    .map_err(|e| QueueError::Send {
                        queue: self.url.clone(),
                        reason: e.to_string(),
                    })?;
                request = request.entries(entry);
            }
            let answer = request.send().await.map_err(|e| QueueError::Send {
                queue: self.url.clone(),
                reason: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            })?;
            if let Some(first) = answer.failed().first() {
                let repository = first
                    .id()
                    .strip_prefix('m')
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| batch.get(i))
                    .map(|m| m.group.clone())
                    .unwrap_or_default();
                return Err(QueueError::Refused {
                    queue: self.url.clone(),
                    failed: answer.failed().len(),
                    sent: batch.len(),
                    repository,
                    reason: format!("{} {}", first.code(), first.message().unwrap_or_default()),
                });
            }
            queued += answer.successful().len();
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u64) -> Digest {
        format!("sha256:{n:064x}").parse().unwrap()
    }

    #[test]
    fn a_message_is_the_documented_json() {
        let m = messages("ci/app", &[d(1)], Origin::Webhook, &["ev-1".into()]);
        assert_eq!(m.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&m[0].body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"repository": "ci/app", "pushed": [d(1).as_str()], "origin": "webhook"})
        );
        assert_eq!(m[0].group, "ci/app");
        assert_eq!(m[0].deduplication.len(), 64);
        assert_eq!(Message::parse(&m[0].body).unwrap().pushed, vec![d(1)]);
    }

    #[test]
    fn the_same_delivery_deduplicates_and_the_next_schedule_does_not() {
        let id = |repo: &str, ids: &[&str]| {
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            messages(repo, &[], Origin::Schedule, &ids)[0]
                .deduplication
                .clone()
        };
        assert_eq!(id("a", &["e1", "e2"]), id("a", &["e1", "e2"]));
        assert_ne!(id("a", &["e1"]), id("a", &["e2"]), "the next schedule");
        assert_ne!(id("a", &["e1"]), id("b", &["e1"]), "another repository");
        assert_ne!(id("a", &["e1e2"]), id("a", &["e1", "e2"]));
    }

    #[test]
    fn a_delivery_too_large_for_one_message_is_split_and_nothing_is_lost() {
        let pushed: Vec<Digest> = (0..8000).map(d).collect();
        let m = messages("app", &pushed, Origin::Webhook, &["x".into()]);
        assert!(m.len() >= 3, "{}", m.len());
        let mut back = Vec::new();
        for part in &m {
            assert!(part.body.len() <= MAX_BYTES, "{}", part.body.len());
            back.extend(Message::parse(&part.body).unwrap().pushed);
        }
        assert_eq!(back, pushed);
        let ids: std::collections::BTreeSet<&str> =
            m.iter().map(|p| p.deduplication.as_str()).collect();
        assert_eq!(ids.len(), m.len(), "each part its own deduplication id");
    }

    #[test]
    fn batches_hold_at_most_ten_messages_and_256_kib() {
        let small: Vec<Outgoing> = (0..25)
            .flat_map(|i| messages(&format!("r{i}"), &[], Origin::Schedule, &[]))
            .collect();
        let sizes: Vec<usize> = batches(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let big: Vec<Outgoing> = (0..3)
            .flat_map(|i| {
                let pushed: Vec<Digest> = (0..2000).map(|n| d(n + i * 10_000)).collect();
                messages(&format!("r{i}"), &pushed, Origin::Webhook, &[])
            })
            .collect();
        for b in batches(big) {
            assert!(b.iter().map(|m| m.body.len()).sum::<usize>() <= MAX_BYTES);
        }
    }

    #[test]
    fn a_body_off_the_contract_is_refused_with_what_was_expected() {
        for bad in [
            "{",
            r#"{"repository":"app"}"#,
            r#"{"repository":"app","origin":"schedule","extra":1}"#,
            r#"{"repository":"App/../x","origin":"schedule"}"#,
            r#"{"repository":"app","pushed":["md5:1"],"origin":"schedule"}"#,
        ] {
            assert!(Message::parse(bad).is_err(), "{bad}");
        }
        assert!(Message::parse("{").unwrap_err().contains("repository"));
    }

    #[test]
    fn a_long_repository_name_gets_a_group_id_sqs_accepts() {
        let name = format!("team/{}", "a".repeat(200));
        let m = messages(&name, &[], Origin::Schedule, &[]);
        assert!(m[0].group.len() <= MAX_ID);
        assert_eq!(
            m[0].group,
            messages(&name, &[], Origin::Direct, &[])[0].group
        );
    }
}
