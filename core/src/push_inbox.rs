//! `pushMessage`'s messages on their way to the engine (L10, L4). The caller parses and filters
//! its message on its own thread, puts it here and returns; the engine applies it later, on an
//! engine thread, so a host that pushes a flood (a Python loop holding the interpreter, the
//! JavaScript thread) does not also pay for the apply and the event.
//!
//! Order is kept because every taking of the engine's lock first applies what is here and
//! delivers its events (see `Driver::lock`): a message whose push returned is applied before anything the engine is told
//! later — a fetch's data included, so a message pushed before the data is still buffered and
//! replayed on it (L4) — and `snapshot()` after a push already shows it.

use std::sync::Arc;

use livecache_engine::engine::Engine;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::message::Prepared;

/// One pushed message: the entry it was pushed to (its lifetime's id: a message for an entry
/// removed meanwhile is dropped by the engine) and the pipeline's verdict on it.
struct Pushed {
    key: Arc<str>,
    entry: u64,
    prepared: Prepared,
}

pub(crate) struct PushInbox {
    items: Mutex<Vec<Pushed>>,
    /// Wakes the task that applies what was pushed when nobody else takes the lock first.
    pub wake: Arc<Notify>,
}

impl PushInbox {
    pub fn new() -> PushInbox {
        PushInbox { items: Mutex::new(Vec::new()), wake: Arc::new(Notify::new()) }
    }

    pub fn push(&self, key: Arc<str>, entry: u64, prepared: Prepared) {
        let first = {
            let mut items = self.items.lock();
            items.push(Pushed { key, entry, prepared });
            items.len() == 1
        };
        // One wake for everything pushed before the task runs (a stored permit if it is busy).
        if first {
            self.wake.notify_one();
        }
    }

    /// Applies everything pushed so far, in push order; consecutive messages of one entry go to
    /// the engine as one burst (E2). Called with the engine's lock held; the inbox's own lock is
    /// held only to take the items, so pushes go on meanwhile.
    /// `true` when there was something to apply.
    pub fn apply<S: Clone>(&self, engine: &mut Engine<S>, spare: &mut Vec<Prepared>) -> bool {
        let items = {
            let mut items = self.items.lock();
            if items.is_empty() {
                return false;
            }
            std::mem::take(&mut *items)
        };
        let mut current: Option<(Arc<str>, u64)> = None;
        for pushed in items {
            if current.as_ref().is_some_and(|(k, e)| *e != pushed.entry || **k != *pushed.key) {
                let (key, entry) = current.take().expect("current");
                engine.messages(&key, entry, spare);
            }
            if current.is_none() {
                current = Some((pushed.key, pushed.entry));
            }
            spare.push(pushed.prepared);
        }
        if let Some((key, entry)) = current {
            engine.messages(&key, entry, spare);
        }
        true
    }
}
