//! The inventory in a DynamoDB table: the function's memory between invocations.
//!
//! One item per digest. Partition key `pk` = `<registry host>/<repository>`, sort key
//! `digest`. Attributes: `first_seen` and `untagged_since` (RFC 3339), `facts` (JSON),
//! `tags_seen` (JSON: each tag naming the digest, and since when), and
//! `expires_at` (epoch seconds, the table's TTL attribute) on digests the registry no longer
//! has. A tag being removed (`state::Removing`) is an item of its own, sort key
//! `tag:<name>`, with `named` (the digest) and `since`; it is deleted once settled.
//!
//! Updates are conditional expressions, so two sweeps racing on one repository agree:
//! `first_seen` and `untagged_since` are set once (`if_not_exists`), never moved later. A
//! digest that comes back while its forgotten item lingers (deleted, then pushed again with
//! the same content) is written over, so its old clocks do not come back (`DynamoState::write`).
//! `tags_seen` is written whole: of two sweeps racing on one repository (only a direct
//! invocation beside the queue can), the last one's record stands; it holds times at which
//! each tag named the digest, as both sweeps saw.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::{Remembered, Removing, RepoInventory, StateError, StateStore};
use crate::registry::Digest;

/// The sort key prefix of a tag-removal record (a digest never starts with it).
const TAG_KEY: &str = "tag:";

/// How long a forgotten digest's item lingers before DynamoDB's TTL removes it.
const FORGOTTEN_TTL_SECS: i64 = 7 * 24 * 3600;

pub struct DynamoState {
    client: Client,
    table: String,
    registry: String,
    /// What each repository looked like when loaded, to write only what changed.
    loaded: HashMap<String, RepoInventory>,
}

impl DynamoState {
    pub fn new(client: Client, table: &str, registry: &str) -> DynamoState {
        DynamoState {
            client,
            table: table.to_owned(),
            registry: registry.to_owned(),
            loaded: HashMap::new(),
        }
    }

    fn pk(&self, repository: &str) -> String {
        format!("{}/{repository}", self.registry)
    }

    fn fail(&self, operation: &str, e: impl std::error::Error) -> StateError {
        StateError::Dynamo {
            table: self.table.clone(),
            operation: operation.to_owned(),
            reason: DisplayErrorContext(e).to_string(),
        }
    }
}

fn text(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn time(item: &HashMap<String, AttributeValue>, key: &str) -> Option<DateTime<Utc>> {
    text(item, key)
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl DynamoState {
    /// Write one digest's item. `anew`: only over no item or a forgotten one (else the
    /// condition fails), setting its times outright; otherwise a time already on the item is
    /// kept (`if_not_exists`), so racing sweeps never move one later.
    async fn write(
        &self,
        pk: &str,
        digest: &Digest,
        now: &Remembered,
        anew: bool,
    ) -> Result<(), SdkError<UpdateItemError, HttpResponse>> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("digest", AttributeValue::S(digest.to_string()))
            .expression_attribute_values(":fs", AttributeValue::S(now.first_seen.to_rfc3339()));
        let first = |attribute: &str, value: &str| match anew {
            true => format!("{attribute} = {value}"),
            false => format!("{attribute} = if_not_exists({attribute}, {value})"),
        };
        let mut set = vec![first("first_seen", ":fs")];
        let mut remove = vec!["expires_at"];
        if let Some(facts) = &now.facts {
            let json = serde_json::to_string(facts).unwrap_or_default();
            update = update.expression_attribute_values(":facts", AttributeValue::S(json));
            set.push("facts = :facts".into());
        }
        if now.tags.is_empty() {
            remove.push("tags_seen");
        } else {
            let json = serde_json::to_string(&now.tags).unwrap_or_default();
            update = update.expression_attribute_values(":tags", AttributeValue::S(json));
            set.push("tags_seen = :tags".into());
        }
        match now.untagged_since {
            Some(since) => {
                update = update
                    .expression_attribute_values(":us", AttributeValue::S(since.to_rfc3339()));
                set.push(first("untagged_since", ":us"));
            }
            None => remove.push("untagged_since"),
        }
        if anew {
            update = update.condition_expression(
                "attribute_not_exists(first_seen) OR attribute_exists(expires_at)",
            );
        }
        update
            .update_expression(format!(
                "SET {} REMOVE {}",
                set.join(", "),
                remove.join(", ")
            ))
            .send()
            .await
            .map(|_| ())
    }
}

impl StateStore for DynamoState {
    async fn load(&mut self, repository: &str) -> Result<RepoInventory, StateError> {
        let pk = self.pk(repository);
        let mut inventory = RepoInventory::default();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.fail("Query", e))?;
            for item in page.items() {
                if item.contains_key("expires_at") {
                    continue;
                }
                if let Some(tag) =
                    text(item, "digest").and_then(|k| k.strip_prefix(TAG_KEY).map(str::to_owned))
                {
                    let named = text(item, "named").and_then(|d| d.parse::<Digest>().ok());
                    if let (Some(digest), Some(since)) = (named, time(item, "since")) {
                        inventory.removing.insert(tag, Removing { digest, since });
                    }
                    continue;
                }
                let Some(digest) = text(item, "digest").and_then(|d| d.parse::<Digest>().ok())
                else {
                    continue;
                };
                let Some(first_seen) = time(item, "first_seen") else {
                    continue;
                };
                inventory.manifests.insert(
                    digest,
                    Remembered {
                        first_seen,
                        untagged_since: time(item, "untagged_since"),
                        facts: text(item, "facts").and_then(|f| serde_json::from_str(&f).ok()),
                        tags: text(item, "tags_seen")
                            .and_then(|t| serde_json::from_str(&t).ok())
                            .unwrap_or_default(),
                    },
                );
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        self.loaded.insert(repository.to_owned(), inventory.clone());
        Ok(inventory)
    }

    async fn save(&mut self, repository: &str, inventory: RepoInventory) -> Result<(), StateError> {
        let pk = self.pk(repository);
        let before = self.loaded.remove(repository).unwrap_or_default();
        for (digest, now) in &inventory.manifests {
            if before.manifests.get(digest) == Some(now) {
                continue;
            }
            // A digest this load did not have may still have an item: a forgotten one (its
            // TTL not yet run out; load skips those), if the digest came back. Its old clocks
            // must not come back with it, so such an item is written over; a live item is
            // one a sweep racing this one wrote meanwhile, and keeps its first times.
            if !before.manifests.contains_key(digest) {
                match self.write(&pk, digest, now, true).await {
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
                    other => {
                        other.map_err(|e| self.fail("UpdateItem", e))?;
                        continue;
                    }
                }
            }
            self.write(&pk, digest, now, false)
                .await
                .map_err(|e| self.fail("UpdateItem", e))?;
        }
        let expires = Utc::now().timestamp() + FORGOTTEN_TTL_SECS;
        for digest in before
            .manifests
            .keys()
            .filter(|d| !inventory.manifests.contains_key(*d))
        {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("digest", AttributeValue::S(digest.to_string()))
                .update_expression("SET expires_at = :exp")
                .expression_attribute_values(":exp", AttributeValue::N(expires.to_string()))
                .send()
                .await
                .map_err(|e| self.fail("UpdateItem", e))?;
        }
        for (tag, record) in &inventory.removing {
            if before.removing.get(tag) == Some(record) {
                continue;
            }
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(pk.clone()))
                .item("digest", AttributeValue::S(format!("{TAG_KEY}{tag}")))
                .item("named", AttributeValue::S(record.digest.to_string()))
                .item("since", AttributeValue::S(record.since.to_rfc3339()))
                .send()
                .await
                .map_err(|e| self.fail("PutItem", e))?;
        }
        for tag in before
            .removing
            .keys()
            .filter(|t| !inventory.removing.contains_key(*t))
        {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("digest", AttributeValue::S(format!("{TAG_KEY}{tag}")))
                .send()
                .await
                .map_err(|e| self.fail("DeleteItem", e))?;
        }
        self.loaded.insert(repository.to_owned(), inventory);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StateError> {
        Ok(())
    }
}
