//! Event delivery (SPEC §5, E2, E4, E5). Each subscription has a bounded queue; a dispatcher
//! runs callbacks with no engine lock held, never two at once for one subscription, and lets
//! `unsubscribe` wait for a running callback (unless it is that callback's own thread).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::event::Event;

/// A subscriber's callback. Runs on the dispatcher thread (or the thread calling `poll`).
pub type Callback = Box<dyn Fn(&Event) + Send + Sync>;

/// How many events one subscription may take in a row before others get a turn.
const FAIRNESS_BUDGET: usize = 64;

struct Queue {
    events: VecDeque<Event>,
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
            queue: Mutex::new(Queue { events: VecDeque::new(), scheduled: false, running_on: None, closed: false }),
            idle: Condvar::new(),
            callback,
        })
    }

    /// Stops delivery: queued events are dropped, and when a callback of this subscription runs
    /// on another thread this waits for it to return (SPEC §5). From inside its own callback it
    /// returns at once; that callback is the last.
    pub fn close(&self) {
        let mut q = self.queue.lock();
        q.closed = true;
        q.events.clear();
        let me = std::thread::current().id();
        while matches!(q.running_on, Some(t) if t != me) {
            self.idle.wait(&mut q);
        }
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
    /// `snapshot` builds the event that replaces a full queue (E5).
    pub fn enqueue(&self, sub: &Arc<SubscriberQueue>, event: Event, snapshot: &dyn Fn() -> Event) -> Enqueued {
        let mut q = sub.queue.lock();
        if q.closed {
            return Enqueued::Closed;
        }
        let mut result = Enqueued::Queued;
        let merged = match (q.events.back_mut(), &event) {
            // E2: a burst becomes one patch event spanning several versions.
            (
                Some(Event::Patch { version: last_version, patches: last_patches, .. }),
                Event::Patch { from, version, patches, .. },
            ) if *last_version == *from => {
                last_patches.extend(patches.iter().cloned());
                *last_version = *version;
                true
            }
            _ => false,
        };
        if merged {
            result = Enqueued::Coalesced;
        } else if q.events.len() >= sub.limit {
            q.events.clear();
            q.events.push_back(snapshot());
            result = Enqueued::Overflowed;
        } else {
            q.events.push_back(event);
        }
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
        self.wake.notify_one();
        if was_empty {
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
                if !q.events.is_empty() {
                    q.scheduled = true;
                    drop(q);
                    self.schedule(Arc::clone(sub));
                    return ran;
                }
                break;
            }
            let Some(event) = q.events.pop_front() else { break };
            q.running_on = Some(me);
            drop(q);
            if catch_unwind(AssertUnwindSafe(|| (sub.callback)(&event))).is_err() {
                // A Rust callback that panics is reported once and delivery goes on (SPEC §5).
                self.panics.fetch_add(1, Ordering::Relaxed);
                eprintln!("livecache: a subscriber callback panicked (subscription {})", sub.id);
            }
            self.delivered.fetch_add(1, Ordering::Relaxed);
            ran += 1;
            q = sub.queue.lock();
            q.running_on = None;
            sub.idle.notify_all();
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
