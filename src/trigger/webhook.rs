//! Webhook bodies, recognised by their shape: a CNCF distribution notification envelope, an
//! Azure Container Registry webhook, or a Harbor webhook (default or CloudEvents form).
//!
//! Only pushes of manifests cause work, one sweep per repository named. Pulls, deletes (our
//! own deletes cause those), chart events, blob pushes and unknown actions are acknowledged
//! with a reason and change nothing.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::{Decision, Job, Origin, Pushed, Scope, TriggerError};
use crate::registry::media_type::MediaType;
use crate::registry::Digest;

const EXPECTED: &str = "expected a distribution notification {\"events\":[...]}, an ACR webhook \
{\"action\",\"target\"}, or a Harbor webhook {\"type\",\"event_data\"} (or its CloudEvents form)";

/// Decode a webhook body.
pub fn decode(body: &[u8]) -> Result<Decision, TriggerError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| TriggerError::BadRequest(format!("body is not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(TriggerError::BadRequest(format!(
            "body is not a JSON object; {EXPECTED}"
        )));
    };
    let pushes = if obj.contains_key("events") {
        distribution(&value)?
    } else if obj.contains_key("action") && obj.contains_key("target") {
        acr(&value)?
    } else if obj.contains_key("event_data") && obj.contains_key("type") {
        harbor(obj.get("type"), obj.get("event_data"))?
    } else if obj.contains_key("specversion") && obj.contains_key("data") {
        harbor(obj.get("type"), obj.get("data"))?
    } else {
        return Err(TriggerError::BadRequest(format!(
            "unrecognised webhook; {EXPECTED}"
        )));
    };
    Ok(match to_decision(pushes) {
        Decision::Run(job) => Decision::Run(Job {
            ids: delivery_ids(obj, body),
            ..job
        }),
        ignored => ignored,
    })
}

/// What identifies a delivery, for the work queue's deduplication: the event ids
/// (distribution's `events[].id`, ACR's and CloudEvents' `id`), else a hash of the body. A
/// registry redelivering a notification sends the same ids.
fn delivery_ids(obj: &serde_json::Map<String, Value>, body: &[u8]) -> Vec<String> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let mut ids: Vec<String> = match obj.get("events").and_then(Value::as_array) {
        Some(events) => events
            .iter()
            .filter_map(|e| e.get("id").and_then(text))
            .collect(),
        None => obj.get("id").and_then(text).into_iter().collect(),
    };
    if ids.is_empty() {
        use sha2::Digest as _;
        ids.push(format!("body:{}", hex::encode(sha2::Sha256::digest(body))));
    }
    ids
}

/// One event, reduced to what matters: a manifest push, or why it is ignored.
enum Seen {
    Push {
        repository: String,
        digest: Option<Digest>,
    },
    Ignored(String),
}

fn to_decision(seen: Vec<Seen>) -> Decision {
    let mut repositories = BTreeSet::new();
    let mut pushed = BTreeSet::new();
    let mut ignored = Vec::new();
    for s in seen {
        match s {
            Seen::Push { repository, digest } => {
                if let Some(digest) = digest {
                    pushed.insert(Pushed {
                        repository: repository.clone(),
                        digest,
                    });
                }
                repositories.insert(repository);
            }
            Seen::Ignored(why) => ignored.push(why),
        }
    }
    if repositories.is_empty() {
        ignored.dedup();
        let why = if ignored.is_empty() {
            "no events".to_owned()
        } else {
            ignored.join("; ")
        };
        return Decision::Ignore(why);
    }
    Decision::Run(Job {
        origin: Origin::Webhook,
        scope: Scope::Repositories(repositories),
        pushed: pushed.into_iter().collect(),
        ids: Vec::new(),
        allow_over_limit: false,
    })
}

fn bad(what: &str, e: impl std::fmt::Display) -> TriggerError {
    TriggerError::BadRequest(format!("{what}: {e}"))
}

fn checked_repository(name: &str) -> Result<String, TriggerError> {
    crate::registry::name::check_repository(name)
        .map_err(|e| TriggerError::BadRequest(e.to_string()))?;
    Ok(name.to_owned())
}

fn checked_digest(digest: Option<&str>) -> Result<Option<Digest>, TriggerError> {
    digest
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| TriggerError::BadRequest(e.to_string()))
        })
        .transpose()
}

fn is_manifest_type(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|t| {
        let t = MediaType::parse(t);
        !matches!(t, MediaType::Other(_) | MediaType::DockerSchema1)
    })
}

#[derive(Deserialize)]
struct Target {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct DistributionEvent {
    action: Option<String>,
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<DistributionEvent>,
}

/// distribution: `{"events":[{"action":"push","target":{...}}]}`.
fn distribution(value: &Value) -> Result<Vec<Seen>, TriggerError> {
    let envelope = Envelope::deserialize(value).map_err(|e| bad("distribution notification", e))?;
    envelope
        .events
        .into_iter()
        .map(|event| {
            let action = event.action.unwrap_or_default();
            if action != "push" {
                return Ok(Seen::Ignored(format!(
                    "{} event ignored",
                    describe(&action)
                )));
            }
            let target = event
                .target
                .ok_or_else(|| bad("distribution push", "no target"))?;
            let manifest = target
                .url
                .as_deref()
                .is_some_and(|u| u.contains("/manifests/"))
                || is_manifest_type(target.media_type.as_deref());
            if !manifest {
                return Ok(Seen::Ignored("blob push ignored".into()));
            }
            let repository = checked_repository(target.repository.as_deref().unwrap_or(""))?;
            Ok(Seen::Push {
                repository,
                digest: checked_digest(target.digest.as_deref())?,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct AcrWebhook {
    action: String,
    target: Target,
}

/// ACR: `{"action":"push","target":{"repository":...,"digest":...,"tag":...}}`.
fn acr(value: &Value) -> Result<Vec<Seen>, TriggerError> {
    let hook = AcrWebhook::deserialize(value).map_err(|e| bad("ACR webhook", e))?;
    if hook.action != "push" {
        return Ok(vec![Seen::Ignored(format!(
            "{} event ignored",
            describe(&hook.action)
        ))]);
    }
    let repository = checked_repository(hook.target.repository.as_deref().unwrap_or(""))?;
    Ok(vec![Seen::Push {
        repository,
        digest: checked_digest(hook.target.digest.as_deref())?,
    }])
}

#[derive(Deserialize)]
struct HarborData {
    #[serde(default)]
    resources: Vec<HarborResource>,
    repository: HarborRepository,
}

#[derive(Deserialize)]
struct HarborResource {
    digest: Option<String>,
}

#[derive(Deserialize)]
struct HarborRepository {
    repo_full_name: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

/// Harbor: `type` PUSH_ARTIFACT (default form) or `harbor.artifact.pushed` (CloudEvents),
/// with the resources and repository in `event_data` or `data`.
fn harbor(kind: Option<&Value>, data: Option<&Value>) -> Result<Vec<Seen>, TriggerError> {
    let kind = kind.and_then(Value::as_str).unwrap_or("");
    if kind != "PUSH_ARTIFACT" && kind != "harbor.artifact.pushed" {
        return Ok(vec![Seen::Ignored(format!(
            "{} event ignored",
            describe(kind)
        ))]);
    }
    let data = HarborData::deserialize(data.unwrap_or(&Value::Null))
        .map_err(|e| bad("Harbor webhook", e))?;
    let full = match (
        data.repository.repo_full_name,
        data.repository.namespace,
        data.repository.name,
    ) {
        (Some(full), _, _) => full,
        (None, Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, None, Some(name)) => name,
        _ => return Err(bad("Harbor webhook", "no repository name")),
    };
    let repository = checked_repository(&full)?;
    let mut seen = Vec::new();
    for r in data.resources {
        seen.push(Seen::Push {
            repository: repository.clone(),
            digest: checked_digest(r.digest.as_deref())?,
        });
    }
    if seen.is_empty() {
        seen.push(Seen::Push {
            repository,
            digest: None,
        });
    }
    Ok(seen)
}

/// An action name for a reason, cut short and stripped of anything odd.
fn describe(action: &str) -> String {
    let clean: String = action
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(40)
        .collect();
    if clean.is_empty() {
        "unnamed".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn repos(d: &Decision) -> Vec<String> {
        match d {
            Decision::Run(Job {
                scope: Scope::Repositories(r),
                ..
            }) => r.iter().cloned().collect(),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn distribution_push_sweeps_its_repository_and_records_the_digest() {
        let d = decode(&fixture("distribution-push.json")).unwrap();
        assert_eq!(repos(&d), vec!["demo/app"]);
        let Decision::Run(job) = d else {
            unreachable!()
        };
        assert_eq!(job.origin, Origin::Webhook);
        assert_eq!(
            job.pushed[0].digest.as_str(),
            "sha256:7b3ca2620b8a4e1b1f6f2a8a5f4b2f0b7f0f1e7f3c3c1d9e5b7a6a4b1c2d3e4f"
        );
    }

    #[test]
    fn deletes_charts_and_our_own_deletes_are_ignored() {
        for f in [
            "distribution-delete.json",
            "acr-delete.json",
            "acr-chart-push.json",
        ] {
            assert!(
                matches!(decode(&fixture(f)).unwrap(), Decision::Ignore(_)),
                "{f}"
            );
        }
    }

    #[test]
    fn acr_and_harbor_pushes_sweep_their_repository() {
        assert_eq!(
            repos(&decode(&fixture("acr-push.json")).unwrap()),
            vec!["hello-world"]
        );
        assert_eq!(
            repos(&decode(&fixture("harbor-push.json")).unwrap()),
            vec!["test-webhook/debian"]
        );
    }

    #[test]
    fn harbor_cloudevents_form_is_understood() {
        let body = br#"{"specversion":"1.0","id":"x","source":"/projects/1/webhook/policies/2","type":"harbor.artifact.pushed",
            "datacontenttype":"application/json","data":{"resources":[{"digest":"sha256:8a9e9863dbb6e2a4e1e3f1a7b9c5d3e1f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7","tag":"latest"}],
            "repository":{"name":"debian","namespace":"library","repo_full_name":"library/debian","repo_type":"public"}}}"#;
        assert_eq!(repos(&decode(body).unwrap()), vec!["library/debian"]);
    }

    #[test]
    fn several_events_for_one_repository_make_one_sweep() {
        let body = br#"{"events":[
          {"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"a","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}},
          {"action":"push","target":{"mediaType":"application/vnd.oci.image.index.v1+json","repository":"a","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}},
          {"action":"pull","target":{"repository":"b"}},
          {"action":"push","target":{"mediaType":"application/octet-stream","repository":"c","url":"http://r/v2/c/blobs/sha256:x"}}]}"#;
        let d = decode(body).unwrap();
        assert_eq!(repos(&d), vec!["a"]);
        let Decision::Run(job) = d else {
            unreachable!()
        };
        assert_eq!(job.pushed.len(), 2);
    }

    #[test]
    fn malformed_bodies_are_bad_requests_with_a_reason() {
        let cases: [&[u8]; 7] = [
            b"{not json",
            b"[1,2]",
            br#"{"hello":"world"}"#,
            br#"{"events":"nope"}"#,
            br#"{"action":"push","target":{"repository":"../etc","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}}"#,
            br#"{"action":"push","target":{"repository":"ok","digest":"md5:abc"}}"#,
            br#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[]}}"#,
        ];
        for body in cases {
            let err = decode(body).unwrap_err();
            assert_eq!(
                err.status(),
                400,
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
