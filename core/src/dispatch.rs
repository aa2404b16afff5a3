//! Event delivery (SPEC §5, E2, E4, E5). Each subscription has a bounded queue; a dispatcher
//! runs callbacks with no engine lock held, never two at once for one subscription, and lets
//! `unsubscribe` wait for a running callback (unless it is that callback's own thread).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::bounded::{Bounded, Pushed};
use crate::event::Event;
use crate::event_tap::Tap;

/// A subscriber's callback. Runs on the dispatcher thread (or the thread calling `poll`).
pub type Callback = Box<dyn Fn(&Event) + Send + Sync>;

/// How many events one subscription may take in a row before others get a turn.
const FAIRNESS_BUDGET: usize = 64;

struct Queue {
    /// E2/E5. The engine builds a collapse's snapshot at the end of the step that produced the
    /// event, so the step's other events are in it already.
    bounded: Bounded,
    scheduled: bool,
    running_on: Option<ThreadId>,
    closed: bool,
}

/// One subscription's delivery state.
pub(crate) struct SubscriberQueue {
    pub id: u64,
    limit: usize,
    queue: Mutex<Queue>,
    idle: Condvar,
    callback: Callback,
    /// `events()` readers: each gets every event the engine makes for the subscription, as it is
    /// enqueued here, and is woken after the callback saw it (SPEC §5).
    taps: Mutex<Vec<Weak<Tap>>>,
}

/// What an enqueue did, for `stats`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Enqueued {
    Queued,
    Coalesced,
    /// E5: the queue was full and collapsed into one snapshot.
    Overflowed,
    Closed,
}

impl SubscriberQueue {
    pub fn new(id: u64, limit: usize, callback: Callback) -> Arc<SubscriberQueue> {
        Arc::new(SubscriberQueue {
            id,
            limit: limit.max(1),
            queue: Mutex::new(Queue { bounded: Bounded::default(), scheduled: false, running_on: None, closed: false }),
            idle: Condvar::new(),
            callback,
            taps: Mutex::new(Vec::new()),
        })
    }

    /// Stops delivery: queued events are dropped, and when a callback of this subscription runs
    /// on another thread this waits for it to return (SPEC §5). From inside its own callback it
    /// returns at once; that callback is the last.
    pub fn close(&self) {
        self.end_readers();
        let mut q = self.queue.lock();
        q.closed = true;
        q.bounded.events.clear();
        let me = std::thread::current().id();
        while matches!(q.running_on, Some(t) if t != me) {
            self.idle.wait(&mut q);
        }
    }

    /// The subscription ended: its `events()` readers read what waits, then `Ended`.
    pub fn end_readers(&self) {
        for tap in std::mem::take(&mut *self.taps.lock()) {
            if let Some(tap) = tap.upgrade() {
                tap.end();
            }
        }
    }

    /// Adds an `events()` reader; `false` when the subscription has ended already. Called under
    /// the engine's lock (as `enqueue` is), so the reader misses no event and gets none twice.
    pub fn add_tap(&self, tap: &Arc<Tap>) -> bool {
        if self.queue.lock().closed {
            return false;
        }
        self.taps.lock().push(Arc::downgrade(tap));
        true
    }

    /// The readers still there (a reader that was dropped is forgotten).
    fn readers(&self) -> Vec<Arc<Tap>> {
        let mut taps = self.taps.lock();
        if taps.is_empty() {
            return Vec::new();
        }
        taps.retain(|t| t.strong_count() > 0);
        taps.iter().filter_map(Weak::upgrade).collect()
    }
}

struct Ready {
    subs: VecDeque<Arc<SubscriberQueue>>,
    stopping: bool,
}

/// Runs subscriber callbacks: on its own thread, or on the host's thread through `poll`.
pub(crate) struct Dispatcher {
    ready: Mutex<Ready>,
    wake: Condvar,
    /// Called when work appears while none was waiting (pull mode's file descriptor).
    on_ready: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: Mutex<Option<ThreadId>>,
    pub delivered: AtomicU64,
    pub panics: AtomicU64,
    stopped: AtomicBool,
    /// Producers holding wakes back while they work through a burst (`hold`).
    holds: AtomicUsize,
    /// Work was scheduled while wakes were held: `PENDING_WAKE`, plus `PENDING_HOOK` when the
    /// ready queue was empty (the pull-mode hook is only called for that).
    wake_pending: AtomicU8,
}

const PENDING_WAKE: u8 = 1;
const PENDING_HOOK: u8 = 2;

/// Held by a producer working through a burst: subscribers are scheduled as usual but the
/// delivery thread is woken once, when the last hold ends. Without it a flood wakes the thread
/// (a futex call and usually a context switch on the producer) for every single event; with it
/// the burst's patches coalesce (E2). Hold only across work that never waits.
pub(crate) struct WakeHold(Arc<Dispatcher>);

impl Drop for WakeHold {
    fn drop(&mut self) {
        let d = &self.0;
        if d.holds.fetch_sub(1, Ordering::SeqCst) == 1 {
            let pending = d.wake_pending.swap(0, Ordering::SeqCst);
            if pending != 0 {
                d.wake_up(pending & PENDING_HOOK != 0);
            }
        }
    }
}

impl Dispatcher {
    pub fn new() -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            ready: Mutex::new(Ready { subs: VecDeque::new(), stopping: false }),
            wake: Condvar::new(),
            on_ready: Mutex::new(None),
            thread: Mutex::new(None),
            thread_id: Mutex::new(None),
            delivered: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            holds: AtomicUsize::new(0),
            wake_pending: AtomicU8::new(0),
        })
    }

    /// Starts the delivery thread (push mode).
    pub fn spawn_thread(self: &Arc<Self>, name: String) -> std::io::Result<()> {
        let me = Arc::clone(self);
        let handle = std::thread::Builder::new().name(name).spawn(move || me.run_thread())?;
        *self.thread_id.lock() = Some(handle.thread().id());
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    pub fn set_on_ready(&self, f: Option<Arc<dyn Fn() + Send + Sync>>) {
        *self.on_ready.lock() = f;
    }

    /// Queues one event; called with the engine lock held, so it never runs user code.
    /// `snapshot` builds the event that replaces a full queue (E5): the entry's state at the end
    /// of the engine step that produced `event`, so it may be newer than `event`.
    pub fn enqueue(&self, sub: &Arc<SubscriberQueue>, event: Event, snapshot: &dyn Fn() -> Event) -> Enqueued {
        let mut q = sub.queue.lock();
        if q.closed {
            return Enqueued::Closed;
        }
        // Readers get the event as the engine made it, before the subscription's queue may
        // merge or collapse it (their own queues do that for them).
        for tap in sub.readers() {
            tap.push(&event, snapshot);
        }
        let result = match q.bounded.push(event, sub.limit, snapshot) {
            Pushed::Queued => Enqueued::Queued,
            Pushed::Coalesced => Enqueued::Coalesced,
            Pushed::Overflowed => Enqueued::Overflowed,
        };
        if !q.scheduled && q.running_on.is_none() {
            q.scheduled = true;
            drop(q);
            self.schedule(Arc::clone(sub));
        }
        result
    }

    fn schedule(&self, sub: Arc<SubscriberQueue>) {
        let mut ready = self.ready.lock();
        let was_empty = ready.subs.is_empty();
        ready.subs.push_back(sub);
        drop(ready);
        if self.holds.load(Ordering::SeqCst) > 0 {
            let bits = if was_empty { PENDING_WAKE | PENDING_HOOK } else { PENDING_WAKE };
            self.wake_pending.fetch_or(bits, Ordering::SeqCst);
            // The last hold may have ended since the check: then its drop saw no pending wake,
            // and this call must wake (unless another call already took the pending wake).
            if self.holds.load(Ordering::SeqCst) > 0 {
                return;
            }
            let pending = self.wake_pending.swap(0, Ordering::SeqCst);
            if pending != 0 {
                self.wake_up(pending & PENDING_HOOK != 0);
            }
            return;
        }
        self.wake_up(was_empty);
    }

    /// Holds wakes of the delivery thread back until the returned guard drops (see `WakeHold`).
    pub(crate) fn hold(self: &Arc<Self>) -> WakeHold {
        self.holds.fetch_add(1, Ordering::SeqCst);
        WakeHold(Arc::clone(self))
    }

    fn wake_up(&self, call_hook: bool) {
        self.wake.notify_one();
        if call_hook {
            let hook = self.on_ready.lock().clone();
            if let Some(hook) = hook {
                hook();
            }
        }
    }

    fn run_thread(self: Arc<Self>) {
        loop {
            let sub = {
                let mut ready = self.ready.lock();
                loop {
                    if let Some(s) = ready.subs.pop_front() {
                        break s;
                    }
                    if ready.stopping {
                        return;
                    }
                    self.wake.wait(&mut ready);
                }
            };
            self.run_subscriber(&sub);
        }
    }

    /// Runs up to a budget of one subscription's events, then yields to the others.
    fn run_subscriber(&self, sub: &Arc<SubscriberQueue>) -> usize {
        let me = std::thread::current().id();
        let mut ran = 0;
        let mut q = sub.queue.lock();
        q.scheduled = false;
        loop {
            if q.closed {
                break;
            }
            if ran == FAIRNESS_BUDGET {
                if !q.bounded.events.is_empty() {
                    q.scheduled = true;
                    drop(q);
                    self.schedule(Arc::clone(sub));
                    return ran;
                }
                break;
            }
            let Some(event) = q.bounded.events.pop_front() else { break };
            q.running_on = Some(me);
            drop(q);
            if catch_unwind(AssertUnwindSafe(|| (sub.callback)(&event))).is_err() {
                // A Rust callback that panics is reported once and delivery goes on (SPEC §5).
                self.panics.fetch_add(1, Ordering::Relaxed);
                eprintln!("livecache: a subscriber callback panicked (subscription {})", sub.id);
            }
            for tap in sub.readers() {
                tap.wake_if_due();
            }
            self.delivered.fetch_add(1, Ordering::Relaxed);
            ran += 1;
            q = sub.queue.lock();
            q.running_on = None;
            sub.idle.notify_all();
        }
        if q.bounded.events.is_empty() && q.bounded.events.capacity() > 0 {
            // An idle subscription holds no buffer (four events are over 400 bytes, for each of
            // thousands of subscriptions); the next burst allocates one again.
            q.bounded.events = VecDeque::new();
        }
        ran
    }

    /// Pull mode: runs ready callbacks on the calling thread, waiting up to `timeout` for the
    /// first. Returns how many callbacks ran.
    pub fn poll(&self, timeout: Duration) -> usize {
        let deadline = Instant::now().checked_add(timeout);
        let mut total = 0;
        loop {
            let sub = {
                let mut ready = self.ready.lock();
                loop {
                    if let Some(s) = ready.subs.pop_front() {
                        break Some(s);
                    }
                    if total > 0 || ready.stopping {
                        break None;
                    }
                    match deadline {
                        Some(d) => {
                            if self.wake.wait_until(&mut ready, d).timed_out() && ready.subs.is_empty() {
                                break None;
                            }
                        }
                        None => self.wake.wait(&mut ready),
                    }
                }
            };
            match sub {
                Some(s) => total += self.run_subscriber(&s),
                None => return total,
            }
        }
    }

    /// True when events wait for `poll`.
    pub fn has_ready(&self) -> bool {
        !self.ready.lock().subs.is_empty()
    }

    /// Delivers what is already queued, then stops the thread (SPEC §8: no callback runs after
    /// `close` returns). From the dispatcher's own thread it only asks it to stop.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.ready.lock().stopping = true;
        self.wake.notify_all();
        let on_own_thread = *self.thread_id.lock() == Some(std::thread::current().id());
        if !on_own_thread {
            if let Some(handle) = self.thread.lock().take() {
                let _ = handle.join();
            }
        }
        self.ready.lock().subs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wake held back by `hold` is delivered by the last hold's drop or by the scheduling
    /// call itself, whatever the interleaving: no event is ever left undelivered.
    #[test]
    fn held_wakes_are_never_lost() {
        let dispatcher = Dispatcher::new();
        dispatcher.spawn_thread("test-delivery".into()).unwrap();
        let delivered = Arc::new(AtomicU64::new(0));
        let subs: Vec<_> = (0..4)
            .map(|id| {
                let d = delivered.clone();
                SubscriberQueue::new(id, usize::MAX, Box::new(move |_: &Event| {
                    d.fetch_add(1, Ordering::SeqCst);
                }))
            })
            .collect();
        let event = || Event::Removed { key: "k".into() };
        const ROUNDS: u64 = 20_000;
        std::thread::scope(|scope| {
            for (t, sub) in subs.iter().enumerate() {
                let dispatcher = &dispatcher;
                scope.spawn(move || {
                    for i in 0..ROUNDS {
                        // Half the producers hold, half do not; holds overlap across threads.
                        let hold = (t % 2 == 0).then(|| dispatcher.hold());
                        dispatcher.enqueue(sub, event(), &event);
                        if i % 7 == 0 {
                            std::thread::yield_now();
                        }
                        drop(hold);
                    }
                });
            }
        });
        let expected = ROUNDS * subs.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while delivered.load(Ordering::SeqCst) < expected {
            assert!(Instant::now() < deadline, "delivered {} of {expected}", delivered.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_millis(1));
        }
        dispatcher.shutdown();
    }

    /// E5: a collapse keeps the newest stream state and a removal beside the snapshot.
    #[test]
    fn e5_overflow_keeps_stream_state_and_removal() {
        let dispatcher = Dispatcher::new(); // no thread: events stay queued
        let sub = SubscriberQueue::new(1, 3, Box::new(|_: &Event| {}));
        let key: Arc<str> = "k".into();
        let snapshot = || Event::Snapshot { key: key.clone(), version: 9, status: crate::Status::Fulfilled, data: serde_json::json!(1) };
        let stream = |state| Event::Stream { key: key.clone(), state, error: None };
        let error = || Event::Error { key: key.clone(), reason: crate::ErrorReason::Schema, message: "x".into() };
        dispatcher.enqueue(&sub, stream(crate::StreamState::Open), &snapshot);
        dispatcher.enqueue(&sub, error(), &snapshot);
        dispatcher.enqueue(&sub, error(), &snapshot);
        assert_eq!(dispatcher.enqueue(&sub, error(), &snapshot), Enqueued::Overflowed);
        let types = |sub: &SubscriberQueue| sub.queue.lock().bounded.events.iter().map(Event::type_name).collect::<Vec<_>>();
        assert_eq!(types(&sub), ["snapshot", "stream"]);
        dispatcher.enqueue(&sub, error(), &snapshot);
        assert_eq!(dispatcher.enqueue(&sub, Event::Removed { key: key.clone() }, &snapshot), Enqueued::Overflowed);
        assert_eq!(types(&sub), ["snapshot", "stream", "removed"]);
    }
}
