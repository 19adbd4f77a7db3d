//! The `ecs` provider: what ECS runs, and what it will start.
//!
//! For each cluster whose name the provider's regex matches:
//! - **services**: `ListServices`, then `DescribeServices` (10 at a time, its most), then
//!   `DescribeServiceRevisions` (20 at a time, its most) for every current revision. A
//!   revision's `containerImages` hold the digest each container resolved at deploy time,
//!   and with version consistency (ECS's default) every future task of that revision starts
//!   from it, even after its tag has moved. A service that reports no current revision (one
//!   last deployed before service revisions existed, in October 2024) is read from the task
//!   definitions of its deployments and task sets instead (`DescribeTaskDefinition`, once per
//!   definition): their images, by tag or by digest;
//! - **tasks**: `ListTasks` with the desired status `RUNNING` (the running ones and those
//!   about to run), then `DescribeTasks` (100 at a time, its most): each container's image
//!   and the digest it pulled.
//!
//! Every listing is followed to its end. A failure that `Describe*` reports fails the
//! provider, except `MISSING` for a service or a task: that one ended since it was listed,
//! and runs nothing.

use std::collections::BTreeMap;

use super::{pages, parse_reference, Ecs, ImageRef};
use crate::aws::call_error;
use crate::pattern::Pattern;

/// Services per `DescribeServices`, revisions per `DescribeServiceRevisions`, tasks per
/// `DescribeTasks`: each call's most.
const SERVICES_PER_CALL: usize = 10;
const REVISIONS_PER_CALL: usize = 20;
const TASKS_PER_CALL: usize = 100;

/// Every image the matching clusters' services and tasks name, each with its source
/// (`ECS service prod/checkout, revision 12`).
pub(super) async fn references(provider: &Ecs) -> Result<Vec<(ImageRef, String)>, String> {
    let clusters = Pattern::whole(&provider.clusters)
        .map_err(|e| format!("clusters {:?} is not a valid regex: {e}", provider.clusters))?;
    let config = crate::aws::sdk_config(provider.region.as_deref()).await;
    let client = aws_sdk_ecs::Client::new(&config);
    let arns = pages::all("ListClusters", |token| {
        let client = client.clone();
        async move {
            let out = client
                .list_clusters()
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| call_error("ListClusters", &e))?;
            Ok((
                out.cluster_arns().to_vec(),
                out.next_token().map(str::to_owned),
            ))
        }
    })
    .await?;
    let mut refs = Vec::new();
    for arn in arns {
        let name = after(&arn, "cluster/");
        if clusters.matches(name).map_err(|e| e.to_string())? {
            services(&client, &arn, name, &mut refs).await?;
            tasks(&client, &arn, name, &mut refs).await?;
        }
    }
    Ok(refs)
}

/// The images of `cluster`'s services: their current revisions' resolved images, or, for a
/// service with no revision to read, its deployments' task definitions' images.
async fn services(
    client: &aws_sdk_ecs::Client,
    cluster_arn: &str,
    cluster: &str,
    refs: &mut Vec<(ImageRef, String)>,
) -> Result<(), String> {
    let service_arns = pages::all("ListServices", |token| {
        let client = client.clone();
        let cluster_arn = cluster_arn.to_owned();
        async move {
            let out = client
                .list_services()
                .cluster(cluster_arn)
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| call_error("ListServices", &e))?;
            Ok((
                out.service_arns().to_vec(),
                out.next_token().map(str::to_owned),
            ))
        }
    })
    .await?;
    // Revision ARN to the service it belongs to; task definition ARN to its services.
    let mut revisions: BTreeMap<String, String> = BTreeMap::new();
    let mut definitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for chunk in service_arns.chunks(SERVICES_PER_CALL) {
        let call = format!("DescribeServices in cluster {cluster}");
        let out = client
            .describe_services()
            .cluster(cluster_arn)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| call_error(&call, &e))?;
        let missing = failures(&call, out.failures(), true)?;
        answered(&call, out.services().len() + missing, chunk.len())?;
        for s in out.services() {
            let name = s.service_name().unwrap_or_default().to_owned();
            let current: Vec<&str> = s
                .current_service_revisions()
                .iter()
                .filter_map(|r| r.arn())
                .collect();
            if current.is_empty() {
                // Rolling deployments name theirs in `deployments`; CodeDeploy and external
                // controllers in task sets.
                let deployed = s.deployments().iter().filter_map(|d| d.task_definition());
                let sets = s.task_sets().iter().filter_map(|t| t.task_definition());
                for td in deployed.chain(sets).chain(s.task_definition()) {
                    let services = definitions.entry(td.to_owned()).or_default();
                    if !services.contains(&name) {
                        services.push(name.clone());
                    }
                }
            }
            for arn in current {
                revisions.insert(arn.to_owned(), name.clone());
            }
        }
    }
    let asked: Vec<&String> = revisions.keys().collect();
    for chunk in asked.chunks(REVISIONS_PER_CALL) {
        let call = format!("DescribeServiceRevisions in cluster {cluster}");
        let out = client
            .describe_service_revisions()
            .set_service_revision_arns(Some(chunk.iter().map(|a| (*a).clone()).collect()))
            .send()
            .await
            .map_err(|e| call_error(&call, &e))?;
        failures(&call, out.failures(), false)?;
        answered(&call, out.service_revisions().len(), chunk.len())?;
        for rev in out.service_revisions() {
            let arn = rev.service_revision_arn().unwrap_or_default();
            let service = revisions.get(arn).map(String::as_str).unwrap_or("?");
            let source = format!(
                "ECS service {cluster}/{service}, revision {}",
                arn.rsplit('/').next().unwrap_or_default()
            );
            for image in rev.container_images() {
                let named = resolved(&source, image.image(), image.image_digest())?;
                refs.extend(named.into_iter().map(|r| (r, source.clone())));
            }
        }
    }
    for (td, services) in definitions {
        let call = format!("DescribeTaskDefinition {td}");
        let out = client
            .describe_task_definition()
            .task_definition(&td)
            .send()
            .await
            .map_err(|e| call_error(&call, &e))?;
        let def = out
            .task_definition()
            .ok_or_else(|| format!("{call}: the answer holds no task definition"))?;
        let source = format!(
            "ECS service {cluster}/{}, task definition {}:{}",
            services.join(", "),
            def.family().unwrap_or_default(),
            def.revision()
        );
        for c in def.container_definitions() {
            let named = resolved(&source, c.image(), None)?;
            refs.extend(named.into_iter().map(|r| (r, source.clone())));
        }
    }
    Ok(())
}

/// The images of `cluster`'s tasks that run or are about to.
async fn tasks(
    client: &aws_sdk_ecs::Client,
    cluster_arn: &str,
    cluster: &str,
    refs: &mut Vec<(ImageRef, String)>,
) -> Result<(), String> {
    let task_arns = pages::all("ListTasks", |token| {
        let client = client.clone();
        let cluster_arn = cluster_arn.to_owned();
        async move {
            let out = client
                .list_tasks()
                .cluster(cluster_arn)
                .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| call_error("ListTasks", &e))?;
            Ok((
                out.task_arns().to_vec(),
                out.next_token().map(str::to_owned),
            ))
        }
    })
    .await?;
    for chunk in task_arns.chunks(TASKS_PER_CALL) {
        let call = format!("DescribeTasks in cluster {cluster}");
        let out = client
            .describe_tasks()
            .cluster(cluster_arn)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| call_error(&call, &e))?;
        let missing = failures(&call, out.failures(), true)?;
        answered(&call, out.tasks().len() + missing, chunk.len())?;
        for task in out.tasks() {
            let id = task.task_arn().unwrap_or_default().rsplit('/').next();
            let source = match task.group() {
                Some(group) => format!("ECS task {cluster}/{} ({group})", id.unwrap_or("?")),
                None => format!("ECS task {cluster}/{}", id.unwrap_or("?")),
            };
            for c in task.containers() {
                let named = resolved(&source, c.image(), c.image_digest())?;
                refs.extend(named.into_iter().map(|r| (r, source.clone())));
            }
        }
    }
    Ok(())
}

/// What a container's image and the digest ECS resolved it to name: the image as written
/// (its tag stays too), and the resolved digest in the same repository. No image names
/// nothing.
fn resolved(
    source: &str,
    image: Option<&str>,
    digest: Option<&str>,
) -> Result<Vec<ImageRef>, String> {
    let Some(image) = image else {
        return Ok(Vec::new());
    };
    let bad = |why: String| format!("{source}: image {image:?} is not an image reference: {why}");
    let mut named = parse_reference(image).map_err(bad)?;
    let Some(digest) = digest else {
        return Ok(vec![named]);
    };
    let digest = digest
        .parse()
        .map_err(|e| format!("{source}: the resolved digest {digest:?} is no digest: {e}"))?;
    match &named.digest {
        Some(d) if *d != digest => {
            let pulled = ImageRef {
                tag: None,
                digest: Some(digest),
                ..named.clone()
            };
            Ok(vec![named, pulled])
        }
        _ => {
            named.digest = Some(digest);
            Ok(vec![named])
        }
    }
}

/// Fails on any failure `Describe*` reports, but `MISSING` where `missing_ends` (a service
/// or task that ended since it was listed); returns how many were `MISSING`.
fn failures(
    call: &str,
    failures: &[aws_sdk_ecs::types::Failure],
    missing_ends: bool,
) -> Result<usize, String> {
    let mut missing = 0;
    for f in failures {
        match f.reason() {
            Some("MISSING") if missing_ends => missing += 1,
            reason => {
                return Err(format!(
                    "{call}: {} failed: {}{}",
                    f.arn().unwrap_or("an item"),
                    reason.unwrap_or("no reason given"),
                    f.detail().map(|d| format!(" ({d})")).unwrap_or_default()
                ))
            }
        }
    }
    Ok(missing)
}

/// An answer that leaves out something it was asked about is truncated.
fn answered(call: &str, got: usize, asked: usize) -> Result<(), String> {
    if got < asked {
        return Err(format!("{call}: answered {got} of the {asked} asked about"));
    }
    Ok(())
}

/// What follows `marker` in an ARN (`arn:…:cluster/prod` → `prod`), or the whole text.
fn after<'a>(arn: &'a str, marker: &str) -> &'a str {
    arn.split_once(marker).map_or(arn, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::super::reference::tests::D;
    use super::*;
    const E: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn a_resolved_digest_joins_the_image_it_was_pulled_for() {
        let named = resolved("s", Some("r.example/app:prod"), Some(D)).unwrap();
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].tag.as_deref(), Some("prod"), "the tag stays too");
        assert_eq!(named[0].digest, Some(D.parse().unwrap()));
        let both = resolved("s", Some(&format!("r.example/app@{E}")), Some(D)).unwrap();
        assert_eq!(
            both.len(),
            2,
            "a digest that differs from the one written is named too"
        );
        assert!(resolved("s", None, Some(D)).unwrap().is_empty());
        let e = resolved("ECS task prod/1", Some("Bad Image"), None).unwrap_err();
        assert!(e.starts_with("ECS task prod/1: image \"Bad Image\""), "{e}");
        assert!(resolved("s", Some("app"), Some("sha256:zz")).is_err());
    }

    #[test]
    fn only_a_missing_item_is_not_a_failure_and_only_where_it_ends() {
        let missing = aws_sdk_ecs::types::Failure::builder()
            .arn("arn:aws:ecs:us-east-1:1:task/prod/1")
            .reason("MISSING")
            .build();
        assert_eq!(
            failures("DescribeTasks", std::slice::from_ref(&missing), true),
            Ok(1)
        );
        assert!(failures("DescribeServiceRevisions", &[missing], false).is_err());
        let denied = aws_sdk_ecs::types::Failure::builder()
            .reason("ACCESS_DENIED")
            .build();
        let e = failures("DescribeTasks", &[denied], true).unwrap_err();
        assert!(e.contains("an item failed: ACCESS_DENIED"), "{e}");
        assert!(answered("DescribeTasks", 99, 100).is_err());
        assert_eq!(
            after("arn:aws:ecs:us-east-1:1:cluster/prod", "cluster/"),
            "prod"
        );
    }
}
