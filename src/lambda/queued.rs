//! The queue mode (`JANITOR_QUEUE_URL` set): a schedule lists the repositories and queues one
//! message per repository, a webhook queues its pushed repositories and answers 202 at once,
//! and SQS events from the queue are the work: each repository swept once, the records of
//! every failed or incomplete one named in `batchItemFailures` to come back later, and a
//! continuation queued for one the run's time ran out on after it made progress (`work`).

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

    /// SQS records from the queue: each repository swept once. What becomes of a
    /// repository's records:
    /// - done: deleted from the queue (the answer does not name them);
    /// - failed, or incomplete for another reason than time: named in `batchItemFailures`,
    ///   so SQS hands them back after the visibility timeout, and to the dead-letter queue
    ///   after `maxReceiveCount`;
    /// - not finished in time, but it made progress this run (something deleted or untagged),
    ///   or it was not reached: a continuation message is queued for it and the records are
    ///   done. A new message starts its receive count again, so a repository that needs
    ///   many invocations converges instead of ending in the dead-letter queue; one that
    ///   makes no progress (its read alone outlasts the run) is named in `batchItemFailures`,
    ///   so it cannot loop forever. If the continuation cannot be sent, the records are named.
    ///
    /// Records that are not work messages are named too. A record without a `messageId`
    /// cannot be named: the whole batch fails, and SQS hands all of it back.
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
                    let outcome = Outcome::of(&report);
                    for name in &outcome.retry {
                        failed.extend(work.records_of(name).iter().map(String::as_str));
                    }
                    if !outcome.resume.is_empty() {
                        // The run may have used its time up to the cutoff: the send gets what is
                        // left before Lambda's deadline, less a second for the answer.
                        let sent = tokio::time::timeout(
                            RESUME_TIMEOUT,
                            self.resume(&work, &outcome.resume),
                        )
                        .await
                        .unwrap_or(Err(JobError::TimedOut("queueing the continuations")));
                        if let Err(e) = sent {
                            tracing::error!(error = %e, "cannot queue the continuations; the records come back after the visibility timeout");
                            for name in &outcome.resume {
                                failed.extend(work.records_of(name).iter().map(String::as_str));
                            }
                        }
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

    /// Queue one continuation message for each repository, identified by the records it
    /// continues. A batch handed back whole (the answer was lost) comes again only after the
    /// visibility timeout and sends one more continuation: wasted work, never a second worker
    /// at once, since the group holds one message in flight.
    async fn resume(&self, work: &trigger::sqs::Work, names: &[String]) -> Result<usize, JobError> {
        let queue = self.work_queue()?;
        let messages = names
            .iter()
            .flat_map(|n| {
                let ids: Vec<String> = work
                    .records_of(n)
                    .iter()
                    .map(|id| format!("continues:{id}"))
                    .collect();
                queue::messages(n, &[], Origin::Queue, &ids)
            })
            .collect();
        let sent = queue.send(messages).await?;
        tracing::info!(repositories = ?names, "not finished in time; queued a continuation for each");
        Ok(sent)
    }
}

/// What a worker's report asks of the queue.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// Hand the records back (failed, incomplete, or unfinished without progress).
    retry: Vec<String>,
    /// Queue a continuation (unfinished after progress, or not reached).
    resume: Vec<String>,
}

impl Outcome {
    fn of(report: &crate::report::Report) -> Outcome {
        let mut outcome = Outcome::default();
        let progressed = |p: &crate::plan::RepositoryPlan| {
            p.delete.iter().any(|d| d.error.is_none()) || p.untag.iter().any(|u| u.error.is_none())
        };
        for p in &report.repositories {
            if p.has_failures() || (p.unfinished() && !progressed(p)) {
                outcome.retry.push(p.name.clone());
            } else if p.unfinished() {
                outcome.resume.push(p.name.clone());
            }
        }
        // Repositories not reached are continued only when the run got something done: a run
        // that started with no time (a timeout too short for the work) hands them back, so
        // they reach the dead-letter queue instead of looping.
        let got_something_done = report.repositories.iter().any(|p| {
            progressed(p)
                || matches!(
                    p.status,
                    crate::plan::Status::Complete
                        | crate::plan::Status::Absent(_)
                        | crate::plan::Status::Held(_)
                )
        });
        for name in &report.unfinished {
            let planned = report.repositories.iter().any(|p| &p.name == name);
            if planned {
                continue;
            }
            if got_something_done {
                outcome.resume.push(name.clone());
            } else {
                outcome.retry.push(name.clone());
            }
        }
        outcome
    }
}

/// The most a worker waits to queue its continuations.
const RESUME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Delete, Problem, RepositoryPlan, Status};
    use crate::report::Report;

    fn plan(name: &str, status: Status, deleted: bool, failed: bool) -> RepositoryPlan {
        let mut p = RepositoryPlan::empty(name);
        p.status = status;
        let entry = |error: Option<&str>| Delete {
            digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            tags: vec![],
            reason: "r".into(),
            bytes: 1,
            since: None,
            parent: None,
            empties_trash: false,
            trash_until: None,
            trash: None,
            error: error.map(str::to_owned),
        };
        if deleted {
            p.delete.push(entry(None));
        }
        if failed {
            p.delete.push(entry(Some("HTTP 500")));
        }
        p
    }

    #[test]
    fn only_progress_earns_a_continuation_and_failures_go_back_to_sqs() {
        let deadline = Problem::new(crate::plan::Cause::Deadline, "time ran out");
        let report = Report::new(
            chrono::Utc::now(),
            false,
            vec![
                plan("done", Status::Complete, true, false),
                plan("failed", Status::Complete, true, true),
                plan(
                    "broken",
                    Status::Incomplete("HTTP 500".into()),
                    false,
                    false,
                ),
                plan("progressed", Status::Unfinished, true, false),
                plan("stuck", Status::Unfinished, false, false),
                plan("read-cut", Status::Incomplete(deadline), false, false),
            ],
        )
        .left_for_next_run(vec![
            "progressed".into(),
            "stuck".into(),
            "read-cut".into(),
            "unreached".into(),
        ]);
        let outcome = Outcome::of(&report);
        assert_eq!(outcome.retry, ["failed", "broken", "stuck", "read-cut"]);
        assert_eq!(outcome.resume, ["progressed", "unreached"]);
    }

    #[test]
    fn a_repository_with_nothing_there_is_done_and_counts_as_something_done() {
        let report = Report::new(
            chrono::Utc::now(),
            false,
            vec![plan(
                "halfway",
                Status::Absent("NAME_UNKNOWN".into()),
                false,
                false,
            )],
        )
        .left_for_next_run(vec!["unreached".into()]);
        let outcome = Outcome::of(&report);
        assert!(outcome.retry.is_empty(), "{:?}", outcome.retry);
        assert_eq!(outcome.resume, ["unreached"]);
    }

    #[test]
    fn a_run_that_got_nothing_done_hands_its_unreached_repositories_back() {
        let report = Report::new(chrono::Utc::now(), false, vec![])
            .left_for_next_run(vec!["a".into(), "b".into()]);
        let outcome = Outcome::of(&report);
        assert_eq!(outcome.retry, ["a", "b"]);
        assert!(outcome.resume.is_empty());
    }
}
