//! The stream pipeline (SPEC §2): one task per client that hands the frames of every entry's
//! stream to the engine in arrival order, parsed, checked and filtered already (on the stream's
//! thread). One queue for all entries keeps each entry's order, and costs an entry nothing: a
//! task and a channel per entry were most of a shared-socket entry's memory (the engine applies
//! one batch at a time under its lock anyway).

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use crate::dispatch::WakeHold;
use crate::message::Prepared;

pub(crate) enum Inbound {
    /// Messages the stream's thread has parsed, checked and filtered already, in order. The
    /// emptied vector goes back to the driver for a next batch.
    Prepared(Vec<Prepared>),
    /// Answered once everything queued before it is in the engine (T6: the cursor a reconnect
    /// sends is that of the last message read, not of the last one applied so far).
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// What a stream hands the pipeline: its entry (key and lifetime id) and what it read.
pub(crate) type Piped = (Arc<str>, u64, Inbound);

/// Where a pipeline hands its messages: the engine, under its lock (the driver).
pub(crate) trait MessageSink: Send + Sync + 'static {
    /// Applies a batch of one entry's messages, in order; `batch` comes back empty.
    fn apply_batch(self: &Arc<Self>, key: &str, entry: u64, batch: &mut Vec<Prepared>);
    /// Holds the delivery thread's wake-ups until the guard drops (one wake a burst).
    fn hold_wakes(&self) -> WakeHold;
    /// An emptied batch vector, for reuse.
    fn recycle(&self, batch: Vec<Prepared>);
}

/// How many queued messages one burst applies before the delivery thread is woken: bounds how
/// long the events of other entries wait behind a flood.
const BURST: usize = 64;

/// Runs the pipeline until every sender is gone (the client closed). Messages for an entry that
/// was removed meanwhile are ignored by the engine (their lifetime id no longer matches).
pub(crate) async fn run<D: MessageSink>(driver: Weak<D>, mut inbox: mpsc::UnboundedReceiver<Piped>) {
    while let Some(first) = inbox.recv().await {
        let Some(driver) = driver.upgrade() else { return };
        // The messages already queued are applied as bursts, with the delivery thread woken
        // once at the end (E2): nothing here waits (hooks run in tasks of their own).
        let hold = driver.hold_wakes();
        let mut next = Some(first);
        let mut applied = 0;
        while let Some((key, entry_id, item)) = next.take() {
            let mut batch = match item {
                Inbound::Prepared(batch) => batch,
                Inbound::Barrier(done) => {
                    let _ = done.send(());
                    next = inbox.try_recv().ok();
                    continue;
                }
            };
            applied += batch.len();
            driver.apply_batch(&key, entry_id, &mut batch);
            driver.recycle(batch);
            if applied < BURST {
                next = inbox.try_recv().ok();
            }
        }
        drop(hold);
    }
}
