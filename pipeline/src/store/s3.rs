//! The S3 store on `aws-sdk-s3`: streamed reads, multipart writes.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{
    At, ByteReader, MIN_PART_BYTES, ObjectMeta, ObjectStore, ObjectWriter, PART_BYTES, not_found,
};
use crate::Error;

/// Objects in S3 (or an S3-compatible endpoint).
#[derive(Debug, Clone)]
pub struct S3Store {
    /// Made on first use for a store made with [`S3Store::lazy`] (or ahead of it by
    /// [`S3Store::warm`]); made up front otherwise.
    client: crate::aws::LazyClient<Client>,
    stamp: std::sync::Arc<Stamp>,
}

/// The metadata key that marks an object as a pipeline's output (`x-amz-meta-sluice-pipeline`),
/// its value the pipeline's name.
pub const MARKER: &str = "sluice-pipeline";

/// What a pipeline's store puts on every object it writes, and refuses to read back.
#[derive(Debug, Default)]
struct Stamp {
    /// The pipeline's name: written as [`MARKER`]; an object carrying it is not read.
    pipeline: Option<String>,
    /// Server-side encryption requested on every write, with the KMS key for SSE-KMS.
    sse: Option<ServerSideEncryption>,
    kms_key_id: Option<String>,
}

impl Stamp {
    /// `Err` when `metadata` marks the object as this pipeline's own output.
    fn check(
        &self,
        location: &str,
        metadata: Option<&std::collections::HashMap<String, String>>,
        at: &At,
    ) -> Result<(), Error> {
        if at.own {
            return Ok(());
        }
        match (&self.pipeline, metadata.and_then(|m| m.get(MARKER))) {
            (Some(own), Some(found)) if own == found => Err(Error::OwnOutput {
                location: location.to_string(),
                pipeline: own.clone(),
            }),
            _ => Ok(()),
        }
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    location: String,
    e: SdkError<E, R>,
) -> Error {
    let retryable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            matches!(
                s.err().code(),
                Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout")
            )
        }
        _ => false,
    };
    Error::Store {
        location,
        message: DisplayErrorContext(&e).to_string(),
        retryable,
    }
}

/// `send`, bounded by the invocation's deadline when one is set ([`super::with_deadline`]):
/// `Err` when the deadline came first, else what S3 answered.
/// A failed read of `location`: gone ([`not_found`]: no such key, or no such version), changed
/// since its notification (HTTP 412 to `If-Match`: [`Error::Superseded`]), or the usual class.
fn read_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    location: String,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Error {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e
        .as_service_error()
        .and_then(|s| s.code().map(str::to_string));
    match (status, code.as_deref()) {
        (Some(412), _) | (_, Some("PreconditionFailed")) => Error::Superseded { location },
        (Some(404), _) | (_, Some("NoSuchKey" | "NoSuchVersion" | "NotFound")) => {
            not_found(location)
        }
        _ => classify(location, e),
    }
}

/// A client from the standard configuration; path-style addressing with any custom endpoint, as
/// local S3-compatible servers expect.
fn make_client(shared: &aws_config::SdkConfig, endpoint_url: Option<&str>) -> Client {
    let mut b = aws_sdk_s3::config::Builder::from(shared);
    let custom = endpoint_url.is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    if custom {
        b = b.force_path_style(true);
    }
    Client::from_conf(b.build())
}

async fn sent<T, E, R>(
    location: &str,
    send: impl std::future::Future<Output = Result<T, SdkError<E, R>>>,
) -> Result<Result<T, SdkError<E, R>>, Error> {
    match super::request_deadline() {
        Some(d) => tokio::time::timeout_at(d.into(), send)
            .await
            .map_err(|_| super::past_deadline(location)),
        None => Ok(send.await),
    }
}

impl S3Store {
    /// A store on an existing client.
    pub fn new(client: Client) -> Self {
        Self {
            client: crate::aws::LazyClient::ready(client, make_client),
            stamp: Default::default(),
        }
    }

    /// The store of one pipeline: every object it writes carries the pipeline's name as
    /// `x-amz-meta-sluice-pipeline` and the server-side encryption `[output] encryption` asks
    /// for; an object carrying this pipeline's name is refused on read
    /// ([`Error::OwnOutput`]: the handler skips it), the run-time half of the
    /// recursive-invocation guard.
    pub fn for_pipeline(mut self, config: &crate::config::PipelineConfig) -> Self {
        use crate::config::Encryption;
        self.stamp = std::sync::Arc::new(Stamp {
            pipeline: Some(config.name.clone()),
            sse: config.output.encryption.map(|e| match e {
                Encryption::SseS3 => ServerSideEncryption::Aes256,
                Encryption::SseKms => ServerSideEncryption::AwsKms,
            }),
            kms_key_id: config.output.kms_key_id.clone(),
        });
        self
    }

    /// A client from the standard chain (environment, profile, container and instance credentials;
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`). `endpoint_url` overrides the endpoint. With any custom
    /// endpoint, path-style addressing is used, as local S3-compatible servers expect.
    pub async fn from_env(endpoint_url: Option<&str>) -> Self {
        let store = Self::lazy(endpoint_url);
        store.warm().await;
        store
    }

    /// As [`S3Store::from_env`], with the client made when it is first needed: making it
    /// (the SDK's configuration, and the TLS trust store read from the system's certificates)
    /// is most of a Lambda function's init otherwise; `serve` leaves it to the first request.
    pub fn lazy(endpoint_url: Option<&str>) -> Self {
        Self {
            client: crate::aws::LazyClient::lazy(endpoint_url, make_client),
            stamp: Default::default(),
        }
    }

    /// Make the client now (a no-op when it is made or being made).
    pub async fn warm(&self) {
        self.client().await;
    }

    /// The client, for callers that need more than get and put.
    pub async fn client(&self) -> &Client {
        self.client.get().await
    }
}

impl ObjectStore for S3Store {
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
    ) -> BoxFuture<'a, Result<ByteReader, Error>> {
        async move {
            let loc = format!("s3://{bucket}/{key}");
            match sent(&loc, self.get_at(bucket, key, at).await.send()).await? {
                Ok(out) => {
                    self.stamp.check(&loc, out.metadata(), at)?;
                    let body = Box::pin(out.body.into_async_read()) as ByteReader;
                    Ok(super::bounded_reader(body, &loc))
                }
                Err(e) => Err(read_error(loc, e)),
            }
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, Error>> {
        async move {
            Ok(Box::new(S3Writer {
                client: self.client().await.clone(),
                bucket: bucket.to_string(),
                key: key.to_string(),
                content_type: meta.content_type.to_string(),
                cache_control: meta.cache_control.map(str::to_string),
                stamp: self.stamp.clone(),
                buf: BytesMut::new(),
                upload_id: None,
                parts: Vec::new(),
                total: 0,
            }) as Box<dyn ObjectWriter>)
        }
        .boxed()
    }

    fn size<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        async move {
            let loc = format!("s3://{bucket}/{key}");
            let (version, if_match) = at.pin();
            let head = self
                .client()
                .await
                .head_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version)
                .set_if_match(if_match)
                .send();
            match sent(&loc, head).await? {
                Ok(out) => {
                    self.stamp.check(&loc, out.metadata(), at)?;
                    Ok(out.content_length().unwrap_or(0).max(0) as u64)
                }
                Err(e) => Err(read_error(loc, e)),
            }
        }
        .boxed()
    }

    fn get_range<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, Error>> {
        async move {
            let loc = format!("s3://{bucket}/{key}");
            if range.end <= range.start {
                return Ok(Bytes::new());
            }
            let read = async {
                let out = self
                    .get_at(bucket, key, at)
                    .await
                    .range(format!("bytes={}-{}", range.start, range.end - 1))
                    .send()
                    .await
                    .map_err(|e| read_error(loc.clone(), e))?;
                self.stamp.check(&loc, out.metadata(), at)?;
                let body = out.body.collect().await.map_err(|e| Error::Store {
                    location: loc.clone(),
                    message: format!("reading a range: {e}"),
                    retryable: true,
                })?;
                Ok(body.into_bytes())
            };
            super::bounded(&loc, read).await
        }
        .boxed()
    }

    fn location(&self, bucket: &str, key: &str) -> String {
        format!("s3://{bucket}/{key}")
    }

    fn root_uri(&self, bucket: &str) -> Option<String> {
        Some(format!("s3://{bucket}/"))
    }

    fn list<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        async move {
            let listed = self.list_dated(bucket, prefix).await?;
            Ok(listed.into_iter().map(|(k, _)| k).collect())
        }
        .boxed()
    }

    fn list_dated<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<super::Dated>, Error>> {
        async move {
            let loc = format!("s3://{bucket}/{prefix}");
            super::bounded(&loc, self.list_all(bucket, prefix)).await
        }
        .boxed()
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            // Not bounded by the request deadline: it runs in clean-up, which bounds it itself.
            self.client()
                .await
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(format!("s3://{bucket}/{key}"), e))
        }
        .boxed()
    }
}

impl S3Store {
    /// A GetObject of `bucket/key` at the content `at` names.
    async fn get_at(
        &self,
        bucket: &str,
        key: &str,
        at: &At,
    ) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
        let (version, if_match) = at.pin();
        self.client()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version)
            .set_if_match(if_match)
    }

    /// Every key under `prefix`, page after page.
    /// Every key under `prefix`, sorted, with when it was last written.
    async fn list_all(&self, bucket: &str, prefix: &str) -> Result<Vec<super::Dated>, Error> {
        {
            let mut keys = Vec::new();
            let mut pages = self
                .client()
                .await
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify(format!("s3://{bucket}/{prefix}"), e))?;
                keys.extend(page.contents().iter().filter_map(|o| {
                    let when = o
                        .last_modified()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok());
                    o.key().map(|k| (k.to_string(), when))
                }));
            }
            keys.sort();
            Ok(keys)
        }
    }
}

/// Buffers one part at a time; small objects become one PutObject.
struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    cache_control: Option<String>,
    stamp: std::sync::Arc<Stamp>,
    buf: BytesMut,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    total: u64,
}

impl S3Writer {
    fn loc(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn metadata(&self) -> Option<std::collections::HashMap<String, String>> {
        let name = self.stamp.pipeline.clone()?;
        Some([(MARKER.to_string(), name)].into())
    }

    async fn upload_part(&mut self) -> Result<(), Error> {
        if self.upload_id.is_none() {
            let create = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .set_cache_control(self.cache_control.clone())
                .set_metadata(self.metadata())
                .set_server_side_encryption(self.stamp.sse.clone())
                .set_ssekms_key_id(self.stamp.kms_key_id.clone())
                .send();
            let out = sent(&self.loc(), create)
                .await?
                .map_err(|e| classify(self.loc(), e))?;
            self.upload_id = out.upload_id;
        }
        let Some(id) = self.upload_id.clone() else {
            return Err(Error::Store {
                location: self.loc(),
                message: "S3 returned no upload id".into(),
                retryable: true,
            });
        };
        let number = self.parts.len() as i32 + 1;
        let body = self.buf.split().freeze();
        let upload = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send();
        let out = sent(&self.loc(), upload)
            .await?
            .map_err(|e| classify(self.loc(), e))?;
        self.parts.push(
            CompletedPart::builder()
                .set_e_tag(out.e_tag)
                .part_number(number)
                .build(),
        );
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        async move {
            self.total += data.len() as u64;
            self.buf.extend_from_slice(&data);
            if self.buf.len() >= PART_BYTES {
                self.upload_part().await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn complete(&mut self) -> BoxFuture<'_, Result<u64, Error>> {
        async move {
            if self.upload_id.is_none() {
                let body = self.buf.split().freeze();
                let put = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .set_cache_control(self.cache_control.clone())
                    .set_metadata(self.metadata())
                    .set_server_side_encryption(self.stamp.sse.clone())
                    .set_ssekms_key_id(self.stamp.kms_key_id.clone())
                    .body(ByteStream::from(body))
                    .send();
                sent(&self.loc(), put)
                    .await?
                    .map_err(|e| classify(self.loc(), e))?;
                return Ok(self.total);
            }
            if !self.buf.is_empty()
                && let Err(e) = self.upload_part().await
            {
                self.abort().await;
                return Err(e);
            }
            let id = self.upload_id.clone().unwrap_or_default();
            let done = CompletedMultipartUpload::builder()
                .set_parts(Some(std::mem::take(&mut self.parts)))
                .build();
            let complete = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&id)
                .multipart_upload(done)
                .send();
            let err = match sent(&self.loc(), complete).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(classify(self.loc(), e)),
                Err(e) => Some(e),
            };
            if let Some(err) = err {
                self.abort().await;
                return Err(err);
            }
            self.upload_id = None;
            Ok(self.total)
        }
        .boxed()
    }

    fn seal(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        async move {
            // A multipart upload sends its last part now (any size); a small object stays held,
            // one PutObject when it is published.
            if self.upload_id.is_some() && !self.buf.is_empty() {
                self.upload_part().await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn flush_part(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        async move {
            if self.buf.len() >= MIN_PART_BYTES {
                self.upload_part().await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn abort(&mut self) -> BoxFuture<'_, ()> {
        async move {
            self.buf.clear();
            if let Some(id) = self.upload_id.take() {
                // Not bounded by the deadline (it has usually passed when this runs), but by a
                // grace of its own.
                let abort = self.client.abort_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(id).send();
                match tokio::time::timeout(super::CLEANUP_GRACE, abort).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(bucket = %self.bucket, key = %self.key, error = %DisplayErrorContext(&e), "Could not abort a multipart upload."),
                    Err(_) => tracing::warn!(bucket = %self.bucket, key = %self.key, "No answer to aborting a multipart upload; a lifecycle rule removes it."),
                }
            }
        }
        .boxed()
    }
}
