//! Stream state (L8): every change reaches subscribers as a `stream` event; an open after an
//! earlier open is a reconnect, and with `resyncOnReconnect` the query is refetched so messages
//! missed while away are not lost. Protocol-level problems the transport handled itself are
//! reported as `error` events (E3).

use crate::engine::Engine;
use crate::protocol::EntryId;
use crate::event::{ErrorReason, StreamState};

impl<S: Clone> Engine<S> {
    pub fn stream_state(&mut self, key: &str, id: EntryId, state: StreamState, error: Option<String>) {
        let Some(entry) = self.entries.get_mut(key).filter(|e| e.id == id) else { return };
        if entry.stream_state == state && entry.stream_error == error {
            return;
        }
        entry.stream_state = state;
        entry.stream_error = error;
        let event = entry.stream_event();
        entry.broadcast(&mut self.out, event);
        if state != StreamState::Open {
            return;
        }
        let reconnected = std::mem::replace(&mut entry.stream_opened, true);
        // T6: a connection that was asked to resume after a cursor gets what was missed from the
        // server itself; nothing is refetched.
        let resumed = match entry.position.as_mut() {
            Some(p) => {
                p.reconnect_asked = false;
                p.connected_with_cursor
            }
            None => false,
        };
        if reconnected {
            self.stats.reconnects += 1;
            if resumed {
                self.stats.resumes += 1;
            }
        }
        // L8: after a reconnect, refetch what was missed. On the first open, a fetch that
        // finished before the socket opened may have missed messages in between: same cure.
        let gap = entry.stream_config.resync_on_reconnect && (reconnected || entry.data.is_some()) && !resumed;
        let overflow = std::mem::take(&mut entry.refetch_when_open);
        if entry.has_query() && (gap || overflow) {
            if gap {
                self.stats.resyncs += 1;
            }
            let _ = self.start_fetch(key);
        }
    }

    /// A problem the stream driver handled itself (a frame over the limit, invalid UTF-8).
    pub fn stream_error(&mut self, key: &str, id: EntryId, reason: ErrorReason, message: String) {
        // T6: the driver dropped a message it could not read, and a resume from the cursor before
        // it would be sent it again: the next connection starts over and resyncs.
        if let Some(position) = self.entry_mut(key, id).and_then(|e| e.position.as_mut()) {
            position.forget();
        }
        self.refuse(key, id, reason, message);
    }

    /// L4: the pre-load buffer overflowed; refetch now if the stream is open, else when it opens.
    pub(crate) fn refetch_when_open(&mut self, key: &str, id: EntryId) {
        let Some(entry) = self.entry_mut(key, id) else { return };
        if entry.has_stream_url && entry.stream_state != StreamState::Open {
            entry.refetch_when_open = true;
        } else {
            let _ = self.start_fetch(key);
        }
    }
}
