//! Event delivery rules the shared scenarios cannot express (SPEC §5, E4, E5): bounded queues
//! that collapse to a snapshot, and callbacks that call back into the client from any thread.

#[path = "support/util.rs"]
mod util;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::time::Duration;

use livecache_core::{Client, EndpointHooks, Event, Hooks, RawMessage, Subscription};
use parking_lot::Mutex;
use serde_json::{json, Value};
use util::{client, wait_until, Recorder};

/// `getLog`: data `[]`, each pushed message appended (jsonPatch would do as well).
fn log_client(extra: Value) -> Client {
    let mut config = json!({"endpoints": {"getLog": {"stream": {"apply": "append"}}}});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    client(config, Hooks::new().endpoint("getLog", EndpointHooks::default().query_fn_sync(|_| Ok(json!([])))))
}

fn push(c: &Client, message: Value) {
    c.push_message("getLog", None, RawMessage::Value(message)).unwrap();
}

fn wait_processed(c: &Client, n: u64) {
    wait_until(&format!("{n} messages processed"), || {
        let s = c.stats().unwrap();
        s.messages_applied + s.messages_rejected_total() >= n
    });
}

fn engine(c: &Client) -> (Value, u64) {
    let s = c.snapshot("getLog", None).unwrap();
    (s.data, s.version)
}

/// A callback that blocks on its first event until the test opens the gate.
struct Gate {
    entered: mpsc::Receiver<()>,
    open: mpsc::Sender<()>,
}

/// Opens a gate when dropped: declared after the subscription it blocks, so a failing assertion
/// releases the callback before the subscription's drop waits for it.
struct OpenOnDrop(mpsc::Sender<()>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn gated(rec: &Recorder) -> (impl Fn(&Event) + Send + Sync + 'static, Gate) {
    let (entered_tx, entered) = mpsc::channel();
    let (open, open_rx) = mpsc::channel::<()>();
    let (entered_tx, open_rx) = (Mutex::new(entered_tx), Mutex::new(open_rx));
    let first = AtomicBool::new(true);
    let rec = rec.clone();
    let callback = move |e: &Event| {
        if first.swap(false, Ordering::SeqCst) {
            let _ = entered_tx.lock().send(());
            let _ = open_rx.lock().recv();
        }
        rec.record(e);
    };
    (callback, Gate { entered, open })
}

#[test]
fn e4_e5_blocked_callback_overflow_collapses_to_one_snapshot() {
    let c = log_client(json!({"queueLimit": 4}));
    let witness = Recorder::default();
    let _w = c.subscribe("getLog", None, witness.callback()).unwrap();
    witness.wait_version(1);
    let slow = Recorder::default();
    let (callback, gate) = gated(&slow);
    let _s = c.subscribe("getLog", None, callback).unwrap();
    let open = OpenOnDrop(gate.open);
    gate.entered.recv_timeout(util::TIMEOUT).expect("the slow callback runs");
    // Alternate good and bad messages: error events cannot be coalesced into the patches (E2),
    // so the blocked subscriber's queue really fills.
    for i in 0..20 {
        push(&c, json!({"i": i}));
        c.push_message("getLog", None, RawMessage::Text("{bad".into())).unwrap();
    }
    wait_processed(&c, 40);
    let (data, version) = engine(&c);
    assert_eq!(version, 21);
    let overflows = c.stats().unwrap().queue_overflows;
    assert!(overflows >= 1, "stats.queueOverflows counts collapses");
    drop(open);
    slow.wait_version(version);
    slow.assert_replica(&data, version);
    // E4: what waited for the blocked callback was at most `queueLimit` events (plus the one it held);
    // E5: the first of them is the snapshot that replaced the overflowing queue.
    let events = slow.events();
    assert!(events.len() <= 1 + 4, "{} events delivered: {:?}", events.len(), slow.types());
    assert_eq!(events[1].type_name(), "snapshot", "{:?}", slow.types());
    // The witness shares the blocked delivery thread, so it may have collapsed too: still exact.
    witness.wait_version(version);
    witness.assert_replica(&data, version);
    c.close();
}

#[test]
fn s5_callback_unsubscribes_itself() {
    let c = log_client(json!({}));
    let slot: Arc<Mutex<Option<Subscription>>> = Default::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, n) = (slot.clone(), calls.clone());
    // The slot is filled before any event: the catch-up event is queued, the callback waits on the lock.
    let mut guard = slot.lock();
    let sub = c
        .subscribe("getLog", None, move |_| {
            n.fetch_add(1, Ordering::SeqCst);
            if let Some(me) = s.lock().take() {
                me.unsubscribe(); // from inside its own callback: returns at once
            }
        })
        .unwrap();
    *guard = Some(sub);
    drop(guard);
    wait_until("the callback ran", || calls.load(Ordering::SeqCst) >= 1);
    let witness = Recorder::default();
    let _w = c.subscribe("getLog", None, witness.callback()).unwrap();
    for i in 0..5 {
        push(&c, json!(i));
        witness.wait_version(2 + i);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no call after unsubscribing itself");
    assert!(slot.lock().is_none());
    assert_eq!(c.stats().unwrap().subscriptions, 1);
    c.close();
}

#[test]
fn s5_callback_subscribes_another_key_and_updates() {
    let c = Arc::new(log_client(json!({})));
    let weak: Weak<Client> = Arc::downgrade(&c);
    let inner = Recorder::default();
    let made: Arc<Mutex<Vec<Subscription>>> = Default::default();
    let (m, r) = (made.clone(), inner.clone());
    let _outer = c
        .subscribe("getLog", Some(json!("a")), move |e| {
            let Some(c) = weak.upgrade() else { return };
            if let Event::Snapshot { .. } = e {
                if m.lock().is_empty() {
                    // A callback may subscribe, update and read: no engine lock is held while it runs.
                    let sub = c.subscribe("getLog", Some(json!("b")), r.callback()).unwrap();
                    m.lock().push(sub);
                    c.update_query_data("getLog", Some(&json!("a")), |d| {
                        d.as_array_mut().unwrap().push(json!("from a callback"));
                        None
                    })
                    .unwrap();
                    c.snapshot("getLog", Some(&json!("a"))).unwrap();
                }
            }
        })
        .unwrap();
    inner.wait_type("snapshot");
    wait_until("the update", || c.snapshot("getLog", Some(&json!("a"))).unwrap().version == 2);
    assert_eq!(c.snapshot("getLog", Some(&json!("a"))).unwrap().data, json!(["from a callback"]));
    assert_eq!(c.stats().unwrap().subscriptions, 2);
    c.close();
}

#[test]
fn s5_unsubscribe_from_another_thread_waits_for_the_running_callback() {
    let c = log_client(json!({}));
    let finished = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (entered_tx, entered_rx) = mpsc::channel();
    let (open_tx, open_rx) = mpsc::channel::<()>();
    let (entered_tx, open_rx) = (Mutex::new(entered_tx), Mutex::new(open_rx));
    let (f, n) = (finished.clone(), calls.clone());
    let sub = Arc::new(
        c.subscribe("getLog", None, move |_| {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = entered_tx.lock().send(());
                let _ = open_rx.lock().recv();
                f.store(true, Ordering::SeqCst);
            }
        })
        .unwrap(),
    );
    let open = OpenOnDrop(open_tx);
    entered_rx.recv_timeout(util::TIMEOUT).expect("the callback runs");
    for i in 0..3 {
        push(&c, json!(i)); // queued behind the running callback
    }
    wait_processed(&c, 3);
    let s = sub.clone();
    let f = finished.clone();
    let unsubscriber = std::thread::spawn(move || {
        s.unsubscribe();
        f.load(Ordering::SeqCst)
    });
    wait_until("unsubscribe started", || !sub.is_active());
    // Give a wrong implementation every chance to return early.
    std::thread::sleep(Duration::from_millis(100));
    drop(open);
    let callback_had_finished = unsubscriber.join().unwrap();
    assert!(callback_had_finished, "unsubscribe returned while its callback was still running");
    // No callback of it starts afterwards: the three queued events are dropped.
    let witness = Recorder::default();
    let _w = c.subscribe("getLog", None, witness.callback()).unwrap();
    push(&c, json!("after"));
    witness.wait_version(5);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    c.close();
}

#[test]
fn s5_panicking_callback_does_not_stop_others() {
    let c = log_client(json!({}));
    let panicked = Arc::new(AtomicUsize::new(0));
    let p = panicked.clone();
    let _bad = c
        .subscribe("getLog", None, move |_| {
            p.fetch_add(1, Ordering::SeqCst);
            panic!("a subscriber bug");
        })
        .unwrap();
    let good = Recorder::default();
    let _good = c.subscribe("getLog", None, good.callback()).unwrap();
    for i in 0..3 {
        push(&c, json!(i));
        good.wait_version(2 + i);
    }
    let (data, version) = engine(&c);
    good.assert_replica(&data, version);
    // The panicking subscriber keeps being called too: a status, the snapshot, then patches.
    wait_until("later events reached the panicking callback", || panicked.load(Ordering::SeqCst) >= 3);
    c.close();
}

#[test]
fn s8_close_from_inside_a_callback_returns() {
    let c = Arc::new(log_client(json!({})));
    let weak = Arc::downgrade(&c);
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let _s = c
        .subscribe("getLog", None, move |_| {
            if let Some(c) = weak.upgrade() {
                c.close();
                d.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
    wait_until("close() inside the callback returned", || done.load(Ordering::SeqCst));
    assert!(c.is_closed());
    c.close();
}

#[test]
fn s8_close_delivers_removed_and_stops_callbacks() {
    let c = log_client(json!({}));
    let rec = Recorder::default();
    let sub = c.subscribe("getLog", None, rec.callback()).unwrap();
    rec.wait_version(1);
    c.close();
    // When close returns, every queued callback has run (the last one the removal) and none runs later.
    assert_eq!(rec.types().last().copied(), Some("removed"), "{:?}", rec.types());
    let n = rec.count();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rec.count(), n);
    drop(sub);
}

/// E4/E5 for `events()` readers: a reader starts with the entry's state; one that does not read
/// while a flood is delivered holds at most `queueLimit` events (plus a stream state), the first
/// of them a snapshot, and replaying what it holds gives the entry's final data. Its wake fires
/// when its queue fills from empty and when the subscription ends; after that it reads `Ended`.
#[test]
fn e4_e5_a_stalled_events_reader_holds_a_bounded_queue_that_replays_to_the_data() {
    use livecache_core::event_tap::Tapped;
    let c = log_client(json!({"queueLimit": 4}));
    let rec = Recorder::default();
    let sub = c.subscribe("getLog", None, rec.callback()).unwrap();
    rec.wait_version(1);
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let reader = sub.events(Box::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    }));
    match reader.next() {
        Tapped::Event(Event::Snapshot { version: 1, .. }) => {}
        other => panic!("a reader starts with the entry's state, got {other:?}"),
    }
    assert!(matches!(reader.next(), Tapped::Empty), "then only what comes after it");
    // Good and bad messages alternate, so the events cannot all coalesce into one patch (E2).
    for i in 0..200 {
        push(&c, json!({"i": i}));
        c.push_message("getLog", None, RawMessage::Text("{bad".into())).unwrap();
    }
    wait_processed(&c, 400);
    let (data, version) = engine(&c);
    assert_eq!(version, 201);
    rec.wait_version(version); // the callback saw everything, so the reader was offered it all
    assert!(reader.len() <= 4 + 1, "{} events wait", reader.len());
    assert!(wakes.load(Ordering::SeqCst) >= 1);
    let replay = Recorder::default();
    let mut first = None;
    while let Tapped::Event(event) = reader.next() {
        first.get_or_insert(event.type_name());
        replay.record(&event);
    }
    assert_eq!(first, Some("snapshot"), "the overflow became a snapshot: {:?}", replay.types());
    replay.assert_replica(&data, version);

    let before = wakes.load(Ordering::SeqCst);
    push(&c, json!({"i": "late"}));
    // The event is queued for the reader at once; its wake runs when the event is delivered.
    wait_until("the reader woken for the late message", || wakes.load(Ordering::SeqCst) > before);
    rec.wait_version(version + 1);
    assert_eq!(wakes.load(Ordering::SeqCst), before + 1, "one wake when the queue fills from empty");
    assert_eq!(reader.len(), 1);
    assert!(matches!(reader.next(), Tapped::Event(Event::Patch { .. })));
    sub.unsubscribe();
    assert_eq!(wakes.load(Ordering::SeqCst), before + 2, "a wake when the subscription ends");
    assert!(matches!(reader.next(), Tapped::Ended));
    // A reader made after the end reads `Ended` at once.
    assert!(matches!(sub.events(Box::new(|| {})).next(), Tapped::Ended));
    c.close();
}

/// `subscribe_reader`: the reader gets the subscription's events from its very first one (the
/// `pending` status of a new entry, before any data), exactly what a callback subscriber of the
/// same key gets; stalled through a flood, it holds a bounded queue that replays to the data;
/// unsubscribing ends it with a wake.
#[test]
fn e4_e5_a_reader_subscription_starts_at_the_first_event_and_stays_bounded() {
    use livecache_core::event_tap::Tapped;
    let c = log_client(json!({"queueLimit": 4}));
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let (sub, reader) = c
        .subscribe_reader("getLog", None, Default::default(), Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
    let rec = Recorder::default();
    let watcher = c.subscribe("getLog", None, rec.callback()).unwrap();
    rec.wait_version(1);
    wait_until("the reader woken for its first events", || wakes.load(Ordering::SeqCst) >= 1);
    let mut first = Vec::new();
    while let Tapped::Event(event) = reader.next() {
        first.push(event.type_name());
    }
    assert_eq!(first, ["status", "snapshot"], "from the pending status on");
    for i in 0..200 {
        push(&c, json!({"i": i}));
        c.push_message("getLog", None, RawMessage::Text("{bad".into())).unwrap();
    }
    wait_processed(&c, 400);
    let (data, version) = engine(&c);
    // Events reach a reader's queue as the engine makes them, so all of them are offered now.
    assert!(reader.len() <= 4 + 1, "{} events wait", reader.len());
    let replay = Recorder::default();
    let mut types = Vec::new();
    while let Tapped::Event(event) = reader.next() {
        types.push(event.type_name());
        replay.record(&event);
    }
    assert_eq!(types.first(), Some(&"snapshot"), "the overflow became a snapshot: {types:?}");
    replay.assert_replica(&data, version);
    let before = wakes.load(Ordering::SeqCst);
    sub.unsubscribe();
    assert_eq!(wakes.load(Ordering::SeqCst), before + 1, "a wake when the subscription ends");
    assert!(matches!(reader.next(), Tapped::Ended));
    drop(watcher);
    c.close();
}

/// L10 with E1 and E5: readers and subscribers that join while another thread floods
/// `pushMessage` see each version once: every one replays, with the `json-patch` crate, to the
/// data at the end (a reader's seed and the events after it never overlap), and a snapshot
/// right after a push shows it.
#[test]
fn readers_and_subscribers_joining_during_a_push_flood_see_each_version_once() {
    use livecache_core::event_tap::Tapped;
    const JOINS: usize = 20;
    // Bounded, so that a slow machine's delivery to the 20 extra subscribers stays short.
    const MAX_PUSHES: u64 = 10_000;
    // maxLen keeps every join's snapshot small however long the flood runs.
    let config = json!({"queueLimit": 100000, "endpoints": {"getLog": {"stream": {"apply": {"append": {"maxLen": 20}}}}}});
    let c = Arc::new(client(config, Hooks::new().endpoint("getLog", EndpointHooks::default().query_fn_sync(|_| Ok(json!([]))))));
    let first = Recorder::default();
    let sub = c.subscribe("getLog", None, first.callback()).unwrap();
    first.wait_version(1);
    let stop = Arc::new(AtomicBool::new(false));
    // Pushes until the joins are done (or MAX_PUSHES), so the joins happen during the flood.
    let pusher = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while (!stop.load(Ordering::SeqCst) || n < 1000) && n < MAX_PUSHES {
                push(&c, json!({"i": n}));
                n += 1;
            }
            n
        })
    };
    let mut joined = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..JOINS {
        let rec = Recorder::default();
        let s = c.subscribe("getLog", None, rec.callback()).unwrap();
        joined.push((rec, s));
        readers.push(sub.events(Box::new(|| {})));
        // Read-your-push: what this thread pushed is in the snapshot at once.
        let before = engine(&c).1;
        push(&c, json!({"from": "joiner"}));
        assert!(engine(&c).1 > before, "a snapshot after a push shows it");
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    let pushed = pusher.join().unwrap();
    let (data, version) = engine(&c);
    assert_eq!(data.as_array().unwrap().len(), 20);
    assert_eq!(version, 1 + pushed + JOINS as u64, "{pushed} pushed");
    first.wait_version(version);
    first.assert_replica(&data, version);
    for (rec, _) in &joined {
        rec.wait_version(version);
        rec.assert_replica(&data, version);
    }
    for reader in &readers {
        let replay = Recorder::default();
        wait_until("the reader has the last version", || {
            while let Tapped::Event(event) = reader.next() {
                replay.record(&event);
            }
            replay.version() >= version
        });
        replay.assert_replica(&data, version);
    }
    drop(joined);
    c.close();
}
