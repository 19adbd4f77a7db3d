//! A stand-in for Lambda's SQS event source mapping, which cannot run here. It is a test
//! driver, not a fake of an API: the queue is `moto`'s real SQS API, and the function runs
//! under `cargo lambda watch`. The driver does what the mapping does, one batch at a time:
//! it receives up to 10 messages, invokes the function with them as an SQS event (the shape
//! of AWS's published example), deletes the messages the answer does not name in
//! `batchItemFailures`, and leaves those it names, which come back after the visibility
//! timeout. Unlike the mapping it never runs two batches at once.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{json, Value};

use super::lambda_watch::Watch;
use super::moto::Moto;

pub struct Driver {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
    arn: String,
}

/// One invocation of the function by the driver.
#[derive(Debug)]
pub struct Polled {
    /// (message id, body) of each record handed over.
    pub records: Vec<(String, String)>,
    /// Message ids the function named in `batchItemFailures`.
    pub failures: Vec<String>,
}

impl Polled {
    /// The repositories of the records handed over.
    pub fn repositories(&self) -> Vec<String> {
        self.records
            .iter()
            .filter_map(|(_, body)| {
                serde_json::from_str::<Value>(body).ok()?["repository"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }
}

impl Driver {
    /// A new FIFO queue on `moto`, without content-based deduplication (the function sets
    /// the ids), with a short visibility timeout so that failed records come back quickly.
    pub async fn fifo_queue(moto: &Moto, name: &str, visibility: Duration) -> Driver {
        let client = aws_sdk_sqs::Client::new(&moto.sdk().await);
        let created = client
            .create_queue()
            .queue_name(format!("{name}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility.as_secs().to_string(),
            )
            .send()
            .await
            .expect("create queue");
        let url = created.queue_url().expect("queue url").to_owned();
        let attributes = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        Driver { client, url, arn }
    }

    /// Messages visible, and in flight (received, neither deleted nor back yet).
    pub async fn depth(&self) -> (u64, u64) {
        let a = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let get = |k: QueueAttributeName| {
            a.attributes()
                .and_then(|m| m.get(&k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// One batch: receive, invoke, delete what succeeded. `None` when nothing was visible.
    pub async fn poll_once(&self, watch: &Watch) -> Option<Polled> {
        let got = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return None;
        }
        let records: Vec<Value> = got
            .messages()
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        let answer = watch
            .invoke(&json!({ "Records": records }).to_string())
            .await;
        let failures: Vec<String> = answer["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("no batchItemFailures in {answer}\n{}", watch.log()))
            .iter()
            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
            .collect();
        for m in got.messages() {
            if !failures.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        Some(Polled {
            records: got
                .messages()
                .iter()
                .map(|m| {
                    (
                        m.message_id().unwrap_or_default().to_owned(),
                        m.body().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            failures,
        })
    }

    /// Poll until the queue is empty, waiting for failed records to come back; panics after
    /// `limit` invocations. Returns every invocation.
    pub async fn drain(&self, watch: &Watch, limit: usize) -> Vec<Polled> {
        let mut polls = Vec::new();
        let give_up = Instant::now() + Duration::from_secs(300);
        loop {
            match self.poll_once(watch).await {
                Some(p) => {
                    polls.push(p);
                    assert!(
                        polls.len() <= limit,
                        "not drained after {limit} invocations: {polls:#?}"
                    );
                }
                None if self.depth().await == (0, 0) => return polls,
                None => {
                    assert!(Instant::now() < give_up, "records never came back");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
