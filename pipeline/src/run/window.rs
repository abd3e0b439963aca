//! A Kinesis tumbling window's batch: an aggregate's state carried between the window's
//! invocations (zstd + base64 in the Lambda answer), the result written by its last one.

use std::time::Instant;

use serde_json::Value;
use tracing::warn;

use super::Handler;
use super::outcome::ObjectResult;
use super::records::Batch;
use super::unit::{Chain, UnitOfWork};
use crate::Error;
use crate::trigger::{self, StreamRecord};

impl Handler {
    /// A batch of a Kinesis tumbling window. A pipeline with an aggregate starts from the state
    /// the window's previous invocation returned and returns its own; only the window's last
    /// invocation writes the result, named after the shard and the window. Other pipelines
    /// process the batch as usual. A failed or interrupted batch writes nothing and the caller
    /// returns the state it came with, so a redelivery starts over from the same point.
    pub(super) async fn process_window(
        &self,
        recs: &[&StreamRecord],
        w: &trigger::TumblingWindow,
        lines: Option<&bytes::Bytes>,
        deadline: Option<Instant>,
    ) -> Result<(ObjectResult, serde_json::Map<String, Value>), Error> {
        if !self.per_invocation() {
            return Ok((
                self.process_records(recs, lines, deadline).await?,
                serde_json::Map::new(),
            ));
        }
        let Some(schema) = self.plan.schema.clone() else {
            return Err(Error::Data(
                "a Kinesis tumbling window carries the aggregate's state between invocations, \
                 which needs a known input schema: declare [input] schema"
                    .into(),
            ));
        };
        let mut chain = self.build_chain(crate::stream::with_columns(
            &schema,
            self.plan.stream_columns(),
        ))?;
        for (i, st) in chain.stages.iter_mut().enumerate() {
            if let Some(v) = w.state.get(&state_key(i)) {
                st.load_state(&decode_state(v)?)?;
            }
        }
        let shard = recs.first().map_or(w.shard.as_str(), |r| r.shard());
        let base = match (w.is_final, recs.first()) {
            (false, Some(f)) => crate::write::stream_name(f.shard(), f.id()),
            _ => crate::write::window_name(shard, &w.start),
        };
        let source = format!("kinesis {shard} window {}", w.start);
        let mut unit = UnitOfWork::new(self, base, source);
        unit.chain = Some(chain);
        let stop = self.stop_before(deadline);
        let mut ran = self
            .run_records(Batch { recs, lines }, stop, &mut unit)
            .await;
        if ran.is_ok() && unit.counts.stopped_at.is_some() {
            ran = Err(Error::Io(
                "the invocation's deadline came in the middle of a tumbling window's batch; \
                 it is redelivered whole with the window's state as it was"
                    .into(),
            ));
        }
        let mut state = serde_json::Map::new();
        let mut last = w.is_final;
        if ran.is_ok() && !last {
            match save_states(&unit.chain) {
                Ok(saved) => state = saved,
                Err(e) => ran = Err(e),
            }
            let size = serde_json::to_vec(&state).map_or(usize::MAX, |v| v.len());
            if ran.is_ok() && size > MAX_WINDOW_STATE {
                // Lambda would refuse it: write the window's result so far as a part of its
                // own, and start the rest of the window afresh.
                warn!(
                    size,
                    limit = MAX_WINDOW_STATE,
                    "The window's state is too big to carry; writing the result so far as a part."
                );
                state = serde_json::Map::new();
                last = true;
            }
        }
        if ran.is_ok() && last {
            ran = unit.end_input().await;
        }
        let r = match ran {
            Ok(()) => unit.commit().await?,
            Err(e) => {
                unit.abort().await;
                return Err(e);
            }
        };
        Ok((r, state))
    }
}

/// The largest window state returned to Lambda (its limit is 1 MB for the whole response).
const MAX_WINDOW_STATE: usize = 1_000_000 - 16 * 1024;

/// The most a saved stage state may inflate to.
const MAX_STATE_INFLATED: usize = 256 << 20;

fn state_key(stage: usize) -> String {
    format!("sluice:stage:{stage}")
}

/// Every stage's state that has one, zstd-compressed and base64-encoded, keyed by stage.
fn save_states(chain: &Option<Chain>) -> Result<serde_json::Map<String, Value>, Error> {
    use base64::Engine;
    let mut state = serde_json::Map::new();
    let Some(chain) = chain else {
        return Ok(state);
    };
    for (i, st) in chain.stages.iter().enumerate() {
        if let Some(bytes) = st.save_state()? {
            // With zstd's checksum, a state damaged on its way back is an error when it is read.
            let packed = zstd::bulk::Compressor::new(3)
                .and_then(|mut c| {
                    c.include_checksum(true)?;
                    c.compress(&bytes)
                })
                .map_err(|e| Error::Internal(format!("compressing the window state: {e}")))?;
            state.insert(
                state_key(i),
                Value::String(base64::engine::general_purpose::STANDARD.encode(packed)),
            );
        }
    }
    Ok(state)
}

fn decode_state(v: &Value) -> Result<Vec<u8>, Error> {
    use base64::Engine;
    let bad = |why: String| {
        Error::Data(format!(
            "the window state from Lambda cannot be read: {why}"
        ))
    };
    let text = v.as_str().ok_or_else(|| bad("not a string".into()))?;
    let packed = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| bad(e.to_string()))?;
    zstd::bulk::decompress(&packed, MAX_STATE_INFLATED).map_err(|e| bad(e.to_string()))
}
