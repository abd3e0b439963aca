//! The Lambda runtime loop (what the deployed `bootstrap` runs).
//!
//! S3, SNS and EventBridge invocations are asynchronous: a failed object fails the invocation with a
//! clear error, so Lambda retries it and then sends it to the dead-letter queue or on-failure
//! destination. SQS-delivered events answer with `batchItemFailures` naming only the messages whose
//! objects failed, so the rest of the batch is deleted from the queue. Outputs written for objects
//! that succeeded stay valid either way; panics are caught by the runtime and reported as errors.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, LambdaInvocation, service_fn, tower};
use serde_json::Value;

use crate::handler::Handler;

/// Run the Lambda loop until the runtime stops it.
///
/// The handler reads each invocation's raw bytes ([`Handler::handle_bytes`]): a 10 MB Kinesis
/// batch is read without building a JSON tree of it first, which would cost more than processing
/// its records. [`RawLayer`] does the work and hands the runtime's usual stack (deserialize, call,
/// post the response or the error) a small body carrying the answer.
pub async fn serve(handler: Handler) -> Result<(), lambda_runtime::Error> {
    let answer = service_fn(|ev: LambdaEvent<Value>| async move {
        match ev.payload.get("ok") {
            Some(v) => Ok(v.clone()),
            None => Err(Diagnostic {
                error_type: text(ev.payload.pointer("/error/type")),
                error_message: text(ev.payload.pointer("/error/message")),
            }),
        }
    });
    lambda_runtime::Runtime::new(answer)
        .layer(RawLayer {
            handler: Arc::new(handler),
        })
        .layer(lambda_runtime::layers::TracingLayer::new())
        .run()
        .await
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Runs the pipeline on an invocation's raw bytes, then passes the answer on as the body.
#[derive(Clone)]
pub struct RawLayer {
    handler: Arc<Handler>,
}

impl<S> tower::Layer<S> for RawLayer {
    type Service = RawService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RawService {
            handler: self.handler.clone(),
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
        }
    }
}

/// See [`RawLayer`].
pub struct RawService<S> {
    handler: Arc<Handler>,
    inner: Arc<tokio::sync::Mutex<S>>,
}

impl<S> tower::Service<LambdaInvocation> for RawService<S>
where
    S: tower::Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = futures::future::BoxFuture<'static, Result<(), lambda_runtime::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: LambdaInvocation) -> Self::Future {
        use futures::FutureExt;
        let handler = self.handler.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let deadline = until(req.context.deadline);
            let run = std::panic::AssertUnwindSafe(invoke(&handler, &req.body, deadline));
            let carried = match run.catch_unwind().await {
                Ok(Ok(v)) => serde_json::json!({ "ok": v }),
                Ok(Err(d)) => serde_json::json!({
                    "error": { "type": d.error_type, "message": d.error_message }
                }),
                Err(_) => serde_json::json!({
                    "error": { "type": "Sluice.Panic", "message": "the function panicked; see its log" }
                }),
            };
            req.body = bytes::Bytes::from(serde_json::to_vec(&carried)?);
            let mut svc = inner.lock().await;
            futures::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
            svc.call(req).await
        })
    }
}

/// One invocation from its raw bytes, to be done by `deadline`: the response, or the error the
/// runtime reports.
pub async fn invoke(
    handler: &Handler,
    body: &[u8],
    deadline: Instant,
) -> Result<Value, Diagnostic> {
    let (summary, per_item) = handler.handle_bytes(body, Some(deadline)).await;
    respond(summary, per_item)
}

/// The instant of a deadline given in milliseconds since the epoch (as the runtime API gives it).
pub fn until(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

fn respond(summary: crate::handler::Summary, sqs: bool) -> Result<Value, Diagnostic> {
    tracing::info!(
        trigger = %summary.trigger, objects = summary.objects, skipped = summary.skipped,
        records_in = summary.records_in, records_out = summary.records_out, rejected = summary.rejected,
        failures = summary.batch_item_failures.len(), duration_ms = summary.duration_ms,
        "Invocation done."
    );
    match (&summary.error, sqs) {
        (Some(e), false) => Err(Diagnostic {
            error_type: "Sluice.ObjectFailed".into(),
            error_message: e.clone(),
        }),
        _ => Ok(summary.lambda_response(sqs)),
    }
}

/// Install JSON logs for the Lambda (level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`, default info).
pub fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}
