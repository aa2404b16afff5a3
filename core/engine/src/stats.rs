//! `stats()` counters (SPEC §5). Serialised with camelCase keys, the same in every binding.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::ErrorReason;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Cache entries alive now.
    pub entries: u64,
    /// Subscriptions alive now.
    pub subscriptions: u64,
    /// Entries ever created / removed (L7).
    pub entries_created: u64,
    pub entries_removed: u64,
    /// Stream messages (and `pushMessage` calls) received by the pipeline.
    pub messages_received: u64,
    /// Messages that changed the data (or were applied and changed nothing, like a dedupe skip).
    pub messages_applied: u64,
    /// Messages dropped by `filter`.
    pub messages_filtered: u64,
    /// Messages held before the data loaded (L4).
    pub messages_buffered: u64,
    /// Messages re-applied on top of a refetch response (L5).
    pub messages_reapplied: u64,
    /// Refused input by reason (E3); every reason is present, zero or not.
    pub messages_rejected: BTreeMap<&'static str, u64>,
    /// Pre-load buffers that went past `bufferBeforeLoaded` and were dropped (L4).
    pub buffer_overflows: u64,
    /// Fetches started, failed, and responses discarded because a newer request exists (L5).
    pub fetches: u64,
    pub fetch_errors: u64,
    pub stale_responses: u64,
    /// Streams that came back after a drop (L8).
    pub reconnects: u64,
    /// T6: reconnects that resumed from a cursor (no refetch), and refetches made to resync
    /// (after a reconnect, a sequence gap, a `mustRefetch` message or a refused resume).
    pub resumes: u64,
    pub resyncs: u64,
    /// T6: messages at or below the last `sequence`, dropped.
    pub messages_duplicate: u64,
    /// T3: transport connections open now, and ever opened (shared ones count once).
    pub connections: u64,
    pub connections_opened: u64,
    /// Subscription queues collapsed into a snapshot (E5).
    pub queue_overflows: u64,
    /// Events delivered to callbacks.
    pub events_delivered: u64,
    /// Host updates applied (L9).
    pub host_updates: u64,
    /// W1: mutations started, and those that failed.
    pub mutations: u64,
    pub mutation_errors: u64,
    /// W2: entries an invalidation refetched or removed.
    pub invalidations: u64,
    /// P1: fetches started by polling.
    pub polls: u64,
}

impl Stats {
    pub fn new() -> Stats {
        let mut s = Stats::default();
        for r in ErrorReason::ALL {
            s.messages_rejected.insert(r.as_str(), 0);
        }
        s
    }

    pub fn reject(&mut self, reason: ErrorReason) {
        *self.messages_rejected.entry(reason.as_str()).or_insert(0) += 1;
    }

    /// Every rejection, whatever the reason.
    pub fn messages_rejected_total(&self) -> u64 {
        self.messages_rejected.values().sum()
    }
}
