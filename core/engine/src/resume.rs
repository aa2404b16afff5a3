//! T6: resume instead of refetch. The engine's side of a reconnect that resumes: the target
//! with the entry's cursor in it, a refused resume (409/410), and what to do when the entry is
//! behind the server (a sequence gap, a `mustRefetch` message). The position itself is
//! `position.rs`.

use std::sync::Arc;

use crate::engine::Engine;
use crate::protocol::{EntryId, Output, StreamTarget};

/// Why an entry is behind the server.
#[derive(Debug)]
pub(crate) enum Behind {
    Gap,
    MustRefetch,
}

impl<S: Clone> Engine<S> {
    /// The target for the entry's next connect (T6): `None` when its stream does not resume
    /// (the driver keeps the one it started with). The connection it makes is then known to
    /// resume (or not), which decides whether its open refetches.
    pub fn stream_target(&mut self, key: &str, id: EntryId) -> Option<StreamTarget> {
        let entry = self.entry_mut(key, id)?;
        entry.stream_config.resume.as_ref()?;
        let position = entry.position.as_mut()?;
        let cursor = position.cursor.as_ref();
        position.connected_with_cursor = cursor.is_some();
        // Rendered once already when the entry was created: only the cursor can differ.
        StreamTarget::render_at(&entry.stream_config, entry.arg.as_ref(), cursor).ok()
    }

    /// T6: the server refused to resume (a handshake answered 409 or 410): the next connection
    /// starts without a cursor, and its open resyncs (L8).
    pub fn resume_refused(&mut self, key: &str, id: EntryId) {
        if let Some(position) = self.entry_mut(key, id).and_then(|e| e.position.as_mut()) {
            position.forget();
            position.connected_with_cursor = false;
        }
    }

    /// T6: messages were missed (a sequence gap) or the server cannot resume (`mustRefetch`):
    /// resume from the last good cursor when there is one, else refetch (L5).
    pub(crate) fn catch_up(&mut self, key: &str, id: EntryId, behind: Behind) {
        let Some(entry) = self.entry_mut(key, id) else { return };
        let resumable = entry.stream_config.resume.is_some() && entry.stream_state == crate::event::StreamState::Open;
        let Some(position) = entry.position.as_mut() else { return };
        match behind {
            Behind::Gap if resumable && position.cursor.is_some() => {
                if !std::mem::replace(&mut position.reconnect_asked, true) {
                    let key: Arc<str> = entry.key.clone();
                    self.out.push(Output::ReconnectStream { key, entry: id });
                }
            }
            Behind::Gap | Behind::MustRefetch => {
                position.forget();
                if entry.has_query() {
                    self.stats.resyncs += 1;
                    let _ = self.start_fetch(key);
                }
            }
        }
    }
}
