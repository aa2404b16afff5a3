//! `events()` readers (SPEC §5, E4, E5): a subscription's events for a reader that pulls them at
//! its own pace (an async iterator in Python or Node). A reader starts with the entry's state
//! when it was made (a snapshot, or the status while there is no data), then gets every event
//! the engine makes for the subscription after that, in a queue bounded like the subscriber
//! queues: past the client's `queueLimit` its unread events become one snapshot of the entry's
//! state, so a stalled reader costs bounded memory and misses steps, never state.
//!
//! Events go into a reader's queue as the engine makes them (under its lock, like the
//! subscription's own queue, so a collapse's snapshot is exact); the reader's wake runs later,
//! on the delivery thread, with no lock held.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bounded::Bounded;
use crate::event::Event;

/// Called when a reader's queue went from empty to not empty, and when its subscription ended:
/// on the delivery thread, with no engine lock held. It should only wake the reader.
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// What `EventTap::next` found.
#[derive(Debug)]
pub enum Tapped {
    Event(Event),
    /// Nothing yet: `wake` is called when there is.
    Empty,
    /// The subscription ended (unsubscribed, removed, or the client closed): nothing more comes.
    Ended,
}

pub(crate) struct Tap {
    state: Mutex<State>,
    limit: usize,
    wake: Wake,
    /// The queue filled from empty since the last wake.
    wake_due: AtomicBool,
}

struct State {
    bounded: Bounded,
    ended: bool,
}

/// One reader of a subscription's events, from the moment it was made.
pub struct EventTap(Arc<Tap>);

impl Tap {
    pub(crate) fn new(limit: usize, wake: Wake) -> Arc<Tap> {
        Arc::new(Tap {
            state: Mutex::new(State { bounded: Bounded::default(), ended: false }),
            limit,
            wake,
            wake_due: AtomicBool::new(false),
        })
    }

    /// One event the engine made for the subscription; `snapshot` is the entry's state at the
    /// end of that engine step (for a collapse). Called under the engine's lock: no host code.
    pub(crate) fn push(&self, event: &Event, snapshot: &dyn Fn() -> Event) {
        let mut st = self.state.lock();
        if st.ended {
            return;
        }
        let was_empty = st.bounded.events.is_empty();
        st.bounded.push(event.clone(), self.limit, snapshot);
        if matches!(event, Event::Removed { .. }) {
            st.ended = true;
        }
        if was_empty && !st.bounded.events.is_empty() {
            self.wake_due.store(true, Ordering::Release);
        }
    }

    /// The reader's first event: the entry's state when it was made (the reader looks at its
    /// queue before it waits, so this needs no wake).
    pub(crate) fn seed(&self, event: Event) {
        let mut st = self.state.lock();
        st.bounded.push(event.clone(), self.limit, &|| event.clone());
    }

    /// Runs the wake if the queue filled since the last one (the delivery thread, no lock held).
    pub(crate) fn wake_if_due(&self) {
        if self.wake_due.swap(false, Ordering::AcqRel) {
            (self.wake)();
        }
    }

    /// The subscription ended: a waiting reader is woken to find `Ended` after what waits.
    pub(crate) fn end(&self) {
        let mut st = self.state.lock();
        if st.ended {
            drop(st);
            self.wake_if_due();
            return;
        }
        st.ended = true;
        drop(st);
        self.wake_due.store(false, Ordering::Release);
        (self.wake)();
    }
}

impl EventTap {
    pub(crate) fn new(tap: Arc<Tap>) -> EventTap {
        EventTap(tap)
    }

    /// The next event, in the order the engine made them.
    pub fn next(&self) -> Tapped {
        let mut st = self.0.state.lock();
        match st.bounded.events.pop_front() {
            Some(event) => Tapped::Event(event),
            None if st.ended => Tapped::Ended,
            None => Tapped::Empty,
        }
    }

    /// Whether the subscription ended and nothing waits (`next` would say `Ended`).
    pub fn peek_ended(&self) -> bool {
        let st = self.0.state.lock();
        st.ended && st.bounded.events.is_empty()
    }

    /// How many events wait (at most the limit, plus a stream state and a removal).
    pub fn len(&self) -> usize {
        self.0.state.lock().bounded.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The reader is done: what waits is dropped and nothing more is queued for it.
    pub fn close(&self) {
        let mut st = self.0.state.lock();
        st.ended = true;
        st.bounded.events.clear();
    }
}

impl Drop for EventTap {
    fn drop(&mut self) {
        self.close();
    }
}
