//! A minimal `lambda_runtime` function: it answers each event with the event itself. Sluice's
//! cold start (process start to its first request for an event) is measured beside this one's.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|e: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(e.payload)
    }))
    .await
}
