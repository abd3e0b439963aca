//! Deadlines: when an invocation's requests must be done and when it is given up, when a stream
//! batch stops, and the answer of an invocation given up.

use std::time::Instant;

use tracing::warn;

use super::Handler;
use super::outcome::{Outcome, Summary};
use crate::trigger::{self, Item};

impl Handler {
    /// When a stream batch must stop: `[output] deadline_reserve_ms` before the point where the
    /// invocation's requests must be done (see [`deadline_cuts`]), so what is done can be written.
    pub(super) fn stop_before(&self, deadline: Option<Instant>) -> Option<Instant> {
        let reserve = self.plan.limits.deadline_reserve;
        deadline.map(|d| {
            let cut = crate::store::request_deadline().map_or(d, |c| c.min(d));
            stop_time(cut, Instant::now(), reserve)
        })
    }
}

/// For an invocation that starts at `now` and must answer by `deadline`: when its requests must
/// be done (a fifth of the time left is kept back, at least 200 ms and at most 1.5 s: aborting
/// uploads and answering), and when whatever still runs is given up (a quarter of that margin
/// before the deadline).
pub(super) fn deadline_cuts(deadline: Instant, now: Instant) -> (Instant, Instant) {
    use std::time::Duration;
    let left = deadline.saturating_duration_since(now);
    let margin = (left / 5).clamp(Duration::from_millis(200), Duration::from_millis(1500));
    let at = |d: Duration| deadline.checked_sub(d).unwrap_or(now).max(now);
    (at(margin), at(margin / 4))
}

/// When a batch that starts at `now` stops for `deadline`: `reserve` before it, but never
/// sooner than halfway from `now` to the deadline. A reserve as long as the function's timeout
/// (a 20 s reserve on a 10 s function) would otherwise stop every invocation before its first
/// record, forever; clamped, each one makes progress and still leaves half its time to write.
pub(super) fn stop_time(deadline: Instant, now: Instant, reserve: std::time::Duration) -> Instant {
    let left = deadline.saturating_duration_since(now);
    if reserve <= left / 2 {
        return deadline.checked_sub(reserve).unwrap_or(deadline);
    }
    if reserve >= left {
        warn!(
            reserve_ms = reserve.as_millis() as u64,
            left_ms = left.as_millis() as u64,
            "[output] deadline_reserve_ms is longer than this invocation has; stopping halfway \
             instead. Lower it, or raise the function's timeout."
        );
    }
    now + left / 2
}

/// The answer of an invocation given up at its deadline: nothing of it counts as done. Every
/// SQS message is reported for redelivery, a Kinesis batch from its first record (with a
/// window's state as it came), and an asynchronous event fails, so Lambda retries it; what was
/// written meanwhile is rewritten, under the same names, by the redelivery.
pub(super) fn out_of_time(invocation: &trigger::Invocation, started: Instant) -> Outcome {
    let mut s = Summary {
        trigger: invocation.source,
        error: Some(
            "the invocation's deadline came before it finished (a request stalled, or the function's \
             timeout is too short for this event); all of it is reported for redelivery"
                .into(),
        ),
        error_class: Some(crate::error::ErrorClass::RetryLater),
        batch: invocation.work.batch.clone(),
        ..Summary::default()
    };
    let mut records = Vec::new();
    for item in &invocation.work.items {
        let id = match item {
            Item::Record(r) => {
                records.push(r);
                continue;
            }
            Item::Object(o) => {
                s.failed_objects += 1;
                o.message_id.as_ref()
            }
            Item::Failed { message_id, .. } => Some(message_id),
            Item::Skipped { .. } => None,
        };
        if let Some(id) = id
            && !s.batch_item_failures.contains(id)
        {
            s.batch_item_failures.push(id.clone());
        }
    }
    // A Firehose batch is retried whole (its answer names no records to retry).
    if invocation.source.kind != trigger::Kind::Firehose {
        s.redeliver(&records, invocation.source.ordered());
    }
    s.delivered = records.len() as u64;
    let mut per_item = invocation.source.per_item();
    if let Some(w) = &invocation.work.window {
        s.state = Some(w.state.clone());
        per_item &= !records.is_empty();
    }
    s.duration_ms = started.elapsed().as_millis() as u64;
    Outcome {
        summary: s,
        per_item,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_end_a_fifth_before_the_deadline_and_the_answer_just_before_it() {
        let now = Instant::now();
        let ms = std::time::Duration::from_millis;
        // A fifth of the time left, at least 200 ms, at most 1.5 s; given up a quarter of that
        // before the deadline.
        assert_eq!(
            deadline_cuts(now + ms(4_000), now),
            (now + ms(3_200), now + ms(3_800))
        );
        assert_eq!(
            deadline_cuts(now + ms(60_000), now),
            (now + ms(58_500), now + ms(59_625))
        );
        assert_eq!(
            deadline_cuts(now + ms(500), now),
            (now + ms(300), now + ms(450))
        );
        assert_eq!(deadline_cuts(now, now), (now, now));
    }

    #[test]
    fn the_stop_is_the_reserve_before_the_deadline_or_halfway() {
        let now = Instant::now();
        let ms = std::time::Duration::from_millis;
        assert_eq!(stop_time(now + ms(10_000), now, ms(2_000)), now + ms(8_000));
        assert_eq!(stop_time(now + ms(10_000), now, ms(5_000)), now + ms(5_000));
        assert_eq!(
            stop_time(now + ms(10_000), now, ms(20_000)),
            now + ms(5_000)
        );
        assert_eq!(stop_time(now, now, ms(2_000)), now);
    }
}
