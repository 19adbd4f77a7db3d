//! The `lambda` provider: the image of every version of every image function.
//!
//! `ListFunctions` with `FunctionVersion=ALL` lists `$LATEST` and every published version
//! in one listing; any of them can be invoked, so each one's image is in use. Aliases only
//! point at versions, so they add no image: `ListAliases` (once per image function) names
//! them in the reasons. `GetFunction` (once per version) gives `Code.ResolvedImageUri`, the
//! digest Lambda resolved at deploy time and runs from. An image function's version without
//! one fails the provider: what it runs cannot be known.

use std::collections::BTreeMap;

use aws_sdk_lambda::types::{FunctionVersion, PackageType};

use super::{pages, parse_reference, ImageRef, Lambda};
use crate::aws::call_error;

/// Every image that an image function's version runs, each with its source (`Lambda
/// function api, version 7 (alias live)`).
pub(super) async fn references(provider: &Lambda) -> Result<Vec<(ImageRef, String)>, String> {
    let config = crate::aws::sdk_config(provider.region.as_deref()).await;
    let client = aws_sdk_lambda::Client::new(&config);
    let versions = pages::all("ListFunctions", |marker| {
        let client = client.clone();
        async move {
            let out = client
                .list_functions()
                .function_version(FunctionVersion::All)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| call_error("ListFunctions", &e))?;
            let images = out
                .functions()
                .iter()
                .filter(|f| f.package_type() == Some(&PackageType::Image))
                .filter_map(|f| Some((f.function_name()?.to_owned(), f.version()?.to_owned())))
                .collect();
            Ok((images, out.next_marker().map(str::to_owned)))
        }
    })
    .await?;
    let mut aliases: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let functions: std::collections::BTreeSet<&String> = versions.iter().map(|(f, _)| f).collect();
    for function in functions {
        let call = format!("ListAliases {function}");
        let listed = pages::all(&call, |marker| {
            let client = client.clone();
            let call = call.clone();
            async move {
                let out = client
                    .list_aliases()
                    .function_name(function)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|e| call_error(&call, &e))?;
                let named = out
                    .aliases()
                    .iter()
                    .filter_map(|a| Some((a.function_version()?.to_owned(), a.name()?.to_owned())))
                    .collect();
                Ok((named, out.next_marker().map(str::to_owned)))
            }
        })
        .await?;
        for (version, alias) in listed {
            aliases
                .entry((function.clone(), version))
                .or_default()
                .push(alias);
        }
    }
    let mut refs = Vec::new();
    for (function, version) in &versions {
        let call = format!("GetFunction {function}:{version}");
        let out = client
            .get_function()
            .function_name(function)
            .qualifier(version)
            .send()
            .await
            .map_err(|e| call_error(&call, &e))?;
        let uri = out
            .code()
            .and_then(|c| c.resolved_image_uri())
            .ok_or_else(|| format!("{call}: an image function without Code.ResolvedImageUri"))?;
        let source = match aliases.get(&(function.clone(), version.clone())) {
            Some(names) => format!(
                "Lambda function {function}, version {version} (alias {})",
                names.join(", ")
            ),
            None => format!("Lambda function {function}, version {version}"),
        };
        let named = parse_reference(uri).map_err(|why| {
            format!("{call}: ResolvedImageUri {uri:?} is not an image reference: {why}")
        })?;
        refs.push((named, source));
    }
    Ok(refs)
}
