//! The Lambda runtime loop (what the deployed `bootstrap` runs).
//!
//! S3, SNS and EventBridge invocations are asynchronous: a failed object fails the invocation with a
//! clear error, so Lambda retries it and then sends it to the dead-letter queue or on-failure
//! destination. SQS-delivered events answer with `batchItemFailures` naming only the messages whose
//! objects failed, so the rest of the batch is deleted from the queue. Outputs written for objects
//! that succeeded stay valid either way; panics are caught by the runtime and reported as errors.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::handler::Handler;

/// Run the Lambda loop until the runtime stops it.
pub async fn serve(handler: Handler) -> Result<(), lambda_runtime::Error> {
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move {
            let deadline = until(ev.context.deadline);
            invoke(&handler, ev.payload, Some(deadline)).await
        }
    }))
    .await
}

/// The instant of a deadline given in milliseconds since the epoch (as the runtime API gives it).
pub fn until(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// One invocation, to be done by `deadline`: the response, or the error the runtime reports.
pub async fn invoke(
    handler: &Handler,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Value, Diagnostic> {
    let (summary, sqs) = handler.handle_until(&event, deadline).await;
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
