//! The queue mode (`JANITOR_QUEUE_URL` set): a schedule lists the repositories and queues one
//! message per repository, a webhook queues its pushed repositories and answers 202 at once,
//! and SQS events from the queue are the work: each repository swept once, and the records
//! of every repository not finished named in `batchItemFailures`, to come back later.

use std::collections::BTreeSet;

use aws_lambda_events::sqs::SqsBatchResponse;
use serde_json::{json, Value};

use super::config::Config;
use super::{covered, emit_metrics, App, JobError};
use crate::queue;
use crate::registry;
use crate::sweep::scope;
use crate::trigger::{self, Job, Origin, Scope};

impl App {
    fn work_queue(&self) -> Result<&queue::Queue, JobError> {
        self.queue.as_ref().ok_or(JobError::NoQueue)
    }

    /// A schedule: the repositories the policy covers (the catalog, or the schedule's
    /// `detail.repositories`), one message each. Reads no tags.
    pub(super) async fn dispatch(&self, config: &Config, job: Job) -> Result<Value, JobError> {
        let queue = self.work_queue()?;
        let names = match &job.scope {
            Scope::Repositories(names) => covered(&config.policy, names),
            Scope::Policy => match self.catalog(config).await {
                Err(e) if e.is_credentials() => {
                    self.reload_secrets().await;
                    self.catalog(config).await?
                }
                other => other?,
            },
        };
        let ids = if job.ids.is_empty() {
            // Nothing identifies this schedule: it must not be taken for another.
            vec![format!("unidentified:{:016x}", fastrand::u64(..))]
        } else {
            job.ids.clone()
        };
        let messages = names
            .iter()
            .flat_map(|n| queue::messages(n, &[], Origin::Schedule, &ids))
            .collect();
        queue.send(messages).await?;
        tracing::info!(
            origin = "schedule",
            queued = names.len(),
            "queued one message per repository"
        );
        super::metrics::emit_queued(Origin::Schedule, names.len());
        Ok(json!({ "queued": names.len(), "repositories": names }))
    }

    async fn catalog(&self, config: &Config) -> Result<Vec<String>, JobError> {
        let settings = self.settings(config, None).await?;
        let backend = registry::connect(&settings.registry, settings.client)?;
        Ok(scope(backend.as_ref(), &config.policy, &[]).await?)
    }

    /// A webhook: its pushed repositories that a rule covers, each with its digests, queued.
    /// The registry is not touched; the answer is 202, or 200 with the reason when no rule
    /// covers any, or 500 when the queue refuses (the registry then delivers again).
    pub(super) async fn enqueue(&self, config: &Config, job: Job) -> (u16, Value) {
        let queue = match self.work_queue() {
            Ok(q) => q,
            Err(e) => return (500, json!({ "error": e.to_string() })),
        };
        let Scope::Repositories(names) = &job.scope else {
            return (500, json!({ "error": "a webhook names its repositories" }));
        };
        let names = covered(&config.policy, names);
        if names.is_empty() {
            return (
                200,
                json!({ "ignored": "no rule of the policy covers the pushed repositories" }),
            );
        }
        let messages = names
            .iter()
            .flat_map(|n| {
                let pushed: Vec<_> = job
                    .pushed
                    .iter()
                    .filter(|p| &p.repository == n)
                    .map(|p| p.digest.clone())
                    .collect();
                queue::messages(n, &pushed, Origin::Webhook, &job.ids)
            })
            .collect();
        match queue.send(messages).await {
            Ok(_) => {
                tracing::info!(origin = "webhook", queued = names.len(), repositories = ?names, "queued");
                super::metrics::emit_queued(Origin::Webhook, names.len());
                (202, json!({ "queued": names.len() }))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot queue the webhook's work; the registry will deliver it again");
                (500, json!({ "error": e.to_string() }))
            }
        }
    }

    /// SQS records from the queue: each repository swept once. The answer names the records
    /// of every repository that failed, was incomplete or was not finished, and of every
    /// record that is not a work message; SQS hands those back after the visibility timeout
    /// (and to the dead-letter queue after `maxReceiveCount`). The rest are deleted.
    pub(super) async fn work(
        &self,
        config: &Config,
        payload: &Value,
        deadline: Option<std::time::Instant>,
    ) -> Result<Value, lambda_runtime::Error> {
        let work = trigger::sqs::decode(payload).map_err(|e| e.to_string())?;
        let mut failed: BTreeSet<&str> = BTreeSet::new();
        for (id, why) in &work.rejected {
            tracing::error!(message_id = %id, error = %why, "not a work message; it goes to the dead-letter queue after its retries");
            failed.insert(id);
        }
        if let Some(job) = work.job() {
            match self.run_job(config, job, deadline).await {
                Ok(report) => {
                    let unfinished = report.unfinished.iter().map(String::as_str);
                    let not_done = report
                        .repositories
                        .iter()
                        .filter(|p| p.has_failures() || p.unfinished())
                        .map(|p| p.name.as_str());
                    for name in not_done.chain(unfinished) {
                        failed.extend(work.records_of(name).iter().map(String::as_str));
                    }
                    emit_metrics(Origin::Queue, Some(&report), 0);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the batch failed; every record comes back");
                    for ids in work.repositories.values() {
                        failed.extend(ids.iter().map(String::as_str));
                    }
                    emit_metrics(Origin::Queue, None, 1);
                }
            }
        }
        let mut response = SqsBatchResponse::default();
        for id in failed {
            response.add_failure(id);
        }
        Ok(serde_json::to_value(response)?)
    }
}
