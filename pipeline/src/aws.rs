//! The AWS SDK configuration every client here starts from (the S3 store, the Kinesis output).

/// The standard chain (environment, profile, container and instance credentials; `AWS_REGION`,
/// `AWS_ENDPOINT_URL`), with `endpoint_url` overriding the endpoint and `us-east-1` when no region
/// is set anywhere.
pub(crate) async fn sdk_config(endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
    // With keys in the environment (always so in Lambda), the standard chain would take them
    // anyway, its first link; naming that link alone spares building the rest (an STS client for
    // web identity, SSO, the container and instance providers), which cost a cold start the
    // system's TLS certificates read and parsed before the first event.
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.timeout_config(timeouts()).load().await
}

/// An SDK client made when it is first needed (or ahead of that, by `warm`): making one
/// loads the SDK's configuration and builds its HTTPS connector, which reads and parses the
/// system's TLS certificates — most of a Lambda function's init otherwise. Concurrent first
/// users share the one client being made.
#[derive(Debug, Clone)]
pub(crate) struct LazyClient<C> {
    cell: std::sync::Arc<tokio::sync::OnceCell<C>>,
    endpoint_url: Option<String>,
    make: fn(&aws_config::SdkConfig, Option<&str>) -> C,
}

impl<C> LazyClient<C> {
    /// A client made already (the S3 store's and the Kinesis output's constructors take one).
    #[cfg_attr(not(any(feature = "s3", feature = "kinesis")), allow(dead_code))]
    pub(crate) fn ready(client: C, make: fn(&aws_config::SdkConfig, Option<&str>) -> C) -> Self {
        Self {
            cell: std::sync::Arc::new(tokio::sync::OnceCell::new_with(Some(client))),
            endpoint_url: None,
            make,
        }
    }

    /// One `make` makes from the standard configuration (at `endpoint_url`) on first use.
    pub(crate) fn lazy(
        endpoint_url: Option<&str>,
        make: fn(&aws_config::SdkConfig, Option<&str>) -> C,
    ) -> Self {
        Self {
            cell: Default::default(),
            endpoint_url: endpoint_url.map(str::to_string),
            make,
        }
    }

    /// The client, made now if it is not yet.
    pub(crate) async fn get(&self) -> &C {
        let endpoint = self.endpoint_url.as_deref();
        self.cell
            .get_or_init(|| async move { (self.make)(&sdk_config(endpoint).await, endpoint) })
            .await
    }
}

/// Every request's timeouts: 5 s to connect, 30 s to the first byte of the answer (sending the
/// body included: an 8 MiB part at 1 MB/s fits), 120 s an attempt; the SDK's standard retry
/// (3 attempts, backoff with jitter) and its stalled-stream protection (a body that moves no byte
/// for 20 s fails) on top. Inside an invocation each request is also bounded by its deadline
/// ([`crate::store::with_deadline`]), so no request outlives the function's timeout.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .read_timeout(std::time::Duration::from_secs(30))
        .operation_attempt_timeout(std::time::Duration::from_secs(120))
        .build()
}
