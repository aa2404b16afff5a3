//! The stream message pipeline (SPEC §2): parse → schema → filter → apply / onMessage, one task
//! per entry so messages apply in arrival order, with the pre-load buffer of L4.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::Inner;
use crate::config::StreamConfig;
use crate::message::{prepare, MessageFilter, Prepared};
use crate::transport::RawMessage;

pub(crate) enum Inbound {
    Raw(RawMessage),
    /// Messages the stream's thread has parsed, checked and filtered already, in order. The
    /// emptied vector goes back to the spare slot for the stream's next batch.
    Prepared(Vec<Prepared>, Arc<parking_lot::Mutex<Vec<Prepared>>>),
    /// The entry got its first data: flush the buffer (L4).
    Loaded,
}

/// How many queued messages one burst applies before the delivery thread is woken: bounds how
/// long the events of other entries wait behind a flood.
const BURST: usize = 64;

/// How many queued messages a batched `onMessage` hook is given in one call.
const HOOK_BATCH: usize = 256;

/// How an entry's pipeline starts.
pub(crate) struct Mode {
    /// The entry has data already (or never fetches), so messages apply at once (L4).
    pub loaded: bool,
    /// Messages go to a batched `onMessage` hook (`EndpointHooks::on_messages`).
    pub batched: bool,
}

/// Runs one entry's pipeline until the entry is removed (its inbox sender dropped).
pub(crate) async fn run(
    inner: Weak<Inner>,
    key: Arc<str>,
    entry_id: u64,
    config: Arc<StreamConfig>,
    filter: MessageFilter,
    mut inbox: mpsc::UnboundedReceiver<Inbound>,
    mode: Mode,
) {
    let Mode { mut loaded, batched } = mode;
    // Built-in rules apply a burst under one lock, batched hooks take it in one call.
    let bursts = batched || config.apply.is_some();
    let limit = if batched { HOOK_BATCH } else { BURST };
    let mut buffer: VecDeque<Value> = VecDeque::new();
    // The burst being gathered, applied before anything that comes after it.
    let mut batch: Vec<Value> = Vec::new();
    let mut overflowed = false;
    while let Some(first) = inbox.recv().await {
        let Some(client) = inner.upgrade() else { return };
        // Built-in rules apply without waiting, so the messages already queued are applied as
        // one burst under one lock, with the delivery thread woken once at its end (E2).
        // `onMessage` hooks may wait: no hold then; a batched hook takes the queued messages in
        // one call instead.
        let mut hold = config.apply.is_some().then(|| client.hold_wakes());
        let mut next = Some(first);
        let mut applied = 0;
        while let Some(item) = next.take() {
            let (mut prepared, spare) = match item {
                Inbound::Raw(raw) => (vec![prepare(raw, &config, &filter)], None),
                Inbound::Prepared(prepared, spare) => (prepared, Some(spare)),
                Inbound::Loaded => {
                    loaded = true;
                    while !buffer.is_empty() {
                        let n = if bursts { buffer.len().min(limit) } else { 1 };
                        client.apply_messages(&key, entry_id, buffer.drain(..n).collect()).await;
                        if hold.is_some() {
                            // Let other entries' events out between bursts.
                            drop(hold.take());
                            hold = Some(client.hold_wakes());
                        }
                    }
                    if std::mem::take(&mut overflowed) {
                        client.refetch_when_open(&key, entry_id);
                    }
                    (Vec::new(), None)
                }
            };
            for p in prepared.drain(..) {
                applied += 1;
                match p {
                    Prepared::Message(message) if loaded && bursts => batch.push(message),
                    other => {
                        // Whatever is reported or buffered comes after the messages before it.
                        if !batch.is_empty() && !matches!(other, Prepared::Filtered) {
                            client.apply_messages(&key, entry_id, std::mem::take(&mut batch)).await;
                        }
                        match other {
                            Prepared::Rejected(reason, message) => client.report_error(&key, entry_id, reason, message),
                            Prepared::Filtered => client.count_filtered(),
                            Prepared::Message(message) if loaded => client.apply_message(&key, entry_id, message).await,
                            Prepared::Message(message) => {
                                if buffer.len() >= config.buffer_before_loaded {
                                    // L4: past the bound the buffer goes; a refetch once the
                                    // stream is open brings what it held.
                                    buffer.clear();
                                    if !overflowed {
                                        overflowed = true;
                                        client.count_buffer_overflow();
                                    }
                                }
                                if config.buffer_before_loaded > 0 {
                                    buffer.push_back(message);
                                    client.count_buffered();
                                } else {
                                    overflowed = true;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(spare) = spare {
                let mut slot = spare.lock();
                if slot.capacity() == 0 {
                    *slot = prepared;
                }
            }
            if bursts && applied < limit {
                next = inbox.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            client.apply_messages(&key, entry_id, std::mem::take(&mut batch)).await;
        }
        drop(hold);
    }
}

