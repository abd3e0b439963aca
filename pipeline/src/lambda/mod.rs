//! The Lambda runtime loop (what the deployed `bootstrap` runs).
//!
//! S3, SNS and EventBridge invocations are asynchronous: a failed object fails the invocation with a
//! clear error, so Lambda retries it and then sends it to the dead-letter queue or on-failure
//! destination. SQS-delivered events answer with `batchItemFailures` naming only the messages whose
//! objects failed, so the rest of the batch is deleted from the queue. Outputs written for objects
//! that succeeded stay valid either way; panics are caught by the runtime and reported as errors.

pub mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, LambdaInvocation, service_fn, tower};
use serde_json::Value;

use crate::run::Handler;

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
    // Init: from the process's start to asking for the first event (what Lambda bills as Init).
    tracing::info!(
        init_ms = since_process_start_ms(),
        pipeline = %handler.plan().config.name,
        "Ready for events."
    );
    lambda_runtime::Runtime::new(answer)
        .layer(RawLayer {
            handler: Arc::new(handler),
        })
        .layer(lambda_runtime::layers::TracingLayer::new())
        .run()
        .await
}

/// What the runtime needs from Lambda's environment and is not there, or not a number where it
/// must be (`None`: all set). Without this check the runtime panics on the first missing one.
pub fn missing_environment() -> Option<String> {
    let missing: Vec<&str> = [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
    ]
    .into_iter()
    .filter(|v| std::env::var(v).map_or(true, |s| s.is_empty()))
    .collect();
    if !missing.is_empty() {
        return Some(missing.join(", "));
    }
    let memory = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
    if memory.trim().parse::<i32>().is_err() {
        return Some(format!(
            "a number in AWS_LAMBDA_FUNCTION_MEMORY_SIZE (it is `{memory}`)"
        ));
    }
    None
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
            let work = invoke(&handler, &req.body, deadline);
            #[cfg(feature = "iceberg")]
            let work = crate::table::with_invocation(req.context.request_id.clone(), work);
            let run = std::panic::AssertUnwindSafe(work);
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
    let outcome = handler.handle_bytes(body, Some(deadline)).await;
    let plan = handler.plan();
    if plan.config.metrics.enabled {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
        let line = crate::metrics::emf_line(
            &outcome.summary,
            &plan.config.metrics,
            &plan.config.name,
            &function,
            epoch_ms(),
        );
        // Its own line on stdout, where CloudWatch Logs picks Embedded Metric Format up.
        println!("{line}");
    }
    respond(&outcome)
}

/// The instant of a deadline given in milliseconds since the epoch (as the runtime API gives it).
///
/// cargo-lambda's emulator (1.9) sends the function's timeout instead (`600000`, ten minutes):
/// read literally that is a deadline in 1970, and every stream batch would stop before its first
/// record. No real deadline lies before 2001, so such a value is taken as a duration from now.
pub fn until(deadline_ms: u64) -> Instant {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    let left = if deadline_ms < YEAR_2001_MS {
        deadline_ms
    } else {
        deadline_ms.saturating_sub(epoch_ms())
    };
    Instant::now() + Duration::from_millis(left)
}

/// Now, in milliseconds since the epoch.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The Lambda's answer: the batch response, or for an asynchronous event that failed, an
/// invocation error (so Lambda retries it).
fn respond(outcome: &crate::run::Outcome) -> Result<Value, Diagnostic> {
    let summary = &outcome.summary;
    tracing::info!(
        trigger = %summary.trigger, objects = summary.objects, skipped = summary.skipped,
        records_in = summary.records_in, records_out = summary.records_out, rejected = summary.rejected,
        failures = summary.batch_item_failures.len(), duration_ms = summary.duration_ms,
        "Invocation done."
    );
    match (&summary.error, outcome.per_item) {
        (Some(e), false) => Err(Diagnostic {
            error_type: summary
                .error_class
                .unwrap_or(crate::ErrorClass::Permanent)
                .error_type()
                .into(),
            error_message: e.clone(),
        }),
        _ => Ok(outcome.lambda_response()),
    }
}

static PROCESS_START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Note when the process started (first thing in `main`), for the init time logged by `serve`.
pub fn mark_process_start() {
    PROCESS_START.get_or_init(Instant::now);
}

/// Milliseconds since [`mark_process_start`] (or since the first call).
pub fn since_process_start_ms() -> f64 {
    PROCESS_START
        .get_or_init(Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1e3
}

/// The log level: `SLUICE_LOG` (a level or a `tracing` filter such as `info,aws_smithy=debug`),
/// else Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by the function's logging config), else `info`.
pub fn log_filter() -> String {
    std::env::var("SLUICE_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .map(|l| l.to_lowercase())
        .unwrap_or_else(|_| "info".into())
}

/// Install JSON logs for the Lambda: one object per line with `timestamp`, `level`, `message`,
/// the event's fields, and the invocation's `requestId` and `traceId` on every line logged while
/// an invocation runs (see [`LambdaJson`]).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(LambdaJson)
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter()))
        .try_init();
}

/// The log line format: flat JSON, as CloudWatch Logs Insights reads it best
/// (`fields requestId, message, records_in | filter level = "WARN"`). The request id and X-Ray
/// trace id come from the runtime's per-invocation span; the span's own name is left out.
pub struct LambdaJson;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LambdaJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert(
            "level".into(),
            event.metadata().level().as_str().to_string().into(),
        );
        use tracing_serde::fields::AsMap;
        if let Ok(Value::Object(fields)) = serde_json::to_value(event.field_map()) {
            line.extend(fields);
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(fields) {
                    for (k, v) in o {
                        let k = if k == "xrayTraceId" {
                            "traceId".into()
                        } else {
                            k
                        };
                        line.entry(k).or_insert(v);
                    }
                }
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_epoch_milliseconds_or_an_emulators_timeout() {
        let now_ms = epoch_ms();
        let left = |d: Instant| d.saturating_duration_since(Instant::now()).as_millis() as i64;
        // Lambda: 3 s from now.
        assert!((left(until(now_ms + 3_000)) - 3_000).abs() < 200);
        // Already past: now.
        assert_eq!(left(until(now_ms - 5_000)), 0);
        // cargo-lambda's emulator: its 600 s timeout.
        assert!((left(until(600_000)) - 600_000).abs() < 200);
    }
}
