//! The `s3` provider: a list in an S3 object (a cluster's CronJob or another account's
//! pipeline writes it).

use super::MAX_LIST_BYTES;

/// The S3 client for the providers: the AWS chain's credentials and region, path-style
/// requests where `AWS_ENDPOINT_URL` points elsewhere than AWS (moto, MinIO).
pub(super) async fn client() -> aws_sdk_s3::Client {
    let config = crate::aws::sdk_config(None).await;
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(path_style)
            .build(),
    )
}

/// The text of the object `url` names (`s3://bucket/key`), or why not.
pub(super) async fn object(client: &aws_sdk_s3::Client, url: &str) -> Result<String, String> {
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| "an S3 provider is s3://bucket/key".to_owned())?;
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| crate::aws::call_error("GetObject", &e))?;
    let too_big = |n: usize| n > MAX_LIST_BYTES;
    if object
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, too_big))
    {
        return Err(format!("the object is over {MAX_LIST_BYTES} bytes"));
    }
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| format!("GetObject: the body could not be read: {e}"))?
        .into_bytes();
    if too_big(bytes.len()) {
        return Err(format!("the object is over {MAX_LIST_BYTES} bytes"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| "the object is not UTF-8 text".to_owned())
}
