//! The AWS SDK configuration every client here starts from (the S3 store, the Kinesis output).

/// The standard chain (environment, profile, container and instance credentials; `AWS_REGION`,
/// `AWS_ENDPOINT_URL`), with `endpoint_url` overriding the endpoint and `us-east-1` when no region
/// is set anywhere.
pub(crate) async fn sdk_config(endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
